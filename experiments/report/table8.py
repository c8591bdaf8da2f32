"""Reports from a results database: the paper's Table 8 with error bars and the Bayes ceiling,
a summary answering the paper's claims, and per-latitude-band diagnostics.

Each recipe is evaluated over several dataset draws (data seeds) × training seeds (SPEC.md §7).
Selection is honest: for each (dataset, encoder) the configuration with the best mean *validation*
Top-1 on the *selection draw* (the smallest data seed) is chosen, and its *test* Top-1 is reported
on every draw: the mean of the draws' means over seeds, ± the standard deviation between draws
(between seeds when there is one draw). The paper's optimistic reading (the best mean test Top-1
over the grid, on the selection draw) is written separately and labelled as such. sphereM+ is judged
against every baseline at once with the one verdict rule of ``stats.judge`` (t intervals on the
per-draw differences; win = better than each baseline, loss = some baseline better), each row with
the difference it could have detected, and the summary pools the datasets into one answer.

A report reads one experiment (one set of training settings) of a results database, opened
read-only. A configuration with a diverged member (non-finite logits) is never chosen; a Top-1
above the dataset's Bayes ceiling by more than two standard errors of that ceiling is flagged
(``!``), since no classifier can do better than Bayes beyond sampling noise. This module does not
import the trainer: tables come from stored rows alone (figures, which retrain, import it lazily).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments import PACKAGE_DIR
from synth import bayes, datasets as synth_datasets
from synth.errors import SynthError
from synth.fileio import atomic_write_bytes

from ..store import results
from .reference import (final_rows, load as load_reference, own_experiment, provenance_line, reference_summary,
                        with_reference)
from ..search.selection import Cell, choose
from .stats import difference, error_reduction, judge
from .summary import TARGET, _fmt_ci, pooled_section, summary
from .tables import LABELS, band_table, search_markdown, search_records, to_csv_bytes, to_latex, to_markdown

PAPER_TABLE = PACKAGE_DIR / "data" / "table8.csv"
PAPER_COLUMNS = {"xyz": "xyz", "wrap": "wrap", "wrap_ffn": "wrap_ffn", "rff": "rff", "rbf": "rbf", "grid": "grid",
                 "theory": "theory", "sphereM+": "sphereM_plus"}


def paper_numbers() -> dict:
    with open(PAPER_TABLE) as f:
        return {r["dataset"]: r for r in csv.DictReader(f)}


def bayes_ceilings(recipes: dict, data_seeds_by_dataset: dict) -> dict:
    """{dataset: [Bayes test metrics per dataset seed]}, with per-band results of both band kinds.

    ``recipes`` maps each dataset (label) to its Recipe, a name of a registered dataset, or a
    recipe dict. The datasets are regenerated from (recipe, seed): generation is deterministic
    and takes milliseconds, so the report needs no data folder."""
    out = {}
    for d, recipe in recipes.items():
        if isinstance(recipe, dict):
            recipe = synth_datasets.Recipe.from_dict(recipe)
        out[d] = []
        for s in sorted(data_seeds_by_dataset.get(d, {0})):
            ds = synth_datasets.generate(recipe, s)
            c = bayes.evaluate(ds, "test")
            c["bands_equal-angle"] = c.pop("bands")
            c["bands_equal-area"] = bayes.evaluate(ds, "test", band_kind="equal-area")["bands"]
            out[d].append(c)
    return out


def bayes_margin(ceilings: list) -> float:
    """Two standard errors (points) of the mean Bayes test Top-1 over draws: binomial, n test points each."""
    p = np.mean([c["top1"] for c in ceilings]) / 100.0
    n = sum(c.get("n", 0) for c in ceilings)
    return 200.0 * float(np.sqrt(max(p * (1 - p), 1e-12) / n)) if n else 0.0


@dataclass
class Table8:
    rows: list  # one dict per dataset
    encoders: list
    warnings: list
    experiment: str = ""
    search: list = field(default_factory=list)  # search_records(): the adaptive search's finalists
    timing: str = ""  # how long the stored runs took (from their timestamps)
    chosen_by: str = ""  # how the configurations were chosen (chosen_by())
    target: str = TARGET  # the encoder compared against the best baseline
    provenance: str = ""  # which columns were trained here, which came from a reference (experiments.report.reference)
    all_configurations: bool = True  # False for a reference's own table: it keeps only the chosen configurations


def build_table8(cells: dict, dataset_names, encoder_names, ceilings: dict, paper_datasets=None,
                 diverged=frozenset(), target: str = TARGET) -> Table8:
    """``paper_datasets``: the datasets whose recipe is the paper's (their paper numbers are shown);
    default: every name the paper uses."""
    paper = paper_numbers()
    if paper_datasets is not None:
        paper = {d: p for d, p in paper.items() if d in paper_datasets}
    baselines = [e for e in encoder_names if e != target]
    rows, warnings = [], []
    for d in dataset_names:
        draws_bayes = [c["top1"] for c in ceilings[d]]
        row = {"dataset": d, "cells": {}, "diverged": set(), "bayes": float(np.mean(draws_bayes)),
               "bayes_draws": draws_bayes,
               "bayes_sd": float(np.std(draws_bayes, ddof=1)) if len(draws_bayes) > 1 else 0.0}
        margin = bayes_margin(ceilings[d])
        for e in encoder_names:
            c = cells.get((d, e))
            if c is None and (d, e) in diverged:
                row["diverged"].add(e)
                warnings.append(f"{e} on {d}: every run diverged (non-finite logits): no configuration to report")
            elif c is None:
                warnings.append(f"no results for encoder {e} on dataset {d}: run `python -m experiments sweep "
                                f"--datasets {d} --encoders {e}`")
            else:
                if c.n_diverged:
                    warnings.append(f"{e} on {d}: {c.n_diverged} of {c.n_configs} configuration(s) diverged "
                                    "(non-finite logits) and were not considered")
                if c.n_diverged_rows:
                    warnings.append(f"{e} on {d}: the chosen configuration diverged in {c.n_diverged_rows} run(s) "
                                    "on other draws; those runs count with the Top-1 they reached")
                if len(c.by_draw()) < len(draws_bayes):
                    warnings.append(f"{e} on {d}: results on {len(c.by_draw())} of {len(draws_bayes)} draws; "
                                    "run the sweep with --resume to complete it")
                c.above_bayes = c.mean > row["bayes"] + margin
                if c.above_bayes:
                    warnings.append(f"{e} on {d}: test Top-1 {c.mean:.1f} is above the Bayes ceiling {row['bayes']:.1f} "
                                    f"by more than its sampling error (2 SE = {margin:.1f} points); no classifier "
                                    "can do that: check this run")
            row["cells"][e] = c
        present = [e for e in baselines if row["cells"][e] is not None]
        t = row["cells"].get(target)
        row.update(delta=float("nan"), er=float("nan"), ci=None, er_ci=None, estimate=None, each={}, verdict="—",
                   opt_delta=float("nan"), opt_er=float("nan"), detectable=(float("nan"), float("nan")))
        row["best_baseline"] = max(present, key=lambda e: row["cells"][e].mean) if present else None
        if t is not None:
            row["gap"] = row["bayes"] - t.mean
        if present and t is not None:
            # against every baseline at once (stats.judge): no baseline is picked on the numbers it is tested on
            j = judge({e: difference(t.values(), row["cells"][e].values()) for e in present})
            best = j.against or row["best_baseline"]
            bb = row["cells"][best]
            row["best_baseline"] = best
            row["delta"] = j.delta if j.estimate is not None else t.mean - bb.mean  # on their common draws
            row["er"] = error_reduction(bb.mean + row["delta"], bb.mean)
            if j.ci is not None:
                row["ci"], row["estimate"], row["detectable"] = j.ci, j.estimate, j.detectable
                e_best = 100.0 - bb.mean  # ER is −Δ / E_best: its interval is Δ's, scaled
                row["er_ci"] = tuple(sorted(-100.0 * x / e_best for x in j.ci)) if e_best > 0 else None
            row["verdict"], row["each"] = j.verdict, j.each  # each: {baseline: Estimate}, pooled by the summary
            ob = max(row["cells"][e].optimistic for e in present)
            row["opt_delta"], row["opt_er"] = t.optimistic - ob, error_reduction(t.optimistic, ob)
        p = paper.get(d)
        row["paper"] = None if p is None else {"sphereM+": float(p["sphereM_plus"]), "delta": float(p["delta_top1"]),
                                               "er": float(p["er_percent"]),
                                               **{e: float(p[PAPER_COLUMNS[e]]) for e in encoder_names
                                                  if e in PAPER_COLUMNS}}
        rows.append(row)
    return Table8(rows, list(encoder_names), warnings, target=target)


def _fmt(c: Cell | None, optimistic=False) -> str:
    if c is None:
        return "—"
    return f"{c.optimistic:.1f}" if optimistic else f"{c.mean:.1f} ± {c.std:.1f}" + (" !" if c.above_bayes else "")


def _fmt_detectable(win_loss) -> str:
    """The smallest true advantage a win needs and the smallest deficit a loss needs (80 % power)."""
    w, l = win_loss
    return "—" if np.isnan(w) else f"+{w:.1f} / −{l:.1f}"


def table_records(t: Table8, optimistic=False) -> list[dict]:
    recs = []
    for r in t.rows:
        rec = {"dataset": r["dataset"]}
        for e in t.encoders:
            rec[LABELS.get(e, e)] = "diverged" if e in r["diverged"] else _fmt(r["cells"][e], optimistic)
        rec["best baseline"] = LABELS.get(r["best_baseline"], r["best_baseline"] or "—")
        if optimistic:
            rec["ΔTop1"] = "—" if np.isnan(r["opt_delta"]) else f"{r['opt_delta']:+.1f}"
            rec["ER %"] = "—" if np.isnan(r["opt_er"]) else f"{r['opt_er']:+.1f}"
            rec["Bayes"] = f"{r['bayes']:.1f}"
        else:
            rec["ΔTop1 [95% CI]"] = _fmt_ci(r["delta"], r["ci"])
            rec["verdict"] = r["verdict"]
            rec["detectable (win / loss)"] = _fmt_detectable(r["detectable"])
            rec["ER %"] = "—" if np.isnan(r["er"]) else f"{r['er']:+.1f}"
            rec["Bayes"] = f"{r['bayes']:.1f}" + (f" ± {r['bayes_sd']:.1f}" if len(r["bayes_draws"]) > 1 else "")
            rec["gap to Bayes"] = f"{r['gap']:.1f}" if "gap" in r else "—"
        p = r["paper"]
        rec["paper sphereM+"] = "—" if p is None else f"{p['sphereM+']:.1f}"
        rec["paper ΔTop1"] = "—" if p is None else f"{p['delta']:+.1f}"
        rec["paper ER %"] = "—" if p is None else f"{p['er']:+.1f}"
        recs.append(rec)
    return recs


def draw_records(t: Table8) -> list[dict]:
    """One record per (dataset, draw): that draw's Bayes ceiling, sphereM+ and the best baseline
    (each the mean over training seeds) and their difference."""
    recs = []
    for r in t.rows:
        tgt, best = r["cells"].get(t.target), r["best_baseline"]
        bb = r["cells"][best] if best else None
        draws = sorted({k[0] for c in r["cells"].values() if c is not None for k in c.keys})
        for i, draw in enumerate(draws):
            ct = tgt.by_draw().get(draw) if tgt else None
            cb = bb.by_draw().get(draw) if bb else None
            recs.append({"dataset": r["dataset"], "draw": draw,
                         "Bayes": f"{r['bayes_draws'][i]:.1f}" if i < len(r["bayes_draws"]) else "—",
                         t.target: "—" if ct is None else f"{ct:.1f}",
                         "best baseline": "—" if cb is None else f"{LABELS.get(best, best)} {cb:.1f}",
                         "Δ": "—" if ct is None or cb is None else f"{ct - cb:+.1f}"})
    return recs


def to_csv(t: Table8, optimistic=False) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    head = ["dataset"]
    for e in t.encoders:
        head += [f"{e}_mean", f"{e}_std", f"{e}_n"] if not optimistic else [f"{e}_best_test"]
    head += ["best_baseline", "delta_top1", "er_percent"]
    if not optimistic:
        head += ["ci_low", "ci_high", "verdict", "er_ci_low", "er_ci_high", "n_draws", "bayes_draws", "bayes_sd",
                 "se", "df", "detectable_win", "detectable_loss"]
    head += ["bayes_top1", "paper_sphereM_plus", "paper_delta_top1", "paper_er_percent", "diverged"]
    w.writerow(head)
    f3 = lambda x: "" if x is None or np.isnan(x) else f"{x:.3f}"  # noqa: E731
    for r in t.rows:
        row = [r["dataset"]]
        for e in t.encoders:
            c = r["cells"][e]
            if optimistic:
                row.append("" if c is None else f"{c.optimistic:.3f}")
            else:
                row += ["", "", 0] if c is None else [f"{c.mean:.3f}", f"{c.std:.3f}", len(c.test)]
        d, er = (r["opt_delta"], r["opt_er"]) if optimistic else (r["delta"], r["er"])
        row += [r["best_baseline"] or "", f3(d), f3(er)]
        if not optimistic:
            ci, er_ci = r["ci"] or (None, None), r["er_ci"] or (None, None)
            est = r["estimate"]
            row += [f3(ci[0]), f3(ci[1]), r["verdict"], f3(er_ci[0]), f3(er_ci[1]), len(r["bayes_draws"]),
                    ";".join(f"{b:.3f}" for b in r["bayes_draws"]), f3(r["bayes_sd"]),
                    "" if est is None else f"{est.se:.4f}", "" if est is None else f"{est.df:g}",
                    f3(r["detectable"][0]), f3(r["detectable"][1])]
        p = r["paper"] or {}
        # the encoders every run of which diverged (their columns are empty, n = 0): the md table says "diverged"
        row += [f"{r['bayes']:.3f}", p.get("sphereM+", ""), p.get("delta", ""), p.get("er", ""),
                ";".join(sorted(r["diverged"]))]
        w.writerow(row)
    return buf.getvalue()


def run_timing(rows: list[dict]) -> str:
    """One line: how many runs, on which device, and the time from the first stored run to the last
    (a lower bound of the sweep's wall time: the first population trains before it is stored)."""
    stamps = [r["created"] for r in rows if r.get("created") is not None]
    if not stamps:
        return ""
    devices = sorted({str(r.get("device")) for r in rows})
    return (f"Runs: {len(rows)} stored on {', '.join(devices)}, over {(max(stamps) - min(stamps)) / 60:.1f} min from "
            "the first stored to the last (a resumed or paused sweep counts its pauses).")


def chosen_by(rule: str | None, search_rows: list) -> str:
    """How the configurations were chosen: the rule the sweep recorded, else what the rows show."""
    from ..search.pruners import OLD_RULE_TEXT
    if rule is not None:
        return rule
    if not search_rows:
        return "every configuration trained on every seed (exhaustive), the best on validation Top-1"
    if any(r["pruned_at"] is not None for r in search_rows):
        return f"an adaptive search {OLD_RULE_TEXT}"
    return "an adaptive search without pruning"


def write_tables(t: Table8, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    honest = table_records(t)
    cap = ("Table 8 replica: test Top-1 (mean over dataset draws ± std between draws) with the configuration "
           f"chosen on validation of the first draw; ΔTop1 of {t.target} against the best baseline with its 95% "
           "interval against every baseline at once (t on the per-draw differences) and the verdict; detectable = "
           "the true advantage a win needs and the deficit a loss needs at 80 % power; ER negative = fewer errors; "
           f"Bayes = Bayes-optimal Top-1 (mean ± std over draws), gap = Bayes − {t.target}."
           + (f" {t.provenance}" if t.provenance else ""))
    head = "".join(f"{x}\n\n" for x in (t.provenance, t.chosen_by and f"Configurations chosen by: {t.chosen_by}.") if x)
    files = [("table8.md", head + to_markdown(honest)), ("table8.csv", to_csv(t)), ("table8.tex", to_latex(honest, cap)),
             ("table8_draws.md", f"Per draw: Bayes ceiling, {t.target} and the best baseline (mean over "
              "training seeds)\n\n" + to_markdown(draw_records(t))),
             ("summary.md", summary(t) if t.target == TARGET else reference_summary(t, pooled_section(t)))]
    if t.all_configurations:  # the optimistic reading needs every configuration's rows, not only the chosen one's
        files += [("table8_optimistic.md", "OPTIMISTIC (the paper's reading: best test Top-1 over the grid, no "
                   "validation selection; on the first draw, the only one every configuration ran on)\n\n"
                   + to_markdown(table_records(t, optimistic=True))),
                  ("table8_optimistic.csv", to_csv(t, optimistic=True))]
    for name, text in files + ([("search.md", search_markdown(t.search))] if t.search else []):
        p = out / name
        atomic_write_bytes(p, text.encode())
        written.append(p)
    return written


def main_report(db, out, figures, encoders="table8", datasets="all", experiment=None, figures_on=True,
                device="auto", seeds=None, reference=None, target=None) -> None:
    """The ``report`` command: read one experiment of ``db`` (read-only), write tables to ``out`` and
    figures to ``figures``. ``seeds``: only these training seeds (a replicate on disjoint seeds).
    ``reference``: the baselines' columns come from a shipped reference (experiments.report.reference),
    ``target`` (default: the one encoder of ``db`` not in it) is compared against them. ``db`` None with a
    ``reference``: the reference's own Table 8 from its stored rows (every column from it)."""
    from ..models import encoders as encoder_registry

    out, figures = Path(out), Path(figures)
    for folder in (out, figures) if figures_on else (out,):
        if folder.exists() and not folder.is_dir():
            raise SynthError(f"{folder} is a file, not a folder")
    enc_names = encoder_registry.parse_names(encoders)
    ref = load_reference(reference) if reference is not None else None  # read once: it is ~1 MB
    if db is None:  # the reference's own Table 8, from its stored rows: nothing of this machine's
        if ref is None:
            raise SynthError("report: give --db, or --reference NAME alone for the reference's own Table 8")
        exp, search_rows = ref["experiment"], []
        rows = final_rows(ref, exp)
        rule = (f"the search recorded in the reference ({results.canonical(ref['policy'])}), then validation Top-1 "
                "on the first draw, as every report chooses")
        provenance = f"All columns from the {provenance_line(ref)}."
    else:
        with results.ResultsStore(db, readonly=True) as store:
            exp = results.choose_experiment(store, experiment or own_experiment(ref, store))
            rows = store.rows(exp, "final")
            search_rows = store.rows(exp, "search")
            rule = store.meta(f"search/{exp}")
        rows, enc_names, target, provenance = with_reference(ref, rows, enc_names, encoders, target, exp)
    target = target or TARGET
    if seeds is not None:
        rows = [r for r in rows if r["train_seed"] in set(seeds)]
        search_rows = [r for r in search_rows if r["train_seed"] in set(seeds)]
    if not rows:
        raise SynthError(f"experiment {exp} in {db} has no final-stage results yet"
                         + (f" for training seeds {','.join(map(str, seeds))}" if seeds is not None else ""))
    # A dataset is (name, recipe): a user recipe that reuses a paper name is labelled, never pooled.
    recipes: dict = {}
    for r in rows:
        recipes.setdefault(r["dataset"], {})[r["recipe_hash"]] = json.loads(r["recipe"])
    labels, label_recipe, paper_like = {}, {}, set()
    for name, by_hash in recipes.items():
        for h, rec in by_hash.items():
            is_paper = synth_datasets.is_paper_recipe(synth_datasets.Recipe.from_dict(rec))
            label = name if is_paper else f"{name} (user recipe)" if len(by_hash) == 1 else f"{name} (recipe {h[:6]})"
            labels[(name, h)] = label
            label_recipe[label] = rec
            if is_paper:
                paper_like.add(label)
    for r in rows:
        r["dataset"] = labels[(r["dataset"], r["recipe_hash"])]
    stored = list(dict.fromkeys(r["dataset"] for r in rows))
    if datasets == "all":
        order = {d: i for i, d in enumerate(synth_datasets.PAPER_DATASETS)}
        ds_names = sorted(stored, key=lambda d: (order.get(d, len(order)), d))
    else:
        wanted = [t.strip() for t in datasets.split(",") if t.strip()]
        ds_names = [d for d in stored if d in wanted or d.split(" (")[0] in wanted]
        if not ds_names:
            raise SynthError(f"experiment {exp} has no results for dataset(s) {datasets}; it has {', '.join(stored)}")
        absent = [w for w in wanted if not any(d == w or d.split(" (")[0] == w for d in stored)]
        if absent:  # asked for, not there: said, never silently left out of the table
            print(f"warning: experiment {exp} has no results for {', '.join(absent)}; the table shows "
                  f"{', '.join(ds_names)}", file=sys.stderr)
    missing = [e for e in enc_names if not any(r["encoder"] == e for r in rows)]
    if target in enc_names and target in missing:
        raise SynthError(f"{db} has no results for {target}, the encoder Table 8 compares: run "
                         f"`python -m experiments sweep --encoders {target}`")
    rows = [r for r in rows if r["dataset"] in ds_names]
    cells = choose(rows)
    runs: dict = {}
    for r in rows:
        runs.setdefault((r["dataset"], r["encoder"]), []).append(bool(r["diverged"]))
    diverged = {key for key, flags in runs.items() if all(flags)}  # shown as "diverged", not as missing
    seeds: dict = {}
    for r in rows:
        seeds.setdefault(r["dataset"], set()).add(r["data_seed"])
    ceilings = bayes_ceilings({d: label_recipe[d] for d in ds_names}, seeds)
    t = build_table8(cells, ds_names, enc_names, ceilings, paper_datasets=paper_like, diverged=diverged, target=target)
    t.experiment, t.provenance, t.all_configurations = exp, provenance, db is not None
    t.chosen_by = chosen_by(rule, search_rows)
    t.timing = run_timing(rows + search_rows)
    for r in search_rows:
        r["dataset"] = labels.get((r["dataset"], r["recipe_hash"]), r["dataset"])
    t.search = search_records([r for r in search_rows if r["dataset"] in ds_names and r["encoder"] in enc_names], rows)
    print(f"experiment {exp}; configurations chosen by: {t.chosen_by}", file=sys.stderr)
    for w in t.warnings:
        print(f"warning: {w}", file=sys.stderr)
    written = write_tables(t, out)
    for kind in ("equal-angle", "equal-area"):
        bt = band_table(cells, ds_names, enc_names, ceilings, kind)
        if bt:
            p = out / f"bands_{kind}.csv"
            atomic_write_bytes(p, to_csv_bytes(bt))
            written.append(p)
    if figures_on:
        from . import diagnostics
        from synth.plot import save_figure

        from .summary import verdicts_figure

        written += save_figure(verdicts_figure(t), figures / "verdicts")

        written += diagnostics.all_figures(cells, ds_names, enc_names, ceilings, figures, out, device=device,
                                              target=target)
    print(to_markdown(table_records(t)))
    for p in written:
        print(p)
