"""Audits of trained models: where robustness costs accuracy, and how costly the adversary's mistakes are.

The measures are plain functions on tensors (:mod:`wpgdkit.audit.scores`);
:func:`audit` runs them over checkpoints with one adversary from
:mod:`wpgdkit.attacks`.
"""

from __future__ import annotations

import sys
import types

from wpgdkit.lazy import lazy_attributes

from wpgdkit.audit.names import SCORE_NORMALIZATIONS

# The names that need torch, loaded on first use (PEP 562): the command line's
# `audit --help` reads wpgdkit.audit.names only.
_LAZY = {
    **dict.fromkeys(["AUDIT_SCHEMA", "AuditConfig", "AuditReport", "ModelAudit", "ModelPredictions", "audit",
                     "audit_model"], "wpgdkit.audit.core"),
    **dict.fromkeys(["accuracy_gap", "confusion_matrix", "entropy_histogram", "error_rate", "gap_correlation",
                     "mistake_severity", "prediction_entropy", "weighted_score"], "wpgdkit.audit.scores"),
}

__all__ = [
    "AUDIT_SCHEMA",
    "SCORE_NORMALIZATIONS",
    "AuditConfig",
    "AuditReport",
    "ModelAudit",
    "ModelPredictions",
    "accuracy_gap",
    "audit",
    "audit_model",
    "confusion_matrix",
    "entropy_histogram",
    "error_rate",
    "gap_correlation",
    "mistake_severity",
    "prediction_entropy",
    "weighted_score",
]


class _CallableModule(types.ModuleType):
    """``wpgdkit.audit`` is this package and, called, the :func:`audit` function.

    ``from wpgdkit import audit`` must give the function, but once this
    subpackage is imported Python binds ``wpgdkit.audit`` to the package; a
    callable package makes both spellings work: ``audit(config)`` and
    ``audit.confusion_matrix(...)``.
    """

    def __call__(self, *args, **kwargs):
        from wpgdkit.audit.core import audit

        return audit(*args, **kwargs)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)


sys.modules[__name__].__class__ = _CallableModule
