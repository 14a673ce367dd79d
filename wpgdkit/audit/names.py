"""The audit's named choices, importable without torch: the command line's ``--help`` lists them.

:mod:`wpgdkit.audit.scores`, which needs torch, re-exports them.
"""

from __future__ import annotations

__all__ = ["SCORE_NORMALIZATIONS"]

#: How :func:`~wpgdkit.audit.scores.weighted_score` normalises S: per true class, per point, or not at all.
SCORE_NORMALIZATIONS: tuple[str, ...] = ("true", "all", "none")
