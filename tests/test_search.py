import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import TINY_SPACE, WAIT_S, sweep
from synth import SynthError
from experiments.search import plan
from experiments.store import results
from experiments.search.space import load_space

@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_SPACE)
    return p


def test_shipped_spaces_load_and_expand():
    quick = load_space("quick")
    for enc in ("xyz", "wrap", "wrap_ffn", "rff", "rbf", "grid", "theory", "sphereM+"):
        assert len(quick.configs(enc)) >= 2
    assert all("hidden_dim" not in c for c in quick.configs("wrap"))  # wrap's ResNet has no hidden_dim
    paper = load_space("paper")
    assert len(paper.configs("sphereM+")) == 6 * 4 * 3 * 3 * 7
    assert len(paper.configs("rbf")) == 6 * 4 * 3 * 3 * 4


def test_plan_packs_shape_compatible_members(space_file):
    import torch

    space = load_space(str(space_file))
    p_ = plan.make_plan(space, ["U1", "S2.1"], [0], ["grid", "xyz"], [0, 1, 2], torch.device("cpu"),
                        {"U1": "h1", "S2.1": "h2"}, space.experiment, max_pop=5)
    # grid: 2 lr x 2 r_min = 4 configs x 3 seeds = 12 members per dataset, packed 5 + 5 + 2
    grid_pops = [p for p in p_.populations if p.encoder == "grid"]
    assert sorted(len(p.members) for p in grid_pops) == [2, 2, 5, 5, 5, 5]
    assert p_.n_members == 2 * (12 + 6)
    for p in p_.populations:
        assert len({plan.shape_key(c) for c, _ in p.members}) == 1


@pytest.mark.parametrize("text,word", [
    ("[grid]\nlr = []\n", "empty grid"),
    ("[grid]\nlearning_rate = [0.1]\n", "unknown hyper-parameter"),
    ("[settings]\nepoch = 3\n", "unknown \\[settings\\]"),
    ("[encoders.grid]\nkernel_size = [1.0]\n", "unknown hyper-parameter"),
    ("[encoders.gird]\nmin_radius = [1.0]\n", "unknown encoder"),
    ("[whatever]\n", "unknown top-level"),
    ("[grid\n", "not valid TOML"),
])
def test_bad_space_files(tmp_path, text, word):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(SynthError, match=word):
        load_space(str(p))


