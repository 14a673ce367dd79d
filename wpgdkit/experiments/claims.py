"""The paper's claims, each with a verdict computed from ``reproduce`` results: shows, does not show, within noise.

:func:`claims_table` reads the ``results.json`` of finished experiments
(``gap-correlation``, ``p-sweep`` for any metrics and seeds, ``imbalance``,
``entropy``) and states, per claim and run, the measured effect, its standard
error and a verdict from :func:`verdict`. Nothing is tuned here: each claim is
written down once, with the direction the paper reports, before any number is
read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wpgdkit.errors import WpgdkitError
from wpgdkit.experiments.prose import error_difference, trend
from wpgdkit.experiments.runner import md_table

__all__ = ["SHOWS", "DOES_NOT_SHOW", "WITHIN_NOISE", "Finding", "verdict", "read_results", "findings",
           "claims_table", "seed_table"]

SHOWS, DOES_NOT_SHOW, WITHIN_NOISE = "shows", "does not show", "within noise"
#: An effect counts when it is more than this many standard errors from zero.
Z = 2.0


def verdict(effect: float | None, se: float | None, *, expected: int) -> str:
    """The verdict on one measured effect.

    Parameters
    ----------
    effect : float
        The measured effect (e.g. ``NE_WPGD − NE_PGD``).
    se : float
        Its standard error.
    expected : {+1, -1}, keyword-only
        The sign of the effect the paper reports.

    Returns
    -------
    verdict : str
        :data:`SHOWS` when ``expected · effect > 2 se``, :data:`DOES_NOT_SHOW`
        when ``expected · effect < −2 se`` (the opposite effect, beyond noise),
        else :data:`WITHIN_NOISE`; ``"not measured"`` without a value.
    """
    if expected not in (1, -1):
        raise WpgdkitError(f"expected must be +1 or -1, got {expected!r}")
    if effect is None or se is None or not (math.isfinite(effect) and math.isfinite(se)):
        return "not measured"
    if expected * effect > Z * se:
        return SHOWS
    if expected * effect < -Z * se:
        return DOES_NOT_SHOW
    return WITHIN_NOISE


def pvalue_verdict(rho: float | None, pvalue: float | None, *, expected: int, alpha: float = 0.05) -> str:
    """A correlation's verdict: its sign against the paper's, significant at ``alpha`` (two-sided) or not."""
    if rho is None or pvalue is None or not (math.isfinite(rho) and math.isfinite(pvalue)):
        return "not measured"
    if pvalue >= alpha:
        return WITHIN_NOISE
    return SHOWS if rho * expected > 0 else DOES_NOT_SHOW


@dataclass(frozen=True)
class Finding:
    """One claim measured on one run: what, where, how much, and the verdict."""

    claim: str
    source: str
    run: str
    measured: str
    verdict: str


def read_results(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The ``results.json`` documents of report folders, each with ``folder`` (the folder's name) added."""
    documents = []
    for folder in folders:
        path = Path(folder) / "results.json"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise WpgdkitError(f"cannot read {path}: {error}") from None
        document["folder"] = Path(folder).name
        documents.append(document)
    return documents


def _metric_name(document: Mapping[str, Any]) -> str | None:
    """The metric file a run used: the flag, the results, or the ``--metric`` of its recorded commands."""
    import re

    named = (document.get("custom") or {}).get("metric") or document["results"].get("metric")
    if named:
        return named
    for command in document.get("commands") or []:
        found = re.search(r"--metric (\S+)", command)
        if found:
            return Path(found.group(1)).name
    return None


def _run_name(document: Mapping[str, Any]) -> str:
    metric = _metric_name(document)
    return f"{document['folder']} ({metric + ', ' if metric else ''}seed {document.get('seed')})"


