"""Is the fast fair default fair?

On held-out datasets (none of them used to build or tune the default: U3, S1.2, S3.4), it compares
the default preset with the full fair adaptive search. Both are run the way `sweep --data-seeds 0-4`
runs them: the search on draw 0, then the chosen configuration on draws 1-4, with seed 0. Per
encoder it reports:

    handicap = full-search test Top-1 - default test Top-1   (the mean over draws)

Targets: the 8 encoders' handicaps differ by at most 1.0 point on each dataset, and Table 8's
verdicts (sphereM+ against the best baseline) agree. The spread is a range of 8 noisy means, so the
table gives its noise floor: the spread that 8 truly equal handicaps would show with
these draws (median and 95th percentile of stats.spread_if_equal). A spread below the floor's 95th
percentile cannot be told from equal handicaps. Beside each pair of verdicts, the margin shift (full
search's margin of sphereM+ over the best baseline - the default's) says whether the default favours
sphereM+ where it matters.

The sweeps run with --resume into cached databases (--cache, default ~/.cache/sphere-synth/fair), so
a rerun only recomputes the table. The full search takes hours on a 2-core CPU (docs/table8.md); run it
in the background, or on a cluster with --executor submitit. With --default-db and --full-db it reads
existing databases and trains nothing.

    python benchmarks/bench_fair.py                       # run (or resume) both, print the table
    python benchmarks/bench_fair.py --default-db results/results.sqlite --full-db YOUR_FOLDER/fair-full.sqlite --no-run
    python benchmarks/bench_fair.py --default-reference fair_quick --full-reference fair_full --datasets all

A shipped reference (experiments/references/) stands for either sweep: it holds the chosen
configuration's rows, which is all the table reads. --default-experiment / --full-experiment name the
experiment where a database holds several (the cold search and the transfer search, say).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.report import reference  # noqa: E402
from synth.datasets import PAPER_DATASETS  # noqa: E402
from experiments.models.encoders import TABLE8  # noqa: E402
from experiments.search.space import load_space  # noqa: E402
from experiments.report.table8 import bayes_ceilings, build_table8  # noqa: E402
from experiments.store.results import ResultsStore, choose_experiment  # noqa: E402
from experiments.search.selection import choose  # noqa: E402
from experiments.report.stats import difference, draw_means, joint_deviations, judge, pool, spread_if_equal  # noqa: E402
from experiments.report.tables import to_markdown  # noqa: E402

HELD_OUT = ("U3", "S1.2", "S3.4")  # one uniform, two stratified of different kappa_max (32^2, 128^2)


def sweep(space: str, db: Path, datasets) -> None:
    cmd = [sys.executable, "-m", "experiments", "sweep", "--space", space, "--datasets", ",".join(datasets),
           "--encoders", "table8", "--seeds", "0", "--data-seeds", "0-4", "--db", str(db), "--resume"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def cells_of(db: Path | None, space: str, datasets, experiment: str | None = None, ref: str | None = None):
    """(experiment, {(dataset, encoder): Cell}, the final rows) of the space's experiment in ``db`` (or
    the one named), or of the reference ``ref``."""
    if ref is not None:
        r = reference.load(ref)
        exp, rows = f"reference {r['name']} ({r['experiment']})", reference.final_rows(r, r["experiment"])
    else:
        with ResultsStore(db, readonly=True) as store:
            exp = choose_experiment(store, experiment or load_space(space).name)  # a space given as a path too
            rows = store.rows(exp, "final")
    rows = [r for r in rows if r["dataset"] in datasets]
    return exp, choose(rows), rows


def table8_of(cells, rows, datasets):
    seeds = {d: {r["data_seed"] for r in rows if r["dataset"] == d} for d in datasets}
    return build_table8(cells, list(datasets), list(TABLE8), bayes_ceilings({d: d for d in datasets}, seeds))


def handicap_table(default, full, datasets) -> tuple[list, list, dict]:
    """Per dataset and encoder: the handicap on the draws both sweeps have, with its 95 % t interval and
    verdict (stats.judge, as every table), the spread of the 8 handicaps and its noise floor (the spread
    8 equal handicaps would show: stats.joint_deviations of the per-draw handicaps, jointly, so their
    correlation is kept). A cell the full search has not finished is "—".
    Returns the table's records, the verdicts and the numeric handicaps {dataset: {encoder: points}}."""
    (_, cells_d, rows_d), (_, cells_f, rows_f) = default, full
    recs, verdicts, handicaps = [], [], {}
    for d in datasets:
        rec = {"dataset": d}
        hs, per_draw, keys = handicaps.setdefault(d, {}), {}, set()
        for e in TABLE8:
            a, b = cells_f.get((d, e)), cells_d.get((d, e))
            if a is None or b is None:
                rec[e] = "—"
                continue
            fa, fb = draw_means(a.values()), draw_means(b.values())
            common = tuple(k for k in fa if k in fb)
            keys.add(common)
            per_draw[e] = [fa[k] - fb[k] for k in common]
            j = judge({"default": difference(a.values(), b.values())})
            hs[e] = j.delta if j.estimate is not None else float(np.mean(per_draw[e]))
            rec[e] = f"{hs[e]:+.1f}" + ("" if j.ci is None else f" [{j.low:+.1f}, {j.high:+.1f}]")
        draws = {len(k) for k in keys}  # how many draws each encoder has in both
        if not draws:
            rec["draws"] = "—"
        elif len(draws) == 1:
            rec["draws"] = str(min(draws))
        else:  # encoders finished on different numbers of draws: the table says so
            rec["draws"] = f"{min(draws)}-{max(draws)}"
        rec["spread"] = rec["spread if equal"] = "—"
        if len(hs) == len(TABLE8):
            rec["spread"] = f"{max(hs.values()) - min(hs.values()):.1f}"
        # one set of draws for all 8: their per-draw handicaps as columns, deviations drawn jointly
        if len(per_draw) == len(TABLE8) and len(keys) == 1:
            dev = joint_deviations(np.array([per_draw[e] for e in TABLE8]).T)
            if dev is not None:
                floor = spread_if_equal(dev, np.zeros(len(TABLE8)))
                rec["spread if equal"] = f"{np.median(floor):.1f} (95 %: {np.percentile(floor, 95):.1f})"
        recs.append(rec)
    # verdicts only where both sweeps have every encoder on the same (draw, seed) pairs: a dataset
    # whose full search is still running has no verdict yet (not a disagreement)
    done = [d for d in datasets if all((d, e) in cells_d and (d, e) in cells_f
                                       and sorted(cells_d[d, e].by_draw()) == sorted(cells_f[d, e].by_draw())
                                       for e in TABLE8)]
    t_d, t_f = (table8_of(c, rows, done) for c, rows in ((cells_d, rows_d), (cells_f, rows_f)))
    fmt = lambda r: "—" if r["ci"] is None else f"{r['delta']:+.1f} [{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}] {r['verdict']}"  # noqa: E731
    for rd, rf in zip(t_d.rows, t_f.rows):
        verdicts.append({"dataset": rd["dataset"], "default (best baseline)": f"{fmt(rd)} ({rd['best_baseline']})",
                         "full search (best baseline)": f"{fmt(rf)} ({rf['best_baseline']})",
                         # how far the full search moves sphereM+'s margin over the best baseline: a
                         # default biased towards sphereM+ would show negative shifts on most datasets
                         "margin shift": f"{rf['delta'] - rd['delta']:+.1f}",
                         "agree": "yes" if rd["verdict"] == rf["verdict"] else "NO"})
    for d in datasets:
        if d not in done:
            n = sum((d, e) in cells_f for e in TABLE8)
            verdicts.append({"dataset": d, "default (best baseline)": "—",
                             "full search (best baseline)": f"not finished ({n} of {len(TABLE8)} encoders chosen)",
                             "margin shift": "—", "agree": "—"})
    return recs, verdicts, handicaps


