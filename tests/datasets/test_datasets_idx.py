"""IDX reading and the MNIST / Fashion-MNIST loaders, on small files in the real format."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from torchvision.datasets.mnist import read_image_file, read_label_file

import wpgdkit.datasets.mnist as mnist_module
from wpgdkit.datasets import load_split, load_tensors
from wpgdkit.datasets.idx import read_idx
from wpgdkit.errors import DataNotFoundError, WpgdkitError

N_TRAIN, N_TEST = 5, 3
TRAIN_LABELS = [3, 1, 4, 1, 5]
TEST_LABELS = [9, 2, 6]


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX, written out from the format's definition."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes(order="C")


def write_idx(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def known_images(n: int, offset: int) -> np.ndarray:
    """Image k has pixel (r, c) = (offset + 40 k + 3 r + c) mod 256."""
    k, r, c = np.meshgrid(np.arange(n), np.arange(28), np.arange(28), indexing="ij")
    return ((offset + 40 * k + 3 * r + c) % 256).astype(np.uint8)


def write_split_files(folder: Path, *, gz: bool) -> None:
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", known_images(N_TRAIN, 0))
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", np.array(TRAIN_LABELS, dtype=np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", known_images(N_TEST, 100))
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.array(TEST_LABELS, dtype=np.uint8))


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch, tmp_path):
    """Keep Debian's real Fashion-MNIST out of these tests."""
    monkeypatch.setitem(mnist_module.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "system-fashion",))


LAYOUTS = [
    ("mnist", "MNIST/raw"),
    ("mnist", "mnist"),
    ("mnist", "."),
    ("fashion-mnist", "FashionMNIST/raw"),
    ("fashion-mnist", "fashion-mnist"),
    ("fashion-mnist", "."),
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(("name", "layout"), LAYOUTS)
def test_load_from_each_layout(tmp_path, name, layout, gz):
    write_split_files(tmp_path / layout, gz=gz)
    x, y = load_tensors(name, "train", data_dir=tmp_path)
    assert x.dtype == torch.float32 and x.shape == (N_TRAIN, 1, 28, 28)
    assert y.dtype == torch.int64 and y.tolist() == TRAIN_LABELS
    # Hand-computed pixels: image 2, row 5, column 7 is 40*2 + 3*5 + 7 = 102.
    assert x[2, 0, 5, 7].item() == np.float32(102) / np.float32(255)
    assert x[4, 0, 27, 27].item() == np.float32((160 + 81 + 27) % 256) / np.float32(255)
    expected = torch.from_numpy(known_images(N_TRAIN, 0)).unsqueeze(1).to(torch.float32) / 255
    assert torch.equal(x, expected)

    test = load_split(name, "test", data_dir=tmp_path)
    assert len(test) == N_TEST
    image, label = test[1]
    assert type(label) is int and label == TEST_LABELS[1]
    assert torch.equal(image, torch.from_numpy(known_images(N_TEST, 100)[1]).unsqueeze(0).float() / 255)


def test_search_order_and_plain_before_gzip(tmp_path):
    # torchvision's folder wins over the plain folder; a plain file over its .gz twin.
    write_split_files(tmp_path / "mnist", gz=False)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte", np.array([7, 8], np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.array([0, 0], np.uint8))
    x, y = load_tensors("mnist", "train", data_dir=tmp_path)
    assert y.tolist() == [7, 8] and x.abs().sum() == 0


def test_images_and_labels_are_not_mixed_across_folders(tmp_path):
    write_idx(tmp_path / "MNIST/raw/train-images-idx3-ubyte", known_images(2, 0))
    write_idx(tmp_path / "mnist/train-labels-idx1-ubyte", np.array([1, 2], np.uint8))
    with pytest.raises(DataNotFoundError):
        load_split("mnist", "train", data_dir=tmp_path)


def test_reader_agrees_with_torchvision(tmp_path):
    images = write_idx(tmp_path / "images", known_images(4, 17))
    labels = write_idx(tmp_path / "labels", np.array([0, 9, 5, 5], np.uint8))
    assert torch.equal(read_idx(images), read_image_file(str(images)))
    assert torch.equal(read_idx(labels), read_label_file(str(labels)))
    assert read_idx(images).dtype == torch.uint8 and read_idx(images).shape == (4, 28, 28)


def test_gzip_and_plain_read_identically(tmp_path):
    array = known_images(3, 5)
    assert torch.equal(read_idx(write_idx(tmp_path / "a", array)), read_idx(write_idx(tmp_path / "a.gz", array)))


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(known_images(2, 0))[:-10])
    with pytest.raises(WpgdkitError, match=r"train-images-idx3-ubyte is truncated"):
        read_idx(path)
    path.write_bytes(idx_bytes(known_images(2, 0))[:9])
    with pytest.raises(WpgdkitError, match="truncated"):
        read_idx(path)


def test_truncated_gzip_is_rejected(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(known_images(2, 0)))[:-20])
    with pytest.raises(WpgdkitError, match="labels.gz"):
        read_idx(path)


