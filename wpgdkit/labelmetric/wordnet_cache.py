"""The WordNet cache: a class list's hypernym closure, kept so that a rebuild skips NLTK.

Opening WordNet with NLTK costs seconds (importing NLTK, then reading the
index files); the distances need only the classes' part of the noun hypernym
graph, a few kilobytes: each class's synset name, the synsets above them and
the edges between (:func:`~wpgdkit.labelmetric.wordnet_distance.hypernym_closure_edges`).
All four measures are computed from that closure, by the same code, whether
it came from NLTK or from the cache, so a cached build is bit-identical to an
uncached one.

An entry is ``<cache>/wordnet/closure-<key>.json`` (``<cache>``:
:func:`wpgdkit.cache.cache_dir`). Its key is the SHA-256 of:

* how the database was found (:class:`~wpgdkit.wordnet.WordNetLocation` kind:
  an NLTK data root, a plain database folder copied for NLTK, or that copy);
* the database's identity: the SHA-256 of each file a build's answer depends
  on (the 12 database files and ``lexnames``; or ``wordnet.zip``). These are
  remembered by path with the file's size, mtime, ctime, inode and device
  (:func:`wpgdkit.cache.file_digests`), so a warm build costs a few ``stat``
  calls, not reading 30 MB; a file changed in any way is hashed again;
* NLTK's version (read from its ``VERSION`` file, without importing it) and
  the requested synset names, in order.

An entry is written (atomically) only after NLTK answered for exactly those
bytes: the reader's files unchanged since it opened them, a prepared copy
found sound, a copied database equal to its source. It is read only if its
format, key, fields and the SHA-256 of its payload (stored inside) all match
and the payload is well formed; anything else (a truncated or corrupt file,
bad JSON, another key, an unreadable file) is ignored without a message and
replaced by the rebuilt entry. Entries are never evicted (a few KB each);
deleting the folder is always safe.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wpgdkit.cache import cache_dir, entry_key, file_digests, read_entry, save_digests, sha256_hex, write_entry

__all__ = ["CACHE_FORMAT", "WordNetClosure", "wordnet_closure", "closure_cache_dir"]

CACHE_FORMAT = "wpgdkit-wordnet-closure"
#: Bumped whenever what an entry holds, or how it is extracted from NLTK, changes.
CACHE_VERSION = 1


@dataclass(frozen=True)
class WordNetClosure:
    """What the WordNet distances need about some classes' synsets.

    Attributes
    ----------
    names : tuple of str
        The synsets as requested (``cat.n.01`` or ``n02121620``).
    synsets : tuple of str
        Their synset names in this WordNet (``cat.n.01``), one per name.
    nodes : tuple of str
        The synsets and all their (instance) hypernyms.
    edges : tuple of (str, str)
        ``(synset, hypernym)`` pairs between the nodes.
    wordnet_version : str
        NLTK's ``get_version()`` of the database (``"3.0"``).
    """

    names: tuple[str, ...]
    synsets: tuple[str, ...]
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    wordnet_version: str

    def distance_matrix(self, measure: str = "path") -> np.ndarray:
        """:func:`~wpgdkit.labelmetric.wordnet_distance.wordnet_distance_matrix` of the synsets."""
        from wpgdkit.labelmetric.wordnet_distance import closure_distance_matrix

        return closure_distance_matrix(self.synsets, self.nodes, self.edges, measure=measure)

    def payload(self) -> dict:
        return {"wordnet_version": self.wordnet_version, "synsets": list(self.synsets), "nodes": list(self.nodes),
                "edges": [list(e) for e in self.edges]}

    @classmethod
    def from_payload(cls, names: tuple[str, ...], payload) -> WordNetClosure | None:
        """The closure an entry's payload describes, or None if it is not well formed."""
        if not isinstance(payload, dict) or set(payload) != {"wordnet_version", "synsets", "nodes", "edges"}:
            return None
        version, synsets, nodes, edges = (payload[k] for k in ("wordnet_version", "synsets", "nodes", "edges"))
        if not isinstance(version, str) or not all(isinstance(v, list) for v in (synsets, nodes, edges)):
            return None
        if not all(isinstance(n, str) for n in (*synsets, *nodes)) or len(synsets) != len(names):
            return None
        known = set(nodes)
        if len(known) != len(nodes) or not known.issuperset(synsets):
            return None
        if not all(isinstance(e, list) and len(e) == 2 and e[0] in known and e[1] in known for e in edges):
            return None
        return cls(names, tuple(synsets), tuple(nodes), tuple((a, b) for a, b in edges), version)


