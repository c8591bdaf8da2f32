"""Rung decisions depend on values, not on the order trials report.

The search runs for real (``search.CellSearch``: ask, report, should_prune, tell, replay) over
synthetic validation curves: the trainer is replaced by ``bench_pruning.replay_population``, which
calls ``on_epoch`` as training does. Optuna's asynchronous successive halving fails the first two
tests (it promotes the first trial to report at every rung)."""

import sys
from pathlib import Path

import pytest

from experiments.search import pruners, cell_search as search
from experiments.store import results
from experiments.search.space import SearchPolicy, Space
from experiments.models.train import TrainSettings, resolve_device
from synth import datasets

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
import bench_pruning  # noqa: E402

EPOCHS = 27
LRS = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009]


def curve(final, rate):
    """A learning curve that rises to ``final`` at ``rate`` per epoch (ordering fixed from epoch 1)."""
    return [final * (1 - (1 - rate) ** (e + 1)) for e in range(EPOCHS)]


# trial 0 (lr 0.001) is clearly the worst at every epoch; the others by lr, best last
FINAL = {lr: 20.0 + 7 * i for i, lr in enumerate(LRS)}


@pytest.fixture(scope="module")
def data():
    return datasets.generate("U1", 0)


def make_space(lrs):
    settings = TrainSettings(epochs=EPOCHS, patience=100, batch_size=1024)
    return Space("prune-test", settings, {"lr": list(lrs), "hidden_dim": [16], "num_filts": [8]}, {}, "",
                 {"sampler": "grid", "pruner": "halving"})


def truth_rows(space, data, finals=FINAL):
    cell = search.Cell("U1", 0, "xyz", results.digest(data.recipe.to_dict()))
    rows = []
    for c in space.configs("xyz"):
        vc = curve(finals[c["lr"]], 0.3)
        rows.append({"dataset": "U1", "recipe_hash": cell.recipe_hash, "data_seed": 0, "encoder": "xyz",
                     "config_hash": results.digest(c), "config": results.canonical(c), "train_seed": 0,
                     "settings_hash": results.digest(space.settings.to_dict()), "val_top1": max(vc),
                     "test_top1": max(vc) - 1, "epochs_run": EPOCHS, "pruned_at": None, "diverged": 0,
                     "val_curve": results.canonical(vc)})
    return cell, rows


def run_cell(space, policy, data, max_pop=64, store=None, live_limit=None, rows=None):
    cell, truth = truth_rows(space, data)
    store = store or search.MemoryStore([])
    replay = bench_pruning.replay_population({r["config_hash"]: r for r in (rows or truth)})
    from unittest import mock

    with mock.patch.object(search, "run_population", replay):
        cs = search.CellSearch(space, policy, "t", cell, data, resolve_device("cpu"), store, max_pop)
        ranked = cs.run(live_limit)
    pruned = {(r["config_hash"], r["pruned_at"]) for r in store.new if r["pruned_at"] is not None}
    chosen = None if not ranked else results.digest(search._config_of(ranked[0].params, cs.by_index))
    return {"pruned": pruned, "chosen": chosen, "epochs": sum(r["epochs_run"] for r in store.new), "store": store}


POLICY = SearchPolicy(pruner="halving", first_rung=3, finalists=1)


def test_the_worst_trial_0_is_pruned_at_the_first_rung(data):
    space = make_space(LRS)
    out = run_cell(space, POLICY, data)
    worst = results.digest(space.configs("xyz")[0])
    assert (worst, 3) in out["pruned"]
    # 9 trials, keep 3 at epoch 3, 1 at epoch 9: the best (lr 0.009) is chosen
    assert len(out["pruned"]) == 8 and sorted(e for _, e in out["pruned"]) == [3] * 6 + [9] * 2
    assert out["chosen"] == results.digest(space.configs("xyz")[-1])


@pytest.mark.parametrize("pruner", ["halving", "hyperband"])
def test_permuting_the_trials_of_a_population_prunes_the_same_configurations(data, pruner):
    policy = SearchPolicy(pruner=pruner, first_rung=1, finalists=1)
    outs = [run_cell(make_space(order), policy, data) for order in (LRS, LRS[::-1], LRS[4:] + LRS[:4])]
    assert outs[0]["pruned"] and all(o["pruned"] == outs[0]["pruned"] for o in outs)
    assert all(o["chosen"] == outs[0]["chosen"] and o["epochs"] == outs[0]["epochs"] for o in outs)


def test_ties_are_broken_by_configuration_not_by_order(data):
    tied = {lr: 50.0 for lr in LRS}
    outs = []
    for order in (LRS, LRS[::-1]):
        space = make_space(order)
        _, rows = truth_rows(space, data, tied)
        outs.append(run_cell(space, POLICY, data, rows=rows))
    assert outs[0]["pruned"] == outs[1]["pruned"] and len(outs[0]["pruned"]) == 8


def test_later_populations_are_decided_against_earlier_ones_and_resume_decides_the_same(data):
    space = make_space(LRS)
    whole = run_cell(space, POLICY, data, max_pop=3)  # three populations of three trials
    # the first population (lr 0.001-0.003) holds the three worst: the later ones must not lose to
    # their own population only; the best of all is still chosen
    assert whole["chosen"] == results.digest(space.configs("xyz")[-1])
    store = search.MemoryStore([])
    first = run_cell(space, POLICY, data, max_pop=3, store=store, live_limit=1)  # killed after one population
    assert first["chosen"] is None and len(store.new) == 3
    resumed = run_cell(space, POLICY, data, max_pop=3, store=search.MemoryStore(store.new))
    assert {(r["config_hash"], r["pruned_at"]) for r in store.new + resumed["store"].new
            if r["pruned_at"] is not None} == whole["pruned"]
    assert resumed["chosen"] == whole["chosen"]


def test_keeps_at_least_one_and_a_third():
    assert pruners.keeps({"a": 1.0}, 3) == {"a"}
    assert pruners.keeps({"a": 1.0, "b": 3.0, "c": 2.0, "d": 0.0, "e": 5.0, "f": 4.0}, 3) == {"e", "f"}
    assert pruners.keeps({"b": 1.0, "a": 1.0}, 3) == {"a"}  # a tie goes to the configuration key
    assert pruners.rungs(3, 100, 3) == [3, 9, 27, 81] and pruners.rungs(9, 27, 3) == [9]
