"""Finding and opening WordNet 3.0 (wpgdkit.wordnet)."""

from __future__ import annotations

import filecmp
import os
import zipfile
from pathlib import Path

import pytest

from wpgdkit import wordnet as wnmod
from wpgdkit.errors import WordNetError
from wpgdkit.wordnet import (
    DEBIAN_WORDNET_DIR,
    LEXNAMES,
    WORDNET_ENV,
    load_wordnet,
    prepare_nltk_data,
    resolve_wordnet_root,
)

REQUIRED = [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")] + [
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")
]

needs_debian_wordnet = pytest.mark.skipif(
    not all((DEBIAN_WORDNET_DIR / name).is_file() for name in REQUIRED),
    reason=f"no WordNet 3.0 database in {DEBIAN_WORDNET_DIR} (apt-get install wordnet-base)",
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    if not all((DEBIAN_WORDNET_DIR / name).is_file() for name in REQUIRED):
        pytest.skip(f"no WordNet 3.0 database in {DEBIAN_WORDNET_DIR} (apt-get install wordnet-base)")
    target = tmp_path_factory.mktemp("nltk_root")
    return prepare_nltk_data(DEBIAN_WORDNET_DIR, target)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env var, an empty NLTK data path and a private cache folder."""
    import nltk

    monkeypatch.delenv(WORDNET_ENV, raising=False)
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.delenv("WPGDKIT_CACHE_DIR", raising=False)  # conftest's private one: XDG_CACHE_HOME decides here
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "wpgdkit" / "nltk_data"


# --- prepare_nltk_data ----------------------------------------------------------------------------------


@needs_debian_wordnet
def test_prepare_creates_an_nltk_corpus(prepared):
    corpus = prepared / "corpora" / "wordnet"
    assert corpus.is_dir()
    for name in REQUIRED:
        copy = corpus / name
        assert copy.is_file() and not copy.is_symlink()
        assert filecmp.cmp(copy, DEBIAN_WORDNET_DIR / name, shallow=False)
    for name in ("index.sense", "cntlist.rev"):
        if (DEBIAN_WORDNET_DIR / name).is_file():
            assert (corpus / name).is_file() and not (corpus / name).is_symlink()
    assert not any(p.is_symlink() for p in corpus.iterdir())
    # The staging folder is gone.
    assert sorted(p.name for p in (prepared / "corpora").iterdir()) == ["wordnet"]


@needs_debian_wordnet
def test_lexnames_file(prepared):
    lines = (prepared / "corpora" / "wordnet" / "lexnames").read_text(encoding="ascii").splitlines()
    assert len(lines) == 45
    # From the WordNet documentation, lexnames(5WN).
    assert lines[0] == "00\tadj.all\t3"
    assert lines[1] == "01\tadj.pert\t3"
    assert lines[2] == "02\tadv.all\t4"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[5] == "05\tnoun.animal\t1"
    assert lines[28] == "28\tnoun.time\t1"
    assert lines[29] == "29\tverb.body\t2"
    assert lines[43] == "43\tverb.weather\t2"
    assert lines[44] == "44\tadj.ppl\t3"


@needs_debian_wordnet
@pytest.mark.parametrize(("pos", "prefix", "pos_number"), [("noun", "noun.", 1), ("verb", "verb.", 2), ("adj", "adj.", 3), ("adv", "adv.", 4)])
def test_lexnames_agree_with_the_database(prepared, pos, prefix, pos_number):
    # Every synset line in data.<pos> names its lexicographer file by number
    # (second field); that file must belong to the same part of speech.
    lines = (prepared / "corpora" / "wordnet" / "lexnames").read_text().splitlines()
    table = {int(n): (name, int(p)) for n, name, p in (line.split("\t") for line in lines)}
    used = set()
    with open(DEBIAN_WORDNET_DIR / f"data.{pos}", "rb") as fh:
        for line in fh:
            if not line.startswith(b" "):
                used.add(int(line.split()[1]))
    assert used, f"no synsets read from data.{pos}"
    for number in used:
        name, p = table[number]
        assert name.startswith(prefix) and p == pos_number, (pos, number, name)


@needs_debian_wordnet
def test_prepare_is_idempotent(prepared):
    lexnames = prepared / "corpora" / "wordnet" / "lexnames"
    before = os.stat(lexnames)
    assert prepare_nltk_data(DEBIAN_WORDNET_DIR, prepared) == prepared
    after = os.stat(lexnames)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@needs_debian_wordnet
def test_prepare_replaces_a_stale_corpus(tmp_path):
    stale = tmp_path / "root" / "corpora" / "wordnet"
    stale.mkdir(parents=True)
    (stale / "data.noun").write_text("stale")
    (stale / "junk").write_text("x")
    root = prepare_nltk_data(DEBIAN_WORDNET_DIR, tmp_path / "root")
    assert filecmp.cmp(root / "corpora" / "wordnet" / "data.noun", DEBIAN_WORDNET_DIR / "data.noun", shallow=False)
    assert not (root / "corpora" / "wordnet" / "junk").exists()


def test_prepare_rejects_a_folder_without_the_database(tmp_path):
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(WordNetError, match="not a WordNet database directory") as info:
        prepare_nltk_data(tmp_path, tmp_path / "out")
    message = str(info.value)
    assert "index.noun" in message and "data.noun," not in message  # names what is missing
    assert not (tmp_path / "out").exists()


def test_lexnames_table():
    assert len(LEXNAMES) == 45
    assert LEXNAMES[3] == ("noun.Tops", 1) and LEXNAMES[44] == ("adj.ppl", 3)
    assert [name for name, _ in LEXNAMES].count("noun.animal") == 1


# --- load_wordnet -------------------------------------------------------------------------------------------


@needs_debian_wordnet
def test_load_wordnet_from_the_prepared_root(prepared, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))  # load_wordnet adds the root
    reader = load_wordnet(prepared)
    assert reader.get_version() == "3.0"
    cat = reader.synset("cat.n.01")
    assert cat.lexname() == "noun.animal"  # read through the lexnames file written above
    assert reader.synset_from_pos_and_offset("n", 2124075).name() == "egyptian_cat.n.01"
    assert Path(reader.root.path).resolve() == (prepared / "corpora" / "wordnet").resolve()
    assert load_wordnet(str(prepared)) is reader  # cached per root


# --- resolve_wordnet_root -------------------------------------------------------------------------------------


def test_folder_without_wordnet_names_both_ways_to_get_it(tmp_path, isolated):
    with pytest.raises(WordNetError) as info:
        resolve_wordnet_root(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "python -m nltk.downloader wordnet" in message
    assert "apt-get install wordnet-base" in message


@needs_debian_wordnet
def test_resolve_accepts_root_corpus_folder_and_database(prepared, isolated):
    assert resolve_wordnet_root(prepared) == prepared
    assert resolve_wordnet_root(str(prepared)) == prepared
    assert resolve_wordnet_root(prepared / "corpora" / "wordnet") == prepared
    # A plain database folder is prepared into the cache.
    assert resolve_wordnet_root(DEBIAN_WORDNET_DIR) == isolated
    assert (isolated / "corpora" / "wordnet" / "lexnames").is_file()


@needs_debian_wordnet
def test_environment_variable_is_honoured(prepared, isolated, monkeypatch, tmp_path):
    monkeypatch.setenv(WORDNET_ENV, str(prepared))
    assert resolve_wordnet_root() == prepared
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(WORDNET_ENV, str(empty))
    with pytest.raises(WordNetError, match="no WordNet data in"):
        resolve_wordnet_root()
    # An explicit argument wins over the variable.
    assert resolve_wordnet_root(prepared) == prepared


@needs_debian_wordnet
def test_environment_variable_with_a_database_folder(isolated, monkeypatch):
    monkeypatch.setenv(WORDNET_ENV, str(DEBIAN_WORDNET_DIR))
    assert resolve_wordnet_root() == isolated


@needs_debian_wordnet
def test_nltk_data_path_is_searched(prepared, isolated, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", ["/nonexistent/nltk", str(prepared)])
    assert resolve_wordnet_root() == prepared


@needs_debian_wordnet
def test_falls_back_to_the_debian_folder(isolated):
    assert not isolated.exists()
    assert resolve_wordnet_root() == isolated
    assert (isolated / "corpora" / "wordnet" / "lexnames").is_file()
    # Next time the cache is found directly.
    assert resolve_wordnet_root() == isolated


def test_nothing_found_anywhere(isolated, monkeypatch, tmp_path):
    monkeypatch.setattr(wnmod, "DEBIAN_WORDNET_DIR", tmp_path / "no-debian")
    with pytest.raises(WordNetError, match="WordNet data not found") as info:
        resolve_wordnet_root()
    message = str(info.value)
    assert "nltk.downloader" in message and "apt-get install wordnet-base" in message


def test_empty_environment_variable_is_ignored(isolated, monkeypatch, tmp_path):
    monkeypatch.setenv(WORDNET_ENV, "")
    monkeypatch.setattr(wnmod, "DEBIAN_WORDNET_DIR", tmp_path / "no-debian")
    with pytest.raises(WordNetError, match="WordNet data not found"):
        resolve_wordnet_root()


def test_nltk_zip_root_is_recognised(isolated, tmp_path):
    # What `python -m nltk.downloader wordnet` leaves: corpora/wordnet.zip.
    root = tmp_path / "ziproot"
    (root / "corpora").mkdir(parents=True)
    with zipfile.ZipFile(root / "corpora" / "wordnet.zip", "w") as archive:
        archive.writestr("wordnet/lexnames", "00\tadj.all\t3\n")
    assert resolve_wordnet_root(root) == root


# --- hardening: junk folders never replace a prepared copy -------------------------------------------------------


def _junk_database(folder: Path, index_noun: str = "junk\n", data_noun: str = "junk\n") -> Path:
    """All the file names of a WordNet database, holding junk."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in REQUIRED:
        (folder / name).write_text("" if name.endswith(".exc") else "junk\n")
    (folder / "index.noun").write_text(index_noun)
    (folder / "data.noun").write_text(data_noun)
    return folder


def _snapshot(root: Path) -> dict:
    import hashlib

    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("index_noun", "data_noun", "reason"),
    [
        ("junk\n", "junk\n", "index.noun line 1 is malformed: 'junk'"),
        ("", "", "index.noun lists no lemma"),
        ("dog n 1 1 @ 1 0 00000000\n", "00000000 05 n 01 dog 0 000 | a dog\n", "index.noun has no entry for 'entity'"),
        ("entity n 1 1 ~ 1 1 00000040\n", "junk\n", "points 'entity' at offset 40, where data.noun holds no synset"),
    ],
)
def test_check_database_names_what_is_wrong(tmp_path, index_noun, data_noun, reason):
    junk = _junk_database(tmp_path / "junk", index_noun, data_noun)
    with pytest.raises(WordNetError, match="is not a WordNet database directory") as info:
        wnmod.check_database(junk)
    assert reason in str(info.value)