def findings(documents: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every claim the documents can speak to, in the paper's order."""
    out: list[Finding] = []
    for document in documents:
        kind = document["experiment"]
        run = _run_name(document)
        results = document["results"]
        if kind == "gap-correlation":
            out += _gap_findings(results, run)
        elif kind == "p-sweep":
            out += _sweep_findings(results, run)
        elif kind == "imbalance":
            out += _imbalance_findings(results, run)
        elif kind == "entropy":
            out += _entropy_findings(results, run)
    return out


def _gap_findings(results: Mapping[str, Any], run: str) -> list[Finding]:
    found = []
    for metric, c in results["correlation"].items():
        p = c.get("mantel_pvalue", c.get("pearson_pvalue"))
        found.append(Finding("ρ(G, C) < 0: PGD's lost clean accuracy sits on close classes", "Table 1", run,
                             f"{metric}: ρ = {c['pearson']:+.3f}, Mantel p = {p:.2g}",
                             pvalue_verdict(c["pearson"], p, expected=-1)))
    return found


def _sweep_findings(results: Mapping[str, Any], run: str) -> list[Finding]:
    rows = results["rows"]
    n = results["test_points"]
    pgd, wpgd = rows[0], rows[1:]
    found = []
    for r in wpgd:
        d, se = error_difference(r["natural_error"], pgd["natural_error"], n)
        found.append(Finding("WPGD has lower clean error than PGD", "Figs. 12–13", run,
                             f"p = {r['p']:g}: NE {r['natural_error']:.2f} vs {pgd['natural_error']:.2f} %, "
                             f"Δ = {d:+.2f} ± {se:.2f}", verdict(d, se, expected=-1)))
    for attack, label in (("wpgd", "the WPGD attack"), ("worst-cost", "worst-cost")):
        if attack not in (pgd.get("attacks") or {}):
            continue
        for r in wpgd:
            a = r["attacks"][attack]
            found.append(Finding(f"S − S_PGD < 0 under {label}", "Table 3", run,
                                 f"p = {r['p']:g}: {a['score_delta']:+.4f} ± {a['score_delta_se']:.4f}",
                                 verdict(a["score_delta"], a["score_delta_se"], expected=-1)))
        deltas = [r["attacks"][attack]["score_delta"] for r in rows]
        found.append(Finding(f"S − S_PGD falls as p rises, under {label}", "Table 3", run,
                             "p = 0, " + ", ".join(f"{r['p']:g}" for r in wpgd) + ": "
                             + ", ".join(f"{v:+.4f}" for v in deltas) + f" ({trend(deltas)})",
                             _trend_verdict(deltas, expected=-1)))
        severity = [r["attacks"][attack]["severity"] for r in rows]
        found.append(Finding(f"the adversary's mistakes reach closer classes as p rises (severity under {label})",
                             "Sec. 5.4", run, ", ".join(f"{v:.3f}" for v in severity) + f" ({trend(severity)})",
                             _trend_verdict(severity, expected=-1)))
    errors = [r["adversarial_error"] for r in rows]
    found.append(Finding("AE under PGD rises with p", "Table 3 (AE column)", run,
                         ", ".join(f"{v:.2f}" for v in errors) + f" % ({trend(errors)})",
                         _trend_verdict(errors, expected=+1)))
    return found


def _trend_verdict(values: Sequence[float | None], *, expected: int) -> str:
    """A trend over p: monotone in the paper's direction shows, monotone against it does not, else within noise."""
    direction = trend(values)
    if direction == "is undefined":
        return "not measured"
    if direction == ("falls" if expected < 0 else "rises"):
        return SHOWS
    if direction in ("falls", "rises"):
        return DOES_NOT_SHOW
    return "not monotone"


def _imbalance_findings(results: Mapping[str, Any], run: str) -> list[Finding]:
    rows = results["rows"]

    def cost(pair: str, imbalance: float | None) -> tuple[float, float]:
        """PGD's clean-error cost over CE on one problem, and its SE (two binomial errors)."""
        ce, pgd = (next(r for r in rows if r["pair"] == pair and r["imbalance"] == imbalance and r["method"] == m)
                   for m in ("ce", "pgd"))
        return error_difference(pgd["natural_error"], ce["natural_error"], pgd.get("test_points") or 1)

    ratio = next((r["imbalance"] for r in rows if r["imbalance"] is not None), None)
    (sim, se_sim), (dis, se_dis) = cost("similar", None), cost("dissimilar", None)
    (sim_imb, se_imb) = cost("similar", ratio)
    return [
        Finding("PGD costs more clean accuracy on a similar pair than on a dissimilar one", "Sec. 3.2, Fig. 5", run,
                f"NE_PGD − NE_CE: similar {sim:+.2f} ± {se_sim:.2f}, dissimilar {dis:+.2f} ± {se_dis:.2f}",
                verdict(sim - dis, math.hypot(se_sim, se_dis), expected=+1)),
        Finding(f"imbalance (ratio {ratio:g}) widens PGD's cost on the similar pair", "Sec. 3.2, Fig. 5", run,
                f"similar pair: balanced {sim:+.2f} ± {se_sim:.2f}, imbalanced {sim_imb:+.2f} ± {se_imb:.2f}",
                verdict(sim_imb - sim, math.hypot(se_sim, se_imb), expected=+1)),
    ]


def _entropy_findings(results: Mapping[str, Any], run: str) -> list[Finding]:
    by_method = {r.get("method"): r for r in results.values()}
    ce, pgd = by_method.get("ce"), by_method.get("pgd")
    if ce is None or pgd is None:
        return []
    d = pgd["natural_mean"] - ce["natural_mean"]
    se = math.hypot(ce.get("natural_mean_se") or math.nan, pgd.get("natural_mean_se") or math.nan)
    return [Finding("PGD's predictions have higher entropy than CE's", "Sec. 3.3, Fig. 7", run,
                    f"mean H: PGD {pgd['natural_mean']:.3f}, CE {ce['natural_mean']:.3f} nats, Δ = {d:+.3f} ± {se:.3f}",
                    verdict(d, se, expected=+1))]


def seed_table(folders: Iterable[str | Path]) -> str:
    """The p-sweeps of several seeds side by side: per metric and p, each seed's NE, AE, S − S_PGD and severity.

    The columns ``spread`` give ``max − min`` over the seeds: the run-to-run
    noise that the standard errors over test points leave out.
    """
    sweeps: dict[str, dict[int, Mapping[str, Any]]] = {}
    for document in read_results(folders):
        if document["experiment"] == "p-sweep":
            metric = _metric_name(document) or "default"
            sweeps.setdefault(metric, {})[document["seed"]] = document["results"]
    rows = []
    for metric, by_seed in sweeps.items():
        seeds = sorted(by_seed)
        for i, first in enumerate(by_seed[seeds[0]]["rows"]):
            per_seed = [by_seed[seed]["rows"][i] for seed in seeds]
            cells = [metric, f"{first['p']:g}"]
            for pick, spec in ((lambda r: r["natural_error"], ".2f"), (lambda r: r["adversarial_error"], ".2f"),
                               (lambda r: r["attacks"]["wpgd"]["score_delta"], "+.4f"),
                               (lambda r: r["attacks"]["worst-cost"]["score_delta"], "+.4f"),
                               (lambda r: r["attacks"]["wpgd"]["severity"], ".3f")):
                values = [pick(r) for r in per_seed]
                cells.append(" / ".join(format(v, spec) for v in values))
                cells.append(format(max(values) - min(values), spec.lstrip("+")))
            rows.append(cells)
    seeds_label = "seeds " + ", ".join(str(s) for s in sorted({s for b in sweeps.values() for s in b}))
    return md_table(["metric", "p", f"NE % ({seeds_label})", "spread", "AE % (PGD-20)", "spread",
                     "S − S_PGD (WPGD attack)", "spread", "S − S_PGD (worst-cost)", "spread",
                     "severity (WPGD attack)", "spread"], rows)


def claims_table(folders: Iterable[str | Path], *, link_base: str | None = None) -> str:
    """The claims table (Markdown) of the report folders: claim, paper, run, measured, verdict.

    ``link_base``: when given, each run links to ``<link_base>/<folder>/report.md``.
    """
    rows = []
    for f in findings(read_results(folders)):
        run = f.run
        if link_base is not None:
            folder = run.split(" ", 1)[0]
            run = f"[{folder}]({link_base}/{folder}/report.md) {run.split(' ', 1)[1]}"
        rows.append([f.claim, f.source, run, f.measured, f"**{f.verdict}**"])
    return md_table(["claim", "paper", "run", "measured (± 1 SE)", "verdict"], rows)


if __name__ == "__main__":  # pragma: no cover - ``python -m wpgdkit.experiments.claims FOLDER...``
    import sys

    print(claims_table(sys.argv[1:]), end="")
