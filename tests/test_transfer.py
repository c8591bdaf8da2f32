"""Transfer between searches — earlier datasets' best configurations are tried first."""

import json
import sqlite3

import pytest

from synth import SynthError
from experiments.search.cell_search import MemoryStore
from experiments.search.space import SearchPolicy, experiment_name, load_space, policy_from
from experiments.search.study import Study
from experiments.search.transfer import warm_start

SPACE = """
description = "transfer test: 8 configurations of xyz"
[settings]
epochs = 3
patience = 100
batch_size = 1024
[grid]
lr = [0.002, 0.005, 0.01, 0.02]
hidden_dim = [16, 32]
num_filts = [16]
"""


def _row(dataset, encoder, lr, val, pruned=None, diverged=False):
    return {"experiment": "src", "stage": "search", "dataset": dataset, "encoder": encoder,
            "config": json.dumps({"lr": lr}), "val_top1": val, "pruned_at": pruned, "diverged": diverged}


def test_warm_start_takes_each_source_datasets_best_finished_configurations_once():
    class Space:  # what warm_start reads of a space
        @staticmethod
        def configs(encoder):
            return [{"lr": lr} for lr in (0.1, 0.2, 0.3, 0.4, 0.5)]

    space = Space()
    store = MemoryStore([
        _row("A", "xyz", 0.1, 50.0), _row("A", "xyz", 0.2, 70.0), _row("A", "xyz", 0.3, 60.0),
        _row("A", "xyz", 0.4, 90.0, pruned=9),        # pruned: its best-so-far is not a finished score
        _row("A", "xyz", 0.5, 95.0, diverged=True),   # diverged
        _row("A", "grid", 0.1, 99.0),                 # another encoder
        _row("B", "xyz", 0.2, 80.0), _row("B", "xyz", 0.5, 75.0), _row("B", "xyz", 0.1, 75.0),
        _row("T", "xyz", 0.4, 99.0),                  # the target dataset is never its own source
    ])
    policy = SearchPolicy(sampler="tpe", trials=5, transfer_from="src", transfer_datasets=("A", "B", "T"),
                          transfer_top=2)
    got = warm_start(store, policy, "T", "xyz", space)
    # A: 0.2 (70), 0.3 (60); B: 0.2 again (counted once), then the tie at 75 by configuration: 0.1 < 0.5
    assert got == [{"lr": 0.2}, {"lr": 0.3}, {"lr": 0.1}]
    assert warm_start(store, SearchPolicy(sampler="tpe", trials=5), "T", "xyz", space) == []
    with pytest.raises(SynthError, match="no finished search trial of rbf on A"):
        warm_start(store, policy, "T", "rbf", space)


@pytest.mark.parametrize("kwargs, match", [
    ({"sampler": "tpe", "trials": 5, "transfer_from": "src"}, "go together"),
    ({"sampler": "tpe", "trials": 5, "transfer_datasets": ("A",)}, "go together"),
    ({"sampler": "grid", "transfer_from": "src", "transfer_datasets": ("A",)}, "grid tries every configuration"),
    ({"sampler": "tpe", "trials": 5, "transfer_from": "src", "transfer_datasets": ("A",), "transfer_top": 0}, "transfer_top"),
])
def test_bad_transfer_policies_are_refused(kwargs, match):
    with pytest.raises(SynthError, match=match):
        SearchPolicy(**kwargs)


def test_a_search_without_transfer_keeps_its_experiment_name():
    """Transfer is part of the policy, so it names its own experiment; a policy without it must not
    rename the searches stored before transfer existed (the background full search resumes them)."""
    space = load_space("fair")
    policy = policy_from(space.search, {})
    assert not any(k.startswith("transfer") for k in policy.to_dict())
    with_transfer = policy_from(space.search, {"transfer_from": "fair-x", "transfer_datasets": "U1,S2.3"})
    assert experiment_name(space, with_transfer) != experiment_name(space, policy)
    assert with_transfer.transfer_datasets == ("U1", "S2.3")


def test_a_transfer_search_tries_the_sources_best_first_then_searches_on(tmp_path):
    (tmp_path / "s.toml").write_text(SPACE)
    db = tmp_path / "r.sqlite"
    source = Study.build(space=str(tmp_path / "s.toml"), datasets="U1,S2.3", encoders="xyz", seeds="0",
                         search={"sampler": "tpe", "trials": 8, "pruner": "none", "finalists": 1}, device="cpu",
                         db=db, progress=False)
    source.run(echo=lambda line: None)
    with pytest.raises(SynthError, match="no finished search trial of xyz on U2"):
        Study.build(space=str(tmp_path / "s.toml"), datasets="S1.1", encoders="xyz", seeds="0", device="cpu", db=db,
                    progress=False, search={"sampler": "tpe", "trials": 3, "pruner": "none", "finalists": 1,
                                            "transfer_from": source.experiment, "transfer_datasets": "U1,U2"}
                    ).run(echo=lambda line: None)
    target = Study.build(space=str(tmp_path / "s.toml"), datasets="S1.1", encoders="xyz", seeds="0", device="cpu",
                         db=db, progress=False,
                         search={"sampler": "tpe", "trials": 4, "pruner": "none", "finalists": 1,
                                 "transfer_from": source.experiment, "transfer_datasets": "U1,S2.3",
                                 "transfer_top": 1})
    target.run(echo=lambda line: None)
    con = sqlite3.connect(db)

    def best(dataset):
        rows = con.execute("SELECT config, val_top1 FROM runs WHERE experiment = ? AND stage = 'search' AND "
                           "dataset = ?", (source.experiment, dataset)).fetchall()
        return json.loads(min(rows, key=lambda r: (-r[1], r[0]))[0])  # ties by configuration, as warm_start

    trials = con.execute("SELECT trial, config FROM runs WHERE experiment = ? AND stage = 'search' ORDER BY trial",
                         (target.experiment,)).fetchall()
    first = [json.loads(c) for _, c in trials[:2]]
    expected = [best("U1")] + ([best("S2.3")] if best("S2.3") != best("U1") else [])
    assert first[:len(expected)] == expected
    numbers = [t for t, _ in trials]  # then TPE goes on to 4 trials (a repeated configuration is not stored again)
    assert numbers[:len(expected)] == list(range(len(expected)))
    assert set(numbers) <= {0, 1, 2, 3} and max(numbers) >= len(expected)
    assert target.experiment != source.experiment


