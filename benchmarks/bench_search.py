"""Fidelity of the adaptive search against the exhaustive grid, side by side in one run (not a test).

Cells: datasets x encoders (default U1, uniform, and S2.3, stratified with many polar centres; x
sphereM+ and grid), each over the same sub-grid of the paper grid (6 learning rates x 7 r_min x
3 scales = 126 configurations; h = 1, k = 128, d = 64, dropout 0.5) at the same epochs.

- exhaustive: every configuration on every seed of --seeds (cached in --db: reruns are quick);
  chosen configuration = best mean validation Top-1 over the seeds;
- adaptive: the toolkit's search (grid sampler, halving pruner, search seed 0), then the best
  --finalists configurations race over the seeds as in the paper preset (--no-race: every finalist
  on every seed); chosen = the best finalist on every seed by mean validation Top-1.

Per cell it prints member-epochs and wall time of both (ratios), the mean test Top-1 of each
method's chosen configuration with its standard error over seeds, the adaptive choice's rank in
the exhaustive ranking, and the Spearman correlation of early-epoch with final validation Top-1
(from the exhaustive runs' stored curves). Last line: ``fidelity <mean Δ> points, compute <ratio>x``
(Δ = adaptive − exhaustive test Top-1 of the chosen configurations; compute = exhaustive member-
epochs / adaptive member-epochs, finalists included).

    python benchmarks/bench_search.py [--datasets U1,S2.3] [--encoders sphereM+,grid] [--seeds 0-4]
        [--epochs 27] [--pruner halving] [--finalists 3] [--no-race] [--db benchmarks/bench_search.sqlite]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from synth.cliutil import parse_int_list
from experiments.store import results
from experiments.search.space import Space
from experiments.search.study import Study
from experiments.models.train import TrainSettings, resolve_device

SUBGRID = {"lr": [0.01, 0.005, 0.002, 0.001, 0.0005, 0.00005], "num_hidden_layers": [1], "hidden_dim": [128],
           "num_filts": [64], "dropout": [0.5]}
SCALES = {"sphereM+": {"frequency_num": [8, 16, 32], "min_radius": [0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 0.0001]},
          "grid": {"frequency_num": [8, 16, 32], "min_radius": [0.1, 0.05, 0.02, 0.01, 0.005, 0.001, 0.0001]}}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="U1,S2.3")
    p.add_argument("--encoders", default="sphereM+,grid")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--epochs", type=int, default=27)
    p.add_argument("--pruner", default="halving", choices=["halving", "hyperband"])
    p.add_argument("--finalists", type=int, default=3)
    p.add_argument("--race", action=argparse.BooleanOptionalAction, default=True,
                   help="finalists race over the seeds (the paper preset's default)")
    p.add_argument("--lrs", type=int, default=6, help="how many of the six learning rates (a smaller run)")
    p.add_argument("--db", type=Path, default=Path("benchmarks/bench_search.sqlite"))
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    device = resolve_device(a.device)
    seeds = parse_int_list(a.seeds)
    names = [n.strip() for n in a.datasets.split(",")]
    encs = [e.strip() for e in a.encoders.split(",")]
    settings = TrainSettings(epochs=a.epochs, patience=a.epochs, batch_size=1024)
    grid = dict(SUBGRID, lr=SUBGRID["lr"][:a.lrs])
    space = Space("bench_search", settings, grid, {e: SCALES[e] for e in encs})
    policy = dict(sampler="grid", pruner=a.pruner, finalists=a.finalists, race=a.race, search_seeds=[0])
    store = results.ResultsStore(a.db)
    deltas, ex_total, ad_total = [], 0, 0
    print(f"{len(space.configs(encs[0]))} configurations per cell, {a.epochs} epochs, seeds {a.seeds}, "
          f"pruner {a.pruner}, {a.finalists} finalists{' racing' if a.race else ''}, device {device}")
    for name in names:
        for enc in encs:
            common = dict(space=space, datasets=[name], encoders=[enc], seeds=seeds, device=device, progress=False)
            # exhaustive (cached): every configuration on every seed
            t = time.perf_counter()
            Study.build(**common, db=a.db, resume=True).search(store, echo=lambda line: None)
            ex_wall_new = time.perf_counter() - t
            ex_rows = [r for r in store.rows(space.experiment, "final") if r["dataset"] == name and r["encoder"] == enc
                       and r["train_seed"] in seeds]
            ex_me = sum(r["epochs_run"] for r in ex_rows)
            ex_wall = sum(r["seconds"] for r in ex_rows)  # training seconds, also when cached
            by_cfg: dict = {}
            for r in ex_rows:
                by_cfg.setdefault(r["config_hash"], []).append(r)
            ranking = sorted(by_cfg, key=lambda h: (-np.mean([r["val_top1"] for r in by_cfg[h]]), h))
            ex_choice = by_cfg[ranking[0]]
            # adaptive: a fresh search every run (its cost is what is measured)
            ad_db = a.db.with_name(a.db.stem + f"_adaptive_{name}_{enc}.sqlite")
            for f in (ad_db, ad_db.with_name(ad_db.name + "-wal"), ad_db.with_name(ad_db.name + "-shm")):
                f.unlink(missing_ok=True)
            ad_store = results.ResultsStore(ad_db)
            t = time.perf_counter()
            study = Study.build(**common, db=ad_db, search=policy)
            summary = study.search(ad_store, echo=lambda line: None)
            ad_wall = time.perf_counter() - t
            exp = study.experiment
            search_rows = ad_store.rows(exp, "search")
            final_rows = ad_store.rows(exp, "final")
            copied = {(r["config_hash"], r["train_seed"]) for r in final_rows} & \
                {(r["config_hash"], r["train_seed"]) for r in search_rows if r["pruned_at"] is None}
            ad_me = sum(r["epochs_run"] for r in search_rows) + sum(
                r["epochs_run"] for r in final_rows if (r["config_hash"], r["train_seed"]) not in copied)
            ad_store.close()
            fin: dict = {}
            for r in final_rows:
                fin.setdefault(r["config_hash"], []).append(r)
            most = max(len(rs) for rs in fin.values())  # as the report: only finalists on every seed compete
            ad_hash = max(sorted(h for h in fin if len(fin[h]) == most),
                          key=lambda h: np.mean([r["val_top1"] for r in fin[h]]))
            ad_choice = fin[ad_hash]
            ex_test = [r["test_top1"] for r in ex_choice]
            ad_test = [r["test_top1"] for r in ad_choice]
            se = float(np.std(ex_test, ddof=1) / np.sqrt(len(ex_test))) if len(ex_test) > 1 else float("nan")
            delta = float(np.mean(ad_test) - np.mean(ex_test))
            deltas.append(delta)
            ex_total += ex_me
            ad_total += ad_me
            seed0 = [r for r in ex_rows if r["train_seed"] == seeds[0]]
            final_val = [r["val_top1"] for r in seed0]
            rho = {e: spearmanr([json.loads(r["val_curve"])[e - 1] for r in seed0], final_val).statistic
                   for e in (1, 3, 9) if e < a.epochs}
            pruned = summary["cells"][0]["pruned"]
            search_me = sum(r["epochs_run"] for r in search_rows)
            print(f"{name:5s} {enc:9s} exhaustive {ex_me:6d} member-epochs ({ex_wall:6.0f} s); adaptive {ad_me:5d} "
                  f"(search {search_me}, {pruned} of {len(by_cfg)} pruned; finalists' runs "
                  f"{sorted(len(rs) for rs in fin.values())} seeds; {ad_wall:5.0f} s): "
                  f"{ex_me / ad_me:5.1f}x member-epochs, {ex_wall / ad_wall:5.1f}x wall; pruner alone "
                  f"{len(by_cfg) * a.epochs / search_me:4.1f}x")
            print(f"      test Top-1 of the chosen configuration: exhaustive {np.mean(ex_test):.2f} ± {se:.2f} (SE), "
                  f"adaptive {np.mean(ad_test):.2f}: Δ {delta:+.2f} ({delta / se if se else float('nan'):+.1f} SE); "
                  f"adaptive choice ranks {ranking.index(ad_hash) + 1} of {len(ranking)} in the exhaustive ranking; "
                  f"Spearman of val Top-1 at epoch e vs {a.epochs}: "
                  + ", ".join(f"e={e}: {v:.2f}" for e, v in rho.items())
                  + (f" [exhaustive trained now: {ex_wall_new:.0f} s]" if ex_wall_new > 1 else " [exhaustive cached]"))
    store.close()
    print(f"fidelity {np.mean(deltas):+.2f} points, compute {ex_total / ad_total:.1f}x")


if __name__ == "__main__":
    main()
