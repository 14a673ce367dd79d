"""The built-in datasets: their definitions and registration.

Class names live here, in label order; they are the contract the rest of
wpgdkit (label metrics, synset mappings, audits) relies on, and loaders check
the files against them rather than taking names from the files.
"""

from __future__ import annotations

from wpgdkit.datasets.cifar import CifarSource
from wpgdkit.datasets.mnist import IdxSource
from wpgdkit.datasets.registry import DatasetSpec, register_dataset
from wpgdkit.datasets.tiny_imagenet import HOW_TO_GET as TINY_IMAGENET_HOW_TO_GET
from wpgdkit.datasets.tiny_imagenet import TinyImageNetSource, canonical_wnids
from wpgdkit.datasets.toy import ToySource

__all__ = [
    "CIFAR100_CLASSES",
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "register_builtin_datasets",
]

MNIST_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# The 100 fine labels in label order (the order of fine_label_names in the meta file).
CIFAR100_CLASSES: tuple[str, ...] = (
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
)  # fmt: skip

_IMAGE_RANGE = (0.0, 1.0)


def _mnist_specs() -> list[DatasetSpec]:
    mnist_how = "pass --download to fetch it with torchvision"
    fashion_how = "pass --download to fetch it with torchvision, or apt-get install dataset-fashion-mnist"
    return [
        DatasetSpec(
            name="mnist",
            classes=MNIST_CLASSES,
            input_shape=(1, 28, 28),
            input_range=_IMAGE_RANGE,
            description="MNIST handwritten digits: 60,000 train / 10,000 test 28x28 greyscale images, 10 classes",
            how_to_get=mnist_how,
            loader=IdxSource(
                name="mnist", torchvision_class="MNIST", num_classes=len(MNIST_CLASSES), how_to_get=mnist_how
            ).load,
        ),
        DatasetSpec(
            name="fashion-mnist",
            classes=FASHION_MNIST_CLASSES,
            input_shape=(1, 28, 28),
            input_range=_IMAGE_RANGE,
            description="Fashion-MNIST clothing: 60,000 train / 10,000 test 28x28 greyscale images, 10 classes",
            how_to_get=fashion_how,
            loader=IdxSource(
                name="fashion-mnist",
                torchvision_class="FashionMNIST",
                num_classes=len(FASHION_MNIST_CLASSES),
                how_to_get=fashion_how,
            ).load,
        ),
    ]


def _cifar_specs() -> list[DatasetSpec]:
    how = "pass --download to fetch it with torchvision"
    cifar10 = CifarSource(
        name="cifar10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        labels_key="labels",
        names_key="label_names",
        classes=CIFAR10_CLASSES,
        torchvision_class="CIFAR10",
        how_to_get=how,
    )
    cifar100 = CifarSource(
        name="cifar100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        labels_key="fine_labels",
        names_key="fine_label_names",
        classes=CIFAR100_CLASSES,
        torchvision_class="CIFAR100",
        how_to_get=how,
    )
    return [
        DatasetSpec(
            name="cifar10",
            classes=CIFAR10_CLASSES,
            input_shape=(3, 32, 32),
            input_range=_IMAGE_RANGE,
            description="CIFAR-10: 50,000 train / 10,000 test 32x32 colour images, 10 classes",
            how_to_get=how,
            loader=cifar10.load,
        ),
        DatasetSpec(
            name="cifar100",
            classes=CIFAR100_CLASSES,
            input_shape=(3, 32, 32),
            input_range=_IMAGE_RANGE,
            description="CIFAR-100: 50,000 train / 10,000 test 32x32 colour images, 100 fine classes",
            how_to_get=how,
            loader=cifar100.load,
        ),
    ]


def _other_specs() -> list[DatasetSpec]:
    wnids = canonical_wnids()
    toy = ToySource()
    return [
        DatasetSpec(
            name="tiny-imagenet",
            classes=wnids,
            input_shape=(3, 64, 64),
            input_range=_IMAGE_RANGE,
            description="Tiny-ImageNet: 100,000 train / 10,000 val (used as test) 64x64 colour images, 200 WordNet classes",
            how_to_get=TINY_IMAGENET_HOW_TO_GET,
            loader=TinyImageNetSource(name="tiny-imagenet", classes=wnids).load,
        ),
        DatasetSpec(
            name="toy",
            classes=toy.classes,
            input_shape=(2,),
            input_range=None,
            description="3-class 2-D Gaussian clusters of the paper's Sec. 3.4, generated from the seed (3,000 train / 1,500 test)",
            how_to_get="nothing to get: generated from the seed",
            loader=toy.load,
        ),
    ]


def register_builtin_datasets() -> None:
    """Register the built-in datasets (called once, on import of :mod:`wpgdkit.datasets`)."""
    for spec in _mnist_specs() + _cifar_specs() + _other_specs():
        register_dataset(spec)
