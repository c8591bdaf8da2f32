"""Threads per process when a sweep shares the cores, side by side in one run (not a test).

The same population (fair_quick's grid configuration: 4 learning rates, width 256, on U1) trains a
few epochs in each arrangement below; each line gives the total member-epochs per second of all
processes together and the per-process slowdown against the same process alone:

- 1 process x all cores' threads (an inline sweep, torch's default);
- 1 process x 1 thread;
- N processes x 1 thread (N = usable cores: the local executor's default, one worker per core);
- N processes x all cores' threads each (what a sweep did beside another job of the same kind:
  every process timing or training with every core's threads — oversubscribed);
- 2N processes x 1 thread (two sweeps with the default, one beside the other).

    python benchmarks/bench_threads.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import time


def _train(args):
    threads, epochs, start = args
    import torch

    from experiments.search.space import load_space
    from experiments.models.train import train_population
    from synth import datasets

    torch.set_num_threads(threads)
    space = load_space("fair_quick")
    settings = dataclasses.replace(space.settings, epochs=epochs, patience=None)
    data = datasets.generate("U1", 0)
    configs = [dict(c, seed=0) for c in space.configs("grid")]  # 2 learning rates x 2 wavelengths, one shape
    train_population(data, "grid", configs[:1], dataclasses.replace(settings, epochs=1), "cpu")
    while time.time() < start:  # every process starts its timed part together
        time.sleep(0.01)
    t = time.perf_counter()
    train_population(data, "grid", configs, settings, "cpu")
    return len(configs) * epochs, time.perf_counter() - t


def run(n_procs: int, threads: int, epochs: int) -> tuple[float, float]:
    start = time.time() + 15  # time for every process to import torch and warm up
    with mp.get_context("spawn").Pool(n_procs) as pool:
        out = pool.map(_train, [(threads, epochs, start)] * n_procs)
    member_epochs = sum(m for m, _ in out)
    wall = max(s for _, s in out)
    return member_epochs / wall, sum(s for _, s in out) / len(out)


def main():
    from experiments.store.executors import usable_cpus

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    n = usable_cpus()
    rows = [("1 process x %d threads (inline)" % n, 1, n), ("1 process x 1 thread", 1, 1),
            (f"{n} processes x 1 thread (local default)", n, 1),
            (f"{n} processes x {n} threads (oversubscribed)", n, n),
            (f"{2 * n} processes x 1 thread (two default sweeps)", 2 * n, 1)]
    alone = {}
    print(f"usable cores: {n}; population of 4 members (fair_quick grid, width 256) x {a.epochs} epochs on U1\n")
    print("| arrangement | member-epochs/s, all processes | seconds per process | slowdown of a process |")
    print("|---|---|---|---|")
    for label, procs, threads in rows:
        rate, secs = run(procs, threads, a.epochs)
        alone.setdefault(threads, secs)  # the first line of each thread count is that process alone
        print(f"| {label} | {rate:.1f} | {secs:.2f} | {secs / alone[threads]:.2f}x |")


if __name__ == "__main__":
    main()
