"""Bad inputs and faults, round 3 (one test per numbered finding, each failing before its fix)."""

import json
import math
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import SPACE_4_LR, WAIT_S, count_rows, one_line, sweep
from helpers import experiments as run
from synth import SynthError

SPACE = SPACE_4_LR
COLS = "dataset, config_hash, train_seed, stage, trial, val_top1, test_top1, best_epoch, epochs_run, pruned_at, bands"


def rows(db, cols=COLS):
    c = sqlite3.connect(db)
    out = sorted(c.execute(f"SELECT {cols} FROM runs").fetchall(), key=repr)
    c.close()
    return out


# ------------------------------------------------------------------ 1. a killed local worker
def test_a_worker_killed_during_the_adaptive_search_does_not_crash_the_driver(tmp_path):
    import psutil

    sp = tmp_path / "s.toml"
    sp.write_text(SPACE.format(epochs=30))
    common = ["--datasets", "U1,U2", "--encoders", "xyz", "--space", str(sp), "--seeds", "0-1", "--pruner", "asha",
              "--finalists", "2", "--max-members", "2"]
    ref, db = tmp_path / "ref.sqlite", tmp_path / "r.sqlite"
    # the reference with the same worker threads (see test_executors._slow_reference)
    assert sweep(*common, "--db", str(ref), "--executor", "local", "--workers", "2").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu",
                             *common, "--db", str(db), "--executor", "local", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver, killed = psutil.Process(proc.pid), False
    deadline = time.time() + WAIT_S
    while time.time() < deadline and proc.poll() is None and not killed:
        workers = [c for c in driver.children() if "spawn_main" in " ".join(c.cmdline())]
        if workers and count_rows(db) >= 1:
            workers[0].kill()  # its job, and the callbacks that submit the next ones, must survive
            killed = True
        time.sleep(0.02)
    out, err = proc.communicate(timeout=600)
    assert killed
    assert proc.returncode == 0, err[-2000:]  # was: BrokenProcessPool from Runner.poll
    assert rows(db) == rows(ref)  # the lost job was retried; nothing twice


