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
    if not _is_database_dir(database_dir):
        missing = [n for n in _REQUIRED if not (database_dir / n).is_file()]
        raise WordNetError(
            f"{database_dir} is not a WordNet database directory (missing {', '.join(missing)}); "
            + _HOW_TO_GET
        )
    root = Path(target_root) if target_root is not None else _cache_root()
    corpus = root / "corpora" / "wordnet"
    if _is_nltk_root(root) and _same_files(database_dir, corpus):
        return root
    root.joinpath("corpora").mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename, so a concurrent or killed run never
    # leaves a half-copied corpus that NLTK would then read.
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=root / "corpora"))
    try:
        for name in _REQUIRED + _OPTIONAL:
            if (database_dir / name).is_file():
                shutil.copyfile(database_dir / name, staging / name)
        lines = "".join(f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))
        (staging / "lexnames").write_text(lines, encoding="ascii")
        if corpus.exists():
            shutil.rmtree(corpus)
        os.replace(staging, corpus)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
        if _is_database_dir(path):
            return prepare_nltk_data(path)
        raise WordNetError(f"no WordNet data in {path}; " + _HOW_TO_GET)
    import nltk

    for root in map(Path, nltk.data.path):
        if _is_nltk_root(root):
            return root
    if _is_nltk_root(_cache_root()):
        return _cache_root()
    if _is_database_dir(DEBIAN_WORDNET_DIR):
        return prepare_nltk_data(DEBIAN_WORDNET_DIR)
    raise WordNetError("WordNet data not found (looked in NLTK's data path and /usr/share/wordnet); " + _HOW_TO_GET)


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
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    # NLTK 3.10 only opens files under one of its data roots.
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    try:
        location = nltk.data.find("corpora/wordnet", paths=[root])
    except LookupError as exc:  # pragma: no cover - resolve_wordnet_root checked it
        raise WordNetError(f"NLTK cannot open WordNet under {root}; " + _HOW_TO_GET) from exc
    with warnings.catch_warnings():
        # The multilingual (OMW) part is not needed for English noun synsets.
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(location, None)
