"""Validating label metrics.

:func:`validate_metric` *rejects* what no label metric may be (not square, a
size that does not match the classes, non-finite or negative entries, a
non-zero diagonal, asymmetry unless allowed, duplicate or missing names).

:func:`analyze_metric` *reports* properties the paper asks for but real
metrics often lack:

* the triangle inequality ``C[i, j] <= C[i, k] + C[k, j]``;
* positive semi-definiteness (Definition 3). A symmetric matrix with a zero
  diagonal has trace 0, so its eigenvalues sum to 0 and any non-zero such
  matrix has a negative one: **no non-trivial distance matrix is PSD**,
  WordNet's included. The report says so plainly and adds the property that
  is usually meant, Euclidean embeddability (Schoenberg): ``C`` is a
  Euclidean distance matrix iff ``-1/2 J C∘C J`` is PSD, ``J`` the centring
  matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from wpgdkit.errors import MetricFormatError
from wpgdkit.inputs import Range, check_number
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["MAX_ENTRY", "POWER_RANGE", "check_entries", "check_power", "metric_power", "validate_metric", "analyze_metric", "MetricReport", "TriangleViolation"]

#: The largest entry a label metric may hold. Real costs are small numbers
#: (path lengths, pixel distances, -log rates); this bound leaves room for
#: C^p with p up to 3 and for sums of K entries without float overflow.
MAX_ENTRY = 1e100


#: The power p of C^p (Definition 3): any finite positive number.
POWER_RANGE = Range(0, None, low_open=True)


def check_power(p: float, name: str = "p") -> float:
    """``p`` if it lies in :data:`POWER_RANGE` (finite and positive), else one WpgdkitError."""
    return check_number(name, p, POWER_RANGE)


def metric_power(matrix: np.ndarray, p: float, *, name: str = "p") -> np.ndarray:
    """``C^p`` element-wise, refusing a ``p`` out of range or a result that overflows.

    Raises
    ------
    WpgdkitError
        For ``p`` not finite and positive.
    MetricFormatError
        When the largest entry to the power ``p`` is beyond a double.
    """
    check_power(p, name)
    matrix = np.asarray(matrix, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        powered = np.power(matrix, p)
    if not np.all(np.isfinite(powered)):
        top = float(np.max(np.abs(matrix[np.isfinite(matrix)]))) if np.isfinite(matrix).any() else float("nan")
        raise MetricFormatError(
            f"C^p overflows: the largest entry {top:g} to the power {name}={p:g} is beyond a double; "
            "use a smaller p or a normalised metric (--normalize max)"
        )
    return powered


def check_entries(matrix: np.ndarray, names: Sequence[str] | None = None, *, what: str = "C") -> None:
    """Refuse entries that are not finite, are negative or exceed :data:`MAX_ENTRY`.

    The one check of a metric's numbers, made on every metric read, built or
    written.

    Raises
    ------
    MetricFormatError
        Naming the first bad entry and how many there are.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if names is None:
        names = [str(i) for i in range(matrix.shape[0])] if matrix.ndim else []

    def where(mask: np.ndarray) -> tuple[str, str, float]:
        i, j = map(int, np.argwhere(mask)[0])
        return names[i], names[j], float(matrix[i, j])

    bad = ~np.isfinite(matrix)
    if bad.any():
        a, b, v = where(bad)
        raise MetricFormatError(f"{what}[{a}, {b}] is {v}: entries must be finite ({int(bad.sum())} are not)")
    neg = matrix < 0
    if neg.any():
        a, b, v = where(neg)
        raise MetricFormatError(f"{what}[{a}, {b}] = {v:g} is negative ({int(neg.sum())} negative entries)")
    huge = matrix > MAX_ENTRY
    if huge.any():
        a, b, v = where(huge)
        raise MetricFormatError(
            f"{what}[{a}, {b}] = {v:g} is too large: entries must be at most {MAX_ENTRY:g} "
            f"({int(huge.sum())} are larger)"
        )


def validate_metric(
    metric: LabelMetric | np.ndarray,
    classes: Sequence[str] | None = None,
    *,
    allow_asymmetric: bool = False,
    atol: float = 1e-12,
) -> None:
    """Raise :class:`MetricFormatError` unless the matrix is a valid label metric.

    Parameters
    ----------
    metric : LabelMetric or ndarray of shape (K, K)
    classes : sequence of str, optional
        Class names when ``metric`` is a bare array.
    allow_asymmetric : bool, default=False
        Accept ``C[i, j] != C[j, i]`` (cost-sensitive settings where the two
        mistakes differ).
    atol : float, default=1e-12
        Tolerance of the symmetry and zero-diagonal checks, relative to the
        largest entry.
    """
    if isinstance(metric, LabelMetric):
        matrix, names = metric.matrix, list(metric.classes)
    else:
        matrix = np.asarray(metric, dtype=np.float64)
        names = list(classes) if classes is not None else [str(i) for i in range(len(matrix))]
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise MetricFormatError(f"matrix must be square, got shape {matrix.shape}")
    if matrix.shape[0] != len(names):
        raise MetricFormatError(f"matrix is {matrix.shape[0]}×{matrix.shape[0]} but there are {len(names)} classes")
    if len(names) < 2:
        raise MetricFormatError("a label metric needs at least 2 classes")
    missing = [i for i, n in enumerate(names) if not str(n).strip()]
    if missing:
        raise MetricFormatError(f"class name missing at position {missing[0]}")
    seen: set[str] = set()
    dup = sorted({n for n in names if n in seen or seen.add(n)})
    if dup:
        raise MetricFormatError(f"duplicate class names: {', '.join(dup)}")

    def where(mask: np.ndarray) -> tuple[str, str, float]:
        i, j = map(int, np.argwhere(mask)[0])
        return names[i], names[j], float(matrix[i, j])

    check_entries(matrix, names)
    scale = max(float(matrix.max()), 1.0)
    diag = np.abs(np.diag(matrix)) > atol * scale
    if diag.any():
        i = int(np.argmax(diag))
        raise MetricFormatError(f"C[{names[i]}, {names[i]}] = {matrix[i, i]:g}: the diagonal must be zero")
    if not allow_asymmetric:
        asym = np.abs(matrix - matrix.T) > atol * scale
        if asym.any():
            a, b, v = where(asym)
            raise MetricFormatError(
                f"matrix is not symmetric: C[{a}, {b}] = {v:g} but C[{b}, {a}] = "
                f"{matrix[names.index(b), names.index(a)]:g} (pass --allow-asymmetric to accept)"
            )


