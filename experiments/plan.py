"""Plans: members packed into populations, and what a plan costs.

A *population* is a set of members (configuration × training seed) of one (dataset, draw, encoder)
that share array shapes, trained together as stacked weights. A *plan* is a list of populations
sized for the device. The cost model says how long a plan or a search takes before any work: a
few shapes are measured (one epoch each), the rest modelled from them (``CostModel``), so that a
dry run answers in seconds even for a space of a million configurations.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from synth.errors import SynthError

from . import encoders
from .members import OPTIMIZER_KEYS
from .results import digest
from .space import SearchPolicy, Space
from .train import train_population

CPU_MAX_MEMBERS = 16  # measured (benchmarks/bench_train.py): beyond this the activations leave the CPU cache
ETA = 3  # reduction factor of both pruners: keep the best third at each rung


@dataclass
class Population:
    dataset: str
    data_seed: int
    encoder: str
    members: list  # of (config_without_seed, train_seed)
    stage: str = "final"
    recipe_hash: str = ""


@dataclass
class Plan:
    space: Space
    populations: list
    n_configs: int
    member_memory_mb: dict = field(default_factory=dict)
    skipped: int = 0

    @property
    def n_members(self) -> int:
        return sum(len(p.members) for p in self.populations)


def shape_key(config: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.items()
                        if k not in encoders.VECTOR_KEYS and k not in OPTIMIZER_KEYS))


def _layers(model):
    """The stacked linear layers of a model's network (weights of shape (M, in, out))."""
    from .networks import StackedLinear

    return [m for m in model.network.modules() if isinstance(m, StackedLinear)]


def member_memory_mb(encoder: str, config: dict, num_classes: int, batch: int) -> float:
    """Rough peak memory of one member: weights, gradients and Adam state, the best-weights copy,
    and the activations of a batch (positives + negatives) kept for the backward pass."""
    key = (encoder, shape_key(config), num_classes, batch)
    if key not in _MEMORY:  # one model built per shape, not per configuration (a space may have 10^6)
        _MEMORY[key] = _member_memory_mb(encoder, config, num_classes, batch)
    return _MEMORY[key]


_MEMORY: dict = {}


def _member_memory_mb(encoder: str, config: dict, num_classes: int, batch: int) -> float:
    hp = {k: v for k, v in config.items() if k not in OPTIMIZER_KEYS}
    model = encoders.build(encoder, num_classes, **hp)
    n_params = sum(p.numel() for p in model.parameters())
    widths = model.position_encoder.out_dim * 2  # float64 features and their float32 copy
    widths += sum(layer.weight.shape[-1] * 4 for layer in _layers(model))  # output, activation, mask, norm
    return (n_params * 4 * 5 + 2 * batch * widths * 4) / 2**20


def max_members(device: torch.device, per_member_mb: float, cap: int | None = None) -> int:
    if cap:
        return cap
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(1, min(4096, 0.6 * free / 2**20 / per_member_mb)))
    return int(max(1, min(CPU_MAX_MEMBERS, 4096 / per_member_mb)))


def make_plan(space: Space, dataset_names, data_seeds, encoder_names, train_seeds, device, recipe_hashes: dict,
              experiment: str, configs: dict | None = None, max_pop: int | None = None, skip: set | None = None,
              num_classes: int = 50, stage: str = "final") -> Plan:
    """Populations for every (dataset, data seed, encoder, shape) of ``configs`` (default: the
    space's grid); members already in ``skip`` (stored keys, for --resume) are left out.
    ``recipe_hashes`` maps a dataset name to the hash of the recipe its data follow."""
    pops, n_configs, mem = [], 0, {}
    skipped = 0
    settings_hash = digest(space.settings.to_dict())
    for enc in encoder_names:
        cfgs = configs[enc] if configs is not None else space.configs(enc)
        if not cfgs:
            raise SynthError(f"the search space {space.name} gives no configuration for {enc}")
        n_configs += len(cfgs)
        groups: dict = {}
        for c in cfgs:
            groups.setdefault(shape_key(c), []).append(c)
        for key, group in groups.items():
            per = member_memory_mb(enc, group[0], num_classes, space.settings.batch_size)
            mem[(enc, key)] = per
            size = max_members(device, per, max_pop)
            for ds in dataset_names:
                for dseed in data_seeds:
                    members = []
                    for c in group:
                        chash = digest(c)
                        for s in train_seeds:
                            if skip and (experiment, ds, recipe_hashes[ds], dseed, enc, chash, s, settings_hash,
                                         stage, -1) in skip:
                                skipped += 1
                                continue
                            members.append((c, s))
                    for i in range(0, len(members), size):
                        pops.append(Population(ds, dseed, enc, members[i:i + size], stage, recipe_hashes[ds]))
    return Plan(space, pops, n_configs, mem, skipped)


