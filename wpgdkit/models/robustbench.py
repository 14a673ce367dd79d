"""RobustBench models, loaded by the robustbench package's own ``load_model``.

This is what ``--model robustbench:NAME --dataset cifar10 --threat-model Linf``
goes through. RobustBench models take pixel-space inputs in ``[0, 1]`` and
normalise them inside (those that need it), which is wpgdkit's convention too,
so a loaded model can be attacked as it is.

RobustBench is an optional extra (``pip install 'wpgdkit[robustbench]'``).
Compared with calling ``robustbench.utils.load_model`` directly, the loader here

* downloads nothing unless asked (``download=True``, ``--download``): it first
  works out which file the model needs and, if that file is missing, says where
  to put it;
* always unpickles with ``torch.load(weights_only=True)``, even when
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set, since checkpoints come from
  third-party Google Drive folders;
* turns every problem with the input (unknown name, missing or corrupt file,
  missing dependency) into one-line :class:`~wpgdkit.errors.WpgdkitError`;
* keeps stdout clean (robustbench prints), because ``--json -`` writes there.

Checkpoints live in ``model_dir`` with RobustBench's layout,
``<model_dir>/<dataset>/<threat>/<NAME>.pt``. The default ``model_dir`` is
``$WPGDKIT_MODEL_DIR``, else ``./models``: RobustBench's own default, so a
folder where ``robustbench`` was already used finds its checkpoints, and the
same rule as wpgdkit's ``$WPGDKIT_DATA_DIR``/``./data`` for data sets. The few
models RobustBench takes from timm (the XCiTs) are cached where torch.hub
keeps downloads (``$TORCH_HOME/hub/checkpoints``), not in ``model_dir``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import os
import pickle
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from wpgdkit.errors import DataNotFoundError, UnknownNameError, WpgdkitError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "MODEL_DIR_ENV",
    "ROBUSTBENCH_DATASETS",
    "ROBUSTBENCH_PREFIX",
    "ROBUSTBENCH_THREATS",
    "load_robustbench_model",
    "resolve_model_dir",
    "robustbench_name",
    "robustbench_threat_for",
]

#: The model-name prefix that routes ``--model`` here: ``robustbench:NAME``.
ROBUSTBENCH_PREFIX = "robustbench:"

#: wpgdkit dataset name -> RobustBench's ``BenchmarkDataset`` value. RobustBench
#: has no Tiny ImageNet, MNIST or Fashion-MNIST; wpgdkit has no ImageNet loader
#: yet, but the models load.
ROBUSTBENCH_DATASETS: dict[str, str] = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet"}

#: RobustBench's ``ThreatModel`` values with a model-zoo folder. Its fourth,
#: ``corruptions_3d``, shares the ``corruptions`` folder; wpgdkit attacks only
#: ``Linf`` and ``L2`` models anyway.
ROBUSTBENCH_THREATS: tuple[str, ...] = ("Linf", "L2", "corruptions")

#: wpgdkit norm names -> RobustBench threat models.
_NORM_TO_THREAT = {"linf": "Linf", "l2": "L2"}

#: Environment variable naming the default checkpoint folder.
MODEL_DIR_ENV = "WPGDKIT_MODEL_DIR"

#: Fallback checkpoint folder: RobustBench's own default (relative to the working directory).
_DEFAULT_MODEL_DIR = "models"

_INSTALL = "pip install 'wpgdkit[robustbench]'"

#: Modules robustbench imports whose package has another name.
_PROVIDED_BY = {"pkg_resources": "setuptools<81", "autoattack": "pyautoattack"}


def robustbench_name(model: str) -> str | None:
    """The RobustBench model name in ``"robustbench:NAME"``, or ``None`` for another model.

    Raises
    ------
    WpgdkitError
        If the name after the prefix is empty.
    """
    if not model.startswith(ROBUSTBENCH_PREFIX):
        return None
    name = model[len(ROBUSTBENCH_PREFIX):].strip()
    if not name:
        raise WpgdkitError("model robustbench: needs a RobustBench model name, e.g. robustbench:Wong2020Fast")
    return name


def robustbench_threat_for(norm: str) -> str:
    """RobustBench's threat model for a wpgdkit norm: ``"linf"`` -> ``"Linf"``, ``"l2"`` -> ``"L2"``.

    Raises
    ------
    WpgdkitError
        For a norm RobustBench has no models for.
    """
    try:
        return _NORM_TO_THREAT[norm.lower()]
    except KeyError:
        raise WpgdkitError(
            f"RobustBench has models for the norms {', '.join(_NORM_TO_THREAT)}, not {norm!r}") from None


def resolve_model_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint folder: ``model_dir``, else ``$WPGDKIT_MODEL_DIR``, else ``./models``."""
    if model_dir is None:
        model_dir = os.environ.get(MODEL_DIR_ENV) or _DEFAULT_MODEL_DIR
    return Path(model_dir).expanduser()


