"""Plans: members packed into populations, and what a plan costs.

A *population* is a set of members (configuration × training seed) of one (dataset, draw, encoder)
that share array shapes, trained together as stacked weights. A *plan* is a list of populations
sized for the device. The cost model says how long a plan or a search takes before any work: a
few shapes are measured (one epoch each), the rest modelled from them (``CostModel``), so that a
dry run answers in seconds even for a space of a million configurations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synth.errors import SynthError

from ..models import encoders
from ..models.members import OPTIMIZER_KEYS
from .pruners import rungs
from ..store.results import digest
from .space import SearchPolicy, Space
from ..models.train import train_population

CPU_MAX_MEMBERS = 16  # measured (benchmarks/bench_train.py): beyond this the activations leave the CPU cache
ETA = 3  # reduction factor of both pruners: keep the best third at each rung
# The first rung when a policy does not set first_rung, as a share of the epochs (9 of 100): chosen
# from the validation curves of the 8 Table-8 encoders (benchmarks/bench_pruning.py, docs/search.md).
FIRST_RUNG_SHARE = 0.09


def first_rung(policy: SearchPolicy, eval_every: int, epochs: int = 100) -> int:
    """The first rung of ``policy``, a multiple of ``eval_every`` (rungs are validated epochs)."""
    r = policy.first_rung or max(1, round(epochs * FIRST_RUNG_SHARE))
    return max(eval_every, -(-r // eval_every) * eval_every)


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
    from ..models.networks import StackedLinear

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
def code_version() -> str:
    """The training code's identity: torch's version and a digest of the modules that do an epoch's
    arithmetic (a measured epoch cost is stale once they change; the registry and checks in
    encoders.py are not among them, so editing those does not send every dry run back to measuring)."""
    import importlib

    h = hashlib.sha1(torch.__version__.encode())
    for name in ("train", "networks", "encodings", "members"):  # their files, wherever they live
        h.update(Path(importlib.import_module(f"experiments.models.{name}").__file__).read_bytes())
    return h.hexdigest()[:12]


def code_commit() -> str | None:
    """The git commit of this checkout (``-dirty`` when it has uncommitted changes), or None outside
    a git checkout: which code a sweep ran, recorded per experiment (a reference carries it)."""
    import subprocess

    try:
        r = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty", "--abbrev=12"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


def machine_id(device) -> str:
    """This machine as the epoch costs see it: the processor's model and the usable cores (or the GPU)."""
    from ..store.executors import usable_cpus

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{usable_cpus()}"


class EpochCosts:
    """Measured seconds per member-epoch, kept on disk per machine, code version and thread count, so
    a dry run measures a shape once and then answers in seconds, even on a busy machine (where a
    fresh measurement would also be too slow; a wall-clock one taken there is not kept: seconds_of).
    The file is a cache: unreadable means empty, and it is written atomically (``SPHERE_SYNTH_CACHE``,
    default ``~/.cache/sphere-synth``)."""

    def __init__(self, path=None):
        folder = Path(os.environ.get("SPHERE_SYNTH_CACHE") or Path.home() / ".cache" / "sphere-synth")
        self.path = Path(path) if path is not None else folder / "epoch_costs.json"
        try:
            self.table = json.loads(self.path.read_text())
            if not isinstance(self.table, dict):
                self.table = {}
        except (OSError, ValueError):
            self.table = {}

    def get(self, key: str) -> float | None:
        v = self.table.get(key)
        # a damaged entry (Infinity, NaN, 0, a string) is no measurement: measured again
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf else None

    def put(self, key: str, seconds: float) -> None:
        from synth.fileio import atomic_write_bytes

        self.table[key] = seconds
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, json.dumps(self.table, indent=0, sort_keys=True).encode())
        except OSError:  # a read-only home: the measurement is still used for this run
            pass


