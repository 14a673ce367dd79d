"""Reference check of the closed-form Wasserstein distance against POT.

For a one-hot target the transport plan is forced (paper, Lemma 4): all the
mass of class ``k`` moves to the prediction ``q``, so

    W_p^p(onehot(k), q) = (C^p)[k] · q,

the row of the element-wise power ``C^p`` (Definition 3). This module checks
that closed form against POT's exact solver ``ot.emd2`` and against entropic
optimal transport (``ot.sinkhorn2``, log-domain, since POT's plain Sinkhorn
fails on the zeros of a one-hot marginal). Because the plan is forced, the
entropic *plan* is exact at every regularisation ``ε``; the entropic
*objective* ``<π, C^p> - ε H(π)`` falls short of ``W`` by exactly ``ε H(q)``,
which vanishes as ``ε`` shrinks. With ``ε = 1/(λ log K)`` that objective is
the paper's Wasserstein loss (eq. 5).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from wpgdkit.inputs import Range, check_number, check_seed
from wpgdkit.labelmetric.core import LabelMetric
from wpgdkit.labelmetric.validate import check_power, metric_power

__all__ = [
    "wasserstein_to_onehot",
    "entropy",
    "sample_predictions",
    "SinkhornRow",
    "OTCheckReport",
    "check_reference_options",
    "reference_check",
]

#: The valid range of each number :func:`reference_check` takes, written once here
#: (``p``: :data:`~wpgdkit.labelmetric.validate.POWER_RANGE`; the seed: :func:`~wpgdkit.inputs.check_seed`).
CHECK_RANGES = {
    "samples": Range(1, 1_000_000, integer=True),
    "sinkhorn_samples": Range(0, 1_000_000, integer=True),
    "emd_tolerance": Range(0),
    "sinkhorn_tolerance": Range(0),
}
#: Each Sinkhorn regularisation, relative to ``max(C^p)``.
REG_RANGE = Range(0, low_open=True)

ClosedForm = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
_RELATIVE_FLOOR = 1e-6


def wasserstein_to_onehot(cost: np.ndarray, q: np.ndarray, target: np.ndarray, *, p: float = 1.0) -> np.ndarray:
    """Closed-form ``W_p^p(onehot(target), q) = (C^p)[target] · q`` (Lemma 4).

    Parameters
    ----------
    cost : ndarray of shape (K, K)
        The label metric ``C``; row ``k`` holds the costs of mistaking ``k``.
    q : ndarray of shape (N, K)
        Probability vectors (rows sum to 1).
    target : ndarray of shape (N,), int
        The one-hot classes.
    p : float, keyword-only, default=1.0
        Power applied element-wise to ``C``.

    Returns
    -------
    distances : ndarray of shape (N,)
    """
    powered = np.power(cost, p)
    return np.einsum("nk,nk->n", powered[target], q)


def entropy(q: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-Σ q log q`` of each row, with ``0 log 0 = 0``."""
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q), 0.0)
    return -terms.sum(axis=-1)


