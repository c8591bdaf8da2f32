"""The adaptive search (Optuna samplers and pruners over the population trainer)."""

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from synth import datasets
from experiments.models.train import TrainSettings, train_population
from helpers import WAIT_S, experiments, sweep

SMALL = dict(frequency_num=4, num_hidden_layers=1, hidden_dim=32, num_filts=16)
SPACE = """
[settings]
epochs = 9
patience = 20
batch_size = 1024
[grid]
lr = [0.005, 0.01, 0.02, 0.05]
hidden_dim = [32, 64]
num_filts = [16]
"""


@pytest.fixture(scope="module")
def tiny():
    return datasets.generate(datasets.Recipe(name="tiny", n_classes=6, samples_per_class=60, kappa_max=8), 0)


@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SPACE)
    return p


def rows(db, stage, cols="config_hash, train_seed, trial, val_top1, test_top1, best_epoch, epochs_run, pruned_at, bands"):
    c = sqlite3.connect(db)
    out = sorted(c.execute(f"SELECT {cols} FROM runs WHERE stage = ?", (stage,)).fetchall(), key=repr)
    c.close()
    return out


# ------------------------------------------------------------------ the trainer
def test_a_surviving_member_computes_exactly_its_unpruned_run(tiny):
    settings = TrainSettings(epochs=6, batch_size=64, patience=None)
    a = dict(SMALL, min_radius=0.05, lr=0.01, seed=1)
    b = dict(SMALL, min_radius=0.2, lr=0.05, seed=2)
    c = dict(SMALL, min_radius=0.01, lr=0.002, seed=3)
    seen = []

    def prune_b_at_2(epoch, members, val):
        seen.append((epoch, list(members)))
        return [1] if epoch == 2 else []

    pruned = train_population(tiny, "sphereM+", [a, b, c], settings, device="cpu", on_epoch=prune_b_at_2)
    alone = train_population(tiny, "sphereM+", [a, c], settings, device="cpu")
    for got, ref in zip((pruned[0], pruned[2]), alone):
        assert got.loss_curve == ref.loss_curve  # bit for bit, every epoch
        assert got.val == ref.val and got.test == ref.test
        assert json.dumps(got.bands) == json.dumps(ref.bands)  # (NaN for empty bands: compare as text)
    assert pruned[1].pruned_at == 2 and pruned[1].epochs_run == 2 and pruned[1].test["top1"] is None
    assert len(pruned[1].loss_curve) == 2  # no compute after it left
    assert seen[2] == (3, [0, 2])  # from epoch 3 on, the population holds a and c only


def test_early_stopped_members_leave_and_cost_no_more_epochs(tiny):
    settings = TrainSettings(epochs=30, batch_size=64, patience=2)
    cfgs = [dict(SMALL, min_radius=0.05, lr=lr, seed=s) for lr, s in ((0.2, 0), (0.002, 1), (0.05, 2))]
    together = train_population(tiny, "sphereM+", cfgs, settings, device="cpu")
    assert any(r.epochs_run < 30 for r in together)
    for cfg, r in zip(cfgs, together):
        alone = train_population(tiny, "sphereM+", [cfg], settings, device="cpu")[0]
        assert r.epochs_run == alone.epochs_run == len(r.loss_curve)
        assert r.val == alone.val and r.test == alone.test and r.best_epoch == alone.best_epoch


# ------------------------------------------------------------------ the search
def test_asha_prunes_and_only_finalists_reach_the_final_stage_on_every_seed(tmp_path, space_file):
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0-2", "--db", str(db),
              "--pruner", "asha", "--finalists", "2")
    assert r.returncode == 0, r.stderr
    search = rows(db, "search", "config_hash, trial, val_top1, epochs_run, pruned_at")
    assert len(search) == 8 and len({s[1] for s in search}) == 8
    pruned = [s for s in search if s[4] is not None]
    assert pruned and all(s[3] == s[4] < 9 for s in pruned)  # a pruned member stopped where it was pruned
    complete = sorted((s for s in search if s[4] is None), key=lambda s: (-s[2], s[1]))
    finalists = {s[0] for s in complete[:2]}
    final = rows(db, "final", "config_hash, train_seed")
    assert {f[0] for f in final} == finalists
    assert sorted(final) == sorted((h, s) for h in finalists for s in (0, 1, 2))
    assert sum(s[3] for s in search) < 8 * 9  # pruning saved member-epochs
    out = tmp_path / "out"
    r = experiments("report", "--db", db, "--out", out, "--encoders", "xyz", "--no-figures")
    assert r.returncode == 0, r.stderr
    text = (out / "search.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| U1 | xyz | 8 | "))
    assert row.count("**") == 2  # the finalists, one of them chosen
    assert "Adaptive search: 8 trials" in (out / "summary.md").read_text()


