"""Micro-benchmarks to run on your own hardware (``wpgdkit bench``).

Each benchmark is registered by name and turns a :class:`BenchConfig` into
:class:`BenchRow` s, one per case, timing "ours" against a reference:

``loss``
    The closed-form Wasserstein distance to a one-hot target (Lemma 4, one
    gather and a dot product: :func:`wpgdkit.losses.wasserstein_loss`) on a
    batch, against POT solving the same problems one by one (``ot.emd2``, and
    ``ot.sinkhorn2`` at ``reg = 0.01·max C``), for K = 10, 100, 200 on CPU in
    float64, with the values' agreement.
``attack-step``
    Time per inner step of WPGD (Wasserstein loss, p = 2.5) against PGD
    (cross-entropy) with :func:`wpgdkit.attacks.pgd_attack` on a small CNN
    (1×28×28) and a WRN-16-10 (3×32×32).
``torchattacks``
    The toolkit's PGD (:func:`wpgdkit.audit.attack_batch`) against
    ``torchattacks.PGD`` with the same model, points, budget, step and random
    start: time per pass and adversarial accuracy of each. Skipped when
    torchattacks is not installed.
``wordnet``
    Building the WordNet ``path`` metric for 200 classes (Tiny-ImageNet) and
    1,000 (a seeded sample of noun synsets) with
    :func:`~wpgdkit.labelmetric.wordnet_distance.wordnet_distance_matrix`,
    against NLTK's pairwise ``shortest_path_distance``. Skipped when WordNet
    cannot be loaded.

Times are medians over ``repeats`` calls after ``warmup`` calls; when two or
more things are compared, their calls alternate (A B A B ...) so that a slow
stretch of a shared machine hits each alike. ``ratio`` is always
``reference_s / ours_s``: above 1, ours is faster.

>>> from wpgdkit.bench import BenchConfig, run_benchmarks
>>> report = run_benchmarks(BenchConfig(quick=True, repeats=3), ["loss"])  # doctest: +SKIP
>>> [(r.case, r.reference, round(r.ratio)) for r in report.rows]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import math
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from wpgdkit.errors import WpgdkitError
from wpgdkit.registry import Registry
from wpgdkit.training.distributed import DEVICE_NAMES, resolve_device

__all__ = [
    "BENCH_SCHEMA",
    "BenchConfig",
    "BenchRow",
    "BenchReport",
    "Benchmark",
    "register_benchmark",
    "get_benchmark",
    "list_benchmarks",
    "run_benchmarks",
    "bench_header",
    "median_time",
    "sample_times",
    "interleaved_times",
    "relative_error",
    "random_metric",
    "sample_noun_synsets",
    "bench_loss",
    "bench_attack_step",
    "bench_torchattacks",
    "bench_wordnet",
]

BENCH_SCHEMA = "wpgdkit-bench/1"

#: Regularisation of the Sinkhorn reference, relative to max(C^p).
SINKHORN_REG = 0.01
#: Agreement expected of ``ot.emd2`` (as in :func:`wpgdkit.labelmetric.ot_check.reference_check`).
EMD_TOLERANCE = 1e-9
#: Agreement expected of Sinkhorn's transport cost (ibid.).
SINKHORN_TOLERANCE = 1e-6
#: Denominator floor of :func:`relative_error`, relative to the scale (ibid.).
RELATIVE_FLOOR = 1e-6


# --- configuration and results -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """How the benchmarks run.

    Attributes
    ----------
    repeats : int, default=5
        Timed calls per measurement (≥ 1); the median is reported.
    warmup : int, default=1
        Untimed calls first (≥ 0): allocator, oneDNN/cuDNN kernels, caches.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the attacks run (``auto``: CUDA when available). The loss and
        WordNet benchmarks always run on the CPU (POT and NLTK do).
    quick : bool, default=False
        Small sizes for a smoke run of a few seconds: K = 10, 100 and batch 16
        for ``loss``; batch 8 and no WRN-16-10 for ``attack-step``; 64 points
        and 20 training steps for ``torchattacks``; 200 and 100 classes and 200
        NLTK pairs for ``wordnet``. The numbers are not meant to be quoted.
    seed : int, default=0
        Seeds the random metrics, inputs, models and samples.
    batch : int, default=128
        Batch of the loss benchmark, of the small CNN and of the attacks
        compared with torchattacks (≥ 1).
    threads : int or None, default=None
        ``torch.set_num_threads`` for the run (restored after); None keeps
        torch's choice.
    """

    repeats: int = 5
    warmup: int = 1
    device: str = "auto"
    quick: bool = False
    seed: int = 0
    batch: int = 128
    threads: int | None = None

    def __post_init__(self) -> None:
        if _not_int(self.repeats) or self.repeats < 1:
            raise WpgdkitError(f"--repeats must be at least 1, got {self.repeats!r}")
        if _not_int(self.warmup) or self.warmup < 0:
            raise WpgdkitError(f"--warmup must be at least 0, got {self.warmup!r}")
        if _not_int(self.batch) or self.batch < 1:
            raise WpgdkitError(f"--batch must be at least 1, got {self.batch!r}")
        if self.threads is not None and (_not_int(self.threads) or self.threads < 1):
            raise WpgdkitError(f"--threads must be at least 1, got {self.threads!r}")
        if self.device not in DEVICE_NAMES:
            raise WpgdkitError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICE_NAMES)}")

    def torch_device(self) -> torch.device:
        """The resolved device; WpgdkitError for ``cuda`` without a GPU."""
        return resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _not_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


@dataclass(frozen=True)
class BenchRow:
    """One measured (or skipped) case.

    Attributes
    ----------
    benchmark : str
        Registry name (``loss``, ``attack-step``, ...).
    case : str
        What was measured, with its size (``K=100, batch 128, p=1``).
    ours : str
        The toolkit's side (``closed form``, ``WPGD``, ...).
    reference : str or None
        What it is compared with (``ot.emd2 loop``, ``PGD``, ...).
    ours_s, reference_s : float or None
        Median seconds per unit (``unit``); None when skipped.
    ratio : float or None
        ``reference_s / ours_s``: above 1, ours is faster.
    agreement : float or None
        Largest relative difference between the two sides' values
        (:func:`relative_error`), where they compute the same numbers.
    status : {"ok", "skipped"}
    note : str
        A short remark, or why the case was skipped.
    unit : str
        What one timed call covers (``batch``, ``step``, ``pass``, ``build``).
    extra : dict
        Benchmark-specific values (plain JSON types).
    """

    benchmark: str
    case: str
    ours: str
    reference: str | None
    ours_s: float | None = None
    reference_s: float | None = None
    ratio: float | None = None
    agreement: float | None = None
    status: str = "ok"
    note: str = ""
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def timed(cls, benchmark: str, case: str, ours: str, reference: str | None, ours_s: float,
              reference_s: float | None, **kwargs: Any) -> BenchRow:
        """A measured row; ``ratio`` is computed from the two times."""
        ratio = reference_s / ours_s if reference_s is not None and ours_s > 0 else None
        return cls(benchmark, case, ours, reference, ours_s=ours_s, reference_s=reference_s, ratio=ratio, **kwargs)

    @classmethod
    def skipped(cls, benchmark: str, case: str, ours: str, reference: str | None, reason: str, **kwargs: Any) -> BenchRow:
        """A case that could not run here, with the reason as its note."""
        return cls(benchmark, case, ours, reference, status="skipped", note=reason, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchReport:
    """Everything one :func:`run_benchmarks` call measured."""

    header: dict[str, Any]
    config: BenchConfig
    benchmarks: list[str]
    rows: list[BenchRow]
    durations_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``schema``, ``header``, ``config``, ``benchmarks``, ``durations_s`` and ``rows`` (see :class:`BenchRow`)."""
        return {
            "schema": BENCH_SCHEMA,
            "header": dict(self.header),
            "config": self.config.to_dict(),
            "benchmarks": list(self.benchmarks),
            "durations_s": dict(self.durations_s),
            "rows": [row.to_dict() for row in self.rows],
        }


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: its name, a one-line description and the function that runs it."""

    name: str
    description: str
    run: Callable[[BenchConfig], list[BenchRow]]


_BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def register_benchmark(name: str, description: str) -> Callable[[Callable[[BenchConfig], list[BenchRow]]], Callable]:
    """Decorator adding ``fn(config) -> list[BenchRow]`` under ``name``; ValueError if taken."""

    def decorate(fn: Callable[[BenchConfig], list[BenchRow]]) -> Callable[[BenchConfig], list[BenchRow]]:
        _BENCHMARKS.register(name, Benchmark(name, description, fn))
        return fn

    return decorate


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; UnknownNameError listing the valid names otherwise."""
    return _BENCHMARKS.get(name)


