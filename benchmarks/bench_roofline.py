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

    python benchmarks/bench_roofline.py [--epochs 2] [--members 16] [--threads 1,2] [--families ffn,resnet,siren]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from synth import datasets
from experiments.models import TrainSettings, train_population

FAMILIES = {  # encoder and the fair space's shape for its network
    "ffn": ("sphereM+", dict(frequency_num=32, min_radius=0.01, num_hidden_layers=2, hidden_dim=256,
                             num_filts=256, dropout=0.5)),
    "resnet": ("wrap", dict(num_filts=256, num_res_blocks=2, dropout=0.5)),
    "siren": ("spherical_harmonics", dict(legendre_polys=20, num_hidden_layers=2, hidden_dim=256)),
}
MATMULS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm")


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--members", type=int, default=16)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--dataset", default="S2.3")
    p.add_argument("--top", type=int, default=10)
    a = p.parse_args(argv)
    ds = datasets.generate(a.dataset, 0)
    from torch.profiler import ProfilerActivity, profile

    rows = []
    for family in a.families.split(","):
        encoder, base = FAMILIES[family]
        cfgs = configs(base, a.members)
        for threads in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(threads)
            train(ds, encoder, cfgs, 1)  # warm: allocator, first-call paths
            t0 = time.perf_counter()
            train(ds, encoder, cfgs, a.epochs)
            wall = time.perf_counter() - t0
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                train(ds, encoder, cfgs, a.epochs)
            calls = matmul_calls(prof)
            alone, flops = bmm_seconds(calls)
            rows.append((family, encoder, threads, wall, alone, flops))
            print(f"{family:7s} {encoder:20s} threads {threads}: trainer {wall:6.2f} s, its matmuls alone "
                  f"{alone:6.2f} s -> ratio {alone / wall:.2f}; matmul GFLOP/s {flops / wall / 1e9:6.1f} in the "
                  f"trainer, {flops / alone / 1e9:6.1f} in torch.bmm", flush=True)
            if threads == 1:
                print(f"  top {a.top} operators by self CPU time ({a.epochs} epochs, profiled):")
                events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
                total = sum(e.self_cpu_time_total for e in prof.key_averages())
                for e in events[:a.top]:
                    print(f"    {e.key:38s} {100 * e.self_cpu_time_total / total:5.1f} %  ({e.count} calls)")
    print("\n| family | encoder | threads | trainer (s) | matmuls alone (s) | ratio | GFLOP/s trainer | GFLOP/s bmm |")
    print("|---|---|---|---|---|---|---|---|")
    for family, encoder, threads, wall, alone, flops in rows:
        print(f"| {family} | {encoder} | {threads} | {wall:.2f} | {alone:.2f} | {alone / wall:.2f} | "
              f"{flops / wall / 1e9:.1f} | {flops / alone / 1e9:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