def describe_plan(plan: Plan, experiment: str, device) -> str:
    sizes = [len(p.members) for p in plan.populations]
    lines = [f"experiment {experiment} (space {plan.space.name}): {plan.n_configs} configuration(s) over the "
             f"encoders; {plan.n_members} member(s) to train in {len(plan.populations)} population(s) on {device}",
             f"  population sizes: min {min(sizes) if sizes else 0}, max {max(sizes) if sizes else 0}, "
             f"mean {np.mean(sizes) if sizes else 0:.1f}"]
    for (enc, key), mb in sorted(plan.member_memory_mb.items(), key=lambda kv: kv[0][0])[:12]:
        shape = ", ".join(f"{k}={v}" for k, v in key)
        lines.append(f"  {enc}: ~{mb:.1f} MB per member ({shape})")
    if plan.skipped:
        lines.append(f"  {plan.skipped} member(s) already in the database are skipped (--resume)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- cost model
class CostModel:
    """Seconds per member-epoch of a configuration, from a few measured shapes.

    On a CPU one member-epoch costs about (multiply-adds of a forward and backward pass per sample)
    × samples / throughput, and the shapes of one encoder differ in their width, depth and code
    dimension only. So one epoch of the smallest and of the largest shape of each encoder is
    timed (after one warm-up epoch) and the others are interpolated linearly in their member size
    (``member_memory_mb``: parameters and activations). With at most two measurements per encoder
    a dry run of the paper space over every encoder answers in seconds. The interpolation's error
    on the shapes in between has not been measured; treat the figure as an estimate."""

    def __init__(self, settings, data, device):
        self.settings = dataclasses.replace(settings, epochs=1, select="last", eval_every=1, patience=None)
        self.data, self.device = data, device
        self.measured: dict = {}  # (encoder, shape key) -> seconds per member-epoch
        self.fits: dict = {}  # encoder -> (slope, intercept) over member size
        self.warm = False

    def _measure(self, encoder: str, config: dict) -> float:
        key = (encoder, shape_key(config))
        if key not in self.measured:
            one = [dict(config, seed=0)]
            if not self.warm:  # the first call pays for lazy initialisation; do not count it
                train_population(self.data, encoder, one, self.settings, device=self.device)
                self.warm = True
            t = time.perf_counter()
            train_population(self.data, encoder, one, self.settings, device=self.device)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.measured[key] = time.perf_counter() - t
        return self.measured[key]

    def _size(self, encoder: str, config: dict) -> float:
        return member_memory_mb(encoder, config, self.data.recipe.n_classes, self.settings.batch_size)

    def seconds(self, encoder: str, config: dict) -> float:
        """Seconds per member-epoch of ``config`` (measured, or modelled from the encoder's fit)."""
        key = (encoder, shape_key(config))
        if key in self.measured:
            return self.measured[key]
        if encoder not in self.fits:
            raise SynthError(f"cost model: call fit() for {encoder} first")
        slope, intercept = self.fits[encoder]
        return max(1e-6, slope * self._size(encoder, config) + intercept)

    def fit(self, encoder: str, configs: list[dict]) -> None:
        """Measure the smallest and the largest shape of ``configs`` and fit a line through them."""
        if encoder in self.fits:
            return
        shapes = {shape_key(c): c for c in configs}
        by_size = sorted(shapes.values(), key=lambda c: self._size(encoder, c))
        picks = [by_size[0], by_size[-1]] if len(by_size) > 1 else by_size
        xs = [self._size(encoder, c) for c in picks]
        ys = [self._measure(encoder, c) for c in picks]
        if len(picks) == 1 or xs[1] == xs[0]:
            self.fits[encoder] = (0.0, float(np.mean(ys)))
        else:
            slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
            self.fits[encoder] = (slope, ys[0] - slope * xs[0])

    def fit_plan(self, plan: "Plan") -> None:
        """Fit every encoder of ``plan`` over all of its configurations in the plan (a fit made
        from one population would see one shape only)."""
        by_encoder: dict = {}
        for p in plan.populations:
            by_encoder.setdefault(p.encoder, []).extend(c for c, _ in p.members)
        for enc, configs in by_encoder.items():
            self.fit(enc, configs)

    def mean_seconds(self, encoder: str, configs: list[dict]) -> float:
        """The mean over ``configs`` (before a search says which shape will be trained)."""
        self.fit(encoder, configs)
        return float(np.mean([self.seconds(encoder, c) for c in configs]))


def plan_seconds(plan: Plan, cost: CostModel) -> float:
    """Time of a plan at its full epochs (early stopping makes the real run shorter)."""
    cost.fit_plan(plan)
    return sum(len(p.members) * plan.space.settings.epochs * cost.seconds(p.encoder, p.members[0][0])
               for p in plan.populations)


def expected_fraction(policy: SearchPolicy, epochs: int, eval_every: int) -> float:
    """Expected share of the unpruned member-epochs that successive halving trains: a third of the
    trials reach each next rung (rungs at r, 3r, 9r, ... epochs). Hyperband spreads its trials over
    brackets that start halving later; this is the ASHA figure, a lower bound for Hyperband."""
    if policy.pruner == "none":
        return 1.0
    if eval_every < 1 or epochs < 1:
        raise SynthError(f"expected_fraction: epochs and eval_every must be >= 1, got {epochs} and {eval_every}")
    r = max(eval_every, epochs // ETA**3)
    cost, alive, start = 0.0, 1.0, 0
    rung = r
    while rung < epochs:
        cost += alive * (rung - start)
        alive /= ETA
        start, rung = rung, rung * ETA
    cost += alive * (epochs - start)
    return cost / epochs


def search_member_epochs(space: Space, policy: SearchPolicy, encoder: str, seeds) -> dict:
    """One cell's search in member-epochs: trials, the search's upper bound, its expected cost under
    the pruner, and the finalists' retraining (at most)."""
    epochs = space.settings.epochs
    trials = policy.n_trials(len(space.configs(encoder)))
    if policy.is_exhaustive:
        return {"trials": trials, "upper": 0, "expected": 0.0, "final": trials * len(seeds) * epochs}
    upper = trials * len(policy.search_seeds) * epochs
    finalists = trials if policy.finalists is None else min(policy.finalists, trials)
    return {"trials": trials, "upper": upper,
            "expected": upper * expected_fraction(policy, epochs, space.settings.eval_every),
            "final": finalists * len(seeds) * epochs}


def cell_seconds(space: Space, policy: SearchPolicy, encoder: str, seeds, cost: CostModel) -> float:
    """Expected seconds of one cell's search and finalists."""
    m = search_member_epochs(space, policy, encoder, seeds)
    return (m["expected"] + m["final"]) * cost.mean_seconds(encoder, space.configs(encoder))


def describe_search(space: Space, policy: SearchPolicy, encoder_names, n_cells_per_encoder: int, seeds) -> list[str]:
    """The search in member-epochs, one line per encoder."""
    lines = []
    for enc in encoder_names:
        m = {k: v * n_cells_per_encoder if k != "trials" else v
             for k, v in search_member_epochs(space, policy, enc, seeds).items()}
        finalists = m["trials"] if policy.finalists is None else min(policy.finalists, m["trials"])
        lines.append(f"  {enc}: {m['trials']} trial(s) x {len(policy.search_seeds)} search seed(s); search "
                     f"<= {m['upper']} member-epochs (expected ~{m['expected']:.0f} with pruner {policy.pruner}), "
                     f"finalists {finalists} x {len(seeds)} seed(s) <= {m['final']} member-epochs")
    return lines
