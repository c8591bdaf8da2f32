"""How close the population trainer runs to this machine's matmul speed, per network family (not a test).

For each network family the trainer uses — ``ffn`` (sphereM+), ``resnet`` (wrap's residual network)
and ``siren`` (spherical harmonics) — at the fair space's width (256), a population of 16 members
(batch 1024, S2.3) trains for ``--epochs`` epochs, on 1 and on 2 threads, side by side in one run:

1. the epochs' wall time, unprofiled;
2. the same epochs under ``torch.profiler`` (``record_shapes``), which lists every matmul the trainer
   ran (``bmm``, ``baddbmm``, ``mm``, ``addmm``: forward, backward, evaluation) with its shapes;
3. ``torch.bmm`` timed alone at each of those shapes, as many times as the trainer called it.

The **roofline ratio** is (3) / (1): the share of the trainer's time that the matmuls it needs would
take on their own. 1.0 means nothing but matmuls; the rest is elementwise work (activations,
dropout masks, normalisation, random negatives, the optimiser) and overhead. The matmul FLOP rates
(2·b·m·n·k per call over the time) of both are printed too, and the top operators of one profiled
epoch by self CPU time.

Each measurement runs twice, side by side, in fresh processes: "before" and "after". After is this
tree's trainer. Before is, with ``--before REV``, the trainer of an earlier commit (its ``synth`` and
``experiments`` extracted by ``git archive`` and put first on the child's path; this file measures
both), else this tree's trainer with the C library's allocator left as it was
(``SPHERE_SYNTH_MALLOC=system``; experiments.models.host_memory). The minor page faults of the
timed epochs are printed with each.

    python benchmarks/bench_roofline.py [--epochs 2] [--members 16] [--threads 1,2] [--families ffn,resnet,siren]
                                        [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import experiments
from synth import datasets
from experiments.models import TrainSettings, train_population

FAMILIES = {  # encoder and the fair space's shape for its network
    "ffn": ("sphereM+", dict(frequency_num=32, min_radius=0.01, num_hidden_layers=2, hidden_dim=256,
                             num_filts=256, dropout=0.5)),
    "resnet": ("wrap", dict(num_filts=256, num_res_blocks=2, dropout=0.5)),
    "siren": ("spherical_harmonics", dict(legendre_polys=20, num_hidden_layers=2, hidden_dim=256)),
}
MATMULS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm")
SIDES = ("before", "after")


def configs(base: dict, members: int) -> list[dict]:
    r = np.random.default_rng(0)
    return [dict(base, lr=float(10 ** r.uniform(-3.3, -2)), seed=m) for m in range(members)]


def train(ds, encoder, cfgs, epochs):
    settings = TrainSettings(epochs=epochs, batch_size=1024, patience=None)
    return train_population(ds, encoder, cfgs, settings, device="cpu")


def matmul_calls(prof) -> list[tuple[str, tuple, int]]:
    """[(op, (b, m, k, n), calls)] of the matmuls a profiled run made."""
    out: dict = {}
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in MATMULS or not e.input_shapes:
            continue
        shapes = [s for s in e.input_shapes if s]
        if e.key in ("aten::bmm", "aten::baddbmm"):
            a, b = (shapes[0], shapes[1]) if e.key == "aten::bmm" else (shapes[1], shapes[2])
            dims = (a[0], a[1], a[2], b[2])
        else:
            a, b = (shapes[0], shapes[1]) if e.key == "aten::mm" else (shapes[1], shapes[2])
            dims = (1, a[0], a[1], b[1])
        out[(e.key, dims)] = out.get((e.key, dims), 0) + e.count
    return [(op, dims, n) for (op, dims), n in out.items()]


def bmm_seconds(calls, repeats: int = 3) -> tuple[float, float]:
    """(seconds, FLOPs) of torch.bmm alone at every shape, as many calls as the trainer made."""
    total_s = total_flops = 0.0
    for _, (b, m, k, n), count in calls:
        x, w = torch.randn(b, m, k), torch.randn(b, k, n)
        torch.bmm(x, w)  # warm
        reps = max(1, min(count, 200))
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.bmm(x, w)
            best = min(best, (time.perf_counter() - t0) / reps)
        total_s += best * count
        total_flops += 2.0 * b * m * k * n * count
    return total_s, total_flops


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(a) -> dict:
    """One family on one thread count with this process's allocator: the numbers of one row."""
    ds = datasets.generate(a.dataset, 0)
    from torch.profiler import ProfilerActivity, profile

    encoder, base = FAMILIES[a.families]
    cfgs = configs(base, a.members)
    torch.set_num_threads(int(a.threads))
    train(ds, encoder, cfgs, 1)  # warm: allocator, first-call paths
    faults = minor_faults()
    t0 = time.perf_counter()
    train(ds, encoder, cfgs, a.epochs)
    wall = time.perf_counter() - t0
    faults = minor_faults() - faults
    # Two profiles: the operators' shares from one without shapes, then the matmul shapes from one with
    # them. Recording shapes holds a record per call, and those allocations split the heap's free
    # blocks where freed memory is kept, so that profile's operators fault their pages in again (1.8
    # million faults seen here); without shapes 0.14 million. The faults of each are printed.
    prof_faults = minor_faults()
    with profile(activities=[ProfilerActivity.CPU]) as ops:
        train(ds, encoder, cfgs, a.epochs)
    prof_faults = minor_faults() - prof_faults
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        train(ds, encoder, cfgs, a.epochs)
    alone, flops = bmm_seconds(matmul_calls(prof))
    events = sorted(ops.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    top = [(e.key, 100 * e.self_cpu_time_total / total, e.count) for e in events[:a.top]]
    return dict(family=a.families, encoder=encoder, threads=int(a.threads), wall=wall, alone=alone, flops=flops,
                faults=faults, top=top, prof_faults=prof_faults, code=str(Path(experiments.__file__).parents[1]))


def measure_all(a, env: dict) -> list:
    """[(before, after)] per family and thread count, each side measured in a fresh process (the
    allocator's setting cannot be undone in a process)."""
    rows = []
    for family in a.families.split(","):
        for threads in a.threads.split(","):
            pair = []
            for side in SIDES:
                cmd = [sys.executable, __file__, "--one", "--families", family, "--threads", threads,
                       "--epochs", str(a.epochs), "--members", str(a.members), "--dataset", a.dataset,
                       "--top", str(a.top)]
                out = subprocess.run(cmd, env=env[side], check=True, capture_output=True, text=True).stdout
                pair.append(json.loads(out.splitlines()[-1]))
            for r, side in zip(pair, SIDES):
                print(f"{family:7s} {r['encoder']:20s} threads {threads} {side:6s}: trainer {r['wall']:6.2f} s "
                      f"({r['faults']} page faults), its matmuls alone {r['alone']:6.2f} s -> ratio "
                      f"{r['alone'] / r['wall']:.2f}", flush=True)
            if threads == "1":
                for r, side in zip(pair, SIDES):
                    print(f"  top {a.top} operators by self CPU time ({a.epochs} epochs, profiled, {side}, "
                          f"{r['prof_faults']} page faults):")
                    print(f"    (trainer from {r['code']})")
                    for key, share, count in r["top"]:
                        print(f"    {key:38s} {share:5.1f} %  ({count} calls)")
            rows.append(pair)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--dataset", default="S2.3")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--before", metavar="REV", help="measure this commit's trainer as before (default: this "
                   "tree's, with the C library's allocator as it was)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one row, as JSON
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a)))
        return 0
    with tempfile.TemporaryDirectory() as old:
        env = {"after": dict(os.environ)}
        if a.before:  # the earlier commit's packages first on the child's path
            repo = Path(__file__).resolve().parents[1]
            tar = subprocess.run(["git", "-C", str(repo), "archive", a.before, "synth", "experiments"], check=True,
                                 capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", old], input=tar, check=True)
            path = os.pathsep.join(filter(None, [old, os.environ.get("PYTHONPATH")]))
            env["before"] = dict(os.environ, PYTHONPATH=path)
        else:
            env["before"] = dict(os.environ, SPHERE_SYNTH_MALLOC="system")
        rows = measure_all(a, env)
    print(f"\nbefore: {a.before or 'this tree with the C library allocator as it was'}; after: this tree")
    print("\n| family | encoder | threads | trainer before (s) | trainer after (s) | speed-up | matmuls alone (s) "
          "| ratio before | ratio after | page faults before | after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for before, after in rows:
        print(f"| {after['family']} | {after['encoder']} | {after['threads']} | {before['wall']:.2f} | "
              f"{after['wall']:.2f} | {before['wall'] / after['wall']:.2f}x | {after['alone']:.2f} | "
              f"{before['alone'] / before['wall']:.2f} | {after['alone'] / after['wall']:.2f} | "
              f"{before['faults']} | {after['faults']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