def seconds_of(work, device, threads: int) -> tuple[float, bool]:
    """(seconds ``work()`` takes as the cost model should count them, whether other processes shared the
    machine meanwhile so that they are too many). On a CPU with one thread (what each local worker uses)
    the seconds are the process's own CPU time: on a busy machine (a test suite or another sweep beside
    it) the wall clock also counts the time other processes held the core, and a cached cost measured
    then would inflate every later estimate; so this count is never 'shared'. With several threads the
    CPU time is no measure (idle threads sleep, spinning ones count), and on a GPU the host's CPU time is
    none either, so those keep the wall clock, and it is 'shared' when the other processes used more
    than a quarter of a core on average meanwhile (Linux: /proc/stat; elsewhere never)."""
    own_cpu_time = counts_cpu_time(device, threads)
    busy = None if own_cpu_time else machine_cpu_seconds()  # only a wall-clock count needs it
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if own_cpu_time:
        return min(wall, cpu), False
    after = machine_cpu_seconds()
    others = after - busy - cpu if busy is not None and after is not None else 0.0
    return wall, others > 0.25 * wall


def machine_cpu_seconds() -> float | None:
    """CPU seconds every process of this machine has used since boot (Linux), or None."""
    try:
        user, nice, system, _idle, _iowait, irq, softirq = Path("/proc/stat").read_text().split()[1:8]
        return (int(user) + int(nice) + int(system) + int(irq) + int(softirq)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None


def counts_cpu_time(device, threads: int) -> bool:
    return device.type == "cpu" and threads == 1


class CostModel:
    """Seconds per member-epoch of a configuration, from a few measured shapes.

    On a CPU one member-epoch costs about (multiply-adds of a forward and backward pass per sample)
    × samples / throughput, and the shapes of one encoder differ in their width, depth and code
    dimension only. So one epoch of the smallest and of the largest shape of each encoder is
    timed (after one warm-up epoch) and the others are interpolated linearly in their member size
    (``member_memory_mb``: parameters and activations). An epoch is timed with the torch threads a
    worker of the sweep will use (``threads``: one per local worker), and kept in ``EpochCosts``
    per machine and code version, so the next dry run does not measure it again."""

    def __init__(self, settings, data, device, threads: int | None = None, cache: EpochCosts | None = None):
        self.settings = dataclasses.replace(settings, epochs=1, select="last", eval_every=1, patience=None)
        self.data, self.device = data, device
        self.threads = threads
        self.cache = cache if cache is not None else EpochCosts()
        self.measured: dict = {}  # (encoder, shape key) -> seconds per member-epoch
        self.fits: dict = {}  # encoder -> (slope, intercept) over member size
        self.warm = False
        self._where = None

    def _key(self, encoder: str, config: dict) -> str:
        if self._where is None:
            self._where = f"{machine_id(self.device)}|code {code_version()}"
        shape = ",".join(f"{k}={v}" for k, v in shape_key(config))
        n_train = len(self.data.split("train")[1])
        threads = self.threads or torch.get_num_threads()
        clock = "cpu time" if counts_cpu_time(self.device, threads) else "wall"  # entries timed otherwise: stale
        return (f"{self._where}|threads {threads}, {clock}|{encoder}|{shape}|"
                f"n {n_train}|C {self.data.recipe.n_classes}|batch {self.settings.batch_size}")

    def _measure(self, encoder: str, config: dict) -> float:
        key = (encoder, shape_key(config))
        if key in self.measured:
            return self.measured[key]
        cached = self.cache.get(self._key(encoder, config))
        if cached is not None:
            self.measured[key] = cached
            return cached
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            one = [dict(config, seed=0)]
            if not self.warm:  # the first call pays for lazy initialisation; do not count it
                train_population(self.data, encoder, one, self.settings, device=self.device)
                self.warm = True
            def one_epoch():
                train_population(self.data, encoder, one, self.settings, device=self.device)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()

            self.measured[key], shared = seconds_of(one_epoch, self.device, torch.get_num_threads())
        finally:
            torch.set_num_threads(before)
        if not shared:  # a wall-clock cost inflated by other processes serves this run only
            self.cache.put(self._key(encoder, config), self.measured[key])
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
    """Compute seconds of a plan (one worker), early stopping included (``run_fraction``)."""
    cost.fit_plan(plan)
    return run_fraction(plan.space.settings) * sum(
        len(p.members) * plan.space.settings.epochs * cost.seconds(p.encoder, p.members[0][0])
        for p in plan.populations)


def expected_fraction(policy: SearchPolicy, epochs: int, eval_every: int) -> float:
    """Expected share of the unpruned member-epochs that successive halving trains: a third of the
    trials reach each next rung (``pruners.rungs``). Hyperband spreads its trials over brackets that
    start halving later; this is the halving figure, a lower bound for Hyperband. Early stopping
    is not modelled (an upper bound there): ``Study.dry_run`` corrects with measured fractions."""
    if policy.pruner == "none":
        return 1.0
    if eval_every < 1 or epochs < 1:
        raise SynthError(f"expected_fraction: epochs and eval_every must be >= 1, got {epochs} and {eval_every}")
    cost, alive, start = 0.0, 1.0, 0
    for rung in rungs(first_rung(policy, eval_every, epochs), epochs, ETA):
        cost += alive * (rung - start)
        alive /= ETA
        start = rung
    cost += alive * (epochs - start)
    return cost / epochs


# Early stopping ends most runs before their last epoch. The mean share of the epochs a run trains,
# measured here (2-core CPU, 2026-12-05) on the ground-truth runs of benchmarks/bench_pruning.py (fair_quick:
# 5 043 of 9 600 member-epochs; fair_lite: 16 801 of 21 600):
# (epochs, patience) -> share. A dry run of other settings assumes every epoch (an upper bound).
RUN_FRACTION = {(100, 15): 0.53, (100, 30): 0.78}


def run_fraction(settings) -> float:
    """The expected share of ``settings.epochs`` that a run trains before early stopping."""
    if settings.patience is None:
        return 1.0
    return RUN_FRACTION.get((settings.epochs, settings.patience), 1.0)


def search_member_epochs(space: Space, policy: SearchPolicy, encoder: str, seeds) -> dict:
    """One cell's search in member-epochs: trials, the search's upper bound, its expected cost under
    the pruner, and the finalists' retraining (at most). A finalist's run on a search seed is the
    search's own run, copied (``search._finalists``): only the other seeds train."""
    epochs = space.settings.epochs
    trials = policy.n_trials(len(space.configs(encoder)))
    if policy.is_exhaustive:
        return {"trials": trials, "upper": 0, "expected": 0.0, "final": trials * len(seeds) * epochs}
    upper = trials * len(policy.search_seeds) * epochs
    finalists = trials if policy.finalists is None else min(policy.finalists, trials)
    new_seeds = len(set(seeds) - set(policy.search_seeds))
    return {"trials": trials, "upper": upper,
            "expected": upper * expected_fraction(policy, epochs, space.settings.eval_every),
            "final": finalists * new_seeds * epochs}


def cell_seconds(space: Space, policy: SearchPolicy, encoder: str, seeds, cost: CostModel) -> float:
    """Expected seconds of one cell's search and finalists, early stopping included (``run_fraction``)."""
    m = search_member_epochs(space, policy, encoder, seeds)
    return ((m["expected"] + m["final"]) * run_fraction(space.settings)
            * cost.mean_seconds(encoder, space.configs(encoder)))


def assumptions(settings, workers: int, threads) -> str:
    """What an estimate assumes, in words (printed beside it)."""
    frac = run_fraction(settings)
    stop = (f"early stopping ends a run at {frac:.0%} of its {settings.epochs} epochs on average (measured here for "
            f"patience {settings.patience})" if frac < 1 else f"every run trains all {settings.epochs} epochs (an "
            "upper bound: no measured early-stopping share for these settings)")
    return (f"assumes: {stop}; {workers} worker(s) busy at once, {threads} torch thread(s) each; epoch costs "
            "measured once per machine and code version (cached)")


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