def test_bench_transfer_compares_a_transfer_search_with_the_cold_one(tmp_path):
    """benchmarks/bench_transfer.py on two real (tiny) searches: cold on three datasets, transfer
    leave-one-out on the same three; the table has a row per cell and the summary line its numbers."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "s.toml").write_text(SPACE)
    db = tmp_path / "r.sqlite"
    common = dict(space=str(tmp_path / "s.toml"), datasets="U1,S2.3,S4.4", encoders="xyz", seeds="0",
                  data_seeds="0-1", device="cpu", db=db, progress=False)
    cold = Study.build(search={"sampler": "tpe", "trials": 8, "pruner": "none", "finalists": 1}, **common)
    cold.run(echo=lambda line: None)
    warm = Study.build(search={"sampler": "tpe", "trials": 3, "pruner": "none", "finalists": 1,
                               "transfer_from": cold.experiment, "transfer_datasets": "U1,S2.3,S4.4",
                               "transfer_top": 1}, **common)
    warm.run(echo=lambda line: None)
    bench = Path(__file__).parent.parent / "benchmarks" / "bench_transfer.py"
    r = subprocess.run([sys.executable, str(bench), "--db", str(db), "--cold", cold.experiment, "--transfer",
                        warm.experiment], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| ") and "xyz" in line]
    assert [row[0].strip() for row in rows] == ["S2.3", "S4.4", "U1"]
    for row in rows:
        assert int(row[3]) < int(row[2])  # 3 trials against 8: fewer member-epochs
    assert lines[-1].startswith("cells 3: member-epochs ") and "regret mean" in lines[-1]


def test_a_resumed_transfer_search_equals_an_uninterrupted_one(tmp_path):
    """The transferred trials are enqueued again on --resume and replayed from the stored rows, so a
    search stopped after some trials ends with the same rows as one that never stopped."""
    import shutil

    (tmp_path / "s.toml").write_text(SPACE)
    db = tmp_path / "r.sqlite"
    common = dict(space=str(tmp_path / "s.toml"), encoders="xyz", seeds="0", device="cpu", progress=False)
    Study.build(datasets="U1,S2.3", db=db, search={"sampler": "tpe", "trials": 6, "pruner": "none", "finalists": 1},
                **common).run(echo=lambda line: None)
    source = experiment_name(load_space(str(tmp_path / "s.toml")),
                             SearchPolicy(sampler="tpe", trials=6, pruner="none", finalists=1))
    # random rather than TPE: on 8 configurations TPE repeats itself, and a repeat stores no row of its own;
    # the enqueued trials are replayed the same way for both samplers
    search = {"sampler": "random", "trials": 6, "pruner": "halving", "first_rung": 1, "finalists": 1,
              "transfer_from": source, "transfer_datasets": "U1,S2.3", "transfer_top": 2}
    shutil.copy(db, tmp_path / "stopped.sqlite")
    whole = Study.build(datasets="S1.1", db=db, search=search, **common)
    whole.run(echo=lambda line: None)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT stage, trial, config, val_top1, test_top1, pruned_at FROM runs WHERE experiment = ? "
                       "ORDER BY stage, trial", (whole.experiment,)).fetchall()
    # the stopped copy: the first two (transferred) trials' rows stored, the rest and the finalists not yet
    stopped = sqlite3.connect(tmp_path / "stopped.sqlite")
    kept = con.execute("SELECT * FROM runs WHERE experiment = ? AND stage = 'search' AND trial < 2",
                       (whole.experiment,)).fetchall()
    for r in kept:
        stopped.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(r))})", r)
    stopped.commit()
    assert 0 < len(kept) < len([r for r in rows if r[0] == "search"])  # some stored, some to train again
    Study.build(datasets="S1.1", db=tmp_path / "stopped.sqlite", search=search, resume=True, **common).run(
        echo=lambda line: None)
    again = stopped.execute("SELECT stage, trial, config, val_top1, test_top1, pruned_at FROM runs WHERE "
                            "experiment = ? ORDER BY stage, trial", (whole.experiment,)).fetchall()
    assert again == rows
