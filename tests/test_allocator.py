"""wpgdkit.allocator: malloc's thresholds raised inside the block, set to glibc's ceilings after, trimmed once."""

from __future__ import annotations

import sys

import pytest

from wpgdkit import allocator


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    monkeypatch.delenv(allocator.RETAIN_ENV, raising=False)
    return libc


def test_thresholds_up_inside_and_at_glibcs_ceilings_after(fake):
    with allocator.retain_freed_memory():
        assert allocator.retention_active()
        assert fake.calls == [("mallopt", -1, 1 << 30), ("mallopt", -3, 1 << 30)]
        with allocator.retain_freed_memory():  # nested: tuned once
            pass
        assert allocator.retention_active() and len(fake.calls) == 2
    assert not allocator.retention_active()
    assert fake.calls[2:] == [("mallopt", -3, 32 << 20), ("mallopt", -1, 64 << 20), ("malloc_trim", 0)]


def test_restored_after_an_error(fake):
    with pytest.raises(RuntimeError), allocator.retain_freed_memory():
        raise RuntimeError("boom")
    assert not allocator.retention_active() and fake.calls[-1] == ("malloc_trim", 0)


def test_turned_off_by_the_environment(fake, monkeypatch):
    monkeypatch.setenv(allocator.RETAIN_ENV, "0")
    with allocator.retain_freed_memory():
        assert not allocator.retention_active()
    assert fake.calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_real_glibc_block_runs():
    with allocator.retain_freed_memory():
        data = [bytearray(8 << 20) for _ in range(4)]
        del data
    assert not allocator.retention_active()
