"""Executors side by side in one run (not a test): the same sweep inline, on 1 and 2 local workers,
and through submitit (SLURM where sbatch runs, else its local subprocesses).

Workload: the `quick` space on --datasets for the 8 Table-8 encoders, seeds 0-2 (populations of
2 x 3 members). Prints per executor the wall time, the overhead per population against inline
(one worker does the same arithmetic as inline, so the difference is the executor's own cost:
process start, data loading, transfer of rows), the 1 vs 2 local-worker ratio, and the time until
the first row is stored through submitit. Last line: ``overhead <pct>% of a quick population,
2 workers <ratio>x``.

    python benchmarks/bench_executors.py [--datasets U1] [--encoders table8]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(tmp: Path, name: str, args: list, watch_first: bool = False) -> tuple[float, float | None]:
    db = tmp / f"{name}.sqlite"
    cmd = [sys.executable, "-m", "experiments", "sweep", "--no-progress", "--device", "cpu", "--db", str(db), *args]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if watch_first and first is None and db.exists():
            try:
                if sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                    first = time.perf_counter() - t
            except sqlite3.DatabaseError:
                pass
        time.sleep(0.05)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{name} failed: {proc.stderr.read()[-2000:]}")
    return wall, first


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="U1")
    p.add_argument("--encoders", default="table8")
    p.add_argument("--seeds", default="0-2")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_executors_"))
    common = ["--datasets", a.datasets, "--encoders", a.encoders, "--space", "quick", "--seeds", a.seeds]
    rows = {}
    for name, extra in (("inline", []), ("local-1", ["--executor", "local", "--workers", "1"]),
                        ("local-2", ["--executor", "local", "--workers", "2"]),
                        ("submitit", ["--executor", "submitit", "--workers", "2", "--log-dir", str(tmp / "logs")])):
        rows[name] = run(tmp, name, common + extra, watch_first=name == "submitit")
    inline, one, two = rows["inline"][0], rows["local-1"][0], rows["local-2"][0]
    # the quick space has one shape per encoder: one population per (dataset, encoder)
    n_pops = sqlite3.connect(tmp / "inline.sqlite").execute(
        "SELECT COUNT(DISTINCT dataset || '/' || encoder) FROM runs").fetchone()[0]
    per_pop_inline = inline / max(1, n_pops)
    overhead = (one - inline) / max(1, n_pops)
    where = "SLURM" if shutil.which("sbatch") else "submitit local subprocesses"
    for name, (wall, first) in rows.items():
        print(f"{name:9s} {wall:7.1f} s" + (f"   first row stored after {first:.1f} s ({where})" if first else ""))
    print(f"{n_pops} populations; inline {per_pop_inline:.2f} s per population; local 1 worker costs {overhead:+.3f} s "
          f"per population more")
    print(f"overhead {100 * overhead / per_pop_inline:.1f}% of a quick population, 2 workers {one / two:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
