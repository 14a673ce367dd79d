"""The project's own bad-input corpus: malformed and extreme inputs for every command.

Each case in ``CASES`` is a command line; the case list is the documentation. For
every one the contract of README's "Exit codes" is asserted:

* exit code 2;
* stderr is exactly one line starting ``wpgdkit: error: `` (no traceback, no warning lines);
* stdout is empty (no partial result);
* no file left behind in the working folder, the output folder or the fixtures
  (no ``.tmp`` files either);
* no shared state changed: ``WPGDKIT_CACHE_DIR``, ``WPGDKIT_DATA_DIR``, ``HOME`` and
  ``XDG_CACHE_HOME`` point at fresh folders whose contents must not change;
* no code run: files carrying code touch ``MARKER`` if unpickled.

Tokens in a case's arguments: ``FX/...`` is a file of the module's fixtures (built
once), ``W/...`` a path in the case's empty working folder (the current directory),
``CP/...`` a fixture copied into the working folder first (for commands that may
write to it, such as ``train --resume --out``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import corpus_inputs as ci
from wpgdkit.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
WPGDKIT = [sys.executable, "-m", "wpgdkit"]


@dataclass(frozen=True)
class C:
    """One bad-input case: its id, its arguments, extra environment variables."""

    id: str
    args: tuple[str, ...]
    env: dict = field(default_factory=dict)


def case(id: str, *args: str, env: dict | None = None):
    return pytest.param(C(id, tuple(args), env or {}), id=id)


# --- the base command lines (small, so a case the CLI wrongly accepts still ends fast) -------

TRAIN = ("train", "--dataset", "toy", "--model", "linear", "--method", "ce", "--limit", "64", "--epochs", "1",
         "--val-fraction", "0", "--eval-steps", "0", "--device", "cpu", "--quiet", "--out", "W/run.pt")
TRAIN_PGD = TRAIN + ("--method", "pgd", "--steps", "1")
TRAIN_WPGD = TRAIN + ("--method", "wpgd", "--steps", "1", "--metric", "FX/toy.csv")
TRAIN_MNIST = ("train", "--dataset", "mnist", "--data-dir", "FX/mnist", "--model", "linear", "--method", "pgd",
               "--steps", "1", "--limit", "16", "--epochs", "1", "--val-fraction", "0", "--eval-steps", "0",
               "--device", "cpu", "--quiet", "--out", "W/run.pt")
AUDIT = ("audit", "FX/toy.pt", "--device", "cpu", "--quiet", "--limit", "32", "--steps", "1")
BUILD_BOUNDARY = ("metric", "build", "--source", "boundary", "--device", "cpu", "--quiet", "--limit", "4")
BUILD_LINEAR = ("metric", "build", "--source", "linear", "--dataset", "mnist", "--data-dir", "FX/mnist", "--limit",
                "40", "--max-iter", "2", "--quiet")
BUILD_WORDNET = ("metric", "build", "--dataset", "cifar10", "--classes", "cat,dog", "--quiet")
BUILD_FILE = ("metric", "build", "--source", "file", "--quiet")
CHECK = ("metric", "check", "FX/good.csv", "--samples", "5", "--sinkhorn-samples", "0")
SHOW = ("metric", "show", "FX/good.csv")
COMPARE = ("metric", "compare", "FX/good.csv", "FX/good.json")
REPRODUCE = ("reproduce", "gap-correlation", "--dataset", "toy", "--model", "linear", "--epochs", "1", "--limit", "32",
             "--test-limit", "32", "--steps", "1", "--eval-steps", "1", "--device", "cpu", "--quiet",
             "--out", "W/results")
DEMO = ("demo", "--quick", "--epochs", "1", "--limit", "30", "--test-limit", "30", "--eps", "0.2",
        "--no-wpgd-attack", "--quiet", "--out", "W/demo")
BENCH = ("bench", "--quick", "--only", "loss", "--repeats", "1", "--warmup", "0", "--quiet")

SEEDED = {"train": TRAIN, "audit": AUDIT, "reproduce": REPRODUCE, "demo": DEMO, "bench": BENCH,
          "metric-build-linear": BUILD_LINEAR, "metric-check": CHECK}

# --- 0. registry names, flags, required options -------------------------------------------

NAMES = [
    case("build-unknown-dataset", "metric", "build", "--dataset", "nosuch"),
    case("build-unknown-source", "metric", "build", "--dataset", "cifar10", "--source", "nosuch"),
    case("build-unknown-measure", *BUILD_WORDNET, "--measure", "nosuch"),
    case("build-unknown-normalize", *BUILD_WORDNET, "--normalize", "nosuch"),
    case("build-unknown-class-name", "metric", "build", "--dataset", "cifar10", "--classes", "cat,nosuch"),
    case("build-class-index-out-of-range", "metric", "build", "--dataset", "cifar10", "--classes", "3,99"),
    case("build-class-list-only-commas", "metric", "build", "--dataset", "cifar10", "--classes", ",,"),
    case("build-duplicate-classes", "metric", "build", "--dataset", "cifar10", "--classes", "cat,cat"),
    case("build-wordnet-dataset-without-synsets", "metric", "build", "--dataset", "toy", "--source", "wordnet"),
    case("build-unknown-split", *BUILD_BOUNDARY, "--checkpoint", "FX/toy.pt", "--split", "valid"),
    case("build-unknown-device", *BUILD_BOUNDARY, "--checkpoint", "FX/toy.pt", "--device", "tpu"),
    case("build-boundary-unknown-measure", *BUILD_BOUNDARY, "--checkpoint", "FX/toy.pt", "--measure", "l7"),
    case("train-unknown-dataset", *TRAIN, "--dataset", "nosuch"),
    case("train-unknown-model", *TRAIN, "--model", "nosuch"),
    case("train-unknown-method", *TRAIN, "--method", "fgsm"),
    case("train-unknown-norm", *TRAIN, "--norm", "l3"),
    case("train-unknown-schedule", *TRAIN, "--schedule", "nosuch"),
    case("train-unknown-device", *TRAIN, "--device", "tpu"),
    case("train-unknown-classes", *TRAIN, "--classes", "0,9"),
    case("train-unknown-imbalance-class", *TRAIN, "--imbalance", "0.5", "--imbalance-class", "nosuch"),
    case("train-model-wrong-for-dataset", *TRAIN, "--model", "wrn-16-10"),
    case("audit-unknown-attack", *AUDIT, "--attack", "nosuch"),
    case("audit-unknown-score-normalize", *AUDIT, "--score-normalize", "nosuch"),
    case("audit-unknown-split", *AUDIT, "--split", "valid"),
    case("audit-unknown-norm", *AUDIT, "--norm", "l3"),
    case("models-unknown-dataset", "models", "--dataset", "nosuch"),
    case("reproduce-unknown-experiment", "reproduce", "nosuch"),
    case("reproduce-unknown-scale", *REPRODUCE, "--scale", "huge"),
    case("reproduce-unknown-dataset", *REPRODUCE, "--dataset", "nosuch"),
    case("reproduce-unknown-model", *REPRODUCE, "--model", "nosuch"),
    case("bench-unknown-only", "bench", "--only", "nosuch"),
    case("bench-unknown-only-in-list", "bench", "--only", "loss,nosuch"),
    case("bench-empty-only", "bench", "--only", ","),
    case("bench-unknown-device", *BENCH, "--device", "tpu"),
    case("demo-unknown-device", *DEMO, "--device", "tpu"),
    case("unknown-command", "nosuch"),
    case("unknown-metric-subcommand", "metric", "nosuch"),
]

FLAGS = [case(f"{name}-unknown-flag", *base, "--no-such-flag") for name, base in [
    ("build", BUILD_WORDNET), ("check", CHECK), ("show", SHOW), ("compare", COMPARE), ("train", TRAIN),
    ("audit", AUDIT), ("models", ("models",)), ("datasets", ("datasets",)), ("reproduce", REPRODUCE),
    ("demo", DEMO), ("bench", BENCH), ("root", ())]] + [
    case("train-int-flag-given-text", *TRAIN, "--epochs", "ten"),
    case("train-flag-missing-value", *TRAIN, "--epochs"),
    case("audit-bool-flag-given-value", *AUDIT, "--quiet=maybe"),
]

REQUIRED = [
    case("train-without-dataset", "train", "--out", "W/run.pt"),
    case("train-without-out", "train", "--dataset", "toy"),
    case("train-wpgd-without-metric", *TRAIN, "--method", "wpgd"),
    case("audit-without-checkpoints", "audit"),
    case("check-without-path", "metric", "check"),
    case("show-without-path", "metric", "show"),
    case("compare-with-one-path", "metric", "compare", "FX/good.csv"),
    case("reproduce-without-experiment", "reproduce"),
    case("build-file-without-input", *BUILD_FILE),
    case("build-boundary-without-checkpoint", *BUILD_BOUNDARY),
    case("build-uniform-without-classes", "metric", "build", "--source", "uniform"),
    case("build-npy-without-class-list", *BUILD_FILE, "--input", "FX/good.npy"),
    case("check-npy-without-classes", "metric", "check", "FX/good.npy"),
]

# --- 3./4. numbers at the edges, optimiser settings -----------------------------------------

NUMBERS = [
    *[case(f"train-p-{v}", *TRAIN_WPGD, "--p", v) for v in ("inf", "nan", "-1")],
    *[case(f"train-eps-{n}", *TRAIN_PGD, "--eps", v) for n, v in
      [("0", "0"), ("-1", "-1"), ("nan", "nan"), ("inf", "inf"), ("1-over-0", "1/0"), ("text", "abc"),
       ("empty", ""), ("0-over-0", "0/0"), ("1e400", "1e400")]],
    case("train-eps-1e9-on-01-images", *TRAIN_MNIST, "--eps", "1e9"),
    *[case(f"train-step-size-{n}", *TRAIN_PGD, "--step-size", v) for n, v in [("nan", "nan"), ("0", "0"), ("-1", "-1")]],
    *[case(f"train-lam-{v}", *TRAIN_WPGD, "--lam", v) for v in ("0", "nan", "-1")],
    *[case(f"train-epochs-{v}", *TRAIN, "--epochs", v) for v in ("0", "-1")],
    *[case(f"train-batch-size-{v}", *TRAIN, "--batch-size", v) for v in ("0", "-1")],
    *[case(f"train-limit-{v}", *TRAIN, "--limit", v) for v in ("-5", "0")],
    *[case(f"train-steps-{v}", *TRAIN_PGD, "--steps", v) for v in ("0", "-1")],
    case("train-eval-steps--1", *TRAIN, "--eval-steps", "-1"),
    *[case(f"train-threads-{v}", *TRAIN, "--threads", v) for v in ("0", "-1")],
    case("train-workers--1", *TRAIN, "--workers", "-1"),
    *[case(f"train-val-fraction-{v}", *TRAIN, "--val-fraction", v) for v in ("1", "-0.1", "nan")],
    *[case(f"train-imbalance-{v}", *TRAIN, "--imbalance", v) for v in ("0", "1.5", "nan")],
    case("train-seed-1e23", *TRAIN, "--seed", "1e23"),
    case("train-seed-2-to-the-64", *TRAIN, "--seed", str(2**64)),
    # 4. optimiser settings: refused before training, nothing written
    *[case(f"train-lr-{v}", *TRAIN, "--lr", v) for v in ("inf", "nan", "0", "-1")],
    *[case(f"train-momentum-{v}", *TRAIN, "--momentum", v) for v in ("nan", "-5", "1.5", "inf")],
    *[case(f"train-weight-decay-{v}", *TRAIN, "--weight-decay", v) for v in ("nan", "-1", "inf")],
    # audit
    *[case(f"audit-eps-{n}", *AUDIT, "--eps", v) for n, v in
      [("0", "0"), ("-1", "-1"), ("nan", "nan"), ("1-over-0", "1/0"), ("inf", "inf")]],
    *[case(f"audit-steps-{v}", *AUDIT, "--steps", v) for v in ("0", "-1")],
    *[case(f"audit-restarts-{v}", *AUDIT, "--restarts", v) for v in ("0", "-1")],
    *[case(f"audit-attack-p-{v}", *AUDIT, "--attack", "wpgd", "--metric", "FX/toy.csv", "--attack-p", v)
      for v in ("inf", "nan", "-1")],
    *[case(f"audit-attack-lam-{v}", *AUDIT, "--attack", "wpgd", "--metric", "FX/toy.csv", "--attack-lam", v)
      for v in ("0", "nan")],
    *[case(f"audit-limit-{v}", *AUDIT, "--limit", v) for v in ("-5", "0")],
    case("audit-batch-size-0", *AUDIT, "--batch-size", "0"),
    case("audit-bins-0", *AUDIT, "--bins", "0"),
    case("audit-threads-0", *AUDIT, "--threads", "0"),
    case("audit-step-size-nan", *AUDIT, "--step-size", "nan"),
    # metric check / show / build
    *[case(f"check-p-{v}", *CHECK, "--p", v) for v in ("inf", "nan", "0", "-1")],
    case("check-samples-0", *CHECK, "--samples", "0"),
    case("check-sinkhorn-samples--1", *CHECK, "--sinkhorn-samples", "-1"),
    case("show-top-0", *SHOW, "--top", "0"),
    *[case(f"build-linear-limit-{v}", *BUILD_LINEAR, "--limit", v) for v in ("-5", "0")],
    *[case(f"build-linear-l2-{v}", *BUILD_LINEAR, "--l2", v) for v in ("nan", "-1", "inf")],
    case("build-linear-max-iter-0", *BUILD_LINEAR, "--max-iter", "0"),
    case("build-linear-threads-0", *BUILD_LINEAR, "--threads", "0"),
    case("build-boundary-limit--5", *BUILD_BOUNDARY, "--checkpoint", "FX/toy.pt", "--limit", "-5"),
    # bench / demo / reproduce
    case("bench-repeats-0", *BENCH, "--repeats", "0"),
    case("bench-warmup--1", *BENCH, "--warmup", "-1"),
    case("bench-batch-0", *BENCH, "--batch", "0"),
    case("bench-threads-0", *BENCH, "--threads", "0"),
    *[case(f"demo-eps-{n}", *DEMO, "--eps", v) for n, v in
      [("nan", "nan"), ("0", "0"), ("-1", "-1"), ("empty", ""), ("commas", ",,"), ("1-over-0", "1/0")]],
    *[case(f"demo-p-{v}", *DEMO, "--p", v) for v in ("nan", "inf", "-1")],
    case("demo-epochs-0", *DEMO, "--epochs", "0"),
    case("demo-limit--5", *DEMO, "--limit", "-5"),
    case("demo-test-limit-0", *DEMO, "--test-limit", "0"),
    case("demo-threads-0", *DEMO, "--threads", "0"),
    case("reproduce-epochs-0", *REPRODUCE, "--epochs", "0"),
    case("reproduce-limit--5", *REPRODUCE, "--limit", "-5"),
    case("reproduce-test-limit-0", *REPRODUCE, "--test-limit", "0"),
    case("reproduce-eps-nan", *REPRODUCE, "--eps", "nan"),
    case("reproduce-steps-0", *REPRODUCE, "--steps", "0"),
    case("reproduce-eval-steps--1", *REPRODUCE, "--eval-steps", "-1"),
    case("reproduce-threads-0", *REPRODUCE, "--threads", "0"),
    # --seed -1 and 1e23 on every command with --seed
    *[case(f"{name}-seed--1", *base, "--seed", "-1") for name, base in SEEDED.items()],
    *[case(f"{name}-seed-1e23", *base, "--seed", "1e23") for name, base in SEEDED.items() if name != "train"],
]

# --- 6. checkpoints ------------------------------------------------------------------------

BAD_CHECKPOINTS = ["nan-weights", "inf-bias", "unknown-method", "version-string", "version-99", "format-missing",
                   "class-indices-out-of-range", "data-is-a-string", "data-is-a-list", "unknown-dataset",
                   "unknown-model", "state-dict-wrong-shape", "eps-negative", "payload-is-a-list", "payload-list",
                   "crc-mismatch", "truncated", "empty", "a-folder", "text", "pickle-runs-code",
                   "torchzip-runs-code"]
CHECKPOINTS = [
    *[case(f"audit-ckpt-{k}", *AUDIT[:1], f"FX/ckpts/{k}.pt", *AUDIT[2:]) for k in BAD_CHECKPOINTS],
    *[case(f"build-boundary-ckpt-{k}", *BUILD_BOUNDARY, "--checkpoint", f"FX/ckpts/{k}.pt") for k in BAD_CHECKPOINTS],
    *[case(f"train-resume-ckpt-{k}", *TRAIN, "--resume", "--out", f"CP/ckpts/{k}.pt") for k in BAD_CHECKPOINTS],
    case("audit-baseline-truncated", *AUDIT, "--baseline", "FX/ckpts/truncated.pt"),
    case("audit-reference-runs-code", *AUDIT, "--reference", "FX/ckpts/pickle-runs-code.pt"),
    case("audit-ckpt-missing", "audit", "FX/ckpts/missing.pt", "--device", "cpu", "-q"),
    case("build-confusion-ckpt-truncated", "metric", "build", "--source", "confusion", "--checkpoint",
         "FX/ckpts/truncated.pt", "--device", "cpu", "-q"),
    case("train-resume-different-settings", *TRAIN, "--resume", "--lr", "0.05", "--out", "CP/toy.pt"),
]

# --- 7. label-metric files -----------------------------------------------------------------

BAD_METRICS = ["future-version.json", "version-string.json", "deeply-nested.json", "provenance-string.json",
               "provenance-source-int.json", "provenance-parameters-list.json", "classes-not-list.json",
               "classes-numbers.json", "matrix-strings.json", "nan-literal.json", "not-an-object.json",
               "truncated.json", "non-square.csv", "ragged.csv", "negative.csv", "nan.csv", "inf.csv",
               "overflow-1e400.csv", "underscore-1_000.csv", "hex-0x10.csv", "asymmetric.csv",
               "nonzero-diagonal.csv", "duplicate-names.csv", "empty-name.csv", "empty.csv", "blank-lines.csv",
               "header-only.csv", "no-empty-corner.csv", "row-label-mismatch.csv", "not-utf8.csv", "nul-bytes.csv",
               "huge-class-name.csv", "empty.json", "empty-matrix.json", "unknown-ext.txt", "wrong-ndim.npy",
               "vector.npy", "non-square.npy", "complex.npy", "nan.npy", "object-dtype.npy", "truncated.npy",
               "not-npy.npy", "a-folder.csv", "a-folder.json", "missing.csv"]


def _with_classes(name: str) -> tuple[str, ...]:
    return ("--classes", "FX/good-classes.txt") if name.endswith(".npy") else ()


# Asymmetric costs (C[i, j] != C[j, i]: missing a fraud costs more than a false alarm) are valid for
# train, audit and reproduce; only `metric check`/`show` ask for --allow-asymmetric (tested elsewhere).
METRICS = [
    *[case(f"check-{m}", "metric", "check", f"FX/metrics/{m}", *_with_classes(m)) for m in BAD_METRICS],
    *[case(f"show-{m}", "metric", "show", f"FX/metrics/{m}", *_with_classes(m)) for m in BAD_METRICS],
    *[case(f"compare-{m}", "metric", "compare", "FX/good.csv", f"FX/metrics/{m}", *_with_classes(m))
      for m in BAD_METRICS[::3]],
    *[case(f"build-file-{m}", *BUILD_FILE, "--input", f"FX/metrics/{m}",
           *(("--class-list", "FX/good-classes.txt") if m.endswith(".npy") else ())) for m in BAD_METRICS[1::3]],
    *[case(f"train-wpgd-metric-{m}", *TRAIN_WPGD, "--metric", f"FX/metrics/{m}") for m in
      ("nan.csv", "object-dtype.npy", "deeply-nested.json", "a-folder.csv")],
    *[case(f"audit-metric-{m}", *AUDIT, "--metric", f"FX/metrics/{m}") for m in
      ("negative.csv", "future-version.json", "object-dtype.npy", "empty.csv")],
    case("train-wpgd-metric-wrong-classes", *TRAIN_WPGD, "--metric", "FX/good.csv"),
    case("audit-metric-wrong-classes", *AUDIT, "--metric", "FX/good.csv"),
    case("reproduce-metric-wrong-classes", *REPRODUCE, "--metric", "FX/good.csv"),
    case("check-npy-class-list-too-short", "metric", "check", "FX/good.npy", "--classes", "FX/classlists/two.txt"),
    case("compare-different-classes", "metric", "compare", "FX/good.csv", "FX/toy.csv"),
]

# --- 2. text that is not UTF-8, class lists, synset maps -----------------------------------

CLASS_LISTS = ["not-utf8.txt", "utf16.txt", "duplicates.txt", "empty.txt", "huge-name.txt", "binary.txt"]
TEXT = [
    *[case(f"build-uniform-class-list-{c}", "metric", "build", "--source", "uniform", "--class-list",
           f"FX/classlists/{c}") for c in CLASS_LISTS],
    *[case(f"build-npy-class-list-{c}", *BUILD_FILE, "--input", "FX/good.npy", "--class-list", f"FX/classlists/{c}")
      for c in CLASS_LISTS],
    *[case(f"check-npy-classes-{c}", "metric", "check", "FX/good.npy", "--classes", f"FX/classlists/{c}")
      for c in CLASS_LISTS[:3]],
    *[case(f"build-synset-map-{s}", "metric", "build", "--source", "wordnet", "--synset-map", f"FX/synsetmaps/{s}",
           "-q") for s in ("not-utf8.csv", "unknown-synset.csv", "malformed-synset.csv", "wrong-header.csv",
                           "empty.csv", "duplicate-class.csv", "missing-cell.csv", "huge-field.csv")],
    case("train-classes-non-utf8-escape", *TRAIN, "--classes", "caf\udce9,0"),
]

# --- 8. files and folders ------------------------------------------------------------------

FILES = [
    # a folder where a file is expected
    case("check-path-is-folder", "metric", "check", "FX/a-folder"),
    case("show-path-is-folder", "metric", "show", "FX/a-folder"),
    case("compare-path-is-folder", "metric", "compare", "FX/a-folder", "FX/good.csv"),
    case("build-input-is-folder", *BUILD_FILE, "--input", "FX/a-folder"),
    case("build-class-list-is-folder", "metric", "build", "--source", "uniform", "--class-list", "FX/a-folder"),
    case("build-synset-map-is-folder", "metric", "build", "--source", "wordnet", "--synset-map", "FX/a-folder"),
    case("check-classes-is-folder", "metric", "check", "FX/good.npy", "--classes", "FX/a-folder"),
    case("train-metric-is-folder", *TRAIN_WPGD, "--metric", "FX/a-folder"),
    case("audit-metric-is-folder", *AUDIT, "--metric", "FX/a-folder"),
    case("audit-baseline-is-folder", *AUDIT, "--baseline", "FX/a-folder"),
    case("reproduce-metric-is-folder", *REPRODUCE, "--metric", "FX/a-folder"),
    case("train-data-dir-is-file", *TRAIN_MNIST, "--data-dir", "FX/a-file"),
    case("build-wordnet-dir-is-file", *BUILD_WORDNET, "--wordnet-dir", "FX/a-file"),
    # missing files
    case("build-input-missing", *BUILD_FILE, "--input", "FX/missing.csv"),
    case("build-class-list-missing", "metric", "build", "--source", "uniform", "--class-list", "FX/missing.txt"),
    case("build-synset-map-missing", "metric", "build", "--source", "wordnet", "--synset-map", "FX/missing.csv"),
    case("build-checkpoint-missing", *BUILD_BOUNDARY, "--checkpoint", "FX/missing.pt"),
    case("train-metric-missing", *TRAIN_WPGD, "--metric", "FX/missing.csv"),
    case("train-data-dir-missing", *TRAIN_MNIST, "--data-dir", "FX/missing-dir"),
    case("audit-reference-missing", *AUDIT, "--reference", "FX/missing.pt"),
    # output destinations that cannot be written
    case("build-out-under-a-file", *BUILD_WORDNET, "--out", "FX/a-file/x.csv"),
    case("build-out-is-folder", *BUILD_WORDNET, "--out", "FX/a-folder"),
    case("build-out-unknown-extension", *BUILD_WORDNET, "--out", "W/x.txt"),
    case("train-out-under-a-file", *TRAIN[:-1], "FX/a-file/run.pt"),
    case("train-out-is-folder", *TRAIN[:-1], "FX/a-folder"),
    case("demo-out-is-file", *DEMO[:-1], "FX/a-file"),
    case("reproduce-out-is-file", *REPRODUCE[:-1], "FX/a-file"),
    case("audit-plots-is-file", *AUDIT, "--plots", "FX/a-file"),
    case("show-plot-under-a-file", *SHOW, "--plot", "FX/a-file/x.png"),
    case("show-plot-is-folder", *SHOW, "--plot", "FX/a-folder"),
    case("show-plot-unknown-extension", *SHOW, "--plot", "W/x.bmpx"),
    *[case(f"{name}-json-is-folder", *base, "--json", "FX/a-folder") for name, base in [
        ("check", CHECK), ("show", SHOW), ("compare", COMPARE), ("models", ("models",)), ("datasets", ("datasets",)),
        ("audit", AUDIT), ("bench", BENCH), ("demo", DEMO), ("reproduce", REPRODUCE)]],
    case("check-json-under-a-file", *CHECK, "--json", "FX/a-file/x.json"),
    # datasets on disk that are broken
    case("train-mnist-idx-huge-header", *TRAIN_MNIST, "--data-dir", "FX/idx-huge-header"),
    case("train-mnist-idx-truncated", *TRAIN_MNIST, "--data-dir", "FX/idx-truncated"),
    case("train-mnist-idx-truncated-gzip", *TRAIN_MNIST, "--data-dir", "FX/idx-truncated-gzip"),
    case("train-mnist-idx-bad-magic", *TRAIN_MNIST, "--data-dir", "FX/idx-bad-magic"),
    case("train-mnist-idx-label-count", *TRAIN_MNIST, "--data-dir", "FX/idx-label-count"),
    case("train-mnist-idx-label-range", *TRAIN_MNIST, "--data-dir", "FX/idx-label-range"),
    case("build-linear-idx-huge-header", *BUILD_LINEAR, "--data-dir", "FX/idx-huge-header"),
    case("train-mnist-no-data", *TRAIN_MNIST, "--data-dir", "FX/a-folder"),
    case("reproduce-mnist-idx-truncated", *REPRODUCE, "--dataset", "mnist", "--data-dir", "FX/idx-truncated"),
    case("reproduce-mnist-idx-huge-header", *REPRODUCE, "--dataset", "mnist", "--data-dir", "FX/idx-huge-header"),
    # 9. shared state: junk WordNet
    case("build-wordnet-dir-empty-junk", *BUILD_WORDNET, "--wordnet-dir", "FX/wordnet-empty"),
    case("build-wordnet-dir-garbage-database", *BUILD_WORDNET, "--wordnet-dir", "FX/wordnet-garbage"),
    case("build-wordnet-dir-missing", *BUILD_WORDNET, "--wordnet-dir", "FX/missing-dir"),
    case("build-wordnet-env-empty-junk", *BUILD_WORDNET, env={"WPGDKIT_WORDNET_DIR": "FX/wordnet-empty"}),
    case("build-wordnet-env-garbage-database", *BUILD_WORDNET, env={"WPGDKIT_WORDNET_DIR": "FX/wordnet-garbage"}),
    case("build-synset-map-wordnet-env-junk", "metric", "build", "--source", "wordnet", "--synset-map",
         "FX/synsetmap-good.csv", "-q", env={"WPGDKIT_WORDNET_DIR": "FX/wordnet-garbage"}),
]

CASES = NAMES + FLAGS + REQUIRED + NUMBERS + CHECKPOINTS + METRICS + TEXT + FILES


# --- the fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    """Every input of the corpus, built once: a trained toy checkpoint and broken copies of everything."""
    fx = tmp_path_factory.mktemp("corpus")
    result = runner.invoke(app, ["train", "--dataset", "toy", "--model", "linear", "--method", "ce", "--limit", "64",
                                 "--epochs", "1", "--val-fraction", "0", "--eval-steps", "0", "--device", "cpu",
                                 "--quiet", "--out", str(fx / "toy.pt")])
    assert result.exit_code == 0, (result.stderr, result.exception)
    ci.build_metric_files(fx)
    ci.build_class_lists(fx)
    ci.build_checkpoints(fx, fx / "toy.pt")
    ci.build_wordnet_junk(fx)
    (fx / "synsetmap-good.csv").write_text("class,synset\nkitty,cat.n.01\npup,dog.n.01\n")
    ci.write_mnist(fx / "mnist")
    for broken in ("huge-header", "truncated", "truncated-gzip", "bad-magic", "label-count", "label-range"):
        ci.write_mnist(fx / f"idx-{broken}", break_what=broken)
    return fx


@pytest.fixture
def shared(tmp_path, monkeypatch, fx):
    """Fresh cache, data, home and working folders for one case; the current directory is the working one."""
    dirs = {name: tmp_path / name for name in ("cache", "data", "home", "xdg-cache", "work")}
    for name, d in dirs.items():
        d.mkdir()
        if name != "work":
            (d / "sentinel.txt").write_text(name)
    monkeypatch.setenv("WPGDKIT_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.setenv("WPGDKIT_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("HOME", str(dirs["home"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(dirs["xdg-cache"]))
    monkeypatch.delenv("WPGDKIT_WORDNET_DIR", raising=False)
    monkeypatch.chdir(dirs["work"])
    import torch

    threads = torch.get_num_threads()
    yield dirs
    torch.set_num_threads(threads)


def resolve(token: str, fx: Path, work: Path) -> str:
    if token.startswith("FX/"):
        return str(fx / token[3:])
    if token.startswith("W/"):
        return str(work / token[2:])
    if token.startswith("CP/"):
        src = fx / token[3:]
        return str(ci.copy_into(src, work)) if src.exists() else str(work / src.name)
    return token


def _warnings_to_stderr(message, category, filename, lineno, file=None, line=None):
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def invoke(args: list[str]):
    """Run the CLI in-process; warnings go to (the captured) stderr as they would for a user."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        warnings.showwarning = _warnings_to_stderr
        return runner.invoke(app, args)


