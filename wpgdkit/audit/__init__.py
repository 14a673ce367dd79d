"""Audits of trained models: where robustness costs accuracy, and how costly the adversary's mistakes are.

The measures are plain functions on tensors (:mod:`wpgdkit.audit.scores`);
:func:`audit` runs them over checkpoints with one adversary
(:mod:`wpgdkit.audit.attacks`).
"""

from __future__ import annotations

from wpgdkit.audit.attacks import AttackConfig, attack_batch, costliest_classes, get_attack, list_attacks
from wpgdkit.audit.core import AUDIT_SCHEMA, AuditConfig, AuditReport, ModelAudit, ModelPredictions, audit
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
    "AttackConfig",
    "AuditConfig",
    "AuditReport",
    "ModelAudit",
    "ModelPredictions",
    "accuracy_gap",
    "attack_batch",
    "audit",
    "confusion_matrix",
    "costliest_classes",
    "entropy_histogram",
    "error_rate",
    "gap_correlation",
    "get_attack",
    "list_attacks",
    "mistake_severity",
    "prediction_entropy",
    "weighted_score",
]
