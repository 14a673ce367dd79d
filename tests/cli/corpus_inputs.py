"""Builders of the bad-input corpus (tests/cli/test_cli_bad_input_corpus.py).

Every builder writes into one fixtures folder, built once per test module: a tiny
valid toy checkpoint (trained through the CLI), corrupt copies of it, label-metric
files valid and malformed, class lists, synset maps, tiny MNIST folders in the real
IDX format (valid, with a huge header, truncated), junk WordNet folders, and files
that run code when unpickled. Code-carrying files touch ``MARKER`` if they ever run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

MARKER = "CODE-RAN.marker"

# Class names and provenance text that are valid but hostile on a terminal.
HOSTILE_NAMES = ["[/x]", "[/bold]", "[red]x[/red]", "esc\x1b[31mred", "bell\x07", ":dog:"]


class RunsCode:
    """Unpickling this touches the marker (os.system): a file that carries code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# --- label metrics -------------------------------------------------------------------------


def metric_csv(classes, matrix) -> str:
    lines = ["," + ",".join(classes)]
    for name, row in zip(classes, matrix):
        lines.append(name + "," + ",".join(str(v) for v in row))
    return "\n".join(lines) + "\n"


def metric_json(classes, matrix, **extra) -> dict:
    doc = {"format": "wpgdkit-label-metric", "version": 1, "classes": list(classes), "matrix": matrix,
           "provenance": {"source": "file", "parameters": {}}}
    doc.update(extra)
    return doc


GOOD3 = (["cat", "dog", "truck"], [[0, 4, 17], [4, 0, 12], [17, 12, 0]])
TOY3 = (["0", "1", "2"], [[0, 10, 0.01], [10, 0, 1], [0.01, 1, 0]])