def closure_cache_dir() -> Path:
    """``<cache>/wordnet``: the entries and the remembered file hashes."""
    return cache_dir() / "wordnet"


def wordnet_closure(names: Sequence[str], wordnet_dir: str | Path | None = None, *,
                    use_cache: bool = True) -> WordNetClosure:
    """The hypernym closure of some noun synsets, from the cache or from NLTK.

    Parameters
    ----------
    names : sequence of str
        Synset names (``cat.n.01``) or WordNet ids (``n02121620``).
    wordnet_dir : str or Path, optional
        As :func:`wpgdkit.wordnet.load_wordnet`'s.
    use_cache : bool, default=True
        False: read NLTK, and neither read nor write the cache.

    Raises
    ------
    WordNetError
        When WordNet cannot be found or read, or a name is not a noun synset
        (never from the cache: only answers NLTK gave are cached).
    """
    from wpgdkit.wordnet import load_wordnet

    names = tuple(names)
    if not use_cache:
        return _from_nltk(names, load_wordnet(wordnet_dir))
    found = _lookup(names, wordnet_dir)
    if found is not None:
        return found
    reader = load_wordnet(wordnet_dir)
    closure = _from_nltk(names, reader)
    _store(closure, wordnet_dir, reader)
    return closure


def _from_nltk(names: tuple[str, ...], reader) -> WordNetClosure:
    from wpgdkit.labelmetric.wordnet_distance import hypernym_closure_edges, lookup_synsets

    synsets = lookup_synsets(names, reader)
    nodes, edges = hypernym_closure_edges(synsets)
    return WordNetClosure(names, tuple(s.name() for s in synsets), tuple(nodes), tuple(edges), reader.get_version())


# --- entries ----------------------------------------------------------------------------------------------


def _nltk_version() -> str | None:
    # NLTK's __version__ is this file's text; reading it does not import NLTK (a second of CPU).
    try:
        spec = importlib.util.find_spec("nltk")
        if spec is None or not spec.origin:
            return None
        return (Path(spec.origin).parent / "VERSION").read_text(encoding="utf-8").strip()
    except (OSError, ImportError, ValueError):
        return None


def _memo() -> Path:
    from wpgdkit.wordnet import _digest_memo

    return _digest_memo()  # <cache>/wordnet/file-digests.json, shared with the copy check of wpgdkit.wordnet


def _fields(location, names: tuple[str, ...]) -> dict | None:
    """What an entry's key is made of, or None if the database's files cannot be read."""
    try:
        digests = file_digests(location.files, memo=_memo(), save=False)
    except OSError:
        return None
    identity = sha256_hex("".join(f"{f.name}\t{d}\n" for f, d in zip(location.files, digests)).encode("utf-8"))
    return {"kind": location.kind, "database": identity, "nltk": _nltk_version(), "names": list(names)}


def _key(fields: dict) -> str:
    return entry_key(CACHE_FORMAT, CACHE_VERSION, fields)


def _entry_path(key: str) -> Path:
    return closure_cache_dir() / f"closure-{key}.json"


def _lookup(names: tuple[str, ...], wordnet_dir) -> WordNetClosure | None:
    from wpgdkit.wordnet import locate_wordnet

    try:
        location = locate_wordnet(wordnet_dir)
    except OSError:
        return None
    fields = _fields(location, names) if location is not None else None
    if fields is None:
        return None
    key = _key(fields)
    closure = _read_entry(_entry_path(key), key, fields, names)
    if closure is not None:
        save_digests(_memo())  # hashes computed for this lookup (a database changed lately)
    return closure


def _read_entry(path: Path, key: str, fields: dict, names: tuple[str, ...]) -> WordNetClosure | None:
    payload = read_entry(path, kind=CACHE_FORMAT, version=CACHE_VERSION, key=key, fields=fields)
    return None if payload is None else WordNetClosure.from_payload(names, payload)


def _store(closure: WordNetClosure, wordnet_dir, reader) -> None:
    """File the closure NLTK just gave, if the database it read is the one a lookup will find."""
    from wpgdkit.wordnet import locate_wordnet, reader_reads

    try:
        location = locate_wordnet(wordnet_dir)
    except OSError:
        return
    if location is None or not reader_reads(reader, location):
        return
    fields = _fields(location, closure.names)
    if fields is None or not reader_reads(reader, location):  # nothing changed while it was hashed
        return
    key = _key(fields)
    if write_entry(_entry_path(key), kind=CACHE_FORMAT, version=CACHE_VERSION, key=key, fields=fields,
                   payload=closure.payload()):
        save_digests(_memo())
