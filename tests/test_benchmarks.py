"""The benchmark scripts run and print what the README quotes (no timing is asserted here)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from test_executors import slurm_up

BENCH = Path(__file__).parent.parent / "benchmarks"


def run(script, *args, env=None):
    r = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()


def test_bench_train_ends_with_the_speedup_line():
    out = run("bench_train.py", "--members", "4", "--epochs", "1", "--hidden", "8", "--filts", "8")
    assert re.fullmatch(r"speedup \d+\.\dx", out[-1])
    assert any(line.startswith("naive loop") for line in out) and any(line.startswith("population") for line in out)


def test_bench_vmf_and_encoders_run():
    out = run("bench_vmf.py", "--n", "20000")
    assert out[-1].startswith("generate all 20 paper datasets")
    assert len([line for line in out if re.match(r"\s*(1|100|10000) ", line)]) == 3
    out = run("bench_encoders.py", "--points", "2000", "--members", "4", "--batch-points", "256")
    assert "ratio" in out[-1] and len([line for line in out if "e+" in line]) == 15


def test_bench_rbf_prints_every_wavelength_of_the_default_side_by_side():
    out = run("bench_rbf.py", "--epochs", "1")
    rows = [line.split() for line in out if re.match(r"\s*\d+° ", line)]
    assert [r[0] for r in rows] == ["4°", "32°"]  # fair_quick's min_wavelength_deg
    assert all(re.fullmatch(r"\d+\.\d+x", r[4]) and r[5] in ("True", "False") for r in rows)


def test_bench_search_ends_with_the_fidelity_line(tmp_path):
    out = run("bench_search.py", "--datasets", "U1", "--encoders", "grid", "--seeds", "0-1", "--epochs", "3",
              "--lrs", "1", "--db", str(tmp_path / "b.sqlite"))
    assert re.fullmatch(r"fidelity [+-]\d+\.\d\d points, compute \d+\.\dx", out[-1])
    assert any("exhaustive" in line and "adaptive" in line for line in out)


def test_bench_executors_ends_with_the_overhead_line():
    # where sbatch is installed but no SLURM runs (a fresh machine before .ci/start-slurm), the
    # submitit row goes through submitit's local fallback instead of failing to submit
    env = None if slurm_up() else dict(os.environ, SPHERE_SYNTH_NO_SLURM="1")
    out = run("bench_executors.py", "--encoders", "xyz", "--seeds", "0", env=env)
    assert re.fullmatch(r"overhead -?\d+\.\d% of a quick population, 2 workers \d+\.\d\dx", out[-1])


def test_bench_fair_handicap_table(tmp_path):
    """The same (smoke) space as default and as full search: every handicap and its interval is exactly 0
    on this machine over the 5 paired draws, the spread, its noise floor and the margin shift 0.0 and the verdicts agree; a rerun trains
    nothing (cached databases)."""
    args = ("--default-space", "smoke", "--full-space", "smoke", "--datasets", "U1", "--cache", str(tmp_path))
    out = run("bench_fair.py", *args)
    row, verdict = [line for line in out if line.startswith("| U1 |")]  # the handicaps, then the verdicts
    assert row.count("+0.0 [+0.0, +0.0]") == 8 and row.endswith("| 5 | 0.0 | 0.0 (95 %: 0.0) |")
    assert any("verdicts agree on 1 of 1 datasets with both sweeps finished" in line for line in out)
    assert verdict.endswith("| +0.0 | yes |")  # the same sweep twice: sphereM+'s margin does not move
    # a rerun trains nothing (cached databases); the default space given as a file reads the same experiment
    args = ("--default-space", str(BENCH.parent / "experiments" / "spaces" / "smoke.toml"), *args[2:])
    again = subprocess.run([sys.executable, str(BENCH / "bench_fair.py"), *args], capture_output=True, text=True)
    assert "nothing to do" in again.stdout + again.stderr and again.returncode == 0
    assert "| U1 |" in again.stdout
    # a reference built from the default's database stands for the full search: the same rows, so
    # the same zeros; datasets the reference lacks are "not finished", never a verdict
    from experiments.report import reference
    from experiments.store.results import ResultsStore, choose_experiment

    with ResultsStore(tmp_path / "default.sqlite", readonly=True) as store:
        ref = reference.build(store, choose_experiment(store, "smoke"), "smoke_ref")
    reference.write(ref, tmp_path / "smoke_ref.json")
    out = run("bench_fair.py", "--default-db", str(tmp_path / "default.sqlite"), "--default-space", "smoke",
              "--full-reference", str(tmp_path / "smoke_ref.json"), "--datasets", "U1,U2")
    assert out[0].startswith("handicap = full fair search (reference smoke_ref (smoke-")
    row, verdict = [line for line in out if line.startswith("| U1 |")]
    assert row.count("+0.0 [+0.0, +0.0]") == 8 and verdict.endswith("| +0.0 | yes |")
    assert any(line.startswith("| U2 |") and "not finished (0 of 8 encoders chosen)" in line for line in out)


def test_bench_scale_prints_both_bayes_paths_with_the_same_top1_and_the_training_table():
    out = run("bench_scale.py", "bayes", "--cells", "20:50,30:40", "--whole-up-to", "1000")
    rows = [line.split("|")[1:-1] for line in out if re.match(r"\| \d+ x \d+ ", line)]
    assert [(r[0].strip(), r[2].strip()) for r in rows] == [("20 x 50", "whole"), ("20 x 50", "sliced"),
                                                            ("30 x 40", "sliced")]  # 1 200 points > 1 000: no whole
    assert rows[0][6] == rows[1][6]  # the same Top-1 from both paths
    out = run("bench_scale.py", "train", "--cells", "10:50")
    assert re.match(r"\| 10 x 50 \| 500 \| \d+\.\d \|", out[-1])


def test_the_readme_loader_example_runs_as_pasted():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    block = text.split("```python\nfrom torch.utils.data import DataLoader")[1].split("```")[0]
    code = "from torch.utils.data import DataLoader" + block + "assert train.n_classes == 50 and lonlat.shape[1] == 2\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def fair_full_folder(folder, log_lines, pauses, runs):
    """A fake fair_full.sh folder: log.txt (lines at seconds after t0), pauses.log, fair_full.sqlite with
    runs (experiment c is cold, t transfers) at seconds after t0; t0 = 2026-12-06T00:12:57Z."""
    import sqlite3

    t0 = 1_796_515_977
    stamp = lambda dt: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + dt))  # noqa: E731
    (folder / "log.txt").write_text("".join(f"{stamp(dt)} {line}\n" for dt, line in log_lines))
    (folder / "pauses.log").write_text("".join(f"{word} {t0 + dt}\n" for word, dt in pauses))
    db = sqlite3.connect(folder / "fair_full.sqlite")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("CREATE TABLE runs (experiment TEXT, dataset TEXT, epochs_run INTEGER, seconds REAL, created REAL)")
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("policy/c", '{"trials": 100}'),
                                                      ("policy/t", '{"transfer_from": "c", "trials": 12}')])
    db.executemany("INSERT INTO runs VALUES (?, 'U1', ?, ?, ?)", [(e, n, s, t0 + dt) for e, n, s, dt in runs])
    db.commit()
    db.close()


FAIR_FULL_U1 = dict(  # two sittings: the first killed (no end line: it ends at its last stored result, 600 s
    # in), the second 600 s long with a 100 s pause inside: 1 100 s = 18.3 min
    log_lines=[(0, "cold U1 start"), (1000, "cold U1 start"), (1600, "cold U1 end"),
               (1600, "transfer U1 start (from x)")],
    pauses=[("paused", 1100), ("resumed", 1200)],
    runs=[("c", 40, 30.0, 300), ("c", 60, 30.0, 600), ("c", 10, 5.0, 1500), ("t", 7, 3.0, 1700)])


def test_fair_full_times_subtracts_pauses_and_ends_a_killed_sitting_at_its_last_result(tmp_path):
    fair_full_folder(tmp_path, **FAIR_FULL_U1)
    out = run("fair_full_times.py", str(tmp_path))
    assert "| cold | U1 | 18.3 | 2 | 1.7 | 110 | 0.02 | done |" in out
    assert "| transfer | U1 | 1.7 | 1 | 0.0 | 7 | 0.00 | running or stopped |" in out
    assert "cold: 1 dataset(s) done, 0.31 h in all, 18.3 min per dataset" in out


def test_fair_full_times_leaves_out_a_restart_of_a_finished_dataset(tmp_path):
    """A later sitting starts the finished cold U1 again: it stores nothing and ends 11 s later. That
    sitting is not the dataset's work, so the time and the count of sittings stay as they were."""
    case = dict(FAIR_FULL_U1)
    case["log_lines"] = case["log_lines"] + [(2000, "cold U1 start"), (2011, "cold U1 end")]
    fair_full_folder(tmp_path, **case)
    out = run("fair_full_times.py", str(tmp_path))
    assert "| cold | U1 | 18.3 | 2 | 1.7 | 110 | 0.02 | done |" in out
    assert "cold: 1 dataset(s) done, 0.31 h in all, 18.3 min per dataset" in out


