"""The shared progress reporters (``wpgdkit.cli._progress``): plain lines off a terminal, ETA bars on one, Ctrl-C."""

from __future__ import annotations

import io

import pytest
import typer
from rich.console import Console
from rich.progress import TimeElapsedColumn, TimeRemainingColumn

from wpgdkit.cli._progress import (RichAuditProgress, RichDemoProgress, RichPhases, RichProgress, format_duration,
                                   interruptible)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain() -> Console:
    """A console like a log file or a pipe."""
    return Console(file=io.StringIO(), force_terminal=False, width=80)


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=160)


def lines(console: Console) -> list[str]:
    return console.file.getvalue().splitlines()


STATS = {"loss": 1.234, "acc": 0.512, "images_per_s": 85.4}


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (250, "4m10s"), (3599, "59m59s"),
                                           (7500, "2h05m"), (-3, "0s")])
def test_durations_are_short(seconds, text):
    assert format_duration(seconds) == text


def test_training_off_a_terminal_prints_a_line_after_30_seconds_of_silence():
    clock, console = FakeClock(), plain()
    progress = RichProgress(10, console=console, clock=clock)
    assert progress.interval_s == 30 and not progress.live
    progress.start_epoch(0, 469)
    for _ in range(119):  # 29.75 s: still quiet
        clock.now += 0.25
        progress.advance(STATS)
    assert lines(console) == []
    clock.now += 0.25  # batch 120 ends at 30 s
    progress.advance(STATS)
    assert lines(console) == ["epoch 1/10: batch 120/469 (26%), loss 1.2340, acc 0.512, 85 img/s, eta 1m27s"]
    clock.now += 29.0  # batch 121: 29 s after the line, quiet again
    progress.advance(STATS)
    assert len(lines(console)) == 1
    clock.now += 1.0
    progress.advance(STATS)
    assert lines(console)[-1] == "epoch 1/10: batch 122/469 (26%), loss 1.2340, acc 0.512, 85 img/s, eta 2m51s"


def test_any_line_restarts_the_silence_and_epochs_restart_the_count():
    clock, console = FakeClock(), plain()
    progress = RichProgress(2, console=console, clock=clock, interval_s=10)
    progress.start_epoch(0, 4)
    clock.now += 9
    progress.advance(STATS)
    progress.end_epoch({"epoch": 1, "train_loss": 0.5, "train_adversarial_accuracy": 0.75, "images_per_s": 12.0})
    progress.start_epoch(1, 4)
    clock.now += 9  # 18 s after the start, 9 s after the epoch line
    progress.advance(STATS)
    assert lines(console) == ["epoch 1/2  loss 0.5000  train adv acc 0.7500  12 img/s"]
    clock.now += 1
    progress.advance(STATS)
    assert lines(console)[-1] == "epoch 2/2: batch 2/4 (50%), loss 1.2340, acc 0.512, 85 img/s, eta 10s"


def test_audit_lines_name_the_model_and_print_it_as_is():
    clock, console = FakeClock(), plain()
    progress = RichAuditProgress(console=console, clock=clock)
    progress.start_model("pgd[red]", 10)
    for _ in range(3):
        clock.now += 10
        progress.advance()
    assert lines(console) == ["attacking pgd[red]: batch 3/10 (30%), eta 1m10s"]


def test_on_a_terminal_the_bars_show_elapsed_time_and_an_eta_and_no_lines():
    clock, console = FakeClock(), terminal()
    progress = RichProgress(3, console=console, clock=clock, interval_s=0)
    assert progress.live
    columns = progress.bar.columns
    assert any(isinstance(c, TimeElapsedColumn) for c in columns)
    assert any(isinstance(c, TimeRemainingColumn) for c in columns)
    with progress:
        progress.start_epoch(0, 100)
        for _ in range(10):
            clock.now += 1
            progress.advance(STATS)
        clock.now += 1  # past any value the refresh thread cached mid-loop
        shot = Console(file=io.StringIO(), width=160, color_system=None)
        shot.print(progress.bar.get_renderable())
    rendered = shot.file.getvalue()
    assert "epoch 1/3" in rendered and "10/100" in rendered
    assert "0:01:30" in rendered  # 90 batches to go at 1 batch/s
    assert "batch 10/100" not in console.file.getvalue()  # no plain lines on a terminal
    assert not progress.bar.live.is_started


def test_audit_bar_escapes_the_model_name():
    clock, console = FakeClock(), terminal()
    with RichAuditProgress(console=console, clock=clock) as progress:
        progress.start_model("run[bold]x", 4)
        assert any(isinstance(c, TimeRemainingColumn) for c in progress.bar.columns)
        shot = Console(file=io.StringIO(), width=160, color_system=None)
        shot.print(progress.bar.get_renderable())
    assert "attacking run[bold]x" in shot.file.getvalue()


def test_phases_number_the_trainings_and_audits_and_pass_the_clock_on():
    clock, console = FakeClock(), plain()
    phases = RichPhases(console=console, clock=clock, interval_s=5)
    with phases.training("toy-mlp-ce", 1) as first:
        assert isinstance(first, RichProgress) and first.clock is clock and first.interval_s == 5
    with phases.training("toy-mlp-pgd", 3):
        pass
    with phases.auditing("toy-mlp-ce, toy-mlp-pgd", "pgd") as audit:
        assert isinstance(audit, RichAuditProgress) and audit.console is console
    assert lines(console) == ["training model 1: toy-mlp-ce (1 epoch)", "training model 2: toy-mlp-pgd (3 epochs)",
                              "audit 1: toy-mlp-ce, toy-mlp-pgd (pgd attack)"]