def build_metric_files(fx: Path) -> None:
    classes, m = GOOD3
    (fx / "good.csv").write_text(metric_csv(classes, m))
    (fx / "good.json").write_text(json.dumps(metric_json(classes, m)))
    np.save(fx / "good.npy", np.array(m, dtype=np.float64), allow_pickle=False)
    (fx / "good-classes.txt").write_text("\n".join(classes) + "\n")
    (fx / "toy.csv").write_text(metric_csv(*TOY3))
    (fx / "toy-asymmetric.csv").write_text(metric_csv(TOY3[0], [[0, 10, 0.01], [9, 0, 1], [0.01, 1, 0]]))

    bad = fx / "metrics"
    bad.mkdir()
    w = lambda name, text: (bad / name).write_text(text)  # noqa: E731
    wb = lambda name, data: (bad / name).write_bytes(data)  # noqa: E731
    w("future-version.json", json.dumps(metric_json(classes, m, version=99)))
    w("version-string.json", json.dumps(metric_json(classes, m, version="1")))
    w("deeply-nested.json", '{"format": "wpgdkit-label-metric", "version": 1, "classes": ["a"], "matrix": '
      + "[" * 100_000 + "]" * 100_000 + "}")
    w("provenance-string.json", json.dumps(metric_json(classes, m, provenance="wordnet")))
    w("provenance-source-int.json", json.dumps(metric_json(classes, m, provenance={"source": 7, "parameters": []})))
    w("provenance-parameters-list.json", json.dumps(metric_json(classes, m, provenance={"source": "file", "parameters": [1, 2]})))
    w("classes-not-list.json", json.dumps(metric_json("cat,dog,truck", m)))
    w("classes-numbers.json", json.dumps(metric_json([1, 2, 3], m)))
    w("matrix-strings.json", json.dumps(metric_json(classes, [["0", "4", "17"], ["4", "0", "12"], ["17", "12", "0"]])))
    w("nan-literal.json", json.dumps(metric_json(classes, [[0, float("nan"), 1], [1, 0, 1], [1, 1, 0]])))
    w("not-an-object.json", "[[0, 1], [1, 0]]")
    w("truncated.json", json.dumps(metric_json(classes, m))[:40])
    w("non-square.csv", ",cat,dog,truck\ncat,0,1,2\ndog,1,0,3\n")
    w("ragged.csv", ",cat,dog\ncat,0,1,5\ndog,1\n")
    w("negative.csv", metric_csv(classes, [[0, -4, 17], [-4, 0, 12], [17, 12, 0]]))
    w("nan.csv", metric_csv(classes, [[0, "nan", 17], ["nan", 0, 12], [17, 12, 0]]))
    w("inf.csv", metric_csv(classes, [[0, "inf", 17], ["inf", 0, 12], [17, 12, 0]]))
    w("overflow-1e400.csv", metric_csv(classes, [[0, "1e400", 17], ["1e400", 0, 12], [17, 12, 0]]))
    w("underscore-1_000.csv", metric_csv(classes, [[0, "1_000", 17], ["1_000", 0, 12], [17, 12, 0]]))
    w("hex-0x10.csv", metric_csv(classes, [[0, "0x10", 17], ["0x10", 0, 12], [17, 12, 0]]))
    w("asymmetric.csv", metric_csv(classes, [[0, 4, 17], [5, 0, 12], [17, 12, 0]]))
    w("nonzero-diagonal.csv", metric_csv(classes, [[1, 4, 17], [4, 0, 12], [17, 12, 0]]))
    w("duplicate-names.csv", metric_csv(["cat", "cat", "dog"], m))
    w("empty-name.csv", metric_csv(["cat", "", "dog"], m))
    w("empty.csv", "")
    w("blank-lines.csv", "\n\n  \n")
    w("header-only.csv", ",cat,dog,truck\n")
    w("no-empty-corner.csv", "x,cat,dog\ncat,0,1\ndog,1,0\n")
    w("row-label-mismatch.csv", ",cat,dog\ndog,0,1\ncat,1,0\n")
    w("one-class.csv", ",cat\ncat,0\n")
    wb("not-utf8.csv", b",caf\xe9,dog\ncaf\xe9,0,1\ndog,1,0\n")
    wb("nul-bytes.csv", b",cat,dog\x00\ncat,0,1\ndog\x00,1,0\n")
    w("huge-class-name.csv", metric_csv(["x" * 131_073, "dog"], [[0, 1], [1, 0]]))
    w("long-class-name.csv", metric_csv(["y" * 20_000, "dog"], [[0, 1], [1, 0]]))
    w("empty.json", "")
    w("empty-matrix.json", json.dumps(metric_json([], [])))
    w("unknown-ext.txt", metric_csv(classes, m))
    np.save(bad / "wrong-ndim.npy", np.zeros((3, 3, 3)), allow_pickle=False)
    np.save(bad / "vector.npy", np.zeros(3), allow_pickle=False)
    np.save(bad / "non-square.npy", np.zeros((3, 2)), allow_pickle=False)
    np.save(bad / "complex.npy", np.zeros((3, 3), dtype=np.complex128), allow_pickle=False)
    np.save(bad / "nan.npy", np.array([[0, np.nan, 1], [np.nan, 0, 1], [1, 1, 0]]), allow_pickle=False)
    obj = np.empty((3, 3), dtype=object)
    obj[:] = 0
    obj[0, 1] = RunsCode(fx / MARKER)
    np.save(bad / "object-dtype.npy", obj, allow_pickle=True)
    wb("truncated.npy", (fx / "good.npy").read_bytes()[:60])
    wb("not-npy.npy", b"hello, this is not an npy file\n")
    (bad / "a-folder.csv").mkdir()
    (bad / "a-folder.json").mkdir()

    # Edge numbers: finite but near the top of a double.
    edge = fx / "edge"
    edge.mkdir()
    (edge / "1e308.csv").write_text(metric_csv(classes, [[0, "1e308", "1.7e308"], ["1e308", 0, "1e308"], ["1.7e308", "1e308", 0]]))
    (edge / "1e200.csv").write_text(metric_csv(classes, [[0, "1e200", "3e200"], ["1e200", 0, "2e200"], ["3e200", "2e200", 0]]))
    (edge / "1e-320.csv").write_text(metric_csv(classes, [[0, "1e-320", "2e-320"], ["1e-320", 0, "1e-320"], ["2e-320", "1e-320", 0]]))


