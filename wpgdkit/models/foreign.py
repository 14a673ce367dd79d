"""Models that wpgdkit did not train ("foreign" models), as a library.

A :class:`ModelSource` says where a network comes from; :func:`build_foreign_model`
builds it, loads its weights, puts it behind its input normalisation and checks
that it fits the data:

====================  ====================================================================
``spec``              what it builds
====================  ====================================================================
``small-cnn``         a wpgdkit registry model (:func:`~wpgdkit.models.create_model`)
``pkg.mod:FACTORY``   ``FACTORY(**kwargs)`` from an importable module (``mod:Class.create``
                      works: the part after ``:`` may be a dotted attribute path)
``dir/f.py:FACTORY``  the same from a Python file, imported under a name unique to its path,
                      with its folder on ``sys.path`` while it runs (sibling imports work)
``torchvision:NAME``  ``torchvision.models.get_model(NAME, weights=None, **kwargs)``
``timm:NAME``         ``timm.create_model(NAME, pretrained=False, **kwargs)`` (extra: ``timm``)
``robustbench:NAME``  :func:`wpgdkit.models.robustbench.load_robustbench_model` (extra)
``dir/model.pt2``     a TorchScript or torch.export file (:mod:`wpgdkit.models.archive`)
====================  ====================================================================

Trust
-----
Importing the module or file named in ``spec`` runs its code: that is the
user's explicit choice (they name the module, as they would run a script).
Nothing else here runs code from a file: ``weights`` are read with
``torch.load(weights_only=True)`` or safetensors, and pretrained downloads of
torchvision and timm are off (``weights``, ``pretrained`` and
``checkpoint_path`` are refused in ``kwargs``: give the file as ``weights``).
TorchScript and exported files are programs of their author; see
:mod:`wpgdkit.models.archive` for what loading them runs and what is refused.

Conventions
-----------
The built model takes pixel-space inputs (attacks perturb and clip there).
When the network expects normalised inputs, give ``mean`` and ``std``: the
model is wrapped as ``NormalizedModel(Normalize(mean, std), net)``. The network
must return a tensor of logits ``(N, K)``: tuples, dicts and objects with a
``.logits`` field are refused with a message saying so (wrap the network so
that ``forward`` returns the logits), rather than guessing which item is meant.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from wpgdkit.errors import WpgdkitError
from wpgdkit.models.archive import FileModel, ModelLoadError, load_model_file, read_state_dict

__all__ = [
    "MODEL_KINDS",
    "FrozenKwargs",
    "ModelLoadError",
    "ModelSource",
    "OutputWidthError",
    "build_foreign_model",
    "check_model_fits",
    "fit_state_dict",
    "load_weights",
    "parse_floats",
    "parse_model_kwargs",
    "parse_shape",
]

#: The kinds of :meth:`ModelSource.kind`, for ``--help``.
MODEL_KINDS: tuple[str, ...] = ("registry", "module", "file", "torchvision", "timm", "robustbench", "model-file")

_PREFIXED = ("torchvision", "timm", "robustbench")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
# Keyword arguments that would download or unpickle weights behind the user's back.
_REFUSED_KWARGS = {
    "torchvision": ("weights",),
    "timm": ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"),
}
_FORMS = ("a registry name, PKG.MODULE:FACTORY, path/to/file.py:FACTORY, torchvision:NAME, timm:NAME, "
          "robustbench:NAME or a model file")


class OutputWidthError(ModelLoadError):
    """The model's number of logits is not the data's number of classes."""


# --- parsing -----------------------------------------------------------------------------------


def parse_model_kwargs(text: str | None, *, name: str = "model_kwargs") -> dict[str, Any]:
    """``'{"num_classes": 10}'`` -> ``{"num_classes": 10}``; None or blank -> ``{}``.

    Raises
    ------
    WpgdkitError
        If the text is not a JSON object (NaN and infinity are refused).
    """
    if text is None or not text.strip():
        return {}

    def refuse_constant(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except ValueError as exc:
        raise WpgdkitError(f"{name} must be a JSON object such as '{{\"num_classes\": 10}}'; got {text!r} "
                           f"({exc})") from None
    if not isinstance(value, dict):
        raise WpgdkitError(f"{name} must be a JSON object such as '{{\"num_classes\": 10}}'; got a "
                           f"{type(value).__name__}")
    return value


def parse_shape(text: str | Sequence[int], *, name: str = "input_shape") -> tuple[int, ...]:
    """``"3,32,32"``, ``"3x32x32"``, ``"3×32×32"`` or ``(3, 32, 32)`` -> ``(3, 32, 32)``.

    Raises
    ------
    WpgdkitError
        Unless every size is a positive whole number.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in re.split(r"[,x×]", text.strip().strip("()[]"))]
    else:
        try:
            parts = list(text)
        except TypeError:
            parts = [text]
    sizes: list[int] = []
    for part in parts:
        if isinstance(part, bool):
            sizes = []
            break
        try:
            size = int(part) if isinstance(part, str) else (int(part) if float(part).is_integer() else -1)
        except (TypeError, ValueError, OverflowError):
            sizes = []
            break
        sizes.append(size)
    if not sizes or min(sizes) < 1:
        raise WpgdkitError(f"{name} must be positive sizes separated by commas or x, e.g. 3,32,32; got {text!r}")
    return tuple(sizes)


