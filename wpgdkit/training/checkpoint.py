"""Checkpoints are data, never code.

A checkpoint is a dict of plain tensors, numbers, strings, lists and dicts,
written atomically (a temporary file beside it, then a rename) and read with
``torch.load(..., weights_only=True)``, which refuses anything a pickle could
run. It describes the run fully: model, data pipeline, metric, attack,
optimiser and scheduler state, and the toolkit version.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from wpgdkit.atomic import atomic_path
from wpgdkit.errors import DataNotFoundError, WpgdkitError

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "model_from_checkpoint"]

CHECKPOINT_FORMAT = "wpgdkit-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = ("format", "version", "tool_version", "model", "data", "method", "attack", "epoch")


class CheckpointError(WpgdkitError):
    """A file that is not a readable wpgdkit checkpoint."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` atomically; a killed run leaves the previous file intact."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and check it is one of ours.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    CheckpointError
        If it is truncated, not a torch file, carries pickled code, or is not
        a wpgdkit checkpoint. Nothing in the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals it does not know (functions, custom classes);
        # other unpickling failures are plain corruption.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))  # torch names the refused global
        if found:
            raise CheckpointError(f"{path}: refused to load: it holds code or objects ({found.group(1)}), not plain data") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file)") from None
    except Exception as exc:  # noqa: BLE001 - with weights_only nothing ran; any failure means unreadable
        # (RuntimeError, EOFError, BadZipFile, KeyError... depending on how the bytes are wrong)
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file: {type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a wpgdkit checkpoint")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: incomplete wpgdkit checkpoint (missing {', '.join(missing)})")
    if payload["version"] > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload['version']} is newer than this wpgdkit reads")
    return payload


def model_from_checkpoint(payload: dict[str, Any], *, device: str | torch.device = "cpu", name: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the trained model of a loaded checkpoint, in eval mode, on ``device``.

    Parameters
    ----------
    payload : dict
        As returned by :func:`load_checkpoint`.
    device : str or torch.device, keyword-only
    name : str, keyword-only
        How error messages refer to the checkpoint (its path).

    Raises
    ------
    CheckpointError
        If the model section names an unknown model or its weights do not fit it.
    """
    from wpgdkit.models import create_model

    section = payload["model"]
    try:
        model = create_model(section["name"], num_classes=int(section["num_classes"]),
                             input_shape=tuple(section["input_shape"]), mean=section.get("mean"), std=section.get("std"))
        model.load_state_dict(section["state_dict"])
    except WpgdkitError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        # load_state_dict raises RuntimeError listing every mismatched tensor; its first line is enough.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name}: its weights do not fit the model it names ({first})") from None
    return model.to(device).eval()
