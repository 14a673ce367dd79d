"""Runnable experiments: whole pipelines (train, audit, plot, report) behind one command each.

Every experiment is its own module and is imported on its own, e.g.
``from wpgdkit.experiments.demo import DemoConfig, run_demo``; this package
imports none of them. What they share is in :mod:`wpgdkit.experiments.runner`
(run files named by settings and fingerprint, train-or-reuse-or-resume,
commands, report pieces) and :mod:`wpgdkit.experiments.prose` (the reports'
words and readings).
"""
