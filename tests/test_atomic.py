"""Atomic file writes (wpgdkit.atomic)."""

from __future__ import annotations

import os
import stat

import pytest

from wpgdkit.atomic import atomic_path, atomic_write_bytes, atomic_write_text


class Boom(Exception):
    pass


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """A setter of the process umask; the original is restored after the test."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def test_write_text_content_and_encoding(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "héllo\nwörld\n")
    assert path.read_bytes() == "héllo\nwörld\n".encode("utf-8")
    # Nothing but the result is left in the folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_write_bytes(tmp_path):
    path = tmp_path / "blob.bin"
    atomic_write_bytes(path, b"\x00\x01\xff")
    assert path.read_bytes() == b"\x00\x01\xff"


def test_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(path, "x")
    assert path.read_text() == "x"


def test_overwrites_existing_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_permissions_follow_umask_not_0600(tmp_path, umask, mask):
    umask(mask)
    path = tmp_path / "out.txt"
    atomic_write_text(path, "x")
    # What a plain open(path, "w") would give: 0o666 minus the umask.
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(path) == 0o666 & ~mask == _mode(plain)
    if mask != 0o077:
        assert _mode(path) != 0o600  # mkstemp's default must not leak through


def test_temp_file_sits_beside_destination_and_is_renamed(tmp_path):
    final = tmp_path / "result.csv"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".result.csv.") and tmp.name.endswith(".tmp")
        assert tmp.exists() and not final.exists()
        tmp.write_text("done")
    assert final.read_text() == "done" and not tmp.exists()


def test_temp_file_removed_when_body_raises(tmp_path):
    final = tmp_path / "result.csv"
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise Boom
    assert not tmp.exists()
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_untouched_when_body_raises(tmp_path):
    final = tmp_path / "result.csv"
    final.write_text("precious")
    before = os.stat(final)
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            tmp.write_text("garbage")
            raise Boom
    assert final.read_text() == "precious"
    after = os.stat(final)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.csv"]


def test_base_exception_also_cleans_up(tmp_path):
    final = tmp_path / "result.csv"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(final) as tmp:
            raise KeyboardInterrupt
    assert not tmp.exists() and not final.exists()


def test_body_may_remove_temp_file_before_raising(tmp_path):
    # The clean-up tolerates a temp file that is already gone.
    final = tmp_path / "result.csv"
    with pytest.raises(Boom):
        with atomic_path(final) as tmp:
            tmp.unlink()
            raise Boom
    assert list(tmp_path.iterdir()) == []