def test_grid_sampler_without_pruner_gives_exactly_the_exhaustive_rows(tmp_path, space_file):
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    common = ["--datasets", "U1", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0"]
    assert sweep(*common, "--db", str(old)).returncode == 0
    r = sweep(*common, "--db", str(new), "--sampler", "grid", "--pruner", "none", "--finalists", "8",
              "--search-seeds", "0")
    assert r.returncode == 0, r.stderr
    cols = "config_hash, train_seed, val_top1, val_top3, val_mrr, test_top1, test_top3, test_mrr, best_epoch, bands"
    assert rows(old, "final", cols) == rows(new, "final", cols) == rows(new, "search", cols)


@pytest.mark.parametrize("sampler", ["tpe"])  # the hardest case: TPE's draws depend on the whole history
def test_a_killed_search_resumes_to_the_uninterrupted_result(tmp_path, space_file, sampler):
    common = ["--datasets", "U1", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0-1",
              "--pruner", "asha", "--sampler", sampler, "--max-members", "2"]
    if sampler == "tpe":
        common += ["--trials", "7"]  # fewer than the 8 configurations: a TPE search, not the whole grid
    ref, db = tmp_path / "ref.sqlite", tmp_path / "r.sqlite"
    assert sweep(*common, "--db", str(ref)).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu", *common,
                             "--db", str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + WAIT_S
    while time.time() < deadline and proc.poll() is None and _count(db, "search") < 3:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    n = _count(db, "search")
    assert 0 < n < 8, n  # killed mid-search
    before = dict(sqlite3.connect(db).execute("SELECT id, created FROM runs").fetchall())
    r = sweep(*common, "--db", str(db), "--resume")
    assert r.returncode == 0, r.stderr
    after = dict(sqlite3.connect(db).execute("SELECT id, created FROM runs").fetchall())
    assert all(after[i] == t for i, t in before.items())  # nothing stored was redone
    assert rows(db, "search") == rows(ref, "search")  # same trials, same pruning decisions
    assert rows(db, "final") == rows(ref, "final")
    trained = rows(db, "search", "config_hash, train_seed")
    assert len(trained) == len(set(trained))  # no configuration trained twice on a seed


def test_tpe_repeats_of_a_configuration_are_answered_without_training(tmp_path, space_file):
    # 7 TPE trials on an 8-configuration grid: its random start repeats configurations (seeded);
    # a repeat trains nothing and has no row
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0", "--db", str(db),
              "--sampler", "tpe", "--trials", "7", "--pruner", "asha", "--finalists", "1")
    assert r.returncode == 0, r.stderr
    search = rows(db, "search", "config_hash, trial")
    assert len(search) == len({h for h, _ in search}) < 7
    line = next(x for x in r.stdout.splitlines() if "trial(s) (" in x)
    assert f"7 trial(s) ({7 - len(search)} repeat(s) answered without training)" in line


def _count(db, stage):
    try:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs WHERE stage = ?", (stage,)).fetchone()[0]
    except sqlite3.DatabaseError:
        return 0


def test_a_search_table_in_the_space_turns_the_search_on(tmp_path, space_file):
    p = tmp_path / "with_search.toml"
    p.write_text(SPACE + '\n[search]\nsampler = "random"\ntrials = 3\npruner = "hyperband"\nfinalists = 1\n')
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(p), "--seeds", "0", "--db",
              str(tmp_path / "r.sqlite"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "sampler random, pruner hyperband" in r.stdout and "3 trial(s)" in r.stdout and "estimated time" in r.stdout
    p.write_text(SPACE + '\n[search]\nsampler = "annealing"\n')
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(p), "--db", str(tmp_path / "r.sqlite"))
    assert r.returncode == 2 and "sampler" in r.stderr


