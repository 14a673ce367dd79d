"""The WordNet cache: cached builds equal NLTK's bit for bit, and a stale or corrupt entry is never used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import wpgdkit.cache as cachemod
import wpgdkit.wordnet as wnmod
from wpgdkit.cache import CACHE_ENV, cache_dir, file_digests, save_digests
from wpgdkit.cli import app
from wpgdkit.errors import WordNetError
from wpgdkit.labelmetric import BuildConfig, build_metric, read_metric, write_metric
from wpgdkit.labelmetric.wordnet_cache import wordnet_closure
from wpgdkit.resources import metrics_dir
from wpgdkit.wordnet import load_wordnet, locate_wordnet, opened_signature, reader_reads

SHIPPED = {
    "cifar10": "cifar10-wordnet.csv",
    "cifar100": "cifar100-wordnet.csv",
    "fashion-mnist": "fashion-mnist-wordnet.csv",
    "tiny-imagenet": "tiny-imagenet-wordnet.csv",
}
MEASURES = ("path", "lch", "wup", "lca-depth")
CORPUS_FILES = [f"{k}.{p}" for k in ("data", "index") for p in ("noun", "verb", "adj", "adv")] + [
    f"{p}.exc" for p in ("noun", "verb", "adj", "adv")] + ["lexnames"]


class NLTKOpened(Exception):
    """Raised by the stand-in for load_wordnet: the build missed the cache."""


def _no_nltk(*args, **kwargs):
    raise NLTKOpened("the build opened WordNet with NLTK")


@pytest.fixture(scope="module")
def nltk_root(wordnet) -> Path:
    """The NLTK data root the session's reader was opened from (read there, no copy needed)."""
    return Path(opened_signature(wordnet)[0])


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, not yet created cache folder for this test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def _build(dataset, measure=None, wordnet_dir=None, *, use_cache):
    return build_metric(BuildConfig(source="wordnet", dataset=dataset, measure=measure,
                                    wordnet_dir=None if wordnet_dir is None else str(wordnet_dir), use_cache=use_cache))


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "wordnet").glob("closure-*.json"))


def _files(metric, folder: Path, name: str) -> dict[str, bytes]:
    out = {}
    for suffix in (".csv", ".json"):
        out[suffix] = write_metric(metric, folder / f"{name}{suffix}").read_bytes()
    return out


# --- a cached build is the uncached build ----------------------------------------------------------------


@pytest.mark.parametrize("dataset", list(SHIPPED))
@pytest.mark.parametrize("measure", MEASURES)
def test_a_cached_build_equals_the_uncached_one_exactly(dataset, measure, nltk_root, cache, monkeypatch, tmp_path):
    chosen = None if measure == "path" else measure  # the shipped files' own command for path
    cold = _build(dataset, chosen, nltk_root, use_cache=False)
    assert not cache.exists()  # --no-cache neither reads nor writes the cache
    stored = _build(dataset, chosen, nltk_root, use_cache=True)  # a miss: NLTK, then filed
    assert len(_entries(cache)) == 1
    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", _no_nltk)
    warm = _build(dataset, chosen, nltk_root, use_cache=True)
    reference = _files(cold, tmp_path, "cold")
    for metric, name in ((stored, "stored"), (warm, "warm")):
        assert metric.matrix.dtype == np.float64 and np.array_equal(metric.matrix, cold.matrix)
        assert metric.classes == cold.classes and metric.provenance == cold.provenance
        assert _files(metric, tmp_path, name) == reference  # CSV and JSON (with the provenance), byte for byte
    if measure == "path":
        shipped = metrics_dir() / SHIPPED[dataset]
        assert reference[".csv"] == shipped.read_bytes()
        assert np.array_equal(read_metric(shipped).matrix, warm.matrix)


def test_the_reader_skips_the_multilingual_map(wordnet):
    # NLTK's map_wn reads index.sense twice when the reader opens; nothing in wpgdkit needs it.
    assert type(wordnet).__name__ == "EnglishWordNetReader" and wordnet.map30 is None
    assert wordnet.synset("cat.n.01").hypernyms()[0].name() == "feline.n.01"


def test_the_closure_names_resolve_ids_and_names_alike(nltk_root, cache):
    by_id = wordnet_closure(["n02121620", "dog.n.01"], nltk_root)
    assert by_id.synsets == ("cat.n.01", "dog.n.01") and by_id.names == ("n02121620", "dog.n.01")
    assert "carnivore.n.01" in by_id.nodes and by_id.wordnet_version == "3.0"
    assert by_id.distance_matrix("path")[0, 1] == 4


# --- a warm build does not touch NLTK -------------------------------------------------------------------