def test_bench_roofline_reads_the_matmul_shapes_the_profiler_saw_and_prints_its_table():
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(BENCH))
    import bench_roofline

    x, w, b = torch.randn(3, 5, 7), torch.randn(3, 7, 11), torch.randn(3, 1, 11)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        torch.bmm(x, w)
        torch.bmm(x, w)
        torch.baddbmm(b, x, w)
        torch.mm(x[0], w[0])
    calls = sorted(bench_roofline.matmul_calls(prof))
    assert calls == [("aten::baddbmm", (3, 5, 7, 11), 1), ("aten::bmm", (3, 5, 7, 11), 2),
                     ("aten::mm", (1, 5, 7, 11), 1)]
    seconds, flops = bench_roofline.bmm_seconds(calls)
    assert flops == 2 * 3 * 5 * 7 * 11 * 3 + 2 * 5 * 7 * 11 and seconds > 0
    # one family, both thread counts: the suite's time (all three: docs)
    out = run("bench_roofline.py", "--epochs", "1", "--members", "2", "--threads", "1,2", "--top", "3",
              "--families", "resnet", "--before", "HEAD")
    rows = [line.split(" | ") for line in out if line.startswith("| ") and "family" not in line and "---" not in line]
    assert [(r[0].strip("| "), r[2]) for r in rows] == [("resnet", "1"), ("resnet", "2")]
    # before and after side by side: both trainer times, both ratios, both page-fault counts
    assert all(float(r[3]) > 0 and float(r[4]) > 0 and 0 < float(r[7]) and 0 < float(r[8]) for r in rows)
    assert all(int(r[9]) >= 0 and int(r[10].strip(" |")) >= 0 for r in rows)
    assert sum(" before: trainer" in line for line in out) == sum(" after : trainer" in line for line in out) == 2
    # before is the commit's own code, extracted elsewhere; after is this tree's
    where = [line.split("trainer from ")[1].rstrip(")") for line in out if "trainer from" in line]
    assert len(where) == 2 and where[0] != where[1] and where[1] == str(BENCH.parent.resolve())


