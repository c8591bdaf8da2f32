"""Per-member hyper-parameters and random streams of a population of M models.

A *population* is M models with identical array shapes trained side by side as stacked
weights. Hyper-parameters that only change values (learning rate, r_min, kernel size, dropout,
weight decay, seed) may differ per member; those that change shapes (S, h, k, ...) may not.

Each member draws all of its random numbers (initial weights, rbf anchors, rff frequencies,
dropout masks, batch order, negative locations) from its own ``torch.Generator`` seeded by its
own seed, so a member's run depends on its configuration alone, never on which other members
share its population (tests/test_train.py checks this).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from synth.errors import SynthError
from synth.sphere import lonlat_from_uniforms
from synth.cliutil import SEED_MAX
from synth.params import Interval, Param

SEED = Param("seed", int, 0, Interval(0, SEED_MAX), "member", help="training seed of a member")
# Read by the optimiser, per member. An Adam step size above 1 is never meant: 1e30 or inf was
# once accepted and trained a collapsed model.
OPTIMIZER_PARAMS = (Param("lr", float, 1e-3, Interval(0, 1, "right"), "optimizer", help="Adam learning rate"),
                    Param("weight_decay", float, 0.0, Interval(0, 1), "optimizer", help="L2 weight decay"))
OPTIMIZER_KEYS = tuple(p.name for p in OPTIMIZER_PARAMS)


def broadcast_members(hparams: dict, vector_keys: Sequence[str]) -> tuple[int, bool, dict]:
    """Split hyper-parameters into scalars and per-member vectors.

    Returns (M, batched, values) where vector keys are lists of length M. A key outside
    ``vector_keys`` given as a list must hold one repeated value (it changes array shapes).
    """
    lengths = set()
    for k, v in hparams.items():
        if isinstance(v, (list, tuple)) or (isinstance(v, torch.Tensor) and v.dim() > 0):
            vals = list(v.tolist() if isinstance(v, torch.Tensor) else v)
            if k not in vector_keys:
                if len(set(map(repr, vals))) > 1:
                    raise SynthError(f"hyper-parameter {k} changes array shapes and must be the same for every "
                                     f"member of a population (got {vals[:4]}...)")
                continue
            lengths.add(len(vals))
    if len(lengths) > 1:
        raise SynthError(f"per-member hyper-parameters have different lengths {sorted(lengths)}")
    M = lengths.pop() if lengths else 1
    batched = M > 1 or any(isinstance(v, (list, tuple)) or (isinstance(v, torch.Tensor) and v.dim() > 0)
                           for k, v in hparams.items() if k in vector_keys)
    out = {}
    for k, v in hparams.items():
        seq = isinstance(v, (list, tuple)) or (isinstance(v, torch.Tensor) and v.dim() > 0)
        vals = list(v.tolist() if isinstance(v, torch.Tensor) else v) if seq else None
        if k in vector_keys:
            out[k] = vals if seq else [v] * M
        else:
            out[k] = vals[0] if seq else v
    return M, batched, out


def uniform_lonlat(rng: "MemberRNG", n: int):
    """(M, n, 2) (lon, lat) degrees, area-uniform on the sphere, from each member's own stream."""
    u = rng.rand((n, 2), dtype=torch.float64)
    return lonlat_from_uniforms(u[..., 0], u[..., 1])