def parse_floats(text: str | Sequence[float], *, name: str, positive: bool = False) -> tuple[float, ...]:
    """``"0.49,0.48,0.45"`` or a sequence -> a tuple of finite floats (positive ones if ``positive``).

    Raises
    ------
    WpgdkitError
        Naming ``name`` for an empty list, a non-number, NaN, infinity, or a
        value ≤ 0 when ``positive``.
    """
    parts = [p.strip() for p in text.strip().strip("()[]").split(",")] if isinstance(text, str) else text
    try:
        values = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        raise WpgdkitError(f"{name} must be numbers separated by commas, e.g. 0.49,0.48,0.45; got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise WpgdkitError(f"{name} must be finite numbers separated by commas, e.g. 0.49,0.48,0.45; got {text!r}")
    if positive and min(values) <= 0:
        raise WpgdkitError(f"{name} must be positive, got {text!r}")
    return values


class FrozenKwargs(Mapping[str, Any]):
    """Keyword arguments as an immutable, hashable mapping of JSON values.

    Hashing and equality use the canonical JSON text, so two sources with the
    same arguments compare equal. :meth:`copy` gives a fresh ``dict`` for a
    call (a factory may mutate what it receives).
    """

    __slots__ = ("_data", "_text")

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        values = dict(values or {})
        bad = [k for k in values if not isinstance(k, str)]
        if bad:
            raise WpgdkitError(f"model_kwargs keys must be strings, got {bad[0]!r}")
        try:
            self._text = json.dumps(values, sort_keys=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise WpgdkitError(f"model_kwargs must hold JSON values (numbers, strings, lists, dicts): {exc}") from None
        self._data = json.loads(self._text)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(self._text)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenKwargs):
            return self._text == other._text
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return repr(self._data)

    def copy(self) -> dict[str, Any]:
        """A fresh, mutable ``dict`` of the arguments."""
        return json.loads(self._text)

    def to_json(self) -> str:
        """The canonical JSON text (sorted keys)."""
        return self._text


# --- the source -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """How to obtain a model that wpgdkit did not train.

    Attributes
    ----------
    spec : str
        Where the network comes from; see :meth:`kind` and the module notes.
    kwargs : mapping
        Keyword arguments of the factory (``--model-kwargs``), JSON values;
        stored as a :class:`FrozenKwargs` so the source is hashable.
    weights : str or None
        A state_dict file to load (``.pt``/``.pth`` read with
        ``weights_only=True``, or ``.safetensors``).
    input_shape : tuple of int or None
        The shape of one input, when the data does not give it.
    mean, std : tuple of float or None
        The network expects ``(x - mean) / std``: the built model normalises
        pixel-space inputs itself. Both or neither.

    Raises
    ------
    WpgdkitError
        On construction, for a malformed spec or value.
    """

    spec: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec.strip():
            raise WpgdkitError(f"model must be {_FORMS}; got {self.spec!r}")
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalise the fields once, here
        set_("spec", self.spec.strip())
        set_("kwargs", self.kwargs if isinstance(self.kwargs, FrozenKwargs) else FrozenKwargs(self.kwargs))
        if self.weights is not None:
            set_("weights", os.fspath(self.weights))
        if self.input_shape is not None:
            set_("input_shape", parse_shape(self.input_shape))
        if (self.mean is None) != (self.std is None):
            raise WpgdkitError("mean and std go together: give both or neither")
        if self.mean is not None:
            set_("mean", parse_floats(self.mean, name="mean"))
            set_("std", parse_floats(self.std, name="std", positive=True))
            if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
                raise WpgdkitError(f"mean and std differ in length ({len(self.mean)} vs {len(self.std)})")
        self.kind()  # a malformed spec fails now, not when the model is built

    def kind(self) -> str:
        """``"registry"``, ``"module"``, ``"file"``, ``"torchvision"``, ``"timm"``, ``"robustbench"`` or ``"model-file"``.

        Decided by the spec's syntax alone (no import, no file access).

        Raises
        ------
        WpgdkitError
            For a spec of none of these forms.
        """
        spec = self.spec
        prefix, colon, rest = spec.partition(":")
        if colon and prefix in _PREFIXED:
            if not rest.strip():
                raise WpgdkitError(f"model {spec} needs a name after '{prefix}:', e.g. {prefix}:resnet18")
            return prefix
        if _WINDOWS_DRIVE.match(spec) and not spec.rpartition(":")[0][2:]:
            return "model-file"  # C:\models\net.pt2: the colon is the drive's
        if colon:
            head, _, factory = spec.rpartition(":")
            if not _DOTTED.fullmatch(factory):
                raise WpgdkitError(f"model {spec}: {factory!r} after ':' is not a factory name; expected {_FORMS}")
            if head.endswith(".py"):
                return "file"
            if _DOTTED.fullmatch(head):
                return "module"
            raise WpgdkitError(f"model {spec}: {head!r} is neither a module name nor a .py file; expected {_FORMS}")
        if spec.endswith(".py"):
            raise WpgdkitError(f"model {spec} is a Python file: name its factory too, {spec}:FACTORY")
        if _REGISTRY_NAME.fullmatch(spec):
            return "registry"
        return "model-file"

    def to_dict(self) -> dict[str, Any]:
        """The source as JSON values, for records (``kind`` included for readers)."""
        return {"kind": self.kind(), "spec": self.spec, "kwargs": self.kwargs.copy(), "weights": self.weights,
                "input_shape": list(self.input_shape) if self.input_shape is not None else None,
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ModelSource:
        """The source a :meth:`to_dict` record describes (other keys, such as ``kind``, are ignored).

        Raises
        ------
        WpgdkitError
            For a record that is not a mapping with a ``spec``, or bad values.
        """
        if not isinstance(record, Mapping) or not isinstance(record.get("spec"), str):
            raise WpgdkitError(f"a model source record must be an object with a spec, got {record!r}")
        return cls(spec=record["spec"], kwargs=record.get("kwargs") or {}, weights=record.get("weights"),
                   input_shape=record.get("input_shape"), mean=record.get("mean"), std=record.get("std"))

    def without_weights(self) -> ModelSource:
        """The same architecture with no weights file (a checkpoint supplies the weights)."""
        return replace(self, weights=None)


# --- building ---------------------------------------------------------------------------------


def build_foreign_model(
    source: ModelSource,
    *,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    robustbench_options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build the network a :class:`ModelSource` names, with its weights, taking pixel-space inputs.

    Parameters
    ----------
    source : ModelSource
    num_classes : int, optional, keyword-only
        The data's number of classes; with an input shape, the model is
        checked to give that many logits (:func:`check_model_fits`).
    input_shape : sequence of int, optional, keyword-only
        The data's input shape; else ``source.input_shape``. Both given must agree.
    robustbench_options : mapping, optional, keyword-only
        Defaults for ``robustbench:NAME`` (``dataset``, ``threat_model``,
        ``model_dir``, ``download``), e.g. from the audit's dataset and norm;
        ``source.kwargs`` override them.

    Returns
    -------
    model : torch.nn.Module
        In eval mode on the CPU.

    Raises
    ------
    ModelLoadError, WpgdkitError
        One line each: a module that does not exist or fails to import, a
        missing factory (the module's callables are listed), a factory that
        raises, rejects the kwargs or returns no ``nn.Module``, weights that
        do not fit or cannot be read, an input shape the model rejects, an
        output that is not ``(N, num_classes)`` logits.

    Notes
    -----
    ``module`` and ``file`` sources import the user's code, which runs it:
    the user named it. Weights files never run code.
    """
    shape = _resolve_shape(source, input_shape)
    kind = source.kind()
    label = f"model {source.spec}"
    if kind == "registry":
        model = _build_registry(source, num_classes, shape)
    else:
        if source.kwargs and kind == "model-file":
            raise WpgdkitError(f"model_kwargs: {label} is a model file, which takes no model_kwargs")
        net = _BUILDERS[kind](source, dict(robustbench_options or {}))
        if source.weights:
            load_weights(net, source.weights)
        model = _with_normalization(net, source, shape)
    model = model.to("cpu").eval()
    if num_classes is not None and shape is not None:
        try:
            check_model_fits(model, input_shape=shape, num_classes=num_classes, name=label)
        except OutputWidthError as exc:
            if kind in ("torchvision", "timm") and "num_classes" not in source.kwargs:
                raise OutputWidthError(f"{exc} (set model_kwargs {{\"num_classes\": {num_classes}}})") from None
            raise
    return model


def _resolve_shape(source: ModelSource, input_shape: Sequence[int] | None) -> tuple[int, ...] | None:
    if input_shape is None:
        return source.input_shape
    shape = parse_shape(input_shape)
    if source.input_shape is not None and source.input_shape != shape:
        from wpgdkit.models.registry import format_shape

        raise WpgdkitError(f"input_shape: the model source says {format_shape(source.input_shape)} but the data "
                           f"has inputs of shape {format_shape(shape)}")
    return shape


def _build_registry(source: ModelSource, num_classes: int | None, shape: tuple[int, ...] | None) -> nn.Module:
    from wpgdkit.models.registry import create_model

    if source.kwargs:
        raise WpgdkitError(f"model_kwargs: the registry model {source.spec} takes none (its size follows the data)")
    if num_classes is None or shape is None:
        raise WpgdkitError(f"model {source.spec}: a registry model is sized for the data; it needs the number of "
                           "classes and the input shape")
    model = create_model(source.spec, num_classes=num_classes, input_shape=shape, mean=source.mean, std=source.std)
    if source.weights:
        state = read_state_dict(source.weights)
        # Weights of the whole model carry its normalisation; those of the bare network do not.
        target = model if any(key.startswith("normalize.") for key in state) else model.net
        fit_state_dict(target, state, name=source.weights)
    return model


def _with_normalization(net: nn.Module, source: ModelSource, shape: tuple[int, ...] | None) -> nn.Module:
    if source.mean is None:
        return net
    from wpgdkit.models.normalize import Normalize, NormalizedModel
    from wpgdkit.models.registry import _normalize_layer

    # Without a shape, the inputs are taken to be images (C, H, W).
    layer = _normalize_layer(shape, source.mean, source.std) if shape is not None else \
        Normalize(source.mean, source.std, spatial_dims=2)
    return NormalizedModel(layer, net, model_name=source.spec)


def _build_module(source: ModelSource, _options: dict[str, Any]) -> nn.Module:
    module_name, _, attribute = source.spec.partition(":")
    module = _import_module(module_name, source.spec)
    return _call_factory(_resolve_factory(module, attribute, source.spec), source.kwargs.copy(), source.spec)


def _import_module(module_name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ModelLoadError(f"model {spec}: no module named {missing!r} on the Python path (install it, run "
                                 "from the folder that holds it, or name the file: path/to/file.py:FACTORY)") from None
        raise ModelLoadError(f"model {spec}: importing {module_name} failed: {_describe_exception(exc)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module may raise anything while importing
        raise ModelLoadError(f"model {spec}: importing {module_name} failed: {_describe_exception(exc)}") from None


def _build_file(source: ModelSource, _options: dict[str, Any]) -> nn.Module:
    from wpgdkit.inputs import input_file

    path_text, _, attribute = source.spec.rpartition(":")
    path = input_file(path_text, what="model file").resolve()
    # The folder is importable while the file runs and while its factory runs (it may import lazily).
    with _user_folder(path.parent):
        module = _import_file(path, source.spec)
        return _call_factory(_resolve_factory(module, attribute, source.spec), source.kwargs.copy(), source.spec)


_USER_MODULE_PREFIX = "_wpgdkit_user_"


def _import_file(path: Path, spec: str) -> ModuleType:
    """Import a .py file under a module name unique to its location (two ``models.py`` do not collide)."""
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"{_USER_MODULE_PREFIX}{stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ModelLoadError(f"model {spec}: cannot import {path} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name while it runs
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's file may raise anything
        sys.modules.pop(name, None)
        raise ModelLoadError(f"model {spec}: importing {path} failed: {_describe_exception(exc)}") from None
    return module


@contextmanager
def _user_folder(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` for the block; its modules imported meanwhile are forgotten after.

    Forgetting them keeps a sibling ``helpers.py`` of one folder from standing in for
    another folder's ``helpers.py`` later in the same process.
    """
    entry = str(folder)
    before = set(sys.modules)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()  # files written since the last import must be found
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass  # the user's code removed it itself
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules.get(name), "__file__", None)
            if not name.startswith(_USER_MODULE_PREFIX) and origin and _inside(origin, folder):
                sys.modules.pop(name, None)


def _inside(path: str, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def _resolve_factory(module: ModuleType, attribute: str, spec: str) -> Callable[..., Any]:
    target: Any = module
    for depth, part in enumerate(attribute.split(".")):
        try:
            target = getattr(target, part)
        except AttributeError:
            if depth == 0:
                raise ModelLoadError(f"model {spec}: {module.__name__} has no {part!r}; "
                                     f"{_callables_hint(module, part)}") from None
            raise ModelLoadError(f"model {spec}: {'.'.join(attribute.split('.')[:depth])} has no {part!r}") from None
        except Exception as exc:  # noqa: BLE001 - a property of the user's object may raise
            raise ModelLoadError(f"model {spec}: reading {part!r} failed: {_describe_exception(exc)}") from None
    if not callable(target):
        raise ModelLoadError(f"model {spec}: {attribute} is a {type(target).__name__}, not a callable factory")
    return target


def _callables_hint(module: ModuleType, wanted: str, limit: int = 8) -> str:
    public = {n: v for n, v in vars(module).items() if not n.startswith("_") and callable(v)}
    own = sorted(n for n, v in public.items() if getattr(v, "__module__", None) == module.__name__)
    names = own or sorted(public)
    if not names:
        return "it defines no callables"
    close = difflib.get_close_matches(wanted, names, n=1)
    shown = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return (f"did you mean {close[0]!r}? " if close else "") + f"its callables: {shown}"


def _call_factory(factory: Callable[..., Any], kwargs: dict[str, Any], spec: str) -> nn.Module:
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ModelLoadError(f"model {spec}: the factory cannot be called with model_kwargs "
                             f"{json.dumps(kwargs, sort_keys=True)}: {exc}") from None
    except ValueError:
        pass  # no signature to check (a builtin): the call itself will say
    try:
        net = factory(**kwargs)
    except WpgdkitError:
        raise  # already one line (wpgdkit's own loaders)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the factory is the user's code
        raise ModelLoadError(f"model {spec}: the factory raised {_describe_exception(exc)}") from None
    if not isinstance(net, nn.Module):
        raise ModelLoadError(f"model {spec}: the factory returned {_describe_value(net)}, not a torch.nn.Module")
    return net


def _build_torchvision(source: ModelSource, _options: dict[str, Any]) -> nn.Module:
    name = source.spec.split(":", 1)[1].strip()
    kwargs = _checked_kwargs(source, "torchvision")
    try:
        from torchvision import models
    except ImportError as exc:
        raise ModelLoadError(f"model {source.spec} needs torchvision ({_describe_exception(exc)})") from None
    names = models.list_models()
    if name not in names:
        raise ModelLoadError(f"model {source.spec}: torchvision has no model {name!r}{_close(name, names)}; list "
                             "them with: python -c \"import torchvision; print(torchvision.models.list_models())\"")
    return _call_factory(functools.partial(models.get_model, name, weights=None), kwargs, source.spec)


def _build_timm(source: ModelSource, _options: dict[str, Any]) -> nn.Module:
    name = source.spec.split(":", 1)[1].strip()
    try:
        import timm
    except ImportError:
        raise ModelLoadError(f"model timm:{name} needs the timm package: pip install 'wpgdkit[timm]'") from None
    kwargs = _checked_kwargs(source, "timm")
    if not timm.is_model(name):
        raise ModelLoadError(f"model {source.spec}: timm has no model {name!r}{_close(name, timm.list_models())}; "
                             "list them with: python -c \"import timm; print(timm.list_models())\"")
    return _call_factory(functools.partial(timm.create_model, name, pretrained=False), kwargs, source.spec)


def _build_robustbench(source: ModelSource, options: dict[str, Any]) -> nn.Module:
    name = source.spec.split(":", 1)[1].strip()
    try:
        robustbench = importlib.import_module("wpgdkit.models.robustbench")
    except ImportError:
        raise ModelLoadError(f"model {source.spec}: this wpgdkit has no RobustBench support "
                             "(wpgdkit.models.robustbench)") from None
    kwargs = {**options, **source.kwargs.copy()}
    missing = [key for key in ("dataset", "threat_model") if key not in kwargs]
    if missing:
        raise WpgdkitError(f"model {source.spec} needs the RobustBench {' and '.join(missing)} (from the dataset "
                           "and norm of the run, or model_kwargs)")
    return _call_factory(functools.partial(robustbench.load_robustbench_model, name), kwargs, source.spec)


def _build_model_file(source: ModelSource, _options: dict[str, Any]) -> nn.Module:
    if not os.path.exists(source.spec) and _DOTTED.fullmatch(source.spec):
        raise WpgdkitError(f"model {source.spec}: no such model file; a module needs its factory, "
                           f"{source.spec}:FACTORY (or use a registry name)")
    return load_model_file(source.spec)


_BUILDERS: dict[str, Callable[[ModelSource, dict[str, Any]], nn.Module]] = {
    "module": _build_module,
    "file": _build_file,
    "torchvision": _build_torchvision,
    "timm": _build_timm,
    "robustbench": _build_robustbench,
    "model-file": _build_model_file,
}


def _checked_kwargs(source: ModelSource, kind: str) -> dict[str, Any]:
    kwargs = source.kwargs.copy()
    refused = [key for key in _REFUSED_KWARGS[kind] if key in kwargs]
    if refused:
        raise WpgdkitError(f"model_kwargs: {refused[0]!r} is not allowed for {kind} models (it would download or "
                           "unpickle weights); give a state_dict file as weights instead")
    return kwargs


def _close(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
    return f" (close: {', '.join(close)})" if close else ""


def _describe_exception(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _describe_value(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Mapping):
        keys = ", ".join(str(k) for k in list(value)[:4])
        return f"a {type(value).__name__} (keys: {keys}{', ...' if len(value) > 4 else ''})"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__module__}.{type(value).__qualname__}" if type(value).__module__ != "builtins" \
        else f"a {type(value).__name__}"


# --- weights ----------------------------------------------------------------------------------


def load_weights(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a state_dict file into ``module`` (strictly: every key, every shape).

    A model loaded from a TorchScript or exported file takes the weights
    into the loaded network (:attr:`~wpgdkit.models.archive.FileModel.net`).

    Raises
    ------
    DataNotFoundError, ModelLoadError
        As :func:`~wpgdkit.models.archive.read_state_dict` and :func:`fit_state_dict`.
    """
    target = module.net if isinstance(module, FileModel) else module
    fit_state_dict(target, read_state_dict(path), name=os.fspath(path))


def fit_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], *, name: str = "weights") -> None:
    """``module.load_state_dict(state, strict=True)`` with one line saying what does not fit.

    Raises
    ------
    ModelLoadError
        ``weights: NAME does not fit the model: 2 missing (fc.weight, fc.bias),
        1 unexpected (head.weight), 1 of another shape (conv.weight: model
        16×3×3×3, file 8×3×3×3)``.
    """
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [(key, tuple(expected[key].shape), tuple(state[key].shape)) for key in expected
                if key in state and tuple(expected[key].shape) != tuple(state[key].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
    if reshaped:
        shown = ", ".join(f"{k}: model {_shape(a)}, file {_shape(b)}" for k, a, b in reshaped[:3])
        problems.append(f"{len(reshaped)} of another shape ({shown}{', ...' if len(reshaped) > 3 else ''})")
    if problems:
        raise ModelLoadError(f"weights: {name} does not fit the model: {'; '.join(problems)}")
    try:
        module.load_state_dict(dict(state), strict=True)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"weights: {name} does not fit the model ({_describe_exception(exc)})") from None


def _first(keys: list[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


# --- checking ---------------------------------------------------------------------------------


def check_model_fits(model: nn.Module, *, input_shape: Sequence[int], num_classes: int, name: str = "model") -> None:
    """Run the model on zeros shaped like the data and check it returns ``(N, num_classes)`` logits.

    Two forward passes under ``torch.no_grad()``, on batches of 2 and 3 (a
    model that accepts only one batch size fails the second), in eval mode
    (the mode is restored), with the dtype and device of the model's first
    floating-point parameter or buffer.

    Parameters
    ----------
    model : torch.nn.Module
    input_shape : sequence of int, keyword-only
        The data's shape of one input, ``(C, H, W)`` or ``(D,)``.
    num_classes : int, keyword-only
    name : str, keyword-only, default="model"
        How messages name the model.

    Raises
    ------
    ModelLoadError
        ``model rejects inputs of shape 1×28×28 (expected by the data): ...``;
        ``model was exported with a fixed batch size of 4; ...``; a non-tensor
        output (tuple, dict): ``model returns a tuple ...``; a tensor that is
        not ``(N, K)``; :class:`OutputWidthError`: ``model outputs 1000 logits
        per input; the data has 10 classes``.
    """
    from wpgdkit.models.registry import format_shape

    shape = tuple(int(d) for d in input_shape)
    fixed = next((m.fixed_batch_size for m in model.modules() if getattr(m, "fixed_batch_size", None)), None)
    if fixed is not None:
        raise ModelLoadError(f"{name} was exported with a fixed batch size of {fixed}; export it with a dynamic "
                             "batch dimension (torch.export.Dim)")
    reference = next((t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()), None)
    dtype = reference.dtype if reference is not None else torch.get_default_dtype()
    device = reference.device if reference is not None else torch.device("cpu")
    was_training = model.training
    _set_mode(model, False)
    try:
        for batch in (2, 3):
            x = torch.zeros(batch, *shape, dtype=dtype, device=device)
            try:
                with torch.no_grad():
                    out = model(x)
            except WpgdkitError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the forward pass means it does not fit
                if batch == 2:
                    raise ModelLoadError(f"{name} rejects inputs of shape {format_shape(shape)} (expected by the "
                                         f"data): {_describe_exception(exc)}") from None
                raise ModelLoadError(f"{name} takes a batch of 2 inputs but not of 3: it has a fixed batch size "
                                     f"({_describe_exception(exc)}); give it a dynamic batch dimension") from None
            _check_output(out, batch, num_classes, name)
    finally:
        _set_mode(model, was_training)


def _set_mode(model: nn.Module, training: bool) -> None:
    if model.training == training:
        return
    try:
        model.train(training)
    except (NotImplementedError, WpgdkitError):
        pass  # an exported program runs in its exported mode whatever the flag says


def _check_output(out: Any, batch: int, num_classes: int, name: str) -> None:
    if not isinstance(out, torch.Tensor):
        raise ModelLoadError(f"{name} returns {_describe_value(out)} for a batch of inputs; wpgdkit needs a tensor of "
                             f"logits of shape (N, {num_classes}): wrap it so that forward returns the logits")
    if out.dim() != 2 or out.shape[0] != batch:
        raise ModelLoadError(f"{name} returns a tensor of shape {_shape(tuple(out.shape))} for a batch of {batch}; "
                             f"wpgdkit needs logits of shape {batch}×{num_classes}")
    if out.shape[1] != num_classes:
        raise OutputWidthError(f"{name} outputs {out.shape[1]} logits per input; the data has {num_classes} classes")
    if not out.is_floating_point():
        raise ModelLoadError(f"{name} returns {out.dtype} values; logits must be floating point")


def same_model_code(a: str, b: str) -> bool:
    """Whether two ``--model`` specs name the same code: equal, or the same factory of a ``.py`` file of the same name.

    Decides whether the user named the module a checkpoint was trained with.
    The file may have moved since (``my_models.py:Net`` and
    ``/new/place/my_models.py:Net`` match): naming it is the consent to run it,
    and weights that do not fit the code are refused anyway.
    """
    if a == b:
        return True
    head_a, _, factory_a = a.rpartition(":")
    head_b, _, factory_b = b.rpartition(":")
    return (factory_a == factory_b and head_a.endswith(".py") and head_b.endswith(".py")
            and os.path.basename(head_a) == os.path.basename(head_b))
