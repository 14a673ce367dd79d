"""Memory layout of convolutional models: channels-last where a measurement says it is faster.

A 4-D activation ``(N, C, H, W)`` can be stored channels-first (torch's
default, ``contiguous_format``) or channels-last (``channels_last``: the C
values of one pixel side by side). The numbers are the same; the kernels are
not. On a CPU, oneDNN's channels-last convolutions cut an attack step of the
small CNN to about 0.7 of its time, while a model without convolutions gains
nothing. Which layout wins depends on the network, the input size, the
device and the thread count, so it is measured, not assumed::

    fmt = preferred_memory_format(model, x_batch)           # times both layouts once (cached)
    model = apply_memory_format(model, fmt)
    x_adv = attack(to_memory_format(x_batch, fmt), y_batch)

Only the storage changes: every value is the same in either layout, and the
results agree to rounding (the two layouts' kernels sum in different orders,
so float32 logits may differ in the last bits). Importing this module does not
import torch (``MEMORY_FORMATS`` serves ``--help``); the functions do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor, nn

__all__ = [
    "MEMORY_FORMATS",
    "CHANNELS_LAST_MARGIN",
    "preferred_memory_format",
    "apply_memory_format",
    "to_memory_format",
    "resolve_memory_format",
    "memory_format_name",
    "clear_memory_format_cache",
    "memory_format_applied",
]

#: What ``--memory-format`` accepts: ``auto`` measures (:func:`preferred_memory_format`).
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")

#: channels-last is chosen only when it is at least this much faster (a share of the
#: channels-first time): near-ties keep torch's default layout, so that a noisy
#: measurement does not flip the layout, and the last bits of the results, between runs.
CHANNELS_LAST_MARGIN = 0.05

#: A pass slower than this (seconds) is timed once per layout, however many ``repeats`` were asked:
#: a Wide ResNet on a CPU takes seconds per pass, and the trial must stay small next to the audit.
_LONG_PASS_S = 1.0

_CACHE: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def preferred_memory_format(model: nn.Module, example: Tensor, *, train: bool = False,
                            repeats: int = 3) -> torch.memory_format:
    """The faster layout of ``model`` on inputs like ``example``: ``torch.contiguous_format`` or ``torch.channels_last``.

    Times, after one warm-up pass of each, ``repeats`` passes in each layout,
    alternating: a forward and the gradient with respect to the input (an
    attack step), or with ``train=True`` a forward in training mode and the
    gradient with respect to the parameters (a training step). channels-last
    is returned when its fastest pass beats the channels-first one by
    :data:`CHANNELS_LAST_MARGIN` or more. Passes slower than a second (a
    Wide ResNet on a CPU) are timed once per layout.

    Returns ``torch.contiguous_format`` at once, without timing, for inputs
    that are not 4-D, for models without a ``Conv2d`` (an MLP on images), and
    when either layout fails to run. The decision is cached in-process per
    (model class and structure, parameter shapes and dtypes, input shape,
    dtype, device, torch threads, ``train``): models of one architecture are
    measured once.

    The model is left as it was: its parameters and buffers are put back in
    their own layout (and, with ``train=True``, buffers such as batch-norm
    statistics to their values), each module's train/eval mode restored,
    parameters' ``.grad`` untouched and the random number state restored
    (dropout draws during the trial).

    Parameters
    ----------
    model : nn.Module
    example : Tensor
        A representative batch, on the model's device (the batch size matters:
        pass the batch the model will see, or a slice of it).
    train : bool, keyword-only, default=False
        Time a training step rather than an attack step.
    repeats : int, keyword-only, default=3
        Timed passes per layout (≥ 1).

    Raises
    ------
    WpgdkitError
        If ``repeats`` is not a whole number of at least 1.
    """
    import torch

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise WpgdkitError(f"repeats must be a whole number of at least 1, got {repeats!r}")
    if not isinstance(example, torch.Tensor) or example.dim() != 4 or not _has_conv2d(model):
        return torch.contiguous_format
    key = (_signature(model), tuple(example.shape), example.dtype, example.device, torch.get_num_threads(),
           bool(train))
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    fmt = _measure(model, example.detach(), train=bool(train), repeats=repeats)
    with _LOCK:
        if len(_CACHE) > 256:  # a few architectures per process; never grows without bound
            _CACHE.clear()
        _CACHE[key] = fmt
    return fmt


def apply_memory_format(model: nn.Module, fmt: torch.memory_format) -> nn.Module:
    """``model`` with its 4-D parameters and buffers stored in ``fmt`` (in place; the model is returned).

    Parameters keep their identity (an optimiser built on them stays valid);
    only their storage changes.
    """
    _check_format(fmt)
    return model.to(memory_format=fmt)


def to_memory_format(x: Tensor, fmt: torch.memory_format) -> Tensor:
    """``x`` stored in ``fmt`` where it is 4-D (a copy only if its layout differs); other tensors as they are."""
    _check_format(fmt)
    return x.contiguous(memory_format=fmt) if x.dim() == 4 else x


def resolve_memory_format(choice: str, model: nn.Module, example: Tensor, *,
                          train: bool = False) -> torch.memory_format:
    """The layout a ``--memory-format`` setting means for ``model``: ``auto`` measures, the others are forced.

    Raises
    ------
    WpgdkitError
        For a name outside :data:`MEMORY_FORMATS`, or ``channels_last`` with
        inputs that are not 4-D images ``(N, C, H, W)``.
    """
    import torch

    if choice not in MEMORY_FORMATS:
        raise WpgdkitError(f"unknown memory format {choice!r}; choose one of: {', '.join(MEMORY_FORMATS)}")
    if choice == "auto":
        return preferred_memory_format(model, example, train=train)
    if choice == "channels_last":
        if example.dim() != 4:
            raise WpgdkitError(f"memory format channels_last needs images (N, C, H, W); these inputs are "
                               f"{example.dim()}-D: use contiguous or auto")
        return torch.channels_last
    return torch.contiguous_format


def memory_format_name(fmt: torch.memory_format) -> str:
    """``"contiguous"`` or ``"channels_last"``: the name of a layout in :data:`MEMORY_FORMATS`."""
    import torch

    _check_format(fmt)
    return "channels_last" if fmt == torch.channels_last else "contiguous"


@contextmanager
def memory_format_applied(model: nn.Module, fmt: torch.memory_format) -> Iterator[nn.Module]:
    """``model`` in ``fmt`` inside the block; afterwards its parameters and buffers in their own storage again.

    For a model that belongs to the caller (``audit_model``): the layout is
    changed for the attack only. The values are never changed, so nothing
    but the storage is put back.
    """
    _check_format(fmt)
    params = [(p, p.data) for p in model.parameters()]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    try:
        yield apply_memory_format(model, fmt)
    finally:
        for p, data in params:
            p.data = data
        for m, name, b in buffers:
            m._buffers[name] = b


def clear_memory_format_cache() -> None:
    """Forget the decisions of :func:`preferred_memory_format` (e.g. after the machine's load changed)."""
    with _LOCK:
        _CACHE.clear()


# --- internals -------------------------------------------------------------------------------


def _check_format(fmt: Any) -> None:
    import torch

    if fmt not in (torch.contiguous_format, torch.channels_last):
        raise WpgdkitError(f"memory format must be torch.contiguous_format or torch.channels_last, got {fmt!r}")


def _has_conv2d(model: nn.Module) -> bool:
    from torch import nn

    # A TorchScript module keeps its class's name only as original_name.
    return any(isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d" for m in model.modules())


def _signature(model: nn.Module) -> tuple[Any, ...]:
    """What the layout decision depends on in the model: its class, its module tree, its parameters' shapes and dtypes."""
    kind = type(model)
    modules = tuple((name, type(m).__qualname__, getattr(m, "original_name", None))
                    for name, m in model.named_modules())
    params = tuple((name, tuple(p.shape), p.dtype) for name, p in model.named_parameters())
    return kind.__module__, kind.__qualname__, modules, params


def _measure(model: nn.Module, example: Tensor, *, train: bool, repeats: int) -> torch.memory_format:
    import torch

    formats = (torch.contiguous_format, torch.channels_last)
    times: dict[Any, list[float]] = {fmt: [] for fmt in formats}
    devices = [example.device] if example.device.type == "cuda" else []
    try:
        with _restored(model, train=train), torch.random.fork_rng(devices=devices), torch.enable_grad():
            for round_ in range(repeats + 1):  # round 0 warms up (oneDNN primitives, allocator)
                # Alternate which layout goes first, so that a slow stretch of a shared machine hits both alike.
                for fmt in formats if round_ % 2 == 0 else formats[::-1]:
                    model.to(memory_format=fmt)
                    elapsed = _timed_pass(model, example.contiguous(memory_format=fmt), train=train)
                    if round_ > 0:
                        times[fmt].append(elapsed)
                if round_ > 0 and min(min(t) for t in times.values()) > _LONG_PASS_S:
                    break  # a large model on a CPU: one timed pass each is enough against the margin
    except Exception:  # noqa: BLE001 - a layout the model cannot run in: keep torch's default
        return torch.contiguous_format
    first, last = (min(times[fmt]) for fmt in formats)
    return torch.channels_last if last <= (1 - CHANNELS_LAST_MARGIN) * first else torch.contiguous_format


def _timed_pass(model: nn.Module, x: Tensor, *, train: bool) -> float:
    import torch

    sync = x.device.type == "cuda"
    if sync:
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    if train:
        params = [p for p in model.parameters() if p.requires_grad]
        out = model(x)
        if params:
            torch.autograd.grad(_scalar(out), params)
    else:
        x = x.requires_grad_(True)
        torch.autograd.grad(_scalar(model(x)), x)
    if sync:
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - start


def _scalar(out: Any) -> Tensor:
    import torch

    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        raise TypeError("the model's output is not one floating-point tensor")
    return out.float().sum()


@contextmanager
def _restored(model: nn.Module, *, train: bool) -> Iterator[None]:
    """The trial's mode inside the block; after it, each module's mode and every parameter's and buffer's storage."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.data) for p in model.parameters()]
    # Buffers: the original objects (layout changes replace them) and, for a training trial that
    # updates them in place (batch-norm statistics), their values.
    buffers = [(m, name, b, b.detach().clone() if train else None)
               for m in model.modules() for name, b in m._buffers.items() if b is not None]
    model.train(train)
    try:
        yield
    finally:
        for p, data in params:
            p.data = data
        for m, name, b, values in buffers:
            if values is not None:
                b.copy_(values)
            m._buffers[name] = b
        for m, mode in modes:
            if m.training != mode:
                m.train(mode)
