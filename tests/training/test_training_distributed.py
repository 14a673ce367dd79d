"""wpgdkit.training.distributed: the one device resolver behind every --device flag."""

from __future__ import annotations

import pytest
import torch

from wpgdkit.errors import WpgdkitError
from wpgdkit.device import DEVICE_NAMES, resolve_device


def test_device_names_are_the_cli_choices():
    from wpgdkit.cli._common import DeviceName

    assert [d.value for d in DeviceName] == list(DEVICE_NAMES) == ["auto", "cpu", "cuda"]


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "CUDA", "", "cuda:0"])
def test_unknown_names_are_refused_with_the_valid_ones(name):
    with pytest.raises(WpgdkitError, match="choose one of: auto, cpu, cuda"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error():
    with pytest.raises(WpgdkitError, match="no CUDA device"):
        resolve_device("cuda")
