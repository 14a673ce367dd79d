"""Checks of the shipped class → WordNet 3.0 synset mappings (metrics/*-synsets.csv).

See metrics/SYNSETS.md for how the hand-made mappings were chosen.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from wpgdkit.resources import metrics_dir
from wpgdkit.wordnet import load_wordnet

HEADER = ["index", "class", "synset", "gloss"]
SUFFIX = "-synsets.csv"

_WNIDS_FILE = Path(__file__).resolve().parent.parent / "wpgdkit" / "datasets" / "tiny-imagenet-200-wnids.txt"

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))


def _tiny_imagenet_wnids() -> tuple[str, ...]:
    return tuple(_WNIDS_FILE.read_text(encoding="utf-8").split())


#: dataset name → class names in label order (tiny-imagenet read from the wnids file).
EXPECTED_CLASSES = {
    "cifar10": CIFAR10_CLASSES,
    "cifar100": CIFAR100_CLASSES,
    "fashion-mnist": FASHION_MNIST_CLASSES,
    "mnist": MNIST_CLASSES,
    "tiny-imagenet": None,
}
EXPECTED_K = {"cifar10": 10, "cifar100": 100, "fashion-mnist": 10, "mnist": 10, "tiny-imagenet": 200}

_FILES = sorted(metrics_dir().glob(f"*{SUFFIX}"))


@pytest.fixture(scope="module")
def wn():
    return load_wordnet()


def _dataset(path: Path) -> str:
    return path.name[: -len(SUFFIX)]


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, row, strict=True)) for row in body]


def _mapping(name: str) -> dict[str, str]:
    """class → synset name for the shipped file of dataset ``name``."""
    _, rows = _read(metrics_dir() / f"{name}{SUFFIX}")
    return {row["class"]: row["synset"] for row in rows}


def _ancestors(synset) -> set[str]:
    return {s.name() for s in synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())}


# ---------------------------------------------------------------------------
# Every shipped file
# ---------------------------------------------------------------------------


def test_expected_files_exist():
    present = {p.name for p in _FILES}
    for name in EXPECTED_K:
        assert f"{name}{SUFFIX}" in present, f"{name}{SUFFIX} missing from {metrics_dir()}"


@pytest.mark.parametrize("path", _FILES, ids=[p.name for p in _FILES])
def test_mapping_file(path: Path, wn):
    header, rows = _read(path)
    assert header == HEADER

    assert [row["index"] for row in rows] == [str(i) for i in range(len(rows))]

    name = _dataset(path)
    if name in EXPECTED_K:
        assert len(rows) == EXPECTED_K[name]
    expected_classes = EXPECTED_CLASSES.get(name)
    if name == "tiny-imagenet":
        expected_classes = _tiny_imagenet_wnids()
    if expected_classes is not None:
        assert tuple(row["class"] for row in rows) == expected_classes

    names = [row["synset"] for row in rows]
    assert len(set(names)) == len(names), "synsets must be distinct"
    for row in rows:
        synset = wn.synset(row["synset"])
        assert synset.pos() == "n", row
        assert synset.name() == row["synset"], f"{row['synset']!r} is an alias; write {synset.name()!r}"
        assert row["gloss"] == synset.definition(), row["class"]


def test_tiny_imagenet_offsets_match_wnids(wn):
    _, rows = _read(metrics_dir() / f"tiny-imagenet{SUFFIX}")
    assert len(rows) == 200
    for row in rows:
        synset = wn.synset(row["synset"])
        assert f"n{synset.offset():08d}" == row["class"]
        assert wn.synset_from_pos_and_offset("n", int(row["class"][1:])) == synset


def test_class_lists_match_registered_datasets():
    """Where the dataset registry knows a dataset, its classes are those of the file."""
    try:
        # Importing the package registers the built-in datasets.
        from wpgdkit.datasets import registry
    except ImportError:  # pragma: no cover - registry not importable in this tree
        pytest.skip("wpgdkit.datasets is not importable")
    checked = 0
    for name in EXPECTED_K:
        if name not in registry.list_datasets():
            continue
        _, rows = _read(metrics_dir() / f"{name}{SUFFIX}")
        assert registry.get_dataset(name).classes == tuple(row["class"] for row in rows), name
        checked += 1
    if not checked:
        pytest.skip("no dataset with a shipped synset file is registered")


# ---------------------------------------------------------------------------
# Hand-checked spot assertions
# ---------------------------------------------------------------------------


def test_cifar10_spot_checks(wn):
    m = _mapping("cifar10")
    assert m["airplane"] == "airplane.n.01"
    assert m["automobile"] == "car.n.01"
    assert m["cat"] == "cat.n.01"
    assert m["dog"] == "dog.n.01"
    assert m["ship"] == "ship.n.01"
    assert m["truck"] == "truck.n.01"
    for cls in ("bird", "cat", "deer", "dog", "frog", "horse"):
        assert wn.synset(m[cls]).lexname() == "noun.animal", cls


@pytest.mark.parametrize(
    "cls, synset, ancestor",
    [
        ("seal", "seal.n.09", "pinniped.n.01"),
        ("ray", "ray.n.07", "elasmobranch.n.01"),
        ("mouse", "mouse.n.01", "rodent.n.01"),
        ("tank", "tank.n.01", "military_vehicle.n.01"),
        ("keyboard", "computer_keyboard.n.01", "keyboard.n.01"),
        ("maple_tree", "maple.n.02", "tree.n.01"),
        ("oak_tree", "oak.n.02", "tree.n.01"),
        ("palm_tree", "palm.n.03", "tree.n.01"),
        ("pine_tree", "pine.n.01", "tree.n.01"),
        ("willow_tree", "willow.n.01", "tree.n.01"),
        ("orange", "orange.n.01", "edible_fruit.n.01"),
        ("apple", "apple.n.01", "edible_fruit.n.01"),
        ("mushroom", "mushroom.n.03", "fungus.n.01"),
        ("caterpillar", "caterpillar.n.01", "larva.n.01"),
        ("castle", "castle.n.02", "fortification.n.01"),
        ("plate", "plate.n.04", "tableware.n.01"),
        ("can", "can.n.01", "container.n.01"),
        ("bowl", "bowl.n.01", "container.n.01"),
        ("plain", "plain.n.01", "land.n.04"),
        ("dolphin", "dolphin.n.02", "cetacean.n.01"),
        ("possum", "opossum.n.02", "marsupial.n.01"),
        ("lamp", "lamp.n.02", "furniture.n.01"),
        ("television", "television_receiver.n.01", "electronic_equipment.n.01"),
        ("aquarium_fish", "fish.n.01", "aquatic_vertebrate.n.01"),
    ],
)
def test_cifar100_spot_checks(cls, synset, ancestor, wn):
    assert _mapping("cifar100")[cls] == synset
    assert wn.synset(ancestor).name() in _ancestors(wn.synset(synset))


def test_cifar100_animals_are_organisms(wn):
    m = _mapping("cifar100")
    animals = (
        "bear", "beaver", "bee", "beetle", "butterfly", "camel", "caterpillar", "cattle", "chimpanzee",
        "cockroach", "crab", "crocodile", "dinosaur", "dolphin", "elephant", "flatfish", "fox", "hamster",
        "kangaroo", "leopard", "lion", "lizard", "lobster", "mouse", "otter", "porcupine", "possum", "rabbit",
        "raccoon", "ray", "seal", "shark", "shrew", "skunk", "snail", "snake", "spider", "squirrel", "tiger",
        "trout", "turtle", "whale", "wolf", "worm", "aquarium_fish",
    )
    for cls in animals:
        assert wn.synset(m[cls]).lexname() == "noun.animal", cls
    for cls in ("baby", "boy", "girl", "man", "woman"):
        assert wn.synset(m[cls]).lexname() == "noun.person", cls
    for cls in ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree", "orchid", "poppy", "rose",
                "sunflower", "tulip", "mushroom"):
        assert wn.synset(m[cls]).lexname() == "noun.plant", cls


def test_fashion_mnist_spot_checks(wn):
    m = _mapping("fashion-mnist")
    assert m["Trouser"] == "trouser.n.01"
    assert m["Bag"] == "bag.n.04"
    assert "handbag" in wn.synset(m["Bag"]).lemma_names()
    assert m["Ankle boot"] == "boot.n.01"
    assert "sneaker" in wn.synset(m["Sneaker"]).lemma_names()
    assert "T-shirt" in wn.synset(m["T-shirt/top"]).lemma_names()
    clothing, footwear = wn.synset("clothing.n.01").name(), wn.synset("footwear.n.02").name()
    for cls in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt"):
        assert clothing in _ancestors(wn.synset(m[cls])), cls
    for cls in ("Sandal", "Sneaker", "Ankle boot"):
        assert footwear in _ancestors(wn.synset(m[cls])), cls


def test_mnist_digits_are_digit_hyponyms(wn):
    m = _mapping("mnist")
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    digit = wn.synset("digit.n.01")
    for d, word in enumerate(words):
        synset = wn.synset(m[str(d)])
        assert synset.name().split(".")[0] == word
        assert digit in synset.hypernyms(), d
    assert m["0"] == "zero.n.02"


def test_tiny_imagenet_spot_checks():
    m = _mapping("tiny-imagenet")
    assert m["n02124075"] == "egyptian_cat.n.01"