def test_bench_floor_counts_what_the_run_trained_and_prints_the_floor(tmp_path):
    """A search of 2 configurations on draw 0 (a population of 2), the chosen one on draw 1 (of 1): the
    final row on draw 0 copies a search run and cost nothing, so it is not counted; each population
    size gets its row with the database's member-epochs, a floor and a ratio; a missing database is one line."""
    import sqlite3

    space = tmp_path / "tiny.toml"
    space.write_text('description = "tiny"\n[settings]\nepochs = 2\npatience = 2\n'
                     '[search]\nsampler = "grid"\npruner = "none"\nfinalists = 1\nsearch_seeds = [0]\n'
                     '[grid]\nlr = [0.01, 0.02]\nnum_hidden_layers = [1]\nhidden_dim = [16]\nnum_filts = [16]\n'
                     'dropout = [0.5]\n')
    db = tmp_path / "run.sqlite"
    r = subprocess.run([sys.executable, "-m", "experiments", "sweep", "--datasets", "U1", "--encoders", "xyz",
                        "--space", str(space), "--seeds", "0", "--data-seeds", "0-1", "--db", str(db),
                        "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    con = sqlite3.connect(db)
    rows = con.execute("SELECT stage, data_seed, population, epochs_run FROM runs ORDER BY stage, data_seed").fetchall()
    assert [(s, d, p) for s, d, p, _ in rows] == [("final", 0, 2), ("final", 1, 1), ("search", 0, 2), ("search", 0, 2)]
    expected = {"1": rows[1][3], "2": rows[2][3] + rows[3][3]}  # the copied final (draw 0) left out
    out = run("bench_floor.py", "--db", str(db), "--epochs", "1", "--wall", "100", "--target-min", "30")
    table = {c[1]: c for c in (line.split(" | ") for line in out
                               if line.startswith("| xyz |") and not line.endswith("% |"))}
    assert sorted(table) == ["1", "2"]
    for size, cells in table.items():
        assert int(cells[2]) == expected[size]
        trainer, floor, ratio = float(cells[5]), float(cells[6]), float(cells[7])
        assert 0 < floor and 0 < trainer and ratio == round(floor / trainer, 2)
    assert out[-1].startswith("the run: 1.7 min,") and "30 min needs the matmuls to be" in out[-1]
    # the phases of the trainer's steps, each population size: shares of its time, with the rest 100 %
    phases = [line.split(" | ") for line in out if line.startswith("| xyz |") and line.endswith("% |")]
    assert sorted(c[1] for c in phases) == ["1", "2"]
    for c in phases:
        shares = [float(x.strip(" %|")) for x in c[2:]]
        assert len(shares) == 7 and all(x > 0 for x in shares[1:4]) and abs(sum(shares) - 100) < 0.2
    missing = subprocess.run([sys.executable, str(BENCH / "bench_floor.py"), "--db", str(tmp_path / "none.sqlite")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none.sqlite'}: no such database"]
