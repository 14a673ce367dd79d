"""AutoAttack (Croce & Hein, 2020) through torchattacks, for audits of image models.

``wpgdkit audit --attack autoattack`` runs torchattacks' ``AutoAttack`` in
its ``standard`` version: APGD on cross-entropy, targeted APGD (DLR loss),
targeted FAB and the Square attack, each tried on the points the previous
ones did not fool. It needs the optional dependency::

    pip install 'wpgdkit[autoattack]'

Notes
-----
- Only ``eps``, ``norm`` and ``bounds`` of the
  :class:`~wpgdkit.attacks.ThreatModel` apply. ``steps``, ``step_size`` and ``random_start`` do not: AutoAttack is
  parameter-free and brings its own schedules (in torchattacks 3.5:
  10 iterations for APGD, APGD-T and FAB-T, APGD-T and FAB-T over all K − 1
  target classes, 5000 queries for Square). These are torchattacks' defaults,
  lighter than the 100 iterations of the reference implementation.
- The inputs must be images in ``[0, 1]``, batched as ``(N, C, H, W)``:
  AutoAttack clips to that range. Data without bounds (``toy``) is refused.
- The model is put in eval mode for the attack and every submodule's own mode
  is restored afterwards. Its parameters are taken out of autograd meanwhile
  (FAB calls ``.backward()``), so their ``.grad`` is left as it was.
- torchattacks seeds torch's global RNG from ``seed``; the caller's global RNG
  state (CPU, and the current CUDA device when CUDA is initialised) is saved
  and restored around the call, so an audit does not disturb it.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import Tensor, nn

from wpgdkit.attacks.base import Attack
from wpgdkit.attacks.pgd import eval_mode
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError

__all__ = ["AutoAttack", "autoattack_batch", "check_autoattack", "AUTOATTACK_NORMS", "MISSING_DEPENDENCY"]

#: Our norm names -> torchattacks'.
AUTOATTACK_NORMS = {"linf": "Linf", "l2": "L2"}

MISSING_DEPENDENCY = "the autoattack attack needs torchattacks: pip install 'wpgdkit[autoattack]'"


def _import_torchattacks():
    try:
        import torchattacks
    except ImportError:  # also a None entry in sys.modules
        raise WpgdkitError(MISSING_DEPENDENCY) from None
    return torchattacks


def _check_bounds(bounds) -> None:
    per_feature = bounds is not None and isinstance(bounds[0], (tuple, list))
    if bounds is None or per_feature or tuple(float(b) for b in bounds) != (0.0, 1.0):
        found = ("data without bounds (e.g. toy)" if bounds is None else "data with per-feature bounds" if per_feature
                 else f"data in [{bounds[0]:g}, {bounds[1]:g}]")
        raise WpgdkitError(f"the autoattack attack needs image data in [0, 1], got {found}")


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return fallback


@contextlib.contextmanager
def _keep_global_rng(device: torch.device):
    """Restore torch's global RNG state (CPU, and the CUDA devices torchattacks may seed) after the block."""
    devices: set[int] = set()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        devices.add(torch.cuda.current_device())  # torch.cuda.manual_seed seeds the current device
        if device.type == "cuda" and device.index is not None:
            devices.add(device.index)
    with torch.random.fork_rng(devices=sorted(devices)):
        yield


