"""The words of the experiments' reports: headings, explanations and readings, apart from the computation.

The experiment modules compute numbers and call these functions; each
function here turns numbers into Markdown and decides nothing else. Every
reading is computed from the numbers it is given and says so when the paper's
effect does not show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wpgdkit import __version__
from wpgdkit.experiments.runner import fmt as _fmt_value
from wpgdkit.experiments.runner import md_table

__all__ = [
    "COMMANDS_HEADING",
    "scale_line",
    "setting_line",
    "commands_section",
    "error_difference",
    "gap_report",
    "gap_reading",
    "sweep_report",
    "sweep_reading",
    "attack_table",
    "trend",
    "imbalance_report",
    "imbalance_reading",
    "entropy_report",
    "demo_reading",
    "demo_report",
    "demo_verdict",
]

COMMANDS_HEADING = "## Commands"


# --- every reproduce report ----------------------------------------------------------------


def scale_line(scale: str, custom: Mapping[str, Any]) -> str:
    """``Scale `quick``` or ``Scale `quick` (custom: epochs=1, limit=240)`` when flags overrode the preset."""
    if not custom:
        return f"Scale `{scale}`"
    shown = ", ".join(f"{key}={_show(value)}" for key, value in custom.items())
    return f"Scale `{scale}` (custom: {shown})"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def setting_line(s: Mapping[str, Any], scale: str, custom: Mapping[str, Any], seed: int) -> str:
    """The one line under a report's title: what was trained and audited."""
    from wpgdkit.attacks import format_budget

    eps = format_budget(s["eps"], None if s["dataset"] == "toy" else (0.0, 1.0))
    return (f"{scale_line(scale, custom)}: {s['dataset']}, {s['model']}, {s['epochs']} epoch(s) on "
            f"{s['limit'] or 'all'} training points, {s['norm']} ε = {eps}, {s['steps']} inner steps; audit: PGD-"
            f"{s['eval_steps']} on {s['test_limit'] or 'all'} test points; seed {seed}. wpgdkit {__version__}.\n")


def commands_section(commands: Sequence[str], experiment_command: str) -> str:
    """The report's last section: each command once, in order, then the whole experiment's."""
    text = f"\n{COMMANDS_HEADING}\n\nEach number above comes from these commands (run from the same folder):\n\n```sh\n"
    text += "\n".join(dict.fromkeys(commands)) + "\n```\n"
    return text + f"\nThe whole experiment: `{experiment_command}`\n"


def _reading(lines: Sequence[str]) -> str:
    return "\n**Reading.**\n\n" + "\n".join(lines) + "\n" if lines else ""


# --- gap-correlation -------------------------------------------------------------------------


def gap_report(dataset: str, setting: str, models: Sequence[Mapping[str, Any]], correlations: Mapping[str, dict],
               gap: np.ndarray | None, plot: str | None, *, cost_threshold: float | None = None) -> str:
    """The gap-correlation report: models under each attack, ρ per metric, the gap's size, the reading, the picture.

    ``models``: per model ``name``, ``method`` and the measures of
    :func:`wpgdkit.experiments.reproduce.model_measures`, with ``attacks``
    (:func:`~wpgdkit.experiments.reproduce.attack_measures` per attack) when audited by several.
    """
    text = f"# Accuracy gap and the label metric ({dataset})\n\n" + setting
    text += "\nThe paper's Table 1 and Figs. 1–4: G = |C_PGD − C_CE| between the row-normalised natural confusion "
    text += ("matrices, correlated with the metric over the off-diagonal pairs. Negative ρ: PGD's lost accuracy sits "
             "on close classes.\n\n")
    text += md_table(["model", "method", "NE %", "hdist@1 (clean)"],
                     [[m["name"], m["method"], _pm(m["natural_error"], m.get("natural_error_se")),
                       _pm(m.get("hierarchical_distance_at_1_natural"),
                           m.get("hierarchical_distance_at_1_natural_se"), ".3f")] for m in models])
    if any(m.get("attacks") for m in models):
        text += "\n" + attack_table([(m["name"], m["attacks"]) for m in models], reference="PGD",
                                     cost_threshold=cost_threshold)
    text += "\n" + md_table(["metric", "ρ Pearson", "p-value", "Mantel p", "ρ Spearman", "pairs"],
                            [[n, _fmt_value(c["pearson"], "+.3f"), _fmt_value(c["pearson_pvalue"], ".2g"),
                              _fmt_value(c.get("mantel_pvalue"), ".2g"), _fmt_value(c["spearman"], "+.3f"),
                              str(c["pairs"])] for n, c in correlations.items()])
    text += ("\nThe textbook p-value treats the K(K−1) pairs as independent; the Mantel test relabels the classes "
             "instead (9,999 random relabellings, or all K! for K ≤ 7) and is the one to read.\n")
    if gap is not None and len(gap) >= 3:
        k = len(gap)
        off = gap[~np.eye(k, dtype=bool)]
        text += (f"\nThe gap's largest off-diagonal entry is {off.max():.3f}; the mean off-diagonal gap is "
                 f"{off.mean():.4f}, and the diagonal (per-class accuracy change) averages "
                 f"{float(np.diag(gap).mean()):.3f}.\n")
        text += gap_reading(correlations)
    if plot:
        text += f"\n![accuracy gap beside the metric]({plot})\n"
    return text