def list_benchmarks() -> list[str]:
    """Registered benchmark names, in registration order."""
    return _BENCHMARKS.names()


# --- timing ----------------------------------------------------------------------------------------


def _synchronize(sync: bool | torch.device | str) -> None:
    if isinstance(sync, (torch.device, str)):
        if torch.device(sync).type == "cuda":
            torch.cuda.synchronize(sync)
    elif sync:
        torch.cuda.synchronize()


def sample_times(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
                 sync: bool | torch.device | str = False) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones.

    ``sync``: True (or a CUDA device) waits for the GPU before starting and
    before stopping the clock, so queued kernels are counted.
    """
    return interleaved_times({"fn": fn}, repeats=repeats, warmup=warmup, sync=sync)["fn"]


def median_time(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
                sync: bool | torch.device | str = False) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` (as :func:`sample_times`)."""
    return statistics.median(sample_times(fn, repeats=repeats, warmup=warmup, sync=sync))


def interleaved_times(
    fns: Mapping[str, Callable[[], Any]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    sync: bool | torch.device | str = False,
    on_result: Callable[[str, Any], None] | None = None,
) -> dict[str, list[float]]:
    """Times of several functions whose calls alternate (A B A B ...).

    Parameters
    ----------
    fns : mapping of name to callable
    repeats, warmup, sync
        As in :func:`sample_times`; the warm-up calls alternate too.
    on_result : callable, optional
        ``on_result(name, value)`` with each timed call's return value, called
        outside the timed region (e.g. to score adversarial examples).

    Returns
    -------
    times : dict of name to list of float
        Seconds of each timed call, in order.
    """
    if repeats < 1 or warmup < 0:
        raise WpgdkitError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            _synchronize(sync)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _synchronize(sync)
            start = time.perf_counter()
            value = fn()
            _synchronize(sync)
            times[name].append(time.perf_counter() - start)
            if on_result is not None:
                on_result(name, value)
    return times


def relative_error(ours: np.ndarray, reference: np.ndarray, *, scale: float) -> float:
    """Largest ``|ours − reference| / max(|reference|, 1e-6·scale)`` (0 for no values).

    As in :func:`wpgdkit.labelmetric.ot_check.reference_check`: the floor keeps
    a distance made of rounding-sized terms (a nearly one-hot prediction) from
    counting as a large relative error.
    """
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.size == 0:
        return 0.0
    denom = np.maximum(np.abs(reference), RELATIVE_FLOOR * max(float(scale), np.finfo(float).tiny))
    rel = np.where(ours == reference, 0.0, np.abs(ours - reference) / denom)
    return float(rel.max())


# --- header --------------------------------------------------------------------------------------


def _version(module: str) -> str | None:
    if module in sys.modules and sys.modules[module] is None:  # blocked, as tests do
        return None
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def bench_header(device: torch.device) -> dict[str, Any]:
    """Versions, machine, device and thread count, for the table's header and the JSON.

    Keys: ``wpgdkit``, ``torch``, ``numpy``, ``pot``, ``torchattacks`` (None
    when absent), ``python``, ``platform``, ``cpu``, ``cpu_count``,
    ``cpus_usable`` (this process's affinity), ``threads``
    (``torch.get_num_threads()``), ``device``, ``device_name`` and
    ``load_average`` (1, 5, 15 min; None where unsupported).
    """
    from wpgdkit import __version__

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    cpu = _cpu_name()
    return {
        "wpgdkit": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pot": _version("pot"),
        "torchattacks": _version("torchattacks"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "load_average": load,
    }


# --- running -------------------------------------------------------------------------------------


def run_benchmarks(
    config: BenchConfig,
    names: Sequence[str] | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> BenchReport:
    """Run the named benchmarks (all by default) in registry order of ``names``.

    Parameters
    ----------
    config : BenchConfig
    names : sequence of str, optional
        Benchmarks to run, each once, in the order given; None runs all.
    progress : callable, optional
        ``progress(name, index, total)`` before each benchmark starts.

    Returns
    -------
    report : BenchReport

    Raises
    ------
    WpgdkitError
        An unknown name (UnknownNameError listing the valid ones), or
        ``--device cuda`` without a GPU, before anything runs.
    """
    selected = list(dict.fromkeys(names)) if names is not None else list_benchmarks()
    if not selected:
        raise WpgdkitError("no benchmark selected")
    benchmarks = [get_benchmark(name) for name in selected]
    device = config.torch_device()
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        header = bench_header(device)
        rows: list[BenchRow] = []
        durations: dict[str, float] = {}
        for index, benchmark in enumerate(benchmarks):
            if progress is not None:
                progress(benchmark.name, index, len(benchmarks))
            start = time.perf_counter()
            rows.extend(benchmark.run(config))
            durations[benchmark.name] = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
    return BenchReport(header=header, config=config, benchmarks=selected, rows=rows, durations_s=durations)


# --- loss: closed form vs POT --------------------------------------------------------------------


def random_metric(k: int, *, seed: int = 0, dim: int = 3) -> np.ndarray:
    """Euclidean distances between ``k`` random points of the unit cube: a valid metric."""
    points = np.random.default_rng(seed).random((k, dim))
    return np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))


@register_benchmark("loss", "closed-form Wasserstein loss vs ot.emd2 / ot.sinkhorn2 (POT), CPU float64")
def bench_loss(config: BenchConfig) -> list[BenchRow]:
    """Closed form ``(C^p)[y] · softmax(z)`` on a batch vs POT on each row.

    Random logits (scale 3) and targets; ``C`` the distances between random
    points (a valid metric), p = 1. Ours includes the softmax; POT gets the
    probabilities precomputed. Sinkhorn is POT's default solver at
    ``reg = 0.01·max(C^p)``: the transport plan to a one-hot marginal is
    forced, so ``sinkhorn2``'s value (the plan's transport cost) is exact up to
    convergence; the entropic objective would be lower by ``reg·H(q)``,
    reported as ``entropic_gap_mean``.
    """
    import ot

    from wpgdkit.labelmetric.ot_check import entropy
    from wpgdkit.losses import wasserstein_loss

    ks = (10, 100) if config.quick else (10, 100, 200)
    batch = min(config.batch, 16) if config.quick else config.batch
    p = 1.0
    rows = []
    for k in ks:
        rng = np.random.default_rng([config.seed, k])
        cost_p = random_metric(k, seed=int(rng.integers(2**31))) ** p
        scale = float(cost_p.max())
        reg = SINKHORN_REG * scale
        logits = torch.from_numpy(rng.normal(scale=3.0, size=(batch, k)))
        target = torch.from_numpy(rng.integers(0, k, size=batch))
        cost_t = torch.from_numpy(cost_p)
        q = torch.softmax(logits, dim=1).numpy()
        t = target.numpy()
        onehots = np.eye(k)

        def ours() -> np.ndarray:
            return wasserstein_loss(logits, target, cost_t, reduction="none").numpy()

        def emd() -> np.ndarray:
            return np.array([ot.emd2(onehots[t[n]], q[n], cost_p) for n in range(batch)])

        def sinkhorn() -> np.ndarray:
            # Plain Sinkhorn divides by the zeros of the one-hot marginal on its way (harmlessly).
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                return np.array([float(ot.sinkhorn2(onehots[t[n]], q[n], cost_p, reg)) for n in range(batch)])

        values = {"ours": ours(), "emd": emd(), "sinkhorn": sinkhorn()}
        times = interleaved_times({"ours": ours, "emd": emd, "sinkhorn": sinkhorn},
                                  repeats=config.repeats, warmup=config.warmup)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        case = f"K={k}, batch {batch}, p={p:g}"
        common = {"num_classes": k, "batch": batch, "p": p, "dtype": "float64", "device": "cpu"}
        emd_err = relative_error(values["ours"], values["emd"], scale=scale)
        rows.append(BenchRow.timed(
            "loss", case, "closed form", "ot.emd2 loop", med["ours"], med["emd"], agreement=emd_err, unit="batch",
            note=f"{med['emd'] / batch * 1e3:.2f} ms per ot.emd2 call",
            extra={**common, "tolerance": EMD_TOLERANCE, "within_tolerance": emd_err <= EMD_TOLERANCE,
                   "ours_times_s": times["ours"], "reference_times_s": times["emd"]},
        ))
        sk_err = relative_error(values["ours"], values["sinkhorn"], scale=scale)
        gap = float(reg * entropy(q).mean())
        rows.append(BenchRow.timed(
            "loss", case, "closed form", "ot.sinkhorn2 loop", med["ours"], med["sinkhorn"], agreement=sk_err,
            unit="batch",
            note=f"reg {SINKHORN_REG:g}·max C; transport cost (entropic objective {gap:.2g} lower)",
            extra={**common, "reg": reg, "reg_relative": SINKHORN_REG, "entropic_gap_mean": gap,
                   "tolerance": SINKHORN_TOLERANCE, "within_tolerance": sk_err <= SINKHORN_TOLERANCE,
                   "ours_times_s": times["ours"], "reference_times_s": times["sinkhorn"]},
        ))
    return rows


# --- attack-step: WPGD vs PGD --------------------------------------------------------------------

_STEP_MODELS = {"small-cnn": (1, 28, 28), "wrn-16-10": (3, 32, 32)}
_WRN_CPU_BATCH = 4
_WRN_CPU_REPEATS = 3


@register_benchmark("attack-step", "WPGD vs PGD time per inner step on small-cnn and wrn-16-10")
def bench_attack_step(config: BenchConfig) -> list[BenchRow]:
    """Time per step of :func:`~wpgdkit.attacks.pgd_attack` with the Wasserstein loss vs cross-entropy.

    K = 10 classes, a random valid metric, p = 2.5, ℓ∞ ε = 8/255, no random
    start, random inputs. Small CNN: batch ``config.batch`` (quick: 8), 2 steps
    per timed call (quick: 1). WRN-16-10: on a CPU batch 4, 1 step per call
    and at most 3 repeats (one step takes seconds); on CUDA batch
    ``config.batch``; left out by ``quick``.
    """
    from wpgdkit.attacks import PGDConfig, pgd_attack
    from wpgdkit.losses import WassersteinLoss
    from wpgdkit.models import count_parameters, create_model

    device = config.torch_device()
    p, k = 2.5, 10
    rows = []
    for name, shape in _STEP_MODELS.items():
        repeats, warmup = config.repeats, config.warmup
        if name == "small-cnn":
            batch, steps = (min(config.batch, 8), 1) if config.quick else (config.batch, 2)
        else:
            if config.quick:
                rows.append(BenchRow.skipped("attack-step", name, "WPGD", "PGD",
                                             "left out by --quick (seconds per step on a CPU)"))
                continue
            batch, steps = (config.batch, 2) if device.type == "cuda" else (_WRN_CPU_BATCH, 1)
            if device.type != "cuda":
                repeats, warmup = min(repeats, _WRN_CPU_REPEATS), min(warmup, 1)
        torch.manual_seed(config.seed)
        model = create_model(name, num_classes=k, input_shape=shape).to(device)
        g = torch.Generator().manual_seed(config.seed + 1)
        x = torch.rand(batch, *shape, generator=g).to(device)
        y = torch.randint(0, k, (batch,), generator=g).to(device)
        pgd = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=steps, random_start=False)
        wasserstein = WassersteinLoss(torch.from_numpy(random_metric(k, seed=config.seed)).float(), p=p).to(device)
        times = interleaved_times(
            {"pgd": lambda: pgd_attack(model, x, y, config=pgd),
             "wpgd": lambda: pgd_attack(model, x, y, config=pgd, loss_fn=wasserstein)},
            repeats=repeats, warmup=warmup, sync=device,
        )
        per_step = {key: [t / steps for t in ts] for key, ts in times.items()}
        pgd_s, wpgd_s = (statistics.median(per_step[key]) for key in ("pgd", "wpgd"))
        paired = statistics.median(w / q for q, w in zip(per_step["pgd"], per_step["wpgd"]))
        rows.append(BenchRow.timed(
            "attack-step", f"{name}, {'×'.join(map(str, shape))}, batch {batch}", "WPGD", "PGD", wpgd_s, pgd_s,
            unit="step",
            note=f"WPGD/PGD {wpgd_s / pgd_s:.3f}; {repeats}×{steps} steps",
            extra={"model": name, "parameters": count_parameters(model), "input_shape": list(shape), "batch": batch,
                   "steps_per_call": steps, "repeats": repeats, "warmup": warmup, "num_classes": k, "p": p,
                   "eps": 8 / 255, "device": str(device), "wpgd_over_pgd": wpgd_s / pgd_s,
                   "paired_ratio_median": paired, "wpgd_min_step_s": min(per_step["wpgd"]),
                   "pgd_min_step_s": min(per_step["pgd"]), "wpgd_step_times_s": per_step["wpgd"],
                   "pgd_step_times_s": per_step["pgd"]},
        ))
    return rows


