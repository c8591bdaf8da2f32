"""rbf's training epoch with the plain Gaussian against the encoder's, side by side in one run.

The encoder skips exp's underflow: exponents are raised to just below the output dtype's smallest
normal number and what lands there is set to 0 (``experiments.models.encodings.RBF._gaussian``). The plain
formula, exp(−d²/2σ²) in float64 cast to float32, is slow twice over on the paper's data, where most
points are many σ from most anchors: float64's exp takes a slow path deep in its underflow, and the
float32 subnormals it leaves make the network's matrix products crawl. Both train the fair default's
rbf configurations (``fair_quick``, read from the space: one per kernel width it offers, at its
smallest learning rate) on U1 draw 0 for the same epochs, one thread. Prints seconds per epoch, the
ratio, and whether the validation and test Top-1 of the two runs are identical.

    python benchmarks/bench_rbf.py [--epochs 10] [--dataset U1]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import torch

from synth import datasets
from experiments.models.encodings import RBF
from experiments.models.scales import to_physical
from experiments.search.space import load_space
from experiments.models.train import TrainSettings, train_population


def plain_gaussian(self, d2):
    """The formula as written, float64 throughout (what the encoder did before 2026-12-01)."""
    return torch.exp(-d2 / (2.0 * self.sigma**2))


def timed_run(data, config, epochs):
    train_population(data, "rbf", [config], TrainSettings(epochs=1, patience=None))  # warm up
    start = time.perf_counter()
    [result] = train_population(data, "rbf", [config], TrainSettings(epochs=epochs, patience=None))
    return (time.perf_counter() - start) / epochs, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--dataset", default="U1")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = datasets.generate(a.dataset, 0)
    configs = {}  # one configuration per kernel width, the smallest learning rate
    for c in sorted(load_space("fair_quick").configs("rbf"), key=lambda c: c["lr"]):
        configs.setdefault(c["kernel_size"], c)
    first = next(iter(configs.values()))
    print(f"rbf, {first['num_anchors']} anchors, {first['num_hidden_layers']} hidden layer(s) of {first['hidden_dim']}, "
          f"{a.dataset} draw 0, {a.epochs} epochs, one thread")
    print(f"{'wavelength':>10s} {'sigma':>7s} {'plain s/epoch':>14s} {'encoder s/epoch':>16s} {'ratio':>6s}  identical Top-1")
    for sigma, config in sorted(configs.items()):
        with mock.patch.object(RBF, "_gaussian", plain_gaussian):
            t_plain, r_plain = timed_run(data, config, a.epochs)
        t_new, r_new = timed_run(data, config, a.epochs)
        same = r_plain.val["top1"] == r_new.val["top1"] and r_plain.test["top1"] == r_new.test["top1"]
        wavelength = to_physical("rbf", "kernel_size", sigma)
        print(f"{wavelength:9.0f}° {sigma:6.2f}° {t_plain:14.3f} {t_new:16.3f} {t_plain / t_new:5.2f}x  {same}")

if __name__ == "__main__":
    main()
