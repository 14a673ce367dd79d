"""Adversarial attacks: one threat model, one PGD loop, attack objects and their registry.

================================  ==================================================
:mod:`~wpgdkit.attacks.threat`    :class:`ThreatModel`: ε, norm, step size and its
                                  default, steps, random start, restarts, bounds
:mod:`~wpgdkit.attacks.pgd`       the bare PGD loop, :func:`pgd_attack`, with the
                                  loss as a parameter
:mod:`~wpgdkit.attacks.base`      attack objects: :class:`PGD`, :class:`WPGD`
                                  (paper, Def. 6), :class:`CostTargeted`
:mod:`~wpgdkit.attacks.catalog`   the registry by name (``pgd``, ``wpgd``,
                                  ``cost-targeted``, ``autoattack``), used by
                                  training and the audit alike
================================  ==================================================

``import wpgdkit.attacks`` does not import torch; the names that need it are
loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from wpgdkit.attacks.catalog import AttackConfig, AttackEntry, create_attack, get_attack, list_attacks, register_attack
from wpgdkit.attacks.threat import DEFAULT_STEP_FACTOR, NORMS, ThreatModel, format_budget

_LAZY = {
    "APGD": "apgd", "APGDT": "apgd", "WorstCost": "worst_cost", "Ensemble": "ensemble", "EnsembleResult": "ensemble",
    "Attack": "base", "PGD": "base", "WPGD": "base", "CostTargeted": "base", "costliest_classes": "base",
    "cost_tensor": "base", "AutoAttack": "autoattack", "pgd_attack": "pgd", "eval_mode": "pgd", "LossFn": "pgd",
}

__all__ = ["DEFAULT_STEP_FACTOR", "NORMS", "AttackConfig", "AttackEntry", "ThreatModel", "create_attack",
           "format_budget", "get_attack", "list_attacks", "register_attack", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"wpgdkit.attacks.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wpgdkit.attacks' has no attribute {name!r}")
