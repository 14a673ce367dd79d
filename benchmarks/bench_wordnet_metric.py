"""Benchmark: building a WordNet label metric vs plain pairwise NLTK calls.

Problems: the 200 Tiny-ImageNet classes, and 1,000 noun synsets drawn from
WordNet 3.0 with a fixed seed. For each measure NLTK has a method for (path,
lch, wup), the batched build (``wordnet_distance_matrix``) is timed as the
median of several runs after a warm-up; NLTK is timed on every pair for 200
classes and on a seeded sample of pairs for 1,000 classes (its per-pair cost
times the K(K-1)/2 pairs, marked "extrapolated"). Values are compared on every
pair NLTK computed.

    python benchmarks/bench_wordnet_metric.py [--json out.json] [--repeats 5] [--pairs 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time

import numpy as np

from wpgdkit.datasets import get_dataset
from wpgdkit.labelmetric.wordnet_distance import lookup_synsets, nltk_pairwise_distance, wordnet_distance_matrix
from wpgdkit.wordnet import load_wordnet


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: NLTK's lazily read synsets are cached after the first pass
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def nltk_time(synsets, measure: str, pairs: list[tuple[int, int]], matrix: np.ndarray) -> tuple[float, float]:
    for i, j in pairs[:200]:  # warm-up
        nltk_pairwise_distance(synsets[i], synsets[j], measure)
    start = time.perf_counter()
    worst = 0.0
    for i, j in pairs:
        worst = max(worst, abs(nltk_pairwise_distance(synsets[i], synsets[j], measure) - matrix[i, j]))
    return (time.perf_counter() - start) / len(pairs), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=20000, help="NLTK pairs timed for the 1,000-class problem")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    wn = load_wordnet()
    load_s = time.perf_counter() - start
    tiny = lookup_synsets(get_dataset("tiny-imagenet").synsets, wn)
    rng = random.Random(0)
    thousand = rng.sample(sorted(wn.all_synsets("n"), key=lambda s: s.name()), 1000)
    problems = {"tiny-imagenet (200)": tiny, "random nouns (1000)": thousand}

    rows = []
    for label, synsets in problems.items():
        k = len(synsets)
        all_pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        sample = all_pairs if len(all_pairs) <= args.pairs else rng.sample(all_pairs, args.pairs)
        for measure in ("path", "lch", "wup", "lca-depth"):
            batched = median_time(lambda: wordnet_distance_matrix(synsets, measure=measure), args.repeats)
            row = {"problem": label, "classes": k, "measure": measure, "batched_s": batched}
            if measure != "lca-depth":
                matrix = wordnet_distance_matrix(synsets, measure=measure)
                per_pair, worst = nltk_time(synsets, measure, sample, matrix)
                row.update(
                    nltk_s=per_pair * len(all_pairs), nltk_pairs_timed=len(sample),
                    nltk_extrapolated=len(sample) < len(all_pairs), speedup=per_pair * len(all_pairs) / batched,
                    max_abs_difference=worst,
                )
            rows.append(row)
            print(json.dumps(row))

    header = {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(),
              "wordnet_load_s": load_s, "repeats": args.repeats}
    print(f"\nWordNet load: {load_s:.1f} s; median of {args.repeats} runs after a warm-up; {os.cpu_count()} CPUs")
    print(f"{'problem':22} {'measure':10} {'batched':>10} {'NLTK pairwise':>16} {'speed-up':>9} {'max |diff|':>11}")
    for r in rows:
        nltk = (f"{r['nltk_s']:.2f} s" + ("*" if r.get("nltk_extrapolated") else "")) if "nltk_s" in r else "-"
        speed = f"{r['speedup']:.0f}×" if "speedup" in r else "-"
        diff = f"{r['max_abs_difference']:.1e}" if "max_abs_difference" in r else "-"
        print(f"{r['problem']:22} {r['measure']:10} {r['batched_s']:>8.3f} s {nltk:>16} {speed:>9} {diff:>11}")
    print("* extrapolated from the per-pair time on a seeded sample of pairs")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": header, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
