"""The benchmark harness: configuration, rows, report, registry, timing helpers, header, runner.

Every benchmark is a function ``fn(config: BenchConfig) -> list[BenchRow]``
registered by name (:func:`register_benchmark`); :func:`run_benchmarks` runs
a selection of them under one thread setting and collects a
:class:`BenchReport` whose header says what machine the numbers come from.

Timing rules, the same for every benchmark:

- untimed warm-up calls first (allocator, oneDNN/cuDNN kernels, caches);
- when two or more things are compared, their calls alternate (A B A B ...,
  :func:`interleaved_times`) so that a slow stretch of a shared machine hits
  each alike;
- the median of the timed calls is reported; :func:`summarize` turns raw call
  times into a ``torch.utils.benchmark`` :class:`Measurement` per unit of work
  (per step, per epoch, ...), with its interquartile range and its warning
  when that range is wide;
- ``ratio`` is always ``reference_s / ours_s``: above 1, ours is faster.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from wpgdkit.device import DEVICE_NAMES, check_threads, resolve_device, torch_threads
from wpgdkit.errors import WpgdkitError
from wpgdkit.inputs import Range, check_number, check_seed
from wpgdkit.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch.utils.benchmark import Measurement

__all__ = [
    "BENCH_SCHEMA",
    "RELATIVE_FLOOR",
    "NOISY_IQR",
    "BenchConfig",
    "BenchRow",
    "BenchReport",
    "Benchmark",
    "register_benchmark",
    "get_benchmark",
    "list_benchmarks",
    "default_benchmarks",
    "run_benchmarks",
    "bench_header",
    "median_time",
    "sample_times",
    "interleaved_times",
    "summarize",
    "timing_summary",
    "relative_error",
    "random_metric",
]

BENCH_SCHEMA = "wpgdkit-bench/1"

#: Denominator floor of :func:`relative_error`, relative to the scale (as
#: :func:`wpgdkit.labelmetric.ot_check.reference_check`).
RELATIVE_FLOOR = 1e-6

#: Interquartile range, relative to the median, above which a timing is flagged as noisy
#: (``torch.utils.benchmark``'s own threshold).
NOISY_IQR = 0.1


# --- configuration and results -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """How the benchmarks run.

    Attributes
    ----------
    repeats : int, default=5
        Timed calls per measurement (≥ 1); the median is reported. The slow
        benchmarks cap it where one call takes seconds (each says where).
    warmup : int, default=1
        Untimed calls first (≥ 0): allocator, oneDNN/cuDNN kernels, caches.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the networks run (``auto``: CUDA when available). The loss and
        WordNet benchmarks always run on the CPU (POT and NLTK do).
    quick : bool, default=False
        Small sizes for a smoke run of seconds per benchmark; the numbers are
        not meant to be quoted. Each benchmark documents its quick sizes.
    seed : int, default=0
        Seeds the random metrics, inputs, models, samples and training runs.
    batch : int, default=128
        Batch of the loss benchmark, of the small CNN's attack step, of the
        attacks compared with torchattacks, of the audit and of the training
        loop (≥ 1).
    threads : int or None, default=None
        ``torch.set_num_threads`` for the run (restored after); None keeps
        torch's choice.
    data_dir : str or None, default=None
        Where Fashion-MNIST is looked for (``torchattacks``, ``audit``,
        ``train-loop``); None uses the usual places.
    """

    repeats: int = 5
    warmup: int = 1
    device: str = "auto"
    quick: bool = False
    seed: int = 0
    batch: int = 128
    threads: int | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        # The valid range of each number, written once here (BENCH_RANGES); seeds as everywhere.
        for name, valid in BENCH_RANGES.items():
            value = getattr(self, name)
            check_number(f"--{name}", value, valid)
        check_seed("--seed", self.seed)
        check_threads(self.threads)  # the one check of every --threads
        if self.device not in DEVICE_NAMES:
            raise WpgdkitError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICE_NAMES)}")

    def torch_device(self) -> torch.device:
        """The resolved device; WpgdkitError for ``cuda`` without a GPU."""
        return resolve_device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Numbers of :class:`BenchConfig` and their valid ranges (the limits far above any useful run).
BENCH_RANGES: dict[str, Range] = {
    "repeats": Range(1, 10_000, integer=True),
    "warmup": Range(0, 10_000, integer=True),
    "batch": Range(1, 1_000_000, integer=True),
}


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
        What it is compared with (``ot.emd2 loop``, ``PGD``, ...); None for a
        plain measurement.
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
        What one timed unit covers (``batch``, ``step``, ``pass``, ``build``,
        ``epoch``, ``model``).
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


# --- registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark.

    Attributes
    ----------
    name : str
    description : str
        One line, shown by ``wpgdkit bench --help``.
    run : callable
        ``run(config) -> list[BenchRow]``.
    default : bool, default=True
        Part of the default set (``wpgdkit bench`` without ``--only``); the
        slow ones (minutes, training a model) are not and run only by name.
    """

    name: str
    description: str
    run: Callable[[BenchConfig], list[BenchRow]]
    default: bool = True


_BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def register_benchmark(name: str, description: str, *, default: bool = True
                       ) -> Callable[[Callable[[BenchConfig], list[BenchRow]]], Callable[[BenchConfig], list[BenchRow]]]:
    """Decorator adding ``fn(config) -> list[BenchRow]`` under ``name``; ValueError if taken.

    ``default=False`` keeps it out of the default set: it runs only through
    ``run_benchmarks(config, [name])`` (``wpgdkit bench --only NAME``).
    """

    def decorate(fn: Callable[[BenchConfig], list[BenchRow]]) -> Callable[[BenchConfig], list[BenchRow]]:
        _BENCHMARKS.register(name, Benchmark(name, description, fn, default=default))
        return fn

    return decorate


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; UnknownNameError listing the valid names otherwise."""
    return _BENCHMARKS.get(name)


def list_benchmarks() -> list[str]:
    """Every registered benchmark name, in registration order."""
    return _BENCHMARKS.names()


def default_benchmarks() -> list[str]:
    """The names run when none are given: the registered benchmarks with ``default=True``."""
    return [name for name in _BENCHMARKS.names() if _BENCHMARKS.get(name).default]


# --- timing ----------------------------------------------------------------------------------------


def _synchronize(sync: bool | torch.device | str) -> None:
    if sync is False:
        return  # the CPU timings: nothing to wait for (and torch not imported inside the timed region)
    import torch

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


def _torch_benchmark():
    """``torch.utils.benchmark``, imported without the CUDA_HOME warning it logs on a CPU-only machine."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.benchmark as torch_benchmark
    finally:
        logger.setLevel(level)
    return torch_benchmark


def summarize(times: Sequence[float], *, per_call: int = 1, label: str = "", sub_label: str = "",
              description: str = "") -> Measurement:
    """Raw call times as a ``torch.utils.benchmark.Measurement`` of one unit of work.

    Parameters
    ----------
    times : sequence of float
        Seconds of each timed call (from :func:`interleaved_times`).
    per_call : int, default=1
        Units of work per call (``number_per_run``): the measurement's times
        are per unit, e.g. per attack step when a call runs several.
    label, sub_label, description : str
        ``torch.utils.benchmark``'s names (benchmark, case, side), for
        ``print(measurement)`` and ``torch.utils.benchmark.Compare``.

    Returns
    -------
    measurement : Measurement
        ``.median``, ``.iqr``, ``.times`` (per unit) and ``.has_warnings``
        (interquartile range above 10 % of the median).
    """
    import torch

    bench = _torch_benchmark()
    from torch.utils.benchmark.utils.common import TaskSpec

    task = TaskSpec(stmt=description or label or "fn()", setup="pass", label=label, sub_label=sub_label,
                    description=description, num_threads=torch.get_num_threads())
    return bench.Measurement(number_per_run=per_call, raw_times=list(times), task_spec=task)


def timing_summary(measurement: Measurement, prefix: str) -> dict[str, Any]:
    """``{prefix}_median_s``, ``_iqr_s``, ``_min_s``, ``_times_s`` and ``_noisy`` of a :func:`summarize` result."""
    times = list(measurement.times)
    return {
        f"{prefix}_median_s": measurement.median,
        f"{prefix}_iqr_s": measurement.iqr,
        f"{prefix}_min_s": min(times),
        f"{prefix}_times_s": times,
        f"{prefix}_noisy": len(times) >= 4 and not measurement.meets_confidence(NOISY_IQR),
    }


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


def random_metric(k: int, *, seed: int = 0, dim: int = 3) -> np.ndarray:
    """Euclidean distances between ``k`` random points of the unit cube: a valid metric."""
    points = np.random.default_rng(seed).random((k, dim))
    return np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))


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
    import torch

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
    """Run the named benchmarks (the default set when None), each once, in the order given.

    Parameters
    ----------
    config : BenchConfig
    names : sequence of str, optional
        Benchmarks to run; repeated names run once. None runs
        :func:`default_benchmarks` (not the slow ones).
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
    selected = list(dict.fromkeys(names)) if names is not None else default_benchmarks()
    if not selected:
        raise WpgdkitError("no benchmark selected")
    benchmarks = [get_benchmark(name) for name in selected]
    device = config.torch_device()
    with torch_threads(config.threads):
        header = bench_header(device)
        rows: list[BenchRow] = []
        durations: dict[str, float] = {}
        for index, benchmark in enumerate(benchmarks):
            if progress is not None:
                progress(benchmark.name, index, len(benchmarks))
            start = time.perf_counter()
            rows.extend(benchmark.run(config))
            durations[benchmark.name] = time.perf_counter() - start
    return BenchReport(header=header, config=config, benchmarks=selected, rows=rows, durations_s=durations)
