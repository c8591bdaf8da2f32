"""Hyper-parameter search: spaces from TOML files, plans packed into populations, resumable sweeps.

A *space* is a TOML file (``experiments/spaces/quick.toml``, ``paper.toml`` or your own) with
``[settings]`` (TrainSettings fields), ``[grid]`` (lists applied to every encoder for which the key
is a declared hyper-parameter) and ``[encoders.NAME]`` (lists for one encoder, overriding
``[grid]``). Every value is checked against the declarations (``synth.params``) when the space is
loaded, before any work. A space's settings define its *experiment*, ``<space>-<settings hash>``:
the results store keeps experiments apart.

A *plan* expands the grid per encoder (exhaustive, a random subset, or successive halving), crosses
it with the datasets and training seeds, and packs members that share array shapes into
populations sized for the device.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synth.cliutil import read_toml
from synth.errors import SynthError
from synth.params import check_values

from . import encoders, results
from .members import OPTIMIZER_KEYS, OPTIMIZER_PARAMS
from .train import SETTINGS_PARAMS, TrainSettings, train_population

SPACES_DIR = Path(__file__).parent / "spaces"
CPU_MAX_MEMBERS = 16  # measured (benchmarks/bench_train.py): beyond this the activations leave the CPU cache


def space_params(encoder: str, network: str | None = None) -> dict:
    """{name: Param} a space may set for one encoder with one network (training seeds come from --seeds)."""
    params = encoders.hyperparameters(encoder, network)
    params.pop("seed")
    params.update({p.name: p for p in OPTIMIZER_PARAMS})
    return params


def _any_network_params(encoder: str) -> dict:
    out = {}
    for net in encoders.network_param(encoder).valid:
        out.update(space_params(encoder, net))
    return out


@dataclass
class Space:
    name: str
    settings: TrainSettings
    grid: dict
    per_encoder: dict
    description: str = ""
    search: dict = field(default_factory=dict)  # the [search] table: adaptive-search defaults
    executor: dict = field(default_factory=dict)  # the [executor] table: SLURM options

    @property
    def experiment(self) -> str:
        return experiment_name(self)

    def configs(self, encoder: str) -> list[dict]:
        """The exhaustive grid for one encoder, as a list of hyper-parameter dicts.

        A [grid] key applies where the encoder (with the network a configuration uses) declares it;
        so ``num_filts`` reaches the FFN encoders and not SirenNet."""
        enc = encoders.canonical_name(encoder)
        own = self.per_encoder.get(enc, {})
        out, seen = [], set()
        for net in own.get("network", [encoders.spec(enc).network]):
            valid = space_params(enc, net)
            axes = {k: v for k, v in self.grid.items() if k in valid}
            axes.update({k: v for k, v in own.items() if k in valid})
            if "network" in own:
                axes["network"] = [net]
            keys = sorted(axes)
            for vals in itertools.product(*(axes[k] for k in keys)):
                c = dict(zip(keys, vals))
                h = results.canonical(c)
                if h not in seen:
                    seen.add(h)
                    out.append(c)
        return out


def experiment_name(space: Space) -> str:
    """``<space>-<first 8 hex digits of the settings' hash>``: one name per set of training settings."""
    return f"{space.name}-{results.digest(space.settings.to_dict())[:8]}"


