"""Sampler throughput (samples/s), side by side in one run: ours (NumPy, torch) vs scipy and tfp.

Also times the generation of all 20 paper datasets. Run: python benchmarks/bench_vmf.py
"""

from __future__ import annotations

import platform
import time

import numpy as np
import torch
from scipy.stats import vonmises_fisher

from synth import datasets, vmf

N = 1_000_000
MU = np.array([0.6, 0.0, 0.8])


def best_of(fn, repeat=5):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    import argparse

    global N
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=N, help="samples per measurement (default 10^6)")
    N = ap.parse_args().n
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    try:
        import tensorflow_probability.substrates.numpy as tfp
    except ImportError:
        tfp = None
    mu_t = torch.tensor(MU)
    print(f"NumPy path: {vmf._THREADS} threads (the 1-thread column is the same code on one core); "
          f"scipy and tfp use one core")
    print(f"{'kappa':>8} {'ours-numpy':>12} {'numpy-1thr':>12} {'ours-torch':>12} {'scipy':>12} {'tfp-numpy':>12}"
          f"  numpy/scipy 1thr/scipy torch/scipy")
    for kappa in (1.0, 100.0, 1e4):
        rates = {
            "numpy": N / best_of(lambda: vmf.sample(MU, kappa, N, seed=0)),
            "numpy1": N / best_of(lambda: vmf.sample(MU, kappa, N, seed=0, threads=1)),
            "torch": N / best_of(lambda: vmf.sample(mu_t, torch.tensor(kappa), N, seed=0)),
            "scipy": N / best_of(lambda: vonmises_fisher(MU, kappa).rvs(N, random_state=0)),
        }
        if tfp is not None:
            d = tfp.distributions.VonMisesFisher(mean_direction=MU, concentration=kappa)
            with np.errstate(all="ignore"):
                rates["tfp"] = N / best_of(lambda: d.sample(N, seed=0))
        print(f"{kappa:8g} " + " ".join(f"{rates.get(k, float('nan')) / 1e6:10.2f} M"
                                        for k in ("numpy", "numpy1", "torch", "scipy", "tfp"))
              + "".join(f" {rates[k] / rates['scipy']:10.1f}x" for k in ("numpy", "numpy1", "torch")))
    t = best_of(lambda: [datasets.generate(n, 0) for n in datasets.PAPER_DATASETS], repeat=3)
    print(f"generate all 20 paper datasets: {t:.3f} s")


if __name__ == "__main__":
    main()
