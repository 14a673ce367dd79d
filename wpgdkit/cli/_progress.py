"""The progress reporters the commands hand to the library, and what Ctrl-C prints.

On a terminal each reporter draws Rich bars on stderr (elapsed time and an
ETA). Anywhere else (a log file, a pipe, a batch job) it prints a plain line
when a batch ends after ``interval_s`` seconds (default :data:`INTERVAL_S`)
without output, e.g.
``epoch 1/10: batch 120/469 (26%), loss 1.2340, acc 0.512, 85 img/s, eta 4m10s``,
so a long run never leaves its log empty for long. A single batch longer than
the interval cannot be reported sooner.

The reporters keep the method names the library calls:
:func:`wpgdkit.training.train` calls ``start_epoch``/``advance``/``end_epoch``,
:func:`wpgdkit.audit.audit` calls ``start_model``/``advance``,
:func:`wpgdkit.experiments.reproduce.run_experiment` calls the context
managers ``training``/``auditing``, and :func:`wpgdkit.experiments.demo.run_demo`
calls ``begin``/``step``/``done`` besides the training and audit ones.

Every reporter takes ``console`` (default: the CLI's stderr) and ``clock``
(default :func:`time.monotonic`), so tests drive the timing with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from wpgdkit.cli._common import EXIT_INTERRUPTED, stderr

__all__ = ["RichProgress", "RichAuditProgress", "RichPhases", "RichDemoProgress", "interruptible",
           "format_duration", "EXIT_INTERRUPTED", "INTERVAL_S"]

#: Longest silence, in seconds, of a reporter writing to something that is not a terminal.
INTERVAL_S = 30.0

Clock = Callable[[], float]


def format_duration(seconds: float) -> str:
    """``42s``, ``4m10s``, ``2h05m``: short enough for a progress line."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class _Count:
    """Batches done of one bar, for the plain lines' percentage and ETA."""

    total: int
    since: float
    done: int = 0

    def eta(self, now: float) -> float | None:
        if self.done <= 0:
            return None
        return (now - self.since) / self.done * max(self.total - self.done, 0)

    def line(self, prefix: str, now: float, stats: dict[str, float] | None = None) -> str:
        share = self.done / self.total if self.total else 1.0
        parts = [f"{prefix}: batch {self.done}/{self.total} ({share:.0%})"]
        if stats:
            parts += [f"loss {stats['loss']:.4f}", f"acc {stats['acc']:.3f}", f"{stats['images_per_s']:.0f} img/s"]
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"eta {format_duration(eta)}")
        return ", ".join(parts)


class _Remaining(TimeRemainingColumn):
    """Rich's ETA column, left blank for a bar added with ``eta=False`` (a count of unequal steps)."""

    def render(self, task: Any) -> Text:
        if not task.fields.get("eta", True):
            return Text("")
        return super().render(task)


class _Display:
    """What every reporter shares: the Rich bars on a terminal, throttled plain lines elsewhere.

    The bars start with the first task, not before, and so does ``header``
    (a line announcing the phase, set by :class:`RichPhases`): an error found
    while setting up (missing data, no GPU, a refused setting) stays the
    single line on stderr.
    """

    #: A line printed once, just before the first task starts (None: nothing).
    header: str | None = None

    def __init__(self, *columns: str | ProgressColumn, console: Console | None = None, clock: Clock | None = None,
                 interval_s: float | None = None) -> None:
        self.console = stderr if console is None else console
        self.clock = time.monotonic if clock is None else clock
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.live = self.console.is_terminal
        self.bar = (Progress(*columns, TimeElapsedColumn(), _Remaining(), console=self.console, transient=True,
                             get_time=self.clock) if self.live else None)
        self.started = False
        self._last_output = self.clock()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Take the bars off the screen (idempotent)."""
        if self.started and self.bar is not None:
            self.bar.stop()
        self.started = False

    def announce(self) -> None:
        """Print :attr:`header` if it has not been printed yet (idempotent)."""
        if self.header is not None:
            header, self.header = self.header, None
            self.say(header)

    def _add(self, total: int, description: str = "", **fields: Any) -> tuple[Any, _Count]:
        self.announce()
        if not self.started:
            if self.bar is not None:
                self.bar.start()
            self.started = True
        task = self.bar.add_task(description, total=total, **fields) if self.bar is not None else None
        return task, _Count(total, self.clock())

    def _remove(self, task: Any) -> None:
        if self.bar is not None and task is not None:
            self.bar.remove_task(task)

    def _step(self, task: Any, count: _Count, prefix: str, stats: dict[str, float] | None = None,
              **fields: Any) -> None:
        count.done += 1
        if self.bar is not None:
            self.bar.update(task, advance=1, **fields)
            return
        now = self.clock()
        if now - self._last_output >= self.interval_s:
            self.say(count.line(prefix, now, stats))

    def say(self, text: str) -> None:
        """One plain line on the console (above the bars on a terminal), printed as is."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self._last_output = self.clock()