@contextlib.contextmanager
def _frozen_parameters(model: nn.Module):
    """Parameters out of autograd inside the block: FAB calls ``.backward()``, which would fill ``p.grad``."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def check_autoattack(threat: ThreatModel) -> None:
    """Refuse, before any work, what AutoAttack cannot run: data outside [0, 1], other norms, no torchattacks."""
    _check_bounds(threat.bounds)
    if threat.norm not in AUTOATTACK_NORMS:
        raise WpgdkitError(f"the autoattack attack supports the norms {', '.join(AUTOATTACK_NORMS)}, got {threat.norm!r}")
    _import_torchattacks()


def autoattack_batch(model: nn.Module, x: Tensor, y: Tensor, *, threat: ThreatModel, seed: int) -> Tensor:
    """AutoAttack's adversarial examples for one batch.

    Parameters
    ----------
    model : nn.Module
        Maps images (N, C, H, W) in [0, 1] to logits (N, K), float32. Put in
        eval mode during the attack; each submodule's mode is restored after.
    x : Tensor of shape (N, C, H, W), floating point, in [0, 1]
    y : Tensor of shape (N,), int64
    threat : ThreatModel, keyword-only
        Its ``eps`` and ``norm`` (``"linf"`` or ``"l2"``) set the budget, and
        ``bounds`` must be ``(0, 1)``; ``steps``, ``step_size``,
        ``random_start`` do not apply (AutoAttack has its own schedules).
    seed : int, keyword-only
        Seed of AutoAttack's random choices (its restarts' starting points and
        Square's search); the caller's global RNG state is left as it was.

    Returns
    -------
    x_adv : Tensor of the shape, dtype and device of ``x``
        Detached; ``‖x_adv − x‖ ≤ eps`` in the norm (up to float32 rounding)
        and inside [0, 1]. A point
        no component attack fools is returned unchanged.

    Raises
    ------
    WpgdkitError
        If torchattacks is not installed, the data is not in [0, 1], the
        batch is not (N, C, H, W), or the norm is not ℓ∞ or ℓ2.
    """
    check_autoattack(threat)
    if not x.is_floating_point():
        raise WpgdkitError(f"inputs must be floating point, got {x.dtype}")
    if x.dim() != 4:
        raise WpgdkitError(f"the autoattack attack needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise WpgdkitError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    torchattacks = _import_torchattacks()  # cached by Python after the check's import
    if x.shape[0] == 0:
        return x.detach().clone()

    device = _model_device(model, x.device)
    images = x.detach().to(device=device, dtype=torch.float32)
    labels = y.detach().to(device=device, dtype=torch.int64)
    with eval_mode(model), _frozen_parameters(model), _keep_global_rng(device), torch.enable_grad():
        with torch.no_grad():
            num_classes = int(model(images[:1]).shape[1])
        # torchattacks prints (and does not raise) when the model has no parameters.
        with contextlib.redirect_stdout(io.StringIO()):
            attack = torchattacks.AutoAttack(model, norm=AUTOATTACK_NORMS[threat.norm], eps=float(threat.eps),
                                             version="standard", n_classes=num_classes, seed=int(seed))
        attack.set_device(device)
        # The model is already in eval mode here, so torchattacks' own mode
        # switch (which would call model.train() on the whole model) is a no-op.
        x_adv = attack(images, labels)
    return x_adv.detach().to(device=x.device, dtype=x.dtype)


class AutoAttack(Attack):
    """torchattacks' standard AutoAttack as an attack object: ``AutoAttack(model, eps=8/255)(x, y)``.

    Parameters
    ----------
    model : nn.Module
    eps : float, keyword-only, default=8/255
    norm : {"linf", "l2"}, keyword-only, default="linf"
    threat : ThreatModel, keyword-only, optional
        Instead of ``eps`` and ``norm``; only its ε, norm and bounds apply.

    Each call draws AutoAttack's seed from the generator (or from the seeds),
    so that runs are reproducible; ``threat.restarts`` repeats the whole
    attack with new seeds and keeps each point's worst.
    """

    name = "autoattack"

    def __init__(self, model: nn.Module, *, eps: float = 8 / 255, norm: str = "linf",
                 threat: ThreatModel | None = None) -> None:
        threat = threat if threat is not None else ThreatModel(eps=eps, norm=norm)
        check_autoattack(threat)
        super().__init__(model, threat)

    def perturb(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device if generator else None))
        return autoattack_batch(self.model, x, y, threat=self.threat, seed=seed)