def test_finalists_are_distinct_configurations_even_when_a_trial_repeats_one():
    from types import SimpleNamespace

    from experiments.search.cell_search import _distinct

    trials = [SimpleNamespace(params={"lr": lr}, value=v, number=n)
              for n, (lr, v) in enumerate([(0.01, 80.0), (0.01, 80.0), (0.02, 79.0), (0.05, 70.0)])]
    assert [t.number for t in _distinct(trials, None)] == [0, 2, 3]


# ------------------------------------------------------------------ the finalists' race
def _simulate_race(means, sd, seeds=5, n_val=500, sims=2000, seed=0):
    """How often each finalist stops early, and whether the survivors always end on every seed."""
    import numpy as np

    from experiments.search.cell_search import race_survivors

    rng = np.random.default_rng(seed)
    stopped = np.zeros(len(means))
    for _ in range(sims):
        draws = rng.normal(means, sd, size=(seeds, len(means)))
        runs = {h: {} for h in range(len(means))}
        while True:
            alive, nxt, todo = race_survivors(list(range(len(means))), runs, list(range(seeds)), n_val)
            if nxt is None:
                break
            for h in todo:
                runs[h][nxt] = (float(draws[nxt, h]), False)
        assert alive and all(len(runs[h]) == seeds for h in alive)  # survivors trained on every seed
        for h in range(len(means)):
            stopped[h] += h not in alive
    return stopped / sims


def test_the_race_rarely_stops_a_finalist_that_is_not_behind():
    # Three truly tied finalists (seed sd 0.6 points). After seed 0 the binomial margin (~5.7
    # points for 500 validation points at 70 %) stops none; after each later round a tied finalist
    # stops only if a rival's t-test says it is behind at 2.5 % one-sided: at most 4 rounds x 2
    # rivals x 2.5 % = 20 % (Bonferroni). 2 000 races: the rate's SE is under 0.9 points.
    rates = _simulate_race([70.0, 70.0, 70.0], 0.6)
    assert max(rates) <= 0.20, rates
    assert min(rates) > 0.0, rates  # it is a test, not a rule that never stops anyone


def test_the_race_stops_a_finalist_far_behind_and_saves_its_seeds():
    # 5 seed sds behind the others: stopped before the last seed in >= 95 % of races
    rates = _simulate_race([70.0, 70.0, 67.0], 0.6)
    assert rates[2] >= 0.95 and max(rates[:2]) <= 0.20, rates
    from experiments.search.cell_search import race_survivors

    # hopeless (a 16.8 % finalist beside 70 %): stopped after the search seed's round alone
    runs = {"a": {0: (70.6, False)}, "b": {0: (70.4, False)}, "c": {0: (16.8, False)}}
    assert race_survivors(["a", "b", "c"], runs, [0, 1, 2], 500) == (["a", "b"], 1, ["a", "b"])
    # a finalist that diverged is never chosen by the report: it stops too
    runs = {"a": {0: (70.6, False)}, "b": {0: (70.4, True)}}
    assert race_survivors(["a", "b"], runs, [0, 1], 500) == (["a"], 1, ["a"])


RACE_SPACE = """
[settings]
epochs = 6
patience = 20
batch_size = 1024
[grid]
lr = [0.000001, 0.02]
hidden_dim = [32, 64]
num_filts = [16]
[search]
sampler = "grid"
finalists = 4
race = true
"""