class RichProgress(_Display):
    """:func:`wpgdkit.training.train`'s reporter: a per-batch bar and one summary line per epoch."""

    def __init__(self, epochs: int, *, console: Console | None = None, clock: Clock | None = None,
                 interval_s: float | None = None) -> None:
        super().__init__(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[ips]:.0f} img/s"),
            console=console, clock=clock, interval_s=interval_s,
        )
        self.epochs = epochs
        self.epoch = 0
        self.task: Any = None
        self.count: _Count | None = None

    def start_epoch(self, epoch: int, batches: int) -> None:
        self._remove(self.task)
        self.epoch = epoch + 1
        self.task, self.count = self._add(batches, epoch=self.epoch, epochs=self.epochs, loss=0.0, acc=0.0, ips=0.0)

    def advance(self, stats: dict[str, float]) -> None:
        self._step(self.task, self.count, f"epoch {self.epoch}/{self.epochs}", stats,
                   loss=stats["loss"], acc=stats["acc"], ips=stats["images_per_s"])

    def end_epoch(self, record: dict[str, Any]) -> None:
        parts = [f"epoch {record['epoch']}/{self.epochs}", f"loss {record['train_loss']:.4f}"]
        for key, label in (("train_accuracy", "train acc"), ("train_adversarial_accuracy", "train adv acc"),
                           ("val_accuracy", "val acc"), ("val_robust_accuracy", "val robust acc")):
            if key in record:
                parts.append(f"{label} {record[key]:.4f}")
        parts.append(f"{record['images_per_s']:.0f} img/s")
        self.say("  ".join(parts))