def pooled_handicaps(default, full, datasets) -> dict:
    """{encoder: the handicap pooled over the datasets both sweeps have (stats.pool of stats.difference)}."""
    (_, cells_d, _), (_, cells_f, _) = default, full
    out = {}
    for e in TABLE8:
        est = [difference(cells_f[d, e].values(), cells_d[d, e].values()) for d in datasets
               if (d, e) in cells_f and (d, e) in cells_d]
        if est and all(x is not None for x in est):
            out[e] = pool(est)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sphere-synth" / "fair")
    p.add_argument("--default-space", default="fair_quick")
    p.add_argument("--full-space", default="fair")
    p.add_argument("--default-db", type=Path)
    p.add_argument("--full-db", type=Path)
    p.add_argument("--default-experiment", help="the experiment in --default-db (when it holds several)")
    p.add_argument("--full-experiment", help="the experiment in --full-db (when it holds several)")
    p.add_argument("--default-reference", help="a reference (name or file) instead of --default-db; implies --no-run")
    p.add_argument("--full-reference", help="a reference (name or file) instead of --full-db; implies --no-run")
    p.add_argument("--datasets", default=",".join(HELD_OUT), help="a list, or 'all' (the 20 paper datasets)")
    p.add_argument("--no-run", action="store_true", help="read the databases, train nothing")
    a = p.parse_args(argv)
    datasets = list(PAPER_DATASETS) if a.datasets == "all" else a.datasets.split(",")
    a.no_run = a.no_run or bool(a.default_reference or a.full_reference)
    a.cache.mkdir(parents=True, exist_ok=True)
    default_db = a.default_db or a.cache / "default.sqlite"
    full_db = a.full_db or a.cache / "full.sqlite"
    if not a.no_run:
        sweep(a.default_space, default_db, datasets)
        sweep(a.full_space, full_db, datasets)
    default = cells_of(default_db, a.default_space, datasets, a.default_experiment, a.default_reference)
    full = cells_of(full_db, a.full_space, datasets, a.full_experiment, a.full_reference)
    recs, verdicts, handicaps = handicap_table(default, full, datasets)
    print(f"handicap = full fair search ({full[0]}) - default ({default[0]}), test Top-1 mean over draws, points\n")
    print(to_markdown(recs))
    print(to_markdown(verdicts))
    spreads = [float(r["spread"]) for r in recs if r["spread"] != "—"]
    if spreads:
        print(f"largest spread of the handicaps over the 8 encoders: {max(spreads):.1f} points (target <= 1.0; "
              "'spread if equal' is what 8 equal handicaps would show by noise with these draws); "
              f"verdicts agree on {sum(v['agree'] == 'yes' for v in verdicts)} of "
              f"{sum(v['agree'] != '—' for v in verdicts)} datasets with both sweeps finished")
    print("mean handicap per encoder over the datasets [95 % interval, stats.pool: each dataset weighing the same, "
          "the draws as the noise]: " + ", ".join(
              f"{e} {p.value:+.2f} [{p.interval()[0]:+.2f}, {p.interval()[1]:+.2f}]" for e, p in pooled_handicaps(
                  default, full, datasets).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
