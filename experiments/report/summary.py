"""The answers of a Table 8 in words: ``summary.md`` (the paper's claims against our numbers, the
verdicts and what a tie could have missed, the pooled answer over the datasets, observation 3 and
the gaps to the Bayes ceiling) and the draws a difference needs (``power``). Reads a built Table 8
(``report.build_table8``) or stored rows; every verdict through ``stats.judge``.
"""

from __future__ import annotations

import numpy as np

from synth import datasets as synth_datasets
from synth.errors import SynthError
from synth.params import NAMES, ROWS, TEXT, Kind, checked, optional

from ..search.selection import choose
from .stats import LEVEL, POWER, difference, draws_needed, er_trend, error_reduction, judge, pool
from .tables import LABELS

TARGET = "sphereM+"  # the encoder the paper's claims are about


def _fmt_ci(x: float, ci) -> str:
    return "—" if np.isnan(x) else f"{x:+.1f}" + ("" if ci is None else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]")


VERDICT_RULE = (f"{100 * LEVEL:.0f} % t intervals on the per-draw differences (draws − 1 degrees of freedom); "
                "win = better than each baseline, loss = some baseline better (Bonferroni over the baselines), "
                "else tie")


def er_replicates(r, rng, n: int = 10000):
    """Samples of a row's ER from its ΔTop1 estimate's t distribution (None without one). ``rng``: one
    generator for all the datasets of a test, so that their samples are independent, as their draws are."""
    est, bb = r["estimate"], r["cells"][r["best_baseline"]]
    if est is None:
        return None
    return error_reduction(bb.mean + est.replicates(n, rng), bb.mean)


def detectable_line(rows) -> str:
    """The range of the rows' detectable differences: what a tie could have missed."""
    d = np.array([r["detectable"] for r in rows if np.isfinite(r["detectable"][0])])
    if not len(d):
        return "Detectable difference: — (no dataset has an interval)."
    return (f"**What a tie could have missed:** the smallest true advantage a dataset's win needs at "
            f"{100 * POWER:.0f} % power is {d[:, 0].min():.1f}–{d[:, 0].max():.1f} points (median "
            f"{np.median(d[:, 0]):.1f}); a loss needs a deficit of {d[:, 1].min():.1f}–{d[:, 1].max():.1f} "
            f"(median {np.median(d[:, 1]):.1f}), per dataset in the table's `detectable` column. How many draws "
            "a difference needs: `python -m experiments power`.")


def _table8(value):
    # report.Table8 (report imports this module, so it is recognised by what it has)
    if not all(hasattr(value, a) for a in ("rows", "target", "encoders", "warnings")):
        raise TypeError
    return value


def _diffs(value):
    import numbers

    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(d, numbers.Real) and not isinstance(d, bool) and 0 < d < float("inf") for d in value):
        raise TypeError
    return value


TABLE8 = Kind("a Table8 (report.build_table8)", _table8)
DIFFS = Kind("a non-empty list of positive differences in points", _diffs)


@checked(t=TABLE8)
def pooled(t):
    """(Judgement, {baseline: pooled Estimate}) of the target against every baseline, averaged over the
    table's datasets: per baseline, the per-dataset estimates pooled with equal weight (stats.pool), then
    the one verdict rule (stats.judge). A baseline is pooled only where it pairs on every dataset; None
    when no baseline does."""
    rows = [r for r in t.rows if r["cells"].get(t.target) is not None]
    per = {}
    for e in t.encoders:
        if e == t.target:
            continue
        est = [r["each"].get(e) for r in rows]  # the estimates build_table8 judged each dataset by
        if rows and all(x is not None for x in est):
            per[e] = pool(est)
    return (judge(per), per) if per else (None, {})


