"""What an audit attacks: wpgdkit checkpoints, self-contained model files and models from anywhere.

An :class:`AuditSubject` is one model to audit, whatever it came as:

- a **wpgdkit checkpoint**: it knows its dataset, classes, training budget and metric;
- a **self-contained model file** (a TorchScript archive or a ``torch.export``
  program), recognised by its content, not its extension;
- a **model source** (``--model torchvision:resnet18 --weights ft.pt``,
  ``--model my_models.py:build``, ``--model robustbench:Wong2020Fast``), or a
  module handed over in Python (:func:`wpgdkit.audit_model`).

The last two carry no dataset, classes or ε: :func:`resolve_data` takes them
from the audit's parameters, with one line naming what is missing.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from wpgdkit.checkpoint import Checkpoint, DataRecord

__all__ = ["AuditSubject", "AuditData", "load_subject", "subject_from_source", "subject_from_module",
           "resolve_data", "unique_names", "same_file"]

#: ``method`` of a model that wpgdkit did not train (its training is unknown).
EXTERNAL = "external"


@dataclass
class AuditSubject:
    """One model to audit.

    Attributes
    ----------
    path : str
        The file (or the model source's spec) as the user gave it.
    name : str
        A short name for tables (the file's stem, made unique).
    kind : str
        ``"wpgdkit-checkpoint"``, ``"torchscript"``, ``"export"``, ``"source"`` or ``"module"``.
    checkpoint : Checkpoint or None
        For wpgdkit checkpoints.
    module : torch.nn.Module or None
        The network, once built (pixel-space input, logits out).
    source : ModelSource or None
        For ``--model``: built once the data's shape and classes are known.
    """

    path: str
    name: str
    kind: str
    checkpoint: Checkpoint | None = None
    module: torch.nn.Module | None = None
    source: Any | None = None
    _checked: bool = field(default=False, repr=False)

    @property
    def method(self) -> str:
        return self.checkpoint.method if self.checkpoint is not None else EXTERNAL

    def build(self, device: torch.device, *, num_classes: int, input_shape: tuple[int, ...],
              trusted_source: Any | None = None, robustbench_options: dict[str, Any] | None = None) -> torch.nn.Module:
        """The network in eval mode on ``device``, checked to take the data and give ``num_classes`` logits.

        ``robustbench_options`` (dataset, threat_model, model_dir, download)
        serve a ``robustbench:NAME`` source.
        """
        if self.checkpoint is not None:
            return self.checkpoint.build_model(device, trusted_source=trusted_source)
        from wpgdkit.models.foreign import build_foreign_model, check_model_fits

        if self.module is None:
            self.module = build_foreign_model(self.source, num_classes=num_classes, input_shape=input_shape,
                                              robustbench_options=robustbench_options)
        elif not self._checked:
            try:
                check_model_fits(self.module, input_shape=input_shape, num_classes=num_classes)
            except WpgdkitError as exc:
                raise WpgdkitError(f"{self.path}: {exc}") from None
        self._checked = True
        return self.module.to(device).eval()


@dataclass(frozen=True)
class AuditData:
    """The audit's data: which dataset, which of its classes (relabelled 0..K−1), the bounds.

    ``record`` is the checkpoints' :class:`~wpgdkit.checkpoint.DataRecord`
    when there are checkpoints (the audit uses the data they were trained on),
    else None.
    """

    dataset: str
    classes: tuple[str, ...]
    class_indices: tuple[int, ...]
    dataset_classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_range: Any
    eps_units: str | None
    seed: int = 0
    record: DataRecord | None = None


def load_subject(path: str) -> AuditSubject:
    """Open a model file by its content: a wpgdkit checkpoint, a TorchScript archive or a ``torch.export`` program.

    Raises
    ------
    WpgdkitError
        For a missing or unreadable file, a file holding only weights (a
        state_dict: it needs ``--model`` and ``--weights``), or anything else.
    """
    from wpgdkit.checkpoint import load_checkpoint
    from wpgdkit.inputs import input_file
    from wpgdkit.models.archive import load_model_file, model_file_kind

    checked = input_file(path, what="model file")
    kind = model_file_kind(checked)
    name = Path(path).stem
    if kind in ("torchscript", "export"):
        return AuditSubject(path=str(path), name=name, kind=kind, module=load_model_file(checked))
    if kind == "state-dict":
        raise WpgdkitError(f"{path} holds weights only (a state_dict), not a model; give the architecture: "
                           f"--model ARCH --weights {path} (ARCH: a registry name, torchvision:NAME, PKG.MODULE:FACTORY, ...)")
    # A wpgdkit checkpoint, or a file that is not one: load_checkpoint says which problem it has.
    return AuditSubject(path=str(path), name=name, kind="wpgdkit-checkpoint", checkpoint=load_checkpoint(checked))


def subject_from_source(source: Any) -> AuditSubject:
    """A subject for ``--model SPEC [--weights FILE]``, built later (it needs the data's shape and classes)."""
    if source.weights:
        name = Path(source.weights).stem
    else:
        name = source.spec.rsplit(":", 1)[-1].rsplit("/", 1)[-1] or source.spec
    return AuditSubject(path=source.spec, name=name, kind="source", source=source)


def subject_from_module(module: torch.nn.Module, name: str) -> AuditSubject:
    """A subject for a module handed over in Python."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise WpgdkitError(f"model {name!r} must be a torch.nn.Module, got {type(module).__name__}")
    return AuditSubject(path=name, name=name, kind="module", module=module)


def unique_names(subjects: list[AuditSubject]) -> None:
    """Suffix repeated names (``model``, ``model-2``) so tables and JSON keep them apart."""
    seen: dict[str, int] = {}
    for item in subjects:
        count = seen.get(item.name, 0)
        seen[item.name] = count + 1
        if count:
            item.name = f"{item.name}-{count + 1}"


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_compatible(first: AuditSubject, other: AuditSubject, role: str) -> None:
    """Two checkpoints audited together must share dataset and classes."""
    if first.checkpoint is None or other.checkpoint is None:
        return
    a, b = first.checkpoint.data, other.checkpoint.data
    if _data_identity(a) != _data_identity(b):
        raise WpgdkitError(f"{role} {other.path} was trained on {b.dataset}, but {first.path} on {a.dataset}")
    if a.classes != b.classes:
        raise WpgdkitError(f"{role} {other.path} was trained on other classes than {first.path} "
                           f"({', '.join(b.classes[:4])}, ... vs {', '.join(a.classes[:4])}, ...)")


def _data_identity(record: DataRecord) -> Any:
    # Files are the same data when their content is: the path may differ between machines.
    if record.source is not None:
        return (record.source.get("kind"), record.source.get("sha256"), repr(record.source.get("options")))
    return record.dataset


def resolve_data(subjects: list[AuditSubject], *, dataset: str | None, options: Any | None,
                 classes: tuple[str, ...] | None) -> AuditData:
    """The data of the audit: the checkpoints' (``dataset`` may point to moved files), else from the parameters.

    Raises
    ------
    WpgdkitError
        When no checkpoint is audited and ``dataset`` is missing, or the
        parameters contradict the checkpoints.
    """
    trained = next((s for s in subjects if s.checkpoint is not None), None)
    if trained is not None:
        return _checkpoint_data(trained, dataset=dataset, classes=classes, options=options)
    if dataset is None:
        raise WpgdkitError("a model from outside wpgdkit carries no dataset: give one (dataset), e.g. cifar10, "
                           "data.npz, train.csv or imagefolder:PATH, and its budget (eps)")
    spec = open_spec(dataset, options)
    from wpgdkit.labelmetric.core import resolve_class_indices

    indices = tuple(resolve_class_indices(spec.classes, classes)) if classes else tuple(range(spec.num_classes))
    if len(indices) < 2:
        raise WpgdkitError("an audit needs at least 2 classes")
    return AuditData(dataset=spec.name, classes=tuple(spec.classes[i] for i in indices), class_indices=indices,
                     dataset_classes=tuple(spec.classes), input_shape=tuple(spec.input_shape),
                     input_range=spec.input_range, eps_units=_eps_units(spec))


def open_spec(dataset: str, options: Any | None):
    """The :class:`~wpgdkit.datasets.DatasetSpec` of a registry name or a dataset file (opened with ``options``)."""
    from wpgdkit.datasets import get_dataset
    from wpgdkit.datasets.registry import list_datasets

    if dataset in list_datasets():
        # The seed is every command's own (--seed); only the file-reading options mean nothing here.
        if options is not None and not options.is_default:
            raise WpgdkitError(f"the data options (test, label_column, test_fraction, bounds, standardize, "
                               f"image_size, synsets) apply to dataset files, not to {dataset}")
        return get_dataset(dataset)
    from wpgdkit.datasets.files import DataOptions, is_dataset_reference, open_dataset

    if is_dataset_reference(dataset):
        return _open_cached(dataset, options if options is not None else DataOptions())
    return get_dataset(dataset)  # unknown: the registry's message lists the names and the file forms


_OPENED: dict[tuple, Any] = {}


def _open_cached(reference: str, options: Any):
    """Open a dataset file once per process while it is unchanged (a run asks for its spec several times)."""
    from wpgdkit.datasets.files import open_dataset

    key = (reference, options, _stamp(reference, options))
    spec = _OPENED.get(key)
    if spec is None:
        spec = open_dataset(reference, options)
        _OPENED.clear()  # one dataset at a time is the rule; never hold several in memory
        _OPENED[key] = spec
    return spec


def _stamp(reference: str, options: Any) -> tuple:
    """Size and modification time of the files behind a reference: a changed file is opened again."""
    paths = [reference.split(":", 1)[1] if reference.startswith("imagefolder:") else reference]
    if getattr(options, "test", None):
        paths.append(options.test)
    stamp = []
    for path in paths:
        try:
            info = os.stat(path)
            stamp.append((info.st_size, info.st_mtime_ns))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def _eps_units(spec) -> str | None:
    units = getattr(spec, "eps_units", None)
    if units:
        return units
    text = getattr(spec, "eps_unit_text", None)
    return text if isinstance(text, str) else None


def _checkpoint_data(trained: AuditSubject, *, dataset: str | None, classes: tuple[str, ...] | None,
                     options: Any | None = None) -> AuditData:
    record = trained.checkpoint.data
    if classes and tuple(classes) != record.classes:
        raise WpgdkitError(f"{trained.path} was trained on the classes {', '.join(record.classes[:6])}"
                           f"{', ...' if len(record.classes) > 6 else ''}; classes cannot change them")
    _check_options_agree(trained, options)
    if record.source is not None:
        spec = reopen_recorded(record, path=dataset, test=getattr(options, "test", None))
    else:
        if dataset is not None and dataset != record.dataset:
            raise WpgdkitError(f"{trained.path} was trained on {record.dataset}, not {dataset}")
        from wpgdkit.datasets import get_dataset

        spec = get_dataset(record.dataset)
    return AuditData(dataset=spec.name, classes=record.classes, class_indices=record.class_indices,
                     dataset_classes=tuple(spec.classes), input_shape=tuple(spec.input_shape),
                     input_range=record.input_range, eps_units=_eps_units(spec), seed=record.seed, record=record)


def _check_options_agree(trained: AuditSubject, options: Any | None) -> None:
    """Data options beside a checkpoint must be the ones it was trained with: a checkpoint fixes its data.

    ``test`` (where a moved CSV test file is now) and ``seed`` are not compared.
    """
    if options is None:
        return
    from wpgdkit.datasets.files import DataOptions

    given = dataclasses.replace(options, test=None, seed=0)
    if given == DataOptions():
        return
    source = trained.checkpoint.data.source
    recorded = DataOptions() if source is None else DataOptions.from_record(
        {k: v for k, v in (source.get("options") or {}).items() if k != "seed"})
    recorded = dataclasses.replace(recorded, test=None, seed=0)
    for name in ("label_column", "test_fraction", "bounds", "standardize", "image_size", "synsets"):
        if getattr(given, name) != getattr(DataOptions(), name) and getattr(given, name) != getattr(recorded, name):
            raise WpgdkitError(f"{trained.path} was trained with {name.replace('_', '-')} "
                               f"{getattr(recorded, name)!r}; a checkpoint fixes how its data is read, so "
                               f"({name}) cannot change it")


def reopen_recorded(record: DataRecord, *, path: str | None = None, test: str | None = None):
    """Reopen the files a run was trained on, with the options it used; at ``path`` if they have moved.

    The files must hold what they held at training time (their SHA-256 is
    recorded): a result names exactly the data that produced it.

    Raises
    ------
    WpgdkitError
        If the files are gone or changed (say where they were, and that
        ``dataset`` points to moved files), or lack the run's classes.
    """
    from wpgdkit.datasets.files import IMAGEFOLDER_PREFIX, reopen_dataset

    source = dict(record.source)
    if test is not None:
        source["test"] = str(test)  # a moved CSV test file; its recorded SHA-256 still guards the content
    if path is not None:
        kind = source.get("kind")
        bare = path[len(IMAGEFOLDER_PREFIX):] if path.startswith(IMAGEFOLDER_PREFIX) else path
        source.update(path=bare, reference=IMAGEFOLDER_PREFIX + bare if kind == "imagefolder" else bare)
    try:
        spec = reopen_dataset(source)
    except WpgdkitError as exc:
        raise WpgdkitError(f"cannot reopen the data the model was trained on: {exc}"
                           + ("" if path else "; if the files have moved, give dataset PATH")) from None
    missing = [c for c in record.classes if c not in spec.classes]
    if missing:
        raise WpgdkitError(f"{spec.name} lacks the class(es) {', '.join(missing[:4])} the model was trained on")
    return spec