def test_a_warm_build_in_a_fresh_process_never_imports_nltk():
    # The default lookup (the session's prepared copy in its private cache folder), as `wpgdkit metric build` does.
    reference = _build("cifar10", use_cache=True)  # fills the cache if this session has not yet
    code = (
        "import json, sys\n"
        "from wpgdkit.labelmetric import BuildConfig, build_metric\n"
        "m = build_metric(BuildConfig(source='wordnet', dataset='cifar10'))\n"
        "assert 'nltk' not in sys.modules, 'NLTK imported'\n"
        "from wpgdkit.wordnet import _nltk_search_path\n"
        "predicted = _nltk_search_path()\n"
        "import nltk\n"
        "assert predicted == nltk.data.path, (predicted, nltk.data.path)\n"
        "print(json.dumps(m.matrix.tolist()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.array_equal(np.array(json.loads(proc.stdout)), reference.matrix)


def test_the_cli_no_cache_flag_and_the_cache_folder(nltk_root, cache, monkeypatch, tmp_path):
    runner = CliRunner()
    base = ["metric", "build", "--dataset", "cifar10", "--source", "wordnet", "--wordnet-dir", str(nltk_root), "-q"]
    result = runner.invoke(app, [*base, "--no-cache", "--out", str(tmp_path / "cold.csv")])
    assert result.exit_code == 0, result.stderr
    assert not cache.exists()
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "stored.csv")])
    assert result.exit_code == 0, result.stderr
    assert len(_entries(cache)) == 1 and (cache / "wordnet" / "file-digests.json").is_file()  # $WPGDKIT_CACHE_DIR
    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", _no_nltk)
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "warm.csv")])
    assert result.exit_code == 0, result.stderr
    shipped = (metrics_dir() / "cifar10-wordnet.csv").read_bytes()
    assert {(tmp_path / f"{n}.csv").read_bytes() for n in ("cold", "stored", "warm")} == {shipped}


def test_a_failed_build_caches_nothing(nltk_root, cache, tmp_path):
    synset_map = tmp_path / "map.csv"
    synset_map.write_text("class,synset\ncat,cat.n.01\nthing,nosuch.n.01\n")
    for _ in range(2):  # the error comes from NLTK every time: only NLTK's answers are cached
        with pytest.raises(WordNetError, match="nosuch.n.01"):
            build_metric(BuildConfig(source="wordnet", synset_map=str(synset_map), wordnet_dir=str(nltk_root)))
    assert not cache.exists()


# --- a stale or corrupt entry is rebuilt, never trusted --------------------------------------------------


def _edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _payload_checksum(doc) -> None:
    doc["payload_sha256"] = hashlib.sha256(json.dumps(doc["payload"], sort_keys=True, separators=(",", ":"))
                                           .encode()).hexdigest()


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "not-json": lambda p: p.write_bytes(b"\x00\xff not json"),
    "json-list": lambda p: p.write_text("[1, 2]"),
    "payload-changed": lambda p: _edit_json(p, lambda d: d["payload"]["edges"].pop()),  # checksum now wrong
    "checksum-changed": lambda p: _edit_json(p, lambda d: d.update(payload_sha256="0" * 64)),
    "other-key": lambda p: _edit_json(p, lambda d: d.update(key="f" * 64)),
    "other-database": lambda p: _edit_json(p, lambda d: d["fields"].update(database="0" * 64)),
    "other-names": lambda p: _edit_json(p, lambda d: d["fields"]["names"].reverse()),
    "other-version": lambda p: _edit_json(p, lambda d: d.update(version=999)),
    "edge-to-nowhere": lambda p: _edit_json(
        p, lambda d: (d["payload"]["edges"].append(["cat.n.01", "nosuch.n.01"]), _payload_checksum(d))),
    "too-few-synsets": lambda p: _edit_json(p, lambda d: (d["payload"]["synsets"].pop(), _payload_checksum(d))),
    "unreadable": lambda p: (p.unlink(), p.mkdir()),  # a folder where the file was: reading it fails
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_entry_is_ignored_and_rebuilt(kind, nltk_root, cache, monkeypatch):
    reference = _build("cifar10", "wup", nltk_root, use_cache=False)
    _build("cifar10", "wup", nltk_root, use_cache=True)
    (entry,) = _entries(cache)
    CORRUPTIONS[kind](entry)
    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return load_wordnet(*args, **kwargs)

    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", counting)
    rebuilt = _build("cifar10", "wup", nltk_root, use_cache=True)  # silently: no warning, no message
    assert len(calls) == 1 and np.array_equal(rebuilt.matrix, reference.matrix)
    if kind == "unreadable":
        assert entry.is_dir()  # cannot be replaced: the build still succeeds, from NLTK
        return
    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", _no_nltk)
    again = _build("cifar10", "wup", nltk_root, use_cache=True)  # the replaced entry is good
    assert np.array_equal(again.matrix, reference.matrix)