def describe(result) -> str:
    exc = result.exception
    what = "" if exc is None or isinstance(exc, SystemExit) else f" exception={type(exc).__name__}: {str(exc)[:200]}"
    err_lines = result.stderr.splitlines()
    return (f"exit={result.exit_code}{what} stderr_lines={len(err_lines)} "
            f"stderr={result.stderr[:300]!r} stdout={result.stdout[:200]!r}")


def contract_violations(result, before, after, fx: Path, *, stdout_allowed: str = "") -> list[str]:
    problems = []
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        problems.append(f"uncaught {type(exc).__name__}")
    if result.exit_code != 2:
        problems.append(f"exit {result.exit_code} (want 2)")
    err = result.stderr
    lines = err.splitlines()
    if len(lines) != 1 or not err.endswith("\n"):
        problems.append(f"{len(lines)} stderr lines (want 1)")
    if not err.startswith("wpgdkit: error: "):
        problems.append("stderr does not start 'wpgdkit: error: '")
    if "Traceback" in err + result.stdout:
        problems.append("traceback printed")
    if "Warning:" in err:
        problems.append("warning on stderr")
    if "\x1b" in err + result.stdout:
        problems.append("ESC byte in output")
    if result.stdout != stdout_allowed:
        problems.append("stdout not empty")
    changes = ci.diff(before, after)
    if changes:
        problems.append("files changed: " + "; ".join(changes))
    tmp_files = [k for k in after if ".tmp" in os.path.basename(k)]
    if tmp_files:
        problems.append(f"temporary files left: {tmp_files[:3]}")
    if (fx / ci.MARKER).exists():
        (fx / ci.MARKER).unlink()
        problems.append("CODE RAN (marker created)")
    return problems


