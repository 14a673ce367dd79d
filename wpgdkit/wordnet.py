"""Finding WordNet 3.0 and opening it with NLTK's reader.

NLTK reads WordNet from an *NLTK data directory* (``<root>/corpora/wordnet/``).
Two ways to get one:

* ``python -m nltk.downloader wordnet`` where the internet is reachable, or
* a plain WordNet 3.0 database directory, such as the one Debian's
  ``wordnet-base`` and ``wordnet-sense-index`` packages install in
  ``/usr/share/wordnet``. It lacks NLTK's ``lexnames`` file (the fixed list of
  the 45 lexicographer files), so :func:`prepare_nltk_data` copies the
  database into an NLTK data directory and writes that file. It copies rather
  than links because NLTK refuses files that resolve outside its data roots.

The lookup order is: the ``wordnet_dir`` argument, the ``WPGDKIT_WORDNET_DIR``
environment variable, NLTK's own data path, then ``/usr/share/wordnet``.

The reader skips NLTK's mapping of WordNet versions for the multilingual
(OMW) data (``map_wn``): it reads ``index.sense`` twice, which is 40 % of
opening the database, and wpgdkit reads no OMW data. :func:`locate_wordnet`
finds the same database as :func:`resolve_wordnet_root` without importing
NLTK, for the distance cache (:mod:`wpgdkit.labelmetric.wordnet_cache`).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from wpgdkit.cache import cache_dir, file_digests, stat_signature
from wpgdkit.errors import WordNetError

__all__ = [
    "WORDNET_ENV",
    "DEBIAN_WORDNET_DIR",
    "LEXNAMES",
    "check_database",
    "prepare_nltk_data",
    "load_wordnet",
    "resolve_wordnet_root",
    "WordNetLocation",
    "locate_wordnet",
    "opened_signature",
    "reader_reads",
]

WORDNET_ENV = "WPGDKIT_WORDNET_DIR"
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")

#: The 45 lexicographer files of WordNet 3.0, in file-number order (lexnames(5WN)).
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1),
    ("noun.act", 1), ("noun.animal", 1), ("noun.artifact", 1),
    ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1),
    ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
    ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1),
    ("noun.phenomenon", 1), ("noun.plant", 1), ("noun.possession", 1),
    ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1),
    ("noun.time", 1), ("verb.body", 2), ("verb.change", 2),
    ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2),
    ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
    ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2),
    ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2),
    ("verb.weather", 2), ("adj.ppl", 3),
)

# The database files NLTK's reader opens; index.sense is optional (sense keys).
_REQUIRED = tuple(
    f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")
) + tuple(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv"))
_OPTIONAL = ("index.sense", "cntlist.rev", "LICENSE", "citation.bib")

_HOW_TO_GET = (
    "install WordNet 3.0 with `python -m nltk.downloader wordnet`, or on Debian/Ubuntu "
    "`apt-get install wordnet-base wordnet-sense-index` (read from /usr/share/wordnet), "
    f"or point --wordnet-dir / ${WORDNET_ENV} at a WordNet database or NLTK data directory"
)


def _cache_root() -> Path:
    return cache_dir() / "nltk_data"


def _is_database_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in _REQUIRED)


_POS_FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_INDEX_POS = {"noun": {"n"}, "verb": {"v"}, "adj": {"a", "s"}, "adv": {"r"}}
#: A lemma every WordNet 3.0 noun index holds, looked up to prove the files fit together.
_PROBE_LEMMA = "entity"
#: An index line of a real database is a few hundred bytes; a longer one is junk.
_MAX_LINE = 1 << 16


def _not_a_database(path: Path, reason: str) -> WordNetError:
    return WordNetError(f"{path} is not a WordNet database directory ({reason}); " + _HOW_TO_GET)


def _parse_index_line(line: str) -> list[int] | None:
    """The synset offsets of an index line, or None if it is malformed (as NLTK's reader parses it)."""
    words = line.split()
    try:
        n_synsets, n_pointers = int(words[2]), int(words[3])
        n_senses = int(words[4 + n_pointers])
        int(words[5 + n_pointers])
        offsets = [int(w) for w in words[6 + n_pointers : 6 + n_pointers + n_synsets]]
    except (IndexError, ValueError):
        return None
    if n_synsets < 1 or n_senses != n_synsets or len(offsets) != n_synsets or n_pointers < 0:
        return None
    return offsets


def _data_line_at(path: Path, offset: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.readline(_MAX_LINE)


def check_database(path: Path) -> None:
    """Refuse a folder that is not a WordNet database NLTK's reader can open.

    Checks what the reader reads when it opens (every line of the four
    ``index.*`` files and of the ``*.exc`` files) and that a lemma lookup
    works: the first entry of each index, and ``entity`` in ``index.noun``,
    point at synsets of the matching ``data.*`` file.

    Raises
    ------
    WordNetError
        ``"{path} is not a WordNet database directory (missing index.noun); ..."``,
        or naming the file and line that does not parse.
    """
    path = Path(path)
    missing = [n for n in _REQUIRED if not (path / n).is_file()]
    if missing:
        raise _not_a_database(path, f"missing {', '.join(missing)}")
    try:
        for pos, tags in _INDEX_POS.items():
            index, data = path / f"index.{pos}", path / f"data.{pos}"
            probe: tuple[str, int] | None = None
            with index.open("rb") as fh:
                for number, raw in enumerate(iter(lambda: fh.readline(_MAX_LINE), b""), start=1):
                    if raw.startswith(b" "):
                        continue  # the licence header
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _not_a_database(path, f"index.{pos} line {number} is not UTF-8 text") from None
                    if not line.strip():
                        continue
                    offsets = _parse_index_line(line)
                    if offsets is None or line.split()[1] not in tags:
                        raise _not_a_database(path, f"index.{pos} line {number} is malformed: {line.strip()[:60]!r}")
                    lemma = line.split()[0]
                    if probe is None or (pos == "noun" and lemma == _PROBE_LEMMA):
                        probe = (lemma, offsets[0])
            if probe is None:
                raise _not_a_database(path, f"index.{pos} lists no lemma")
            if pos == "noun" and probe[0] != _PROBE_LEMMA:
                raise _not_a_database(path, f"index.noun has no entry for {_PROBE_LEMMA!r}")
            lemma, offset = probe
            found = _data_line_at(data, offset).split()
            if len(found) < 5 or found[0] != b"%08d" % offset or found[2] not in {t.encode() for t in tags}:
                raise _not_a_database(
                    path, f"index.{pos} points {lemma!r} at offset {offset}, where data.{pos} holds no synset"
                )
            with (path / f"{pos}.exc").open("rb") as fh:
                for number, raw in enumerate(iter(lambda: fh.readline(_MAX_LINE), b""), start=1):
                    if not raw.split():
                        raise _not_a_database(path, f"{pos}.exc line {number} is empty")
    except OSError as exc:
        raise _not_a_database(path, f"cannot read it: {exc.strerror or exc}") from None


def _is_nltk_root(path: Path) -> bool:
    corpus = path / "corpora" / "wordnet"
    return (corpus.is_dir() and _is_database_dir(corpus) and (corpus / "lexnames").is_file()) or (
        path / "corpora" / "wordnet.zip"
    ).is_file()


def prepare_nltk_data(database_dir: Path, target_root: Path | None = None) -> Path:
    """Copy a WordNet database directory into an NLTK data directory.

    Parameters
    ----------
    database_dir : Path
        A WordNet 3.0 database directory (``data.noun``, ``index.noun``, ...).
    target_root : Path, optional
        The NLTK data root to create; defaults to ``nltk_data`` in the cache
        folder (:func:`wpgdkit.cache.cache_dir`: ``~/.cache/wpgdkit/nltk_data``).

    Returns
    -------
    root : Path
        ``target_root``, holding ``corpora/wordnet/`` with a ``lexnames`` file.
    """
    database_dir = Path(database_dir)
    # Validate before anything is created or copied: a junk folder must never
    # replace a good prepared copy (every later default build would read it).
    check_database(database_dir)
    root = Path(target_root) if target_root is not None else _cache_root()
    corpus = root / "corpora" / "wordnet"
    if _is_nltk_root(root) and _same_files(database_dir, corpus):
        _remember_sound(corpus)  # the same bytes as the database just checked
        return root
    root.joinpath("corpora").mkdir(parents=True, exist_ok=True)
    # Build next to the target, check the copy, then rename, so a concurrent
    # or killed run never leaves a half-copied corpus that NLTK would read.
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=root / "corpora"))
    retired = None
    try:
        for name in _REQUIRED + _OPTIONAL:
            if (database_dir / name).is_file():
                shutil.copyfile(database_dir / name, staging / name)
        (staging / "lexnames").write_text(_lexnames_text(), encoding="ascii")
        check_database(staging)  # the copy, in case the source changed while it was copied
        if corpus.exists():
            # Move the old corpus aside (one rename), put the new one in place
            # (another), and only then delete the old one.
            retired = Path(tempfile.mkdtemp(prefix=".wordnet-old-", dir=root / "corpora")) / "wordnet"
            os.replace(corpus, retired)
            try:
                os.replace(staging, corpus)
            except OSError:
                os.replace(retired, corpus)
                raise
        else:
            os.replace(staging, corpus)
    except OSError as exc:
        raise WordNetError(f"cannot prepare WordNet in {root}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None:
            shutil.rmtree(retired.parent, ignore_errors=True)
    _remember_sound(corpus)  # checked as staged
    return root


def _lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))


