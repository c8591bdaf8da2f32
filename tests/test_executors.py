"""Executors (inline, local workers, submitit on SLURM or its local fallback), one writer,
faults retried once, nothing lost or written twice."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import SPACE_4_LR, WAIT_S, sweep

SPACE = SPACE_4_LR
COLS = "dataset, config_hash, train_seed, stage, val_top1, test_top1, best_epoch, epochs_run, bands"


def slurm_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mix", "alloc"))


needs_slurm = pytest.mark.skipif(not slurm_up(), reason="no running SLURM here (sbatch absent or no idle node); "
                                                        ".ci/start-slurm starts one")


def rows(db, cols=COLS):
    c = sqlite3.connect(db)
    out = sorted(c.execute(f"SELECT {cols} FROM runs").fetchall(), key=repr)
    c.close()
    return out


@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SPACE.format(epochs=4))
    return p


@pytest.fixture(scope="module")
def inline_rows(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("inline")
    space_file = tmp_path / "s.toml"
    space_file.write_text(SPACE.format(epochs=4))
    db = tmp_path / "inline.sqlite"
    r = sweep("--datasets", "U1,U2", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0-1", "--db", str(db),
              "--max-members", "2")
    assert r.returncode == 0, r.stderr
    return rows(db)


def test_local_workers_equal_inline(tmp_path, space_file, inline_rows):
    db = tmp_path / "local.sqlite"
    r = sweep("--datasets", "U1,U2", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0-1", "--db", str(db),
              "--max-members", "2", "--executor", "local", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "executor local: 2 worker process(es)" in r.stdout
    assert rows(db) == inline_rows


def test_submitit_local_fallback_equals_inline(tmp_path, space_file, inline_rows):
    db = tmp_path / "sub.sqlite"
    env = dict(os.environ, SPHERE_SYNTH_NO_SLURM="1")
    r = sweep("--datasets", "U1,U2", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0-1", "--db", str(db),
              "--max-members", "2", "--executor", "submitit", "--workers", "2", env=env)
    assert r.returncode == 0, r.stderr
    assert "submitit's local subprocesses" in r.stdout
    assert rows(db) == inline_rows


@needs_slurm
def test_submitit_on_slurm_equals_inline(tmp_path, space_file, inline_rows):
    db = tmp_path / "slurm.sqlite"
    r = sweep("--datasets", "U1,U2", "--encoders", "xyz", "--space", str(space_file), "--seeds", "0-1", "--db", str(db),
              "--max-members", "2", "--executor", "submitit", "--workers", "2", "--log-dir", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stderr
    assert "SLURM (sbatch)" in r.stdout and not r.stderr.strip(), r.stderr
    assert rows(db) == inline_rows
    assert any((tmp_path / "logs").rglob("*_log.err"))


@needs_slurm
def test_a_job_cancelled_with_scancel_is_retried_and_nothing_is_duplicated(tmp_path):
    db, ref, args = _slow_reference(tmp_path, 60, "0", 2)
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu", *args,
                             "--db", str(db), "--executor", "submitit", "--workers", "2", "--log-dir",
                             str(tmp_path / "logs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cancelled = None
    deadline = time.time() + WAIT_S
    while time.time() < deadline and cancelled is None:
        q = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if q:
            cancelled = q[0]
            subprocess.run(["scancel", cancelled], check=True)
        time.sleep(0.2)
    out, err = proc.communicate(timeout=300)
    assert cancelled is not None
    assert proc.returncode == 0, err
    assert rows(db) == rows(ref)  # the cancelled population was retried once; no row twice
    assert len(rows(db, "id")) == 4


def test_a_killed_worker_is_retried_then_a_killed_driver_resumes(tmp_path):
    import psutil

    db, ref, args = _slow_reference(tmp_path, 30, "0-1", 1, "--executor", "local", "--workers", "2")
    local = [*args, "--db", str(db), "--executor", "local", "--workers", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu", *local],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver = psutil.Process(proc.pid)
    killed_worker = False
    deadline = time.time() + WAIT_S
    while time.time() < deadline and proc.poll() is None:
        workers = [c for c in driver.children() if "spawn_main" in _cmdline(c)]
        if not killed_worker and workers and _count(db) >= 1:
            workers[0].kill()  # a worker dies mid-population: its job is retried
            killed_worker = True
        elif killed_worker and _count(db) >= 4:
            proc.kill()  # then the driver dies: what is stored stays
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_worker
    before = dict(sqlite3.connect(db).execute("SELECT id, created FROM runs").fetchall())
    assert 1 <= len(before) < 8
    r = sweep(*local, "--resume")
    assert r.returncode == 0, r.stderr
    after = dict(sqlite3.connect(db).execute("SELECT id, created FROM runs").fetchall())
    assert all(after[i] == t for i, t in before.items())  # nothing stored was redone
    assert rows(db) == rows(ref)


def _slow_reference(tmp_path, epochs, seeds, members, *extra):
    """A sweep slow enough to be stopped mid-run, and its uninterrupted run to compare with (inline,
    or with ``extra`` executor flags: a worker trains with cpu_count / workers torch threads, and
    the thread count can change a float reduction's order, so a chaotic run, lr 0.05 for 30
    epochs here, is compared with a reference trained with the same threads)."""
    slow = tmp_path / "slow.toml"
    slow.write_text(SPACE.format(epochs=epochs))
    db, ref = tmp_path / "r.sqlite", tmp_path / "ref.sqlite"
    args = ["--datasets", "U1", "--encoders", "xyz", "--space", str(slow), "--seeds", seeds, "--max-members",
            str(members)]
    assert sweep(*args, "--db", str(ref), *extra).returncode == 0
    return db, ref, args


def _cmdline(p) -> str:
    import psutil

    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # a process that ended while we looked
        return ""


def _count(db):
    try:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.DatabaseError:
        return 0


def test_the_adaptive_search_on_local_workers_equals_inline(tmp_path):
    sp = tmp_path / "s.toml"
    sp.write_text(SPACE.format(epochs=9))
    common = ["--datasets", "U1,U2", "--encoders", "xyz", "--space", str(sp), "--seeds", "0-1", "--pruner", "asha",
              "--max-members", "2"]
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    assert sweep(*common, "--db", str(a)).returncode == 0
    r = sweep(*common, "--db", str(b), "--executor", "local", "--workers", "2")
    assert r.returncode == 0, r.stderr
    cols = COLS + ", trial, pruned_at"
    assert rows(a, cols) == rows(b, cols)


@pytest.mark.parametrize("args,word", [
    (["--sampler", "bayes"], "--sampler"),
    (["--pruner", "median"], "--pruner"),
    (["--trials", "5"], "trials"),  # the grid sampler tries every configuration
    (["--sampler", "tpe"], "trials"),
    (["--finalists", "0"], "finalists"),
    (["--search-seeds", "x"], "search seeds"),
    (["--pruner", "asha", "--mode", "halving"], "--mode"),
    (["--executor", "dask"], "--executor"),
    (["--executor", "local", "--workers", "0"], "--workers"),
    (["--partition", "gpu"], "--executor submitit"),
    (["--workers", "3"], "--workers"),
    (["--executor", "submitit", "--log-dir", "/proc/no/such/place"], "log folder"),
])
def test_bad_search_and_executor_options_are_one_line_errors_before_any_work(tmp_path, space_file, args, word):
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(space_file), "--db", str(db), *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and word in lines[0], r.stderr
    assert not db.exists() or _count(db) == 0


def test_local_workers_default_to_the_usable_cores_each_with_one_thread(tmp_path, monkeypatch):
    """Found while timing make reproduce: local workers defaulted to 2 whatever the machine, so a
    16-core machine trained 2 populations at a time, 8 threads each, on models too small to use them."""
    import torch

    from experiments.store import executors as X

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(X, "CGROUP_CPU_MAX", tmp_path / "absent")
    monkeypatch.setattr(X, "memory_gib", lambda: 64)
    assert X.usable_cpus() == 16
    local = X.ExecutorOptions(kind="local")
    assert X.n_workers(local) == 16 and X.n_workers(X.ExecutorOptions(kind="local", workers=3)) == 3
    assert X.n_workers(X.ExecutorOptions(kind="submitit")) == 2  # jobs at once: not this machine's cores
    runner = X.Runner(local, "cpu")
    assert (runner.workers, runner._threads()) == (16, 1)
    runner.pool.shutdown()
    monkeypatch.setattr(X, "memory_gib", lambda: 6)  # a worker peaks near 0.5 GB: at most one per GiB
    assert X.n_workers(local) == 6
    monkeypatch.setattr(X, "memory_gib", lambda: 0)
    assert X.n_workers(local) == 1
    monkeypatch.setattr(X, "memory_gib", lambda: 64)
    # a container's CPU quota caps what the affinity mask shows (cgroup v2 cpu.max: quota period)
    monkeypatch.setattr(X, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    for text, cores in (("150000 100000\n", 2), ("400000 100000\n", 4), ("max 100000\n", 16), ("garbage\n", 16)):
        X.CGROUP_CPU_MAX.write_text(text)
        assert X.usable_cpus() == cores, text
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})  # e.g. a SLURM allocation of 3 cores
    X.CGROUP_CPU_MAX.write_text("max 100000\n")
    assert X.n_workers(local) == 3
