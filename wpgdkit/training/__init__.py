"""Adversarial training with CE, PGD and WPGD: data, loop, checkpoints, torchrun."""

from __future__ import annotations

from wpgdkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from wpgdkit.training.data import DataConfig, TrainingData, prepare_data
from wpgdkit.training.loop import METHODS, SCHEDULES, TrainConfig, TrainResult, log_path_for, train

__all__ = [
    "METHODS",
    "SCHEDULES",
    "CheckpointError",
    "DataConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "load_checkpoint",
    "log_path_for",
    "prepare_data",
    "save_checkpoint",
    "train",
]