@checked(t=TABLE8, title=TEXT)
def pooled_section(t, title: str = "One pooled answer over the datasets") -> str:
    j, per = pooled(t)
    if j is None:
        return f"## {title}\n\nNo baseline pairs with {t.target} on every dataset: no pooled answer."
    rows = [r for r in t.rows if r["cells"].get(t.target) is not None and not np.isnan(r["delta"])]
    paper = [r["paper"]["delta"] for r in rows if r["paper"] is not None]
    naive = np.mean([r["delta"] for r in rows]) if rows else float("nan")
    w, l = j.detectable
    lines = [f"## {title}", "",
             f"Over the {len(rows)} datasets, **{t.target} − the best baseline = {j.delta:+.2f} "
             f"[{j.low:+.2f}, {j.high:+.2f}] points: {j.verdict}** (against {LABELS.get(j.against, j.against)}, the "
             f"baseline with the best mean over them; the interval covers {t.target} − the truly best of the "
             f"{j.k} at {100 * LEVEL:.0f} %; detectable at {100 * POWER:.0f} % power: +{w:.2f} / −{l:.2f}).",
             "",
             "Per baseline (the mean over the datasets of the paired per-draw difference, each dataset weighing the "
             "same; the datasets are a fixed set and the draws are the noise, Welch–Satterthwaite degrees of "
             "freedom): " + ", ".join(f"{LABELS.get(e, e)} {x.value:+.2f} [{x.interval()[0]:+.2f}, "
                                       f"{x.interval()[1]:+.2f}]" for e, x in sorted(per.items(), key=lambda p: p[1].value)) + "."]
    lines += ["", f"Against each dataset's own best baseline (the paper's reading; that choice favours the baselines): "
              f"mean ΔTop1 {naive:+.2f}"
              + (f"; the paper's mean gain on these {len(paper)} datasets: {np.mean(paper):+.2f}." if paper else ".")]
    return "\n".join(lines)


