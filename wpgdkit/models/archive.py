"""Model and weights files, recognised by their content, never by their extension.

A file given as a model is one of

- a **wpgdkit checkpoint** (``torch.save`` of a dict whose ``format`` is
  ``"wpgdkit-checkpoint"``): read by :func:`wpgdkit.checkpoint.load_checkpoint`;
- a **TorchScript archive** (``torch.jit.save``): a zip with ``code/`` and
  ``constants.pkl``;
- a **torch.export program** (``torch.export.save``, ``.pt2``): a zip whose
  ``archive_format`` record says ``pt2``;
- a **state_dict** (``torch.save`` output, zip or legacy pickle, or a
  ``.safetensors`` file): weights without an architecture, which need
  ``--model`` to name the network and go in ``--weights``.

:func:`model_file_kind` tells them apart, :func:`load_model_file` opens the
self-contained ones, :func:`read_state_dict` reads weights.

What loading can execute
------------------------
Established by reading torch 2.14's loaders and by experiment with that
version; the tests check wpgdkit's refusals on the same tampered files and
that no marker file appears:

**Weights** are read with ``torch.load(weights_only=True)`` (passed
explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it off) or with
``safetensors`` (a JSON header and raw bytes). Neither runs code: the restricted
unpickler refuses every global outside torch's tensor-rebuilding allow-list
(a pickle calling ``os.system`` fails with ``Unsupported global: GLOBAL
posix.system``), and torch >= 2.6 refuses TorchScript archives under
``weights_only=True``.

**TorchScript** (``torch.jit.load``) unpickles ``data.pkl`` and
``constants.pkl`` with torch's C++ unpickler, which accepts pickle protocol 2
only and resolves no Python global: a ``data.pkl`` that calls ``os.system`` or
``builtins.exec`` fails with ``Unknown type name 'posix.system'`` (or
``'__builtin__.exec'``) and nothing runs. But the archive *is a program*: its
``code/`` holds TorchScript source that torch compiles and runs in its own
interpreter, with every registered operator available, without Python.
Classes with a ``__setstate__`` run it *during* ``torch.jit.load``, and
``forward`` runs on every call. Operators can touch the file system: in the
experiment, ``torch.from_file(path, True, n)`` in a scripted ``__setstate__``
created and wrote a file during ``torch.jit.load``, and the same in
``forward`` on the first call; torchvision registers
``image::read_file``/``image::write_file``. torch's documentation of
``torch.jit.load`` says to load only trusted files. So a TorchScript file is
code from its author. wpgdkit refuses archives whose code calls an operator with ``file``
in its name or from the ``image``/``video_reader`` namespaces (a deny-list,
not a sandbox), checks the zip records' CRC-32, and otherwise leaves the
file to torch.

**torch.export** (``torch.export.load``) reads a JSON program and raw tensor
payloads, but several of its paths run Python chosen by the file. Confirmed by
experiment on torch 2.14 (a tampered ``torch.export.save`` archive whose
payload creates a marker file, created on load):

- weights or constants flagged ``use_pickle`` in their JSON config are read
  with ``torch.load(weights_only=False)``;
- ``opaque_obj_*`` constants are read with ``pickle.loads``;
- ``data/sample_inputs/*.pt`` is read with ``weights_only=True`` and, when
  that fails, again with ``weights_only=False``;
- symbolic shape expressions (``expr_str``) go through ``sympy.sympify``,
  which ``eval``-s them: ``__import__('os').system(...)`` runs.

Read in the source, not exploited here: ``custom_obj_*`` constants go through
the TorchScript unpickler; legacy ``data/weights/<model>.pt`` members and the
pre-2.8 format take the same ``weights_only=False`` fallback; AOTInductor
members (``data/aotinductor/``) are compiled shared libraries that the loader
opens; pytree specs may name a module for ``importlib.import_module``
(``__enum__`` contexts, ``defaultdict`` factories); graph targets are resolved
by ``getattr`` from the ``torch`` module, so ``torch.os.system`` resolves to
``os.system`` (torch 2.14's verifier then refuses that program with
``SpecViolationError``; wpgdkit does not rely on it). So before calling
``torch.export.load`` wpgdkit inspects the archive and refuses, fail-closed:

- any member outside the layout of ``torch.export.save`` for plain tensors
  (AOTInductor, ExecuTorch, MTIA, legacy ``.pt`` weights, pickled or custom
  objects, the pre-2.8 format);
- weights or constants flagged ``use_pickle``, and sample inputs that
  ``torch.load(weights_only=True)`` refuses;
- graph targets other than ``torch.ops.NS.OP[.OVERLOAD]`` (no dunders, no
  file operators), a short list of ``operator`` functions (arithmetic,
  comparison, ``getitem``) and ``math``/``torch.sym_*`` functions;
- shape expressions using anything but numbers, arithmetic, symbol names
  (``s0``, ``u3``) and a list of sympy constructors and functions;
- pytree specs other than tuples, lists and dicts, and any ``__enum__`` or
  ``defaultdict`` factory anywhere (nested JSON strings are decoded and checked).

What is left runs torch operators on tensors, as the exported graph says: the
same trust as a TorchScript file, minus Python.

An exported program's module (``ExportedProgram.module()``) refuses
``.eval()`` and ``.train()`` (``NotImplementedError``: it runs in the mode
it was exported in); :class:`ExportedModel` wraps it so that ``.eval()`` works
and ``.train()`` says it cannot be trained. A program exported with a fixed
batch size only accepts that size; :attr:`ExportedModel.fixed_batch_size`
records it and :func:`~wpgdkit.models.foreign.check_model_fits` says so.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wpgdkit.errors import WpgdkitError

__all__ = [
    "MODEL_FILE_KINDS",
    "ExportedModel",
    "FileModel",
    "ModelLoadError",
    "load_model_file",
    "model_file_kind",
    "read_state_dict",
]

#: What :func:`model_file_kind` returns.
MODEL_FILE_KINDS = ("wpgdkit-checkpoint", "torchscript", "export", "state-dict", "unknown")

#: Largest pickle inspected without loading it (``data.pkl`` of a checkpoint is a few kB).
_MAX_INSPECTED_PICKLE = 64 << 20

# Wrappers that training scripts put around a state_dict, in the order they are tried.
_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "net")
# Prefixes that wrappers add to every key: DataParallel / DistributedDataParallel, torch.compile.
_KEY_PREFIXES = ("module.", "_orig_mod.")


class ModelLoadError(WpgdkitError):
    """A model, a model file or a weights file that cannot be used (one line naming the parameter)."""


# --- recognising files -------------------------------------------------------------------


def model_file_kind(path: str | os.PathLike[str]) -> str:
    """What a file holds, judged by its content (zip members, magic bytes), never by its name.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    kind : str
        ``"wpgdkit-checkpoint"``, ``"torchscript"``, ``"export"``,
        ``"state-dict"`` (``torch.save`` output that is not a checkpoint,
        a legacy pickle, or safetensors: weights without an architecture;
        whether it really is a state_dict shows when it is read) or
        ``"unknown"``. Nothing in the file is executed.

    Raises
    ------
    DataNotFoundError, WpgdkitError
        For a missing, unreadable or non-regular file.
    """
    from wpgdkit.inputs import input_file

    checked = input_file(path, what="model file")
    head = _head(checked)
    if head.startswith(b"PK"):
        return _zip_kind(checked)
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy (non-zip) format, or a bare pickle
        return "state-dict"
    if _looks_like_safetensors(head, checked.stat().st_size):
        return "state-dict"
    return "unknown"


def _head(path: Path, size: int = 16) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from None


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            root, names = _split_root(archive.namelist())
            if "archive_format" in names or "serialized_exported_program.json" in names:
                return "export"
            if "constants.pkl" in names or any(name.startswith("code/") for name in names):
                return "torchscript"
            if "data.pkl" in names:
                info = archive.getinfo(root + "data.pkl")
                if info.file_size <= _MAX_INSPECTED_PICKLE and _is_checkpoint_pickle(archive.read(info)):
                    return "wpgdkit-checkpoint"
                return "state-dict"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, zipfile.LargeZipFile):
        pass  # a truncated or foreign zip: not a model we can name
    return "unknown"


def _split_root(names: list[str]) -> tuple[str, list[str]]:
    """torch writes every record under one top folder (``archive/``, the file's stem): strip it."""
    first = names[0].split("/", 1)[0] + "/" if names and "/" in names[0] else ""
    if first and all(name.startswith(first) for name in names):
        return first, [name[len(first):] for name in names]
    return "", list(names)


def _is_checkpoint_pickle(data: bytes) -> bool:
    """Whether a pickle builds a dict with ``format: "wpgdkit-checkpoint"``, read with pickletools (nothing runs)."""
    previous = None
    try:
        for _opcode, arg, _pos in pickletools.genops(data):
            if isinstance(arg, str):
                if previous == "format" and arg == "wpgdkit-checkpoint":
                    return True
                previous = arg
    except Exception:  # noqa: BLE001 - a broken pickle is simply not a checkpoint
        return False
    return False


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if len(head) < 9:
        return False
    header = int.from_bytes(head[:8], "little")
    return 2 <= header <= size - 8 and head[8:9] == b"{"


# --- loading self-contained model files --------------------------------------------------------


class FileModel(nn.Module):
    """A network loaded from a TorchScript or torch.export file, taking inputs as the file's author exported it.

    Attributes
    ----------
    net : torch.nn.Module
        The loaded module (``RecursiveScriptModule`` or the exported graph module).
    path : str
        The file it came from.
    file_kind : str
        ``"torchscript"`` or ``"export"``.
    """

    fixed_batch_size: int | None = None

    def __init__(self, net: torch.nn.Module, *, path: str, file_kind: str) -> None:
        super().__init__()
        self.net = net
        self.path = path
        self.file_kind = file_kind

    def forward(self, x: torch.Tensor) -> Any:
        """The loaded module applied to ``x``."""
        return self.net(x)

    def extra_repr(self) -> str:
        return f"{self.file_kind} from {self.path}"


class ExportedModel(FileModel):
    """An exported program's module: ``.eval()`` works, ``.train()`` explains why it cannot.

    ``ExportedProgram.module()`` raises ``NotImplementedError`` on ``.eval()``
    and ``.train()``: the program runs in the mode it was exported in (batch
    norm statistics, dropout). This wrapper records the mode flags without
    touching the program, so ``model.eval()`` and wrappers around it work.

    Attributes
    ----------
    fixed_batch_size : int or None
        The batch size the program was exported for when its batch dimension
        is static (then it accepts no other), else None.
    """

    def __init__(self, net: torch.nn.Module, *, path: str, fixed_batch_size: int | None) -> None:
        super().__init__(net, path=path, file_kind="export")
        self.fixed_batch_size = fixed_batch_size
        self.training = False

    def train(self, mode: bool = True) -> ExportedModel:
        """Evaluation mode is what the program does; training mode cannot be switched on."""
        if mode:
            raise ModelLoadError(f"model {self.path} is an exported program, which runs in the mode it was "
                                 "exported in and cannot be trained; give the architecture with --model and "
                                 "its weights with --weights to train it")
        self.training = False
        return self


def load_model_file(path: str | os.PathLike[str]) -> torch.nn.Module:
    """Open a self-contained model file, recognised by its content.

    Parameters
    ----------
    path : path-like
        A TorchScript archive, a ``torch.export`` program or a wpgdkit
        checkpoint, whatever its name (``model.bin`` works).

    Returns
    -------
    model : torch.nn.Module
        On the CPU, in eval mode, mapping inputs as the file's author defined
        them (pixel space unless they normalise outside the model; then give
        ``mean``/``std`` to :func:`~wpgdkit.models.foreign.build_foreign_model`)
        to logits: a :class:`FileModel` (TorchScript), an
        :class:`ExportedModel` or a checkpoint's ``NormalizedModel``.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    ModelLoadError
        For weights only (a state_dict), an unknown format, a corrupted
        archive, or a file wpgdkit refuses (see the module notes).

    Notes
    -----
    A TorchScript or exported model is code from its author (see the module
    notes): load files you would run.
    """
    from wpgdkit.inputs import input_file

    checked = input_file(path, what="model file")
    kind = model_file_kind(checked)
    if kind == "torchscript":
        return _load_torchscript(checked, str(path))
    if kind == "export":
        return _load_export(checked, str(path))
    if kind == "wpgdkit-checkpoint":
        from wpgdkit.checkpoint import load_checkpoint

        return load_checkpoint(checked).build_model()
    if kind == "state-dict":
        raise ModelLoadError(f"model file {path} holds weights only (a state_dict), no architecture; name the "
                             f"architecture with --model and give this file as --weights")
    raise ModelLoadError(f"model file {path} is not a model wpgdkit reads: expected a TorchScript archive "
                         "(torch.jit.save), a torch.export program (torch.export.save) or a wpgdkit checkpoint")


def _check_crc(path: Path, label: str) -> None:
    """Refuse a zip whose records fail their CRC-32: torch reads records without checking them.

    A file that is not a readable zip (truncated, foreign) is left to the loader, which says so.
    """
    from wpgdkit.inputs import ZIP_READ_ERRORS, failed_zip_record

    try:
        bad = failed_zip_record(path)
    except ZIP_READ_ERRORS as exc:
        raise ModelLoadError(f"{label} is a corrupted archive ({type(exc).__name__})") from None
    if bad is not None:
        raise ModelLoadError(f"{label} is corrupted: the record {bad.rsplit('/', 1)[-1]} fails its checksum "
                             "(the file changed after it was written)")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# Operators that reach the file system, by name (a deny-list: see the module notes).
_FILE_OPERATOR = re.compile(r"(?:^|_)file(?:_|$)", re.IGNORECASE)
_FILE_NAMESPACES = frozenset({"image", "video_reader"})
# A call in TorchScript's serialized code: torch.NAME(...) or ops.NS.NAME(...).
_TORCHSCRIPT_CALL = re.compile(r"\b(?:torch|ops)\.((?:\w+\.)*\w+)\s*\(")


def _load_torchscript(path: Path, name: str) -> FileModel:
    _check_crc(path, f"model file {name}")
    _refuse_torchscript_file_ops(path, name)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch's reader raises RuntimeError (or worse) for any bad archive
        raise ModelLoadError(f"model file {name} is not a loadable TorchScript archive: {_first_line(exc)}") from None
    return FileModel(net, path=name, file_kind="torchscript").eval()


def _refuse_torchscript_file_ops(path: Path, name: str) -> None:
    with zipfile.ZipFile(path) as archive:
        root, names = _split_root(archive.namelist())
        for member in names:
            if not (member.startswith("code/") and member.endswith(".py")):
                continue
            source = archive.read(root + member).decode("utf-8", errors="replace")
            for match in _TORCHSCRIPT_CALL.finditer(source):
                dotted = match.group(1)
                parts = dotted.split(".")
                if _FILE_OPERATOR.search(parts[-1]) or any(part in _FILE_NAMESPACES for part in parts[:-1]):
                    raise ModelLoadError(f"model file {name}: refused: its TorchScript code calls {dotted}, an "
                                         "operator that reaches the file system")


def _load_export(path: Path, name: str) -> ExportedModel:
    _check_crc(path, f"model file {name}")
    _check_export_archive(path, name)

    with _quiet_export_logs() as records:
        try:
            with warnings.catch_warnings(), open(path, "rb") as handle:
                warnings.simplefilter("ignore")
                # A file object: torch warns about file names that do not end in .pt2.
                program = torch.export.load(handle)
        except Exception as exc:  # noqa: BLE001 - after the checks, any failure is an unreadable program
            # torch logs the real cause and raises a generic error from its fallback path.
            cause = next((r.exc_info[1] for r in records if r.exc_info and r.exc_info[1] is not None), exc)
            raise ModelLoadError(f"model file {name} is not a loadable torch.export program: "
                                 f"{_first_line(cause)}") from None
    _check_graph_targets(program, name)
    try:
        net = program.module()
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"model file {name}: cannot build the exported program's module: {_first_line(exc)}") from None
    return ExportedModel(net, path=name, fixed_batch_size=_fixed_batch_size(program))


