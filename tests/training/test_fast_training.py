"""``fast-pgd`` and ``fast-wpgd`` (Wong, Rice & Kolter 2020): one step of 1.25·ε from a random start, and the guard.

The inner attack is checked against a hand computation on the first batch (same
data, same generator seed, same initial weights), and by counting the model's
passes per batch; the catastrophic-overfitting guard by feeding the loop a
collapsing robust validation accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import wpgdkit.training.loop as loop
from wpgdkit.cli import app
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric import write_metric
from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, log_path_for, run_settings, train
from wpgdkit.training.data import batch_generator, batch_seed, prepare_data
from wpgdkit.training.loop import CatastrophicOverfittingWarning

EPS = 0.3
runner = CliRunner()
# The recorder's backward hook sees the training step's input, which needs no gradient: torch says so each time.
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")


def fast_config(tmp_path, method: str = "fast-pgd", **changes) -> TrainConfig:
    base = dict(data=DataConfig("toy", limit=600, val_fraction=0.2), model="mlp", method=method, norm="linf", eps=EPS,
                eval_steps=2, epochs=1, batch_size=64, lr=0.05, out=str(tmp_path / f"{method}.pt"), device="cpu",
                deterministic=True)
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture
def toy_metric(tmp_path):
    return str(write_metric(PAPER_TOY_METRIC, tmp_path / "toy.csv"))


class Recorder:
    """Every forward and backward pass of the trained network, by phase, with the forward inputs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, torch.Tensor | None]] = []
        self.initial: dict[str, torch.Tensor] | None = None

    def attach(self, model: torch.nn.Module) -> None:
        model.register_forward_pre_hook(self._forward)
        model.register_full_backward_hook(self._backward)

    def _forward(self, module, args):
        x = args[0]
        if self.initial is None:  # the initial weights, for the hand computation
            self.initial = {k: v.detach().clone() for k, v in module.state_dict().items()}
        # The attacks differentiate with respect to the input, in eval mode; the training step does not.
        phase = "attack" if x.requires_grad else "train" if module.training else "eval"
        self.events.append(("forward", phase, x.detach().clone()))

    def _backward(self, module, grad_input, grad_output):
        self.events.append(("backward", "train" if module.training else "attack", None))

    def batches(self) -> list[dict[str, object]]:
        """Per training step: the attack's passes, its first input (the start) and the trained input."""
        out, current = [], {"forwards": 0, "backwards": 0, "start": None}
        for kind, phase, x in self.events:
            if phase == "attack":
                current["forwards" if kind == "forward" else "backwards"] += 1
                if kind == "forward" and current["start"] is None:
                    current["start"] = x
            elif phase == "train" and kind == "forward":
                current["trained"] = x
            elif phase == "train" and kind == "backward":
                out.append(current)
                current = {"forwards": 0, "backwards": 0, "start": None}
        return out  # what follows the last training step is the validation


def record(monkeypatch) -> Recorder:
    """A :class:`Recorder` on the network of the next run."""
    rec = Recorder()
    build = loop._build_network

    def recorded(config, settings):
        model = build(config, settings)
        rec.attach(model)
        return model

    monkeypatch.setattr(loop, "_build_network", recorded)
    return rec


@pytest.fixture
def recorder(monkeypatch):
    return record(monkeypatch)


def first_batch(config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    data = prepare_data(config.data)
    _, x, y = next(batch_generator(data.train, batch_size=config.batch_size, seed=config.seed, epoch=0))
    return x, y


def hand_step(config: TrainConfig, initial, objective) -> tuple[torch.Tensor, torch.Tensor]:
    """Wong et al.'s Algorithm 3 on the first batch: uniform start in the ℓ∞ ball, one signed step, projection."""
    x, y = first_batch(config)
    model = run_settings(config).model.build()
    model.load_state_dict(initial)
    model.eval()
    generator = torch.Generator().manual_seed(batch_seed(config.seed, 0, 0, 1))
    start = x + (2 * torch.rand(x.shape, generator=generator) - 1) * config.eps  # toy data is unbounded
    z = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(model, model(z), y).sum(), z)
    step = config.step_size if config.step_size is not None else 1.25 * config.eps
    x_adv = torch.minimum(torch.maximum(start + step * grad.sign(), x - config.eps), x + config.eps)
    return start, x_adv


