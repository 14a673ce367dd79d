"""Tiny-ImageNet loading from a small folder with the real layout."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from wpgdkit.datasets import ImageFileDataset, get_dataset, load_split, load_tensors
from wpgdkit.datasets.tiny_imagenet import canonical_wnids
from wpgdkit.errors import DataNotFoundError, WpgdkitError

WNIDS = canonical_wnids()
TOLERANCE = 3 / 255  # JPEG of a solid colour decodes to within a level or two


def colour(seed: int) -> tuple[int, int, int]:
    return ((37 * seed) % 256, (200 - 11 * seed) % 256, (90 + 53 * seed) % 256)


def write_jpeg(path: Path, rgb: tuple[int, int, int], size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), rgb).save(path, format="JPEG", quality=95)


# (label, file name, colour seed) of the train images, in the expected order:
# canonical label order, then natural file order (_2 before _10).
TRAIN = [
    (0, f"{WNIDS[0]}_2.JPEG", 1),
    (0, f"{WNIDS[0]}_10.JPEG", 2),
    (5, f"{WNIDS[5]}_0.JPEG", 3),
    (5, f"{WNIDS[5]}_1.JPEG", 4),
    (199, f"{WNIDS[199]}_7.JPEG", 5),
]
# (file name, label, colour seed) of the val images in expected order.
VAL = [("val_0.JPEG", 17, 6), ("val_2.JPEG", 0, 7), ("val_10.JPEG", 199, 8)]


def write_tiny_imagenet(root: Path, *, wnids: list[str] | None = None) -> Path:
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    listed = list(WNIDS) if wnids is None else wnids
    random.Random(0).shuffle(listed)  # the folder's own order must not matter
    (folder / "wnids.txt").write_text("\n".join(listed) + "\n")
    for label, name, seed in TRAIN:
        write_jpeg(folder / "train" / WNIDS[label] / "images" / name, colour(seed))
    (folder / "train" / WNIDS[7] / "images").mkdir(parents=True)  # a class with no images
    (folder / "train" / WNIDS[0] / f"{WNIDS[0]}_boxes.txt").write_text("not an image\n")
    lines = []
    for name, label, seed in reversed(VAL):  # annotation order differs from file order
        write_jpeg(folder / "val" / "images" / name, colour(seed))
        lines.append(f"{name}\t{WNIDS[label]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def expected(seeds: list[int]) -> torch.Tensor:
    return torch.stack([torch.tensor(colour(s), dtype=torch.float32).view(3, 1, 1).expand(3, 64, 64) / 255 for s in seeds])


def test_canonical_wnids_are_the_registered_classes():
    assert len(WNIDS) == len(set(WNIDS)) == 200
    assert all(w.startswith("n") and len(w) == 9 for w in WNIDS)
    assert get_dataset("tiny-imagenet").classes == WNIDS
    assert WNIDS[0] == "n02124075"  # Egyptian cat, first line of the shipped file


def test_train_split_follows_canonical_order(tmp_path):
    write_tiny_imagenet(tmp_path)
    x, y = load_tensors("tiny-imagenet", "train", data_dir=tmp_path)
    assert y.dtype == torch.int64 and y.tolist() == [label for label, _, _ in TRAIN]
    assert x.dtype == torch.float32 and x.shape == (5, 3, 64, 64)
    torch.testing.assert_close(x, expected([s for _, _, s in TRAIN]), atol=TOLERANCE, rtol=0)


def test_test_split_is_val_folder(tmp_path):
    write_tiny_imagenet(tmp_path)
    dataset = load_split("tiny-imagenet", "test", data_dir=tmp_path)
    assert isinstance(dataset, ImageFileDataset)
    assert [p.name for p in dataset.paths] == [name for name, _, _ in VAL]
    image, label = dataset[2]
    assert type(label) is int and label == 199
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    torch.testing.assert_close(image, expected([8])[0], atol=TOLERANCE, rtol=0)


def test_data_dir_may_be_the_folder_itself(tmp_path):
    folder = write_tiny_imagenet(tmp_path)
    assert len(load_split("tiny-imagenet", "test", data_dir=folder)) == 3


def test_limit_decodes_only_the_chosen_images(tmp_path, monkeypatch):
    write_tiny_imagenet(tmp_path)
    decoded = []
    original = ImageFileDataset._decode
    monkeypatch.setattr(ImageFileDataset, "_decode", lambda self, path: decoded.append(path.name) or original(self, path))
    x, y = load_tensors("tiny-imagenet", "train", data_dir=tmp_path, limit=2, seed=3)
    index = torch.randperm(5, generator=torch.Generator().manual_seed(3))[:2].sort().values.tolist()
    assert decoded == [TRAIN[i][1] for i in index]
    assert y.tolist() == [TRAIN[i][0] for i in index]
    torch.testing.assert_close(x, expected([TRAIN[i][2] for i in index]), atol=TOLERANCE, rtol=0)


def test_unknown_wnid_is_rejected(tmp_path):
    write_tiny_imagenet(tmp_path, wnids=list(WNIDS[:-1]) + ["n99999999"])
    with pytest.raises(WpgdkitError, match=r"wnids.txt does not list the 200 Tiny-ImageNet classes: unknown ids n99999999; missing ids " + WNIDS[-1]):
        load_split("tiny-imagenet", "train", data_dir=tmp_path)


def test_missing_wnid_is_rejected(tmp_path):
    write_tiny_imagenet(tmp_path, wnids=list(WNIDS[1:]))
    with pytest.raises(WpgdkitError, match="missing ids " + WNIDS[0]):
        load_split("tiny-imagenet", "test", data_dir=tmp_path)


def test_bad_annotation_is_rejected(tmp_path):
    folder = write_tiny_imagenet(tmp_path)
    with (folder / "val" / "val_annotations.txt").open("a") as handle:
        handle.write("val_3.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(WpgdkitError, match=r"val_annotations.txt line 4"):
        load_split("tiny-imagenet", "test", data_dir=tmp_path)


def test_annotated_image_missing(tmp_path):
    folder = write_tiny_imagenet(tmp_path)
    (folder / "val" / "images" / "val_2.JPEG").unlink()
    with pytest.raises(DataNotFoundError, match="val_2.JPEG"):
        load_split("tiny-imagenet", "test", data_dir=tmp_path)


def test_wrong_image_size_is_reported_on_access(tmp_path):
    folder = write_tiny_imagenet(tmp_path)
    write_jpeg(folder / "val" / "images" / "val_0.JPEG", (1, 2, 3), size=32)
    dataset = load_split("tiny-imagenet", "test", data_dir=tmp_path)
    with pytest.raises(WpgdkitError, match=r"val_0.JPEG is 32x32 pixels, expected 64x64"):
        dataset[0]
    (folder / "val" / "images" / "val_0.JPEG").write_bytes(b"garbage")
    with pytest.raises(WpgdkitError, match="cannot decode image .*val_0.JPEG"):
        dataset[0]


def test_greyscale_images_become_rgb(tmp_path):
    folder = write_tiny_imagenet(tmp_path)
    Image.new("L", (64, 64), 128).save(folder / "val" / "images" / "val_0.JPEG", format="JPEG", quality=95)
    image, _ = load_split("tiny-imagenet", "test", data_dir=tmp_path)[0]
    torch.testing.assert_close(image, torch.full((3, 64, 64), 128 / 255), atol=TOLERANCE, rtol=0)


def test_missing_folder_and_download(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"tiny-imagenet not found .*tiny-imagenet-200\.zip"):
        load_split("tiny-imagenet", "train", data_dir=tmp_path)
    with pytest.raises(WpgdkitError, match=r"cannot be downloaded automatically; download http://cs231n\.stanford\.edu/tiny-imagenet-200\.zip"):
        load_split("tiny-imagenet", "train", data_dir=tmp_path, download=True)
    assert "http://cs231n.stanford.edu/tiny-imagenet-200.zip" in get_dataset("tiny-imagenet").how_to_get
