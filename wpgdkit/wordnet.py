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
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from wpgdkit.errors import WordNetError

__all__ = [
    "WORDNET_ENV",
    "DEBIAN_WORDNET_DIR",
    "LEXNAMES",
    "check_database",
    "prepare_nltk_data",
    "load_wordnet",
    "resolve_wordnet_root",
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
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "wpgdkit" / "nltk_data"


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
        The NLTK data root to create; defaults to ``~/.cache/wpgdkit/nltk_data``.

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
        lines = "".join(f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))
        (staging / "lexnames").write_text(lines, encoding="ascii")
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
    return root


def _same_files(database_dir: Path, corpus: Path) -> bool:
    return all(
        (corpus / n).is_file() and (corpus / n).stat().st_size == (database_dir / n).stat().st_size
        for n in _REQUIRED
    )


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
        signature = tuple((n, (corpus / n).stat().st_size, (corpus / n).stat().st_mtime_ns) for n in _REQUIRED)
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


# Prepared copies found sound in this process, by the size and mtime of their files.
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


@functools.lru_cache(maxsize=4)
def _open_reader(root: str):
    import nltk

    # NLTK 3.10 only opens files under one of its data roots.
    added = root not in nltk.data.path
    if added:
        nltk.data.path.insert(0, root)
    try:
        return _reader_at(root)
    except WordNetError:
        if added and root in nltk.data.path:
            nltk.data.path.remove(root)  # a root NLTK cannot read must not be searched later
        raise


def _reader_at(root: str):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    try:
        location = nltk.data.find("corpora/wordnet", paths=[root])
    except LookupError as exc:  # pragma: no cover - resolve_wordnet_root checked it
        raise WordNetError(f"NLTK cannot open WordNet under {root}; " + _HOW_TO_GET) from exc
    with warnings.catch_warnings():
        # The multilingual (OMW) part is not needed for English noun synsets.
        warnings.simplefilter("ignore")
        try:
            return WordNetCorpusReader(location, None)
        except Exception as exc:  # NLTK's reader fails on junk with StopIteration, WordNetError, ValueError...
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise WordNetError(
                f"NLTK cannot read the WordNet data under {root} ({reason}); " + _HOW_TO_GET
            ) from None