def test_wrong_magic_is_rejected(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"\x1f\x8b\x08\x03" + bytes(100))
    with pytest.raises(WpgdkitError, match=r"not-idx is not an IDX file"):
        read_idx(path)


def test_other_element_types_and_trailing_bytes_are_rejected(tmp_path):
    floats = tmp_path / "floats"
    floats.write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2) + struct.pack(">2f", 1.0, 2.0))
    with pytest.raises(WpgdkitError, match="0x0D"):
        read_idx(floats)
    trailing = tmp_path / "trailing"
    trailing.write_bytes(idx_bytes(np.array([1, 2], np.uint8)) + b"xx")
    with pytest.raises(WpgdkitError, match="2 trailing bytes"):
        read_idx(trailing)


def test_malformed_split_in_loader_names_file(tmp_path):
    write_split_files(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(WpgdkitError, match=r"train-labels-idx1-ubyte"):
        load_split("mnist", "train", data_dir=tmp_path)


def test_count_mismatch_and_bad_labels(tmp_path):
    write_split_files(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([1, 2], np.uint8))
    with pytest.raises(WpgdkitError, match="2 labels but .* 5 images"):
        load_split("mnist", "train", data_dir=tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([1, 2, 3, 4, 10], np.uint8))
    with pytest.raises(WpgdkitError, match="label 10"):
        load_split("mnist", "train", data_dir=tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(WpgdkitError, match=r"\(32, 32\)"):
        load_split("mnist", "test", data_dir=tmp_path)


@pytest.mark.parametrize(("name", "folders"), [
    ("mnist", ["MNIST/raw", "mnist", ""]),
    ("fashion-mnist", ["FashionMNIST/raw", "fashion-mnist", "", "system-fashion"]),
])
def test_missing_files_name_every_place_looked(tmp_path, name, folders):
    with pytest.raises(DataNotFoundError) as info:
        load_split(name, "train", data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{name} not found (looked in ")
    looked = message.split("(looked in ", 1)[1].split(")", 1)[0].split(", ")
    assert looked == [str(tmp_path / f) if f else str(tmp_path) for f in folders]
    assert "--download" in message
    if name == "fashion-mnist":
        assert "apt-get install dataset-fashion-mnist" in message


def test_debian_dir_is_listed_by_default(monkeypatch, tmp_path):
    monkeypatch.undo()  # back to the real system folders
    looked = [str(p) for p in mnist_module.SYSTEM_DIRS["fashion-mnist"]]
    assert looked == ["/usr/share/datasets/fashion-mnist"]


def test_download_skipped_when_files_present(tmp_path, monkeypatch):
    write_split_files(tmp_path / "MNIST" / "raw", gz=True)

    def no_network(*args, **kwargs):
        raise AssertionError("download attempted although the files are present")

    monkeypatch.setattr(mnist_module, "download_with_torchvision", no_network)
    _, y = load_tensors("mnist", "train", data_dir=tmp_path, download=True)
    assert y.tolist() == TRAIN_LABELS


def test_download_goes_through_torchvision_layout(tmp_path, monkeypatch):
    calls = []

    class FakeFashionMNIST:
        """Stands in for torchvision's class: 'downloads' into root/FashionMNIST/raw."""

        def __init__(self, root, train, download):
            calls.append((Path(root), train, download))
            write_split_files(Path(root) / "FashionMNIST" / "raw", gz=False)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    _, y = load_tensors("fashion-mnist", "test", data_dir=tmp_path, download=True)
    assert y.tolist() == TEST_LABELS
    assert calls == [(tmp_path, False, True)]


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, root, train, download):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried 2 mirrors.")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(DataNotFoundError, match="could not download mnist") as info:
        load_split("mnist", "train", data_dir=tmp_path, download=True)
    assert "\n" not in str(info.value) and "Tried 2 mirrors" in str(info.value)


def test_huge_header_dimensions_are_one_error_naming_the_file(tmp_path):
    # 65536^4 = 2^64: NumPy's int64 product wraps to 0, which matched an empty payload and reshape failed.
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 4]) + struct.pack(">4I", 65536, 65536, 65536, 65536))
    with pytest.raises(WpgdkitError, match=r"train-images-idx3-ubyte is truncated or its header is corrupted"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\0" * 8)
    with pytest.raises(WpgdkitError, match="header is corrupted"):
        read_idx(path)


def test_a_folder_given_for_an_idx_file_says_so(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").mkdir()
    with pytest.raises(WpgdkitError, match="is a folder, not a file"):
        read_idx(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataNotFoundError, match="not found"):
        read_idx(tmp_path / "nothing-here")


def test_a_folder_in_place_of_a_dataset_file_says_so(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").mkdir()
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, dtype=np.uint8)))
    with pytest.raises(WpgdkitError, match="train-images-idx3-ubyte is a folder, not a file"):
        load_split("fashion-mnist", "train", data_dir=tmp_path)
