"""Fixtures of the benchmark tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared two-core machine: two threads wait on each other at every op.

    Per test, and restored after: a benchmark run with ``threads=`` sets its own count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