class MemberRNG:
    """Per-member random streams; every draw comes back stacked as (M, *shape).

    Two interchangeable back-ends, chosen by device: on the CPU one ``torch.Generator`` per member
    (a short loop over members that costs nothing next to the arithmetic); on a GPU, where M
    kernel launches per draw would dominate, the counter-based hash of :mod:`synth.random` keyed
    by (member seed, draw number) fills all members in one go. Either way a member's numbers
    depend on its own seed and the sequence of draws only.
    """

    def __init__(self, seeds: Sequence[int], device="cpu", mode: str | None = None):
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.mode = mode or ("generators" if self.device.type == "cpu" else "counter")
        if self.mode == "generators":
            self.generators = []
            for s in self.seeds:
                g = torch.Generator(device=self.device)
                g.manual_seed(s)
                self.generators.append(g)
        elif self.mode == "counter":
            self.keys = torch.tensor(self.seeds, dtype=torch.int64, device=self.device)
            self.draws = 0
        else:
            raise SynthError(f"unknown random-stream mode {mode!r}")

    def __len__(self):
        return len(self.seeds)

    def __deepcopy__(self, memo):
        return self  # streams are shared, never copied (a copied generator would repeat numbers)

    def keep_(self, idx) -> None:
        """Keep only the members at positions ``idx`` (members leaving a population); the others'
        streams go on exactly where they were."""
        idx = [int(i) for i in idx]
        self.seeds = [self.seeds[i] for i in idx]
        if self.mode == "generators":
            self.generators = [self.generators[i] for i in idx]
        else:
            self.keys = self.keys[torch.as_tensor(idx, device=self.keys.device)]

    def rand(self, shape, dtype=torch.float32):
        """Uniforms in [0, 1)."""
        shape = tuple(shape)
        if self.mode == "counter":
            from synth.random import uniform_torch

            self.draws += 1
            return 1.0 - uniform_torch(self.keys, self.draws, shape, device=self.device, dtype=dtype)
        out = torch.empty((len(self.seeds),) + shape, dtype=dtype, device=self.device)
        for m, g in enumerate(self.generators):
            out[m].uniform_(0, 1, generator=g)
        return out

    def dropout_mask(self, shape, p):
        """Scaled dropout masks (M, *shape), float32: 0 with member m's rate ``p[m]``, else 1 / (1 - rate).

        The rate is counted in 65536ths (``round(p * 65536)``, at most 1.5e-5 from p; the float32
        uniforms of before held 24 bits and cost 3.5x more to draw): on the CPU four masks come from
        each 64-bit number of a member's generator, as 16-bit integers compared with the rate."""
        shape = tuple(shape)
        lanes = 1 << 16
        dropped = torch.round(torch.as_tensor(p, device=self.device).double().reshape(-1) * lanes).clamp_(0, lanes - 1)
        dims = (-1,) + (1,) * len(shape)
        scale = (lanes / (lanes - dropped)).float().view(dims)
        if self.mode == "counter":
            keep = self.rand(shape) >= (dropped / lanes).float().view(dims)
        else:
            n = math.prod(shape)
            words = torch.empty((len(self.seeds), -(-n // 4)), dtype=torch.int64, device=self.device)
            for m, g in enumerate(self.generators):
                words[m].random_(-2 ** 63, None, generator=g)  # every one of the 64 bits random
            bits = words.view(torch.int16)[:, :n].reshape(len(self.seeds), *shape)  # uniform on [-32768, 32767]
            # P(bits >= dropped - 32768) = (65536 - dropped) / 65536: kept with probability 1 - rate
            keep = bits >= (dropped - lanes // 2).to(torch.int16).view(dims)
        return keep.to(torch.float32).mul_(scale)

    def normal(self, shape, dtype=torch.float32):
        if self.mode == "counter":  # Box-Muller on two uniform draws
            u1, u2 = 1.0 - self.rand(shape, dtype), self.rand(shape, dtype)
            return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * torch.pi * u2)
        out = torch.empty((len(self.seeds),) + tuple(shape), dtype=dtype, device=self.device)
        for m, g in enumerate(self.generators):
            out[m].normal_(0, 1, generator=g)
        return out

    def uniform(self, shape, low, high, dtype=torch.float32):
        """U(low, high) with per-member bounds (tensors of shape (M,)) or scalars."""
        u = self.rand(shape, dtype)
        low = torch.as_tensor(low, dtype=dtype, device=self.device).reshape(-1, *[1] * len(shape))
        high = torch.as_tensor(high, dtype=dtype, device=self.device).reshape(-1, *[1] * len(shape))
        return low + (high - low) * u

    def permutation(self, n: int):
        """(M, n) independent permutations."""
        if self.mode == "counter":
            return torch.argsort(self.rand((n,), torch.float64), dim=1)
        out = torch.empty((len(self.seeds), n), dtype=torch.int64, device=self.device)
        for m, g in enumerate(self.generators):
            out[m] = torch.randperm(n, generator=g, device=self.device)
        return out