def build_class_lists(fx: Path) -> None:
    cl = fx / "classlists"
    cl.mkdir()
    (cl / "not-utf8.txt").write_bytes(b"caf\xe9\ndog\ntruck\n")
    (cl / "utf16.txt").write_bytes("cat\ndog\ntruck\n".encode("utf-16"))
    (cl / "duplicates.txt").write_text("cat\ncat\ndog\n")
    (cl / "empty.txt").write_text("")
    (cl / "two.txt").write_text("cat\ndog\n")
    (cl / "huge-name.txt").write_text("x" * 131_073 + "\ndog\ntruck\n")
    (cl / "one.txt").write_text("cat\n")
    (cl / "binary.txt").write_bytes(bytes(range(256)) * 4)
    sm = fx / "synsetmaps"
    sm.mkdir()
    (sm / "not-utf8.csv").write_bytes(b"class,synset\ncaf\xe9,cat.n.01\ndog,dog.n.01\n")
    (sm / "unknown-synset.csv").write_text("class,synset\nkitty,nosuch.n.99\npup,dog.n.01\n")
    (sm / "malformed-synset.csv").write_text("class,synset\nkitty,cat\npup,dog.n.01\n")
    (sm / "wrong-header.csv").write_text("name,wnid\nkitty,cat.n.01\npup,dog.n.01\n")
    (sm / "empty.csv").write_text("")
    (sm / "duplicate-class.csv").write_text("class,synset\nkitty,cat.n.01\nkitty,dog.n.01\n")
    (sm / "missing-cell.csv").write_text("class,synset\nkitty\npup,dog.n.01\n")
    (sm / "huge-field.csv").write_text("class,synset\n" + "k" * 131_073 + ",cat.n.01\npup,dog.n.01\n")


# --- IDX (MNIST layout) --------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes(order="C")


def write_mnist(root: Path, *, n_train: int = 40, n_test: int = 20, break_what: str | None = None) -> Path:
    """``root/MNIST/raw`` with gzipped IDX files; ``break_what`` corrupts the training images."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.arange(n_train, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(np.arange(n_test, dtype=np.uint8) % 10),
    }
    images = files["train-images-idx3-ubyte.gz"]
    if break_what == "huge-header":
        # 2**31-1 images of 65535 x 65535 pixels, announced by a 16-byte header and no data.
        files["train-images-idx3-ubyte.gz"] = bytes([0, 0, 8, 3]) + struct.pack(">III", 0x7FFFFFFF, 0xFFFF, 0xFFFF)
    elif break_what == "truncated":
        files["train-images-idx3-ubyte.gz"] = images[: len(images) // 2]
    elif break_what == "bad-magic":
        files["train-images-idx3-ubyte.gz"] = b"\x12\x34\x56\x78" + images[4:]
    elif break_what == "label-count":
        files["train-labels-idx1-ubyte.gz"] = idx_bytes(np.arange(n_train - 3, dtype=np.uint8) % 10)
    elif break_what == "label-range":
        files["train-labels-idx1-ubyte.gz"] = idx_bytes(np.full(n_train, 200, dtype=np.uint8))
    for name, data in files.items():
        blob = gzip.compress(data)
        if break_what == "truncated-gzip" and name.startswith("train-images"):
            blob = blob[: len(blob) // 2]
        (raw / name).write_bytes(blob)
    return root


# --- checkpoints ---------------------------------------------------------------------------


def _flip_byte_in_tensor_record(src: Path, dst: Path) -> None:
    """Copy ``src`` flipping one byte in the middle of the largest tensor record (CRC mismatch)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        records = [i for i in zf.infolist() if "/data/" in i.filename and i.file_size >= 8]
        info = max(records, key=lambda i: i.file_size)
    offset = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[offset + 26: offset + 30])
    start = offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0xFF
    dst.write_bytes(bytes(data))


