"""``train``, ``audit``, ``metric build`` and ``models`` on data read from files, from the command line.

Every dataset here is written in ``tmp_path`` by the test itself, seeded:

- ``.npz`` tabular features: scikit-learn's real breast-cancer data (no download);
- ``.npz`` time series (N, C, T): sine against square waves;
- ``.csv`` tables with string labels in a named label column, with a test
  file or a held-out fraction;
- ``imagefolder:`` trees of tiny 8×8 RGB PNGs named by WordNet ids (or by
  plain names with a ``--synsets`` map).

A checkpoint trained on files records how to reopen them (kind, path,
sha256, options), so ``audit run.pt`` needs no ``--dataset``; the tests
check that it reopens them with the recorded options, follows moved files
(``--dataset NEWPATH``) and refuses changed ones. Bad data or options are
one ``wpgdkit: error:`` line, exit code 2, and nothing written.

Runs are kept tiny (``--epochs 1``, ``--steps 2``, ``--eval-steps 0``) so the
file runs in well under a minute on two shared CPU cores.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.errors import WpgdkitError
from wpgdkit.training import load_checkpoint

runner = CliRunner()

#: The smallest training that still exercises the inner attack.
QUICK = ("--epochs", "1", "--steps", "2", "--eval-steps", "0", "--batch-size", "32", "--device", "cpu", "-q")
#: The audit's attack, kept short: the tests check plumbing, not robustness.
AUDIT_QUICK = ("--steps", "2", "--device", "cpu", "-q")
WIDE = {"COLUMNS": "250"}  # no wrapping of table cells

#: WordNet 3.0 noun offsets of the image-folder classes and the synsets they must name.
WNIDS = {"n02084071": "dog.n.01", "n02121808": "domestic_cat.n.01", "n01503061": "bird.n.01"}


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def ok(result):
    """The result of a command that must succeed (its stderr shown otherwise)."""
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.stdout)
    return result


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_metric_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """A metric CSV (header ``,a,b,...`` then ``a,c_aa,c_ab,...``) read without wpgdkit."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    classes = rows[0][1:]
    assert [row[0] for row in rows[1:]] == classes, "rows and columns name the same classes in the same order"
    return classes, np.array([[float(v) for v in row[1:]] for row in rows[1:]], dtype=np.float64)


# --- data written for the tests ---------------------------------------------------------


def write_breast_cancer(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Scikit-learn's breast-cancer data as an .npz, 75/25 split; returns the arrays written."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(seed).permutation(len(data.target))
    cut = int(0.75 * len(order))
    arrays = {
        "x_train": data.data[order[:cut]], "y_train": data.target[order[:cut]],
        "x_test": data.data[order[cut:]], "y_test": data.target[order[cut:]],
        "class_names": np.asarray(data.target_names),
    }
    np.savez(path, **arrays)
    return arrays


def write_series(path: Path, seed: int = 0, length: int = 32) -> None:
    """Noisy sine (class 0) and square (class 1) waves of random phase, float32 (N, 1, T)."""
    rng = np.random.default_rng(seed)

    def waves(n: int) -> tuple[np.ndarray, np.ndarray]:
        t = np.linspace(0.0, 1.0, length)
        y = np.arange(n) % 2
        sine = np.sin(2 * np.pi * 3 * t + rng.uniform(0, 2 * np.pi, (n, 1)))
        x = np.where(y[:, None] == 0, sine, np.sign(sine)) + 0.1 * rng.normal(size=(n, length))
        return x[:, None, :].astype(np.float32), y

    x_train, y_train = waves(96)
    x_test, y_test = waves(32)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             class_names=np.array(["sine", "square"]))


#: String labels whose order of appearance is not their sorted order.
CSV_LABELS = ("zebra", "apple", "mango")


def write_table(path: Path, n: int, seed: int) -> list[str]:
    """A CSV with the label column ``y`` between feature columns; returns the labels written."""
    rng = np.random.default_rng(seed)
    labels = [CSV_LABELS[i % 3] for i in range(n)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["f1", "y", "f2", "f3"])
        for label in labels:
            shift = CSV_LABELS.index(label)
            f1, f2, f3 = rng.normal(size=3) + shift
            writer.writerow([f"{f1:.5f}", label, f"{f2:.5f}", f"{f3:.5f}"])
    return labels