# --- torchattacks: our PGD vs theirs -------------------------------------------------------------

_TA_EPS = 8 / 255
_TA_STEPS = 10
_TA_MODEL = "mlp"
_TA_LR, _TA_MOMENTUM = 0.05, 0.9
_FM_SHAPE = (1, 28, 28)


def _train_fast_at(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, batch: int, eps: float,
                   seed: int) -> None:
    """"Fast" adversarial training (Wong et al., 2020): FGSM from a random start, step 1.25 ε.

    Plain SGD with momentum written out: constructing a ``torch.optim``
    optimiser imports ``torch._dynamo``, seconds that would dwarf a quick run.
    """
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    velocity = [torch.zeros_like(p) for p in params]
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        xb, yb = x[index], y[index]
        start = ((xb + (2 * torch.rand(xb.shape, generator=g).to(xb.device) - 1) * eps).clamp(0, 1)).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(start), yb), start)
        adv = (xb + (start.detach() + 1.25 * eps * grad.sign() - xb).clamp(-eps, eps)).clamp(0, 1)
        grads = torch.autograd.grad(F.cross_entropy(model(adv), yb), params)
        with torch.no_grad():
            for p, v, dp in zip(params, velocity, grads):
                v.mul_(_TA_MOMENTUM).add_(dp)
                p.add_(v, alpha=-_TA_LR)
    model.eval()


