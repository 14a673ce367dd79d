"""Writing figures (wpgdkit.figures): the one save_figure, its suffix check, matplotlib on Agg."""

from __future__ import annotations

import pytest

from wpgdkit.errors import WpgdkitError
from wpgdkit.figures import PLOT_SUFFIXES, agg_pyplot, check_plot_suffix, save_figure

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF", ".svg": b"<?xml"}


def test_suffixes_and_formats():
    assert PLOT_SUFFIXES == (".png", ".pdf", ".svg")
    assert [check_plot_suffix(f"a/b{s}") for s in PLOT_SUFFIXES] == ["png", "pdf", "svg"]
    assert check_plot_suffix("FIG.PNG") == "png"


@pytest.mark.parametrize("name", ["fig.gif", "fig", "fig.png.txt"])
def test_other_suffixes_are_refused(name):
    with pytest.raises(WpgdkitError, match=rf"plot file must end in \.png, \.pdf or \.svg, got {name}"):
        check_plot_suffix(name)


@pytest.mark.parametrize("suffix", PLOT_SUFFIXES)
def test_save_figure_writes_the_format_of_the_suffix_atomically(tmp_path, suffix):
    plt = agg_pyplot()
    fig, ax = plt.subplots(figsize=(1, 1))
    try:
        ax.plot([0, 1], [0, 1])
        path = save_figure(fig, tmp_path / "sub" / f"f{suffix}", dpi=50)
    finally:
        plt.close(fig)
    assert path == tmp_path / "sub" / f"f{suffix}"
    assert path.read_bytes()[: len(MAGIC[suffix])] == MAGIC[suffix]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_dpi_sets_the_pixel_size(tmp_path):
    plt = agg_pyplot()
    fig = plt.figure(figsize=(2, 1))
    try:
        small = save_figure(fig, tmp_path / "small.png", dpi=50)
        large = save_figure(fig, tmp_path / "large.png", dpi=100)
    finally:
        plt.close(fig)
    from matplotlib.image import imread

    assert imread(small).shape[:2] == (50, 100)
    assert imread(large).shape[:2] == (100, 200)


def test_bad_suffix_writes_nothing(tmp_path):
    plt = agg_pyplot()
    fig = plt.figure()
    try:
        with pytest.raises(WpgdkitError, match="got f.jpg"):
            save_figure(fig, tmp_path / "f.jpg")
    finally:
        plt.close(fig)
    assert list(tmp_path.iterdir()) == []


def test_labelmetric_plot_keeps_the_old_names():
    import wpgdkit.figures as figures
    import wpgdkit.labelmetric.plot as plot

    for name in ("agg_pyplot", "check_plot_suffix", "save_figure", "PLOT_SUFFIXES"):
        assert getattr(plot, name) is getattr(figures, name)


def test_agg_backend():
    import matplotlib

    agg_pyplot()
    assert matplotlib.get_backend().lower() == "agg"