def load_space(name_or_path: str) -> Space:
    path = Path(name_or_path)
    if not path.suffix and (SPACES_DIR / f"{name_or_path}.toml").exists():
        path = SPACES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.toml")))
        raise SynthError(f"unknown search space {name_or_path!r}: not a file and not one of {known}")
    raw = read_toml(path)
    unknown = set(raw) - {"description", "settings", "grid", "encoders", "search", "executor"}
    if unknown:
        raise SynthError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    tables = {k: raw.get(k, {}) for k in ("settings", "grid", "encoders", "search", "executor")}
    for k, t in tables.items():
        if not isinstance(t, dict):
            raise SynthError(f"{path}: [{k}] must be a table")
    bad = set(tables["settings"]) - set(SETTINGS_PARAMS)
    if bad:
        raise SynthError(f"{path}: unknown [settings] key(s) {', '.join(sorted(bad))}; "
                         f"valid: {', '.join(sorted(SETTINGS_PARAMS))}")
    check_values(SETTINGS_PARAMS, tables["settings"], f"{path} [settings]")
    settings = TrainSettings(**tables["settings"])
    per_encoder_params = {e: _any_network_params(e) for e in encoders.available()}

    def lists(table, where, owners):
        out = {}
        for k, v in table.items():
            v = v if isinstance(v, list) else [v]
            if not v:
                raise SynthError(f"{path}: empty grid for {k!r} in {where}")
            applies = [e for e in owners if k in per_encoder_params[e]]
            if not applies:
                raise SynthError(f"{path}: unknown hyper-parameter {k!r} in {where}")
            for e in applies:  # every value, against every encoder it reaches, before any work
                for x in v:
                    per_encoder_params[e][k].check(x, f"{path} {where} for {e}")
            out[k] = v
        return out

    grid = lists(tables["grid"], "[grid]", encoders.available())
    per_encoder = {}
    for enc, table in tables["encoders"].items():
        name = encoders.canonical_name(enc)
        if not isinstance(table, dict):
            raise SynthError(f"{path}: [encoders.{enc}] must be a table")
        per_encoder[name] = lists(table, f"[encoders.{enc}]", [name])
    from .adaptive import policy_from

    search = dict(tables["search"])
    policy_from(search, f"{path} [search]")  # checked now, used when the sweep asks for it
    from .executors import SLURM_KEYS

    bad = set(tables["executor"]) - set(SLURM_KEYS)
    if bad:
        raise SynthError(f"{path}: unknown [executor] key(s) {', '.join(sorted(bad))}; valid: {', '.join(SLURM_KEYS)}")
    return Space(path.stem, settings, grid, per_encoder, str(raw.get("description", "")), search,
                 dict(tables["executor"]))


def check_against_data(space: Space, encoder_names, data: dict) -> None:
    """Checks that need the data, done before any work: rbf draws its anchors from the training
    points without replacement, so it cannot have more anchors than the smallest training split."""
    if "rbf" not in encoder_names or not data:
        return
    n_train = min(len(d.split("train")[1]) for d in data.values())
    default = encoders.spec("rbf").position_defaults["num_anchors"]
    for c in space.configs("rbf"):
        if c.get("num_anchors", default) > n_train:
            raise SynthError(f"rbf: num_anchors = {c.get('num_anchors', default)} is more than the {n_train} training "
                             "points of the smallest dataset (anchors are drawn from them)")


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

    @property
    def experiment(self) -> str:
        return self.space.experiment


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


def make_plan(space: Space, dataset_names, data_seeds, encoder_names, train_seeds, device, mode="grid",
              n_random: int | None = None, max_pop: int | None = None, skip: set | None = None,
              num_classes: int = 50, configs: dict | None = None, stage: str = "final",
              recipe_hashes: dict | None = None, experiment: str | None = None) -> Plan:
    """Populations for every (dataset, data seed, encoder, shape); members already in ``skip``
    (stored keys, for --resume) are left out. ``recipe_hashes`` maps a dataset name to the hash of
    the recipe its data follow (default: the paper's recipe)."""
    from synth import datasets as synth_datasets

    pops, n_configs, mem = [], 0, {}
    skipped = 0
    experiment = experiment or space.experiment
    settings_hash = results.digest(space.settings.to_dict())
    hashes = recipe_hashes or {d: results.digest(synth_datasets.get_recipe(d).to_dict()) for d in dataset_names}
    for enc in encoder_names:
        cfgs = configs[enc] if configs is not None else space.configs(enc)
        if not cfgs:
            raise SynthError(f"the search space {space.name} gives no configuration for {enc}")
        if mode == "random" and n_random and n_random < len(cfgs):
            cfgs = random.Random(0).sample(cfgs, n_random)
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
                        chash = results.digest(c)
                        for s in train_seeds:
                            if skip and (experiment, ds, hashes[ds], dseed, enc, chash, s, settings_hash,
                                         stage, -1) in skip:
                                skipped += 1
                                continue
                            members.append((c, s))
                    for i in range(0, len(members), size):
                        pops.append(Population(ds, dseed, enc, members[i:i + size], stage, hashes[ds]))
    return Plan(space, pops, n_configs, mem, skipped)