def _torchattacks_setup(config: BenchConfig, device: torch.device, points: int, train_steps: int):
    """(model, x, y, description): Fashion-MNIST and a quickly trained MLP, or random images as a fallback."""
    from wpgdkit.datasets import load_tensors
    from wpgdkit.models import create_model, dataset_normalization

    torch.manual_seed(config.seed)
    try:
        x_train, y_train = load_tensors("fashion-mnist", "train", limit=max(train_steps * 128, 1000), seed=config.seed)
        x, y = load_tensors("fashion-mnist", "test", limit=points, seed=config.seed)
    except WpgdkitError as exc:
        model = create_model(_TA_MODEL, num_classes=10, input_shape=_FM_SHAPE).to(device).eval()
        g = torch.Generator().manual_seed(config.seed)
        x = torch.rand(points, *_FM_SHAPE, generator=g).to(device)
        with torch.no_grad():
            y = model(x).argmax(dim=1)
        reason = " ".join(str(exc).split())[:120]
        return model, x, y, {"data": "random images", "model": f"{_TA_MODEL}, untrained; labels = its own predictions",
                             "why_not_fashion_mnist": reason}
    mean, std = dataset_normalization("fashion-mnist")
    model = create_model(_TA_MODEL, num_classes=10, input_shape=_FM_SHAPE, mean=mean, std=std).to(device)
    start = time.perf_counter()
    _train_fast_at(model, x_train.to(device), y_train.to(device), steps=train_steps, batch=128, eps=_TA_EPS,
                   seed=config.seed)
    return model, x.to(device), y.to(device), {
        "data": "fashion-mnist test",
        "model": f"{_TA_MODEL} trained here: FGSM-RS ε=8/255, {train_steps} steps of 128 Fashion-MNIST images",
        "train_s": time.perf_counter() - start,
    }


