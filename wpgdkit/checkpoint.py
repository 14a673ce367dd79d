"""The run record: one typed checkpoint that writes, reads, validates and describes a training run.

A checkpoint is data, never code: a dict of plain tensors, numbers, strings,
lists and dicts, written atomically (a temporary file beside it, then a
rename) and read with ``torch.load(..., weights_only=True)``, which refuses
anything a pickle could run. This module is the only place that knows its
keys; everything else reads a :class:`Checkpoint`.

What changes the trained weights is :class:`RunSettings`: the model, the data
(dataset, classes, subset, split, imbalance, augmentation, seed), the method,
the threat model of the inner attack, p, λ and the metric (WPGD and
fast-WPGD), the
optimiser and schedule, and the seed. :meth:`RunSettings.fingerprint` hashes
them; two runs are the same run exactly when their fingerprints are equal,
which is what ``--resume``, the demo and ``reproduce`` check before reusing a
file. Where the data lives (``data_dir``), the device, bfloat16 autocast, the
per-epoch validation attack and determinism flags are not part of it.

Format versions: 2 (this one) adds the fingerprint and renames the ``run``
section to ``optimizer_settings``; version-1 files keep loading.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import DataNotFoundError, OutputError, WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from wpgdkit.labelmetric.core import LabelMetric

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "METHODS",
    "SCHEDULES",
    "Checkpoint",
    "CheckpointError",
    "DataRecord",
    "FAST_METHODS",
    "METRIC_METHODS",
    "ModelRecord",
    "OptimizerRecord",
    "RunSettings",
    "inner_attack",
    "load_checkpoint",
]

CHECKPOINT_FORMAT = "wpgdkit-checkpoint"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)

#: Training methods: clean cross-entropy, PGD adversarial training, Wasserstein PGD (paper, Def. 6), and the
#: single-step variants of the last two (Wong, Rice & Kolter, "Fast is better than free", ICLR 2020).
METHODS = ("ce", "pgd", "wpgd", "fast-pgd", "fast-wpgd")
#: The single-step methods: one step of 1.25·ε from a uniform random start in the ε-ball.
FAST_METHODS = ("fast-pgd", "fast-wpgd")
#: The methods whose inner loss is ℓ_W: p, λ and the metric change their weights.
METRIC_METHODS = ("wpgd", "fast-wpgd")
# The attack (registry name) that runs each adversarial method's inner maximisation.
_INNER_ATTACKS = {"pgd": "pgd", "wpgd": "wpgd", "fast-pgd": "pgd", "fast-wpgd": "wpgd"}
#: Learning-rate schedules, per optimiser step.
SCHEDULES = ("piecewise", "cosine", "constant")


def inner_attack(method: str) -> str | None:
    """The attack registry name of ``method``'s inner maximisation: ``pgd`` or ``wpgd``; None for ``ce``.

    The fast methods run the same attacks as their multi-step namesakes, with
    a one-step threat model (see :meth:`wpgdkit.training.TrainConfig.threat`).
    """
    return _INNER_ATTACKS.get(method)


class CheckpointError(WpgdkitError):
    """A file that is not a readable, well-formed wpgdkit checkpoint."""


@dataclass(frozen=True)
class ModelRecord:
    """Which network: a model registry name sized for the data, behind its input normalisation.

    ``source`` is set for a network from outside the registry (``--model
    torchvision:resnet18``, ``--model my_models.py:build``): the
    :meth:`~wpgdkit.models.foreign.ModelSource.to_dict` record that rebuilds
    it. Rebuilding one from the user's own module imports that module, which
    runs its code: :meth:`build` does it only when the caller passes the same
    source (the user named the module again).
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def runs_user_code(self) -> bool:
        """Whether rebuilding imports a module of the user's (``PKG.MODULE:F`` or ``file.py:F``)."""
        return self.source is not None and self.source.get("kind") in ("module", "file")

    def build(self, *, trusted_source: Any | None = None) -> torch.nn.Module:
        """A fresh network of this architecture (random weights, no ``--weights`` applied).

        Parameters
        ----------
        trusted_source : ModelSource, keyword-only, optional
            The model source the user named for this run; required (with the
            same spec) to import a module of the user's.

        Raises
        ------
        WpgdkitError
            For an unknown model, or user code the caller did not name.
        """
        if self.source is None:
            from wpgdkit.models import create_model

            return create_model(self.name, num_classes=self.num_classes, input_shape=self.input_shape,
                                mean=self.mean, std=self.std)
        from wpgdkit.models.foreign import ModelSource, build_foreign_model

        source = ModelSource.from_dict(self.source)
        if self.runs_user_code and trusted_source is not None:
            source = ModelSource.from_dict({**self.source, "spec": trusted_source.spec})  # where the code is now
        from wpgdkit.models.foreign import same_model_code

        if self.runs_user_code and (trusted_source is None or not same_model_code(trusted_source.spec, source.spec)):
            raise WpgdkitError(f"it was trained with the model {source.spec} from your own code; pass "
                               f"--model {source.spec} to import it (importing a module runs its code)")
        # The architecture only: the trained weights are loaded by the caller.
        return build_foreign_model(source.without_weights(), num_classes=self.num_classes,
                                   input_shape=self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "num_classes": self.num_classes, "input_shape": list(self.input_shape),
               "mean": list(self.mean) if self.mean is not None else None,
               "std": list(self.std) if self.std is not None else None}
        if self.source is not None:  # absent for registry models: their fingerprints stay as before
            out["source"] = dict(self.source)
        return out


