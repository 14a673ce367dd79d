"""Where wpgdkit keeps what it can rebuild, and content hashes of files that skip re-reading them.

:func:`cache_dir` is the one place that decides the cache folder:
``$WPGDKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/wpgdkit`` (an absolute
``XDG_CACHE_HOME`` only, as the XDG spec says), else ``~/.cache/wpgdkit``.
Everything under it may be deleted at any time; wpgdkit rebuilds it.

:func:`file_digests` hashes files (SHA-256) and remembers each hash with the
file's stat signature (size, mtime, ctime, inode, device), so that a cache
keyed by the *content* of large input files (the 30 MB of a WordNet database)
costs a few ``stat`` calls instead of a full read. A remembered hash is used
only when the signature is unchanged **and** the file's last change (mtime and
ctime) is older than :data:`RACY_NS` before the moment it was hashed: a file
rewritten in the same file-system timestamp tick as it was hashed could keep
its signature ("racy" in git's sense), so such a file is hashed again until
its timestamps are safely in the past. Any write changes ctime, which no user
command can set back, and a replaced file has a new inode.

:func:`entry_key`, :func:`read_entry` and :func:`write_entry` are the one form
of a cache entry (the WordNet closures, the ``metric check`` reports): a JSON
file named by the SHA-256 of what its answer depends on, read only when
every part of it checks out.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CACHE_ENV", "RACY_NS", "cache_dir", "stat_signature", "file_digests", "save_digests", "canonical_json",
           "sha256_hex", "entry_key", "read_entry", "write_entry"]

CACHE_ENV = "WPGDKIT_CACHE_DIR"

#: How long (ns) a file must have been unchanged when it was hashed for its remembered hash to be trusted.
#: Above the coarsest common timestamp granularity (2 s on FAT; ext4, xfs and tmpfs use a clock tick).
RACY_NS = 3_000_000_000

_DIGESTS_FORMAT = "wpgdkit-file-digests"
_DIGESTS_VERSION = 1
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The user's wpgdkit cache folder (not created here)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "wpgdkit"
    return Path.home() / ".cache" / "wpgdkit"


def stat_signature(path: str | os.PathLike[str]) -> tuple[int, int, int, int, int]:
    """``(size, mtime_ns, ctime_ns, inode, device)`` of a file; OSError if it cannot be read."""
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(value) -> bytes:
    """The one JSON text of ``value`` (sorted keys, no spaces, ASCII) that keys and checksums are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_memo(memo: Path) -> dict[str, list]:
    """The remembered hashes, or {} when the file is missing, unreadable, corrupt or of another format."""
    try:
        doc = json.loads(memo.read_bytes())
        files = doc["files"]
        if (doc.get("format"), doc.get("version")) != (_DIGESTS_FORMAT, _DIGESTS_VERSION) or not isinstance(files, dict):
            return {}
        if doc.get("sha256") != sha256_hex(canonical_json(files)):
            return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return files


def _write_memo(memo: Path, files: dict[str, list]) -> None:
    from wpgdkit.atomic import atomic_write_bytes
    from wpgdkit.errors import WpgdkitError

    doc = {"format": _DIGESTS_FORMAT, "version": _DIGESTS_VERSION, "sha256": sha256_hex(canonical_json(files)),
           "files": files}
    try:
        atomic_write_bytes(memo, json.dumps(doc, sort_keys=True).encode("ascii"))
    except (OSError, WpgdkitError):
        pass  # a cache that cannot be written only costs a re-hash next time


def _trusted(entry, signature: tuple) -> str | None:
    """The remembered hash if ``entry`` matches ``signature`` and was taken long enough after the file's last change."""
    if not (isinstance(entry, list) and len(entry) == 7 and all(isinstance(v, int) for v in entry[:6])):
        return None
    if tuple(entry[:5]) != signature or not isinstance(entry[6], str) or len(entry[6]) != 64:
        return None
    size, mtime_ns, ctime_ns, _, _, hashed_at_ns, digest = entry
    if max(mtime_ns, ctime_ns) > hashed_at_ns - RACY_NS:
        return None  # changed too shortly before it was hashed: a same-tick rewrite could hide
    return digest


