"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    # One intra-op thread: the suite's tensors are tiny, and on a small shared
    # machine a second thread makes them 10-100x slower, not faster.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _assert_one_line_error(result, *fragments: str) -> None:
    """Exit code 2, a single ``wpgdkit: error:`` line on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("wpgdkit: error:"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """``WPGDKIT_CACHE_DIR`` in a temporary folder for the whole run: no test writes the user's cache.

    The WordNet copy for NLTK and the WordNet distance cache go there (subprocesses inherit it).
    """
    folder = tmp_path_factory.mktemp("wpgdkit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WPGDKIT_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture
def assert_one_line_error():
    """The check every bad-input CLI test makes on a CliRunner result."""
    return _assert_one_line_error


@pytest.fixture(scope="session")
def wordnet():
    """WordNet 3.0 through NLTK (from /usr/share/wordnet or NLTK's data path)."""
    from wpgdkit.wordnet import load_wordnet

    return load_wordnet()


# --- small data sets in the real on-disk formats ---------------------------------------

import pickle  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _cifar_batch(rng, n: int, num_classes: int, key: bytes) -> dict:
    labels = [int(i % num_classes) for i in range(n)]
    return {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), key: labels}


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # the protocol of the original archives


@pytest.fixture
def cifar10_dir(tmp_path) -> Path:
    """``cifar-10-batches-py`` with 5 training batches of 4 images and a test batch of 6."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _cifar_batch(rng, 4, 10, b"labels"))
    _dump(folder / "test_batch", _cifar_batch(rng, 6, 10, b"labels"))
    return tmp_path


@pytest.fixture
def cifar100_dir(tmp_path) -> Path:
    """``cifar-100-python`` with 20 training and 10 test images."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _dump(folder / "train", _cifar_batch(rng, 20, 100, b"fine_labels"))
    _dump(folder / "test", _cifar_batch(rng, 10, 100, b"fine_labels"))
    return tmp_path


@pytest.fixture
def tiny_imagenet_dir(tmp_path) -> Path:
    """A ``tiny-imagenet-200`` folder with 3 JPEGs for each of the first 3 classes."""
    from PIL import Image

    from wpgdkit.datasets import get_dataset

    wnids = get_dataset("tiny-imagenet").classes
    root = tmp_path / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(2)
    annotations = []
    for c, wnid in enumerate(wnids[:3]):
        images = root / "train" / wnid / "images"
        images.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{wnid}_{i}.JPEG")
        name = f"val_{c}.JPEG"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "val" / "images" / name)
        annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return tmp_path


@pytest.fixture
def reference_check_calls(monkeypatch) -> list:
    """Each real ``reference_check`` run while the test runs, recorded (its options): what the check cache spared."""
    from wpgdkit.labelmetric import ot_check

    real = ot_check.reference_check
    seen = []

    def counting(metric, **options):
        seen.append(options)
        return real(metric, **options)

    monkeypatch.setattr(ot_check, "reference_check", counting)
    return seen