def test_local_workers_die_with_a_killed_driver(tmp_path):
    import psutil

    sp = tmp_path / "s.toml"
    sp.write_text(SPACE.format(epochs=200))
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu",
                             "--datasets", "U1", "--encoders", "xyz", "--space", str(sp), "--seeds", "0",
                             "--db", str(tmp_path / "r.sqlite"), "--executor", "local", "--workers", "2",
                             "--max-members", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = psutil.Process(proc.pid)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and len(workers) < 2:
        workers = [c for c in driver.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
        time.sleep(0.05)
    assert workers
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    for p in alive:
        p.kill()
    assert not alive  # they died with their parent (PR_SET_PDEATHSIG)


# ------------------------------------------------------------------ 2. damaged rows
@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("db")
    sp = tmp / "s.toml"
    sp.write_text(SPACE.format(epochs=2).replace("0.02, 0.05", "0.02"))
    db = tmp / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz,sphereM+", "--space", str(sp), "--seeds", "0-1", "--db", str(db))
    assert r.returncode == 0, r.stderr
    return db


def _damaged(small_db, tmp_path, column, value):
    db = tmp_path / "d.sqlite"
    db.write_bytes(small_db.read_bytes())
    c = sqlite3.connect(db)
    c.execute("PRAGMA ignore_check_constraints = ON")  # a hand edit with another tool
    c.execute(f"UPDATE runs SET {column} = ? WHERE id = 2", (value,))
    c.commit()
    c.close()
    return db


@pytest.mark.parametrize("column,value", [
    ("test_top1", None), ("test_top1", "abc"), ("val_top1", None), ("val_top1", "x"),
    ("bands", "{garbage"), ("config", "[1,"), ("recipe", "nope"), ("val_curve", "{]"), ("diverged", 7),
])
def test_a_damaged_row_is_one_line_naming_row_and_column(small_db, tmp_path, column, value):
    db = _damaged(small_db, tmp_path, column, value)
    r = run("report", "--db", str(db), "--out", str(tmp_path / "out"), "--encoders", "xyz,sphereM+", "--no-figures")
    assert one_line(r, f"row id 2 column {column}"), r.stderr
    r = sweep("--datasets", "U1", "--encoders", "xyz,sphereM+", "--seeds", "0-1", "--db", str(db), "--resume",
              "--data-seeds", "0-1", "--space", str(small_db.parent / "s.toml"))  # --resume reads the stored rows too
    assert one_line(r, f"row id 2 column {column}"), r.stderr


def test_a_schema_version_that_is_not_a_number_is_one_line(small_db, tmp_path):
    db = tmp_path / "d.sqlite"
    db.write_bytes(small_db.read_bytes())
    c = sqlite3.connect(db)
    c.execute("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    c.commit()
    c.close()
    r = run("report", "--db", str(db), "--out", str(tmp_path / "out"), "--no-figures")
    assert one_line(r, "schema_version"), r.stderr


def _row(**kw):
    base = dict(experiment="e-1", dataset="U1", recipe="{}", recipe_hash="h", data_seed=0, encoder="xyz",
                config_hash="c", config="{}", train_seed=0, settings_hash="s", settings="{}", stage="final",
                val_top1=50.0, val_top3=60.0, val_mrr=0.5, test_top1=50.0, test_top3=60.0, test_mrr=0.5,
                best_epoch=1, epochs_run=1, bands="{}", diverged=0, val_curve="[50.0]", pruned_at=None,
                seconds=1.0, population=1, device="cpu")
    return {**base, **kw}


@pytest.mark.parametrize("bad,word", [
    (dict(val_top1=float("nan")), "val_top1"),  # was stored as NULL, silently
    (dict(test_top1=140.0), "test_top1"),
    (dict(bands="{x"), "bands"),
    (dict(train_seed=2**70), "train_seed"),  # was an OverflowError inside BEGIN IMMEDIATE
    (dict(diverged=3), "diverged"),
])
def test_bad_rows_are_refused_and_the_store_stays_usable(tmp_path, bad, word):
    from experiments.store.results import ResultsStore

    db = tmp_path / "r.sqlite"
    store = ResultsStore(db)
    with pytest.raises(SynthError, match=word):
        store.write_population([_row(), _row(config_hash="d", **bad)])
    assert not store.conn.in_transaction  # no write lock left behind for other processes
    other = ResultsStore(db, lock_timeout=1)
    other.write_population([_row()])  # another writer is not locked out
    assert len(other.rows("e-1")) == 1  # and nothing of the refused population was written
    store.close()
    other.close()


def test_a_diverged_members_nan_score_is_stored_as_null_explicitly(tmp_path):
    from experiments.store.results import ResultsStore

    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.write_population([_row(diverged=1, val_top1=float("nan"), test_top1=float("nan"))])
        (r,) = store.rows("e-1")
    assert r["val_top1"] is None and r["diverged"] == 1


def test_every_write_rolls_back_on_any_exception(tmp_path, monkeypatch):
    from experiments.store.results import ResultsStore

    store = ResultsStore(tmp_path / "r.sqlite")
    real = store.conn

    class Interrupting:
        def __getattr__(self, name):
            return getattr(real, name)

        def executemany(self, *a):
            raise KeyboardInterrupt

    store.conn = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        store.write_population([_row()])
    assert not real.in_transaction
    store.conn = real
    store.close()


# ------------------------------------------------------------------ 5. executor and SLURM values
@pytest.mark.parametrize("args,word", [
    (["--time", "-5"], "--time"), (["--cpus-per-job", "0"], "--cpus-per-job"),
    (["--gpus-per-job", "-1"], "--gpus-per-job"), (["--array-parallelism", "0"], "--array-parallelism"),
    (["--partition", ""], "partition"), (["--workers", "2.5"], "--workers"),
])
def test_bad_executor_flags_are_one_line_errors(tmp_path, args, word):
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--db", str(tmp_path / "r.sqlite"),
              "--executor", "submitit", *args)
    assert one_line(r, word), r.stderr
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("text,word", [
    ('time = "abc"', "time"), ("partition = 5", "partition"), ('sbatch_lines = "module load cuda"', "sbatch_lines"),
    ("cpus_per_job = 0", "cpus_per_job"), ("gpus = 1", "unknown"),
])
def test_bad_executor_tables_are_refused_when_the_space_is_loaded(tmp_path, text, word):
    from experiments.search.space import load_space

    p = tmp_path / "s.toml"
    p.write_text(SPACE.format(epochs=2) + f"\n[executor]\n{text}\n")
    with pytest.raises(SynthError, match=word):
        load_space(str(p))


# ------------------------------------------------------------------ 6. compare trusts its input
@pytest.fixture(scope="module")
def good_csv(tmp_path_factory):
    from pathlib import Path

    p = tmp_path_factory.mktemp("cmp") / "table8.csv"
    p.write_bytes((Path(__file__).parent.parent / "results" / "table8.csv").read_bytes())
    return p


def _edit(good_csv, tmp_path, fn):
    p = tmp_path / "b.csv"
    lines = good_csv.read_text().splitlines()
    p.write_text("\n".join(fn(lines)) + "\n")
    return p


@pytest.mark.parametrize("case,word", [
    ("random", "not UTF-8"), ("utf16", "not UTF-8"), ("missing", "columns"), ("ci", "not a finite number"),
    ("maybe", "verdict"), ("nan_win", "finite number"), ("dup", "twice"), ("huge", "field"),
    ("inconsistent", "does not follow"),
])
def test_compare_checks_its_input(good_csv, tmp_path, case, word):
    if case == "random":
        b = tmp_path / "b.csv"
        b.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif case == "utf16":
        b = tmp_path / "b.csv"
        b.write_bytes(good_csv.read_text().encode("utf-16"))
    elif case == "missing":
        b = _edit(good_csv, tmp_path, lambda ls: [",".join(x.split(",")[:3]) for x in ls])
    elif case == "huge":
        b = _edit(good_csv, tmp_path, lambda ls: ls[:1] + [ls[1].replace("U1", "U1" + "x" * 200_000, 1)])
    else:
        head = good_csv.read_text().splitlines()[0].split(",")
        col = {k: head.index(k) for k in ("ci_low", "ci_high", "verdict")}

        def change(ls):
            first = ls[1].split(",")
            if case == "ci":
                first[col["ci_low"]] = "abc"
            elif case == "maybe":
                first[col["verdict"]] = "maybe"
            elif case == "nan_win":
                first[col["ci_low"]], first[col["ci_high"]], first[col["verdict"]] = "nan", "nan", "win"
            elif case == "inconsistent":
                first[col["ci_low"]], first[col["ci_high"]], first[col["verdict"]] = "-1.0", "2.0", "win"
            out = [ls[0], ",".join(first)] + ls[2:]
            return out + [ls[1]] if case == "dup" else out
        b = _edit(good_csv, tmp_path, change)
    r = run("compare", str(good_csv), str(b))
    assert one_line(r), r.stderr
    assert word.lower() in r.stderr.lower() or case in ("random", "huge"), r.stderr


# ------------------------------------------------------------------ 7. read-only archives
def test_report_uses_immutable_when_sqlite_cannot_create_its_shm_file(small_db, tmp_path, monkeypatch):
    # a read-only mount, emulated where the store decides (root ignores permission bits, so a
    # chmod-ed folder would not do): SQLite cannot create the -shm file of a WAL database
    from experiments.store import results

    calls = []
    real = sqlite3.connect

    def connect(database, *a, **kw):
        calls.append(database)
        if "immutable=1" not in database:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *a, **kw)

    monkeypatch.setattr(results.sqlite3, "connect", connect)
    with results.ResultsStore(small_db, readonly=True) as store:
        assert store.rows(None)
    assert any("immutable=1" in u for u in calls)