def _digest_memo() -> Path:
    """Remembered SHA-256 of database files (:func:`wpgdkit.cache.file_digests`), shared with the distance cache."""
    return cache_dir() / "wordnet" / "file-digests.json"


def _same_files(database_dir: Path, corpus: Path) -> bool:
    # By content, not size: a database edited in place must not leave NLTK reading the old copy.
    try:
        if (corpus / "lexnames").read_text(encoding="ascii") != _lexnames_text():
            return False
        theirs = file_digests([database_dir / n for n in _REQUIRED], memo=_digest_memo(), save=False)
        return theirs == file_digests([corpus / n for n in _REQUIRED], memo=_digest_memo(), save=False)
    except (OSError, UnicodeDecodeError):
        return False


def resolve_wordnet_root(wordnet_dir: Path | str | None = None) -> Path:
    """Return an NLTK data root holding WordNet, preparing one if needed.

    Raises
    ------
    WordNetError
        When no WordNet data is found; the message names both ways to get it.
    """
    explicit = wordnet_dir if wordnet_dir is not None else os.environ.get(WORDNET_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if _is_nltk_root(path):
            return path
        if path.name == "wordnet" and path.parent.name == "corpora" and _is_nltk_root(path.parents[1]):
            return path.parents[1]
        if path.is_dir() and any((path / n).is_file() for n in _REQUIRED):
            return prepare_nltk_data(path)  # refuses, naming what is wrong, if it is not a database
        raise WordNetError(f"no WordNet data in {path}; " + _HOW_TO_GET)
    import nltk

    for root in map(Path, nltk.data.path):
        if _is_nltk_root(root):
            return root
    if _is_nltk_root(_cache_root()) and _cache_is_sound(_cache_root()):
        return _cache_root()
    if _is_database_dir(DEBIAN_WORDNET_DIR):
        return prepare_nltk_data(DEBIAN_WORDNET_DIR)
    raise WordNetError("WordNet data not found (looked in NLTK's data path and /usr/share/wordnet); " + _HOW_TO_GET)


def _cache_is_sound(root: Path) -> bool:
    # A copy damaged by hand (or by an older wpgdkit) is rebuilt from /usr/share/wordnet, not read.
    corpus = root / "corpora" / "wordnet"
    if not corpus.is_dir():
        return True  # a wordnet.zip
    try:
        signature = _required_signature(corpus)
    except OSError:
        return not _is_database_dir(DEBIAN_WORDNET_DIR)
    if _SOUND.get(str(corpus)) == signature:
        return True  # checked before, unchanged since
    try:
        check_database(corpus)
    except WordNetError:
        return not _is_database_dir(DEBIAN_WORDNET_DIR)
    _SOUND[str(corpus)] = signature
    return True


def _required_signature(corpus: Path) -> tuple:
    return tuple(stat_signature(corpus / n) for n in _REQUIRED)


def _remember_sound(corpus: Path) -> None:
    try:
        _SOUND[str(corpus)] = _required_signature(corpus)
    except OSError:
        _SOUND.pop(str(corpus), None)


def verified_sound(corpus: Path) -> bool:
    """Whether this process found the prepared copy ``corpus`` sound (:func:`check_database`), unchanged since."""
    try:
        return _SOUND.get(str(corpus)) == _required_signature(corpus)
    except OSError:
        return False


# Prepared copies found sound in this process (checked, or copied from a checked
# database), by the stat signature of their files.
_SOUND: dict[str, tuple] = {}


def load_wordnet(wordnet_dir: Path | str | None = None):
    """Open WordNet with NLTK's reader.

    Parameters
    ----------
    wordnet_dir : Path or str, optional
        A WordNet database directory or an NLTK data root; see the module
        docstring for the lookup order when omitted.

    Returns
    -------
    reader : nltk.corpus.reader.wordnet.WordNetCorpusReader
    """
    return _open_reader(str(resolve_wordnet_root(wordnet_dir).resolve()))


def corpus_files(root: Path) -> list[Path]:
    """The files of the NLTK data root ``root`` whose bytes the reader's answers depend on.

    ``corpora/wordnet/`` when it exists (NLTK looks there first), else ``corpora/wordnet.zip``.
    """
    corpus = Path(root) / "corpora" / "wordnet"
    if os.path.exists(corpus):
        return [corpus / name for name in (*_REQUIRED, "lexnames")]
    return [Path(root) / "corpora" / "wordnet.zip"]


def _signature(files: list[Path]) -> tuple | None:
    try:
        return tuple(stat_signature(f) for f in files)
    except OSError:
        return None


def opened_signature(reader) -> tuple[str, tuple] | None:
    """``(root, stat signature of its corpus files before it was opened)`` of a reader :func:`load_wordnet` made."""
    root, signature = getattr(reader, "_wpgdkit_root", None), getattr(reader, "_wpgdkit_signature", None)
    return None if root is None or signature is None else (root, signature)


# Open readers by root, with the signature of their files when opened: a
# database changed since (re-prepared, edited) is opened again, not served stale.
_READERS: dict[str, tuple[tuple | None, object]] = {}
_MAX_READERS = 4
# Roots that _open_reader added to nltk.data.path (not part of NLTK's own search path).
_ADDED_ROOTS: set[str] = set()


def _open_reader(root: str):
    signature = _signature(corpus_files(Path(root)))
    cached = _READERS.get(root)
    if cached is not None and signature is not None and cached[0] == signature:
        return cached[1]
    import nltk

    # NLTK 3.10 only opens files under one of its data roots.
    added = root not in nltk.data.path
    if added:
        nltk.data.path.insert(0, root)
        _ADDED_ROOTS.add(root)
    try:
        reader = _reader_at(root)
    except WordNetError:
        if added and root in nltk.data.path:
            nltk.data.path.remove(root)  # a root NLTK cannot read must not be searched later
            _ADDED_ROOTS.discard(root)
        raise
    reader._wpgdkit_root, reader._wpgdkit_signature = root, signature
    _READERS.pop(root, None)
    _READERS[root] = (signature, reader)
    while len(_READERS) > _MAX_READERS:
        _READERS.pop(next(iter(_READERS)))
    return reader


@functools.cache
def _reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNetReader(WordNetCorpusReader):
        """NLTK's reader, opened without the version map of the multilingual (OMW) data.

        Its constructor calls ``map_wn()``, which reads ``index.sense`` twice
        (40 % of the time to open WordNet) to map OMW's WordNet 3.0 offsets;
        with no OMW reader that map is never read. Here it is None while the
        reader opens, as when NLTK finds the loaded version already matches;
        later explicit calls compute it as usual.
        """

        def __init__(self, root, omw_reader):
            self._wpgdkit_opening = True
            super().__init__(root, omw_reader)
            self._wpgdkit_opening = False

        def map_wn(self, version="wordnet"):
            if self._wpgdkit_opening and self._omw_reader is None:
                return None
            return super().map_wn(version)

    return EnglishWordNetReader


def _reader_at(root: str):
    import nltk

    try:
        location = nltk.data.find("corpora/wordnet", paths=[root])
    except LookupError as exc:  # pragma: no cover - resolve_wordnet_root checked it
        raise WordNetError(f"NLTK cannot open WordNet under {root}; " + _HOW_TO_GET) from exc
    with warnings.catch_warnings():
        # The multilingual (OMW) part is not needed for English noun synsets.
        warnings.simplefilter("ignore")
        try:
            return _reader_class()(location, None)
        except Exception as exc:  # NLTK's reader fails on junk with StopIteration, WordNetError, ValueError...
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise WordNetError(
                f"NLTK cannot read the WordNet data under {root} ({reason}); " + _HOW_TO_GET
            ) from None


# --- finding the database without NLTK (for the distance cache) ----------------------------------------------


@dataclass(frozen=True)
class WordNetLocation:
    """Where :func:`resolve_wordnet_root` would find WordNet, found without NLTK, checks or copies.

    Attributes
    ----------
    kind : {"nltk-root", "database-dir", "prepared-copy"}
        An NLTK data root read as it is (``--wordnet-dir``, ``$WPGDKIT_WORDNET_DIR``
        or NLTK's data path); a plain database folder, checked and copied into
        the cache's ``nltk_data`` before NLTK reads the copy; or that copy, found
        by the default lookup and checked before it is used.
    root : Path
        The NLTK data root NLTK reads (``database-dir``: the copy's, which may not exist yet).
    files : tuple of Path
        The files whose bytes decide what a build reads: the corpus files of
        ``root``, or (``database-dir``) the database's own.
    """

    kind: str
    root: Path
    files: tuple[Path, ...]


def _nltk_search_path() -> list[str] | None:
    """NLTK's ``nltk.data.path`` without importing NLTK (None where it cannot be predicted).

    The same list NLTK 3.x builds when imported (``nltk/data.py``); once NLTK
    is imported, its own list, less the roots :func:`load_wordnet` added.
    """
    data = sys.modules.get("nltk.data")
    if data is not None and isinstance(getattr(data, "path", None), list):
        return [p for p in data.path if p not in _ADDED_ROOTS]
    if os.name == "nt":
        return None
    paths = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    if "APPENGINE_RUNTIME" not in os.environ and os.path.expanduser("~/") != "~/":
        paths.append(os.path.expanduser("~/nltk_data"))
    paths += [
        os.path.join(sys.prefix, "nltk_data"),
        os.path.join(sys.prefix, "share", "nltk_data"),
        os.path.join(sys.prefix, "lib", "nltk_data"),
        "/usr/share/nltk_data",
        "/usr/local/share/nltk_data",
        "/usr/lib/nltk_data",
        "/usr/local/lib/nltk_data",
    ]
    return paths


def _root_location(kind: str, root: Path) -> WordNetLocation:
    return WordNetLocation(kind, root, tuple(corpus_files(root)))


def locate_wordnet(wordnet_dir: Path | str | None = None) -> WordNetLocation | None:
    """The database :func:`resolve_wordnet_root` would choose, cheaply: no NLTK import, no check, no copy.

    It follows the same lookup order; None where that one would fail, or where
    NLTK's data path cannot be predicted. It does not check the files (a
    cache keyed by their bytes only holds answers that a checked build gave).
    """
    explicit = wordnet_dir if wordnet_dir is not None else os.environ.get(WORDNET_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if _is_nltk_root(path):
            return _root_location("nltk-root", path)
        if path.name == "wordnet" and path.parent.name == "corpora" and _is_nltk_root(path.parents[1]):
            return _root_location("nltk-root", path.parents[1])
        if path.is_dir() and _is_database_dir(path):
            return WordNetLocation("database-dir", _cache_root(), tuple(path / n for n in _REQUIRED))
        return None
    search = _nltk_search_path()
    if search is None:
        return None
    for root in map(Path, search):
        if _is_nltk_root(root):
            return _root_location("nltk-root", root)
    if _is_nltk_root(_cache_root()):
        return _root_location("prepared-copy", _cache_root())
    if _is_database_dir(DEBIAN_WORDNET_DIR):
        return WordNetLocation("database-dir", _cache_root(), tuple(DEBIAN_WORDNET_DIR / n for n in _REQUIRED))
    return None


def reader_reads(reader, location: WordNetLocation) -> bool:
    """Whether ``reader`` (from :func:`load_wordnet`) reads what ``location.files`` hold, as a checked build does.

    True when the reader was opened from ``location.root``, none of its files
    changed since (stat signature: size, times, inode), and: for a
    ``prepared-copy``, this process found the copy sound; for a
    ``database-dir``, the copy holds the database's bytes. A cache may then
    file the reader's answers under the bytes of ``location.files``.
    """
    opened = opened_signature(reader)
    if opened is None:
        return False
    root, signature = opened
    try:
        if str(Path(location.root).resolve()) != root or _signature(corpus_files(Path(root))) != signature:
            return False
        corpus = Path(root) / "corpora" / "wordnet"
        if location.kind == "prepared-copy":
            return verified_sound(Path(location.root) / "corpora" / "wordnet")
        if location.kind == "database-dir":
            return (corpus / "lexnames").read_text(encoding="ascii") == _lexnames_text() and file_digests(
                location.files, memo=_digest_memo(), save=False
            ) == file_digests([corpus / n for n in _REQUIRED], memo=_digest_memo(), save=False)
        return location.kind == "nltk-root"
    except (OSError, UnicodeDecodeError):
        return False
