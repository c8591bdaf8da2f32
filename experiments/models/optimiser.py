"""Adam for a population: every member its own moments and learning rate, updated in one pass."""

from __future__ import annotations

import math

import torch


class PopulationAdam:
    """Adam (torch.optim.Adam's update, L2 weight decay) with a learning rate per member."""

    def __init__(self, params, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8, decay: bool | None = None):
        self.params = [p for p in params if p.requires_grad]
        self.base_lr = lr
        self.lr = lr.clone()
        self.wd = weight_decay
        # whether any member decays, known on the host: testing it on the device every step would be
        # a device-to-host sync per step
        self.decay = bool(torch.any(weight_decay != 0)) if decay is None else decay
        self.b1, self.b2 = betas
        self.eps = eps
        self.step_count = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        self.step_count += 1
        bc1 = 1 - self.b1 ** self.step_count
        bc2_sqrt = math.sqrt(1 - self.b2 ** self.step_count)
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            if self.decay:
                g = g + self.wd.view(shape) * p
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom * (bc1 / self.lr.view(shape)), value=-1.0)

    def zero_grad(self):
        for p in self.params:
            p.grad = None
