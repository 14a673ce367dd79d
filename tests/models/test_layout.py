"""wpgdkit.models.layout: the layout decision (measured, cached, side-effect free) and the conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wpgdkit.errors import WpgdkitError
from wpgdkit.models import create_model
from wpgdkit.models import layout
from wpgdkit.models.layout import (
    CHANNELS_LAST_MARGIN,
    MEMORY_FORMATS,
    apply_memory_format,
    clear_memory_format_cache,
    memory_format_applied,
    memory_format_name,
    preferred_memory_format,
    resolve_memory_format,
    to_memory_format,
)


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_memory_format_cache()
    yield
    clear_memory_format_cache()


class Counting(nn.Module):
    """A small conv net with batch norm and dropout that counts its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def _fake_timing(monkeypatch, times):
    """Each pass "takes" times[layout] seconds (no clock involved)."""
    def timed(model, x, *, train):
        cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        model(x)  # still runs the model, so that side effects would show
        return times["channels_last" if cl else "contiguous"]

    monkeypatch.setattr(layout, "_timed_pass", timed)


def test_memory_formats_are_the_cli_choices():
    assert MEMORY_FORMATS == ("auto", "contiguous", "channels_last")


@pytest.mark.parametrize("name, shape", [("mlp", (1, 8, 8)), ("conv1d", (3, 16)), ("linear", (5,))])
def test_no_conv2d_or_not_4d_is_contiguous_without_running_the_model(name, shape, monkeypatch):
    monkeypatch.setattr(layout, "_timed_pass", lambda *a, **k: pytest.fail("the model was timed"))
    model = create_model(name, num_classes=3, input_shape=shape)
    assert preferred_memory_format(model, torch.rand(4, *shape)) == torch.contiguous_format
    assert preferred_memory_format(model, torch.rand(4, *shape), train=True) == torch.contiguous_format


def test_the_faster_layout_wins_past_the_margin(monkeypatch):
    model = Counting()
    x = torch.rand(4, 3, 6, 6)
    _fake_timing(monkeypatch, {"contiguous": 1.0, "channels_last": 0.7})
    assert preferred_memory_format(model, x) == torch.channels_last
    clear_memory_format_cache()
    _fake_timing(monkeypatch, {"contiguous": 0.7, "channels_last": 1.0})
    assert preferred_memory_format(model, x) == torch.contiguous_format
    clear_memory_format_cache()
    # A near-tie keeps torch's default: a noisy measurement must not flip the layout between runs.
    _fake_timing(monkeypatch, {"contiguous": 1.0, "channels_last": 1.0 - CHANNELS_LAST_MARGIN / 2})
    assert preferred_memory_format(model, x) == torch.contiguous_format


def test_the_decision_is_cached_per_structure_shape_and_mode(monkeypatch):
    _fake_timing(monkeypatch, {"contiguous": 1.0, "channels_last": 0.5})
    model = Counting()
    x = torch.rand(4, 3, 6, 6)
    assert preferred_memory_format(model, x, repeats=2) == torch.channels_last
    timed = model.calls
    assert timed == 2 * (2 + 1)  # one warm-up pass and two timed passes per layout
    assert preferred_memory_format(model, x) == torch.channels_last and model.calls == timed
    other = Counting()  # another model of the same architecture: the same decision, not measured again
    assert preferred_memory_format(other, x) == torch.channels_last and other.calls == 0
    preferred_memory_format(model, torch.rand(5, 3, 6, 6))  # another input shape is measured
    assert model.calls > timed
    calls = model.calls
    preferred_memory_format(model, x, train=True)  # a training step is another decision
    assert model.calls > calls


def test_the_trial_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = Counting()
    model.train()
    model.net[1].eval()  # a frozen batch norm inside a training model keeps its own mode
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    params = [(p, p.data_ptr(), p.stride()) for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    x = torch.rand(8, 3, 6, 6)
    rng = torch.get_rng_state()
    for train in (False, True):
        clear_memory_format_cache()
        preferred_memory_format(model, x, train=train, repeats=1)
        assert [m.training for m in model.modules()] == modes
        assert all(p.data_ptr() == ptr and p.stride() == stride for p, ptr, stride in params)
        assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
        now = model.state_dict()
        assert all(torch.equal(now[k], v) and now[k].stride() == v.stride() for k, v in state.items()), train
        assert torch.equal(torch.get_rng_state(), rng)  # dropout drew during the trial


def test_a_model_that_fails_in_a_layout_keeps_the_default():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                raise RuntimeError("no channels-last here")
            return self.conv(x).flatten(1)

    assert preferred_memory_format(Picky(), torch.rand(2, 3, 4, 4)) == torch.contiguous_format


def test_small_cnn_is_measured_for_real():
    model = create_model("small-cnn", num_classes=10, input_shape=(1, 28, 28)).eval()
    fmt = preferred_memory_format(model, torch.rand(16, 1, 28, 28), repeats=1)
    assert fmt in (torch.contiguous_format, torch.channels_last)  # which one is the machine's business
    assert all(p.is_contiguous() for p in model.parameters())


def test_conversions():
    model = create_model("small-cnn", num_classes=10, input_shape=(3, 16, 16))
    weight = model.net.features[3].weight
    assert apply_memory_format(model, torch.channels_last) is model
    assert model.net.features[3].weight is weight  # the same parameter, another storage
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    x = torch.rand(2, 3, 16, 16)
    y = to_memory_format(x, torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    flat = torch.rand(2, 5)
    assert to_memory_format(flat, torch.channels_last) is flat
    assert memory_format_name(torch.channels_last) == "channels_last"
    assert memory_format_name(torch.contiguous_format) == "contiguous"
    with pytest.raises(WpgdkitError, match="memory format"):
        apply_memory_format(model, torch.preserve_format)


def test_memory_format_applied_puts_the_storage_back():
    model = create_model("small-cnn", num_classes=10, input_shape=(3, 16, 16))
    before = [(p, p.data_ptr(), p.stride()) for p in model.parameters()]
    with memory_format_applied(model, torch.channels_last) as inside:
        assert inside is model
        assert model.net.features[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.data_ptr() == ptr and p.stride() == stride for p, ptr, stride in before)


def test_resolve(monkeypatch):
    model = create_model("small-cnn", num_classes=10, input_shape=(3, 8, 8))
    x = torch.rand(2, 3, 8, 8)
    assert resolve_memory_format("contiguous", model, x) == torch.contiguous_format
    assert resolve_memory_format("channels_last", model, x) == torch.channels_last
    _fake_timing(monkeypatch, {"contiguous": 1.0, "channels_last": 0.5})
    assert resolve_memory_format("auto", model, x) == torch.channels_last
    with pytest.raises(WpgdkitError, match="unknown memory format 'nhwc'; choose one of: auto, contiguous"):
        resolve_memory_format("nhwc", model, x)
    with pytest.raises(WpgdkitError, match="channels_last needs images"):
        resolve_memory_format("channels_last", create_model("mlp", num_classes=2, input_shape=(4,)), torch.rand(2, 4))
    with pytest.raises(WpgdkitError, match="repeats"):
        preferred_memory_format(model, x, repeats=0)