@register_benchmark("torchattacks", "the toolkit's PGD vs torchattacks.PGD: time and adversarial accuracy")
def bench_torchattacks(config: BenchConfig) -> list[BenchRow]:
    """:func:`wpgdkit.audit.attack_batch` (``pgd``) vs ``torchattacks.PGD``, same model, points and budget.

    ℓ∞ ε = 8/255, 10 steps of 2.5 ε / 10, random start, clamp to [0, 1]. The
    model is the toolkit's ``mlp`` trained here in seconds with "fast"
    adversarial training (FGSM from a random start) on 300 batches of
    Fashion-MNIST (quick: 20), attacked on 512 test points (quick: 64) in
    batches of ``config.batch``. Without Fashion-MNIST: random images and an
    untrained MLP whose own predictions are the labels (clean accuracy 100 %).
    Each repeat draws new random starts for both; the adversarial accuracy is
    the mean over the repeats, with the binomial standard error of the
    difference. Skipped when torchattacks is not installed.
    """
    from wpgdkit.audit import AttackConfig, attack_batch

    points, train_steps = (64, 20) if config.quick else (512, 300)
    case = f"{_TA_MODEL}, {points} points, ℓ∞ 8/255, {_TA_STEPS} steps"
    try:
        import torchattacks
    except ImportError:
        return [BenchRow.skipped("torchattacks", case, "wpgdkit PGD", "torchattacks.PGD",
                                 "torchattacks is not installed: pip install 'wpgdkit[autoattack]'")]
    device = config.torch_device()
    model, x, y, setup = _torchattacks_setup(config, device, points, train_steps)
    attack = AttackConfig(name="pgd", eps=_TA_EPS, steps=_TA_STEPS)
    step = attack.resolved_step_size
    theirs_attack = torchattacks.PGD(model, eps=_TA_EPS, alpha=step, steps=_TA_STEPS, random_start=True)
    batches = [(x[i:i + config.batch], y[i:i + config.batch]) for i in range(0, len(x), config.batch)]
    calls = {"ours": itertools.count(), "theirs": itertools.count()}

    def ours() -> list[torch.Tensor]:
        r = next(calls["ours"])
        return [attack_batch(model, xb, yb, config=attack, seeds=[1000 * r + b]) for b, (xb, yb) in enumerate(batches)]

    def theirs() -> list[torch.Tensor]:
        torch.manual_seed(1000 * next(calls["theirs"]))  # torchattacks draws its start from the global RNG
        return [theirs_attack(xb, yb) for xb, yb in batches]

    accuracy: dict[str, list[float]] = {"ours": [], "theirs": []}
    max_delta = {"ours": 0.0, "theirs": 0.0}

    def score(name: str, adv: list[torch.Tensor]) -> None:
        with torch.no_grad():
            correct = sum(int((model(a).argmax(1) == yb).sum()) for a, (_, yb) in zip(adv, batches))
            delta = max(float((a - xb).abs().max()) for a, (xb, _) in zip(adv, batches))
        accuracy[name].append(correct / len(x))
        max_delta[name] = max(max_delta[name], delta)

    times = interleaved_times({"ours": ours, "theirs": theirs}, repeats=config.repeats, warmup=config.warmup,
                              sync=device, on_result=score)
    with torch.no_grad():
        clean = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in batches) / len(x)
    acc = {name: statistics.mean(a) for name, a in accuracy.items()}
    se = math.sqrt(sum(a * (1 - a) / len(x) for a in acc.values()))
    ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
    return [BenchRow.timed(
        "torchattacks", case, "wpgdkit PGD", "torchattacks.PGD", ours_s, theirs_s, unit="pass",
        note=f"adv. accuracy ours {acc['ours']:.1%}, theirs {acc['theirs']:.1%} (clean {clean:.1%}, {setup['data']})",
        extra={**setup, "torchattacks": getattr(torchattacks, "__version__", None), "points": len(x),
               "batch": config.batch, "eps": _TA_EPS, "steps": _TA_STEPS, "step_size": step, "device": str(device),
               "clean_accuracy": clean, "ours_adversarial_accuracy": acc["ours"],
               "reference_adversarial_accuracy": acc["theirs"],
               "accuracy_difference": acc["ours"] - acc["theirs"], "difference_binomial_se": se,
               "ours_adversarial_accuracy_per_repeat": accuracy["ours"],
               "reference_adversarial_accuracy_per_repeat": accuracy["theirs"],
               "ours_max_linf_perturbation": max_delta["ours"], "reference_max_linf_perturbation": max_delta["theirs"],
               "ours_times_s": times["ours"], "reference_times_s": times["theirs"]},
    )]


