"""The search, one path: Optuna's samplers and pruners drive the population trainer (ask-and-tell).

Search = sampler x pruner x seed policy (``space.SearchPolicy``). The exhaustive sweep is the
policy ``grid x none x finalists all``: it decides nothing, so ``run`` trains every configuration
on every seed directly as final rows, without a study. Every other policy:

- **sampler** ``grid`` (every configuration of the space, in order), ``random`` (``trials``
  configurations drawn from the grid without replacement) or ``tpe`` (Optuna's TPE over the grid's
  values, ``trials`` trials);
- **pruner** ``none``, ``halving`` (synchronous successive halving decided by value; ``asha`` is its
  former name) or ``hyperband`` (``experiments.search.pruners``: why not Optuna's own); every
  member reports its validation Top-1 each epoch, and a pruned trial's members leave their
  population at once (``train_population(on_epoch=...)``): their compute stops, the others go on
  with their own weights, Adam state, schedule and random streams — a warm continuation, never a
  restart. A member that is never pruned computes exactly what the exhaustive run computes;
- **seeds for finalists only**: the search trains each trial on ``search_seeds`` (stage
  ``search``); the best ``finalists`` configurations by mean validation Top-1 are then trained on
  every seed of ``--seeds`` (stage ``final``, what the report reads). A finalist's search run on a
  seed of ``--seeds`` is the same run, so it is copied rather than trained again. With ``race``
  (on in the ``paper`` space) the finalists go seed by seed and one clearly behind the leader
  stops (``race_survivors``): fewer seeds where more would not change the choice.

**Where the search state lives.** The results store is the record of truth, and the search keeps
no second database: every trained or pruned member is a row (stage ``search``) carrying its trial
number and its per-epoch validation curve. Optuna's study lives in memory; on ``--resume`` it is
rebuilt by replaying the stored trials through the same ask / report / should_prune / tell
sequence (no training), which leaves the sampler and the pruner in exactly the state an
uninterrupted run would have had (TPE is reseeded from the trial number before every ask, so its
draws do not depend on when the process started). A population killed mid-run left no rows and
is trained again, deterministically. So a resumed search equals an uninterrupted one, and with one
writer there is nothing for Optuna's storage to arbitrate (its FAQ advises against SQLite storage
for parallel writers; here there is exactly one).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass

import numpy as np

from synth.errors import SynthError

from ..store import results
from ..store.executors import dataset_ref, load_ref
from . import pruners
from .transfer import warm_starts
from .plan import (
    ETA, CostModel, first_rung, Population, describe_plan, make_plan, max_members, member_memory_mb, shape_key)
from .race import race_survivors
from .populations import Progress, run_population, to_job, train_populations
from .space import SearchPolicy, Space
from ..models.train import resolve_device


# ----------------------------------------------------------------------------- Optuna pieces
def _optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # multivariate TPE is marked experimental; that notice is for Optuna's users, not ours
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _pruner(policy: SearchPolicy, epochs: int, eval_every: int):
    return pruners.make(policy.pruner, first_rung(policy, eval_every, epochs), epochs, ETA)


def _distributions(configs: list[dict]):
    """Optuna distributions for the grid: one categorical per key when the grid is a full product
    (TPE then models each key), else one categorical over the configurations' indices."""
    from optuna.distributions import CategoricalDistribution

    axes: dict = {}
    for c in configs:
        for k, v in c.items():
            axes.setdefault(k, [])
            if v not in axes[k]:
                axes[k].append(v)
    keys = set(configs[0])
    product = all(set(c) == keys for c in configs) and math.prod(len(v) for v in axes.values()) == len(configs)
    if product:
        return {k: CategoricalDistribution(v) for k, v in sorted(axes.items())}, None
    return {"config": CategoricalDistribution(list(range(len(configs))))}, configs


def _config_of(params: dict, by_index) -> dict:
    return dict(by_index[params["config"]]) if by_index is not None else dict(params)