def test_a_dry_run_with_resume_creates_no_database(tmp_path):
    db = tmp_path / "new" / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--db", str(db), "--resume", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert not db.exists() and not db.parent.exists()


# ------------------------------------------------------------------ 8. the Python API
def test_bayes_posterior_checks_its_arguments():
    from synth.bayes import posterior

    c, k = np.array([[0.0, 0.0], [90.0, 45.0]]), np.array([10.0, 20.0])
    p = posterior(np.array([[1.0, 2.0]]), c, k)
    assert np.allclose(p.sum(1), 1)
    for args, word in [((np.array([[np.nan, 0.0]]), c, k), "lonlat = "), ((np.array([[0.0, 95.0]]), c, k), "lat"),
                       ((np.array([[0.0, 0.0]]), c, -k), "kappa"), ((np.array([[0.0, 0.0]]), c, [np.inf, 1]), "kappa"),
                       ((np.array([[0.0, 0.0]]), c[:, :1], k), "centers_lonlat = ")]:
        with pytest.raises(SynthError, match=word):
            posterior(*args)


def test_a_nan_score_stops_only_its_own_finalist_in_the_race():
    from experiments.search.race import race_survivors

    runs = {"a": {0: (70.0, False)}, "b": {0: (float("nan"), False)}, "c": {0: (69.9, False)}}
    alive, seed, todo = race_survivors(["a", "b", "c"], runs, [0, 1], 1000)
    assert alive == ["a", "c"] and seed == 1 and todo == ["a", "c"]