def cross_entropy(model, logits, y):
    return F.cross_entropy(logits, y, reduction="none")


# --- the inner attack -----------------------------------------------------------------------


@pytest.mark.parametrize("step_size", [None, 0.2])
def test_fast_pgd_is_one_step_of_one_and_a_quarter_eps_from_a_random_start(tmp_path, recorder, step_size):
    config = fast_config(tmp_path, step_size=step_size)
    train(config)
    batch = recorder.batches()[0]
    start, expected = hand_step(config, recorder.initial, cross_entropy)
    torch.testing.assert_close(batch["start"], start, rtol=0, atol=1e-6)
    torch.testing.assert_close(batch["trained"], expected, rtol=0, atol=1e-6)
    x, _ = first_batch(config)
    assert float((batch["trained"] - x).abs().max()) <= EPS + 1e-6  # the projection keeps it in the ball
    if step_size is None:
        # The step (0.375) is longer than ε: some coordinates moved further than ε and were projected back.
        assert float((batch["trained"] - batch["start"]).abs().max()) > EPS
    state = load_checkpoint(config.out)
    assert (state.threat.steps, state.threat.step, state.threat.random_start) == (1, step_size or 1.25 * EPS, True)


@pytest.mark.parametrize("method, changes, steps", [("fast-pgd", {}, 1), ("pgd", {"steps": 3}, 3),
                                                   ("fast-pgd", {"steps": 1}, 1)])
def test_passes_per_batch_are_two_for_fast_and_k_plus_one_for_pgd(tmp_path, recorder, method, changes, steps):
    train(fast_config(tmp_path, method, co_guard="off", eval_steps=0, **changes))
    batches = recorder.batches()
    assert len(batches) == 8  # 480 training points in batches of 64
    # The attack: `steps` forwards and backwards (input gradients); the training step adds one of each.
    assert all((b["forwards"], b["backwards"]) == (steps, steps) for b in batches), batches[:2]


def test_fast_wpgd_steps_on_the_wasserstein_loss_with_the_metric(tmp_path, monkeypatch, toy_metric):
    from wpgdkit.attacks import WPGD

    runs = {}
    for method in ("fast-pgd", "fast-wpgd"):
        rec = record(monkeypatch)
        config = fast_config(tmp_path, method, metric=toy_metric, p=2.5, co_guard="off", eval_steps=0)
        train(config)
        monkeypatch.undo()
        runs[method] = (config, rec)
    config, rec = runs["fast-wpgd"]

    def wasserstein(model, logits, y):
        return WPGD(model, PAPER_TOY_METRIC, p=2.5, eps=EPS).objective(logits, y)

    start, expected = hand_step(config, rec.initial, wasserstein)
    batch = rec.batches()[0]
    torch.testing.assert_close(batch["start"], start, rtol=0, atol=1e-6)
    torch.testing.assert_close(batch["trained"], expected, rtol=0, atol=1e-6)
    # Same start (same seeds, same initial weights), another loss: another adversarial point.
    fast_pgd = runs["fast-pgd"][1].batches()[0]
    assert torch.equal(fast_pgd["start"], batch["start"])
    assert not torch.allclose(fast_pgd["trained"], batch["trained"])
    assert all((b["forwards"], b["backwards"]) == (1, 1) for b in rec.batches())