@dataclass
class Cell:
    """One (dataset, data seed, encoder) search."""

    name: str
    data_seed: int
    encoder: str
    recipe_hash: str

    @property
    def study_name(self) -> str:
        return f"{self.name}/{self.recipe_hash[:8]}/{self.data_seed}/{self.encoder}"

    def rows(self, rows, settings_hash: str) -> list:
        """The rows, among ``rows``, that belong to this cell's search under these settings."""
        me = (self.name, self.recipe_hash, self.data_seed, self.encoder, settings_hash)
        return [r for r in rows if (r["dataset"], r["recipe_hash"], r["data_seed"], r["encoder"],
                                    r["settings_hash"]) == me]


class CellSearch:
    """The search of one cell: its study, its stored rows, and the train-or-replay loop."""

    def __init__(self, space: Space, policy: SearchPolicy, experiment: str, cell: Cell, data, device, store,
                 max_pop, progress: Progress | None = None, resume: bool = True, seconds_each: float = 1.0,
                 warm_start: list | None = None):
        self.space, self.policy, self.experiment, self.cell = space, policy, experiment, cell
        self.data, self.device, self.store, self.progress = data, device, store, progress
        self.seconds_each = seconds_each  # the cost model's seconds per member-epoch (progress weights)
        self.settings = space.settings
        self.settings_hash = results.digest(self.settings.to_dict())
        self.configs = space.configs(cell.encoder)
        self.distributions, self.by_index = _distributions(self.configs)
        self.seeds = list(policy.search_seeds)
        shapes = {shape_key(c): c for c in self.configs}  # size populations for the largest shape
        per = max(member_memory_mb(cell.encoder, c, data.recipe.n_classes, self.settings.batch_size)
                  for c in shapes.values())
        self.capacity = max(len(self.seeds), max_members(device, per, max_pop))
        self.member_epochs = 0
        self.repeats = 0  # trials answered from an earlier trial of the same configuration (_answer_repeat)
        self.first_trial: dict = {}  # configuration -> its first trial
        self.asked = 0  # trials asked so far (enqueued ones wait in study.trials until asked)
        optuna = _optuna()
        sampler = optuna.samplers.RandomSampler(seed=0)  # replaced before every ask for tpe
        self.study = optuna.create_study(direction="maximize", study_name=f"{experiment}/{cell.study_name}",
                                         sampler=sampler,
                                         pruner=_pruner(policy, self.settings.epochs, self.settings.eval_every))
        self.n_trials = policy.n_trials(len(self.configs))
        # trials >= the grid: every configuration once, in order (TPE would only repeat some)
        queue = (self.configs if policy.sampler == "grid" or self.n_trials == len(self.configs) else
                 random.Random(0).sample(self.configs, self.n_trials) if policy.sampler == "random" else [])
        for c in list(warm_start or []) + queue:  # transfer first (experiments.search.transfer); grid, random: fixed lists
            self.study.enqueue_trial(self._params_of(c))
        self.stored = self._stored_rows() if resume else {}  # without --resume, stored trials are retrained

    def _params_of(self, config: dict) -> dict:
        if self.by_index is None:
            return dict(config)
        return {"config": next(i for i, c in enumerate(self.configs) if c == config)}

    def _stored_rows(self) -> dict:
        """{(trial number, seed): row} of this cell's search rows already in the store."""
        return {(r["trial"], r["train_seed"]): r
                for r in self.cell.rows(self.store.rows(self.experiment, "search"), self.settings_hash)}

    def _ask(self):
        if self.policy.sampler == "tpe":
            optuna = _optuna()
            # reseeded from the trial count: the same history gives the same draw, resumed or not
            self.study.sampler = optuna.samplers.TPESampler(seed=self.asked, n_startup_trials=10, multivariate=True)
        self.asked += 1
        return self.study.ask(self.distributions)

    def run(self, live_limit: int | None = None) -> list | None:
        """Run (or replay) every trial; returns the finished trials (FrozenTrial) by value. With
        ``live_limit``, stop (returning None) before training more than that many populations."""
        optuna = _optuna()
        self.live_limit, self.live = live_limit, 0
        try:
            self._run()
        except _Stop:
            return None
        done = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        return sorted(done, key=lambda t: (-t.value, t.number))

    def _run(self) -> None:
        per_pop = max(1, self.capacity // len(self.seeds))  # trials per population (all of a trial's seeds)
        while self.asked < self.n_trials:
            batch = [self._ask() for _ in range(min(self.n_trials - self.asked, per_pop))]
            groups: dict = {}
            repeats = []  # (trial, the earlier trial of its configuration)
            for t in batch:
                config = _config_of(t.params, self.by_index)
                first = self.first_trial.setdefault(results.canonical(config), t)
                if first is t:
                    groups.setdefault(shape_key(config), []).append(t)
                else:
                    repeats.append((t, first))
            for t, first in repeats:  # asked before this batch: answer now (a batch's own after it trains)
                if first.number < batch[0].number:
                    self._answer_repeat(t, first)
            for trials in groups.values():
                for i in range(0, len(trials), per_pop):
                    self._population(trials[i:i + per_pop])
            for t, first in repeats:
                if first.number >= batch[0].number:
                    self._answer_repeat(t, first)

    def _answer_repeat(self, trial, first) -> None:
        """TPE samples a discrete grid and proposes configurations it has tried: training one again on
        the same seeds would repeat the same run (members never influence each other), so the
        repeat is told the first trial's outcome instead, as Optuna's FAQ does for duplicates: its
        value if it completed; pruned, with its reported values, if it was pruned; failed if it
        diverged. Replay answers it the same way, so a resumed search still equals an uninterrupted
        one. In the headline run repeats were 42 % of the search's member-epochs."""
        optuna = _optuna()
        first = self.study.trials[first.number]  # its final state
        self.repeats += 1
        if first.state == optuna.trial.TrialState.COMPLETE:
            self.study.tell(trial, first.value)
            return
        for step, value in sorted(first.intermediate_values.items()):
            trial.report(value, step)
        state = (optuna.trial.TrialState.PRUNED if first.state == optuna.trial.TrialState.PRUNED
                 else optuna.trial.TrialState.FAIL)
        self.study.tell(trial, state=state)

    def _population(self, trials) -> None:
        members = [(t, s) for t in trials for s in self.seeds]
        rows = [self.stored.get((t.number, s)) for t, s in members]
        if all(r is not None for r in rows):
            for (t, _), r in zip(members, rows):
                if results.digest(_config_of(t.params, self.by_index)) != r["config_hash"]:
                    raise SynthError(f"cannot resume {self.cell.study_name}: trial {t.number} asked another "
                                     "configuration than the stored one (the space or the code changed?); "
                                     "sweep into a new --db")
            curves = [json.loads(r["val_curve"]) for r in rows]
            self._replay(trials, members, curves)
            self._tell(trials, rows)
            return
        if self.live_limit is not None and self.live >= self.live_limit:
            raise _Stop
        self.live += 1
        pop = Population(self.cell.name, self.cell.data_seed, self.cell.encoder,
                         [(_config_of(t.params, self.by_index), s) for t, s in members], "search",
                         self.cell.recipe_hash)
        by_trial, numbers = _by_trial(trials, members)

        def on_epoch(epoch, present, val):
            value = dict(zip(present, val))
            return self._decide(epoch, numbers, by_trial, value)

        step = self.progress.per_epoch(len(members), self.seconds_each) if self.progress is not None else None
        new_rows = run_population(pop, self.data, self.settings, self.device, self.experiment, step,
                                  on_epoch=on_epoch)
        for row, (t, _) in zip(new_rows, members):
            row["trial"] = t.number
        self.store.write_population(new_rows)
        self._tell(trials, new_rows)

    def _decide(self, epoch, numbers, by_trial, value) -> list:
        """Report each trial's mean validation Top-1 over its members still training, then ask the
        pruner; the same order live and in replay, so the pruner's state is the same."""
        pruned = []
        reported = []
        last = epoch >= self.settings.epochs  # a trial that has trained every epoch completes: pruning saves nothing
        for number in sorted(by_trial):
            vals = [value[i] for i in by_trial[number] if i in value]
            if vals:
                numbers[number].report(float(np.mean(vals)), epoch)
                reported.append(number)
        for number in [] if last else reported:
            if numbers[number].should_prune():
                pruned.extend(i for i in by_trial[number] if i in value)
        return pruned

    def _replay(self, trials, members, curves) -> None:
        by_trial, numbers = _by_trial(trials, members)
        every = self.settings.eval_every
        gone: set = set()
        for k in range(max(len(c) for c in curves)):
            epoch = (k + 1) * every
            value = {i: c[k] for i, c in enumerate(curves) if len(c) > k and i not in gone}
            if not value:
                break
            gone |= set(self._decide(epoch, numbers, by_trial, value))

    def _tell(self, trials, rows) -> None:
        optuna = _optuna()
        for t in trials:
            rs = [r for r in rows if r.get("trial") == t.number]
            self.member_epochs += sum(r["epochs_run"] for r in rs)
            if any(r["pruned_at"] is not None for r in rs):
                self.study.tell(t, state=optuna.trial.TrialState.PRUNED)
            elif any(r["diverged"] for r in rs):
                self.study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(t, float(np.mean([r["val_top1"] for r in rs])))


def _by_trial(trials, members):
    """{trial number: positions of its members in the population}, {trial number: trial}."""
    by_trial: dict = {}
    for i, (t, _) in enumerate(members):
        by_trial.setdefault(t.number, []).append(i)
    return by_trial, {t.number: t for t in trials}


class _Stop(Exception):
    """A worker trained the one population it was sent."""


class MemoryStore:
    """What a cell search reads and writes of the results store, in memory (inside a worker)."""

    def __init__(self, rows):
        self._rows = [dict(r) for r in rows]
        self.new: list = []

    def rows(self, experiment, stage):
        return [r for r in self._rows if r["experiment"] == experiment and r["stage"] == stage]

    def write_population(self, rows):
        self._rows += rows
        self.new += rows


def cell_job(job: dict) -> dict:
    """The worker side of one step of a cell's search: replay the rows the driver sent (no
    training), train exactly the next population, return its rows; ``done`` once the cell's
    search is complete. Every decision is the one the inline search makes."""
    space = Space.from_dict(job["space"])
    policy = SearchPolicy(**{**job["policy"], "search_seeds": tuple(job["policy"]["search_seeds"])})
    mem = MemoryStore(job["rows"])
    cs = CellSearch(space, policy, job["experiment"], Cell(**job["cell"]), load_ref(job["data"]),
                    resolve_device(job["device"]), mem, job["max_pop"], warm_start=job.get("warm_start"))
    done = cs.run(live_limit=1) is not None
    return {"rows": mem.new, "done": done}


def run(study, store, runner=None, cost: CostModel | None = None, progress: Progress | None = None,
        echo=print) -> dict:
    """The search stage of ``study`` (an ``experiments.search.study.Study``) on its first draw: per
    (dataset, encoder) cell the trials, then the finalists on every seed. The exhaustive policy has
    no decision to make: every configuration trains on every seed directly as a final row. Returns
    a summary (trials, pruned, member-epochs, finalists per cell)."""
    space, policy, experiment = study.space, study.policy, study.experiment
    first = study.first_draw
    t0 = time.perf_counter()
    summary = {"experiment": experiment, "cells": [], "written": 0}
    if policy.is_exhaustive:
        skip = store.stored_keys(experiment) if study.resume else None
        plan = make_plan(space, study.datasets, [first], study.encoders, study.seeds, study.device,
                         study.recipe_hashes, experiment, max_pop=study.max_members, skip=skip)
        summary["plan"] = plan
        echo(describe_plan(plan, experiment, study.device))
        if not plan.populations:
            echo("nothing to do" + (" on the first draw" if study.other_seeds else ""))
        summary["written"] = train_populations(plan, store, study.draws, study.device, experiment, runner,
                                               study.data_folder, cost, progress)
        summary["seconds"] = time.perf_counter() - t0
        return summary
    cells = [Cell(name, first, enc, study.recipe_hashes[name]) for name in study.datasets for enc in study.encoders]
    # read from the store once, before any cell starts (every job then gets the same list)
    first = warm_starts(store, policy, [(c.name, c.encoder) for c in cells], space)
    warm = {c.study_name: first[(c.name, c.encoder)] for c in cells}
    if runner is not None and runner.opts.kind != "inline":
        return _run_parallel(study, cells, store, runner, summary, t0, warm)
    # progress weights: the mean modelled seconds per member-epoch of each encoder, once
    each = {e: cost.mean_seconds(e, space.configs(e)) if cost is not None else 1.0 for e in study.encoders}
    if progress is not None:
        for cell in cells:
            progress.add(policy.n_trials(len(space.configs(cell.encoder))) * len(policy.search_seeds)
                         * space.settings.epochs, each[cell.encoder])
    for cell in cells:
        data = study.draws[(cell.name, cell.data_seed)]
        cs = CellSearch(space, policy, experiment, cell, data, study.device, store, study.max_members, progress,
                        study.resume, each[cell.encoder], warm[cell.study_name])
        finalists = _close_cell(cs, cs.run(), summary)
        while (plan := _finalists(cs, finalists, study.seeds, store, study.max_members)) is not None:
            train_populations(plan, store, study.draws, study.device, experiment, cost=cost, progress=progress)
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _distinct(ranked, by_index) -> list:
    """The best trial of each configuration, best first: TPE may try a configuration twice, and the
    finalists must be K different configurations."""
    seen, out = set(), []
    for t in ranked:
        key = results.canonical(_config_of(t.params, by_index))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


def _close_cell(cs: CellSearch, ranked, summary: dict) -> list[dict]:
    """After a cell's search: its K distinct finalists (best first) and its line in ``summary``."""
    ranked = _distinct(ranked, cs.by_index)[:cs.policy.finalists]
    finalists = [_config_of(t.params, cs.by_index) for t in ranked]
    states = [t.state.name for t in cs.study.trials]
    cell = cs.cell
    summary["cells"].append({"dataset": cell.name, "data_seed": cell.data_seed, "encoder": cell.encoder,
                             "trials": len(states), "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
                             "search_member_epochs": cs.member_epochs, "repeats": cs.repeats,
                             "finalists": [(c, t.value, t.number) for c, t in zip(finalists, ranked)]})
    return finalists


def _run_parallel(study, cells, store, runner, summary, t0, warm) -> dict:
    """Cells search in parallel, each in its own chain of jobs: a job replays the cell's stored rows
    and trains its next population, so every decision is the one the inline search makes (exact, and
    resumable the same way). Parallelism is over cells, not within one: a cell's populations wait for
    each other's pruning decisions. The finalists' populations then run in parallel too (round by
    round when they race)."""
    space, policy, experiment, max_pop = study.space, study.policy, study.experiment, study.max_members
    stored = store.rows(experiment, "search") if study.resume else []  # read once, shared out by cell
    settings_hash = results.digest(space.settings.to_dict())
    rows_of = {cell.study_name: cell.rows(stored, settings_hash) for cell in cells}

    def ref(name, seed):
        return dataset_ref(study.draws[(name, seed)], study.data_folder)

    def next_step(cell):
        return {"run": "experiments.search.cell_search:cell_job", "label": f"{cell.study_name} search step",
                "space": space.to_dict(), "policy": policy.to_dict(), "experiment": experiment,
                "cell": dataclasses.asdict(cell), "rows": rows_of[cell.study_name], "max_pop": max_pop,
                "data": ref(cell.name, cell.data_seed), "warm_start": warm[cell.study_name]}

    def final_round(cell, cs, finalists):
        """Submit the cell's next round of finalists' runs (see _finalists), once the last is in."""
        plan = _finalists(cs, finalists, study.seeds, store, max_pop, rows_of[cell.study_name])
        if plan is None:
            return
        waiting = [len(plan.populations)]

        def done(job, res):
            store.write_population(res["rows"])
            waiting[0] -= 1
            if not waiting[0]:
                final_round(cell, cs, finalists)

        runner.submit_many([to_job(p, space.settings, experiment, ref(p.dataset, p.data_seed))
                            for p in plan.populations], done)

    def step_done(job, res, cell):
        if res["rows"]:
            store.write_population(res["rows"])
            rows_of[cell.study_name] += res["rows"]
        if not res["done"]:
            runner.submit(next_step(cell), lambda j, r, cell=cell: step_done(j, r, cell))
            return
        cs = CellSearch(space, policy, experiment, cell, study.draws[(cell.name, cell.data_seed)], study.device,
                        MemoryStore(rows_of[cell.study_name]), max_pop, warm_start=warm[cell.study_name])
        # a replay: every population is stored
        final_round(cell, cs, _close_cell(cs, cs.run(live_limit=0), summary))

    for cell in cells:
        runner.submit(next_step(cell), lambda j, r, cell=cell: step_done(j, r, cell))
    runner.wait()
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _finalists(cs: CellSearch, finalists: list[dict], seeds, store, max_pop, search_rows=None):
    """Stage 'final': the finalists on every seed of ``seeds``; returns the plan of the next round
    to train, or None when the stage is complete. Call it again after each round.

    A search run that was never pruned is the run the final stage would make (same settings and
    seed), so it is copied, not retrained. Without the race there is one round: every finalist on
    every seed. With it (``policy.race``) the rounds go seed by seed and a finalist clearly behind
    the leader after a round stops (``race_survivors``); which finalists train in the next round
    follows from the stored rows alone, so a killed race resumes where it stopped."""
    if not finalists:
        return None
    cell, experiment = cs.cell, cs.experiment
    stored = store.stored_keys(experiment)
    by_hash = {results.digest(c): c for c in finalists}
    copies = {}
    rows = cs._stored_rows().values() if search_rows is None else search_rows
    for r in rows:
        seed = r["train_seed"]
        key = (experiment, cell.name, cell.recipe_hash, cell.data_seed, cell.encoder, r["config_hash"], seed,
               cs.settings_hash, "final", -1)
        if r["config_hash"] in by_hash and seed in seeds and r["pruned_at"] is None and key not in stored:
            copies.setdefault(key, dict(r, stage="final", trial=-1))
    if copies:
        store.write_population([{k: v for k, v in r.items() if k not in ("id", "code_version", "created")}
                                for r in copies.values()])
        stored |= set(copies)
    configs, round_seeds = finalists, list(seeds)
    if cs.policy.race:
        runs: dict = {h: {} for h in by_hash}
        for r in cell.rows(store.rows(experiment, "final"), cs.settings_hash):
            if r["config_hash"] in runs:
                runs[r["config_hash"]][r["train_seed"]] = (r["val_top1"], bool(r["diverged"]))
        _, seed, todo = race_survivors(list(by_hash), runs, list(seeds), len(cs.data.split("val")[1]))
        if seed is None:
            return None
        configs, round_seeds = [by_hash[h] for h in todo], [seed]
    plan = make_plan(cs.space, [cell.name], [cell.data_seed], [cell.encoder], round_seeds, cs.device,
                     {cell.name: cell.recipe_hash}, experiment, configs={cell.encoder: configs}, skip=stored,
                     max_pop=max_pop)
    return plan if plan.populations else None
