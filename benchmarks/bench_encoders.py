"""Encoding throughput of every position encoder, and the batched path against separate calls.

Run: python benchmarks/bench_encoders.py [--device cuda] [--points 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from experiments.models import encoders as E

SETTINGS = {"grid": {"frequency_num": 64}, "theory": {"frequency_num": 64}, "sphereC": {"frequency_num": 32},
            "sphereC+": {"frequency_num": 32}, "sphereM": {"frequency_num": 32}, "sphereM+": {"frequency_num": 32},
            "sphereDFS": {"frequency_num": 8}, "nerf": {"frequency_num": 16}, "rff": {"frequency_num": 64},
            "rbf": {"num_anchors": 200}, "spherical_harmonics": {"legendre_polys": 20}}


def timed(fn, device, repeat=3):
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--batch-points", type=int, default=2048, help="points per batched call (a training batch "
                    "of 1024 plus its 1024 random negatives)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; {a.points} points")
    r = np.random.default_rng(0)
    x = torch.tensor(np.stack([r.uniform(-180, 180, a.points), r.uniform(-90, 90, a.points)], -1), device=dev)
    print(f"{'encoder':22s} {'D':>6s} {'points/s':>12s}")
    for name in E.available():
        g = E.position_encoder(name, **SETTINGS.get(name, {})).to(dev)
        g.check_inputs = False
        t = timed(lambda: g(x), dev)
        print(f"{name:22s} {g.out_dim:6d} {a.points / t:12.3e}")
    M, n = a.members, min(a.points, a.batch_points)
    xs = x[:n]
    radii = np.geomspace(1e-4, 0.1, M).tolist()
    print(f"\nbatched sphereM+ (S=32), M={M} r_min values, {n} points:")
    gb = E.position_encoder("sphereM+", frequency_num=32, min_radius=radii).to(dev)
    singles = [E.position_encoder("sphereM+", frequency_num=32, min_radius=rm).to(dev) for rm in radii]
    for g in singles + [gb]:
        g.check_inputs = False
    t_batched = timed(lambda: gb(xs), dev)
    t_loop = timed(lambda: [g(xs) for g in singles], dev)
    print(f"  one batched call {t_batched * 1e3:.1f} ms, {M} separate calls {t_loop * 1e3:.1f} ms, "
          f"ratio {t_loop / t_batched:.2f}x")


if __name__ == "__main__":
    main()
