"""Training populations and storing their rows: one place for the inline loop, the worker side of a
population job, and the progress bar.

A row is one trained member (``results`` owns the schema). A population job is plain data naming
``experiments.search.populations:population_job`` (see ``experiments.store.executors``), so the executors never
import this module.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from ..store import results
from ..store.executors import dataset_ref, load_ref
from .plan import CostModel, Plan, Population
from ..models.train import TrainSettings, resolve_device, train_population


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
    """The worker side of a population job: train it, return its rows."""
    pop = Population(**job["population"])
    pop.members = [(dict(c), int(s)) for c, s in pop.members]
    rows = run_population(pop, load_ref(job["data"]), TrainSettings(**job["settings"]), resolve_device(job["device"]),
                          job["experiment"])
    return {"rows": rows, "done": True}


def to_job(pop: Population, settings: TrainSettings, experiment: str, data_ref: dict) -> dict:
    """A population as a job: JSON types only."""
    return {"run": "experiments.search.populations:population_job",
            "label": f"{pop.dataset} seed {pop.data_seed} {pop.encoder} ({len(pop.members)} member(s), stage "
                     f"{pop.stage})",
            "population": {**dataclasses.asdict(pop), "members": [[c, s] for c, s in pop.members]},
            "settings": settings.to_dict(), "experiment": experiment, "data": data_ref}


class Progress:
    """A progress bar over *estimated seconds of work*, so that its ETA is one.

    Counting member-epochs made every member-epoch weigh the same; rbf's populations cost several
    times an xyz one, and the bar sat at 97–99 % with "00:14" left while they finished. Here each
    member-epoch weighs its shape's seconds from the cost model (``plan.CostModel``, the dry run's),
    and the postfix still counts member-epochs and rows."""

    def __init__(self, label: str, show: bool, unit_note: str = ""):
        from tqdm import tqdm

        tty = sys.stderr.isatty()  # in a log file, a line every 30 s rather than a redraw every 0.1 s
        self.bar = tqdm(total=0.0, disable=not show, smoothing=0.1, dynamic_ncols=True,
                        mininterval=0.5 if tty else 30.0,
                        bar_format=label + " {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}")
        self.note = unit_note
        self.member_epochs = self.total_member_epochs = self.rows = 0
        self.t0 = time.perf_counter()

    def add(self, member_epochs: int, seconds_each: float) -> None:
        self.total_member_epochs += member_epochs
        self.bar.total = (self.bar.total or 0.0) + member_epochs * seconds_each

    def advance(self, member_epochs: int, seconds_each: float, rows: int = 0) -> None:
        self.member_epochs += member_epochs
        self.rows += rows
        self.bar.update(member_epochs * seconds_each)
        self.bar.set_postfix_str(f"{self.member_epochs}/{self.total_member_epochs} member-epochs{self.note}, "
                                 f"{self.rows} rows stored", refresh=False)

    def per_epoch(self, n_members: int, seconds_each: float):
        """The trainer's per-epoch callback for a population of ``n_members``: advances the bar by the
        member-epochs since its last call; its ``epochs`` is the last epoch it saw."""
        def step(epoch, _total):
            self.advance(n_members * (epoch - step.epochs), seconds_each)
            step.epochs = epoch
        step.epochs = 0
        return step

    def close(self) -> None:
        self.bar.close()


def train_populations(plan: Plan, store, data, device, experiment: str, runner=None, data_folder=None,
                      cost: CostModel | None = None, progress: Progress | None = None) -> int:
    """Train every population of the plan and store each as soon as it finishes; returns rows written.

    ``data`` maps (dataset name, seed) to a verified Dataset. With a ``runner`` that is not inline
    (experiments.store.executors) the populations train in workers and only this process writes."""
    epochs = plan.space.settings.epochs
    own = progress is None
    progress = progress or Progress("train", show=cost is not None)
    if cost is not None:
        cost.fit_plan(plan)
    secs = {id(p): cost.seconds(p.encoder, p.members[0][0]) if cost is not None else 1.0 for p in plan.populations}
    for p in plan.populations:
        progress.add(len(p.members) * epochs, secs[id(p)])
    written = [0]

    def stored(rows, pop, seen=0):
        store.write_population(rows)
        progress.advance(len(pop.members) * (epochs - seen), secs[id(pop)], len(rows))  # members that stopped early
        written[0] += len(rows)

    try:
        if runner is not None and runner.opts.kind != "inline":
            jobs = [dict(to_job(p, plan.space.settings, experiment, dataset_ref(data[(p.dataset, p.data_seed)],
                                                                               data_folder)), index=i)
                    for i, p in enumerate(plan.populations)]
            runner.submit_many(jobs, lambda job, res: stored(res["rows"], plan.populations[job["index"]]))
            runner.wait()
            return written[0]
        for pop in plan.populations:
            step = progress.per_epoch(len(pop.members), secs[id(pop)])
            rows = run_population(pop, data[(pop.dataset, pop.data_seed)], plan.space.settings, device, experiment,
                                  step)
            stored(rows, pop, step.epochs)
    finally:
        if own:
            progress.close()
    return written[0]