def test_sweep_dry_run_then_run_then_resume(tmp_path, space_file):
    db = tmp_path / "r.sqlite"
    dry = sweep("--datasets", "U1", "--encoders", "grid,xyz", "--space", str(space_file), "--seeds", "0-1",
                "--db", str(db), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "12 member(s)" in dry.stdout and "estimated time" in dry.stdout and not db.exists()
    run = sweep("--datasets", "U1", "--encoders", "grid,xyz", "--space", str(space_file), "--seeds", "0-1",
                "--db", str(db))
    assert run.returncode == 0, run.stderr
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT dataset, encoder, train_seed, val_top1, test_top1, bands FROM runs").fetchall()
    assert len(rows) == 12 and all(0 <= r[3] <= 100 and 0 <= r[4] <= 100 for r in rows)
    again = sweep("--datasets", "U1", "--encoders", "grid,xyz", "--space", str(space_file), "--seeds", "0-2",
                  "--db", str(db), "--resume")
    assert again.returncode == 0 and "12 member(s) already in the database" in again.stdout
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 18


@pytest.fixture
def slow_space_file(tmp_path):
    # For the tests that stop a running sweep: each population must take long enough (~0.7 s on
    # the 2-core machine) that the sweep cannot finish between two polls of the database. With
    # the 2-epoch space a fast machine ran all 8 populations of the kill test in 0.2 s.
    slow = TINY_SPACE.replace("epochs = 2\npatience = 5", "epochs = 60\npatience = 100")
    assert slow != TINY_SPACE
    p = tmp_path / "slow.toml"
    p.write_text(slow)
    return p


def test_killed_sweep_resumes_without_redoing_finished_work(tmp_path, slow_space_file):
    db = tmp_path / "r.sqlite"
    args = ["--datasets", "U1,U2,U3,U4", "--encoders", "grid", "--space", str(slow_space_file), "--seeds", "0",
            "--db", str(db), "--max-members", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + WAIT_S
    while time.time() < deadline and not (db.exists() and _count(db) >= 2):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    conn = sqlite3.connect(db)
    before = dict(conn.execute("SELECT id, created FROM runs").fetchall())
    assert 2 <= len(before) < 16 and len(before) % 2 == 0  # whole populations only
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    resumed = sweep(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = dict(conn.execute("SELECT id, created FROM runs").fetchall())
    assert len(after) == 16
    assert all(after[i] == t for i, t in before.items())  # finished work was not redone


def test_two_sweeps_writing_one_database_at_once(tmp_path, space_file):
    db = tmp_path / "r.sqlite"
    common = ["--encoders", "grid", "--space", str(space_file), "--seeds", "0-1", "--db", str(db), "--max-members", "1"]
    procs = [subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu",
                               "--datasets", d, *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for d in ("U1", "S1.1")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(conn.execute("SELECT dataset, COUNT(*) FROM runs GROUP BY dataset").fetchall())
    assert counts == {"U1": 8, "S1.1": 8}


def test_random_sampler_draws_the_subset_the_old_random_mode_drew(tmp_path, space_file):
    # --mode random --n-random K became --sampler random --trials K; the same K
    # configurations (random.Random(0).sample of the grid) are tried, and with --finalists all
    # each trains on every seed, as the old mode did
    import random

    space = load_space(str(space_file))
    expected = {results.digest(c) for c in random.Random(0).sample(space.configs("grid"), 2)}
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "grid", "--space", str(space_file), "--seeds", "0-1", "--db", str(db),
              "--sampler", "random", "--trials", "2", "--finalists", "all")
    assert r.returncode == 0, r.stderr
    final = sqlite3.connect(db).execute("SELECT config_hash, train_seed FROM runs WHERE stage = 'final'").fetchall()
    assert sorted(final) == sorted((h, s) for h in expected for s in (0, 1))


def test_database_from_a_newer_schema_is_refused(tmp_path):
    db = tmp_path / "r.sqlite"
    results.ResultsStore(db).conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SynthError, match="newer"):
        results.ResultsStore(db)
    r = sweep("--datasets", "U1", "--encoders", "grid", "--db", str(db))
    assert r.returncode == 2 and "newer" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,word", [
    (["--datasets", "U9"], "unknown dataset"),
    (["--encoders", "gridd"], "unknown encoder"),
    (["--space", "nope"], "unknown search space"),
    (["--seeds", "a-b"], "cannot read seeds"),
    (["--device", "tpu9"], "unknown device"),
    (["--data", "/nonexistent"], "not found"),
    # the flags of the removed search paths name their replacement
    (["--mode", "random"], "was removed: the exhaustive sweep is the default (--sampler grid --pruner none"),
    (["--mode", "halving"], "--mode halving is --pruner halving"),
    (["--n-random", "3"], "--n-random was removed: use --sampler random --trials K --finalists all"),
])
def test_sweep_errors_are_one_line_before_any_work(tmp_path, args, word):
    db = tmp_path / "r.sqlite"
    r = sweep("--db", str(db), *args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and word in r.stderr, r.stderr
    assert not db.exists() or sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_a_corrupt_database_file_is_refused_in_one_line(tmp_path):
    db = tmp_path / "r.sqlite"
    db.write_bytes(b"this is not sqlite" * 100)
    r = sweep("--datasets", "U1", "--encoders", "grid", "--db", str(db))
    assert r.returncode == 2 and "not a usable SQLite" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_terminated_sweep_says_so_in_one_line(tmp_path, slow_space_file):
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu",
                             "--datasets", "all", "--encoders", "grid", "--space", str(slow_space_file), "--seeds", "0-4",
                             "--db", str(db), "--max-members", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + WAIT_S
    while time.time() < deadline and not (db.exists() and _count(db) > 0):
        time.sleep(0.01)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [INTERRUPTED]
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


INTERRUPTED = "error: interrupted; work in flight was abandoned, finished work is saved (rerun with --resume to continue)"
LONG_POPULATION = """
[settings]
epochs = 3000
patience = 3000
batch_size = 1024
[grid]
lr = [0.001, 0.002]
hidden_dim = [256]
num_hidden_layers = [2]
num_filts = [16]
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("executor", ["local", "inline"])
def test_a_signal_stops_a_sweep_within_seconds_and_ends_its_workers(tmp_path, executor, signum):
    """The driver used to wait for the populations in flight (minutes) before saying so."""
    import psutil

    space = tmp_path / "long.toml"
    space.write_text(LONG_POPULATION)
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu",
                             "--datasets", "U1", "--encoders", "xyz", "--space", str(space), "--seeds", "0",
                             "--db", str(db), "--executor", executor] + (["--workers", "1"] if executor == "local" else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    deadline = time.time() + WAIT_S
    trainer = None
    while time.time() < deadline and proc.poll() is None:  # until a population has trained for a while
        kids = me.children(recursive=True)
        trainer = kids[-1] if executor == "local" and kids else me if executor == "inline" else None
        try:
            if trainer is not None and trainer.cpu_times().user > 8:
                break
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before it could be stopped: make its population longer"
    workers = me.children(recursive=True)
    assert (len(workers) >= 1) == (executor == "local")
    t0 = time.time()
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=60)
    finally:  # never leave a sweep (and its workers) running after a failed test
        for p in [me] + workers:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
    assert time.time() - t0 < 10, f"stopped after {time.time() - t0:.1f} s"
    assert proc.returncode == 130 and err.strip().splitlines() == [INTERRUPTED], err
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"workers still running: {alive}"
    assert _count(db) == 0  # the population in flight was abandoned, not written


def _count(db):
    try:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0


def test_processes_creating_one_database_at_the_same_moment(tmp_path):
    # Six processes wait for a common start time, then all create the same new database. Before
    # results._retry_locked, such races often ended in "database is locked".
    code = ("import sys, time; from experiments.store import results; time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
            "results.ResultsStore(sys.argv[1]).close()")
    for round_ in range(5):
        db = tmp_path / f"race{round_}.sqlite"
        start = time.time() + 2.0  # long enough for every process to import
        procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(start)], stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        meta = dict(sqlite3.connect(db).execute("SELECT key, value FROM meta"))
        assert meta == {"schema_version": str(results.SCHEMA_VERSION), "package": "sphere-synth"}


def test_the_progress_bar_counts_each_member_epoch_once_weighted_by_its_seconds():
    from experiments.search.populations import Progress

    progress = Progress("t", show=True)
    progress.add(3 * 10, 2.0)  # a population of 3 members, up to 10 epochs, 2 s per member-epoch
    step = progress.per_epoch(3, 2.0)
    for epoch in (1, 2, 5):  # the trainer reports epochs; early stopping ended it at 5
        step(epoch, 10)
    assert (progress.member_epochs, step.epochs) == (15, 5)
    progress.advance(3 * (10 - step.epochs), 2.0)  # what train_populations adds for the epochs not run
    assert progress.member_epochs == progress.total_member_epochs == 30
    assert progress.bar.n == pytest.approx(progress.bar.total) == pytest.approx(60.0)
    progress.close()
