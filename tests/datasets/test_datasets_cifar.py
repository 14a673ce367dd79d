"""CIFAR-10/100 loading from small folders in the real pickled format."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets

import wpgdkit.datasets.cifar as cifar_module
from wpgdkit.datasets import get_dataset, load_split, load_tensors
from wpgdkit.datasets.cifar import load_cifar_pickle
from wpgdkit.errors import DataNotFoundError, WpgdkitError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def known_rows(n: int, offset: int) -> np.ndarray:
    """CIFAR rows: byte c*1024 + r*32 + col of image i is (offset + 7 i + 80 c + 2 r + col) mod 256."""
    i, c, r, col = np.meshgrid(np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    values = (offset + 7 * i + 80 * c + 2 * r + col) % 256
    return values.reshape(n, 3072).astype(np.uint8)


def dump(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def batch(rows: np.ndarray, labels: list[int], labels_key: bytes = b"labels") -> dict:
    return {
        b"batch_label": b"testing batch 1 of 1",
        labels_key: labels,
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }


def write_cifar10(root: Path, *, names: list[str] = CIFAR10_NAMES, meta: bool = True) -> Path:
    folder = root / "cifar-10-batches-py"
    for b in range(1, 6):
        dump(folder / f"data_batch_{b}", batch(known_rows(2, 10 * b), [b, (b + 4) % 10]))
    dump(folder / "test_batch", batch(known_rows(3, 200), [7, 0, 9]))
    if meta:
        dump(folder / "batches.meta", {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": 2, b"num_vis": 3072})
    return folder


def write_cifar100(root: Path, *, names: list[str] | None = None) -> Path:
    folder = root / "cifar-100-python"
    names = list(get_dataset("cifar100").classes) if names is None else names
    dump(folder / "train", batch(known_rows(4, 3), [0, 99, 1, 50], labels_key=b"fine_labels") | {b"coarse_labels": [4, 19, 1, 0]})
    dump(folder / "test", batch(known_rows(2, 60), [98, 2], labels_key=b"fine_labels") | {b"coarse_labels": [0, 0]})
    dump(folder / "meta", {b"fine_label_names": [n.encode() for n in names], b"coarse_label_names": [b"c"] * 20})
    return folder


def expected_images(n: int, offset: int) -> torch.Tensor:
    """The same pixels computed directly in (N, C, H, W) order by broadcasting, not by reshaping rows."""
    i = torch.arange(n).view(n, 1, 1, 1)
    c = torch.arange(3).view(1, 3, 1, 1)
    r = torch.arange(32).view(1, 1, 32, 1)
    col = torch.arange(32).view(1, 1, 1, 32)
    return ((offset + 7 * i + 80 * c + 2 * r + col) % 256).to(torch.float32) / 255


def test_cifar10_train_concatenates_batches_in_order(tmp_path):
    write_cifar10(tmp_path)
    x, y = load_tensors("cifar10", "train", data_dir=tmp_path)
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [1, 5, 2, 6, 3, 7, 4, 8, 5, 9]
    assert torch.equal(x[0:2], expected_images(2, 10))
    assert torch.equal(x[8:10], expected_images(2, 50))


def test_cifar10_channel_layout_by_hand(tmp_path):
    write_cifar10(tmp_path)
    image, label = load_split("cifar10", "test", data_dir=tmp_path)[1]
    assert label == 0 and type(label) is int
    # Image 1 of the test batch: first 1024 bytes red, then green, then blue, rows of 32.
    assert image[0, 0, 0].item() == np.float32(207) / np.float32(255)  # 200 + 7
    assert image[1, 0, 0].item() == np.float32(287 % 256) / np.float32(255)  # + 80 for green
    assert image[2, 3, 5].item() == np.float32((207 + 160 + 6 + 5) % 256) / np.float32(255)


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    x, y = load_tensors("cifar100", "train", data_dir=tmp_path)
    assert y.tolist() == [0, 99, 1, 50]
    assert torch.equal(x, expected_images(4, 3))
    x, y = load_tensors("cifar100", "test", data_dir=tmp_path)
    assert y.tolist() == [98, 2] and torch.equal(x, expected_images(2, 60))


def test_meta_is_optional(tmp_path):
    write_cifar10(tmp_path, meta=False)
    assert len(load_split("cifar10", "test", data_dir=tmp_path)) == 3


class _Py2Pickler(pickle._Pickler):
    """Writes bytes the way Python 2 wrote its str: BINSTRING opcodes, no _codecs.encode."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def py2_pickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # The original archives were written by numpy 1.x, which lived in numpy.core.
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def test_python2_style_pickles_like_the_originals(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    raw = py2_pickle(batch(known_rows(3, 200), [7, 0, 9]))
    globals_used = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    (folder / "test_batch").write_bytes(raw)
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [n.encode() for n in CIFAR10_NAMES]}))
    x, y = load_tensors("cifar10", "test", data_dir=tmp_path)
    assert y.tolist() == [7, 0, 9] and torch.equal(x, expected_images(3, 200))


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Open:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("payload", [_System, _Open])
def test_malicious_pickle_is_refused(tmp_path, payload):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    evil = batch(known_rows(3, 200), [7, 0, 9]) | {b"filenames": payload(marker)}
    dump(tmp_path / "cifar-10-batches-py" / "test_batch", evil)
    with pytest.raises(WpgdkitError, match=r"refusing to unpickle \w+\.(system|open) from .*test_batch: CIFAR batches hold only arrays and lists"):
        load_split("cifar10", "test", data_dir=tmp_path)
    assert not marker.exists()


