"""Write claims.md and seeds.md from the report folders next to this file (``python docs/results/cpu/make_tables.py``)."""

from pathlib import Path

from wpgdkit.experiments import claims

HERE = Path(__file__).resolve().parent
sweeps = sorted(p.name for p in HERE.glob("p-sweep-*") if (p / "results.json").exists())
folders = [HERE / name for name in ["gap-correlation", *sweeps, "imbalance", "entropy"] if (HERE / name).is_dir()]
(HERE / "claims.md").write_text(
    "# The paper's claims at `--scale cpu`, with verdicts\n\n"
    "Written by `docs/results/cpu/make_tables.py` (`wpgdkit.experiments.claims`) from each folder's "
    "`results.json` (see [README](README.md)). ± one standard error over the 10,000 test points (binomial for "
    "rates, from the confusion counts for S; for S − S_PGD the two variances added); seeds are not in these "
    "errors — [seeds.md](seeds.md) shows the spread between them. Verdict: **shows** beyond 2 SE in the paper's "
    "direction, **does not show** beyond 2 SE against it, **within noise** otherwise; a trend over p shows only "
    "when strictly monotone in the paper's direction.\n\n" + claims.claims_table(folders, link_base="."))
(HERE / "seeds.md").write_text(
    "# The p-sweeps of two seeds side by side\n\nEach cell: seed 0 / seed 1; spread = max − min "
    "(`wpgdkit.experiments.claims.seed_table`).\n\n" + claims.seed_table([HERE / name for name in sweeps]))