def write_image_folder(root: Path, classes, *, test: str = "test", n_train: int = 6, n_test: int = 2, seed: int = 0):
    """``root/train/<class>/*.png`` and ``root/<test>/<class>/*.png``, 8×8 RGB; class k saturates channel k."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), (test, n_test)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                pixels[..., k % 3] = 255
                Image.fromarray(pixels).save(folder / f"img_{i}.png")
    return f"imagefolder:{root}"


def standardized_bounds(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature [min, max] of the training split after (x − mean) / std, in float64 (std 0 counts as 1)."""
    x = x_train.astype(np.float64).reshape(len(x_train), -1)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - x.mean(axis=0)) / std
    return z.min(axis=0), z.max(axis=0)


def wordnet_or_skip():
    """WordNet 3.0 through NLTK, or skip (as the other WordNet tests do when it is not installed)."""
    from wpgdkit.wordnet import load_wordnet

    try:
        return load_wordnet()
    except WpgdkitError as exc:
        pytest.skip(f"WordNet is not installed: {exc}")


# --- .npz of tabular features: breast cancer ---------------------------------------------


def train_breast_cancer(folder: Path, *extra) -> tuple[Path, Path, dict]:
    """Write bc.npz in ``folder`` and train a standardised PGD MLP on it; returns (npz, checkpoint, arrays)."""
    npz, out = folder / "bc.npz", folder / "run.pt"
    arrays = write_breast_cancer(npz)
    ok(cli("train", "--dataset", npz, "--standardize", "--model", "mlp", "--method", "pgd", "--eps", "0.3",
           "--out", out, *QUICK, *extra))
    return npz, out, arrays