def test_plain_pickle_would_have_run_the_payload(tmp_path):
    # Control for the test above: the marker mechanism really fires without the guard.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Open(marker), protocol=2)).close()
    assert marker.exists()


def test_codecs_encode_only_for_latin1(tmp_path):
    path = tmp_path / "sneaky"
    # _codecs.encode(str, "rot13") is allowed by name but not with another codec.
    raw = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    assert pickle.loads(raw) == "nop"  # a valid pickle: only the guard stops it
    path.write_bytes(raw)
    with pytest.raises(WpgdkitError, match=r"sneaky .*_codecs.encode with encoding 'rot13'"):
        load_cifar_pickle(path)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_wrong_meta_names_are_rejected(tmp_path, name):
    if name == "cifar10":
        swapped = CIFAR10_NAMES.copy()
        swapped[3], swapped[5] = swapped[5], swapped[3]
        write_cifar10(tmp_path, names=swapped)
    else:
        names = list(get_dataset("cifar100").classes)
        write_cifar100(tmp_path, names=names[:-1] + ["wyrm"])
    with pytest.raises(WpgdkitError, match="label order is a contract"):
        load_split(name, "train", data_dir=tmp_path)


def test_shape_and_length_mismatches_name_the_file(tmp_path):
    folder = write_cifar10(tmp_path)
    dump(folder / "data_batch_3", batch(known_rows(2, 0)[:, :3000], [1, 2]))
    with pytest.raises(WpgdkitError, match=r"data_batch_3: 'data' must be a uint8 array of shape \(n, 3072\)"):
        load_split("cifar10", "train", data_dir=tmp_path)
    dump(folder / "data_batch_3", batch(known_rows(2, 0), [1, 2, 3]))
    with pytest.raises(WpgdkitError, match=r"data_batch_3 holds 2 images but 3 labels"):
        load_split("cifar10", "train", data_dir=tmp_path)
    dump(folder / "data_batch_3", batch(known_rows(2, 0), [1, 10]))
    with pytest.raises(WpgdkitError, match=r"data_batch_3 holds labels outside 0..9"):
        load_split("cifar10", "train", data_dir=tmp_path)
    dump(folder / "data_batch_3", batch(known_rows(2, 0).astype(np.int64), [1, 2]))
    with pytest.raises(WpgdkitError, match="data_batch_3"):
        load_split("cifar10", "train", data_dir=tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(WpgdkitError, match="data_batch_3"):
        load_split("cifar10", "train", data_dir=tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"cifar10 not found \(looked in .*cifar-10-batches-py\); pass --download"):
        load_split("cifar10", "train", data_dir=tmp_path)
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataNotFoundError, match=r"lacks data_batch_4\)"):
        load_split("cifar10", "train", data_dir=tmp_path)
    assert len(load_split("cifar10", "test", data_dir=tmp_path)) == 3
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        load_split("cifar100", "test", data_dir=tmp_path)


def test_download_skipped_when_present_and_used_when_missing(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "have")

    def no_network(*args, **kwargs):
        raise AssertionError("download attempted although the files are present")

    monkeypatch.setattr(cifar_module, "download_with_torchvision", no_network)
    assert len(load_split("cifar10", "train", data_dir=tmp_path / "have", download=True)) == 10
    monkeypatch.undo()

    calls = []

    class FakeCIFAR100:
        def __init__(self, root, train, download):
            calls.append((Path(root), train, download))
            write_cifar100(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", FakeCIFAR100)
    _, y = load_tensors("cifar100", "test", data_dir=tmp_path / "fetch", download=True)
    assert y.tolist() == [98, 2]
    assert calls == [(tmp_path / "fetch", False, True)]


def test_a_folder_in_place_of_a_batch_file_says_so(tmp_path):
    folder = write_cifar10(tmp_path)
    path = folder / "data_batch_3"
    path.unlink()
    path.mkdir()
    with pytest.raises(WpgdkitError, match="data_batch_3 is a folder, not a file"):
        load_tensors("cifar10", "train", data_dir=tmp_path)