@needs_debian_wordnet
def test_check_database_accepts_the_debian_database():
    wnmod.check_database(DEBIAN_WORDNET_DIR)


def test_a_partial_database_folder_names_the_missing_files(tmp_path, isolated):
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "data.noun").write_text("x")
    with pytest.raises(WordNetError, match="is not a WordNet database directory") as info:
        resolve_wordnet_root(folder)
    message = str(info.value)
    assert "(missing data.verb," in message and "index.noun" in message and "data.noun," not in message
    assert not isolated.exists()


@needs_debian_wordnet
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_junk_folder_leaves_a_good_cache_untouched(tmp_path, isolated, monkeypatch, how):
    # Before: the junk was copied over the prepared copy, NLTK died in StopIteration,
    # and every later default build failed until the cache was deleted by hand.
    assert prepare_nltk_data(DEBIAN_WORDNET_DIR) == isolated
    before = _snapshot(isolated)
    junk = _junk_database(tmp_path / "junk")
    if how == "environment":
        monkeypatch.setenv(WORDNET_ENV, str(junk))
    with pytest.raises(WordNetError, match="index.noun line 1 is malformed"):
        resolve_wordnet_root(junk if how == "argument" else None)
    assert _snapshot(isolated) == before
    monkeypatch.delenv(WORDNET_ENV, raising=False)
    assert resolve_wordnet_root() == isolated  # the default still finds the good copy


