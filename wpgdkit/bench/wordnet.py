"""``wordnet``: building a WordNet label metric in one batch against NLTK's pairwise calls,
and a whole build in a fresh process from a warm cache against one without it."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from wpgdkit.bench.harness import (
    BenchConfig,
    BenchRow,
    interleaved_times,
    median_time,
    register_benchmark,
    relative_error,
)
from wpgdkit.errors import WpgdkitError

__all__ = ["QUICK_MEASURES", "FULL_MEASURES", "COLD_CASE", "sample_noun_synsets", "pair_sample", "bench_wordnet",
           "child_build"]

#: Measures built by ``--quick`` and by a full run (``lca-depth`` has no NLTK counterpart).
QUICK_MEASURES = ("path",)
FULL_MEASURES = ("path", "lch", "wup", "lca-depth")
_NLTK_WARMUP_PAIRS = 50
#: The case of the fresh-process rows: what ``wpgdkit metric build --dataset cifar10 --source wordnet`` builds.
COLD_CASE = "cifar10 build, fresh process"
_COLD_REFERENCE = "no cache (NLTK)"
_COLD_OURS = "warm cache"
# The library call `wpgdkit metric build --dataset cifar10 --source wordnet` makes, in a child.
_CHILD = (
    "import json, sys\n"
    "from wpgdkit.labelmetric import BuildConfig, build_metric\n"
    "metric = build_metric(BuildConfig(source='wordnet', dataset='cifar10', use_cache={use_cache}))\n"
    "print(json.dumps({{'matrix': metric.matrix.tolist(), 'nltk_imported': 'nltk' in sys.modules}}))\n"
)
_CHILD_TIMEOUT_S = 600


def child_build(*, use_cache: bool, env: dict[str, str]) -> tuple[float, dict]:
    """Build the CIFAR-10 WordNet metric in a fresh Python process.

    Returns
    -------
    cpu_s : float
        The child's user + system CPU seconds (imports included).
    result : dict
        ``matrix`` (nested lists) and ``nltk_imported`` (whether the child imported NLTK).

    Raises
    ------
    WpgdkitError
        When the child fails (its last stderr line).
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(use_cache=use_cache)], env=env, capture_output=True,
                          text=True, timeout=_CHILD_TIMEOUT_S)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise WpgdkitError(f"the build in a fresh process failed: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(proc.stdout.strip().splitlines()[-1])


def _cold_vs_cached(config: BenchConfig) -> BenchRow:
    """A CIFAR-10 WordNet build in fresh processes: warm cache against ``use_cache=False``.

    The children share a new, empty cache folder (``WPGDKIT_CACHE_DIR``) and
    otherwise this process's environment, so they find WordNet as a user's
    command does (a plain database is copied for NLTK into that folder by the
    first, untimed, child, which also fills the cache). Then the two kinds of
    child alternate, ``min(repeats, 3)`` each (quick: 1); wall and CPU times
    (user + system of the child, imports included) are medians.
    """
    repeats = 1 if config.quick else min(config.repeats, 3)
    with tempfile.TemporaryDirectory(prefix="wpgdkit-bench-cache-") as folder:
        env = {**os.environ, "WPGDKIT_CACHE_DIR": folder}
        child_build(use_cache=True, env=env)  # untimed: fills the cache (and the page cache)
        results: dict[str, list] = {"cold": [], "cached": []}
        times = interleaved_times(
            {"cold": lambda: child_build(use_cache=False, env=env), "cached": lambda: child_build(use_cache=True, env=env)},
            repeats=repeats, warmup=0, on_result=lambda name, value: results[name].append(value),
        )
    cold_cpu = statistics.median(cpu for cpu, _ in results["cold"])
    cached_cpu = statistics.median(cpu for cpu, _ in results["cached"])
    reference = np.array(results["cold"][0][1]["matrix"])
    agreement = max(relative_error(np.array(out["matrix"]), reference, scale=float(reference.max()))
                    for _, out in results["cold"] + results["cached"])
    return BenchRow.timed(
        "wordnet", COLD_CASE, _COLD_OURS, _COLD_REFERENCE, statistics.median(times["cached"]),
        statistics.median(times["cold"]), agreement=agreement, unit="build",
        note=f"wall, median of {repeats}; CPU (children's user+sys) {cold_cpu:.2f} s vs {cached_cpu:.2f} s",
        extra={"repeats": repeats, "cold_wall_s": times["cold"], "cached_wall_s": times["cached"],
               "cold_cpu_s": cold_cpu, "cached_cpu_s": cached_cpu,
               "cpu_ratio": cold_cpu / cached_cpu if cached_cpu > 0 else None,
               "cached_imports_nltk": any(out["nltk_imported"] for _, out in results["cached"])},
    )


def sample_noun_synsets(wordnet, n: int, *, seed: int = 0) -> list:
    """``n`` noun synsets drawn with ``random.Random(seed)`` from ``data.noun`` (in file order)."""
    with wordnet.open("data.noun") as fh:
        text = fh.read()
    offsets = [int(line[:8]) for line in text.splitlines() if line[:1].isdigit()]
    if n > len(offsets):
        raise WpgdkitError(f"WordNet has only {len(offsets)} noun synsets, asked for {n}")
    return [wordnet.synset_from_pos_and_offset("n", off) for off in random.Random(seed).sample(offsets, n)]


def pair_sample(k: int, n: int, *, seed: int) -> list[tuple[int, int]]:
    """All pairs ``i < j`` when there are at most ``n``, else ``n`` distinct ones drawn with ``seed``."""
    total = k * (k - 1) // 2
    if total <= n:
        return [(i, j) for i in range(k) for j in range(i + 1, k)]
    rng, chosen = random.Random(seed), set()
    while len(chosen) < n:
        i, j = sorted(rng.sample(range(k), 2))
        chosen.add((i, j))
    return sorted(chosen)


@register_benchmark("wordnet", "WordNet metric build (path, lch, wup, lca-depth) for 200 and 1,000 classes "
                               "vs NLTK pairwise; a CIFAR-10 build in a fresh process, warm cache vs none "
                               "(skipped without WordNet)")
def bench_wordnet(config: BenchConfig) -> list[BenchRow]:
    """:func:`wordnet_distance_matrix` vs NLTK's per-pair methods.

    Problems: the 200 Tiny-ImageNet classes, and 1,000 noun synsets sampled
    with ``config.seed`` (quick: 100). Measures: ``path``, ``lch``, ``wup``
    and ``lca-depth`` (quick: ``path``); the batched build is timed as a
    median of ``config.repeats``. NLTK (no ``lca-depth`` method) is timed once
    per measure on a seeded sample of 2,000 pairs (quick: 200) after 50
    warm-up pairs (NLTK's first ``lch`` call computes the noun hierarchy's
    depth: tens of seconds, untimed); its time for all K(K−1)/2 pairs is
    extrapolated from that, and its values are compared on the sample.
    Loading WordNet is not timed (``wordnet_load_s``). Last, one row
    (``COLD_CASE``) times a whole CIFAR-10 build in fresh processes (imports
    count) from a warm WordNet cache against one without the cache
    (``use_cache=False``); see :func:`_cold_vs_cached`. Skipped, with the
    reason, when WordNet cannot be loaded.
    """
    from wpgdkit.datasets import get_dataset
    from wpgdkit.labelmetric.wordnet_distance import lookup_synsets, nltk_pairwise_distance, wordnet_distance_matrix
    from wpgdkit.wordnet import load_wordnet

    sizes = {"tiny-imagenet": 200, "random nouns": 100 if config.quick else 1000}
    measures = QUICK_MEASURES if config.quick else FULL_MEASURES
    pairs_timed = 200 if config.quick else 2000
    reference = "NLTK pairwise"
    cases = {label: f"{label}, K={k:,}" for label, k in sizes.items()}
    start = time.perf_counter()
    try:
        wn = load_wordnet()
    except WpgdkitError as exc:
        reason = "WordNet not available: " + " ".join(str(exc).split())
        return [BenchRow.skipped("wordnet", cases[label], f"batched build ({measure})",
                                 reference if measure != "lca-depth" else None, reason)
                for label in sizes for measure in measures] + [
            BenchRow.skipped("wordnet", COLD_CASE, _COLD_OURS, _COLD_REFERENCE, reason)]
    load_s = time.perf_counter() - start
    rows = []
    for label, k in sizes.items():
        try:
            if label == "tiny-imagenet":
                synsets = lookup_synsets(get_dataset("tiny-imagenet").synsets, wn)
            else:
                synsets = sample_noun_synsets(wn, k, seed=config.seed)
        except WpgdkitError as exc:
            rows.extend(BenchRow.skipped("wordnet", cases[label], f"batched build ({measure})", reference,
                                         " ".join(str(exc).split())) for measure in measures)
            continue
        k = len(synsets)
        total_pairs = k * (k - 1) // 2
        sample = pair_sample(k, pairs_timed, seed=config.seed)
        for measure in measures:
            ours = f"batched build ({measure})"
            build_s = median_time(lambda: wordnet_distance_matrix(synsets, measure=measure),
                                  repeats=config.repeats, warmup=config.warmup)
            common = {"num_classes": k, "measure": measure, "pairs": total_pairs, "wordnet_load_s": load_s,
                      "wordnet_version": wn.get_version()}
            if measure == "lca-depth":
                rows.append(BenchRow.timed("wordnet", cases[label], ours, None, build_s, None, unit="build",
                                           note="no NLTK method to compare with", extra=common))
                continue
            matrix = wordnet_distance_matrix(synsets, measure=measure)
            for i, j in sample[:_NLTK_WARMUP_PAIRS]:  # NLTK's lazily read synsets, lch's depth
                nltk_pairwise_distance(synsets[i], synsets[j], measure)
            begin = time.perf_counter()
            theirs = np.array([nltk_pairwise_distance(synsets[i], synsets[j], measure) for i, j in sample])
            per_pair = (time.perf_counter() - begin) / len(sample)
            ours_values = np.array([matrix[i, j] for i, j in sample])
            agreement = relative_error(ours_values, theirs, scale=float(matrix.max()))
            extrapolated = len(sample) < total_pairs
            rows.append(BenchRow.timed(
                "wordnet", cases[label], ours, reference, build_s, per_pair * total_pairs, agreement=agreement,
                unit="build",
                note=(f"NLTK extrapolated from {len(sample):,} of {total_pairs:,} pairs" if extrapolated
                      else f"NLTK on all {total_pairs:,} pairs"),
                extra={**common, "nltk_pairs_timed": len(sample), "nltk_per_pair_s": per_pair,
                       "nltk_extrapolated": extrapolated,
                       "max_abs_difference": float(np.abs(ours_values - theirs).max())},
            ))
    try:
        rows.append(_cold_vs_cached(config))
    except (WpgdkitError, OSError, ImportError, subprocess.TimeoutExpired) as exc:  # ImportError: no resource module
        rows.append(BenchRow.skipped("wordnet", COLD_CASE, _COLD_OURS, _COLD_REFERENCE, " ".join(str(exc).split())))
    return rows