# --- wordnet: batched metric build vs NLTK pairwise ----------------------------------------------

_WORDNET_MEASURE = "path"


def sample_noun_synsets(wordnet, n: int, *, seed: int = 0) -> list:
    """``n`` noun synsets drawn with ``random.Random(seed)`` from ``data.noun`` (in file order)."""
    with wordnet.open("data.noun") as fh:
        text = fh.read()
    offsets = [int(line[:8]) for line in text.splitlines() if line[:1].isdigit()]
    if n > len(offsets):
        raise WpgdkitError(f"WordNet has only {len(offsets)} noun synsets, asked for {n}")
    return [wordnet.synset_from_pos_and_offset("n", off) for off in random.Random(seed).sample(offsets, n)]


def _pair_sample(k: int, n: int, *, seed: int) -> list[tuple[int, int]]:
    """All pairs ``i < j`` when there are at most ``n``, else ``n`` distinct ones drawn with ``seed``."""
    total = k * (k - 1) // 2
    if total <= n:
        return [(i, j) for i in range(k) for j in range(i + 1, k)]
    rng, chosen = random.Random(seed), set()
    while len(chosen) < n:
        i, j = sorted(rng.sample(range(k), 2))
        chosen.add((i, j))
    return sorted(chosen)


@register_benchmark("wordnet", "WordNet path metric build for 200 and 1,000 classes vs NLTK pairwise")
def bench_wordnet(config: BenchConfig) -> list[BenchRow]:
    """:func:`wordnet_distance_matrix` (``path``) vs NLTK's ``shortest_path_distance`` on each pair.

    Problems: the 200 Tiny-ImageNet classes, and 1,000 noun synsets sampled
    with ``config.seed`` (quick: 100). NLTK is timed once on a seeded sample
    of 2,000 pairs (quick: 200) after 50 warm-up pairs; its time for all
    K(K−1)/2 pairs is extrapolated from that, and its values are compared on
    the sample. Loading WordNet is not timed (``wordnet_load_s``). Skipped,
    with the reason, when WordNet cannot be loaded.
    """
    from wpgdkit.datasets import get_dataset
    from wpgdkit.labelmetric.wordnet_distance import lookup_synsets, nltk_pairwise_distance, wordnet_distance_matrix
    from wpgdkit.wordnet import load_wordnet

    sizes = {"tiny-imagenet": 200, "random nouns": 100 if config.quick else 1000}
    pairs_timed = 200 if config.quick else 2000
    ours, reference = f"batched build ({_WORDNET_MEASURE})", "NLTK pairwise"
    cases = {label: f"{label}, K={k:,}" for label, k in sizes.items()}
    start = time.perf_counter()
    try:
        wn = load_wordnet()
    except WpgdkitError as exc:
        reason = "WordNet not available: " + " ".join(str(exc).split())
        return [BenchRow.skipped("wordnet", case, ours, reference, reason) for case in cases.values()]
    load_s = time.perf_counter() - start
    rows = []
    for label, k in sizes.items():
        try:
            if label == "tiny-imagenet":
                synsets = lookup_synsets(get_dataset("tiny-imagenet").synsets, wn)
            else:
                synsets = sample_noun_synsets(wn, k, seed=config.seed)
        except WpgdkitError as exc:
            rows.append(BenchRow.skipped("wordnet", cases[label], ours, reference, " ".join(str(exc).split())))
            continue
        k = len(synsets)
        build_s = median_time(lambda: wordnet_distance_matrix(synsets, measure=_WORDNET_MEASURE),
                              repeats=config.repeats, warmup=config.warmup)
        matrix = wordnet_distance_matrix(synsets, measure=_WORDNET_MEASURE)
        total_pairs = k * (k - 1) // 2
        sample = _pair_sample(k, pairs_timed, seed=config.seed)
        for i, j in sample[:50]:  # warm-up: NLTK's lazily read synsets
            nltk_pairwise_distance(synsets[i], synsets[j], _WORDNET_MEASURE)
        begin = time.perf_counter()
        theirs = [nltk_pairwise_distance(synsets[i], synsets[j], _WORDNET_MEASURE) for i, j in sample]
        per_pair = (time.perf_counter() - begin) / len(sample)
        ours_values = np.array([matrix[i, j] for i, j in sample])
        agreement = relative_error(ours_values, np.array(theirs), scale=float(matrix.max()))
        rows.append(BenchRow.timed(
            "wordnet", cases[label], ours, reference, build_s, per_pair * total_pairs, agreement=agreement,
            unit="build",
            note=(f"NLTK extrapolated from {len(sample):,} of {total_pairs:,} pairs" if len(sample) < total_pairs
                  else f"NLTK on all {total_pairs:,} pairs"),
            extra={"num_classes": k, "measure": _WORDNET_MEASURE, "pairs": total_pairs, "nltk_pairs_timed": len(sample),
                   "nltk_per_pair_s": per_pair, "nltk_extrapolated": len(sample) < total_pairs,
                   "max_abs_difference": float(np.abs(ours_values - np.array(theirs)).max()),
                   "wordnet_load_s": load_s, "wordnet_version": wn.get_version()},
        ))
    return rows