# Hashes computed in this process and not yet written to their memo file (see save_digests).
_PENDING: dict[Path, dict[str, list]] = {}


def file_digests(paths: Sequence[str | os.PathLike[str]], *, memo: Path | None = None, save: bool = True) -> list[str]:
    """SHA-256 (hex) of each file, reusing the hashes remembered in ``memo``.

    Parameters
    ----------
    paths : sequence of path
    memo : Path, optional
        The JSON file of remembered hashes (keyed by absolute path); None hashes every file.
    save : bool, default=True
        Write newly computed hashes to ``memo`` now (atomically; silently
        skipped if it cannot be written). With False they are kept in memory
        until :func:`save_digests`, so that a command that fails writes nothing.

    Raises
    ------
    OSError
        For a file that cannot be read (or that changed while it was hashed).
    """
    remembered = _read_memo(memo) if memo is not None else {}
    pending = _PENDING.setdefault(memo, {}) if memo is not None else {}
    digests = []
    for path in paths:
        key = os.path.abspath(path)
        signature = stat_signature(key)
        digest = _trusted(pending.get(key), signature) or _trusted(remembered.get(key), signature)
        if digest is None:
            hashed_at = time.time_ns()  # before reading: a change during the read is after this moment
            digest = _sha256(Path(key))
            if stat_signature(key) != signature:
                raise OSError(f"{key} changed while it was hashed")
            pending[key] = [*signature, hashed_at, digest]
        digests.append(digest)
    if memo is not None and save:
        save_digests(memo)
    return digests


def save_digests(memo: Path) -> None:
    """Write the hashes :func:`file_digests` computed for ``memo`` and has not written yet."""
    pending = _PENDING.pop(memo, None)
    if pending:
        _write_memo(memo, {**_read_memo(memo), **pending})


# --- keyed entries ----------------------------------------------------------------------------------------
# A cache entry is one JSON file: {format, version, key, fields, payload_sha256, payload}. ``fields`` is
# everything the answer depends on and ``key`` the SHA-256 of them (the file's name); the payload is the
# answer. An entry is read only when all of that matches, and written atomically, or not at all.


def entry_key(kind: str, version: int, fields: dict) -> str:
    """The key of an entry of format ``kind`` and ``version`` made of ``fields``: SHA-256 of their canonical JSON."""
    return sha256_hex(canonical_json({"format": kind, "version": version, **fields}))


def read_entry(path: Path, *, kind: str, version: int, key: str, fields: dict):
    """The payload of the entry at ``path``, or None unless its format, version, key, fields and payload hash match.

    Anything else (a missing, unreadable, truncated or corrupt file, another
    key) is None, without a message: the caller computes the answer again.
    The payload's own form is the caller's to check.
    """
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # missing, unreadable, truncated, not UTF-8, not JSON
        return None
    if not isinstance(doc, dict) or (doc.get("format"), doc.get("version")) != (kind, version):
        return None
    if doc.get("key") != key or "fields" not in doc or "payload" not in doc:
        return None
    if canonical_json(doc["fields"]) != canonical_json(fields):
        return None
    if doc.get("payload_sha256") != sha256_hex(canonical_json(doc["payload"])):
        return None
    return doc["payload"]


def write_entry(path: Path, *, kind: str, version: int, key: str, fields: dict, payload) -> bool:
    """Write an entry atomically; False (and nothing written) when the folder cannot take it."""
    from wpgdkit.atomic import atomic_write_bytes
    from wpgdkit.errors import WpgdkitError

    doc = {"format": kind, "version": version, "key": key, "fields": fields,
           "payload_sha256": sha256_hex(canonical_json(payload)), "payload": payload}
    try:
        atomic_write_bytes(path, json.dumps(doc, indent=1, ensure_ascii=True).encode("ascii") + b"\n")
    except (OSError, WpgdkitError):
        return False  # a cache that cannot be written only costs the work next time
    return True