@dataclass(frozen=True)
class DataRecord:
    """Which data: the dataset, the classes (re-indexed 0..K−1 in this order) and how the split was drawn."""

    dataset: str
    classes: tuple[str, ...]
    class_indices: tuple[int, ...]
    limit: int | None = None
    val_fraction: float = 0.1
    imbalance: float | None = None
    imbalance_class: str | None = None
    augment: bool = False  # whether augmentation was applied (not only asked for)
    input_range: tuple | None = (0.0, 1.0)
    seed: int = 0
    # Where the files were: not part of the run's identity.
    data_dir: str | None = None
    download: bool = False
    # A dataset from files (.npz, .csv, imagefolder:): how to reopen it (kind, path, options, sha256).
    source: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def identity(self) -> dict[str, Any]:
        """The fields that change the trained weights.

        For a dataset read from files, the files' content digest and the
        reading options stand for the data, not the path: a moved file is the
        same data, an edited one is not.
        """
        out = asdict(self)
        for key in ("data_dir", "download", "source"):
            out.pop(key)
        out["classes"], out["class_indices"] = list(self.classes), list(self.class_indices)
        out["input_range"] = _range_json(self.input_range)
        if self.source is not None:
            out["dataset"] = f"{self.source.get('kind', 'file')}-file"
            out["source"] = {k: v for k, v in self.source.items() if k not in ("path", "test", "reference")}
        return out