@needs_debian_wordnet
def test_prepare_keeps_the_old_copy_when_the_new_one_fails(tmp_path, monkeypatch):
    root = prepare_nltk_data(DEBIAN_WORDNET_DIR, tmp_path / "root")
    before = _snapshot(root)
    calls = []
    real = wnmod.check_database

    def fail_on_the_copy(path):
        calls.append(Path(path))
        if len(calls) == 2:  # the staged copy, after the source passed
            raise WordNetError("copy changed")
        real(path)

    monkeypatch.setattr(wnmod, "check_database", fail_on_the_copy)
    source = tmp_path / "db"
    source.mkdir()
    for name in REQUIRED:
        (source / name).write_bytes((DEBIAN_WORDNET_DIR / name).read_bytes())
    (source / "noun.exc").write_bytes((DEBIAN_WORDNET_DIR / "noun.exc").read_bytes() + b"extra extra\n")
    with pytest.raises(WordNetError, match="copy changed"):
        prepare_nltk_data(source, root)
    assert _snapshot(root) == before
    assert sorted(p.name for p in (root / "corpora").iterdir()) == ["wordnet"]  # no staging left behind


@needs_debian_wordnet
def test_a_damaged_cache_is_rebuilt_from_the_debian_database(isolated):
    corpus = isolated / "corpora" / "wordnet"
    _junk_database(corpus)
    (corpus / "lexnames").write_text("00\tadj.all\t3\n")
    assert resolve_wordnet_root() == isolated
    assert filecmp.cmp(corpus / "index.noun", DEBIAN_WORDNET_DIR / "index.noun", shallow=False)


def test_a_junk_nltk_root_is_one_error_not_stop_iteration(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    root = tmp_path / "root"
    corpus = _junk_database(root / "corpora" / "wordnet")
    (corpus / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{p}\n" for i, (n, p) in enumerate(LEXNAMES)))
    with pytest.raises(WordNetError, match="NLTK cannot read the WordNet data under"):
        load_wordnet(root)
    assert str(root.resolve()) not in nltk.data.path  # never searched again
