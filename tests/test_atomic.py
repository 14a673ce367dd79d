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


# --- destinations that cannot be written: one WpgdkitError, nothing left behind ----------

from wpgdkit.atomic import output_file_problem, output_folder_problem  # noqa: E402
from wpgdkit.errors import OutputError, WpgdkitError  # noqa: E402


def test_output_file_problem_accepts_new_files_and_missing_folders(tmp_path):
    assert output_file_problem(tmp_path / "x.json") is None
    assert output_file_problem(tmp_path / "a" / "b" / "x.json") is None  # created on write
    (tmp_path / "old.json").write_text("{}")
    assert output_file_problem(tmp_path / "old.json") is None  # replaced on write


def test_output_file_problem_names_what_is_in_the_way(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    assert output_file_problem(tmp_path / "folder") == f"{tmp_path / 'folder'} is a folder, not a file"
    assert output_file_problem(tmp_path / "file" / "x.json") == f"{tmp_path / 'file'} is not a folder"
    assert output_file_problem(tmp_path / "file" / "a" / "x.json") == f"{tmp_path / 'file'} is not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_file_problem_no_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert output_file_problem(locked / "x.json") == f"no permission to write in {locked}"


def test_atomic_path_refuses_a_folder_destination_before_writing(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="is a folder") as info:
        atomic_write_text(tmp_path / "out", "x")
    assert isinstance(info.value, WpgdkitError)
    assert os.listdir(tmp_path / "out") == [] and os.listdir(tmp_path) == ["out"]


def test_os_errors_while_writing_become_output_errors(tmp_path):
    with pytest.raises(OutputError, match="cannot write .*x.bin: disk full"):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(28, "disk full")
    assert os.listdir(tmp_path) == []


def test_library_errors_inside_the_block_pass_through_unchanged(tmp_path):
    from wpgdkit.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="^gone$"):
        with atomic_path(tmp_path / "x.bin"):
            raise DataNotFoundError("gone")


def test_output_folder_problem(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    assert output_folder_problem(tmp_path / "folder") is None
    assert output_folder_problem(tmp_path / "new" / "deeper") is None
    assert output_folder_problem(tmp_path / "file") == f"{tmp_path / 'file'} is not a folder"
    assert output_folder_problem(tmp_path / "file" / "sub") == f"{tmp_path / 'file'} is not a folder"
