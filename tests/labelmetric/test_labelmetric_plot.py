"""Heatmap files (wpgdkit.labelmetric.plot)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.plot import plot_heatmap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def random_metric(k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.random((k, k))
    m = m + m.T
    np.fill_diagonal(m, 0)
    return m


@pytest.mark.parametrize("k", [3, 60])
def test_png_heatmap(tmp_path, k):
    path = tmp_path / f"heat{k}.png"
    out = plot_heatmap(random_metric(k), [f"class {i}" for i in range(k)], path, title="t", colorbar_label="cost")
    assert out == path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data.endswith(b"IEND\xaeB`\x82")
    width, height = png_size(data)
    assert width > 100 and height > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left


def test_bigger_k_gives_a_bigger_picture(tmp_path):
    small = png_size(plot_heatmap(random_metric(3), list("abc"), tmp_path / "s.png").read_bytes())
    large = png_size(plot_heatmap(random_metric(30), [str(i) for i in range(30)], tmp_path / "l.png").read_bytes())
    assert large[0] > small[0] and large[1] > small[1]


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<svg"), (".pdf", b"%PDF"), (".PNG", PNG_SIGNATURE)])
def test_other_formats(tmp_path, suffix, magic):
    path = tmp_path / f"heat{suffix}"
    plot_heatmap(random_metric(4), list("abcd"), path)
    data = path.read_bytes()
    assert magic in data[:2000]


@pytest.mark.parametrize("name", ["heat.jpg", "heat", "heat.png.txt"])
def test_bad_extension_writes_nothing(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(WpgdkitError, match=r"\.png, \.pdf or \.svg"):
        plot_heatmap(random_metric(3), list("abc"), path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_file_replaced(tmp_path):
    path = tmp_path / "heat.png"
    path.write_bytes(b"old")
    plot_heatmap(random_metric(3), list("abc"), path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
