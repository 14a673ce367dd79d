"""`wpgdkit metric build|check|show|compare` through typer's CliRunner."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.labelmetric import LabelMetric, read_metric, write_metric

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def parse_csv(text: str) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == ""
    return rows[0][1:], np.array([[float(v) for v in r[1:]] for r in rows[1:]])


# --- build -------------------------------------------------------------------------


def test_build_cifar10_wordnet_to_stdout_is_the_csv_contract():
    result = invoke("metric", "build", "--dataset", "cifar10", "--source", "wordnet")
    assert result.exit_code == 0, result.stderr
    classes, matrix = parse_csv(result.stdout)
    assert classes[:4] == ["airplane", "automobile", "bird", "cat"]
    assert matrix[3, 5] == 4  # cat–dog through carnivore.n.01
    assert matrix[1, 9] == 2  # automobile (car.n.01) → motor_vehicle.n.01 ← truck.n.01
    assert "10 classes" in result.stderr  # messages go to stderr so stdout pipes


def test_build_subset_normalized_json_records_the_rebuild_command(tmp_path):
    out = tmp_path / "sub.json"
    result = invoke("metric", "build", "--dataset", "cifar10", "--classes", "cat,dog,truck", "--normalize", "max", "--out", out, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    metric = read_metric(out)
    assert metric.classes == ("cat", "dog", "truck")
    assert metric.matrix.max() == 1.0
    full = read_metric_from_cli("cifar10")
    np.testing.assert_array_equal(metric.matrix, full.subset(["cat", "dog", "truck"]).matrix / full.subset(["cat", "dog", "truck"]).matrix.max())
    prov = metric.provenance
    assert (prov.source, prov.measure, prov.dataset, prov.wordnet_version) == ("wordnet", "path", "cifar10", "3.0")
    assert prov.command == "wpgdkit metric build --dataset cifar10 --source wordnet --classes cat,dog,truck --normalize max"


def read_metric_from_cli(dataset: str, *extra: str) -> LabelMetric:
    result = invoke("metric", "build", "--dataset", dataset, *extra, "-q")
    assert result.exit_code == 0, result.stderr
    classes, matrix = parse_csv(result.stdout)
    return LabelMetric(tuple(classes), matrix)


def test_build_classes_by_index_equals_by_name():
    by_index = read_metric_from_cli("cifar10", "--classes", "3,5")
    by_name = read_metric_from_cli("cifar10", "--classes", "cat,dog")
    assert by_index.classes == by_name.classes == ("cat", "dog")
    np.testing.assert_array_equal(by_index.matrix, by_name.matrix)


@pytest.mark.parametrize("measure", ["path", "lch", "wup", "lca-depth"])
def test_build_each_wordnet_measure_then_check_passes(tmp_path, measure):
    out = tmp_path / f"c10-{measure}.csv"
    assert invoke("metric", "build", "--dataset", "cifar10", "--measure", measure, "--out", out, "-q").exit_code == 0
    result = invoke("metric", "check", out, "--samples", "200", "--sinkhorn-samples", "3")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout


def test_build_npy_needs_classes_beside_it(tmp_path, assert_one_line_error):
    out = tmp_path / "m.npy"
    assert invoke("metric", "build", "--dataset", "fashion-mnist", "--out", out, "-q").exit_code == 0
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]))
    assert invoke("metric", "check", out, "--classes", names, "--samples", "50", "--sinkhorn-samples", "0").exit_code == 0
    assert_one_line_error(invoke("metric", "check", out), "give the class names")


def test_build_uniform_and_file_sources(tmp_path):
    uniform = read_metric_from_cli("toy", "--source", "uniform")
    np.testing.assert_array_equal(uniform.matrix, 1 - np.eye(3))
    src = tmp_path / "in.csv"
    write_metric(LabelMetric(("0", "1", "2"), [[0, 10, 0.01], [10, 0, 1], [0.01, 1, 0]]), src)
    out = tmp_path / "out.json"
    result = invoke("metric", "build", "--dataset", "toy", "--source", "file", "--input", src, "--out", out, "-q")
    assert result.exit_code == 0, result.stderr
    metric = read_metric(out)
    assert metric.matrix[0, 1] == 10 and metric.matrix[0, 2] == 0.01
    assert metric.provenance.source == "file"


def test_build_linear_on_toy_is_symmetric_with_zero_diagonal():
    metric = read_metric_from_cli("toy", "--source", "linear", "--limit", "600")
    assert metric.classes == ("0", "1", "2")
    np.testing.assert_array_equal(metric.matrix, metric.matrix.T)
    assert np.all(np.diag(metric.matrix) == 0) and np.all(metric.matrix[~np.eye(3, dtype=bool)] > 0)


# --- check -------------------------------------------------------------------------


def test_check_json_report(tmp_path):
    path = tmp_path / "m.csv"
    write_metric(LabelMetric(("0", "1", "2"), [[0, 10, 0.01], [10, 0, 1], [0.01, 1, 0]]), path)
    result = invoke("metric", "check", path, "--p", "2.5", "--samples", "100", "--sinkhorn-samples", "5", "--json", "-")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["structure"]["triangle_violations"] == 2  # C[0,1] and C[1,0] exceed the path through class 2
    assert report["structure"]["positive_semidefinite"] is False
    check = report["wasserstein_check"]
    assert check["p"] == 2.5 and check["samples"] == 100
    assert check["emd_max_relative_error"] <= 1e-9
    gaps = [row["objective_gap"] for row in check["sinkhorn"]]
    assert gaps == sorted(gaps, reverse=True)  # the entropic objective approaches W as ε shrinks


def test_check_asymmetric_needs_the_flag(tmp_path, assert_one_line_error):
    path = tmp_path / "asym.csv"
    write_metric(LabelMetric(("a", "b", "c"), [[0, 1, 2], [3, 0, 1], [2, 2, 0]]), path)
    assert_one_line_error(invoke("metric", "check", path), "not symmetric", "--allow-asymmetric")
    result = invoke("metric", "check", path, "--allow-asymmetric", "--samples", "100", "--sinkhorn-samples", "2")
    assert result.exit_code == 0, result.stdout


# --- show and compare --------------------------------------------------------------------


def test_show_lists_neighbours_and_plots(tmp_path):
    path = tmp_path / "c10.csv"
    assert invoke("metric", "build", "--dataset", "cifar10", "--out", path, "-q").exit_code == 0
    png = tmp_path / "c10.png"
    result = invoke("metric", "show", path, "--plot", png, "--json", "-", "--top", "1")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    cat = next(e for e in data["neighbours"] if e["class"] == "cat")
    assert cat["nearest"] == [["dog", 4]]  # cat → feline → carnivore ← canine ← dog
    assert cat["farthest"] == [["airplane", 18]]  # cat–airplane: animal vs artifact, up to whole.n.02
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = invoke("metric", "show", path)
    assert text.exit_code == 0 and "nearest" in text.stdout and "PSD" in text.stdout


def test_compare_matches_scipy(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    rng = np.random.default_rng(0)
    m = rng.random((6, 6)); m = m + m.T; np.fill_diagonal(m, 0)
    n = m + rng.random((6, 6)) * 0.5; n = n + n.T; np.fill_diagonal(n, 0)
    names = tuple("abcdef")
    write_metric(LabelMetric(names, m), a)
    # Same classes in another order: compare aligns by name.
    order = [5, 4, 3, 2, 1, 0]
    write_metric(LabelMetric(tuple(names[i] for i in order), n[np.ix_(order, order)]), b)
    result = invoke("metric", "compare", a, b, "--json", "-")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    off = ~np.eye(6, dtype=bool)
    assert data["pearson"] == pytest.approx(stats.pearsonr(m[off], n[off]).statistic, abs=1e-12)
    assert data["spearman"] == pytest.approx(stats.spearmanr(m[off], n[off]).statistic, abs=1e-12)
    assert data["pairs"] == 30


# --- bad input: one line, exit 2, no partial output ----------------------------------------


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_FILES = {
    "first-cell.csv": (",a,b\nx,0,1\n" .replace(",a", "X,a"), "first cell"),
    "ragged.csv": (",a,b\na,0,1\nb,1\n", "expected 2"),
    "order.csv": (",a,b\nb,0,1\na,1,0\n", "header's class order"),
    "text.csv": (",a,b\na,0,one\nb,1,0\n", "'one' is not a number"),
    "nan.csv": (",a,b\na,0,nan\nb,nan,0\n", "finite"),
    "negative.csv": (",a,b\na,0,-1\nb,-1,0\n", "negative"),
    "diagonal.csv": (",a,b\na,1,1\nb,1,0\n", "diagonal"),
    "dup.csv": (",a,a\na,0,1\na,1,0\n", "duplicate"),
    "empty.csv": ("", "empty"),
    "notsquare.json": ('{"classes": ["a", "b"], "matrix": [[0, 1], [1]]}', "not square"),
    "badjson.json": ("{not json", "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "show"])
def test_malformed_metric_files(tmp_path, name, command, assert_one_line_error):
    text, fragment = BAD_FILES[name]
    path = _write(tmp_path, name, text)
    assert_one_line_error(invoke("metric", command, path), fragment)


def test_compare_class_mismatch(tmp_path, assert_one_line_error):
    a = _write(tmp_path, "a.csv", ",a,b,c\na,0,1,2\nb,1,0,1\nc,2,1,0\n")
    b = _write(tmp_path, "b.csv", ",a,b,d\na,0,1,2\nb,1,0,1\nd,2,1,0\n")
    assert_one_line_error(invoke("metric", "compare", a, b), "different classes")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--dataset", "cifar10", "--source", "nope"], "'nope' is not one of"),
        (["--dataset", "cifar10", "--measure", "cosine"], "unknown measure 'cosine'"),
        (["--dataset", "cifar10", "--classes", "cat,unicorn"], "unknown class 'unicorn'"),
        (["--dataset", "cifar10", "--classes", "3,99"], "out of range"),
        (["--dataset", "cifar10", "--classes", "cat,cat"], "selected twice"),
        (["--dataset", "toy"], "no WordNet synsets"),
        (["--source", "wordnet"], "needs --dataset"),
        (["--source", "file", "--dataset", "toy"], "needs --input"),
        (["--source", "file", "--input", "/nonexistent/m.csv"], "not found"),
        (["--dataset", "toy", "--source", "linear", "--limit", "0"], "--limit"),
        (["--dataset", "cifar10", "--bogus"], "No such option"),
    ],
)
def test_bad_build_flags(tmp_path, args, fragment, assert_one_line_error):
    out = tmp_path / "out.csv"
    result = invoke("metric", "build", *args, "--out", out)
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file


def test_bad_output_extension_fails_before_building(tmp_path, assert_one_line_error):
    out = tmp_path / "out.txt"
    assert_one_line_error(invoke("metric", "build", "--dataset", "cifar10", "--out", out), "--out must end in")
    assert not out.exists()


def test_missing_dataset_files_say_where_and_how(tmp_path, assert_one_line_error):
    result = invoke("metric", "build", "--dataset", "mnist", "--source", "linear", "--data-dir", tmp_path, "--out", tmp_path / "m.csv")
    assert_one_line_error(result, "mnist not found", str(tmp_path), "--download")
    assert not (tmp_path / "m.csv").exists()


def test_missing_wordnet_names_both_ways_to_get_it(tmp_path, monkeypatch, assert_one_line_error):
    monkeypatch.setenv("WPGDKIT_WORDNET_DIR", str(tmp_path))
    result = invoke("metric", "build", "--dataset", "cifar10", "--out", tmp_path / "m.csv")
    assert_one_line_error(result, "nltk.downloader", "wordnet-base")
    assert not (tmp_path / "m.csv").exists()


def test_check_p_must_be_positive(tmp_path, assert_one_line_error):
    path = _write(tmp_path, "m.csv", ",a,b\na,0,1\nb,1,0\n")
    assert_one_line_error(invoke("metric", "check", path, "--p", "0"), "--p must be positive")
    assert_one_line_error(invoke("metric", "check", path, "--p", "-1"), "--p")


def test_missing_file(assert_one_line_error):
    assert_one_line_error(invoke("metric", "show", "/nonexistent/metric.csv"), "not found")


# --- class names are printed as written (Rich markup and control characters) ------------------

WIDE = {"COLUMNS": "250"}  # no wrapping: the long lines stay whole

# "[critical]" and "[healthy]" look like Rich style tags, "[/bold]" like a closing tag (MarkupError),
# and the fourth name is an ANSI colour sequence without its ESC (a name holding ESC itself, or any
# other control character, is refused: test_control_characters_in_class_names_are_refused).
ODD_NAMES = ("[critical]", "[healthy]", "[/bold]", "esc[31mred")
# C[crit, heal] = 10 > C[crit, bold] + C[bold, heal] = 1 + 1, by 8 (through "esc...": 2 + 2, by 6).
ODD_MATRIX = [[0, 10, 1, 2], [10, 0, 1, 2], [1, 1, 0, 2], [2, 2, 2, 0]]
ESC_SHOWN = "esc[31mred"  # as it is


def _odd_metric(tmp_path):
    path = tmp_path / "odd.csv"
    write_metric(LabelMetric(ODD_NAMES, ODD_MATRIX), path)
    return path


def test_check_prints_bracketed_class_names_literally(tmp_path):
    result = runner.invoke(app, ["metric", "check", str(_odd_metric(tmp_path)), "--samples", "50",
                                 "--sinkhorn-samples", "0"], env=WIDE)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    assert ("worst C[[critical], [healthy]] exceeds C[[critical], [/bold]] + C[[/bold], [healthy]] by 8"
            in result.stdout)
    assert "violated by 4 ordered triples" in result.stdout  # (crit, heal) and (heal, crit), through two classes each
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize("command", ["check", "show"])
def test_the_worst_triangle_violation_of_the_shipped_cifar10_metric_is_printed_whole(command):
    from wpgdkit.resources import metrics_dir

    # "C[airplane, cat]" is itself a well-formed Rich tag: our own bracket, plain class names.
    # Path distances: airplane–cat 18 > airplane–dog 13 + dog–cat 4, by 1.
    quick = ["--samples", "20", "--sinkhorn-samples", "0"] if command == "check" else []
    result = runner.invoke(app, ["metric", command, str(metrics_dir() / "cifar10-wordnet.csv"), *quick], env=WIDE)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert ("triangle inequality: violated by 8 ordered triples; worst C[airplane, cat] exceeds "
            "C[airplane, dog] + C[dog, cat] by 1") in result.stdout


def test_show_prints_bracketed_and_control_character_names_literally(tmp_path):
    path = _odd_metric(tmp_path)
    result = runner.invoke(app, ["metric", "show", str(path), "--top", "1"], env=WIDE)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    assert "\x1b" not in result.stdout  # nothing reaches the terminal as a control sequence
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:4]]
            for line in result.stdout.splitlines() if line.startswith("│")}
    # Row i: nearest and farthest by C[i, j]; ties keep label order.
    assert rows["[critical]"] == ["[/bold] (1)", "[healthy] (10)"]
    assert rows["[healthy]"] == ["[/bold] (1)", "[critical] (10)"]
    assert rows["[/bold]"] == ["[critical] (1)", f"{ESC_SHOWN} (2)"]
    assert rows[ESC_SHOWN] == ["[critical] (2)", "[/bold] (2)"]
    assert "C[[critical], [healthy]] exceeds" in result.stdout
    assert f"{path}" in result.stdout


def test_show_json_keeps_the_names_unchanged(tmp_path):
    result = runner.invoke(app, ["metric", "show", str(_odd_metric(tmp_path)), "--json", "-", "--top", "1"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["classes"] == list(ODD_NAMES)
    assert data["structure"]["worst_triangle_violation"] == {"i": "[critical]", "j": "[healthy]", "k": "[/bold]",
                                                             "excess": 8.0}


def test_show_prints_a_bracketed_path_and_rebuild_command(tmp_path):
    folder = tmp_path / "[red]x[/red]"
    path = folder / "m.json"
    out = invoke("metric", "build", "--dataset", "toy", "--source", "uniform", "--out", path, "-q")
    assert out.exit_code == 0, out.stderr
    result = runner.invoke(app, ["metric", "show", str(path)], env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert f"{path}: 3 classes, source uniform, dataset toy" in result.stdout
    assert "rebuild: wpgdkit metric build --dataset toy --source uniform" in result.stdout


def test_build_summary_prints_a_bracketed_output_path(tmp_path):
    out = tmp_path / "[bold]" / "m.csv"
    result = runner.invoke(app, ["metric", "build", "--dataset", "toy", "--source", "uniform", "--out", str(out)],
                           env=WIDE)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}: 3 classes, uniform, entries 1..1" in result.stderr


# --- threads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_build_threads_must_be_at_least_one(tmp_path, threads, assert_one_line_error):
    out = tmp_path / "m.csv"
    result = invoke("metric", "build", "--dataset", "toy", "--source", "linear", "--limit", "60", "--threads", threads,
                    "--out", out)
    assert_one_line_error(result, f"threads must be a whole number of at least 1, got {threads}")
    assert list(tmp_path.iterdir()) == []


def test_build_linear_with_threads_gives_the_same_metric_and_restores_torch_threads():
    import torch

    before = torch.get_num_threads()
    default = read_metric_from_cli("toy", "--source", "linear", "--limit", "60")
    threaded = read_metric_from_cli("toy", "--source", "linear", "--limit", "60", "--threads", "2")
    assert torch.get_num_threads() == before
    assert threaded.classes == default.classes == ("0", "1", "2")
    np.testing.assert_allclose(threaded.matrix, default.matrix, rtol=1e-6)


# --- hardening: text files, numbers at the edges, JSON versions ----------------------------------------------


_BAD_FILES = {
    "latin1.csv": b",a,caf\xe9\na,0,1\ncaf\xe9,1,0\n",
    "huge.csv": b",a,b\na,0,1e308\nb,1e308,0\n",
    "e200.csv": b",a,b\na,0,1e200\nb,1e200,0\n",
    "underscore.csv": b",a,b\na,0,1_000\nb,1_000,0\n",
    "infinite.csv": b",a,b\na,0,inf\nb,inf,0\n",
    "longname.csv": b",a," + b"x" * 200_000 + b"\na,0,1\n" + b"x" * 200_000 + b",1,0\n",
    "latin1.json": b'{"classes": ["a", "caf\xe9"], "matrix": [[0, 1], [1, 0]]}',
    "future.json": b'{"format": "wpgdkit-label-metric", "version": 2, "classes": ["a", "b"], "matrix": [[0, 1], [1, 0]]}',
    "deep.json": b"[" * 100_000 + b"]" * 100_000,
    "provenance.json": b'{"classes": ["a", "b"], "matrix": [[0, 1], [1, 0]], "provenance": {"source": 3}}',
}


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("latin1.csv", "is not UTF-8 text (byte 6 is 0xe9)"),
        ("huge.csv", "is too large: entries must be at most 1e+100"),
        ("e200.csv", "is too large: entries must be at most 1e+100"),
        ("underscore.csv", "line 2, column 'b': '1_000' is not a number"),
        ("infinite.csv", "line 2, column 'b': 'inf' is not a finite number"),
        ("longname.csv", "line 1 has a field over 131,072 characters"),
        ("latin1.json", "is not UTF-8 text"),
        ("future.json", "version 2 is newer than this wpgdkit reads"),
        ("deep.json", "not valid JSON (nested too deeply)"),
        ("provenance.json", "provenance 'source' must be a string, got a number"),
    ],
)
@pytest.mark.parametrize("command", ["show", "check"])
def test_bad_metric_files_are_one_line(tmp_path, name, fragment, command, assert_one_line_error):
    path = tmp_path / name
    path.write_bytes(_BAD_FILES[name])
    extra = ["--samples", "5", "--sinkhorn-samples", "0"] if command == "check" else []
    result = invoke("metric", command, path, *extra)
    assert_one_line_error(result, fragment)
    assert result.stdout == ""


@pytest.mark.parametrize(("p", "fragment"), [("inf", "--p must be a number > 0, got inf"), ("nan", "--p")])
def test_check_p_must_be_finite(tmp_path, p, fragment, assert_one_line_error):
    path = tmp_path / "m.csv"
    path.write_text(",a,b\na,0,1\nb,1,0\n")
    result = invoke("metric", "check", path, "--p", p, "--samples", "5")
    assert_one_line_error(result, fragment)
    assert result.stdout == ""


def test_check_p_whose_power_overflows(tmp_path, assert_one_line_error):
    path = tmp_path / "m.csv"
    path.write_text(",a,b\na,0,1e100\nb,1e100,0\n")
    result = invoke("metric", "check", path, "--p", "4", "--samples", "5")
    assert_one_line_error(result, "C^p overflows")


@pytest.mark.parametrize("option", ["--class-list", "--synset-map"])
def test_build_text_inputs_not_utf8(tmp_path, option, assert_one_line_error):
    path = tmp_path / "in.csv"
    path.write_bytes(b"class,synset\ncaf\xe9,cat.n.01\n" if option == "--synset-map" else b"a\ncaf\xe9\n")
    source = "uniform" if option == "--class-list" else "wordnet"
    out = tmp_path / "out" / "m.csv"
    out.parent.mkdir()
    result = invoke("metric", "build", "--source", source, option, path, "--out", out)
    assert_one_line_error(result, "is not UTF-8 text")
    assert list(out.parent.iterdir()) == []


def test_build_with_a_junk_wordnet_dir_is_one_line_and_leaves_the_cache(tmp_path, monkeypatch, assert_one_line_error):
    junk = tmp_path / "junk"
    junk.mkdir()
    for name in [f"{k}.{p}" for k in ("data", "index") for p in ("noun", "verb", "adj", "adv")]:
        (junk / name).write_text("junk\n")
    for pos in ("noun", "verb", "adj", "adv"):
        (junk / f"{pos}.exc").write_text("")
    cache = tmp_path / "cache"
    monkeypatch.setenv("WPGDKIT_CACHE_DIR", str(cache))
    monkeypatch.setenv("WPGDKIT_WORDNET_DIR", str(junk))
    result = invoke("metric", "build", "--dataset", "cifar10", "--source", "wordnet")
    assert_one_line_error(result, "is not a WordNet database directory", "index.noun line 1 is malformed")
    assert not cache.exists()  # nothing was prepared from the junk


# --- bad input found by the corpus (regressions) ------------------------------------


@pytest.mark.parametrize("command", ["check", "show"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\t", "\x7f", "\x85", "\x9b"])
def test_control_characters_in_class_names_are_refused(tmp_path, command, char, assert_one_line_error):
    path = tmp_path / "m.csv"
    path.write_text(f",a,b{char}c\na,0,1\nb{char}c,1,0\n", encoding="utf-8")
    result = invoke("metric", command, path)
    assert_one_line_error(result, "line 1", f"U+{ord(char):04X}")


def test_check_refuses_a_bad_seed(tmp_path, assert_one_line_error):
    path = tmp_path / "m.csv"
    write_metric(LabelMetric(("a", "b"), [[0, 1], [1, 0]]), path)
    for seed in ("-1", str(2**32)):
        result = invoke("metric", "check", path, "--samples", "5", "--sinkhorn-samples", "0", "--seed", seed)
        assert_one_line_error(result, "seed", seed)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**64)], "--seed"),
        (["--l2", "nan"], "--l2"),
        (["--l2", "inf"], "--l2"),
        (["--l2", "1e400"], "--l2"),
        (["--l2", "-1"], "--l2"),
        (["--max-iter", "0"], "--max-iter"),
        (["--max-iter", "100001"], "--max-iter"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_linear_numbers_are_refused_before_any_data(tmp_path, monkeypatch, args, fragment, assert_one_line_error):
    import wpgdkit.datasets

    def no_data(*a, **k):
        raise AssertionError("data loaded before the numbers were checked")

    monkeypatch.setattr(wpgdkit.datasets, "load_tensors", no_data)
    out = tmp_path / "out.csv"
    result = invoke("metric", "build", "--dataset", "toy", "--source", "linear", *args, "--out", out)
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_unknown_class_is_refused_before_wordnet_loads(tmp_path, monkeypatch, assert_one_line_error):
    import wpgdkit.wordnet

    def no_wordnet(*a, **k):
        raise AssertionError("WordNet loaded before --classes was checked")

    monkeypatch.setattr(wpgdkit.wordnet, "load_wordnet", no_wordnet)
    out = tmp_path / "out.csv"
    result = invoke("metric", "build", "--dataset", "cifar10", "--classes", "cat,nosuch", "--source", "wordnet",
                    "--out", out)
    assert_one_line_error(result, "unknown class 'nosuch'")
    assert list(tmp_path.iterdir()) == []


# --- an existing --out: left as it is when it already holds the metric, refused when it holds something else


def _uniform(out, *extra):
    return runner.invoke(app, ["metric", "build", "--dataset", "cifar10", "--source", "uniform", "--out", str(out),
                               *extra])


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_rebuilding_the_same_metric_leaves_the_file_as_it_was(tmp_path, suffix):
    out = tmp_path / f"m{suffix}"
    assert _uniform(out).exit_code == 0
    before = (out.read_bytes(), out.stat().st_mtime_ns, out.stat().st_ino)
    again = _uniform(out)
    assert again.exit_code == 0, again.output
    assert "already holds it" in " ".join(again.stderr.split())  # Rich wraps the line at 80 columns
    assert (out.read_bytes(), out.stat().st_mtime_ns, out.stat().st_ino) == before


def test_a_different_metric_is_refused_without_force_and_written_with_it(tmp_path, assert_one_line_error):
    out = tmp_path / "m.json"
    assert _uniform(out).exit_code == 0
    first = out.read_bytes()
    refused = _uniform(out, "--classes", "cat,dog")
    assert_one_line_error(refused, "exists and holds something else; pass --force")
    assert out.read_bytes() == first
    forced = _uniform(out, "--classes", "cat,dog", "--force")
    assert forced.exit_code == 0, forced.output
    assert read_metric(out).classes == ("cat", "dog")


def test_a_file_that_is_not_a_metric_is_refused_before_any_work(tmp_path, monkeypatch, assert_one_line_error):
    from wpgdkit.cli.metric import build as build_module

    def never(config):
        raise AssertionError("built although --out could not be written")

    monkeypatch.setattr(build_module, "build_metric", never)
    notes = tmp_path / "notes.csv"
    notes.write_text("my notes, not a metric\n")
    assert_one_line_error(_uniform(notes), "exists and is not a label metric; pass --force")
    assert notes.read_text() == "my notes, not a metric\n"