def test_npz_standardized_run_is_audited_without_naming_the_data(tmp_path):
    npz, out, arrays = train_breast_cancer(tmp_path)
    source = load_checkpoint(out).data.source
    assert source["kind"] == "npz" and source["options"]["standardize"] is True

    report = tmp_path / "audit.json"
    ok(cli("audit", out, "--json", report, *AUDIT_QUICK))  # no --dataset: the checkpoint reopens the file
    doc = read_json(report)
    assert doc["dataset"] == str(npz) and doc["classes"] == ["malignant", "benign"]
    assert doc["num_points"] == len(arrays["y_test"])
    assert doc["eps_units"] == "standard deviations of each feature"
    threat = doc["attack"]
    assert threat["eps"] == 0.3 and threat["norm"] == "linf"
    # Bounds per feature, of the *standardised* training data: were the file reopened without
    # --standardize they would be the raw ranges (hundreds for some features).
    low, high = (np.asarray(side, dtype=np.float64) for side in threat["bounds"])
    want_low, want_high = standardized_bounds(arrays["x_train"])
    assert low.shape == high.shape == (30,)
    np.testing.assert_allclose(low, want_low, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(high, want_high, rtol=1e-6, atol=1e-6)


def test_moved_npz_is_found_with_dataset_newpath(tmp_path, assert_one_line_error):
    npz, out, arrays = train_breast_cancer(tmp_path)
    moved = tmp_path / "elsewhere" / "renamed.npz"
    moved.parent.mkdir()
    shutil.move(npz, moved)

    report = tmp_path / "audit.json"
    result = cli("audit", out, "--json", report, *AUDIT_QUICK)
    assert_one_line_error(result, "cannot reopen", str(npz), "moved")
    assert not report.exists()

    ok(cli("audit", out, "--dataset", moved, "--json", report, *AUDIT_QUICK))
    doc = read_json(report)
    assert doc["dataset"] == str(moved) and doc["num_points"] == len(arrays["y_test"])
    assert doc["eps_units"] == "standard deviations of each feature"  # the recorded options still apply


def test_changed_npz_is_refused_in_one_line(tmp_path, assert_one_line_error):
    npz, out, arrays = train_breast_cancer(tmp_path)
    arrays["x_train"][0, 0] += 1.0  # one value of one point: other content, same names and shapes
    np.savez(npz, **arrays)

    report = tmp_path / "audit.json"
    result = cli("audit", out, "--json", report, *AUDIT_QUICK)
    assert_one_line_error(result, str(npz), "changed", "sha256")
    assert not report.exists()


# --- .npz of time series -----------------------------------------------------------------


@pytest.mark.parametrize("model", ["conv1d", "mlp"])
def test_series_npz_trains_and_audits(tmp_path, model):
    npz, out, report = tmp_path / "series.npz", tmp_path / f"{model}.pt", tmp_path / "audit.json"
    write_series(npz)
    ok(cli("train", "--dataset", npz, "--model", model, "--eps", "0.1", "--out", out, *QUICK))
    state = load_checkpoint(out)
    assert state.model.input_shape == (1, 32) and state.classes == ("sine", "square")

    ok(cli("audit", out, "--json", report, *AUDIT_QUICK))
    doc = read_json(report)
    assert doc["classes"] == ["sine", "square"] and doc["num_points"] == 32
    assert doc["eps_units"] == "the features' own units"
    # Series are bounded value by value (channel × time), by the training split's range.
    low, high = doc["attack"]["bounds"]
    assert len(low) == len(high) == 32


def test_models_sizes_conv1d_for_the_series_file(tmp_path):
    npz, out = tmp_path / "series.npz", tmp_path / "conv1d.pt"
    write_series(npz)
    ok(cli("train", "--dataset", npz, "--model", "conv1d", "--eps", "0.1", "--out", out, *QUICK))
    network = load_checkpoint(out).build_model("cpu")
    parameters = sum(p.numel() for p in network.parameters())

    result = ok(cli("models", "--dataset", npz, "--parameters", "--json", "-"))
    doc = json.loads(result.stdout)
    assert doc["dataset"] == str(npz) and doc["num_classes"] == 2 and doc["input_shape"] == [1, 32]
    rows = {row["name"]: row for row in doc["models"]}
    assert rows["conv1d"]["parameters"] == parameters
    assert rows["small-cnn"]["parameters"] is None  # a series is no image

    table = ok(cli("models", "--dataset", npz, "--parameters", env=WIDE)).stdout
    conv1d_row = next(line for line in table.splitlines() if line.startswith("│ conv1d "))
    assert f"{parameters:,}" in conv1d_row
    assert "2 classes, inputs 1×32" in table


# --- .csv tables ---------------------------------------------------------------------------


def test_csv_with_string_labels_and_a_test_file(tmp_path):
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    write_table(train_csv, 60, seed=1)
    test_labels = write_table(test_csv, 18, seed=2)
    out, report = tmp_path / "run.pt", tmp_path / "audit.json"
    ok(cli("train", "--dataset", train_csv, "--label-column", "y", "--test", test_csv, "--model", "mlp",
           "--eps", "0.2", "--out", out, *QUICK))
    # Classes by sorted name, not by order of appearance (zebra comes first in the file).
    assert load_checkpoint(out).classes == ("apple", "mango", "zebra")

    ok(cli("audit", out, "--json", report, *AUDIT_QUICK))
    doc = read_json(report)
    assert doc["classes"] == ["apple", "mango", "zebra"]
    assert doc["num_points"] == len(test_labels)
    assert doc["class_counts"] == [test_labels.count(c) for c in ("apple", "mango", "zebra")]
    assert doc["eps_units"] == "the features' own units"


def test_csv_with_a_held_out_fraction(tmp_path):
    train_csv, out, report = tmp_path / "train.csv", tmp_path / "run.pt", tmp_path / "audit.json"
    labels = write_table(train_csv, 70, seed=3)
    ok(cli("train", "--dataset", train_csv, "--label-column", "y", "--test-fraction", "0.25", "--model", "mlp",
           "--eps", "0.2", "--out", out, *QUICK))
    ok(cli("audit", out, "--json", report, *AUDIT_QUICK))
    doc = read_json(report)
    # Stratified hold-out, rounded half up per class (DataOptions.test_fraction).
    held = {c: int(np.floor(labels.count(c) * 0.25 + 0.5)) for c in ("apple", "mango", "zebra")}
    assert doc["class_counts"] == [held["apple"], held["mango"], held["zebra"]]
    assert doc["num_points"] == sum(held.values())


@pytest.mark.parametrize("source", ["linear", "uniform"])
def test_metric_build_over_the_csv_classes(tmp_path, source):
    train_csv, metric = tmp_path / "train.csv", tmp_path / f"{source}.csv"
    write_table(train_csv, 60, seed=4)
    ok(cli("metric", "build", "--dataset", train_csv, "--label-column", "y", "--test-fraction", "0.25",
           "--source", source, "--out", metric, "-q"))
    classes, matrix = read_metric_csv(metric)
    assert classes == ["apple", "mango", "zebra"]
    assert np.all(np.diag(matrix) == 0)
    if source == "uniform":
        np.testing.assert_array_equal(matrix, 1.0 - np.eye(3))
    else:
        off = matrix[~np.eye(3, dtype=bool)]
        assert np.all(off > 0) and np.allclose(matrix, matrix.T)


# --- image folders --------------------------------------------------------------------------


def test_image_folder_trains_a_small_cnn_and_audits(tmp_path):
    reference = write_image_folder(tmp_path / "pets", list(WNIDS))
    out, report = tmp_path / "run.pt", tmp_path / "audit.json"
    ok(cli("train", "--dataset", reference, "--model", "small-cnn", "--eps", "8/255", "--out", out, *QUICK))
    assert load_checkpoint(out).model.input_shape == (3, 8, 8)

    ok(cli("audit", out, "--json", report, *AUDIT_QUICK))
    doc = read_json(report)
    assert doc["classes"] == sorted(WNIDS) and doc["num_points"] == 6
    assert doc["eps_units"] == "pixel intensity in [0, 1]"
    assert doc["attack"]["bounds"] == [0.0, 1.0]


def test_image_folder_named_by_wordnet_ids_builds_a_wordnet_metric(tmp_path):
    from wpgdkit.datasets.files import wordnet_id_to_name

    wordnet = wordnet_or_skip()
    # The ids are real WordNet 3.0 noun offsets for dog, domestic cat and bird.
    assert wordnet_id_to_name(list(WNIDS), wordnet) == tuple(WNIDS.values())
    reference = write_image_folder(tmp_path / "pets", list(WNIDS))
    out = tmp_path / "wordnet.csv"
    ok(cli("metric", "build", "--dataset", reference, "--source", "wordnet", "--out", out, "-q"))
    classes, matrix = read_metric_csv(out)
    assert classes == sorted(WNIDS)  # bird n01503061, dog n02084071, cat n02121808
    bird, dog, cat = range(3)
    assert matrix[dog, cat] < matrix[dog, bird] and matrix[dog, cat] < matrix[cat, bird]


def test_image_folder_with_plain_names_needs_a_synset_map(tmp_path, assert_one_line_error):
    wordnet_or_skip()
    reference = write_image_folder(tmp_path / "pets", ["dog", "cat", "bird"])
    out = tmp_path / "wordnet.csv"
    result = cli("metric", "build", "--dataset", reference, "--source", "wordnet", "--out", out, "-q")
    assert_one_line_error(result, "no WordNet synsets")
    assert not out.exists()

    synsets = tmp_path / "map.csv"
    synsets.write_text("class,synset\ndog,dog.n.01\ncat,n02121808\nbird,bird.n.01\n", encoding="utf-8")
    ok(cli("metric", "build", "--dataset", reference, "--synsets", synsets, "--source", "wordnet", "--out", out, "-q"))
    classes, matrix = read_metric_csv(out)
    assert classes == ["bird", "cat", "dog"]
    # The same synsets as the id-named folder: the same distances, whatever the names.
    ids = tmp_path / "ids.csv"
    ok(cli("metric", "build", "--dataset", write_image_folder(tmp_path / "ids", list(WNIDS)), "--source", "wordnet",
           "--out", ids, "-q"))
    id_classes, id_matrix = read_metric_csv(ids)
    order = [id_classes.index(n) for n in ("n01503061", "n02121808", "n02084071")]  # bird, cat, dog
    np.testing.assert_array_equal(matrix, id_matrix[np.ix_(order, order)])


# --- class weights ----------------------------------------------------------------------------


def test_class_weights_are_recorded_and_part_of_the_run(tmp_path, assert_one_line_error):
    npz = tmp_path / "bc.npz"
    write_breast_cancer(npz)
    weights = tmp_path / "weights.csv"
    weights.write_text("class,weight\nmalignant,10\nbenign,1\n", encoding="utf-8")
    common = ("--dataset", npz, "--standardize", "--model", "mlp", "--method", "pgd", "--eps", "0.3", *QUICK)

    runs = {}
    for name, extra in (("plain", ()), ("balanced", ("--class-weights", "balanced")),
                        ("file", ("--class-weights", weights))):
        runs[name] = tmp_path / f"{name}.pt"
        ok(cli("train", *common, *extra, "--out", runs[name]))
    states = {name: load_checkpoint(path) for name, path in runs.items()}
    assert states["plain"].settings.class_weights is None
    assert states["balanced"].settings.class_weights == {"mode": "balanced"}
    assert states["file"].settings.class_weights == {
        "mode": "file", "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    fingerprints = {name: state.fingerprint() for name, state in states.items()}
    assert len(set(fingerprints.values())) == 3, fingerprints

    # The same run resumes (it is finished: nothing to do) ...
    ok(cli("train", *common, "--class-weights", weights, "--out", runs["file"], "--resume"))
    # ... but other weights are another run: a file with other content, or another mode.
    weights.write_text("class,weight\nmalignant,5\nbenign,1\n", encoding="utf-8")
    before = runs["file"].read_bytes()
    result = cli("train", *common, "--class-weights", weights, "--out", runs["file"], "--resume")
    assert_one_line_error(result, "cannot resume", "class_weights.sha256")
    result = cli("train", *common, "--class-weights", "balanced", "--out", runs["file"], "--resume")
    assert_one_line_error(result, "cannot resume", "class_weights.mode")
    assert runs["file"].read_bytes() == before


# --- bad input from the command line ------------------------------------------------------------


def _arrays(seed: int = 0, n: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 3)), np.arange(n) % 2
    return {"x_train": x, "y_train": y, "x_test": x.copy(), "y_test": y.copy()}


def _npz(folder: Path, name: str, **changes) -> str:
    arrays = {**_arrays(), **changes}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    # allow_pickle: the writer may store object arrays; the reader must still refuse them.
    np.savez(folder / name, allow_pickle=True, **arrays)
    return str(folder / name)


def _nan_features() -> np.ndarray:
    x = _arrays()["x_train"]
    x[3, 1] = np.nan
    return x


def _bad_input(case: str, folder: Path) -> tuple[list[str], tuple[str, ...]]:
    """``(--dataset and data options, fragments of the expected message)`` for one bad input."""
    if case == "npz-without-y_test":
        return ["--dataset", _npz(folder, "d.npz", y_test=None)], ("lacks y_test",)
    if case == "npz-label-out-of-range":
        path = _npz(folder, "d.npz", y_test=_arrays()["y_test"] + 5, class_names=np.array(["a", "b"]))
        return ["--dataset", path], ("label 6 is out of range",)
    if case == "npz-nan-features":
        return ["--dataset", _npz(folder, "d.npz", x_train=_nan_features())], ("NaN or infinite",)
    if case == "npz-object-features":
        objects = np.array([[1.0, "a", None]] * 20, dtype=object)
        return ["--dataset", _npz(folder, "d.npz", x_train=objects)], ("x_train holds Python objects",)
    if case == "npz-object-class-names":
        names = np.array(["a", "b"], dtype=object)
        return ["--dataset", _npz(folder, "d.npz", class_names=names)], ("class_names holds Python objects",)
    if case == "npz-class-name-count":
        path = _npz(folder, "d.npz", class_names=np.array(["a", "b", "c"]))
        return ["--dataset", path], ("class_names holds 3 names", "2 classes")
    if case == "csv-without-label-column":
        (folder / "d.csv").write_text("a,b,c\n1,2,3\n4,5,6\n", encoding="utf-8")
        return ["--dataset", str(folder / "d.csv"), "--test-fraction", "0.5"], ("no column 'label'", "a, b, c")
    if case == "csv-non-numeric-cell":
        (folder / "d.csv").write_text("a,b,label\n1,2,x\n4,oops,y\n1,1,x\n2,2,y\n", encoding="utf-8")
        return ["--dataset", str(folder / "d.csv"), "--test-fraction", "0.5"], ("line 3", "'oops', not a number")
    if case == "test-fraction-1.5":
        return ["--dataset", _npz(folder, "d.npz", x_test=None, y_test=None), "--test-fraction", "1.5"], (
            "--test-fraction", "1.5")
    if case == "standardize-image-folder":
        return ["--dataset", write_image_folder(folder / "imgs", ["a", "b"]), "--standardize"], (
            "--standardize", "not to imagefolder: data")
    if case == "options-with-registered-dataset":
        return ["--dataset", "toy", "--standardize"], ("apply to dataset files, not to toy",)
    if case == "image-folder-without-test":
        reference = write_image_folder(folder / "imgs", ["a", "b"])
        shutil.rmtree(folder / "imgs" / "test")
        return ["--dataset", reference], ("no test or val folder",)
    raise AssertionError(case)


BAD_INPUTS = ["npz-without-y_test", "npz-label-out-of-range", "npz-nan-features", "npz-object-features",
              "npz-object-class-names", "npz-class-name-count", "csv-without-label-column", "csv-non-numeric-cell",
              "test-fraction-1.5", "standardize-image-folder", "options-with-registered-dataset",
              "image-folder-without-test"]


def _command(command: str, out: Path) -> list[str]:
    """The command line around the data arguments, writing into ``out`` (which must stay empty)."""
    if command == "train":
        return ["train", "--model", "mlp", "--eps", "0.1", "--out", str(out / "run.pt"), *QUICK]
    if command == "audit":
        return ["audit", "--model", "mlp", "--eps", "0.1", "--json", str(out / "audit.json"), *AUDIT_QUICK]
    if command == "metric-build":
        return ["metric", "build", "--source", "uniform", "--out", str(out / "metric.csv"), "-q"]
    return ["models", "--json", str(out / "models.json")]


@pytest.mark.parametrize("command", ["train", "audit", "metric-build", "models"])
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, assert_one_line_error, case, command):
    data, fragments = _bad_input(case, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    result = cli(*_command(command, out), *data)
    assert_one_line_error(result, *fragments)
    assert list(out.iterdir()) == []  # no checkpoint, log, lock, JSON or metric


def test_standardize_refusal_for_an_image_folder_reads_once(tmp_path):
    data, _ = _bad_input("standardize-image-folder", tmp_path)
    result = cli("train", "--model", "mlp", "--out", tmp_path / "run.pt", *QUICK, *data)
    assert result.exit_code == 2
    assert result.stderr.count("not to") == 1, result.stderr


# --- data options beside a checkpoint -------------------------------------------------


def test_moved_csv_with_a_test_file_is_found_with_dataset_and_test(tmp_path):
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    write_table(train_csv, 60, seed=1)
    test_labels = write_table(test_csv, 18, seed=2)
    out, report = tmp_path / "run.pt", tmp_path / "audit.json"
    ok(cli("train", "--dataset", train_csv, "--label-column", "y", "--test", test_csv, "--model", "mlp",
           "--eps", "0.2", "--out", out, *QUICK))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(train_csv, moved / "train.csv")
    shutil.move(test_csv, moved / "test.csv")

    result = cli("audit", out, "--dataset", moved / "train.csv", "--test", moved / "test.csv", "--json", report,
                 *AUDIT_QUICK)
    assert result.exit_code == 0, result.stderr
    assert read_json(report)["num_points"] == len(test_labels)


def test_data_options_contradicting_a_checkpoint_are_refused(tmp_path, assert_one_line_error):
    npz, out = tmp_path / "series.npz", tmp_path / "run.pt"
    write_series(npz)
    ok(cli("train", "--dataset", npz, "--model", "mlp", "--eps", "0.1", "--out", out, *QUICK))
    report = tmp_path / "audit.json"
    # The run was not standardised: auditing "with --standardize" cannot mean what it says.
    result = cli("audit", out, "--standardize", "--json", report, *AUDIT_QUICK)
    assert_one_line_error(result, "--standardize")
    assert not report.exists()
