"""Pruning policies against the ground truth of the exhaustive run, side by side (not a test).

1. **Ground truth.** Every configuration of each (dataset, encoder) cell trains to the end (pruner
   none) on training seed 0 of draw 0: the ``fair_quick`` grid (4 configurations per encoder), or a
   fixed random subsample of the ``fair`` space (``--sampler random --trials N``: the same N
   configurations the random sampler would try). Stored in ``--db`` (outside the repository;
   ``--resume`` continues a killed run). Its best-by-validation configuration is the true choice.
2. **Policies, replayed exactly.** A member that is never pruned computes exactly what the exhaustive
   run computed (members never influence each other; ``experiments.models.train``), so each policy is run
   through the real search (``search.CellSearch``: the same reports, decisions and tells) with the
   trainer replaced by the stored curves: a pruned member stops where the policy stopped it. The
   result is what a live search would have chosen and trained on this machine, without training.
3. **Per policy**: regret = the exhaustive choice's test Top-1 minus the policy's choice's (points;
   0 when it chose the same configuration), and member-epochs as a fraction of the exhaustive run's.
   Policies: none; the old order-dependent ASHA (Optuna's ``SuccessiveHalvingPruner`` with the old
   rungs 3, 9, 27, 81: kept here only as the reference); halving by value at several first rungs;
   Hyperband by value.
4. **Curves** (to choose the rungs): per encoder, how often the cell's final best configuration is in
   the top third at epoch r (best validation so far), and the epoch at which the best configuration
   reaches 95 % of its final validation Top-1.

    python benchmarks/bench_pruning.py --space fair_quick --datasets U2,S2.3,S4.4 --db YOUR_FOLDER/gt_quick.sqlite
    python benchmarks/bench_pruning.py --space fair --sampler random --trials 9 --db YOUR_FOLDER/gt_fair.sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from unittest import mock

import numpy as np

from experiments.search import pruners, cell_search as search
from experiments.store import results
from experiments.search.plan import ETA
from experiments.search.space import SearchPolicy, load_space
from experiments.search.study import Study
from experiments.models.train import resolve_device

TABLE8 = "xyz,wrap,wrap_ffn,grid,theory,sphereM+,rbf,rff"


def ground_truth(space, datasets, encoders, sampler, trials, db, executor, resume=True):
    """Train (or resume) the exhaustive run; returns {(dataset, encoder): [row, ...]} of seed 0."""
    search = {"sampler": sampler, "pruner": "none", "finalists": "all"}
    if sampler != "grid":
        search["trials"] = trials
    study = Study.build(space=space, datasets=datasets, encoders=encoders, seeds="0", data_seeds="0",
                        search=search, db=str(db), resume=resume, executor=executor, progress=True)
    study.run()
    with results.ResultsStore(db, readonly=True) as store:
        rows = store.rows(study.experiment, "final")
    cells: dict = {}
    for r in rows:
        if r["train_seed"] == 0:
            cells.setdefault((r["dataset"], r["encoder"]), []).append(r)
    return study, cells


def replay_population(truth: dict):
    """A stand-in for ``populations.run_population`` that replays the stored curves of ``truth``
    ({config_hash: row}) through ``on_epoch``, as training would have called it."""

    def run(pop, data, settings, device, experiment, progress=None, on_epoch=None):
        gt = [truth[results.digest(c)] for c, _ in pop.members]
        curves = [json.loads(r["val_curve"]) for r in gt]
        every = settings.eval_every
        active, pruned_at = set(range(len(gt))), {}
        for k in range(max(len(c) for c in curves)):
            present = [i for i in sorted(active) if len(curves[i]) > k]
            if not present:
                break
            gone = set(on_epoch((k + 1) * every, present, [curves[i][k] for i in present]) or ()) if on_epoch else set()
            for i in gone:
                pruned_at[i] = (k + 1) * every
            active -= gone
        rows = []
        for i, r in enumerate(gt):
            row = dict(r, experiment=experiment, stage=pop.stage)
            if i in pruned_at:
                e = pruned_at[i]
                kept = curves[i][:e // every]
                row.update(val_top1=max(kept), val_top3=None, val_mrr=None, test_top1=None, test_top3=None,
                           test_mrr=None, epochs_run=e, pruned_at=e, val_curve=results.canonical(kept))
            rows.append(row)
        return rows

    return run


def old_asha(policy, epochs, eval_every):
    """The rule before rung decisions by value (reference only): Optuna's asynchronous successive halving."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(eval_every, epochs // ETA**3), reduction_factor=ETA)


def simulate(space, policy: SearchPolicy, cell: search.Cell, data, truth_rows: list, old: bool = False) -> dict:
    """One policy on one cell, replayed: the chosen configuration's hash and the member-epochs."""
    truth = {r["config_hash"]: r for r in truth_rows}
    store = search.MemoryStore([])
    with mock.patch.object(search, "run_population", replay_population(truth)), \
            (mock.patch.object(search, "_pruner", old_asha) if old else contextlib.nullcontext()):
        cs = search.CellSearch(space, policy, "replay", cell, data, resolve_device("cpu"), store, max_pop=64)
        ranked = cs.run()
    chosen = search._config_of(ranked[0].params, cs.by_index) if ranked else None
    return {"chosen": results.digest(chosen) if chosen is not None else None,
            "member_epochs": sum(r["epochs_run"] for r in store.new),
            "pruned": {r["config_hash"] for r in store.new if r["pruned_at"] is not None}}


