"""Benchmarks to run on your own hardware (``wpgdkit bench``): one harness, one registry.

:mod:`~wpgdkit.bench.harness` holds the configuration, rows, report, registry,
timing helpers and machine header; each benchmark is one module that
registers itself by name and turns a :class:`BenchConfig` into
:class:`BenchRow` s, one per case, timing "ours" against a reference:

================  ====================================================  =======
name              what                                                  default
================  ====================================================  =======
``loss``          closed-form Wasserstein loss vs ``ot.emd2`` /         yes
                  ``ot.sinkhorn2`` (:mod:`~wpgdkit.bench.loss`)
``attack-step``   WPGD vs PGD time per inner step, small-cnn and        yes
                  WRN-16-10 (:mod:`~wpgdkit.bench.attack_step`)
``torchattacks``  the toolkit's PGD vs ``torchattacks.PGD``: time and   yes
                  adversarial accuracy (:mod:`~wpgdkit.bench.vs_torchattacks`)
``wordnet``       WordNet metric build vs NLTK pairwise                 yes
                  (:mod:`~wpgdkit.bench.wordnet`)
``audit``         the audit's PGD-20 (and with early stop) vs           no
                  torchattacks, vs the floor of 20 forward+backward
                  passes and vs the default layout, on a PGD-trained
                  small-cnn; auditing 1 vs 4 checkpoints
                  (:mod:`~wpgdkit.bench.audit`)
``train-loop``    ``wpgdkit train`` vs a hand-written PGD loop, and a   no
                  full Fashion-MNIST epoch (:mod:`~wpgdkit.bench.train_loop`)
``startup``       commands in a fresh process vs ``python -c pass``     no
                  and ``import torch`` (:mod:`~wpgdkit.bench.startup`)
================  ====================================================  =======

:func:`run_benchmarks` without names runs the default set; the slow ones
(they train models) and ``startup`` run only by name.

>>> from wpgdkit.bench import BenchConfig, run_benchmarks
>>> report = run_benchmarks(BenchConfig(quick=True, repeats=3), ["loss"])  # doctest: +SKIP
>>> [(r.case, r.reference, round(r.ratio)) for r in report.rows]  # doctest: +SKIP
"""

from __future__ import annotations

from wpgdkit.bench import harness as _harness
from wpgdkit.bench.harness import *  # noqa: F403  the harness's public names are the package's

# Registration order is the order of --help and of the default run.
from wpgdkit.bench.loss import bench_loss  # noqa: E402  isort: skip
from wpgdkit.bench.attack_step import bench_attack_step  # noqa: E402  isort: skip
from wpgdkit.bench.vs_torchattacks import bench_torchattacks  # noqa: E402  isort: skip
from wpgdkit.bench.wordnet import bench_wordnet, sample_noun_synsets  # noqa: E402  isort: skip
from wpgdkit.bench.audit import bench_audit  # noqa: E402  isort: skip
from wpgdkit.bench.train_loop import bench_train_loop  # noqa: E402  isort: skip
from wpgdkit.bench.startup import bench_startup  # noqa: E402  isort: skip

__all__ = [
    *_harness.__all__,
    "sample_noun_synsets",
    "bench_loss",
    "bench_attack_step",
    "bench_torchattacks",
    "bench_wordnet",
    "bench_audit",
    "bench_train_loop",
    "bench_startup",
]