def test_racing_finalists_train_only_while_in_the_race_and_resume(tmp_path):
    space = tmp_path / "race.toml"
    space.write_text(RACE_SPACE)
    common = ["--datasets", "U1", "--encoders", "xyz", "--space", str(space), "--seeds", "0-2"]
    db = tmp_path / "r.sqlite"
    r = sweep(*common, "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "finalist(s) racing on seeds 0-2" in r.stdout
    search = rows(db, "search", "config_hash, config, val_top1")
    final = rows(db, "final", "config_hash, train_seed")
    hopeless = {h for h, c, v in search if json.loads(c)["lr"] < 1e-5}
    assert len(search) == 4 and len(hopeless) == 2
    seeds_of = {h: sorted(s for g, s in final if g == h) for h, _, _ in search}
    assert all(seeds_of[h] == [0] for h in hopeless)  # stopped after the search seed: never retrained
    assert max(seeds_of.values(), key=len) == [0, 1, 2]  # the leader ran on every seed
    before = dict(sqlite3.connect(db).execute("SELECT id, created FROM runs").fetchall())
    r = sweep(*common, "--db", str(db), "--resume")
    assert r.returncode == 0, r.stderr
    assert dict(sqlite3.connect(db).execute("SELECT id, created FROM runs").fetchall()) == before  # nothing redone
    # local worker processes run the race round by round to the same rows
    par = tmp_path / "p.sqlite"
    r = sweep(*common, "--db", str(par), "--executor", "local", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert rows(par, "final") == rows(db, "final")
    out = tmp_path / "out"
    r = experiments("report", "--db", db, "--out", out, "--encoders", "xyz", "--no-figures")
    assert r.returncode == 0, r.stderr
    line = next(x for x in (out / "search.md").read_text().splitlines() if x.startswith("| U1 | xyz |"))
    assert line.count("1 seed(s); *stopped*") >= 2  # the hopeless pair at least
    assert "3 seed(s))**" in line  # the chosen finalist ran on every seed


def test_search_md_names_the_finalists_own_trial_not_an_earlier_pruned_try():
    # TPE tried configuration "a" as trial 3 (pruned at 27 epochs) and again as trial 8 (complete):
    # the finalist is trial 8, and its score is trial 8's
    from experiments.report.table8 import search_records

    def row(trial, h, val, pruned_at=None, stage="search", seed=0):
        return {"dataset": "U1", "encoder": "theory", "trial": trial, "config_hash": h, "config": json.dumps({"lr": h}),
                "val_top1": val, "pruned_at": pruned_at, "diverged": False, "epochs_run": 27 if pruned_at else 100,
                "stage": stage, "settings_hash": "s", "data_seed": 0, "train_seed": seed, "test_top1": 70.0,
                "test_mrr": 0.8, "bands": "{}", "settings": "{}", "recipe": "{}"}

    search = [row(3, "a", 71.0, pruned_at=27), row(5, "b", 70.0), row(8, "a", 71.4)]
    final = [row(-1, h, v, stage="final", seed=s) for h, v in (("a", 71.4), ("b", 70.0)) for s in (0, 1)]
    (rec,) = search_records(search, final)
    assert [(f["trial"], round(f["val"], 1)) for f in rec["finalists"]] == [(8, 71.4), (5, 70.0)]


def test_a_search_decided_under_the_old_rule_is_kept_apart_and_the_report_names_each_rule(tmp_path, space_file):
    """The rung rule is part of an experiment's identity, and the report says which rule chose."""
    db = tmp_path / "r.sqlite"
    args = ["--datasets", "U1", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0", "--db", str(db),
            "--pruner", "halving", "--first-rung", "1", "--finalists", "2"]
    r = sweep(*args)
    assert r.returncode == 0, r.stderr
    c = sqlite3.connect(db)
    (new,), = c.execute("SELECT DISTINCT experiment FROM runs").fetchall()
    n_new = c.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    # the same search as written before the rule was recorded: another name, no rule in meta
    c.execute("UPDATE runs SET experiment = 's-0ld0ld00'")
    c.execute("DELETE FROM meta WHERE key LIKE 'search/%'")
    c.commit()
    c.close()
    r = sweep(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"holds s-0ld0ld00, a search of space s decided by report order" in r.stdout and "kept apart" in r.stdout
    c = sqlite3.connect(db)
    counts = dict(c.execute("SELECT experiment, COUNT(*) FROM runs GROUP BY experiment"))
    assert counts == {"s-0ld0ld00": n_new, new: n_new}  # retrained under its own name; the old rows untouched
    for exp, words in ((new, "rung decisions by value"), ("s-0ld0ld00", "recorded before rung decisions were made by value")):
        out = tmp_path / exp
        r = experiments("report", "--db", db, "--out", out, "--encoders", "xyz", "--no-figures", "--experiment", exp)
        assert r.returncode == 0, r.stderr
        for name in ("summary.md", "table8.md"):
            assert "Configurations chosen by:" in (out / name).read_text() and words in (out / name).read_text()
