"""The generic name registry behind datasets and metric sources."""

from __future__ import annotations

import pytest

from wpgdkit.datasets import list_datasets
from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.labelmetric import list_sources
from wpgdkit.registry import Registry


def test_register_get_and_order():
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)
    reg.register("a", 1)
    assert reg.get("a") == 1 and reg.names() == ["b", "a"] and "a" in reg and len(reg) == 2
    assert Registry("widget", sort=True).names() == []


def test_unknown_name_lists_valid_names():
    reg: Registry[int] = Registry("widget", sort=True)
    reg.register("b", 2)
    reg.register("a", 1)
    with pytest.raises(UnknownNameError) as info:
        reg.get("c")
    assert isinstance(info.value, WpgdkitError)
    assert str(info.value) == "unknown widget 'c'; choose one of: a, b"


def test_duplicate_is_a_programming_error():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)


def test_copy_is_independent():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    other = reg.copy()
    other.register("b", 2)
    assert reg.names() == ["a"] and other.names() == ["a", "b"]


def test_builtin_registries():
    assert list_datasets() == ["cifar10", "cifar100", "fashion-mnist", "mnist", "tiny-imagenet", "toy"]
    assert list_sources() == ["wordnet", "linear", "boundary", "confusion", "uniform", "file"]