def seconds_per_member_epoch(space: Space, encoder: str, configs, data, device, cache: dict | None = None) -> dict:
    """{shape key: seconds per member-epoch}, measured: one member of each shape trains one epoch
    on ``data`` on this device (after one warm-up epoch of the first shape). A CPU population costs
    about its size times one member (benchmarks/bench_train.py), so this scales to any plan."""
    cache = {} if cache is None else cache
    one = dataclasses.replace(space.settings, epochs=1, select="last", eval_every=1)
    for c in configs:
        key = (encoder, shape_key(c))
        if key in cache:
            continue
        if not cache:  # the first call pays for lazy initialisation; do not count it
            train_population(data, encoder, [dict(c, seed=0)], one, device=device)
        t = time.perf_counter()
        train_population(data, encoder, [dict(c, seed=0)], one, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        cache[key] = time.perf_counter() - t
    return cache


def mean_seconds_per_member_epoch(space: Space, encoder: str, data, device, cache: dict) -> float:
    """The mean over the encoder's configurations in ``space`` of their shape's measured seconds per
    member-epoch (for estimates made before a search says which shape will be trained)."""
    configs = space.configs(encoder)
    per = seconds_per_member_epoch(space, encoder, configs, data, device, cache)
    return sum(per[(encoder, shape_key(c))] for c in configs) / len(configs)


def estimate_seconds(plan: Plan, data: dict, device, cache: dict | None = None) -> float:
    """Time of a plan at its full epochs, from measured seconds per member-epoch of each shape
    (early stopping makes the real run shorter)."""
    cache = {} if cache is None else cache
    total = 0.0
    for p in plan.populations:
        cfg = p.members[0][0]
        per = seconds_per_member_epoch(plan.space, p.encoder, [cfg], data[(p.dataset, p.data_seed)], device, cache)
        total += len(p.members) * plan.space.settings.epochs * per[(p.encoder, shape_key(cfg))]
    return total


def describe_plan(plan: Plan, device, est: float | None) -> str:
    sizes = [len(p.members) for p in plan.populations]
    lines = [f"experiment {plan.experiment} (space {plan.space.name}): {plan.n_configs} configuration(s) over the encoders; "
             f"{plan.n_members} member(s) to train in {len(plan.populations)} population(s) on {device}",
             f"  population sizes: min {min(sizes) if sizes else 0}, max {max(sizes) if sizes else 0}, "
             f"mean {np.mean(sizes) if sizes else 0:.1f}"]
    for (enc, key), mb in sorted(plan.member_memory_mb.items(), key=lambda kv: kv[0][0])[:12]:
        shape = ", ".join(f"{k}={v}" for k, v in key)
        lines.append(f"  {enc}: ~{mb:.1f} MB per member ({shape})")
    if plan.skipped:
        lines.append(f"  {plan.skipped} member(s) already in the database are skipped (--resume)")
    if est is not None:
        lines.append(f"  {plan.n_members * plan.space.settings.epochs} member-epochs; estimated time: {est / 60:.1f} min "
                     f"(measured: one epoch of each shape on this device; {plan.space.settings.epochs} epochs, early "
                     "stopping can shorten it)")
    return "\n".join(lines)


def run_population(pop: Population, data, settings: TrainSettings, device, experiment: str,
                   progress=None, on_epoch=None) -> list[dict]:
    """Train one population and return its rows for the results store (``on_epoch``: see train_population)."""
    cfgs = [dict(c, seed=s) for c, s in pop.members]
    t = time.perf_counter()
    res = train_population(data, pop.encoder, cfgs, settings, device=device, progress=progress, on_epoch=on_epoch)
    seconds = (time.perf_counter() - t) / len(cfgs)
    settings_json = results.canonical(settings.to_dict())
    settings_hash = results.digest(settings.to_dict())
    recipe = data.recipe.to_dict()
    recipe_json, recipe_hash = results.canonical(recipe), results.digest(recipe)
    rows = []
    for (c, s), r in zip(pop.members, res):
        rows.append(dict(experiment=experiment, dataset=pop.dataset, recipe=recipe_json,
                         recipe_hash=recipe_hash, data_seed=pop.data_seed, encoder=pop.encoder,
                         config_hash=results.digest(c), config=results.canonical(c), train_seed=s,
                         settings_hash=settings_hash, settings=settings_json, stage=pop.stage,
                         val_top1=r.val["top1"], val_top3=r.val["top3"], val_mrr=r.val["mrr"],
                         test_top1=r.test["top1"], test_top3=r.test["top3"], test_mrr=r.test["mrr"],
                         best_epoch=r.best_epoch, epochs_run=r.epochs_run, bands=results.canonical(r.bands),
                         diverged=int(r.diverged), val_curve=results.canonical(r.val_curve), pruned_at=r.pruned_at,
                         seconds=seconds, population=len(cfgs), device=str(device)))
    return rows


def population_job(job: dict) -> dict:
    """The worker side of a population job (see experiments.executors): train it, return its rows."""
    from .executors import load_ref
    from .train import resolve_device

    pop = Population(**job["population"])
    pop.members = [(dict(c), int(s)) for c, s in pop.members]
    rows = run_population(pop, load_ref(job["data"]), TrainSettings(**job["settings"]), resolve_device(job["device"]),
                          job["experiment"])
    return {"rows": rows, "done": True}


def to_job(pop: Population, settings: TrainSettings, experiment: str, data_ref: dict) -> dict:
    """A population as a job: JSON types only."""
    return {"kind": "population", "label": f"{pop.dataset} seed {pop.data_seed} {pop.encoder} ({len(pop.members)} "
                                           f"member(s), stage {pop.stage})",
            "population": {**dataclasses.asdict(pop), "members": [[c, s] for c, s in pop.members]},
            "settings": settings.to_dict(), "experiment": experiment, "data": data_ref}


def sweep(plan: Plan, store: results.ResultsStore, data: dict, device, show_progress=True,
          experiment: str | None = None, runner=None, data_folder=None) -> int:
    """Train every population of the plan and store each as soon as it finishes; returns rows written.

    ``data`` maps (dataset name, seed) to a verified Dataset (``synth.datasets.load_many``). With a
    ``runner`` (experiments.executors) the populations train in workers and only this process writes."""
    from tqdm import tqdm

    experiment = experiment or plan.experiment
    epochs = plan.space.settings.epochs
    total = plan.n_members * epochs
    written = [0]
    tty = sys.stderr.isatty()  # in a log file, a line every 30 s rather than a redraw every 0.1 s
    bar = tqdm(total=total, unit="member-epoch", disable=not show_progress, smoothing=0.1, dynamic_ncols=True,
               mininterval=0.5 if tty else 30.0,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} member-epochs [{elapsed}<{remaining}] {postfix}")
    t0 = time.perf_counter()

    def stored(rows, M, seen=0):
        store.write_population(rows)
        bar.update(M * (epochs - seen))  # members that stopped early
        written[0] += len(rows)
        bar.set_postfix_str(f"{written[0]} of {plan.n_members} stored, {written[0] / (time.perf_counter() - t0):.2f} "
                            "cfg/s", refresh=False)

    try:
        if runner is not None and runner.opts.kind != "inline":
            from .executors import dataset_ref

            jobs = [to_job(p, plan.space.settings, experiment,
                           dataset_ref(data[(p.dataset, p.data_seed)], data_folder)) for p in plan.populations]
            runner.submit_many(jobs, lambda job, res: stored(res["rows"], len(job["population"]["members"])))
            runner.wait()
            return written[0]
        for pop in plan.populations:
            M = len(pop.members)
            seen = [0]

            def progress(epoch, _total, M=M, seen=seen):
                bar.update(M * (epoch - seen[0]))
                seen[0] = epoch

            rows = run_population(pop, data[(pop.dataset, pop.data_seed)], plan.space.settings, device, experiment,
                                  progress)
            stored(rows, M, seen[0])
    finally:
        bar.close()
    return written[0]


def other_draws_plan(space: Space, store: results.ResultsStore, experiment: str, dataset_names, data_seeds,
                     encoder_names, seeds, device, recipe_hashes: dict, max_pop: int | None = None):
    """The configuration chosen on the first draw, trained on every other draw × seed.

    Table 8 is reported over several dataset draws (SPEC.md §7). The search, exhaustive or adaptive,
    runs on the first (smallest) draw only; the configuration the report chooses there (the same
    function, ``report.choose``: best validation Top-1 over ``seeds``) is what the other draws
    train, so its test Top-1 can be averaged over draws at a fraction of the search's cost. Runs
    already stored are skipped. Returns (plan, the (dataset, encoder) pairs with nothing chosen yet)."""
    from .report import choose

    first, others = min(data_seeds), sorted(set(data_seeds) - {min(data_seeds)})
    rows = [r for r in store.rows(experiment, "final")
            if r["data_seed"] == first and r["train_seed"] in seeds and r["dataset"] in recipe_hashes
            and r["recipe_hash"] == recipe_hashes[r["dataset"]] and r["encoder"] in encoder_names]
    chosen = choose(rows)
    skip = store.stored_keys(experiment)
    pops, skipped, missing = [], 0, []
    for d in dataset_names:
        for e in encoder_names:
            if (d, e) not in chosen:
                missing.append((d, e))
                continue
            plan = make_plan(space, [d], others, [e], seeds, device, configs={e: [chosen[(d, e)].config]},
                             skip=skip, max_pop=max_pop, recipe_hashes={d: recipe_hashes[d]}, experiment=experiment)
            pops += plan.populations
            skipped += plan.skipped
    return Plan(space, pops, len(chosen), {}, skipped), missing


def successive_halving(space: Space, data: dict, encoder_names, train_seeds, device, store: results.ResultsStore,
                       eta: int = 3, rungs: int = 3, max_pop: int | None = None, resume: bool = False,
                       show_progress=True, runner=None, data_folder=None) -> int:
    """Per (dataset, encoder): train every configuration briefly, keep the best 1/eta by mean
    validation Top-1, train those longer, and so on.

    Rung r trains for epochs / eta^(rungs−1−r) epochs. Only the last rung is stored as stage
    'final', which the reports read; earlier rungs are stored as 'rung<r>' for inspection. Rungs are
    scored only on this experiment's rows of that rung's settings, datasets, seeds and recipe;
    diverged members never survive. With ``resume`` a stored member is not retrained, so a killed
    search picks up where it stopped and chooses the same survivors."""
    written = 0
    experiment = space.experiment
    by_name: dict = {}
    for (name, seed), ds in data.items():
        by_name.setdefault(name, {})[seed] = ds
    for name, draws in by_name.items():
        data_seeds = sorted(draws)
        recipe_hash = results.digest(draws[data_seeds[0]].recipe.to_dict())
        for enc in encoder_names:
            survivors = space.configs(enc)
            for r in range(rungs):
                epochs = max(1, round(space.settings.epochs / eta ** (rungs - 1 - r)))
                rung_settings = dataclasses.replace(space.settings, epochs=epochs,
                                                    eval_every=min(space.settings.eval_every, epochs))
                sub = dataclasses.replace(space, settings=rung_settings)
                stage = "final" if r == rungs - 1 else f"rung{r}"
                skip = store.stored_keys(experiment) if resume else None
                plan = make_plan(sub, [name], data_seeds, [enc], train_seeds, device, configs={enc: survivors},
                                 stage=stage, max_pop=max_pop, skip=skip, recipe_hashes={name: recipe_hash},
                                 experiment=experiment)
                written += sweep(plan, store, data, device, show_progress, experiment=experiment, runner=runner,
                                 data_folder=data_folder)
                if r == rungs - 1:
                    break
                settings_hash = results.digest(rung_settings.to_dict())
                scores: dict = {}
                for row in store.rows(experiment, stage):
                    if (row["encoder"] == enc and row["dataset"] == name and row["recipe_hash"] == recipe_hash
                            and row["settings_hash"] == settings_hash and row["data_seed"] in data_seeds
                            and row["train_seed"] in train_seeds):
                        v = -math.inf if row["diverged"] else row["val_top1"]
                        scores.setdefault(row["config_hash"], []).append(v)
                survivors = sorted(survivors, key=lambda c: -np.mean(scores.get(results.digest(c), [-math.inf])))
                survivors = survivors[:max(1, math.ceil(len(survivors) / eta))]
    return written