def best_by_val(rows):
    ok = [r for r in rows if not r["diverged"]]
    return max(ok, key=lambda r: (r["val_top1"], r["config_hash"]))


def curves_table(cells: dict, rungs_to_try) -> list[str]:
    by_enc: dict = {}
    for (d, e), rows in cells.items():
        by_enc.setdefault(e, []).append(rows)
    lines = ["| encoder | cells | " + " | ".join(f"winner in top 1/3 at epoch {r}" for r in rungs_to_try)
             + " | best reaches 95 % at epoch (median, max) |", "|---" * (3 + len(rungs_to_try)) + "|"]
    for e, cell_list in by_enc.items():
        survive = {r: 0 for r in rungs_to_try}
        reach = []
        for rows in cell_list:
            best = best_by_val(rows)
            curves = {r["config_hash"]: json.loads(r["val_curve"]) for r in rows if not r["diverged"]}
            c = curves[best["config_hash"]]
            reach.append(next(i + 1 for i, v in enumerate(c) if v >= 0.95 * max(c)))
            for rung in rungs_to_try:
                vals = {h: max(v[:rung]) for h, v in curves.items() if len(v) >= rung}
                if best["config_hash"] in vals and best["config_hash"] in pruners.keeps(vals, ETA):
                    survive[rung] += 1
        lines.append(f"| {e} | {len(cell_list)} | " + " | ".join(f"{survive[r]}/{len(cell_list)}" for r in rungs_to_try)
                     + f" | {int(np.median(reach))}, {max(reach)} |")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="fair_quick")
    p.add_argument("--datasets", default="U2,S2.3,S4.4")
    p.add_argument("--encoders", default=TABLE8)
    p.add_argument("--sampler", default="grid", choices=["grid", "random"])
    p.add_argument("--trials", type=int, default=9, help="random: configurations per cell")
    p.add_argument("--first-rungs", default="1,3,9,27", help="halving's first rungs to compare")
    p.add_argument("--db", type=Path, required=True, help="the exhaustive run's database (outside the repository)")
    p.add_argument("--executor", default="local")
    p.add_argument("--cells", action="store_true", help="print every cell's regret and member-epochs")
    a = p.parse_args()

    study, cells = ground_truth(a.space, a.datasets, a.encoders, a.sampler, a.trials, a.db, a.executor)
    space = load_space(a.space)
    first_rungs = [int(x) for x in a.first_rungs.split(",")]
    base = dict(sampler=a.sampler, trials=a.trials if a.sampler != "grid" else None, finalists=1, search_seeds=(0,))
    policies = [("none", SearchPolicy(pruner="none", **base), False),
                ("old ASHA (by report order; rungs 3, 9, 27, 81)", SearchPolicy(pruner="halving", **base), True)]
    policies += [(f"halving by value, rungs {', '.join(map(str, pruners.rungs(r, space.settings.epochs, ETA)))}",
                  SearchPolicy(pruner="halving", first_rung=r, **base), False) for r in first_rungs]
    policies += [(f"Hyperband by value, first rung {r}", SearchPolicy(pruner="hyperband", first_rung=r, **base), False)
                 for r in first_rungs]

    exhaustive_epochs = sum(r["epochs_run"] for rows in cells.values() for r in rows)
    print(f"# {a.space}: {len(cells)} cells ({a.datasets} x {a.encoders}), sampler {a.sampler}"
          + (f" ({a.trials} configurations per cell)" if a.sampler != "grid" else "")
          + f"; exhaustive: {exhaustive_epochs} member-epochs\n")
    print("| policy | mean regret (points) | max regret | cells with another choice | member-epochs / exhaustive |")
    print("|---|---|---|---|---|")
    detail = []
    # the true choice: what the search itself chooses with every configuration trained to the end
    # (best validation Top-1; a tie between configurations broken as the search breaks it)
    truth_choice = {key: simulate(space, policies[0][1], search.Cell(key[0], 0, key[1], rows[0]["recipe_hash"]),
                                  study.draws[(key[0], 0)], rows)["chosen"] for key, rows in cells.items()}
    for label, policy, old in policies:
        regrets, epochs, other = [], 0, 0
        for (d, e), rows in sorted(cells.items()):
            cell = search.Cell(d, 0, e, rows[0]["recipe_hash"])
            sim = simulate(space, policy, cell, study.draws[(d, 0)], rows, old)
            truth = {r["config_hash"]: r for r in rows}
            best = truth[truth_choice[(d, e)]]
            chosen = truth.get(sim["chosen"])
            regret = best["test_top1"] - (chosen["test_top1"] if chosen is not None else 0.0)
            regrets.append(regret)
            epochs += sim["member_epochs"]
            other += sim["chosen"] != best["config_hash"]
            detail.append(f"| {label} | {d} | {e} | {regret:+.2f} | {sim['member_epochs']} / "
                          f"{sum(r['epochs_run'] for r in rows)} |")
        print(f"| {label} | {np.mean(regrets):.2f} | {max(regrets):.2f} | {other}/{len(cells)} | "
              f"{epochs / exhaustive_epochs:.0%} |")
    if a.cells:
        print("\n| policy | dataset | encoder | regret | member-epochs |\n|---|---|---|---|---|")
        print("\n".join(detail))
    print("\n## Curves: does each cell's best configuration survive a first rung at epoch r?\n")
    print("\n".join(curves_table(cells, first_rungs)))


if __name__ == "__main__":
    main()