@pytest.fixture(scope="module")
def copied_root(nltk_root, tmp_path_factory) -> Path:
    """A private copy of the NLTK data root, to change."""
    root = tmp_path_factory.mktemp("wordnet-copy")
    corpus = root / "corpora" / "wordnet"
    corpus.mkdir(parents=True)
    for name in CORPUS_FILES:
        shutil.copy2(nltk_root / "corpora" / "wordnet" / name, corpus / name)
    return root


def test_a_changed_database_misses_the_cache(copied_root, cache, monkeypatch):
    reference = _build("cifar10", "lch", copied_root, use_cache=True)  # opens the copy with NLTK, files the closure
    reader = load_wordnet(copied_root)
    assert reader_reads(reader, locate_wordnet(copied_root))
    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", _no_nltk)
    assert np.array_equal(_build("cifar10", "lch", copied_root, use_cache=True).matrix, reference.matrix)
    # The same size and modification time, other bytes: still a different database.
    exc = copied_root / "corpora" / "wordnet" / "verb.exc"
    original, times = exc.read_bytes(), (exc.stat().st_atime_ns, exc.stat().st_mtime_ns)
    changed = original.replace(b"abetted abet", b"abetted abat", 1)
    assert changed != original and len(changed) == len(original)
    exc.write_bytes(changed)
    os.utime(exc, ns=times)
    with pytest.raises(NLTKOpened):
        _build("cifar10", "lch", copied_root, use_cache=True)
    assert not reader_reads(reader, locate_wordnet(copied_root))  # its files changed after it opened them
    # The original bytes again: the entry keyed by them is found (the key is the content, not the time).
    exc.write_bytes(original)
    assert np.array_equal(_build("cifar10", "lch", copied_root, use_cache=True).matrix, reference.matrix)
    # A changed database is opened again, never served stale from the open reader.
    monkeypatch.setattr(wnmod, "_READERS", dict(wnmod._READERS))  # the stand-in is forgotten after the test
    monkeypatch.setattr(wnmod, "_reader_at", lambda root: type("Reopened", (), {})())
    assert type(load_wordnet(copied_root)).__name__ == "Reopened"


# --- the cache folder and the remembered hashes -----------------------------------------------------------


def test_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(CACHE_ENV, "~/c")
    assert cache_dir() == tmp_path / "home" / "c"
    monkeypatch.setenv(CACHE_ENV, "")
    assert cache_dir() == tmp_path / "xdg" / "wpgdkit"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_dir() == tmp_path / "xdg" / "wpgdkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert cache_dir() == tmp_path / "home" / ".cache" / "wpgdkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "wpgdkit"


def test_remembered_hashes_are_used_only_when_settled(tmp_path, monkeypatch):
    hashed = []
    real = cachemod._sha256
    monkeypatch.setattr(cachemod, "_sha256", lambda path: hashed.append(path) or real(path))
    f, memo = tmp_path / "f", tmp_path / "memo.json"
    f.write_bytes(b"abc")
    expected = hashlib.sha256(b"abc").hexdigest()
    assert file_digests([f], memo=memo) == [expected] and len(hashed) == 1 and memo.is_file()
    assert file_digests([f], memo=memo) == [expected] and len(hashed) == 2  # changed moments ago: hashed again
    monkeypatch.setattr(cachemod, "RACY_NS", 0)  # as if the hashes had been taken long after the write
    assert file_digests([f], memo=memo) == [expected] and len(hashed) == 2  # a settled hash: a stat, no read
    times = (f.stat().st_atime_ns, f.stat().st_mtime_ns)
    f.write_bytes(b"abd")
    os.utime(f, ns=times)  # same size, same mtime: ctime still tells
    assert file_digests([f], memo=memo) == [hashlib.sha256(b"abd").hexdigest()] and len(hashed) == 3
    assert file_digests([f], memo=memo) == [hashlib.sha256(b"abd").hexdigest()] and len(hashed) == 3
    memo.write_text(memo.read_text()[:-5])  # a torn memo is ignored
    assert file_digests([f], memo=memo) == [hashlib.sha256(b"abd").hexdigest()] and len(hashed) == 4


def test_hashes_are_written_only_when_asked(tmp_path):
    f, memo = tmp_path / "f", tmp_path / "sub" / "memo.json"
    f.write_bytes(b"x")
    file_digests([f], memo=memo, save=False)
    assert not memo.parent.exists()
    save_digests(memo)
    assert str(f) in json.loads(memo.read_text())["files"]