def run_case(c: C, fx: Path, shared: dict, monkeypatch) -> None:
    work = shared["work"]
    args = [resolve(a, fx, work) for a in c.args]
    for key, value in c.env.items():
        monkeypatch.setenv(key, resolve(value, fx, work))
    if "wordnet" in c.args:
        _prepare_wordnet_copy()
    roots = [*shared.values(), fx]
    before = ci.snapshot(*roots)
    result = invoke(args)
    after = ci.snapshot(*roots)
    problems = contract_violations(result, before, after, fx)
    if problems:
        pytest.fail("; ".join(problems) + " | " + describe(result), pytrace=False)


def _prepare_wordnet_copy() -> None:
    """The cache's NLTK copy of Debian's WordNet, as the first WordNet command on a machine leaves it.

    Opening Debian's database prepares that copy (wpgdkit.wordnet.prepare_nltk_data: a cache, rebuilt at
    will), whether the command then succeeds or not; made here, before the snapshot, so that a case checks
    what its bad input writes, and does not depend on whether an earlier test left a reader open in this process.
    """
    from wpgdkit.wordnet import DEBIAN_WORDNET_DIR, prepare_nltk_data

    if (DEBIAN_WORDNET_DIR / "data.noun").is_file():
        prepare_nltk_data(DEBIAN_WORDNET_DIR)