def test_per_feature_bounds_keep_the_single_step_in_every_feature_box(tmp_path, recorder, monkeypatch):
    import wpgdkit.datasets.files as files

    monkeypatch.setattr(files, "_OPENED", {})  # opened datasets are remembered by path: leave none behind
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4)) * np.arange(1, 5) + 10
    y = np.arange(240) % 3
    npz = tmp_path / "tab.npz"
    np.savez(npz, x_train=x, y_train=y, x_test=x[:30], y_test=y[:30])
    config = fast_config(tmp_path, data=DataConfig(str(npz), val_fraction=0.25), eps=0.8, epochs=2, batch_size=32)
    result = train(config)
    state = load_checkpoint(result.checkpoint)
    assert state.method == "fast-pgd" and state.threat.per_feature and state.threat.steps == 1
    low, high = (torch.tensor(side) for side in state.threat.bounds)
    inputs = [x for kind, phase, x in recorder.events if kind == "forward" and phase != "eval"]
    assert len(inputs) > 20
    assert all(bool((x >= low - 1e-5).all() and (x <= high + 1e-5).all()) for x in inputs)
    clean, _ = first_batch(config)
    assert float((recorder.batches()[0]["trained"] - clean).abs().max()) <= 0.8 + 1e-5
    assert "val_robust_accuracy" in result.history[-1]


# --- settings, refusals, identity ---------------------------------------------------------------


@pytest.mark.parametrize("changes, fragment", [
    ({"steps": 5}, "steps must be 1 or left out for method fast-pgd"),
    ({"random_start": False}, "random_start must be True for method fast-pgd"),
    ({"eval_steps": 0}, "eval_steps must be at least 1 for method fast-pgd"),
    ({"data": DataConfig("toy", limit=600, val_fraction=0.0)}, "val_fraction must be above 0 for method fast-pgd"),
    ({"co_guard": "halt"}, "unknown co_guard 'halt'; choose one of: stop, warn, off"),
    ({"method": "fast-wpgd"}, "method fast-wpgd needs a label metric"),
    ({"step_size": 0.0}, "step_size must be"),
    ({"data": DataConfig("toy", limit=4, val_fraction=0.1)}, "val_fraction must leave a validation split"),
])
def test_refusals_are_one_line_before_any_work(tmp_path, changes, fragment):
    config = fast_config(tmp_path, **changes)
    with pytest.raises(WpgdkitError) as caught:
        train(config)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert not os.path.exists(config.out)


def test_the_guard_off_needs_no_validation(tmp_path):
    config = fast_config(tmp_path, co_guard="off", eval_steps=0, data=DataConfig("toy", limit=300, val_fraction=0.0))
    assert train(config).history[-1]["epoch"] == 1


def test_fingerprint_records_the_method_not_the_guard(tmp_path, toy_metric):
    pgd = run_settings(fast_config(tmp_path, "pgd"))
    fast = run_settings(fast_config(tmp_path, "fast-pgd"))
    fast_w = run_settings(fast_config(tmp_path, "fast-wpgd", metric=toy_metric, p=2.5))
    assert len({pgd.fingerprint(), fast.fingerprint(), fast_w.fingerprint()}) == 3
    assert "method='pgd' vs 'fast-pgd'" in "; ".join(pgd.differences(fast))
    # Only the fast methods' own threat model: steps and the default step, whatever --steps said.
    assert (fast.threat.steps, fast.threat.step) == (1, pytest.approx(1.25 * EPS))
    assert run_settings(fast_config(tmp_path, "fast-pgd", steps=1)).fingerprint() == fast.fingerprint()
    assert run_settings(fast_config(tmp_path, "fast-pgd", step_size=0.2)).fingerprint() != fast.fingerprint()
    assert run_settings(fast_config(tmp_path, "fast-pgd", co_guard="warn")).fingerprint() == fast.fingerprint()
    # fast-wpgd's weights depend on p, λ and the metric, as wpgd's do.
    identity = fast_w.identity()
    assert identity["p"] == 2.5 and identity["metric_sha256"] and identity["method"] == "fast-wpgd"
    assert run_settings(fast_config(tmp_path, "fast-wpgd", metric=toy_metric, p=2.0)).fingerprint() != fast_w.fingerprint()