@contextmanager
def _quiet_export_logs() -> Iterator[list[logging.LogRecord]]:
    """Collect, instead of printing, what torch's export loader logs (it logs tracebacks on stderr)."""
    records: list[logging.LogRecord] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Collect()
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch.export.pt2_archive._package",
                                              "torch._export.serde.serialize")]
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield records
    finally:
        for logger, (propagate, level) in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)


def _fixed_batch_size(program: Any) -> int | None:
    """The static first dimension of the program's tensor input, or None when it is dynamic."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is not None and len(shape) > 0:
                return shape[0] if isinstance(shape[0], int) else None
    return None


# --- torch.export archives: what is allowed before torch.export.load reads it ---------------------

_PT2_MEMBER = re.compile(r"""(?x)
      archive_format | archive_version | byteorder | version | \.data/version | \.data/serialization_id
    | models/[\w.-]+\.json | extra/[^/].*
    | data/weights/[\w.-]+_weights_config\.json | data/weights/weight_\d+
    | data/constants/[\w.-]+_constants_config\.json | data/constants/tensor_\d+
    | data/sample_inputs/[\w.-]+\.pt
""")
_PAYLOAD_NAME = {"weights": re.compile(r"weight_\d+"), "constants": re.compile(r"tensor_\d+")}
_NATIVE_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia")

_OP_TARGET = re.compile(r"torch\.ops(?:\.(?!__)[A-Za-z_]\w*){2,3}")
_PYTHON_TARGETS = frozenset(f"_operator.{name}" for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne", "lt", "le",
    "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift", "rshift", "getitem", "index", "truth"))
_SYM_TARGET = re.compile(r"torch\._?sym_[a-z_]+|math\.[a-z][a-z0-9_]*")

# sympify eval()s its input: allow numbers, arithmetic, symbol names and these names only.
_SYMPY_NAMES = frozenset({
    "Symbol", "Integer", "Float", "Rational", "positive", "negative", "nonnegative", "nonpositive", "integer",
    "real", "finite", "True", "False", "true", "false", "oo", "zoo", "nan", "int_oo", "Max", "Min", "Abs",
    "floor", "ceiling", "Mod", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Piecewise", "sqrt",
    "Pow", "Mul", "Add", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt",
    "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "OpaqueUnaryFn_sqrt",
})
_SYMBOL_NAME = re.compile(r"[a-z]+\d+")
_EXPR_TOKEN = re.compile(r"\s+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'[A-Za-z_]\w*'|[A-Za-z_]\w*|\*\*|//|==|!=|<=|>="
                         r"|[-+*/%(),<>=]")
_MAX_EXPR = 10_000
_TREESPEC_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict"})


def _refuse(name: str, why: str) -> ModelLoadError:
    return ModelLoadError(f"model file {name}: refused: {why}; wpgdkit loads exported programs of plain tensors "
                          "and torch operators only")


def _check_export_archive(path: Path, name: str) -> None:
    """Refuse, before torch reads it, every part of a .pt2 archive whose loading would run Python."""
    with zipfile.ZipFile(path) as archive:
        root, names = _split_root(archive.namelist())
        if "archive_format" not in names:
            raise ModelLoadError(f"model file {name} is a torch.export program in the format of torch < 2.8, "
                                 "whose loader falls back to unpickling code; save it again with torch.export.save "
                                 "from torch >= 2.8")
        for member in names:
            if member.endswith("/"):
                continue
            if member.startswith(_NATIVE_DIRS):
                raise _refuse(name, f"it holds compiled code ({member}), which loading would run")
            if not _PT2_MEMBER.fullmatch(member):
                raise _refuse(name, f"it holds {member}, which torch would unpickle or wpgdkit does not know")
        for member in names:
            data = archive.read(root + member)
            if member.startswith("data/") and member.endswith("_config.json"):
                _check_payload_config(_json(data, member, name), member, name)
            elif member.startswith("models/"):
                _check_program(_json(data, member, name), name)
            elif member.startswith("data/sample_inputs/"):
                _check_plain_pickle(data, member, name)


def _json(data: bytes, member: str, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise ModelLoadError(f"model file {name} is not a loadable torch.export program ({member} is not JSON)") from None


def _check_payload_config(config: Any, member: str, name: str) -> None:
    section = "weights" if member.startswith("data/weights/") else "constants"
    entries = config.get("config") if isinstance(config, Mapping) else None
    if not isinstance(entries, Mapping):
        raise ModelLoadError(f"model file {name} is not a loadable torch.export program ({member} is malformed)")
    for key, meta in entries.items():
        if not isinstance(meta, Mapping) or meta.get("use_pickle"):
            raise _refuse(name, f"its {section} entry {key} is a pickled object, which loading would unpickle")
        if not _PAYLOAD_NAME[section].fullmatch(str(meta.get("path_name", ""))):
            raise _refuse(name, f"its {section} entry {key} is a {meta.get('path_name')} object, not a tensor")


def _check_plain_pickle(data: bytes, member: str, name: str) -> None:
    """Sample inputs: torch retries with weights_only=False when weights_only=True fails, so it must not fail."""
    if not data:
        return

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - with weights_only nothing ran; torch's fallback would run it
        found = _pickled_global(data)
        raise _refuse(name, f"its {member} holds code or objects{f' ({found})' if found else ''}") from None


def _check_program(program: Any, name: str) -> None:
    """Walk the program's JSON (and JSON nested in its strings) for what torch would resolve or eval."""
    stack: list[tuple[Any, int]] = [(program, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in ("__enum__", "default_factory_module"):
                    raise _refuse(name, f"it names a Python object to import ({key})")
                if key == "treespec_namedtuple_fields" and value:
                    raise _refuse(name, "its inputs or outputs are named tuples")
                if key == "target" and isinstance(value, str):
                    _check_target(value, name)
                elif key == "expr_str" and isinstance(value, str):
                    _check_expression(value, name)
                elif key == "type" and depth > 0 and ("children_spec" in item) and value not in _TREESPEC_TYPES:
                    raise _refuse(name, f"its inputs or outputs are of type {value}, not tuples, lists or dicts")
                stack.append((value, depth))
        elif isinstance(item, list):
            stack.extend((value, depth) for value in item)
        elif isinstance(item, str) and depth < 6 and item.lstrip()[:1] in ("[", "{"):
            try:
                stack.append((json.loads(item), depth + 1))
            except ValueError:
                pass  # text that merely starts with a bracket: torch does not decode it either


def _check_target(target: str, name: str) -> None:
    if _OP_TARGET.fullmatch(target):
        parts = target.split(".")
        if parts[2] in _FILE_NAMESPACES or _FILE_OPERATOR.search(parts[3]):
            raise _refuse(name, f"its graph calls {target}, an operator that reaches the file system")
        return
    if target in _PYTHON_TARGETS or _SYM_TARGET.fullmatch(target):
        return
    raise _refuse(name, f"its graph calls {target}, which is not a torch operator")


def _check_expression(text: str, name: str) -> None:
    if len(text) > _MAX_EXPR:
        raise _refuse(name, "a shape expression is too long")
    position = 0
    while position < len(text):
        match = _EXPR_TOKEN.match(text, position)
        if match is None:
            raise _refuse(name, f"a shape expression holds {text[position:position + 20]!r}")
        token = match.group()
        word = token.strip("'")
        if word[:1].isalpha() or word[:1] == "_":
            if word not in _SYMPY_NAMES and not _SYMBOL_NAME.fullmatch(word):
                raise _refuse(name, f"a shape expression names {word!r}")
        position = match.end()


def _check_graph_targets(program: Any, name: str) -> None:
    """After loading: every node calls a resolved function (a string target means torch did not know it)."""
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in getattr(graph, "nodes", ()):
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.op != "call_function" or isinstance(node.target, str):
                raise _refuse(name, f"its graph holds a {node.op} node ({node.target})")


# --- weights -----------------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict from a ``torch.save`` file (``weights_only=True``) or a ``.safetensors`` file.

    Common wrappers are removed: a dict holding the weights under
    ``state_dict``, ``model_state_dict``, ``model`` or ``net`` (next to an
    epoch, an optimiser state, ...), and a ``module.`` (DataParallel) or
    ``_orig_mod.`` (``torch.compile``) prefix on every key.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    state_dict : dict of str to Tensor
        On the CPU.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    ModelLoadError
        For a truncated or corrupted file, a pickle holding code or objects
        (refused; nothing runs), a file that is not a state_dict, a model file
        given as weights (TorchScript, export, wpgdkit checkpoint), an invalid
        safetensors file, or NaN/infinite weights.
    """
    from wpgdkit.inputs import input_file

    checked = input_file(path, what="weights")
    kind = model_file_kind(checked)
    if kind == "wpgdkit-checkpoint":
        raise ModelLoadError(f"weights: {path} is a wpgdkit checkpoint, which names its own architecture; give it "
                             f"as the model file (wpgdkit audit {path}, or --model {path}) instead of --weights")
    if kind in ("torchscript", "export"):
        what = "a TorchScript archive" if kind == "torchscript" else "a torch.export program"
        raise ModelLoadError(f"weights: {path} is {what}, a whole model, not a state_dict; give it as the model "
                             f"(--model {path}) instead of --weights")
    head = _head(checked)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        payload = _torch_load(checked, str(path))
    elif _looks_like_safetensors(head, checked.stat().st_size) or checked.suffix.lower() == ".safetensors":
        payload = _safetensors_load(checked, str(path))
    else:
        raise ModelLoadError(f"weights: {path} is not a state_dict file wpgdkit reads (torch.save output such as "
                             ".pt/.pth, or .safetensors)")
    return _as_state_dict(payload, str(path))


def _torch_load(path: Path, name: str) -> Any:
    if _head(path, 2) == b"PK":
        _check_crc(path, f"weights: {name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's advice on refused globals: our one line says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals it does not know; other unpickling failures are corruption.
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        global_name = found.group(1) if found else _pickled_global(path.read_bytes())
        if global_name:
            raise ModelLoadError(f"weights: {name} refused: it holds code or objects ({global_name}), not plain "
                                 "tensors; save model.state_dict() rather than the model") from None
        raise ModelLoadError(f"weights: {name} is not readable (truncated or not a torch file)") from None
    except Exception as exc:  # noqa: BLE001 - with weights_only nothing ran; any failure means unreadable
        raise ModelLoadError(f"weights: {name} is not readable (truncated or not a torch file: "
                             f"{type(exc).__name__})") from None


def _pickled_global(data: bytes) -> str | None:
    """The first global (``module.name``) a pickle would import, read with pickletools (nothing runs)."""
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                return arg.replace(" ", ".")
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - not a pickle (a zip), or a broken one: nothing to name
        return None
    return None


def _safetensors_load(path: Path, name: str) -> dict[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ModelLoadError(f"weights: {name} is a safetensors file; reading it needs the safetensors package: "
                             "pip install 'wpgdkit[safetensors]'") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors parses data only; any failure is a bad file
        raise ModelLoadError(f"weights: {name} is not a valid safetensors file ({_first_line(exc)})") from None


def _as_state_dict(payload: Any, name: str) -> dict[str, Any]:
    for _ in range(2):  # {"checkpoint": {"state_dict": ...}} nests at most this deep in practice
        if isinstance(payload, Mapping) and not _all_tensors(payload):
            inner = next((payload[key] for key in _STATE_DICT_WRAPPERS
                          if isinstance(payload.get(key), Mapping) and payload[key]), None)
            if inner is not None:
                payload = inner
    if not isinstance(payload, Mapping):
        raise ModelLoadError(f"weights: {name} holds a {type(payload).__name__}, not a state_dict (a dict of tensors)")
    if not payload:
        raise ModelLoadError(f"weights: {name} holds an empty dict, not a state_dict")
    odd = next(((k, v) for k, v in payload.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if odd is not None:
        keys = ", ".join(str(k) for k in list(payload)[:6])
        raise ModelLoadError(f"weights: {name} is not a state_dict: its entry {odd[0]!r} is a {type(odd[1]).__name__}, "
                             f"not a tensor (entries: {keys}{', ...' if len(payload) > 6 else ''}); wrappers "
                             f"understood: {', '.join(_STATE_DICT_WRAPPERS)}")
    state = dict(payload)
    for prefix in _KEY_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelLoadError(f"weights: {name} holds NaN or infinite values ({key})")
    return state


def _all_tensors(mapping: Mapping[Any, Any]) -> bool:
    return bool(mapping) and all(isinstance(v, torch.Tensor) for v in mapping.values())