def load_robustbench_model(
    name: str,
    *,
    dataset: str,
    threat_model: str,
    model_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> nn.Module:
    """A RobustBench model-zoo model with its trained weights, through ``robustbench.utils.load_model``.

    The model maps pixel-space inputs in ``[0, 1]`` (``N×3×32×32`` for CIFAR)
    to logits and normalises inputs inside, as every wpgdkit model does.

    Parameters
    ----------
    name : str
        The model's RobustBench name, e.g. ``"Wong2020Fast"`` (case-sensitive).
    dataset : str, keyword-only
        A wpgdkit dataset RobustBench has models for: a key of
        :data:`ROBUSTBENCH_DATASETS`.
    threat_model : str, keyword-only
        ``"Linf"``, ``"L2"`` or ``"corruptions"`` (any case, so wpgdkit's
        ``"linf"``/``"l2"`` work; see also :func:`robustbench_threat_for`).
    model_dir : str or path, optional, keyword-only
        Folder of RobustBench checkpoints, laid out as
        ``<model_dir>/<dataset>/<threat>/<NAME>.pt``; default
        ``$WPGDKIT_MODEL_DIR``, else ``./models`` (RobustBench's default).
    download : bool, default=False, keyword-only
        Fetch a missing checkpoint (from Google Drive, or from the URL timm
        gives for the models RobustBench takes from timm). Without it nothing
        is downloaded and a missing file is an error saying where it belongs.

    Returns
    -------
    model : torch.nn.Module
        On the CPU, in eval mode.

    Raises
    ------
    WpgdkitError
        If robustbench or one of its dependencies cannot be imported, or a
        checkpoint cannot be downloaded.
    UnknownNameError
        For a dataset, threat model or model name RobustBench does not have
        (the message lists the valid or the closest ones).
    DataNotFoundError
        If a checkpoint is missing and ``download`` is false, or a checkpoint
        file is corrupt, is refused by ``torch.load(weights_only=True)`` or
        does not fit the model's architecture.
    """
    rb_dataset = _robustbench_dataset(dataset)
    threat = _robustbench_threat(threat_model)
    root = resolve_model_dir(model_dir)

    robustbench = _import_robustbench(name)
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    zoo_by_threat = model_dicts[BenchmarkDataset(rb_dataset)]
    if ThreatModel(threat) not in zoo_by_threat:
        valid = ", ".join(t.value for t in zoo_by_threat)
        raise UnknownNameError(f"RobustBench has no {threat} models for {dataset}; it has {valid}")
    zoo = zoo_by_threat[ThreatModel(threat)]
    if name not in zoo:
        raise UnknownNameError(_unknown_name_message(name, list(zoo), rb_dataset, threat))

    needed = _needed_files(name, zoo[name], rb_dataset, threat, root)
    missing = [(path, source) for path, source in needed if not path.is_file()]
    if missing and not download:
        raise DataNotFoundError(_missing_message(name, missing))

    with contextlib.ExitStack() as stack:
        # robustbench and gdown print progress; stdout may be carrying JSON.
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        stack.enter_context(_weights_only_loads())
        stack.enter_context(_guarded_downloads(robustbench, name, download))
        try:
            model = robustbench.utils.load_model(
                name, model_dir=str(root), dataset=rb_dataset, threat_model=threat)
        except WpgdkitError:
            raise
        except Exception as error:  # translated when it is about the files; re-raised otherwise
            translated = _load_error(error, name, [path for path, _ in needed])
            if translated is None:
                raise
            raise translated from None
    return model.cpu().eval()


# --- names --------------------------------------------------------------------------------------


def _robustbench_dataset(dataset: str) -> str:
    try:
        return ROBUSTBENCH_DATASETS[dataset]
    except KeyError:
        raise UnknownNameError(
            f"RobustBench has no models for the dataset {dataset!r}; it has {', '.join(ROBUSTBENCH_DATASETS)}"
        ) from None


def _robustbench_threat(threat_model: str) -> str:
    for threat in ROBUSTBENCH_THREATS:
        if threat.lower() == threat_model.lower():
            return threat
    raise UnknownNameError(
        f"RobustBench has no threat model {threat_model!r}; it has {', '.join(ROBUSTBENCH_THREATS)}")


def _unknown_name_message(name: str, names: list[str], dataset: str, threat: str) -> str:
    by_lower = {n.lower(): n for n in names}
    close = [by_lower[name.lower()]] if name.lower() in by_lower else []
    # Matching lower-cased names finds "wong2020fast" and "Wong2020" alike.
    close += [by_lower[n] for n in difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.5)
              if by_lower[n] not in close]
    hint = f"close names: {', '.join(close[:5])}" if close else f"e.g. {', '.join(names[:3])}"
    return f"unknown RobustBench model {name!r} for {dataset} {threat}; {hint} ({len(names)} models in all)"


