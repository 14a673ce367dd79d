"""Adversarial training with CE, PGD and WPGD: data, loop, torchrun.

Checkpoints are the run record of :mod:`wpgdkit.checkpoint`
(``load_checkpoint`` is re-exported here for convenience).
"""

from __future__ import annotations

from wpgdkit.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from wpgdkit.training.data import DataConfig, TrainingData, prepare_data
from wpgdkit.training.loop import METHODS, SCHEDULES, TrainConfig, TrainResult, log_path_for, run_settings, train

__all__ = [
    "METHODS",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "DataConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "load_checkpoint",
    "log_path_for",
    "prepare_data",
    "run_settings",
    "train",
]
