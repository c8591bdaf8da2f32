"""Population trainer against a naive one-model-at-a-time loop, side by side in one run.

Both train the same M configurations of sphereM+ (S = 16, h = 1, k = 128, d = 64; learning rate,
r_min, dropout and seed vary) on U1 for the same epochs and batch size. The naive loop is what a
user of the public code writes: one ``nn.Module`` per configuration, ``torch.optim.Adam``, plain
batches. Prints configurations x epochs per second for both, peak memory, and last
``speedup <N.N>x``.

    python benchmarks/bench_train.py [--members 64] [--epochs 3] [--device cpu|cuda] [--hidden 128]
    python benchmarks/bench_train.py --device cuda --members 1,16,64,256,1024   # the GPU figures, one line per M
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import resource
import time

import numpy as np
import torch

from synth import datasets
from experiments.models import encoders
from experiments.search.plan import CPU_MAX_MEMBERS
from experiments.models.train import TrainSettings, presence_absence_loss, train_population


def configs(M, hidden, filts):
    r = np.random.default_rng(0)
    return [dict(frequency_num=16, min_radius=float(10 ** r.uniform(-3, -1)), num_hidden_layers=1, hidden_dim=hidden,
                 num_filts=filts, dropout=float(r.choice([0.3, 0.5])), lr=float(10 ** r.uniform(-3.3, -2)), seed=m)
            for m in range(M)]


def naive_loop(ds, cfgs, epochs, batch, device):
    x_all = torch.tensor(ds["train_lonlat"], device=device)
    y_all = torch.tensor(ds["train_label"], device=device)
    C = ds.recipe.n_classes
    for cfg in cfgs:
        cfg = dict(cfg)
        lr = cfg.pop("lr")
        torch.manual_seed(cfg["seed"])
        model = encoders.build("sphereM+", C, **cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for epoch in range(epochs):
            for g in opt.param_groups:
                g["lr"] = lr * 0.98 ** epoch
            perm = torch.randperm(len(x_all), device=device)
            for i in range(0, len(perm), batch):
                idx = perm[i:i + batch]
                u = torch.rand(len(idx), 2, device=device, dtype=torch.float64)
                neg = torch.stack([360 * u[:, 0] - 180, torch.rad2deg(torch.asin(2 * u[:, 1] - 1))], -1)
                logits = model(torch.cat([x_all[idx], neg]))
                loss = presence_absence_loss(logits[None, :len(idx)], logits[None, len(idx):], y_all[idx][None], C)
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", default="64", help="M, or a comma list of M values (one comparison each)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--filts", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--naive-members", type=int, default=None,
                    help="time the naive loop on this many configurations and scale up (it is linear in M)")
    ap.add_argument("--population", type=int, default=None,
                    help="members per population (default: the sweep's packing: 16 on CPU, all M on GPU)")
    a = ap.parse_args()
    for m in [int(x) for x in str(a.members).split(",")]:
        compare(_with(a, members=m))


def _with(ns, **kw):
    return argparse.Namespace(**{**vars(ns), **kw})


def compare(a):
    dev = torch.device(a.device)
    ds = datasets.generate("U1", 0)
    cfgs = configs(a.members, a.hidden, a.filts)
    what = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {what}; M = {a.members} sphereM+ configurations (S=16, k={a.hidden}, d={a.filts}), "
          f"{a.epochs} epochs, batch {a.batch}, {len(ds['train_label'])} training points")
    n_naive = a.naive_members or a.members
    pop = a.population or (CPU_MAX_MEMBERS if dev.type == "cpu" else a.members)
    settings = TrainSettings(epochs=a.epochs, batch_size=a.batch, patience=None, select="last")
    # warm both paths up (allocator, kernels, first-call overheads) before timing either
    naive_loop(ds, cfgs[:1], 1, a.batch, dev)
    train_population(ds, "sphereM+", cfgs[:2], dataclasses.replace(settings, epochs=1), device=dev)
    t = time.perf_counter()
    naive_loop(ds, cfgs[:n_naive], a.epochs, a.batch, dev)
    t_naive = (time.perf_counter() - t) * a.members / n_naive
    mem_naive = peak_mb(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for i in range(0, a.members, pop):
        train_population(ds, "sphereM+", cfgs[i:i + pop], settings, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_pop = time.perf_counter() - t
    mem_pop = peak_mb(dev)
    work = a.members * a.epochs
    scaled = f" (timed on {n_naive}, scaled)" if n_naive != a.members else ""
    print(f"naive loop : {t_naive:8.2f} s  {work / t_naive:8.2f} config-epochs/s  peak {mem_naive:8.0f} MB{scaled}")
    print(f"population : {t_pop:8.2f} s  {work / t_pop:8.2f} config-epochs/s  peak {mem_pop:8.0f} MB"
          + ("" if dev.type == "cuda" else " (process peak RSS)") + f", {math.ceil(a.members / pop)} population(s) of <= {pop}")
    print(f"speedup {t_naive / t_pop:.1f}x")


if __name__ == "__main__":
    main()