def test_phases_show_the_totals_when_known():
    console = plain()
    phases = RichPhases(trainings=5, audits=2, console=console)
    with phases.training("a", 2):
        pass
    with phases.training("b[x]", 2):
        pass
    with phases.auditing("a, b[x]", "wpgd"):
        pass
    assert lines(console) == ["training 1/5: a (2 epochs)", "training 2/5: b[x] (2 epochs)",
                              "audit 1/2: a, b[x] (wpgd attack)"]


def test_phases_take_the_totals_from_the_librarys_plan():
    console = plain()
    phases = RichPhases(console=console)
    with phases.training("warm-up", 1):
        pass
    phases.plan(trainings=2, audits=1)
    phases.reused("toy-mlp-ce")
    for name in ("toy-mlp-pgd", "toy-mlp-wpgd"):
        with phases.training(name, 1):
            pass
    with phases.auditing("toy-mlp-ce, toy-mlp-pgd, toy-mlp-wpgd", "pgd"):
        pass
    assert lines(console) == ["training model 1: warm-up (1 epoch)", "reusing toy-mlp-ce (already trained)",
                              "training 1/2: toy-mlp-pgd (1 epoch)", "training 2/2: toy-mlp-wpgd (1 epoch)",
                              "audit 1/1: toy-mlp-ce, toy-mlp-pgd, toy-mlp-wpgd (pgd attack)"]


def test_demo_progress_reports_its_steps_and_the_batches_off_a_terminal():
    clock, console = FakeClock(), plain()
    progress = RichDemoProgress(3, console=console, clock=clock, interval_s=30)
    progress.begin(4)
    progress.step("training CE")
    progress.start_epoch(0, 8)
    for _ in range(4):
        clock.now += 10
        progress.advance(STATS)
    progress.end_epoch({})
    progress.done("trained CE")
    progress.step("auditing")
    progress.start_model("pgd", 2)
    clock.now += 31
    progress.advance()
    assert lines(console) == ["  epoch 1/3: batch 3/8 (38%), loss 1.2340, acc 0.512, 85 img/s, eta 50s",
                              "  trained CE", "  attacking pgd: batch 1/2 (50%), eta 31s"]


def test_demo_bars_on_a_terminal_have_an_eta_for_batches_only():
    clock, console = FakeClock(), terminal()
    with RichDemoProgress(3, console=console, clock=clock) as progress:
        progress.begin(4)
        progress.step("training CE")
        progress.start_epoch(0, 10)
        for _ in range(5):
            clock.now += 2
            progress.advance(STATS)
        clock.now += 1  # past any value the refresh thread cached mid-loop
        shot = Console(file=io.StringIO(), width=160, color_system=None)
        shot.print(progress.bar.get_renderable())
    rendered = shot.file.getvalue().splitlines()
    overall = next(line for line in rendered if "demo: training CE" in line)
    detail = next(line for line in rendered if "epoch 1/3" in line)
    assert "0:00:10" in detail  # 5 batches to go at 0.5 batch/s
    assert "-:--:--" not in overall and "0:00:10" not in overall


def test_interrupt_prints_one_line_after_the_bars_are_down_and_exits_130(capsys):
    clock = FakeClock()
    progress = RichProgress(2, console=terminal(), clock=clock)
    seen = []

    def message() -> str:
        seen.append(progress.bar.live.is_started)
        return "runs/x.pt holds epoch 1 of 2;\nresume with: wpgdkit train --resume"

    with pytest.raises(typer.Exit) as stop:
        with interruptible(message), progress:
            progress.start_epoch(0, 5)
            assert progress.bar.live.is_started
            raise KeyboardInterrupt
    assert stop.value.exit_code == 130
    assert seen == [False]
    err = capsys.readouterr().err
    assert err == "wpgdkit: interrupted; runs/x.pt holds epoch 1 of 2; resume with: wpgdkit train --resume\n"


def test_interruptible_is_silent_without_an_interrupt_and_lets_errors_through(capsys):
    called = []
    with interruptible(lambda: called.append(1) or "x"):
        pass
    with pytest.raises(ValueError):
        with interruptible(lambda: called.append(1) or "x"):
            raise ValueError("a bug keeps its traceback")
    assert called == [] and capsys.readouterr().err == ""


def test_phase_lines_wait_for_real_work_so_a_setup_error_stays_the_only_line():
    console = plain()
    phases = RichPhases(console=console)
    with pytest.raises(ValueError):
        with phases.training("toy-mlp-ce", 1):
            raise ValueError("refused while setting up")  # before the first epoch
    with pytest.raises(ValueError):
        with phases.auditing("toy-mlp-ce", "pgd"):
            raise ValueError("refused while loading")  # before the first model
    assert lines(console) == []
    with phases.training("toy-mlp-pgd", 2) as progress:
        assert lines(console) == []
        progress.start_epoch(0, 3)
        assert lines(console) == ["training model 2: toy-mlp-pgd (2 epochs)"]
        progress.start_epoch(1, 3)
    with phases.auditing("toy-mlp-pgd", "pgd") as audit:
        audit.start_model("toy-mlp-pgd", 2)
    assert lines(console) == ["training model 2: toy-mlp-pgd (2 epochs)", "audit 2: toy-mlp-pgd (pgd attack)"]