@checked(t=TABLE8)
def summary(t) -> str:
    """Answers to the paper's claims with our numbers."""
    rows = [r for r in t.rows if not np.isnan(r["delta"])]
    lines = ["# Summary: the paper's claims against our numbers", ""]
    if t.experiment:
        lines += [f"Experiment `{t.experiment}` (one set of training settings; other experiments in the database "
                  "are not pooled).", ""]
    if t.provenance:
        lines += [t.provenance, ""]
    if t.chosen_by:
        lines += [f"Configurations chosen by: {t.chosen_by}.", ""]
    if t.timing:
        lines += [t.timing, ""]
    if t.search:
        n_trials = sum(r["trials"] for r in t.search)
        n_pruned = sum(r["pruned"] for r in t.search)
        lines += [f"Adaptive search: {n_trials} trials over {len(t.search)} (dataset, encoder) cells, {n_pruned} pruned, "
                  f"{sum(r['member_epochs'] for r in t.search)} member-epochs; the finalists (best mean validation "
                  "Top-1 over the search seeds among trials that were neither pruned nor diverged) were retrained on "
                  "every seed, and Table 8 chooses among them on validation. Per cell: `search.md`.", ""]
    if not rows:
        return "\n".join(lines + ["No dataset has both sphereM+ and a baseline: nothing to compare."]) + "\n"
    n_draws = max(len(r["bayes_draws"]) for r in rows)
    seeds = sorted({k[1] for r in rows for k in r["cells"][t.target].keys})
    count = {v: [r for r in rows if r["verdict"] == v] for v in ("win", "tie", "loss", "—")}
    ahead = [r for r in rows if r["delta"] > 0]

    def named(rs):
        return ", ".join(f"{r['dataset']} ({_fmt_ci(r['delta'], r['ci'])})" for r in rs) or "none"

    lines += [f"Each dataset is evaluated on {n_draws} draw(s) (data seeds) × training seeds "
              f"{','.join(map(str, seeds))}; configurations are chosen on validation of the first draw.", "",
              "## 1. Does sphereM+ beat every baseline on all datasets? (paper: yes, on all 20)", "",
              f"Verdicts of sphereM+ against all {len(t.encoders) - 1} baselines at once ({VERDICT_RULE}): "
              f"**win on {len(count['win'])}, tie on {len(count['tie'])}, loss on {len(count['loss'])}** of "
              f"{len(rows)} datasets" + (f" ({len(count['—'])} without an interval)" if count["—"] else "") + ". "
              f"(sphereM+ has the best mean on {len(ahead)}; a better mean inside the noise is a tie.)",
              f"Ties (ΔTop1 [95% CI]): {named(count['tie'])}.", f"Losses: {named(count['loss'])}.",
              "", detectable_line(rows), "", pooled_section(t), ""]
    lines += ["## 2. Does ER grow with N_mu at fixed kappa_max? (paper observation 3: yes)", "",
              "ER of sphereM+ against the best baseline (negative = fewer errors) with its 95 % interval (the "
              "verdict's interval of ΔTop1, as ER), and the Spearman correlation of N_mu with the reduction (−ER) "
              "with its interval over samples of each dataset's ΔTop1 from its t distribution.", ""]
    by = {r["dataset"]: r for r in rows}
    trends = {}
    for j, k in enumerate((16, 32, 64, 128), 1):
        seq = [(nm, by[f"S{i}.{j}"]) for i, nm in zip(range(1, 5), (5, 10, 25, 50)) if f"S{i}.{j}" in by]
        if len(seq) < 3:
            lines.append(f"- kappa_max = {k}: fewer than 3 stratified datasets in the results")
            continue
        rng = np.random.default_rng(k)  # fixed: a report is the same every time it is written
        rho, rho_ci = er_trend([nm for nm, _ in seq], [r["er"] for _, r in seq], [er_replicates(r, rng) for _, r in seq])
        trend = ("grows" if rho_ci[0] > 0 else "shrinks" if rho_ci[1] < 0 else "no trend shown") if rho_ci else "?"
        trends[k] = trend
        lines.append(f"- kappa_max = {k}: ER by N_mu " + ", ".join(f"{nm}: {_fmt_ci(r['er'], r['er_ci'])} %"
                                                                     for nm, r in seq)
                     + f"; Spearman rho {rho:+.2f}" + (f" [{rho_ci[0]:+.2f}, {rho_ci[1]:+.2f}]" if rho_ci else "")
                     + f" — **{trend}**")
    if trends:
        grows = [k for k, v in trends.items() if v == "grows"]
        lines += ["", "Observation 3 " + (f"holds at kappa_max = {', '.join(map(str, grows))} "
                                          f"and is not shown at the others." if grows and len(grows) < len(trends)
                                          else "holds at every kappa_max." if grows
                                          else "is not borne out at any kappa_max: no interval of rho excludes 0"
                                               " on the growing side.")]
    lines += ["", "## 3. How far is each encoder from the Bayes-optimal ceiling?", "",
              "| encoder | mean gap to Bayes (points) | worst dataset |", "|---|---|---|"]
    for e in t.encoders:
        gaps = [(r["bayes"] - r["cells"][e].mean, r["dataset"]) for r in t.rows if r["cells"][e] is not None]
        if gaps:
            worst = max(gaps)
            lines.append(f"| {LABELS.get(e, e)} | {np.mean([g for g, _ in gaps]):.1f} | {worst[1]} ({worst[0]:.1f}) |")
    flagged = [f"{e} on {r['dataset']}" for r in t.rows for e in t.encoders
               if r["cells"][e] is not None and r["cells"][e].above_bayes]
    if flagged:
        lines += ["", "**Above the Bayes ceiling** (by more than two standard errors; `!` in the table): "
                  + ", ".join(flagged) + ". No classifier can do that: these cells are suspect."]
    lines += ["", "Selection on validation of the first draw; test Top-1 is the mean over draws of each draw's mean "
              "over seeds, ± the standard deviation between draws. Verdict: " + VERDICT_RULE + "; "
              "docs/statistics.md. Per-draw numbers: `table8_draws.md`. Configurations with a diverged member are "
              "never chosen."]
    return "\n".join(lines) + "\n"