class RichAuditProgress(_Display):
    """:func:`wpgdkit.audit.audit`'s reporter: one bar per model."""

    def __init__(self, *, console: Console | None = None, clock: Clock | None = None,
                 interval_s: float | None = None) -> None:
        super().__init__(TextColumn("attacking {task.fields[model]}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("batches"), console=console, clock=clock, interval_s=interval_s)
        self.model = ""
        self.task: Any = None
        self.count: _Count | None = None

    def start_model(self, name: str, batches: int) -> None:
        self._remove(self.task)
        self.model = name
        self.task, self.count = self._add(batches, model=escape(name))

    def advance(self) -> None:
        self._step(self.task, self.count, f"attacking {self.model}")


class RichPhases:
    """:func:`~wpgdkit.experiments.reproduce.run_experiment`'s reporter: a numbered line per training
    or audit, then that run's own reporter.

    Once the totals are known (``trainings``/``audits``, or the library's
    :meth:`plan`) the lines read ``training 2/5: NAME``; before, they only
    count (``training model 2: NAME``).
    """

    def __init__(self, *, trainings: int | None = None, audits: int | None = None, console: Console | None = None,
                 clock: Clock | None = None, interval_s: float | None = None) -> None:
        self.trainings, self.audits = trainings, audits
        self.trained = self.audited = 0
        self.console = stderr if console is None else console
        self.clock, self.interval_s = clock, interval_s

    def _options(self) -> dict[str, Any]:
        return {"console": self.console, "clock": self.clock, "interval_s": self.interval_s}

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def plan(self, *, trainings: int, audits: int) -> None:
        """What is ahead: the runs to train (or resume) and the audits; the numbering starts again."""
        self.trainings, self.audits = trainings, audits
        self.trained = self.audited = 0

    def reused(self, name: str) -> None:
        """A finished run found in the run folder, used as it is."""
        self._say(f"reusing {name} (already trained)")

    @contextmanager
    def training(self, name: str, epochs: int) -> Iterator[RichProgress]:
        self.trained += 1
        which = f"{self.trained}/{self.trainings}" if self.trainings else f"model {self.trained}"
        progress = RichProgress(epochs, **self._options())
        # Printed when the first epoch starts: an error while the run is set up stays the only line.
        progress.header = f"training {which}: {name} ({epochs} epoch{'s' if epochs != 1 else ''})"
        with progress:
            yield progress
        progress.announce()  # a phase that ended without an epoch (nothing left to do) is still logged

    @contextmanager
    def auditing(self, names: str, attack: str) -> Iterator[RichAuditProgress]:
        self.audited += 1
        which = f"{self.audited}/{self.audits}" if self.audits else f"{self.audited}"
        progress = RichAuditProgress(**self._options())
        progress.header = f"audit {which}: {names} ({attack} attack)"  # printed when the first model starts
        with progress:
            yield progress
        progress.announce()


class RichDemoProgress(_Display):
    """:func:`~wpgdkit.experiments.demo.run_demo`'s reporter: the demo's steps, and the batches of
    the current training or audit.

    Each finished step leaves one line above the bars. It is also the
    training and the audit reporter (``start_epoch``/``advance``/``end_epoch``,
    ``start_model``).
    """

    def __init__(self, epochs: int, *, console: Console | None = None, clock: Clock | None = None,
                 interval_s: float | None = None) -> None:
        super().__init__(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[unit]}"), console=console, clock=clock, interval_s=interval_s)
        self.epochs = epochs
        self.overall: Any = None
        self.detail: Any = None
        self.detail_count: _Count | None = None
        self.detail_name = ""

    def begin(self, steps: int) -> None:
        self.overall, _ = self._add(steps, "demo", unit="steps", eta=False)

    def step(self, description: str) -> None:
        if self.bar is not None:
            self.bar.update(self.overall, description=f"demo: {escape(description)}")
        self._clear_detail()

    def done(self, message: str) -> None:
        self._clear_detail()
        self.say(f"  {message}")
        if self.bar is not None:
            self.bar.update(self.overall, advance=1)

    def _clear_detail(self) -> None:
        self._remove(self.detail)
        self.detail = self.detail_count = None

    def _start_detail(self, name: str, batches: int) -> None:
        self._clear_detail()
        self.detail_name = name
        self.detail, self.detail_count = self._add(batches, f"  {escape(name)}", unit="batches")

    def start_epoch(self, epoch: int, batches: int) -> None:
        self._start_detail(f"epoch {epoch + 1}/{self.epochs}", batches)

    def advance(self, stats: dict[str, float] | None = None) -> None:
        if self.detail_count is not None:
            self._step(self.detail, self.detail_count, f"  {self.detail_name}", stats)

    def end_epoch(self, record: dict[str, Any]) -> None:
        pass

    def start_model(self, name: str, batches: int) -> None:
        self._start_detail(f"attacking {name}", batches)


@contextmanager
def interruptible(message: Callable[[], str]) -> Iterator[None]:
    """On Ctrl-C inside the block: ``wpgdkit: interrupted; <message()>`` as one line on stderr, exit code 130.

    ``message`` is called after the interrupt, so it can say what is on disk
    then. Enter this outside the progress reporter: the reporter's
    ``__exit__`` takes the bars down before the line is printed.
    """
    try:
        yield
    except KeyboardInterrupt:
        line = " ".join(f"interrupted; {message()}".split())
        typer.echo(f"wpgdkit: {line}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