def test_a_fast_wpgd_checkpoint_reads_back_with_its_metric_and_p(tmp_path, toy_metric):
    config = fast_config(tmp_path, "fast-wpgd", metric=toy_metric, p=2.5)
    state = load_checkpoint(train(config).checkpoint)
    assert state.fingerprint() == run_settings(config).fingerprint()
    assert state.settings.metric_sha256 is not None
    facts = state.describe()
    assert facts["method"] == "fast-wpgd" and facts["p"] == 2.5 and facts["threat"]["steps"] == 1


# --- the catastrophic-overfitting guard ---------------------------------------------------------


def robust_accuracies(monkeypatch, values):
    """Make the per-epoch validation report ``values[epoch]`` as its robust accuracy."""
    def evaluate(config, ctx, data, model, evaluation, epoch, **layout):
        return {"val_accuracy": 0.9, "val_robust_accuracy": values[epoch]}

    monkeypatch.setattr(loop, "_evaluate", evaluate)


def saved_after_each_epoch(config: TrainConfig) -> tuple[dict[int, bytes], Callable[[dict], None]]:
    saved: dict[int, bytes] = {}
    return saved, lambda record: saved.__setitem__(record["epoch"], open(config.out, "rb").read())


def test_the_guard_stops_at_a_collapse_and_keeps_the_epoch_before(tmp_path, monkeypatch):
    robust_accuracies(monkeypatch, [0.5, 0.6, 0.2, 0.7])  # epoch 3: 0.2 < 0.5 × 0.6
    config = fast_config(tmp_path, epochs=4)
    saved, keep = saved_after_each_epoch(config)
    with pytest.warns(CatastrophicOverfittingWarning) as caught:
        result = train(config, on_epoch_end=keep)
    guard = [w for w in caught if w.category is CatastrophicOverfittingWarning]
    assert len(guard) == 1, [str(w.message) for w in caught]
    message = str(guard[0].message)
    assert "\n" not in message
    assert message == (f"catastrophic overfitting at epoch 3 of fast-pgd: robust validation accuracy 0.200 < "
                       f"0.5 × 0.600 (epoch 2); stopped; {config.out} keeps epoch 2")
    assert result.stopped and sorted(saved) == [1, 2]  # no checkpoint, no callback for the collapsed epoch
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.collapse["epoch"] == 3 and result.collapse["collapse"] == {
        "action": "stop", "best_val_robust_accuracy": 0.6, "best_epoch": 2, "threshold": 0.3, "kept_epoch": 2}
    assert open(config.out, "rb").read() == saved[2]  # the collapsed epoch did not overwrite the good one
    assert load_checkpoint(config.out).epoch == 2
    log = [json.loads(line) for line in log_path_for(config.out).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and log[-1]["collapse"]["kept_epoch"] == 2


def test_resuming_a_stopped_run_stops_again_unless_told_to_warn(tmp_path, monkeypatch):
    robust_accuracies(monkeypatch, [0.5, 0.6, 0.2, 0.7])
    config = fast_config(tmp_path, epochs=4)
    with pytest.warns(CatastrophicOverfittingWarning):
        train(config)
    kept = open(config.out, "rb").read()
    with pytest.warns(CatastrophicOverfittingWarning, match="keeps epoch 2"):
        again = train(TrainConfig(**{**config.__dict__, "resume": True}))  # the best comes from the saved history
    assert again.stopped and open(config.out, "rb").read() == kept
    with pytest.warns(CatastrophicOverfittingWarning, match="epoch 3 .*training goes on"):
        through = train(TrainConfig(**{**config.__dict__, "resume": True, "co_guard": "warn"}))
    assert not through.stopped and [r["epoch"] for r in through.history] == [1, 2, 3, 4]
    assert load_checkpoint(config.out).complete


def test_the_guard_warns_and_goes_on(tmp_path, monkeypatch):
    robust_accuracies(monkeypatch, [0.5, 0.6, 0.2, 0.7])
    config = fast_config(tmp_path, epochs=4, co_guard="warn")
    with pytest.warns(CatastrophicOverfittingWarning, match="at epoch 3 .*training goes on"):
        result = train(config)
    assert not result.stopped and len(result.history) == 4
    assert result.history[2]["collapse"]["action"] == "warn" and "collapse" not in result.history[3]
    assert load_checkpoint(config.out).epoch == 4


@pytest.mark.parametrize("values, co_guard", [
    ([0.15, 0.05, 0.06], "stop"),   # near chance: never judged (best below 0.2)
    ([0.5, 0.3, 0.26], "stop"),    # a decline, not a collapse (≥ half the best)
    ([0.5, 0.6, 0.1], "off"),
])
def test_no_collapse_no_word(tmp_path, monkeypatch, values, co_guard):
    robust_accuracies(monkeypatch, values)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CatastrophicOverfittingWarning)
        result = train(fast_config(tmp_path, epochs=3, co_guard=co_guard))
    assert not result.stopped and len(result.history) == 3