@checked(rows=ROWS, target=TEXT, baseline=optional(TEXT), diffs=DIFFS, datasets=optional(NAMES))
def power_records(rows: list[dict], target: str = TARGET, baseline: str | None = None, diffs=(0.3, 0.5, 1.0),
                  datasets=None) -> list[dict]:
    """How many draws a difference needs, per dataset, from stored final rows (a shipped reference's): the
    standard deviation of one draw's difference between ``target`` and ``baseline`` (default: the baseline
    with the best mean on that dataset), the detectable difference at the rows' own draws, and the draws a
    true advantage of each of ``diffs`` points needs to be called a win with 80 % power (stats.draws_needed).
    A last record pools the datasets (the pooled answer's draws per dataset). The sd comes from the rows' few
    draws (5: itself uncertain by about a third), so the counts are a guide, not a guarantee."""
    cells = choose(rows)
    order = {d: i for i, d in enumerate(synth_datasets.PAPER_DATASETS)}
    names = sorted((d for d in dict.fromkeys(r["dataset"] for r in rows) if datasets is None or d in datasets),
                   key=lambda d: (order.get(d, len(order)), d))
    recs, sds = [], []
    for d in names:
        t = cells.get((d, target))
        if t is None:
            raise SynthError(f"no results for {target} on {d}")
        others = {e: c for (dd, e), c in cells.items() if dd == d and e != target}
        if baseline is not None and baseline not in others:
            raise SynthError(f"no results for baseline {baseline} on {d}")
        b = baseline or max(others, key=lambda e: others[e].mean)
        est = difference(t.values(), others[b].values())
        if est is None or est.unit != "draws":
            raise SynthError(f"{d}: fewer than two draws of {target} and {b}: no variance between draws")
        sd = est.se * np.sqrt(est.n)
        sds.append(sd)
        rec = {"dataset": d, "against": LABELS.get(b, b), "sd of one draw's Δ": f"{sd:.2f}", "draws": est.n,
               "detectable now": f"{judge({b: est}).detectable[0]:.2f}"}
        for x in diffs:
            n = draws_needed(sd, x)
            rec[f"draws for +{x:g}"] = "> 10000" if n is None else n
        recs.append(rec)
    if len(sds) > 1:  # one draw of the pooled answer: the mean over datasets of their draws' differences
        sd = float(np.sqrt(np.sum(np.square(sds)))) / len(sds)
        rec = {"dataset": f"pooled over {len(sds)}", "against": "each dataset's", "sd of one draw's Δ": f"{sd:.2f}",
               "draws": recs[0]["draws"], "detectable now": "—"}
        for x in diffs:
            n = draws_needed(sd, x)
            rec[f"draws for +{x:g}"] = "> 10000" if n is None else n
        recs.append(rec)
    return recs


def verdicts_figure(t):
    """Every dataset's interval of target − the best baseline (stats.judge), coloured by its verdict, with
    the paper's ΔTop1 beside it and the pooled answer at the bottom: what the table's verdicts say at a glance."""
    from matplotlib.figure import Figure

    rows = [r for r in t.rows if r["ci"] is not None]
    j, _ = pooled(t)
    fig = Figure(figsize=(7.0, 0.32 * (len(rows) + 2) + 1.4), layout="constrained")
    ax = fig.subplots()
    colour = {"win": "tab:green", "loss": "tab:red", "tie": "0.35"}
    y = np.arange(len(rows))[::-1] + 2
    for yi, r in zip(y, rows):
        ax.plot(r["ci"], [yi, yi], color=colour[r["verdict"]], lw=2.2, solid_capstyle="butt")
        ax.plot(r["delta"], yi, "o", color=colour[r["verdict"]], ms=4)
        if r["paper"] is not None:
            ax.plot(r["paper"]["delta"], yi, "x", color="tab:blue", ms=5)
    labels = [f"{r['dataset']} ({r['verdict']})" for r in rows]
    if j is not None:
        ax.plot([j.low, j.high], [0.5, 0.5], color=colour[j.verdict], lw=4, solid_capstyle="butt")
        ax.plot(j.delta, 0.5, "D", color=colour[j.verdict], ms=6)
        paper = [r["paper"]["delta"] for r in rows if r["paper"] is not None]
        if paper:
            ax.plot(np.mean(paper), 0.5, "x", color="tab:blue", ms=7, mew=2)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(list(y) + ([0.5] if j is not None else []),
                  labels + ([f"pooled over {len(rows)} ({j.verdict})"] if j is not None else []), fontsize=7)
    ax.plot([], [], "x", color="tab:blue", label="paper's ΔTop1 (its mean for the pooled row)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set(xlabel=f"ΔTop1, {t.target} − the best baseline (points)",
           title=f"{t.target} against every baseline at once: {100 * LEVEL:.0f} % intervals\n"
                 "(green: win, red: loss, grey: tie; docs/statistics.md)")
    return fig
