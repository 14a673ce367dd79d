"""Audits of trained models: where robustness costs accuracy, and how costly the adversary's mistakes are.

The measures are plain functions on tensors (:mod:`wpgdkit.audit.scores`);
:func:`audit` runs them over checkpoints with one adversary from
:mod:`wpgdkit.attacks`.
"""

from __future__ import annotations

import sys
import types

from wpgdkit.audit.core import AUDIT_SCHEMA, AuditConfig, AuditReport, ModelAudit, ModelPredictions, audit, audit_model
from wpgdkit.audit.scores import (
    SCORE_NORMALIZATIONS,
    accuracy_gap,
    confusion_matrix,
    entropy_histogram,
    error_rate,
    gap_correlation,
    mistake_severity,
    prediction_entropy,
    weighted_score,
)

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
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