def sample_predictions(k: int, samples: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random prediction vectors and one-hot targets exercising the edge cases.

    A third of the vectors are flat-ish (Dirichlet(1)), a third peaked
    (Dirichlet(0.1)), a third sparse (zeros off a random support); the first
    vector equals its one-hot target (distance 0).

    Returns
    -------
    q : ndarray of shape (samples, K)
    target : ndarray of shape (samples,), int
    """
    rng = np.random.default_rng(seed)
    target = rng.integers(0, k, size=samples)
    q = np.empty((samples, k))
    for n in range(samples):
        kind = n % 3
        if kind == 0:
            q[n] = rng.dirichlet(np.ones(k))
        elif kind == 1:
            q[n] = rng.dirichlet(np.full(k, 0.1))
        else:
            support = rng.random(k) < 0.3
            support[rng.integers(k)] = True
            q[n] = np.where(support, rng.random(k), 0.0)
            q[n] /= q[n].sum()
    q[0] = np.eye(k)[target[0]]
    return q, target


@dataclass(frozen=True)
class SinkhornRow:
    """One regularisation level of the entropic comparison.

    Attributes
    ----------
    reg : float
        Entropic regularisation ε (absolute, in cost units).
    reg_relative : float
        ε divided by ``max(C^p)``.
    cost_error : float
        Max over samples of |<π_ε, C^p> - closed form| / scale: the plan's
        transport cost (log-domain Sinkhorn).
    objective_gap : float
        Mean over samples of ``W - (<π_ε, C^p> - ε H(π_ε))``; equals
        ``ε · mean H(q)`` and shrinks with ε.
    expected_gap : float
        ``ε · mean H(q)``, the gap predicted by Lemma 4.
    plain_error : float
        The same as ``cost_error`` for POT's plain Sinkhorn (NaN if it broke);
        shown for information, not checked.
    """

    reg: float
    reg_relative: float
    cost_error: float
    objective_gap: float
    expected_gap: float
    plain_error: float


@dataclass(frozen=True)
class OTCheckReport:
    """Outcome of :func:`reference_check`; ``passed`` when every check holds."""

    num_classes: int
    p: float
    samples: int
    emd_max_relative_error: float
    emd_tolerance: float
    sinkhorn_samples: int
    sinkhorn: list[SinkhornRow] = field(default_factory=list)
    sinkhorn_tolerance: float = 1e-6
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        out = asdict(self)
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, data) -> OTCheckReport:
        """The report :meth:`to_dict` described, each number of the type it had (NaN included).

        ``passed``, if present, must agree with ``failures``.

        Raises
        ------
        ValueError
            For anything :meth:`to_dict` could not have written: a missing or
            extra key, or a value of the wrong type (a bool for a number, a
            float for a count).
        """
        if not isinstance(data, dict):
            raise ValueError(f"an OTCheckReport is a dict, got {type(data).__name__}")
        fields = _REPORT_FIELDS
        if not set(fields) <= set(data) <= {*fields, "passed"}:
            raise ValueError(f"an OTCheckReport has the keys {sorted(fields)} (and 'passed'), got {sorted(data)}")
        for name, kinds in fields.items():
            if name != "sinkhorn" and not _is(data[name], kinds):
                raise ValueError(f"OTCheckReport.{name} must be {kinds}, got {data[name]!r}")
        rows, failures = data["sinkhorn"], data["failures"]
        if not isinstance(rows, list) or not all(isinstance(row, dict) and set(row) == set(_ROW_FIELDS) for row in rows):
            raise ValueError(f"OTCheckReport.sinkhorn must be a list of {sorted(_ROW_FIELDS)} dicts")
        for row in rows:
            for name, kinds in _ROW_FIELDS.items():
                if not _is(row[name], kinds):
                    raise ValueError(f"SinkhornRow.{name} must be {kinds}, got {row[name]!r}")
        if not all(isinstance(f, str) for f in failures):
            raise ValueError("OTCheckReport.failures must be a list of str")
        if "passed" in data and data["passed"] is not (not failures):
            raise ValueError("OTCheckReport.passed disagrees with its failures")
        return cls(**{name: data[name] for name in fields if name not in ("sinkhorn", "failures")},
                   sinkhorn=[SinkhornRow(**row) for row in rows], failures=list(failures))


# The types each field may hold: "float" is a computed float; "number" a value as the caller gave it (int or float).
_KINDS = {"int": (int,), "float": (float,), "number": (int, float), "list": (list,)}
_REPORT_FIELDS = {"num_classes": "int", "p": "number", "samples": "int", "emd_max_relative_error": "float",
                  "emd_tolerance": "number", "sinkhorn_samples": "int", "sinkhorn": "list",
                  "sinkhorn_tolerance": "number", "failures": "list"}
_ROW_FIELDS = {"reg": "float", "reg_relative": "number", "cost_error": "float", "objective_gap": "float",
               "expected_gap": "float", "plain_error": "float"}


def _is(value, kind: str) -> bool:
    return isinstance(value, _KINDS[kind]) and not isinstance(value, bool)


def check_reference_options(
    *,
    p: float,
    samples: int,
    sinkhorn_samples: int,
    regs: Sequence[float],
    seed: int,
    emd_tolerance: float,
    sinkhorn_tolerance: float,
) -> tuple[float, ...]:
    """Refuse an option of :func:`reference_check` out of its range (:data:`CHECK_RANGES`, :data:`REG_RANGE`).

    The one place they are checked, before any work: by :func:`reference_check`
    and by :func:`~wpgdkit.labelmetric.check_cache.cached_reference_check`
    before it looks in the cache.

    Returns
    -------
    regs : tuple of float
        The regularisations, read once (any iterable).

    Raises
    ------
    WpgdkitError
        Naming the first option out of range.
    """
    check_power(p)
    given = {"samples": samples, "sinkhorn_samples": sinkhorn_samples, "emd_tolerance": emd_tolerance,
             "sinkhorn_tolerance": sinkhorn_tolerance}
    for name, valid in CHECK_RANGES.items():
        check_number(name, given[name], valid)
    check_seed("seed", seed)
    regs = tuple(regs)
    for reg in regs:
        check_number("each Sinkhorn regularisation", reg, REG_RANGE)
    return regs


def reference_check(
    metric: LabelMetric,
    *,
    p: float = 1.0,
    samples: int = 1000,
    sinkhorn_samples: int = 20,
    regs: Sequence[float] = (1.0, 1e-1, 1e-2, 1e-3),
    seed: int = 0,
    emd_tolerance: float = 1e-9,
    sinkhorn_tolerance: float = 1e-6,
    closed_form: ClosedForm | None = None,
) -> OTCheckReport:
    """Check the closed-form Wasserstein distance against POT.

    Parameters
    ----------
    metric : LabelMetric
        A validated metric.
    p : float, keyword-only, default=1.0
        Power of the cost (``C^p``); must be positive.
    samples : int, default=1000
        Random prediction vectors compared with ``ot.emd2``.
    sinkhorn_samples : int, default=20
        How many of them are also compared with log-domain Sinkhorn at each
        regularisation (the slower part).
    regs : sequence of float, default=(1, 0.1, 0.01, 0.001)
        Regularisations, relative to ``max(C^p)``, in decreasing order.
    seed : int, default=0
    emd_tolerance : float, default=1e-9
        Maximum relative error against ``ot.emd2``; distances below
        ``1e-6·max(C^p)`` are compared relative to that floor instead.
    sinkhorn_tolerance : float, default=1e-6
        Maximum error of Sinkhorn's transport cost and of the entropic gap,
        relative to ``max(C^p)``.
    closed_form : callable, optional
        ``f(cost_p, q, target) -> (N,)`` replacing
        :func:`wasserstein_to_onehot` with ``p=1`` on ``C^p`` (tests pass a
        wrong one to see the check fail).

    Returns
    -------
    report : OTCheckReport
    """
    regs = check_reference_options(p=p, samples=samples, sinkhorn_samples=sinkhorn_samples, regs=regs, seed=seed,
                                   emd_tolerance=emd_tolerance, sinkhorn_tolerance=sinkhorn_tolerance)
    import ot

    cost = metric_power(metric.matrix, p)
    k = cost.shape[0]
    scale = max(float(cost.max()), np.finfo(float).tiny)
    formula: ClosedForm = closed_form or (lambda c, q, t: wasserstein_to_onehot(c, q, t, p=1.0))
    q, target = sample_predictions(k, samples, seed=seed)
    closed = np.asarray(formula(cost, q, target), dtype=np.float64)
    onehots = np.eye(k)
    exact = np.array([ot.emd2(onehots[t], q[n], cost) for n, t in enumerate(target)])
    # Relative error, with the denominator floored at 1e-6·max(C^p): for a nearly
    # one-hot q the distance is a sum of rounding-sized terms (1e-11, say) that no
    # solver returns to 9 relative digits.
    denom = np.maximum(np.abs(exact), _RELATIVE_FLOOR * scale)
    rel = np.where(closed == exact, 0.0, np.abs(closed - exact) / denom)
    failures = []
    emd_err = float(rel.max())
    if not emd_err <= emd_tolerance:
        n = int(np.argmax(rel))
        failures.append(
            f"closed form differs from ot.emd2 by {emd_err:.3g} (relative) on sample {n}: "
            f"{closed[n]!r} vs {exact[n]!r}"
        )
    rows = _sinkhorn_rows(cost, q[:sinkhorn_samples], target[:sinkhorn_samples], closed[:sinkhorn_samples], regs, scale)
    for row in rows:
        if not row.cost_error <= sinkhorn_tolerance:
            failures.append(f"Sinkhorn transport cost at ε={row.reg_relative:g}·max differs by {row.cost_error:.3g}")
        if not abs(row.objective_gap - row.expected_gap) <= sinkhorn_tolerance * scale:
            failures.append(
                f"entropic gap at ε={row.reg_relative:g}·max is {row.objective_gap:.6g}, expected {row.expected_gap:.6g}"
            )
    gaps = [row.objective_gap for row in rows]
    if any(b > a + sinkhorn_tolerance * scale for a, b in zip(gaps, gaps[1:])):
        failures.append("the entropic objective does not approach W as ε shrinks")
    return OTCheckReport(
        num_classes=k, p=p, samples=samples, emd_max_relative_error=emd_err, emd_tolerance=emd_tolerance,
        sinkhorn_samples=len(q[:sinkhorn_samples]), sinkhorn=rows, sinkhorn_tolerance=sinkhorn_tolerance,
        failures=failures,
    )


def _sinkhorn_rows(cost, q, target, closed, regs, scale) -> list[SinkhornRow]:
    import ot

    if len(q) == 0:
        return []
    onehots = np.eye(cost.shape[0])
    h = entropy(q)
    rows = []
    for rel_reg in regs:
        reg = rel_reg * scale
        cost_err, gaps, plain_err = [], [], []
        for n, t in enumerate(target):
            # log(0) on the one-hot marginal is expected (-inf potentials are exact there);
            # plain Sinkhorn under/overflows, which is what its column shows.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                plan = ot.sinkhorn(onehots[t], q[n], cost, reg, method="sinkhorn_log", numItermax=10_000, stopThr=1e-13)
                plain = float(ot.sinkhorn2(onehots[t], q[n], cost, reg, numItermax=1_000, stopThr=1e-13))
            transport = float((plan * cost).sum())
            cost_err.append(abs(transport - closed[n]) / scale)
            gaps.append(closed[n] - (transport - reg * float(entropy(plan.ravel()))))
            plain_err.append(abs(plain - closed[n]) / scale)
        rows.append(
            SinkhornRow(
                reg=reg, reg_relative=rel_reg, cost_error=float(max(cost_err)),
                objective_gap=float(np.mean(gaps)), expected_gap=float(reg * h.mean()),
                plain_error=float(np.nanmax(plain_err)) if not np.all(np.isnan(plain_err)) else float("nan"),
            )
        )
    return rows