def test_choose_never_prefers_a_nan_validation_score():
    from experiments.search.selection import choose

    def row(h, v):
        return dict(dataset="U1", encoder="xyz", config_hash=h, config=json.dumps({"lr": 1}), data_seed=0,
                    train_seed=0, settings_hash="s", settings="{}", recipe="{}", val_top1=v, test_top1=50.0,
                    test_mrr=0.5, bands="{}", diverged=0)
    cell = choose([row("a", float("nan")), row("b", 40.0)])[("U1", "xyz")]
    assert cell.val_mean == 40.0


def test_statistics_do_not_turn_nan_into_a_verdict():
    from experiments.report.stats import difference, verdict

    assert verdict((math.nan, math.nan)) == "—"
    assert verdict((0.5, 1.0)) == "win"
    a = {(0, 0): 50.0, (1, 0): math.nan, (2, 0): 52.0}
    b = {(0, 0): 49.0, (1, 0): 48.0, (2, 0): 47.0}
    with pytest.raises(SynthError, match="non-finite"):
        difference(a, b)


def test_api_arguments_are_checked_with_the_declarations():
    from experiments.store.executors import ExecutorOptions
    from experiments.search.plan import expected_fraction
    from experiments.search.space import SearchPolicy

    with pytest.raises(SynthError, match="eval_every"):
        expected_fraction(SearchPolicy(pruner="asha"), 9, 0)  # never returned
    with pytest.raises(SynthError, match="workers"):
        ExecutorOptions("local", workers=2.5)
    with pytest.raises(SynthError, match="search_seeds"):
        SearchPolicy(search_seeds=[1.7])


def test_a_label_outside_the_classes_is_refused_in_memory():
    from experiments.models.train import TrainSettings, train_population
    from synth import datasets

    ds = datasets.generate(datasets.Recipe(name="tiny", n_classes=5, samples_per_class=20, kappa_max=8), 0)
    ds.arrays["test_label"] = ds.arrays["test_label"].copy()
    ds.arrays["test_label"][0] = 77
    with pytest.raises(SynthError, match="test labels"):
        train_population(ds, "xyz", [dict(lr=0.01, seed=0)], TrainSettings(epochs=1), device="cpu")