def _pm(value: float | None, se: float | None, spec: str = ".2f") -> str:
    """``value ± se`` (or the value alone without a standard error, an en dash without a value)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if se is None or not math.isfinite(se):
        return format(value, spec)
    return f"{value:{spec}} ± {se:{spec.lstrip('+')}}"


#: How the attacks' names read in tables.
ATTACK_LABELS = {"pgd": "PGD", "wpgd": "WPGD (p = 1)", "apgd-ce": "APGD-CE", "worst-cost": "worst-cost"}


def attack_table(models: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]], *, reference: str,
                 cost_threshold: float | None = None) -> str:
    """One row per model and attack: AE, S, S − S_ref, severity, cost-sensitive robust error, hdist@1, with SEs."""
    rows = []
    for name, attacks in models:
        for attack, a in attacks.items():
            rows.append([name, ATTACK_LABELS.get(attack, attack), _pm(a["adversarial_error"], a["adversarial_error_se"]),
                         _pm(a["score"], a["score_se"], ".4f"), _pm(a["score_delta"], a["score_delta_se"], "+.4f"),
                         _fmt_value(a["severity"], ".3f"),
                         _pm(a["cost_sensitive_robust_error"], a["cost_sensitive_robust_error_se"]),
                         _pm(a["hierarchical_distance_at_1"], a["hierarchical_distance_at_1_se"], ".3f")])
    tau = f"τ = {cost_threshold:g}" if cost_threshold is not None else "τ"
    text = md_table(["model", "attack", "AE %", "S (eq. 7)", f"S − S_{reference}", "severity",
                     f"CSRE % ({tau})", "hdist@1"], rows)
    return text + (f"\nAE: adversarial error. S: eq. 7, class-balanced (every adversarial prediction, correct ones at "
                   f"cost 0). Severity: mean cost of the adversarial mistakes alone. CSRE: cost-sensitive robust error "
                   f"(Zhang & Evans 2019), the share of points of a class with a costly mistake (cost ≥ τ) sent to one. "
                   f"hdist@1: mean cost of the adversarial prediction over all points (Bertinetto et al. 2020). "
                   f"± one standard error over the test points: binomial for rates, from the confusion counts for S "
                   f"and hdist@1; S − S_{reference} adds the two variances (same test points, so conservative). "
                   f"Seeds are not in these errors.\n")


def gap_reading(correlations: Mapping[str, dict]) -> str:
    lines = []
    for name, c in correlations.items():
        rho = c["pearson"]
        pval = c["mantel_pvalue"] if c.get("mantel_pvalue") is not None else c["pearson_pvalue"]
        test = "Mantel " if c.get("mantel_pvalue") is not None else ""
        if rho is None or (isinstance(rho, float) and math.isnan(rho)):
            lines.append(f"- {name}: ρ is undefined (a constant gap or metric).")
            continue
        sign = "negative, as the paper reports" if rho < 0 else "positive, unlike the paper's Table 1"
        strength = "significant at 5 %" if pval < 0.05 else "not significant at 5 %"
        lines.append(f"- {name}: Pearson ρ = {rho:+.3f} is {sign} ({strength}, {test}p = {pval:.2g}).")
    return _reading(lines)


# --- p-sweep ---------------------------------------------------------------------------------


def error_difference(error: float, reference: float, n: int) -> tuple[float, float]:
    """``(d, se)`` in percentage points: ``error − reference`` for two error rates (in %) on the same ``n`` points,
    and its standard error ``sqrt(p1(1−p1)/n + p2(1−p2)/n)``."""
    p1, p2 = reference / 100.0, error / 100.0
    se = 100.0 * math.sqrt(max(p1 * (1 - p1), 0.0) / n + max(p2 * (1 - p2), 0.0) / n)
    return error - reference, se


def _against_pgd(error: float, reference: float, n: int) -> str:
    d, se = error_difference(error, reference, n)
    if abs(d) > 2 * se:
        return f"{'lower' if d < 0 else 'higher'} than PGD by {abs(d):.2f} ± {se:.2f} points (beyond 2 SE)"
    return f"within 2 SE of PGD ({d:+.2f} ± {se:.2f} points)"


def sweep_report(dataset: str, setting: str, metric_name: str, eval_steps: int, results: Sequence[Mapping[str, Any]],
                 n: int, plot: str, *, cost_threshold: float | None = None) -> str:
    """The p-sweep report: clean measures, every attack's measures per model, the reading, the picture.

    ``results``: one row per model (PGD first, as p = 0), as written to ``results.json``.
    """
    text = f"# Accuracy and robustness against p ({dataset})\n\n" + setting
    text += (f"\nMetric: `{metric_name}`. PGD is p = 0. Every model is audited on the same {n} test points by each "
             f"attack below, all at the training budget with {eval_steps} steps; WPGD (p = 1) is the attacker that "
             "knows the metric, as in the paper's Table 3, and worst-cost (targeted attacks towards the costliest "
             "classes first) is the audit's estimate of the worst case.\n\n")
    text += md_table(["model", "p", "NE %", "hdist@1 (clean)"],
                     [[r["name"], f"{r['p']:g}", _pm(r["natural_error"], r.get("natural_error_se")),
                       _pm(r.get("hierarchical_distance_at_1_natural"),
                           r.get("hierarchical_distance_at_1_natural_se"), ".3f")] for r in results])
    if all(r.get("attacks") for r in results):
        text += "\n" + attack_table([(f"{r['name']} (p = {r['p']:g})", r["attacks"]) for r in results],
                                     reference="PGD", cost_threshold=cost_threshold)
    text += sweep_reading(results, n)
    return text + f"\n![accuracy/robustness trade-off against p]({plot})\n"


def trend(values: Sequence[float | None]) -> str:
    """``"falls"``, ``"rises"`` (strictly monotone) or ``"is not monotone"``; ``"is undefined"`` with a missing value."""
    if any(v is None or not math.isfinite(v) for v in values):
        return "is undefined"
    if all(b < a for a, b in zip(values, values[1:])):
        return "falls"
    if all(b > a for a, b in zip(values, values[1:])):
        return "rises"
    return "is not monotone"


def sweep_reading(rows: Sequence[Mapping[str, Any]], n: int) -> str:
    """The p-sweep's reading: each p against PGD (the row with p = 0), errors compared with their standard errors.

    Parameters
    ----------
    rows : sequence of dict
        ``p``, ``natural_error``, ``adversarial_error`` (%), ``score_delta`` and
        ``severity_wpgd_attack`` (may be None); the first row is PGD.
    n : int
        Test points every error rate was measured on.
    """
    pgd, wpgd = rows[0], [r for r in rows if r["p"] > 0]
    p_list = ", ".join(f"{r['p']:g}" for r in wpgd)
    lines = []
    deltas = [r.get("score_delta") for r in wpgd]
    if deltas and all(d is not None for d in deltas):
        falling = all(b < a for a, b in zip(deltas, deltas[1:]))
        lines.append(f"- S − S_PGD under the WPGD attack (the paper's Table 3) for p = {p_list}: "
                     f"{', '.join(f'{d:+.4f}' for d in deltas)}; "
                     + ("it falls as p rises, as in the paper's Table 3." if falling else
                        "it does not fall monotonically as p rises, unlike the paper's Table 3."))
    for key, name in (("natural_error", "NE"), ("adversarial_error", "AE under PGD")):
        parts = [f"p = {r['p']:g}: {r[key]:.2f} %, {_against_pgd(r[key], pgd[key], n)}" for r in wpgd]
        lines.append(f"- {name} against PGD's {pgd[key]:.2f} % (n = {n} test points, SE of each difference "
                     f"from the two binomial errors): " + "; ".join(parts) + ".")
    severity = [r.get("severity_wpgd_attack") for r in rows]
    if all(v is not None for v in severity) and not all(r.get("attacks") for r in rows):
        sev_list = ", ".join(f"{v:.3f}" for v in severity)
        lines.append(f"- Mean cost of the adversary's mistakes (WPGD attack): {sev_list} (PGD, then p = {p_list}).")
    lines += _attack_lines(rows, p_list)
    return _reading(lines)


def _attack_lines(rows: Sequence[Mapping[str, Any]], p_list: str) -> list[str]:
    """Per attack: does S − S_PGD (eq. 7) or the severity of the mistakes move with p; and any attack weaker than PGD."""
    if not all(r.get("attacks") for r in rows):
        return []
    lines = []
    for attack in rows[0]["attacks"]:
        label = ATTACK_LABELS.get(attack, attack)
        deltas = [r["attacks"][attack]["score_delta"] for r in rows[1:]]
        severity = [r["attacks"][attack]["severity"] for r in rows]
        if any(v is None for v in deltas + severity):
            continue
        ses = [r["attacks"][attack]["score_delta_se"] for r in rows[1:]]
        shown = ", ".join(_pm(d, e, "+.4f") for d, e in zip(deltas, ses))
        lines.append(f"- {label}: S − S_PGD for p = {p_list}: {shown} — it {trend(deltas)} as p rises; the severity "
                     f"of the mistakes (PGD, then p = {p_list}): {', '.join(f'{v:.3f}' for v in severity)} — it "
                     f"{trend(severity)}.")
    weaker = [f"{r['name']} ({ATTACK_LABELS.get(a, a)} {r['attacks'][a]['adversarial_error']:.2f} % < PGD "
              f"{r['attacks']['pgd']['adversarial_error']:.2f} %)"
              for r in rows for a in ("apgd-ce", "worst-cost")
              if a in r["attacks"] and "pgd" in r["attacks"]
              and r["attacks"][a]["adversarial_error"] < r["attacks"]["pgd"]["adversarial_error"]]
    if weaker:
        lines.append("- Attacks that found fewer errors than PGD-20: " + "; ".join(weaker) + ".")
    return lines


# --- imbalance -------------------------------------------------------------------------------


def imbalance_report(dataset: str, setting: str, similar: Sequence[str], dissimilar: Sequence[str], ratio: float,
                     rows: Sequence[Mapping[str, Any]], plot: str) -> str:
    text = f"# Class imbalance and similar classes ({dataset})\n\n" + setting
    text += (f"\nThe paper's Sec. 3.2 and Fig. 5: two 2-class problems, a similar pair "
             f"({' vs '.join(similar)}) and a dissimilar one ({' vs '.join(dissimilar)}), balanced and with the second "
             f"class down-sampled to {ratio:g} of its size; CE vs PGD. Validation error on a 20 % held-out split per "
             "epoch; NE/AE and per-class NE on the test points of the pair.\n\n")
    text += md_table(["pair", "data", "method", "final val error %", "test NE %", "per-class NE %", "test AE %"], [
        [r["pair"] + " (" + " vs ".join(r["classes"]) + ")",
         "balanced" if r["imbalance"] is None else f"ratio {r['imbalance']:g}", r["method"],
         _fmt_value(r["val_error_per_epoch"][-1] if r["val_error_per_epoch"] else None),
         _fmt_value(r["natural_error"]), " / ".join(_fmt_value(v, ".1f") for v in r["per_class_natural_error"]),
         _fmt_value(r["adversarial_error"])] for r in rows])
    text += imbalance_reading(rows, ratio)
    return text + f"\n![validation error per epoch]({plot})\n"


def imbalance_reading(rows: Sequence[Mapping[str, Any]], ratio: float) -> str:
    def final(pair, imbalance, method):
        r = next(r for r in rows if r["pair"] == pair and r["imbalance"] == imbalance and r["method"] == method)
        return r["natural_error"]

    lines = []
    for pair in ("similar", "dissimilar"):
        for imbalance in (None, ratio):
            cost = final(pair, imbalance, "pgd") - final(pair, imbalance, "ce")
            lines.append(f"- {pair} pair, {'balanced' if imbalance is None else f'ratio {imbalance:g}'}: PGD's test NE "
                         f"is {cost:+.2f} points from CE's.")
    sim = final("similar", None, "pgd") - final("similar", None, "ce")
    dis = final("dissimilar", None, "pgd") - final("dissimilar", None, "ce")
    lines.append("- " + ("PGD costs more clean accuracy on the similar pair than on the dissimilar one, as in Fig. 5."
                         if sim > dis else
                         "PGD does not cost more clean accuracy on the similar pair than on the dissimilar one here, "
                         "unlike Fig. 5."))
    sim_imb = final("similar", ratio, "pgd") - final("similar", ratio, "ce")
    lines.append("- " + ("Imbalance widens PGD's cost on the similar pair, as the paper reports."
                         if sim_imb > sim else "Imbalance does not widen PGD's cost on the similar pair here."))
    return _reading(lines)


# --- entropy ---------------------------------------------------------------------------------


def entropy_report(dataset: str, setting: str, k: int, rows: Sequence[Sequence[str]], ce_mean: float,
                   pgd_mean: float, plot: str) -> str:
    text = f"# Confidence of CE and PGD models ({dataset})\n\n" + setting
    text += (f"\nThe paper's Fig. 7: the entropy H(softmax(f(x))) of each test prediction, in nats (max log K = "
             f"{math.log(k):.3f}). Robust models are expected to be less confident: higher entropy.\n\n")
    text += md_table(["model", "mean H (clean)", "median H (clean)", "% with H < 0.1 log K", "mean H (adversarial)"],
                     rows)
    text += ("\n**Reading.** " + (f"PGD's predictions have higher mean entropy ({pgd_mean:.3f} vs {ce_mean:.3f} nats): "
                                  "the robust model is less confident, as in Fig. 7.\n" if pgd_mean > ce_mean else
                                  f"PGD's predictions do not have higher mean entropy ({pgd_mean:.3f} vs {ce_mean:.3f} "
                                  "nats), unlike Fig. 7.\n"))
    return text + f"\n![entropy histograms]({plot})\n"


# --- the demo --------------------------------------------------------------------------------

# Differences smaller than these read as "no clear difference" in the demo's report.
_CLEAR_RATE = 1.0       # percentage points of a per-pair adversarial rate
_CLEAR_SCORE = 0.05     # relative change of S
_CLEAR_SHARE = 0.03     # absolute change of a class's share of the plotted square
_CLEAR_DISTANCE = 0.05  # change of a median distance to a region (the toy classes are ~1.7 apart)


def model_key(method: str, eps: float | None) -> str:
    return method if eps is None else f"{method}-eps{eps:g}"


def model_label(method: str, p: float | None = None) -> str:
    return {"ce": "CE", "pgd": "PGD"}.get(method, f"WPGD p={p:g}" if p is not None else "WPGD")


def table_row(rows, eps: float, attack: str, model: str) -> dict[str, Any]:
    return next(r for r in rows if r["eps"] == eps and r["attack"] == attack and r["model"] == model)




def _pct(value: float) -> str:
    return f"{value:.1f}%"


def _dist(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.2f}"


def demo_verdict(d_fwd: float, d_back: float) -> str:
    """How WPGD's rates on the costliest pair compare with PGD's, both directions (differences in points)."""
    lower = [d <= -_CLEAR_RATE for d in (d_fwd, d_back)]
    higher = [d >= _CLEAR_RATE for d in (d_fwd, d_back)]
    if all(lower):
        return "WPGD makes fewer costly flips both ways."
    if all(higher):
        return "The expected effect does not show here: WPGD makes more costly flips both ways."
    if any(lower) and any(higher):
        return "Mixed: WPGD makes fewer costly flips one way and more the other."
    if any(lower):
        return "WPGD makes fewer costly flips one way, about as many the other."
    if any(higher):
        return "The expected effect does not show here: WPGD makes more costly flips one way."
    return f"No clear difference (under {_CLEAR_RATE:g} point either way) on the costliest pair."


def _mean_bend(g: dict[str, Any]) -> float:
    bends = np.asarray(g["boundary_bends"], dtype=np.float64)
    upper = bends[np.triu_indices(len(bends), 1)]
    upper = upper[np.isfinite(upper)]
    return float(upper.mean()) if len(upper) else math.nan


def demo_reading(epsilons, rows, geometry, grid, audits, classes, cost, pairs) -> list[str]:
    """Plain-words sentences, each computed from the numbers (thresholds at the top of the module)."""
    (i, j) = pairs[0]
    ci, cj = classes[i], classes[j]
    fwd, back = f"{ci}->{cj}", f"{cj}->{ci}"
    # The cheapest other class of i: where a cost-aware model may let the adversary go instead.
    cheap = min((c for c in range(len(classes)) if c != i), key=lambda c: (cost[i, c], c))
    lines: list[str] = []
    for eps in epsilons:
        ce, pgd, wpgd = (table_row(rows, eps, "pgd", model) for model in ("ce", "pgd", "wpgd"))
        a_p, a_w = pgd["adversarial_rates"], wpgd["adversarial_rates"]
        text = (f"**ε = {eps:g}.** Under the PGD attack, class {ci} → {cj} (cost {cost[i, j]:g}): PGD {_pct(a_p[fwd])}, "
                f"WPGD {_pct(a_w[fwd])}; {cj} → {ci}: {_pct(a_p[back])} against {_pct(a_w[back])}. "
                + demo_verdict(a_w[fwd] - a_p[fwd], a_w[back] - a_p[back]))
        s_pgd, s_wpgd = pgd["score"], wpgd["score"]
        change = (s_wpgd - s_pgd) / s_pgd if s_pgd else math.nan
        text += f" The mean cost of the answers under attack, S: PGD {s_pgd:.3f}, WPGD {s_wpgd:.3f}"
        if not math.isfinite(change) or abs(change) < _CLEAR_SCORE:
            text += " — about the same."
        elif change < 0:
            text += f" ({100 * change:+.0f}%): WPGD's mistakes are cheaper."
        else:
            text += f" ({100 * change:+.0f}%): WPGD's mistakes are costlier, against the paper's expectation."
        text += (f" Natural error: CE {_pct(ce['natural_error'])}, PGD {_pct(pgd['natural_error'])}, "
                 f"WPGD {_pct(wpgd['natural_error'])}; adversarial error: CE {_pct(ce['adversarial_error'])}, "
                 f"PGD {_pct(pgd['adversarial_error'])}, WPGD {_pct(wpgd['adversarial_error'])}.")
        if wpgd["natural_error"] - pgd["natural_error"] >= 2.0:
            parts = []
            for pair, rate in sorted(wpgd["natural_rates"].items(), key=lambda kv: -kv[1])[:2]:
                src, dst = pair.split("->")
                c = cost[classes.index(src), classes.index(dst)]
                parts.append(f"{_pct(rate)} of class {src} predicted as {dst} (cost {c:g})")
            text += f" WPGD pays on clean points: {' and '.join(parts)}."
        g_pgd, g_wpgd = geometry[model_key("pgd", eps)], geometry[model_key("wpgd", eps)]
        d_p, d_w = g_pgd["boundary_distance_median"], g_wpgd["boundary_distance_median"]
        move = d_w[i][j] - d_p[i][j]
        if math.isfinite(move) and move >= _CLEAR_DISTANCE:
            text += (f" WPGD moves the class-{cj} region away from class-{ci} points (median distance PGD "
                     f"{_dist(d_p[i][j])}, WPGD {_dist(d_w[i][j])})")
        elif math.isfinite(move) and move <= -_CLEAR_DISTANCE:
            text += (f" WPGD brings the class-{cj} region closer to class-{ci} points (median distance PGD "
                     f"{_dist(d_p[i][j])}, WPGD {_dist(d_w[i][j])})")
        else:
            text += (f" The class-{cj} region stays about as far from class-{ci} points (median distance PGD "
                     f"{_dist(d_p[i][j])}, WPGD {_dist(d_w[i][j])})")
        closer = d_p[i][cheap] - d_w[i][cheap]
        if math.isfinite(closer) and closer >= _CLEAR_DISTANCE:
            text += (f", while the cheap class {classes[cheap]} (cost {cost[i, cheap]:g}) comes closer "
                     f"({_dist(d_p[i][cheap])} → {_dist(d_w[i][cheap])})")
        shares_p, shares_w = np.array(g_pgd["region_shares"]), np.array(g_wpgd["region_shares"])
        grow = int(np.argmax(np.abs(shares_w - shares_p)))
        if abs(shares_w[grow] - shares_p[grow]) >= _CLEAR_SHARE:
            text += (f"; WPGD gives class {classes[grow]} {100 * shares_w[grow]:.0f}% of the plotted square "
                     f"(PGD {100 * shares_p[grow]:.0f}%)")
        lines.append(text + ".")

    # PGD against CE across ε: does PGD flatten the boundaries as ε grows (Fig. 8)?
    floor = grid["staircase_bend"]
    ce_bend = _mean_bend(geometry["ce"])
    pgd_bends = [_mean_bend(geometry[model_key("pgd", e)]) for e in epsilons]
    eps_text = ", ".join(f"{e:g}" for e in epsilons)
    bends_text = " → ".join(f"{b:.3f}" for b in pgd_bends)
    text = (f"**PGD against CE.** How far the boundaries are from straight lines (mean RMS bend; the grid's "
            f"staircase alone gives {floor:.3f}): CE {ce_bend:.3f}, PGD {bends_text} for ε = {eps_text}.")
    if math.isfinite(ce_bend) and ce_bend <= 2 * floor:
        text += (" CE's boundaries are already straight to within the grid, so there is nothing for PGD to "
                 "flatten: the flattening of the paper's Fig. 8 cannot show on this problem.")
    elif (len(pgd_bends) > 1 and all(a >= b for a, b in zip(pgd_bends, pgd_bends[1:]))
          and ce_bend - pgd_bends[-1] >= max(0.25 * ce_bend, floor)):
        text += " PGD flattens the boundaries as ε grows, as in the paper's Fig. 8."
    elif ce_bend - pgd_bends[-1] >= max(0.25 * ce_bend, floor):
        text += f" PGD's boundaries are flatter than CE's at ε = {epsilons[-1]:g}, though not steadily with ε."
    else:
        text += " PGD does not flatten them: the paper's Fig. 8 effect does not show here."
    shift = max(float(np.abs(np.array(geometry[model_key("pgd", e)]["region_shares"])
                             - np.array(geometry["ce"]["region_shares"])).max()) for e in epsilons)
    text += (f" PGD's class regions {'stay within' if shift < _CLEAR_SHARE else 'move by up to'} "
             f"{100 * shift:.0f} points of CE's share of the square.")
    top = epsilons[-1]
    ce_row, pgd_row = table_row(rows, top, "pgd", "ce"), table_row(rows, top, "pgd", "pgd")
    drop = ce_row["adversarial_error"] - pgd_row["adversarial_error"]
    text += (f" At ε = {top:g} its adversarial error is {_pct(pgd_row['adversarial_error'])} against CE's "
             f"{_pct(ce_row['adversarial_error'])} ({'−' if drop >= 0 else '+'}{abs(drop):.1f} points).")
    wpgd_top = np.asarray(geometry[model_key("wpgd", top)]["boundary_bends"], dtype=np.float64)
    if np.isfinite(wpgd_top).any():
        a, b = np.unravel_index(np.nanargmax(wpgd_top), wpgd_top.shape)
        pgd_ab = geometry[model_key("pgd", top)]["boundary_bends"][a][b]
        if wpgd_top[a, b] > 2 * floor and (not math.isfinite(pgd_ab) or wpgd_top[a, b] - pgd_ab >= floor):
            text += (f" WPGD, by contrast, bends the boundary between classes {classes[min(a, b)]} and "
                     f"{classes[max(a, b)]} (cost {cost[a, b]:g}) at ε = {top:g}: bend {wpgd_top[a, b]:.3f}, "
                     f"PGD {_fmt(pgd_ab, '.3f')}.")
    lines.append(text)

    if "wpgd" in audits:
        pgd, wpgd = table_row(rows, top, "wpgd", "pgd"), table_row(rows, top, "wpgd", "wpgd")
        a_p, a_w = pgd["adversarial_rates"], wpgd["adversarial_rates"]
        text = (f"**Against the WPGD attack** (it knows C and pushes towards the costly classes), at ε = {top:g}: "
                f"class {ci} → {cj}: PGD {_pct(a_p[fwd])}, WPGD {_pct(a_w[fwd])}; {cj} → {ci}: PGD {_pct(a_p[back])}, "
                f"WPGD {_pct(a_w[back])}. " + demo_verdict(a_w[fwd] - a_p[fwd], a_w[back] - a_p[back])
                + f" S: PGD {pgd['score']:.3f}, WPGD {wpgd['score']:.3f}.")
        lines.append(text)
    return lines



def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


def _table(rows: list[dict[str, Any]], pairs, classes, cost) -> list[str]:
    pair_heads = [f"{classes[i]}→{classes[j]} ({cost[i, j]:g})" for i, j in pairs]
    head = ["model", "NE %", "AE %", "S", "S − S_PGD", *pair_heads]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        rates = [_fmt(r["adversarial_rates"][f"{classes[i]}->{classes[j]}"], ".1f") for i, j in pairs]
        lines.append("| " + " | ".join([r["label"], _fmt(r["natural_error"], ".1f"), _fmt(r["adversarial_error"], ".1f"),
                                        _fmt(r["score"], ".3f"), _fmt(r["score_delta"], "+.3f"), *rates]) + " |")
    return lines


def demo_report(result: Any, commands: list[str]) -> str:
    """The demo's ``report.md``."""
    from wpgdkit.experiments.demo import _MODEL, METRIC_FILE, RUNS_FOLDER, SUMMARY_FILE

    c = result.config
    classes, pairs = result.classes, result.pairs
    cost = np.asarray(result.cost)
    epsilons = sorted(result.audits["pgd"])
    first = result.audits["pgd"][epsilons[0]]
    n_test = len(first.labels)
    n_train = c.limit if c.limit is not None else "all 3000"
    reused = sum(1 for s in result.status.values() if s == "reused")
    out = [
        "# wpgdkit demo: the toy problem of the paper's Sec. 3.4",
        "",
        f"Three classes in 2-D and the cost matrix C below; an MLP trained with cross-entropy (CE), PGD and "
        f"WPGD (p = {c.p:g}) for ℓ2 budgets ε = {', '.join(f'{e:g}' for e in epsilons)}, then attacked at the "
        f"same ε. Everything below is computed by this run; nothing is copied from the paper.",
        "",
        "| C | " + " | ".join(f"class {name}" for name in classes) + " |",
        "|---|" + "---:|" * len(classes),
        *[f"| class {name} | " + " | ".join(f"{v:g}" for v in cost[r]) + " |" for r, name in enumerate(classes)],
        "",
        "## Decision boundaries",
        "",
        f"![Decision regions of CE, PGD and WPGD for each ε]({result.boundaries.name})",
        "",
        "Top row: CE, then PGD as ε grows (the paper's Fig. 8). Bottom row: CE, then WPGD (Fig. 9). "
        "The circle in each panel is the ℓ2 ball the adversary may move a point in.",
        "",
        "## What changed",
        "",
        *[f"- {line}" for line in result.reading],
        "",
        "## Audit",
        "",
        "NE, AE: natural and adversarial error in %. S: the mean cost of the model's answers under attack "
        "(paper, eq. 7, averaged over classes; lower is better); S − S_PGD: against the PGD model at the same ε. "
        "i→j (cost): the share of class-i test points the attack sends to class j, in %.",
        "",
    ]
    for attack in result.audits:
        for eps in epsilons:
            report = result.audits[attack][eps]
            a = report.attack
            rows = [r for r in result.rows if r["eps"] == eps and r["attack"] == attack]
            out += [f"### ε = {eps:g}, {attack.upper()} attack", "",
                    f"{a.threat.steps}-step ℓ2 {attack.upper()} attack"
                    + (f" on C^{a.p:g} (the attacker knows the metric)" if attack == "wpgd" else " on cross-entropy")
                    + f", {len(report.labels)} test points.", "",
                    *_table(rows, pairs, classes, cost), ""]
    k = len(classes)
    unordered = [(a, b) for a in range(k) for b in range(a + 1, k)]
    unordered.sort(key=lambda ab: (-cost[ab], ab))
    out += ["## Boundary geometry", "",
            "On the picture's grid: each class's share of the plotted square; how far each boundary is from a "
            f"straight line (RMS bend, 0 = flat; the grid's staircase alone gives {result.grid['staircase_bend']:.3f}); "
            "the median distance d(i→j) from the test points of class i to the region of class j (how far the "
            "adversary must push them).", ""]
    head = ["model", *[f"share {name}" for name in classes],
            *[f"bend {classes[a]}–{classes[b]}" for a, b in unordered],
            *[f"d({classes[a]}→{classes[b]})" for a, b in pairs]]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for key, g in result.geometry.items():
        method, _, eps_text = key.partition("-eps")
        label = model_label(method) + (f" ε={eps_text}" if eps_text else "")
        out.append("| " + " | ".join([label, *[f"{100 * s:.0f}%" for s in g["region_shares"]],
                                      *[_fmt(g["boundary_bends"][a][b], ".3f") for a, b in unordered],
                                      *[_dist(g["boundary_distance_median"][a][b]) for a, b in pairs]]) + " |")
    status = ", ".join(f"{key} {value}" for key, value in result.status.items())
    out += [
        "",
        "## Settings",
        "",
        f"- data: `toy` (seed {c.seed}), training on {n_train} points, {n_test} test points audited and drawn",
        f"- model: `{_MODEL}`, {c.epochs} epochs, batch {c.batch_size}, SGD lr {c.lr:g} (Nesterov, piecewise "
        f"schedule), {c.steps} inner PGD/WPGD steps in training, ℓ2 budget",
        f"- WPGD: the metric `{METRIC_FILE}` (the paper's C), p = {c.p:g}, no entropy term (λ = ∞)",
        f"- audit: {c.eval_steps}-step attacks, seed {c.seed}, device {c.device}",
        f"- checkpoints in `{RUNS_FOLDER}/`: {status}",
        f"- wpgdkit {__version__}; this run took {result.seconds:.0f} s"
        + (f" ({reused} of {len(result.status)} checkpoints reused)" if reused else ""),
        "",
        f"All numbers, the boundary geometry and each audit's full JSON are in [`{SUMMARY_FILE}`]({SUMMARY_FILE}).",
        "",
        "<details><summary>Commands that reproduce each checkpoint and audit</summary>",
        "",
        "```sh",
        *commands,
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)