def build_checkpoints(fx: Path, good: Path) -> dict[str, Path]:
    """Corrupt copies of the valid checkpoint ``good``; name -> path."""
    import torch

    ck = fx / "ckpts"
    ck.mkdir()
    payload = torch.load(good, weights_only=True)

    def variant(name: str, change) -> None:
        p = pickle.loads(pickle.dumps(payload))
        change(p)
        torch.save(p, ck / name)

    def nan_weights(p):
        for k, v in p["model"]["state_dict"].items():
            if k.endswith("weight"):
                v.fill_(float("nan"))

    def inf_bias(p):
        for k, v in p["model"]["state_dict"].items():
            if k.endswith("bias"):
                v.fill_(float("inf"))

    variant("nan-weights.pt", nan_weights)
    variant("inf-bias.pt", inf_bias)
    variant("unknown-method.pt", lambda p: p.update(method="fgsm"))
    variant("version-string.pt", lambda p: p.update(version="2"))
    variant("version-99.pt", lambda p: p.update(version=99))
    variant("format-missing.pt", lambda p: p.pop("format"))
    variant("class-indices-out-of-range.pt", lambda p: p["data"].update(class_indices=[0, 1, 7]))
    variant("data-is-a-string.pt", lambda p: p.update(data="toy"))
    variant("data-is-a-list.pt", lambda p: p.update(data=[1, 2, 3]))
    variant("unknown-dataset.pt", lambda p: p["data"].update(dataset="nosuch"))
    variant("unknown-model.pt", lambda p: p["model"].update(name="nosuch"))
    variant("state-dict-wrong-shape.pt", lambda p: p["model"]["state_dict"].update({"net.1.weight": torch.zeros(5, 7)}))
    variant("eps-negative.pt", lambda p: p["attack"].update(eps=-1.0))
    variant("payload-is-a-list.pt", lambda p: p.clear())
    torch.save([1, 2, 3], ck / "payload-list.pt")
    _flip_byte_in_tensor_record(good, ck / "crc-mismatch.pt")
    raw = good.read_bytes()
    (ck / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (ck / "empty.pt").write_bytes(b"")
    (ck / "a-folder.pt").mkdir()
    (ck / "text.pt").write_text("this is not a checkpoint\n")
    with open(ck / "pickle-runs-code.pt", "wb") as fh:
        pickle.dump({"format": "wpgdkit-checkpoint", "version": 2, "x": RunsCode(fx / MARKER)}, fh)
    torch.save({"format": "wpgdkit-checkpoint", "version": 2, "x": RunsCode(fx / MARKER)}, ck / "torchzip-runs-code.pt")
    return {p.name: p for p in ck.iterdir()}


def build_wordnet_junk(fx: Path) -> None:
    empty = fx / "wordnet-empty"
    empty.mkdir()
    (empty / "README").write_text("not wordnet\n")
    garbage = fx / "wordnet-garbage"
    garbage.mkdir()
    for kind in ("data", "index"):
        for pos in ("noun", "verb", "adj", "adv"):
            (garbage / f"{kind}.{pos}").write_bytes(b"\xff\xfe garbage \x00\n" * 3)
    for pos in ("noun", "verb", "adj", "adv"):
        (garbage / f"{pos}.exc").write_text("junk junk\n")
    (fx / "a-file").write_text("a plain file\n")
    (fx / "a-folder").mkdir()


def hostile_metrics(fx: Path) -> dict[str, Path]:
    """Valid metric files whose class names, provenance and paths are hostile text."""
    folder = fx / "hostile[/bold]"  # two folders: "hostile[" holding "bold]"
    folder.mkdir(parents=True)
    names = HOSTILE_NAMES[:3]
    m = [[0, 1, 2], [1, 0, 1], [2, 1, 0]]
    out = {}
    out["csv-markup-names"] = folder / "markup.csv"
    out["csv-markup-names"].write_text(metric_csv(names, m))
    out["json-esc-names"] = folder / "esc.json"
    out["json-esc-names"].write_text(json.dumps(metric_json(["esc\x1b[31mred", "bell\x07", ":dog:"], m)))
    out["json-hostile-provenance"] = folder / "prov.json"
    out["json-hostile-provenance"].write_text(json.dumps(metric_json(
        ["a", "b", "c"], m,
        provenance={"source": "file", "measure": "[/x]\x1b[2J", "dataset": "[bold]ds",
                    "command": "wpgdkit [/bold] \x1b]0;title\x07", "parameters": {"path": "[/x]"}})))
    out["path-with-markup"] = folder / "[red]plain[/red].csv"  # a folder "[red]plain[" holding "red].csv"
    out["path-with-markup"].parent.mkdir()
    out["path-with-markup"].write_text(metric_csv(["a", "b", "c"], m))
    out["csv-bom"] = folder / "bom.csv"
    out["csv-bom"].write_bytes(b"\xef\xbb\xbf" + metric_csv(["a", "b", "c"], m).encode())
    out["csv-crlf"] = folder / "crlf.csv"
    out["csv-crlf"].write_bytes(metric_csv(["a", "b", "c"], m).replace("\n", "\r\n").encode())
    return out


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every entry under ``roots``: kind, size and modification time."""
    state: dict[str, tuple] = {}
    for root in roots:
        if not root.exists():
            state[str(root)] = ("absent",)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                state[os.path.join(dirpath, name)] = ("dir",)
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                state[path] = ("file", st.st_size, st.st_mtime_ns)
    return state


def diff(before: dict, after: dict) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    out = []
    if added:
        out.append(f"new: {added[:5]}")
    if removed:
        out.append(f"removed: {removed[:5]}")
    if changed:
        out.append(f"changed: {changed[:5]}")
    return out


def copy_into(src: Path, folder: Path) -> Path:
    dst = folder / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    return dst

