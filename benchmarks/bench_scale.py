"""Datasets at scale: the Bayes ceiling and training, time and peak memory (not a test).

Every cell runs in its own process, so its peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_scale.py bayes   # Bayes ceiling (train, val, test: what `python -m synth bayes` scores)
    python benchmarks/bench_scale.py train   # one training epoch + validation/test scoring, one member

bayes: a recipe of C classes x S samples, generated, then the three splits scored. ``whole`` is the
former code path (the (points, classes) score matrix at once), run where it fits, side by side with
the sliced one on the same data in the same run.

train: xyz (one hidden layer of 256, presence-absence loss, batch 1024) for one epoch, then
validation and test scored as the trainer does (predict_ranks: a batch of points at a time).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _bayes(args):
    C, S, how = args
    import numpy as np

    from synth import bayes, datasets
    from synth.metrics import summarize_ranks, true_class_ranks

    t0 = time.perf_counter()
    ds = datasets.generate(datasets.Recipe(name="big", n_classes=C, samples_per_class=S, kappa_max=128), 0)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    top1 = []
    for split in ("train", "val", "test"):
        if how == "sliced":
            top1.append(bayes.evaluate(ds, split)["top1"])
        else:  # the old code: every point's scores at once, not in slices
            ll, y = ds.split(split)
            s = bayes.log_posterior_scores(ll, ds["centers_lonlat"], ds["kappa"])
            top1.append(summarize_ranks(true_class_ranks(s, y))["top1"])
            del s
    return dict(gen_s=t_gen, score_s=time.perf_counter() - t0, top1=float(np.round(top1[-1], 2)),
                peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _train(args):
    C, S = args
    import torch

    from experiments.models.train import TrainSettings, train_population
    from synth import datasets

    torch.set_num_threads(1)
    ds = datasets.generate(datasets.Recipe(name="big", n_classes=C, samples_per_class=S, kappa_max=128), 0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    (r,) = train_population(ds, "xyz", [dict(lr=0.005, hidden_dim=256, num_hidden_layers=1, seed=0)],
                            TrainSettings(epochs=1), "cpu")
    total = time.perf_counter() - t0
    return dict(epoch_s=total, top1=r.test["top1"], data_mb=base,
                peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _run(fn, args):
    with mp.get_context("spawn").Pool(1) as pool:  # a fresh process: its peak memory is this cell's
        return pool.apply(fn, (args,))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["bayes", "train"])
    p.add_argument("--cells", help="C:S,C:S,... (default: the table in docs/performance.md)")
    p.add_argument("--whole-up-to", type=int, default=1_000_000, help="run the former whole-matrix path on "
                   "recipes of at most this many points (default 1e6: 11 GB)")
    a = p.parse_args(argv)
    if a.what == "bayes":
        cells = a.cells or "1000:1000,100:50000,1000:5000"
        print("| classes x samples | points | path | generate s | score s (3 splits) | peak MB | test Top-1 |")
        print("|---|---|---|---|---|---|---|")
        for cell in cells.split(","):
            C, S = map(int, cell.split(":"))
            for how in ("whole", "sliced"):
                if how == "whole" and C * S > a.whole_up_to:
                    continue
                r = _run(_bayes, (C, S, how))
                print(f"| {C} x {S} | {C * S:,} | {how} | {r['gen_s']:.1f} | {r['score_s']:.1f} | {r['peak_mb']:.0f} | "
                      f"{r['top1']:.2f} |", flush=True)
    else:
        cells = a.cells or "1000:100,1000:300,1000:1000,50:4000,200:1000,1000:200"
        print("| classes x samples | points | epoch + scoring s | s per 100k training points | peak MB | "
              "of it data MB | test Top-1 after 1 epoch |")
        print("|---|---|---|---|---|---|---|")
        for cell in cells.split(","):
            C, S = map(int, cell.split(":"))
            r = _run(_train, (C, S))
            n_train = 0.7 * C * S
            print(f"| {C} x {S} | {C * S:,} | {r['epoch_s']:.1f} | {r['epoch_s'] / n_train * 1e5:.2f} | "
                  f"{r['peak_mb']:.0f} | {r['data_mb']:.0f} | {r['top1']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