# --- import -------------------------------------------------------------------------------------


def _alias_autoattack() -> None:
    """Make ``import autoattack`` find PyPI's ``pyautoattack`` when fra31's ``autoattack`` is absent.

    robustbench 1.1.1 depends on ``pyautoattack``, which ships fra31/auto-attack
    under that module name, but imports ``autoattack`` and ``autoattack.state``.
    The package imports its submodules relatively, so aliasing the package alone
    would load a second copy of each ``autoattack.X`` submodule, with its own
    classes; alias the submodules it has already loaded too.
    """
    if "autoattack" in sys.modules or importlib.util.find_spec("autoattack") is not None:
        return
    try:
        import pyautoattack
    except ImportError:
        return  # importing robustbench then names the missing "autoattack"
    sys.modules.setdefault("autoattack", pyautoattack)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("pyautoattack."):
            sys.modules.setdefault("autoattack." + module_name[len("pyautoattack."):], module)


def _import_robustbench(name: str) -> Any:
    """``import robustbench``, with its import-time noise silenced and failures as one line."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # pkg_resources' deprecation and torch.jit's FutureWarnings, at import only.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            _alias_autoattack()
            import robustbench
            import robustbench.utils  # noqa: F401  load_model lives here
    except ImportError as error:
        # A None entry in sys.modules also raises ModuleNotFoundError, naming the module.
        missing = error.name if isinstance(error, ModuleNotFoundError) else None
        if missing == "robustbench":
            raise WpgdkitError(f"model robustbench:{name} needs the robustbench package: {_INSTALL}") from None
        if missing:
            provider = _PROVIDED_BY.get(missing.split(".")[0])
            hint = f", which {provider} provides" if provider else ""
            raise WpgdkitError(
                f"model robustbench:{name}: the robustbench package cannot be imported, "
                f"its dependency {missing!r} is missing{hint}: {_INSTALL}") from None
        # e.g. "cannot import name ... from timm": a dependency of the wrong version.
        raise WpgdkitError(f"model robustbench:{name}: the robustbench package cannot be imported "
                           f"({_first_line(error)}): {_INSTALL}") from None
    return robustbench


# --- files --------------------------------------------------------------------------------------


def _needed_files(name: str, entry: dict[str, Any], dataset: str, threat: str,
                  root: Path) -> list[tuple[Path, str]]:
    """The files ``load_model`` will read, each with where it comes from, as robustbench decides.

    This mirrors ``robustbench.utils.load_model`` (1.1.1): timm-hosted names
    first, then ImageNet's ``Standard*`` models (torchvision weights), then one
    ``NAME.pt`` or, for ensembles, ``NAME.pt_m{i}.pt``.
    """
    import timm

    timm_name = f"{name.lower().replace('-', '_')}_{dataset}_{threat.lower()}"
    if timm.is_model(timm_name):
        return _timm_files(timm_name)
    if dataset == "imagenet" and "Standard" in name:
        return []  # built with torchvision's pretrained weights; the download guard covers them
    gdrive_id = entry.get("gdrive_id")
    if not gdrive_id:
        raise DataNotFoundError(f"RobustBench gives no checkpoint for {name} ({dataset} {threat})")
    path = root / dataset / threat / f"{name}.pt"
    if isinstance(gdrive_id, list):
        return [(Path(f"{path}_m{i}.pt"), "Google Drive") for i in range(len(gdrive_id))]
    return [(path, "Google Drive")]


def _timm_files(timm_name: str) -> list[tuple[Path, str]]:
    """Where timm caches the weights of ``timm_name`` when it has them at a URL; else nothing to check."""
    import timm
    import torch

    cfg = timm.models.get_pretrained_cfg(timm_name)
    url = getattr(cfg, "url", None) if cfg is not None else None
    if not url or getattr(cfg, "hf_hub_id", None) or getattr(cfg, "file", None):
        return []  # Hugging Face or local file: the offline guard answers for those
    # timm's download_cached_file and torch.hub both cache under <hub dir>/checkpoints/<file name>.
    filename = os.path.basename(urlparse(url).path)
    return [(Path(torch.hub.get_dir()) / "checkpoints" / filename, url)]


def _missing_message(name: str, missing: list[tuple[Path, str]]) -> str:
    paths = ", ".join(str(path) for path, _ in missing)
    sources = sorted({source for _, source in missing})
    return (f"RobustBench model {name} is not in {paths}; pass --download to fetch it "
            f"(from {', '.join(sources)}), or place the file there")


# --- loading safely -----------------------------------------------------------------------------


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    """Set (a string) or unset (``None``) environment variables for the block."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` in the block uses ``weights_only=True``.

    torch >= 2.6 defaults to it, and robustbench does not pass the argument,
    but ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` in the environment would turn it
    off for third-party checkpoints. torch refuses both variables at once, so
    the second one is removed for the block.
    """
    with _environ(TORCH_FORCE_WEIGHTS_ONLY_LOAD="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=None):
        yield


class _DownloadRefused(Exception):
    def __init__(self, destination: str, source: str) -> None:
        super().__init__(destination, source)
        self.destination, self.source = destination, source


class _DownloadFailed(Exception):
    def __init__(self, destination: str, source: str, cause: BaseException) -> None:
        super().__init__(destination, source, cause)
        self.destination, self.source, self.cause = destination, source, cause


@contextlib.contextmanager
def _patched(target: Any, attribute: str, value: Any) -> Iterator[None]:
    original = getattr(target, attribute)
    setattr(target, attribute, value)
    try:
        yield
    finally:
        setattr(target, attribute, original)


@contextlib.contextmanager
def _guarded_downloads(robustbench: Any, name: str, download: bool) -> Iterator[None]:
    """Route robustbench's and torch.hub's downloaders through us for the block.

    Without ``download`` they raise :class:`_DownloadRefused` (a backstop for
    files :func:`_needed_files` does not predict, such as weights a zoo
    constructor fetches itself) and Hugging Face is put offline; with it,
    their failures become :class:`_DownloadFailed`.
    """
    import torch.hub

    def guard(function: Any, source_of: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            source, destination = source_of(*args, **kwargs)
            if not download:
                raise _DownloadRefused(str(destination), source)
            try:
                return function(*args, **kwargs)
            except Exception as error:
                raise _DownloadFailed(str(destination), source, error) from error
        return guarded

    def gdrive_source(gdrive_id: Any, fname_save: Any, *_: Any, **__: Any) -> tuple[str, Any]:
        return "Google Drive", fname_save

    def url_source(url: Any, dst: Any, *_: Any, **__: Any) -> tuple[str, Any]:
        return str(url), dst

    with contextlib.ExitStack() as stack:
        utils = robustbench.utils
        stack.enter_context(_patched(utils, "download_gdrive_new", guard(utils.download_gdrive_new, gdrive_source)))
        stack.enter_context(_patched(torch.hub, "download_url_to_file",
                                     guard(torch.hub.download_url_to_file, url_source)))
        timm_hub = sys.modules.get("timm.models._hub")
        if timm_hub is not None and hasattr(timm_hub, "download_url_to_file"):
            # timm imported the function by name, so torch.hub's attribute is not enough.
            stack.enter_context(_patched(timm_hub, "download_url_to_file",
                                         guard(timm_hub.download_url_to_file, url_source)))
        if not download:
            stack.enter_context(_environ(HF_HUB_OFFLINE="1"))
            hf_constants = sys.modules.get("huggingface_hub.constants")
            if hf_constants is not None and hasattr(hf_constants, "HF_HUB_OFFLINE"):
                # huggingface_hub reads the variable once, at import.
                stack.enter_context(_patched(hf_constants, "HF_HUB_OFFLINE", True))
        yield


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _load_error(error: Exception, name: str, files: list[Path]) -> WpgdkitError | None:
    """One-line error for what went wrong inside ``load_model``, or ``None`` for a bug to re-raise."""
    where = ", ".join(str(f) for f in files) or "its checkpoint"
    retry = "delete it and pass --download to fetch it again, or place a good copy there"
    if isinstance(error, _DownloadRefused):
        return DataNotFoundError(
            f"RobustBench model {name} is not in {error.destination}; pass --download to fetch it "
            f"(from {error.source}), or place the file there")
    if isinstance(error, _DownloadFailed):
        return WpgdkitError(
            f"downloading RobustBench model {name} to {error.destination} (from {error.source}) failed: "
            f"{type(error.cause).__name__}: {_first_line(error.cause)}")
    if type(error).__name__ in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        return DataNotFoundError(f"RobustBench model {name} needs weights from the Hugging Face Hub that are "
                                 f"not in its cache; pass --download to fetch them")
    message = str(error)
    if isinstance(error, pickle.UnpicklingError):
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if refused:
            return DataNotFoundError(
                f"the safe loader (torch.load weights_only=True) refused {where}: it holds {refused.group(1)}, "
                f"which is not plain weights; save just its state_dict if you trust the file")
        return DataNotFoundError(f"{where} is not a readable PyTorch checkpoint (corrupt or not a checkpoint); "
                                 f"{retry}")
    if isinstance(error, EOFError) or (isinstance(error, RuntimeError) and (
            "PytorchStreamReader" in message or "zip archive" in message or "Invalid magic number" in message)):
        return DataNotFoundError(f"{where} is not a readable PyTorch checkpoint (empty, truncated or corrupt); "
                                 f"{retry}")
    if isinstance(error, RuntimeError) and "Error(s) in loading state_dict" in message:
        details = " ".join(line.strip() for line in message.strip().splitlines()[1:])
        if len(details) > 300:
            details = details[:297] + "..."
        return DataNotFoundError(f"{where} does not fit RobustBench model {name}'s architecture: {details}")
    if isinstance(error, (KeyError, TypeError, AttributeError, IndexError)):
        # e.g. a tensor or a dict without the entries robustbench looks up, where a state_dict should be.
        return DataNotFoundError(f"{where} is not a state_dict RobustBench can load for {name} "
                                 f"({type(error).__name__}: {_first_line(error)})")
    if isinstance(error, ValueError) and "gdrive_id" in message:
        return DataNotFoundError(f"RobustBench gives no checkpoint for {name}: {_first_line(error)}")
    return None
