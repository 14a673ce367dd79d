"""The threat model: the one place that owns ε, the step size and its default, steps, restarts and bounds.

Training's inner attack, the per-epoch robust validation, the audit's
adversary and the benchmarks all build a :class:`ThreatModel`; nothing else
computes a default step size or validates a budget.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from wpgdkit.errors import WpgdkitError

__all__ = ["NORMS", "DEFAULT_STEP_FACTOR", "ThreatModel", "format_budget"]

#: The perturbation norms every attack supports.
NORMS = ("linf", "l2")

#: Madry et al.'s rule: the default step is ``DEFAULT_STEP_FACTOR · ε / steps``, so that
#: a path of ``steps`` steps can cross the ball (2ε) with room to spare.
DEFAULT_STEP_FACTOR = 2.5


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass(frozen=True, eq=False)
class ThreatModel:
    """What the adversary may do: a norm ball around each input, and how PGD walks in it.

    Attributes
    ----------
    eps : float
        Radius of the ball (> 0, finite), in the ``norm``.
    step_size : float or None, default=None
        Length of each step (> 0): per pixel for ℓ∞, in ℓ2 norm for ℓ2. None
        takes ``DEFAULT_STEP_FACTOR · eps / steps`` (:attr:`step`).
    steps : int, default=10
        Ascent steps (≥ 1).
    norm : {"linf", "l2"}, default="linf"
    random_start : bool, default=True
        Start from a uniform point of the ball instead of the clean input.
    restarts : int, default=1
        Independent random starts; an attack keeps each point's worst (≥ 1).
    bounds : (float, float), (tuple of float, tuple of float) or None, default=(0.0, 1.0)
        Range the adversarial input is clamped to: one ``(low, high)`` for
        every feature (images in [0, 1]), or per-feature ``(lows, highs)``,
        each of length ``prod(input_shape)`` in C order (tabular data bounded
        by its training data's minimum and maximum); None for unbounded data
        (the toy problem, standardised features with ``--bounds none``).
    eps_text : str or None, default=None
        ε as the user wrote it (``"8/255"``), for display only; not compared.

    Two threat models are equal when they walk the same ball the same way:
    an explicit ``step_size`` equal to the default compares equal to None.

    Raises
    ------
    WpgdkitError
        If a value is out of range; the message names the parameter.
    """

    eps: float
    step_size: float | None = None
    steps: int = 10
    norm: str = "linf"
    random_start: bool = True
    restarts: int = 1
    bounds: tuple[float, float] | tuple[tuple[float, ...], tuple[float, ...]] | None = (0.0, 1.0)
    eps_text: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _positive_finite(self.eps):
            raise WpgdkitError(f"eps must be a positive finite number, got {self.eps!r}")
        if not _is_whole(self.steps) or self.steps < 1:
            raise WpgdkitError(f"steps must be a whole number of at least 1, got {self.steps!r}")
        if self.step_size is not None and not _positive_finite(self.step_size):
            raise WpgdkitError(f"step_size must be a positive finite number, got {self.step_size!r}")
        if self.norm not in NORMS:
            raise WpgdkitError(f"unknown norm {self.norm!r}; choose one of: {', '.join(NORMS)}")
        if not _is_whole(self.restarts) or self.restarts < 1:
            raise WpgdkitError(f"restarts must be a whole number of at least 1, got {self.restarts!r}")
        if self.bounds is not None:
            object.__setattr__(self, "bounds", _check_bounds(self.bounds))
            width = self.max_width
            if self.norm == "linf" and self.eps > width:
                # A larger ℓ∞ ball holds every input of the data range: no threat model at all.
                where = (f"the width of the data range [{self.bounds[0]:g}, {self.bounds[1]:g}]" if not self.per_feature
                         else "the widest feature's range in the bounds")
                raise WpgdkitError(f"eps must be at most {width:g} ({where}) for linf, got {self.eps!r}")
        object.__setattr__(self, "eps", float(self.eps))

    @property
    def per_feature(self) -> bool:
        """Whether :attr:`bounds` holds one ``(low, high)`` per feature."""
        return self.bounds is not None and isinstance(self.bounds[0], tuple)

    @property
    def max_width(self) -> float:
        """The largest ``high − low`` of the bounds (inf without bounds)."""
        if self.bounds is None:
            return math.inf
        if self.per_feature:
            return max(h - l for l, h in zip(*self.bounds))
        return self.bounds[1] - self.bounds[0]

    def _key(self) -> tuple[Any, ...]:
        return (self.eps, self.step, self.steps, self.norm, self.random_start, self.restarts, self.bounds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThreatModel) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def step(self) -> float:
        """The step size in use: the explicit one, else ``DEFAULT_STEP_FACTOR · eps / steps``."""
        return self.step_size if self.step_size is not None else DEFAULT_STEP_FACTOR * self.eps / self.steps

    def check_inputs(self, input_shape: tuple[int, ...]) -> None:
        """Refuse an ℓ2 ball larger than the data range's diameter for inputs of ``input_shape``."""
        if self.bounds is None:
            return
        size = math.prod(input_shape)
        if self.per_feature and len(self.bounds[0]) != size:
            raise WpgdkitError(f"bounds have {len(self.bounds[0])} values per side; inputs "
                               f"{'×'.join(map(str, input_shape))} have {size} features")
        if self.norm != "l2":
            return
        if self.per_feature:
            diameter = math.sqrt(sum((h - l) ** 2 for l, h in zip(*self.bounds)))
        else:
            diameter = (self.bounds[1] - self.bounds[0]) * math.sqrt(size)
        if self.eps > diameter:
            raise WpgdkitError(f"eps must be at most {diameter:g} (the diameter of the data range for inputs "
                               f"{'×'.join(map(str, input_shape))}) for l2, got {self.eps!r}")

    @property
    def eps_label(self) -> str:
        """ε for people: as the user wrote it, else :func:`format_budget`."""
        return self.eps_text if self.eps_text else format_budget(self.eps, self.bounds)

    def with_steps(self, steps: int) -> ThreatModel:
        """The same ball walked in ``steps`` steps of the default size (e.g. a 20-step evaluation)."""
        return dataclasses.replace(self, steps=steps, step_size=None)

    def replace(self, **changes: Any) -> ThreatModel:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; ``step_size`` is the step in use."""
        return {"norm": self.norm, "eps": self.eps, "step_size": self.step, "steps": self.steps,
                "random_start": self.random_start, "restarts": self.restarts,
                "bounds": _bounds_json(self.bounds)}

    @classmethod
    def from_dict(cls, section: dict[str, Any], *, default_bounds: tuple[float, float] | None = (0.0, 1.0)) -> ThreatModel:
        """Read :meth:`to_dict`'s output (also a version-1 checkpoint's ``attack`` section)."""
        bounds = section.get("bounds", default_bounds)
        return cls(eps=float(section["eps"]), step_size=float(section["step_size"]) if section.get("step_size") is not None else None,
                   steps=int(section["steps"]), norm=str(section["norm"]),
                   random_start=bool(section.get("random_start", True)), restarts=int(section.get("restarts", 1)),
                   bounds=tuple(bounds) if bounds is not None else None)


def _check_bounds(bounds: Any) -> tuple:
    """``(low, high)`` floats with low < high, or per-feature ``(lows, highs)`` tuples with lows ≤ highs."""
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise WpgdkitError(f"bounds must be (low, high), got {bounds!r}") from None
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not isinstance(low, bool):
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise WpgdkitError(f"bounds must be (low, high) with low < high, got {bounds}")
        return (low, high)
    try:
        lows, highs = tuple(float(v) for v in low), tuple(float(v) for v in high)
    except (TypeError, ValueError):
        raise WpgdkitError("bounds must be (low, high) numbers or per-feature (lows, highs) sequences") from None
    if not lows or len(lows) != len(highs):
        raise WpgdkitError(f"per-feature bounds need as many lows as highs, got {len(lows)} and {len(highs)}")
    # A feature constant over the training data has low == high: the adversary cannot move it.
    if not all(math.isfinite(l) and math.isfinite(h) and l <= h for l, h in zip(lows, highs)):
        raise WpgdkitError("per-feature bounds must be finite with low ≤ high for every feature")
    return (lows, highs)


def _bounds_json(bounds: Any) -> list | None:
    if bounds is None:
        return None
    return [list(side) if isinstance(side, tuple) else side for side in bounds]


def format_budget(eps: float, bounds: tuple[float, float] | None = (0.0, 1.0)) -> str:
    """``8/255`` for a whole number of 8-bit grey levels on [0, 1] images, else ``%g`` (``0.1``, ``0.5``)."""
    if bounds is not None and not isinstance(bounds[0], (tuple, list)) and tuple(bounds) == (0.0, 1.0):
        levels = eps * 255
        if round(levels) >= 1 and abs(levels - round(levels)) < 1e-6:
            return f"{int(round(levels))}/255"
    return f"{eps:g}"