@dataclass(frozen=True)
class OptimizerRecord:
    """SGD with Nesterov momentum and a per-step schedule over ``epochs``."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"


@dataclass(frozen=True)
class RunSettings:
    """Everything that changes the trained weights; :meth:`fingerprint` identifies the run.

    Attributes
    ----------
    model : ModelRecord
    data : DataRecord
    method : {"ce", "pgd", "wpgd", "fast-pgd", "fast-wpgd"}
    threat : ThreatModel
        The inner attack (ignored by ``ce``; one step for the fast methods).
    optimizer : OptimizerRecord
    seed : int
        Seed of the weights, the batch order, augmentation and attack starts.
    p, lam : float
        Power of the metric and λ of ℓ_W (:data:`METRIC_METHODS` only).
    metric_sha256 : str or None
        Digest of the (K, K) float64 metric WPGD or fast-WPGD trained with (None otherwise).
    class_weights : dict or None
        How the outer cross-entropy weighted the classes (``{"mode": "balanced"}``
        or a weight file's digest); None: unweighted.
    """

    model: ModelRecord
    data: DataRecord
    method: str
    threat: ThreatModel
    optimizer: OptimizerRecord
    seed: int = 0
    p: float = 1.0
    lam: float = math.inf
    metric_sha256: str | None = None
    class_weights: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def identity(self) -> dict[str, Any]:
        """The settings as plain JSON values; what :meth:`fingerprint` hashes."""
        adversarial = self.method != "ce"
        out: dict[str, Any] = {
            "model": self.model.to_dict(),
            "data": self.data.identity(),
            "method": self.method,
            "threat": _threat_identity(self.threat) if adversarial else None,
            "optimizer": asdict(self.optimizer),
            "seed": self.seed,
        }
        if self.method in METRIC_METHODS:
            out.update(p=self.p, lam=_plain_float(self.lam), metric_sha256=self.metric_sha256)
        if self.class_weights is not None:  # absent when unweighted: earlier fingerprints stay valid
            out["class_weights"] = dict(self.class_weights)
        return out

    def fingerprint(self) -> str:
        """SHA-256 (hex) of :meth:`identity` as canonical JSON."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def differences(self, other: RunSettings) -> list[str]:
        """Human-readable ``key: mine vs theirs`` for every setting that differs (flattened keys)."""
        a, b = _flatten(self.identity()), _flatten(other.identity())
        return [f"{key}={a.get(key)!r} vs {b.get(key)!r}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _range_json(value: Any) -> list | None:
    """An input range (``(low, high)`` or per-feature ``(lows, highs)``) as JSON lists."""
    if value is None:
        return None
    return [list(side) if isinstance(side, (tuple, list)) else side for side in value]


def _range_tuple(value: Any) -> tuple | None:
    if value is None:
        return None
    low, high = value
    if isinstance(low, (list, tuple)):
        return (tuple(float(v) for v in low), tuple(float(v) for v in high))
    return (float(low), float(high))


def _threat_identity(threat: ThreatModel) -> dict[str, Any]:
    # Restarts and bounds of the inner attack: restarts are not used in training,
    # the bounds come with the data.
    return {"norm": threat.norm, "eps": threat.eps, "step_size": threat.step, "steps": threat.steps,
            "random_start": threat.random_start}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _plain_float(value: float) -> float | str:
    # "inf" rather than float('inf'): the record also goes to JSON.
    return "inf" if isinstance(value, float) and math.isinf(value) else value


def _float_or_inf(value: Any) -> float:
    return math.inf if value == "inf" else float(value)


def metric_digest(matrix: Any) -> str:
    """SHA-256 of a (K, K) matrix as contiguous little-endian float64: identifies the metric a run used."""
    import numpy as np

    array = np.ascontiguousarray(np.asarray(matrix, dtype="<f8"))
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


@dataclass
class Checkpoint:
    """A training run as saved after an epoch: its settings, its state, its history.

    Attributes
    ----------
    settings : RunSettings
    epoch : int
        Epochs done; the run is :attr:`complete` when it reaches ``settings.optimizer.epochs``.
    state_dict : dict of str to Tensor
        The network's weights (on the CPU).
    history : list of dict
        One record per epoch (losses, accuracies, learning rate, throughput).
    metric : LabelMetric or None
        The label metric given to the run (WPGD's or fast-WPGD's; kept for audits).
    optimizer_state, scheduler_state : dict or None
        For ``--resume``.
    eval_steps : int
        PGD steps of the per-epoch robust validation accuracy.
    amp, deterministic : bool
    parameters : int or None
        Scalar parameters of the network.
    tool_version : str
        wpgdkit's version that wrote it.
    version : int
        The file format version it was read from (or will be written as).
    path : str or None
        Where it was read from.
    """

    settings: RunSettings
    epoch: int
    state_dict: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    metric: LabelMetric | None = None
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    eval_steps: int = 0
    amp: bool = False
    deterministic: bool = False
    parameters: int | None = None
    tool_version: str = ""
    version: int = CHECKPOINT_VERSION
    path: str | None = None

    # --- views ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "checkpoint"

    @property
    def method(self) -> str:
        return self.settings.method

    @property
    def model(self) -> ModelRecord:
        return self.settings.model

    @property
    def data(self) -> DataRecord:
        return self.settings.data

    @property
    def threat(self) -> ThreatModel:
        return self.settings.threat

    @property
    def classes(self) -> tuple[str, ...]:
        return self.settings.data.classes

    @property
    def epochs(self) -> int:
        return self.settings.optimizer.epochs

    @property
    def complete(self) -> bool:
        return self.epoch >= self.epochs

    def fingerprint(self) -> str:
        return self.settings.fingerprint()

    def build_model(self, device: str | torch.device = "cpu", *, trusted_source: Any | None = None) -> torch.nn.Module:
        """The trained network in eval mode on ``device``.

        Parameters
        ----------
        device : str or torch.device
        trusted_source : ModelSource, keyword-only, optional
            See :meth:`ModelRecord.build`: needed for a run whose network comes
            from the user's own module.

        Raises
        ------
        CheckpointError
            If the model section names an unknown model or the weights do not fit it.
        """
        try:
            model = self.settings.model.build(trusted_source=trusted_source)
        except WpgdkitError as exc:
            raise CheckpointError(f"{self.name}: {exc}") from None
        self.load_weights_into(model)
        return model.to(device).eval()

    def load_weights_into(self, model: torch.nn.Module) -> None:
        """Copy the saved weights into ``model`` (its architecture must be this run's).

        Raises
        ------
        CheckpointError
            If they do not fit (missing, unexpected or differently shaped tensors).
        """
        try:
            model.load_state_dict(self.state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            # load_state_dict raises RuntimeError listing every mismatched tensor; its first lines are enough.
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            detail = "; ".join(lines[:2]) if lines else type(exc).__name__
            raise CheckpointError(f"{self.name}: its weights do not fit the model it names ({detail})") from None

    def describe(self) -> dict[str, Any]:
        """JSON facts about the run (for provenance, ``--json`` output and reports)."""
        s = self.settings
        out: dict[str, Any] = {"model": s.model.name, "method": s.method, "dataset": s.data.dataset,
                               "classes": list(s.data.classes), "epoch": self.epoch, "epochs": self.epochs,
                               "seed": s.seed, "fingerprint": self.fingerprint(), "tool_version": self.tool_version}
        if s.method != "ce":
            out["threat"] = _threat_identity(s.threat)
        if s.method in METRIC_METHODS:
            out.update(p=s.p, lam=_plain_float(s.lam))
        return out

    # --- writing ---------------------------------------------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """The dict written to disk (format version 2)."""
        import torch

        s = self.settings
        metric = None
        if self.metric is not None:
            metric = {"classes": list(self.metric.classes),
                      "matrix": torch.tensor(self.metric.matrix.copy(), dtype=torch.float64),
                      "provenance": self.metric.provenance.to_dict()}
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "tool_version": self.tool_version,
            "fingerprint": self.fingerprint(),
            "model": {**s.model.to_dict(), "parameters": self.parameters,
                      "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()}},
            "data": {**s.data.identity(), "dataset": s.data.dataset, "data_dir": s.data.data_dir,
                     "download": s.data.download, "source": s.data.source},
            "metric": metric,
            "metric_sha256": s.metric_sha256,
            "class_weights": s.class_weights,
            "method": s.method,
            "p": s.p,
            "lam": _plain_float(s.lam),
            "attack": _threat_identity(s.threat),
            "optimizer_settings": asdict(s.optimizer),
            "evaluation": {"eval_steps": self.eval_steps, "amp": self.amp, "deterministic": self.deterministic},
            "seed": s.seed,
            "epoch": self.epoch,
            "optimizer": self.optimizer_state,
            "scheduler": self.scheduler_state,
            "history": self.history,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically to ``path``; a killed run leaves the previous file intact."""
        import torch

        from wpgdkit.atomic import atomic_path

        path = Path(path)
        payload = self.to_payload()
        with atomic_path(path) as tmp:
            try:
                torch.save(payload, tmp)
            except RuntimeError as exc:  # torch's writer reports a full disk (or a vanished folder) this way
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise OutputError(f"cannot write {path}: {first}") from None
        self.path = str(path)
        return path

    # --- reading ---------------------------------------------------------------------------

    @classmethod
    def from_payload(cls, payload: Any, *, name: str = "checkpoint") -> Checkpoint:
        """Validate a loaded dict (format version 1 or 2) and type it.

        Raises
        ------
        CheckpointError
            If it is not a wpgdkit checkpoint, is newer than this version reads,
            or a section is missing or of the wrong type.
        """
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{name}: not a wpgdkit checkpoint")
        version = payload.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (version {version!r} is not a whole number)")
        if version > CHECKPOINT_VERSION:
            raise CheckpointError(f"{name}: checkpoint version {version} is newer than this wpgdkit reads "
                                  f"({CHECKPOINT_VERSION}); upgrade wpgdkit")
        if version not in READABLE_VERSIONS:
            raise CheckpointError(f"{name}: unknown checkpoint version {version}")
        missing = [key for key in ("model", "data", "method", "attack", "epoch") if key not in payload]
        if missing:
            raise CheckpointError(f"{name}: incomplete wpgdkit checkpoint (missing {', '.join(missing)})")
        try:
            return cls._parse(payload, version, name)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, WpgdkitError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint ({detail})") from None

    @classmethod
    def _parse(cls, payload: dict[str, Any], version: int, name: str) -> Checkpoint:
        method = payload["method"]
        if method not in METHODS:
            raise CheckpointError(f"{name}: unknown training method {method!r}; this wpgdkit knows {', '.join(METHODS)}")
        m, d = payload["model"], payload["data"]
        if not isinstance(m, dict) or not isinstance(d, dict):
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (model and data must be sections)")
        state_dict = m["state_dict"]
        if not isinstance(state_dict, dict):
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (the weights are not a state dict)")
        model = ModelRecord(name=str(m["name"]), num_classes=int(m["num_classes"]),
                            input_shape=tuple(int(v) for v in m["input_shape"]),
                            mean=_float_tuple(m.get("mean")), std=_float_tuple(m.get("std")),
                            source=_section(m.get("source"), "model source", name))
        classes = tuple(str(c) for c in d["classes"])
        indices = tuple(int(i) for i in d["class_indices"])
        if len(classes) != model.num_classes or len(indices) != len(classes):
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint ({len(classes)} classes, "
                                  f"{len(indices)} class indices, {model.num_classes} outputs)")
        input_range = d.get("input_range")
        data = DataRecord(
            dataset=str(d["dataset"]), classes=classes, class_indices=indices,
            limit=int(d["limit"]) if d.get("limit") is not None else None,
            val_fraction=float(d.get("val_fraction", 0.1)),
            imbalance=float(d["imbalance"]) if d.get("imbalance") is not None else None,
            imbalance_class=str(d["imbalance_class"]) if d.get("imbalance_class") is not None else None,
            augment=bool(d.get("augmented", d.get("augment", False))) if version == 1 else bool(d.get("augment", False)),
            input_range=_range_tuple(input_range),
            seed=int(d.get("seed", 0)), data_dir=d.get("data_dir"), download=bool(d.get("download", False)),
            source=_section(d.get("source"), "data source", name),
        )
        _check_classes(data, name)
        threat = ThreatModel.from_dict(payload["attack"], default_bounds=data.input_range)
        if version == 1:
            run = payload.get("run") or {}
            optimizer = OptimizerRecord(epochs=int(run.get("epochs", payload["epoch"])),
                                        batch_size=int(run.get("batch_size", 128)), lr=float(run.get("lr", 0.1)),
                                        momentum=float(run.get("momentum", 0.9)),
                                        weight_decay=float(run.get("weight_decay", 5e-4)),
                                        schedule=str(run.get("schedule", "piecewise")))
            evaluation = {key: run.get(key) for key in ("eval_steps", "amp", "deterministic")}
        else:
            o = payload["optimizer_settings"]
            optimizer = OptimizerRecord(epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=float(o["lr"]),
                                        momentum=float(o["momentum"]), weight_decay=float(o["weight_decay"]),
                                        schedule=str(o["schedule"]))
            evaluation = payload.get("evaluation") or {}
        if optimizer.schedule not in SCHEDULES:
            raise CheckpointError(f"{name}: unknown schedule {optimizer.schedule!r}")
        metric = _read_metric_section(payload.get("metric"), name)
        digest = payload.get("metric_sha256")
        if digest is None and method in METRIC_METHODS and metric is not None:
            digest = metric_digest(metric.matrix)  # version 1 kept the metric itself
        settings = RunSettings(model=model, data=data, method=method, threat=threat, optimizer=optimizer,
                               seed=int(payload.get("seed", 0)), p=float(payload.get("p", 1.0)),
                               lam=_float_or_inf(payload.get("lam", "inf")),
                               metric_sha256=digest if method in METRIC_METHODS else None,
                               class_weights=_section(payload.get("class_weights"), "class weights", name))
        epoch = payload["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (epoch {epoch!r})")
        history = payload.get("history") or []
        if not isinstance(history, list):
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (history is not a list)")
        return cls(settings=settings, epoch=epoch, state_dict=state_dict, history=list(history), metric=metric,
                   optimizer_state=payload.get("optimizer"), scheduler_state=payload.get("scheduler"),
                   eval_steps=int(evaluation.get("eval_steps") or 0), amp=bool(evaluation.get("amp")),
                   deterministic=bool(evaluation.get("deterministic")),
                   parameters=int(m["parameters"]) if m.get("parameters") is not None else None,
                   tool_version=str(payload.get("tool_version", "")), version=version, path=name)


def _check_classes(data: DataRecord, name: str) -> None:
    """Class indices distinct and in range, and naming the dataset's classes, when the dataset is registered."""
    from wpgdkit.datasets import get_dataset, list_datasets

    if len(set(data.class_indices)) != len(data.class_indices):
        raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (repeated class indices)")
    if data.dataset not in list_datasets():
        return
    full = get_dataset(data.dataset).classes
    for index, cls in zip(data.class_indices, data.classes):
        if not 0 <= index < len(full):
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (class index {index} is outside "
                                  f"{data.dataset}'s 0..{len(full) - 1})")
        if full[index] != cls:
            raise CheckpointError(f"{name}: malformed wpgdkit checkpoint (class {index} of {data.dataset} is "
                                  f"{full[index]!r}, not {cls!r})")


def _section(value: Any, what: str, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name}: malformed wpgdkit checkpoint ({what} is not a section)")
    return dict(value)


def _float_tuple(value: Any) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value)


def _read_metric_section(section: Any, name: str) -> LabelMetric | None:
    if not section:
        return None
    import numpy as np

    from wpgdkit.labelmetric.core import LabelMetric, Provenance

    matrix = section["matrix"]
    matrix = matrix.numpy() if hasattr(matrix, "numpy") else matrix
    return LabelMetric(tuple(str(c) for c in section["classes"]), np.asarray(matrix, dtype=np.float64),
                       Provenance.from_dict(section.get("provenance") or {"source": "checkpoint"}))


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with ``weights_only=True``, validate it, and return its :class:`Checkpoint`.

    Parameters
    ----------
    path : path-like
    map_location : str or torch.device, keyword-only, default="cpu"
        Where the tensors are loaded.

    Returns
    -------
    checkpoint : Checkpoint

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    CheckpointError
        If it is truncated, not a torch file, carries pickled code, or is not
        a well-formed wpgdkit checkpoint. Nothing in the file is executed.
    """
    import torch

    from wpgdkit.inputs import input_file

    path = input_file(path, what="checkpoint")
    _check_integrity(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice on refused globals: our one line says it
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals it does not know (functions, custom classes);
        # other unpickling failures are plain corruption.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))  # torch names the refused global
        name = found.group(1) if found else _pickled_global(path)
        if name:
            raise CheckpointError(f"{path}: refused to load: it holds code or objects ({name}), not plain data") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file)") from None
    except Exception as exc:  # noqa: BLE001 - with weights_only nothing ran; any failure means unreadable
        # (RuntimeError, EOFError, BadZipFile, KeyError... depending on how the bytes are wrong)
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file: {type(exc).__name__})") from None
    checkpoint = Checkpoint.from_payload(payload, name=str(path))
    _check_finite(checkpoint)
    return checkpoint


def _pickled_global(path: Path, *, max_bytes: int = 64 << 20) -> str | None:
    """The first global (``module.name``) a plain pickle file would import, read without running it.

    torch names the refused global only for the pickle protocols it parses;
    for the others (4, 5) the opcodes are read here with :mod:`pickletools`,
    which never executes anything.
    """
    import pickletools

    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                return arg.replace(" ", ".")
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - not a pickle, or a broken one: nothing to name
        return None
    return None


def _check_integrity(path: Path) -> None:
    """Refuse a torch zip archive whose records fail their CRC-32 (bytes changed after saving).

    torch reads the records of its archive without checking their checksums,
    so a flipped byte in a weight tensor would load as a silently wrong
    weight. Files that are not zip archives are left to ``torch.load``.
    """
    from wpgdkit.inputs import ZIP_READ_ERRORS, failed_zip_record

    try:
        bad = failed_zip_record(path)  # None also for a file that is not a zip: torch.load decides
    except ZIP_READ_ERRORS as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupted archive: {type(exc).__name__})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupted: the record {bad.rsplit('/', 1)[-1]} fails its checksum "
                              "(the file changed after it was written)")


def _check_finite(checkpoint: Checkpoint) -> None:
    """Refuse weights holding NaN or infinity: a diverged run's, never to be audited as if fine."""
    import torch

    for key, tensor in checkpoint.state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{checkpoint.name}: malformed wpgdkit checkpoint (weight {key} is not a tensor)")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{checkpoint.name}: the weights hold NaN or infinite values ({key}); "
                                  "the run that wrote it diverged")