@dataclass(frozen=True)
class TriangleViolation:
    """The worst violation ``C[i, j] > C[i, k] + C[k, j]`` (by excess)."""

    i: str
    j: str
    k: str
    excess: float


@dataclass(frozen=True)
class MetricReport:
    """Structural properties of a label metric (reported, not enforced).

    Attributes
    ----------
    num_classes : int
    symmetric : bool
    triangle_violations : int
        Number of ordered triples ``(i, j, k)`` of distinct classes with
        ``C[i, j] > C[i, k] + C[k, j]`` beyond rounding.
    worst_triangle_violation : TriangleViolation or None
    min_eigenvalue : float
        Smallest eigenvalue of the symmetrised matrix.
    positive_semidefinite : bool
    euclidean_embeddable : bool or None
        Whether ``C`` is a Euclidean distance matrix (None if asymmetric).
    """

    num_classes: int
    symmetric: bool
    triangle_violations: int
    worst_triangle_violation: TriangleViolation | None
    min_eigenvalue: float
    positive_semidefinite: bool
    euclidean_embeddable: bool | None

    @property
    def is_metric(self) -> bool:
        """A (pseudo)metric in the mathematical sense: symmetric, triangle inequality holds."""
        return self.symmetric and self.triangle_violations == 0

    def to_dict(self) -> dict:
        """The fields as a dict (the worst violation as a dict too), plus ``is_metric``."""
        out = asdict(self)
        out["is_metric"] = self.is_metric
        return out

    def psd_note(self) -> str:
        if self.min_eigenvalue != self.min_eigenvalue:  # NaN: the eigen decomposition failed
            return "unknown (the eigenvalue computation did not converge)"
        if self.positive_semidefinite:
            return "positive semi-definite"
        return (
            f"not positive semi-definite (smallest eigenvalue {self.min_eigenvalue:.4g}); a non-zero "
            "matrix with a zero diagonal never is, since its eigenvalues sum to its trace, 0"
        )


def analyze_metric(metric: LabelMetric, *, rtol: float = 1e-9) -> MetricReport:
    """Report the triangle inequality, PSD-ness and Euclidean embeddability.

    Parameters
    ----------
    metric : LabelMetric
        A metric that passed :func:`validate_metric`.
    rtol : float, default=1e-9
        Rounding tolerance, relative to the largest entry.

    Returns
    -------
    report : MetricReport
    """
    c = np.asarray(metric.matrix, dtype=np.float64)
    k = c.shape[0]
    top = float(np.max(c)) if c.size else 0.0
    tol = rtol * max(top, 1.0)
    symmetric = bool(np.allclose(c, c.T, rtol=0, atol=tol))
    count, worst, worst_at = 0, 0.0, None
    # One K×K slice per intermediate class m keeps memory at O(K²) for K = 1,000.
    off = ~np.eye(k, dtype=bool)
    for m in range(k):
        # Exact on the raw entries; a sum that overflows to inf is no violation.
        with np.errstate(over="ignore", invalid="ignore"):
            excess = c - (c[:, m][:, None] + c[m, :][None, :])
        excess[m, :] = excess[:, m] = -np.inf  # the triple must be three distinct classes
        violated = (excess > tol) & off
        n = int(violated.sum())
        if n:
            count += n
            flat = int(np.argmax(np.where(violated, excess, -np.inf)))
            i, j = divmod(flat, k)
            if excess[i, j] > worst:
                worst, worst_at = float(excess[i, j]), (i, j, m)
    # The eigen decompositions work on C / max C, far from overflow whatever
    # the entries' scale (C∘C of 1e200 is inf, and LAPACK fails on it); the
    # eigenvalue is scaled back, the tolerances keep their meaning.
    unit = top if np.isfinite(top) and top > 0 else 1.0
    scaled = c / unit
    sym = (scaled + scaled.T) / 2
    euclid: bool | None = None
    try:
        eig_min = float(np.linalg.eigvalsh(sym)[0])
        psd = eig_min >= -tol / unit
        if symmetric:
            centring = np.eye(k) - 1.0 / k
            gram = -0.5 * centring @ (sym * sym) @ centring
            # (C / u)∘(C / u) = (C∘C) / u²: the tolerance relative to max(max C∘C, 1), in those units.
            gram_tol = rtol * (max(top, 1.0) / unit) ** 2 * k
            euclid = bool(np.linalg.eigvalsh(gram)[0] >= -gram_tol)
        eig_min *= unit
    except np.linalg.LinAlgError:
        eig_min, psd, euclid = float("nan"), False, None
    violation = None
    if worst_at is not None:
        i, j, m = worst_at
        names = metric.classes
        violation = TriangleViolation(names[i], names[j], names[m], worst)
    return MetricReport(k, symmetric, count, violation, eig_min, psd, euclid)