@pytest.mark.parametrize("c", CASES)
def test_bad_input_is_one_line_and_exit_2(c, fx, shared, monkeypatch):
    run_case(c, fx, shared, monkeypatch)


# --- hypothesis: random bytes as files, random numbers as flags ---------------------------------

# No shrinking: a failure reports the first bad example, and the module stays fast.
FUZZ = settings(max_examples=15, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _fuzz_once(fx, shared, args, *, may_succeed: bool) -> None:
    roots = [*shared.values(), fx]
    before = ci.snapshot(*roots)
    result = invoke(args)
    after = ci.snapshot(*roots)
    if may_succeed and result.exit_code == 0 and result.exception is None:
        assert "Traceback" not in result.stderr and "\x1b" not in result.stdout + result.stderr
        return
    problems = contract_violations(result, before, after, fx)
    assert not problems, ("; ".join(problems) + " | " + describe(result) + f" | args={args}")


@pytest.mark.parametrize("suffix", [".csv", ".json"])
@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_metric_file(fx, shared, suffix, data):
    path = shared["work"].parent / f"fuzz{suffix}"
    path.write_bytes(data)
    _fuzz_once(fx, shared, ["metric", "check", str(path), "--samples", "3", "--sinkhorn-samples", "0"], may_succeed=True)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_class_list(fx, shared, data):
    path = shared["work"].parent / "fuzz-classes.txt"
    path.write_bytes(data)
    # good.npy is 3x3: a random class list is valid only by a fluke of three distinct UTF-8 lines
    _fuzz_once(fx, shared, ["metric", "check", str(fx / "good.npy"), "--classes", str(path), "--samples", "3",
                            "--sinkhorn-samples", "0"], may_succeed=True)


def _not_a_positive_finite_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return True
    return not (math.isfinite(value) and value > 0)


BAD_NUMBER = st.one_of(
    st.floats(max_value=0.0).map(repr),
    st.sampled_from(["nan", "-inf", "inf", "1e999", "-0", "0x1", "1/0", "--1", "", " ", "1,5", "½", "٣"]),
    st.text(max_size=12).filter(_not_a_positive_finite_number),
)


@FUZZ
@given(value=BAD_NUMBER)
def test_random_bad_eps_for_train(fx, shared, value):
    _fuzz_once(fx, shared, [resolve(a, fx, shared["work"]) for a in TRAIN_PGD] + ["--eps", value], may_succeed=False)


@FUZZ
@given(value=BAD_NUMBER)
def test_random_bad_lr_for_train(fx, shared, value):
    _fuzz_once(fx, shared, [resolve(a, fx, shared["work"]) for a in TRAIN] + ["--lr", value], may_succeed=False)


@FUZZ
@given(value=st.one_of(st.integers(max_value=-1).map(str), st.integers(min_value=2**64).map(str),
                       # "3.0" is read as the whole number 3 (typer's lax integer parsing): a valid seed.
                       st.floats().filter(lambda v: not (math.isfinite(v) and v == int(v) and 0 <= v < 2**32)).map(repr),
                       st.text(max_size=8).filter(lambda s: not s.strip().isdigit())))
def test_random_bad_seed_for_metric_check(fx, shared, value):
    _fuzz_once(fx, shared, [resolve(a, fx, shared["work"]) for a in CHECK] + ["--seed", value], may_succeed=False)


@FUZZ
@given(value=st.one_of(st.floats(allow_nan=True).filter(lambda v: not (math.isfinite(v) and v > 0)).map(repr),
                       st.text(max_size=8).filter(_not_a_positive_finite_number)))
def test_random_bad_p_for_metric_check(fx, shared, value):
    _fuzz_once(fx, shared, [resolve(a, fx, shared["work"]) for a in CHECK] + ["--p", value], may_succeed=False)


# --- 1. valid but hostile text: exit 0, printed literally, no ESC, no traceback ---------------

HOSTILE_COMMANDS = {
    "show": lambda p: ["metric", "show", p],
    "check": lambda p: ["metric", "check", p, "--samples", "3", "--sinkhorn-samples", "0"],
    "compare": lambda p: ["metric", "compare", p, p],
    "build-file": lambda p: ["metric", "build", "--source", "file", "--input", p, "--out", "W/out.json"],
}
HOSTILE_FILES = ["csv-markup-names", "json-esc-names", "json-hostile-provenance", "path-with-markup", "csv-bom", "csv-crlf"]


@pytest.mark.parametrize("command", list(HOSTILE_COMMANDS))
@pytest.mark.parametrize("kind", HOSTILE_FILES)
def test_valid_but_hostile_text_is_printed_literally(fx, shared, kind, command):
    files = ci.hostile_metrics(shared["work"].parent)
    path = str(files[kind])
    args = [resolve(a, fx, shared["work"]) for a in HOSTILE_COMMANDS[command](path)]
    result = invoke(args)
    out = result.stdout + result.stderr
    assert "\x1b" not in out and "\x07" not in out, describe(result)
    if kind == "json-esc-names":
        # Control characters in class names are refused where the names are read (one line, the
        # character shown as U+001B, never sent raw); markup and paths are printed escaped.
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, describe(result)
        assert "control character U+001B" in result.stderr and "Traceback" not in out, describe(result)
        return
    assert result.exit_code == 0, describe(result)
    assert result.exception is None or isinstance(result.exception, SystemExit), describe(result)
    assert "Traceback" not in out, describe(result)
    assert "\x1b" not in out and "\x07" not in out, describe(result)
    # Rich wraps long lines at the console's width: compare with whitespace removed.
    flat = re.sub(r"\s+", "", result.stdout)
    if kind == "csv-markup-names" and command == "show":
        for name in ci.HOSTILE_NAMES[:3]:
            assert re.sub(r"\s+", "", name) in flat, (name, result.stdout[:500])
    if kind == "json-hostile-provenance" and command == "show":
        assert "[bold]ds" in flat and "[/x]" in flat, result.stdout[:800]
    if kind == "path-with-markup" and command in ("show", "check"):
        assert "[red]plain[/red].csv" in flat, result.stdout[:800]
    if kind in ("csv-bom", "csv-crlf") and command == "show":
        assert "\ufeff" not in out and "\r" not in out, out[:500]
    if command == "build-file":
        from wpgdkit.labelmetric import read_metric

        written = read_metric(shared["work"] / "out.json")
        assert all("\ufeff" not in c and "\r" not in c for c in written.classes), written.classes


# --- numbers at the edges of a double: either handled (exit 0, finite output) or refused cleanly --


@pytest.mark.parametrize("command", ["show", "check", "compare"])
@pytest.mark.parametrize("name", ["1e308", "1e200", "1e-320"])
def test_entries_near_the_edges_of_a_double(fx, shared, name, command):
    path = str(fx / "edge" / f"{name}.csv")
    args = {"show": ["metric", "show", path, "--json", "-"],
            "check": ["metric", "check", path, "--samples", "3", "--sinkhorn-samples", "0", "--p", "2"],
            "compare": ["metric", "compare", path, str(fx / "good.csv"), "--json", "-"]}[command]
    roots = [*shared.values(), fx]
    before = ci.snapshot(*roots)
    result = invoke(args)
    after = ci.snapshot(*roots)
    if result.exit_code == 2:
        problems = contract_violations(result, before, after, fx)
        assert not problems, "; ".join(problems) + " | " + describe(result)
        return
    assert result.exit_code in (0, 1), describe(result)  # check: 1 is a check that ran and failed
    assert result.exception is None or isinstance(result.exception, SystemExit), describe(result)
    assert result.stderr.count("Warning") == 0 and "Traceback" not in result.stderr, describe(result)
    if command != "check":
        json.loads(result.stdout, parse_constant=_refuse_constant)  # strict JSON: no NaN/Infinity


def _refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


# --- 5. divergence: a NaN loss stops with one line naming epoch and step ------------------------


@pytest.mark.parametrize("extra", [
    pytest.param(("--method", "ce", "--model", "mlp", "--lr", "1000", "--batch-size", "32", "--limit", "256",
                  "--epochs", "3", "--schedule", "constant"), id="lr-1000-mlp"),
    pytest.param(("--method", "pgd", "--norm", "l2", "--eps", "1e300", "--steps", "1", "--epochs", "2"), id="eps-1e300"),
])
def test_divergence_stops_with_one_line_and_keeps_no_nan_checkpoint(fx, shared, extra):
    import torch

    out = shared["work"] / "run.pt"
    args = [resolve(a, fx, shared["work"]) for a in TRAIN] + list(extra)
    result = invoke(args)
    assert result.exit_code == 2, describe(result)
    assert result.exception is None or isinstance(result.exception, SystemExit), describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wpgdkit: error: "), describe(result)
    assert "epoch" in lines[0] and "step" in lines[0], lines[0]
    if out.exists():  # a previous, finite epoch may be kept
        payload = torch.load(out, weights_only=True)
        for name, tensor in payload["model"]["state_dict"].items():
            assert torch.isfinite(tensor).all(), f"checkpoint kept non-finite {name}"
    for log in shared["work"].glob("*.jsonl"):
        for n, line in enumerate(log.read_text().splitlines(), start=1):
            json.loads(line, parse_constant=_refuse_constant)  # raises on NaN / Infinity
    assert not [p for p in shared["work"].rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name]


# --- 8. a full disk: stdout that cannot be written (subprocess, > /dev/full) --------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize("args", [
    pytest.param(["datasets", "--json", "-"], id="datasets-json-stdout"),
    pytest.param(["metric", "build", "--source", "uniform", "--dataset", "cifar10", "-q"], id="build-csv-stdout"),
])
def test_stdout_on_a_full_disk_is_one_line(tmp_path, args):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "WPGDKIT_DATA_DIR": str(tmp_path / "data"), "WPGDKIT_CACHE_DIR": str(tmp_path / "cache")}
    with open("/dev/full", "w") as full:
        proc = subprocess.run(WPGDKIT + args, stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                              timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-800:])
    assert len(lines) == 1 and lines[0].startswith("wpgdkit: error: "), proc.stderr[-800:]
    assert not [p for p in tmp_path.rglob("*")], list(tmp_path.rglob("*"))


# --- the base command lines are valid: every case above fails for its own reason ---------------

BASES = {"train-ce": TRAIN, "train-pgd": TRAIN_PGD, "train-wpgd": TRAIN_WPGD, "train-mnist": TRAIN_MNIST,
         "audit": AUDIT, "build-boundary": (*BUILD_BOUNDARY, "--checkpoint", "FX/toy.pt"),
         "build-linear": BUILD_LINEAR, "build-file": (*BUILD_FILE, "--input", "FX/good.json"),
         "check": CHECK, "show": SHOW, "compare": COMPARE, "reproduce": REPRODUCE, "demo": DEMO, "bench": BENCH}


@pytest.mark.parametrize("base", list(BASES))
def test_base_command_line_is_valid(fx, shared, base):
    result = invoke([resolve(a, fx, shared["work"]) for a in BASES[base]])
    assert result.exit_code in (0, 1) and (result.exception is None or isinstance(result.exception, SystemExit)), \
        describe(result)