def test_the_guard_leaves_multi_step_methods_alone(tmp_path, monkeypatch):
    robust_accuracies(monkeypatch, [0.5, 0.6, 0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CatastrophicOverfittingWarning)
        assert len(train(fast_config(tmp_path, "pgd", steps=2, epochs=3)).history) == 3


# --- the command line -------------------------------------------------------------------------


CLI = ["--dataset", "toy", "--model", "mlp", "--norm", "linf", "--eps", "0.3", "--limit", "300", "--batch-size", "32",
       "--eval-steps", "2", "--device", "cpu", "--quiet"]


def test_cli_trains_fast_pgd_and_the_audit_names_the_method(tmp_path):
    out = tmp_path / "fast.pt"
    result = runner.invoke(app, ["train", *CLI, "--method", "fast-pgd", "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    state = load_checkpoint(out)
    assert state.method == "fast-pgd" and (state.threat.steps, state.threat.step) == (1, pytest.approx(0.375))
    audited = runner.invoke(app, ["audit", str(out), "--limit", "30", "--json", "-", "--quiet"])
    assert audited.exit_code == 0, audited.stderr
    report = json.loads(audited.stdout)
    assert [m["method"] for m in report["models"]] == ["fast-pgd"]
    table = runner.invoke(app, ["audit", str(out), "--limit", "30"])
    assert table.exit_code == 0 and "fast-pgd" in table.stdout


@pytest.mark.parametrize("args, fragments", [
    (["--steps", "5"], ["--steps must be 1 or left out for method fast-pgd"]),
    (["--eval-steps", "0"], ["--eval-steps must be at least 1 for method fast-pgd", "--co-guard off"]),
    (["--co-guard", "halt"], ["--co-guard"]),
])
def test_cli_refusals_are_one_line(tmp_path, assert_one_line_error, args, fragments):
    out = tmp_path / "fast.pt"
    result = runner.invoke(app, ["train", *CLI, "--method", "fast-pgd", "--epochs", "1", "--out", str(out), *args])
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_cli_says_in_one_line_where_the_guard_stopped(tmp_path, monkeypatch):
    robust_accuracies(monkeypatch, [0.5, 0.6, 0.2, 0.7])
    out = tmp_path / "fast.pt"
    result = runner.invoke(app, ["train", *CLI, "--method", "fast-pgd", "--epochs", "4", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("wpgdkit: warning:")]
    assert lines == [f"wpgdkit: warning: catastrophic overfitting at epoch 3 of fast-pgd: robust validation accuracy "
                     f"0.200 < 0.5 × 0.600 (epoch 2); stopped; {out} keeps epoch 2"]
    assert load_checkpoint(out).epoch == 2


@pytest.mark.slow
def test_torchrun_two_processes_train_fast_pgd(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "wpgdkit", "train", *CLI, "--method", "fast-pgd", "--epochs", "2", "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    state = load_checkpoint(out)
    assert state.method == "fast-pgd" and state.epoch == 2
    assert len(log_path_for(out).read_text().splitlines()) == 2  # rank 0 alone writes the log
