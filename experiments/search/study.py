"""A study: the one declared object that says what an experiment is, and runs it.

A ``Study`` holds the space, the search policy, datasets × draws, encoders, training seeds,
device, executor and results store. ``Study.build`` checks every value before any work (the
space's values against the requested encoders, the policy, names, seeds, device, executor and
SLURM options, every data file) and says in ``notes`` what it had to decide for the user. Its
stages are methods:

1. ``search``: the search on the first draw — trials, then the finalists on every seed
   (``experiments.search.cell_search``); the exhaustive policy trains every configuration on every seed;
2. ``other_draws``: the configuration chosen on the first draw (validation Top-1, as the report
   chooses) of each (dataset, encoder), trained on every other draw × seed;

``run`` does both; ``dry_run`` prints the plan and an estimated time in seconds, training
nothing and writing nothing. From Python::

    from experiments.search.study import Study
    study = Study.build(space="quick", datasets="U1,S2.3", encoders="sphereM+,grid", seeds="0-2",
                        data_seeds="0-4", db="results/mine.sqlite")
    print(study.dry_run())
    study.run()

``python -m experiments sweep`` parses its flags into ``Study.build`` and calls one of the two.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synth import datasets as synth_datasets
from synth.cliutil import parse_int_list
from synth.draws import Draws
from synth.errors import SynthError
from synth.params import (
    INTS, NAMES, PATH, TABLE, TEXT, Interval, Kind, Param, checked, flag, instance, integer, one_of,
    optional)

from ..models import encoders as encoder_registry
from ..store.executors import ExecutorOptions, Runner, describe as describe_executor
from ..store.executors import n_workers, usable_cpus
from .plan import (CostModel, Plan, assumptions, cell_seconds, code_commit, describe_plan, describe_search, make_plan,
                   plan_seconds, run_fraction)
from .populations import Progress, train_populations
from ..store.results import ResultsStore, canonical, digest
from .cell_search import run as run_search
from .selection import choose
from . import pruners
from .space import SearchPolicy, Space, check_against_data, experiment_name, load_space, policy_from
from .transfer import check_sources
from ..models.train import DEVICE, resolve_device

STUDY_PARAMS = {p.name: p for p in (
    Param("max_members", int, None, Interval(1, 4096), "setting", optional=True,
          help="cap on the population size (default: by memory)"),
    Param("lock_timeout", float, 600.0, Interval(0, 10**7), "setting",
          help="seconds to wait for another process's write lock on the database"),
    Param("epochs", int, None, Interval(1, 10**6), "setting", optional=True,
          help="override the space's epochs (a new experiment)"),
)}


def int_list(value, what: str) -> list[int]:
    if isinstance(value, str):
        return parse_int_list(value, what)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in value):
        raise SynthError(f"{what} must be a range like '0-4', a list like '0,2' or a list of integers in [0, 2^32), "
                         f"got {value!r}")
    return sorted(set(value))


def _names_ok(v) -> bool:
    """A comma list ("U1,S2.3", "all") or a non-empty list of names."""
    if isinstance(v, str):
        return bool(v.strip())
    return isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, str) and x.strip() for x in v)


def check_arguments(**given) -> None:
    """An ablation file's top-level ``datasets``, ``encoders`` and ``space`` checked by kind, as
    ``Study.build`` checks its arguments (its own are declared with ``checked``): one SynthError
    naming the value (a list of numbers was a TypeError)."""
    rules = {"space": (lambda v: isinstance(v, (str, Path, Space)) and str(v).strip() != "",
                       "a space name, a TOML file or a Space"),
             "datasets": (_names_ok, "a comma list like 'U1,S2.3', 'all', or a non-empty list of names"),
             "encoders": (_names_ok, "a comma list like 'grid,sphereM+', 'table8', 'all', or a non-empty list")}
    for name, value in given.items():
        ok, what = rules[name]
        if not ok(value):
            raise SynthError(f"{name} = {value!r} is not valid: expected {what}")


def _space_arg(value):
    if isinstance(value, Space) or isinstance(value, str) and value.strip() or isinstance(value, Path):
        return value
    raise TypeError


def _seeds_arg(value):
    """'0-4', '0,3' (parsed later, with its own messages) or a list of distinct integers."""
    return value if isinstance(value, str) and value.strip() else INTS.test(value)


SPACE = Kind("a space name, a TOML file or a Space", _space_arg)
SEEDS = Kind("seeds as '0-4' or '0,3', or a list of distinct integers", _seeds_arg)


@dataclass
class Study:
    space: Space
    policy: SearchPolicy
    datasets: list
    data_seeds: list
    encoders: list
    seeds: list
    device: torch.device
    executor: ExecutorOptions
    db: Path
    data_folder: Path | None = None
    max_members: int | None = None
    resume: bool = False
    lock_timeout: float = 600.0
    progress: bool = True
    notes: list = field(default_factory=list)  # what build decided for the user, one line each
    draws: Draws | None = None
    recipe_hashes: dict = field(default_factory=dict)
    name: str | None = None  # the experiment's name when not the space's (an ablation level's)
    # a transfer search whose source searches an earlier stage of the same command trains (sweep
    # --reference of a transfer reference): its dry run cannot check them yet
    sources_pending: bool = False

    # ------------------------------------------------------------------ building
    @classmethod
    @checked(space=SPACE, datasets=NAMES, encoders=NAMES, seeds=SEEDS, data_seeds=SEEDS, search=optional(TABLE),
             device=DEVICE, db=PATH, data=optional(PATH), executor=one_of("inline", "local", "submitit"),
             workers=integer(1, 10**4, optional=True), slurm=optional(TABLE), log_dir=optional(PATH),
             epochs=STUDY_PARAMS["epochs"], max_members=STUDY_PARAMS["max_members"], resume=flag(),
             lock_timeout=STUDY_PARAMS["lock_timeout"], progress=flag(), experiment=optional(TEXT))
    def build(cls, space="quick", datasets="all", encoders="table8", seeds="0-4", data_seeds="0", search=None,
              device="auto", db="results/results.sqlite", data=None, executor="inline", workers=None, slurm=None,
              log_dir=None, epochs=None, max_members=None, resume=False, lock_timeout=600.0,
              progress=True, experiment=None) -> "Study":
        """Check everything, before any work; a bad value is one SynthError naming it.

        ``search``: flags overriding the space's [search] table (sampler, pruner, trials,
        finalists, race, search_seeds); ``slurm``: SLURM options overriding its [executor] table."""
        sp = space if isinstance(space, Space) else load_space(str(space))
        if epochs is not None:
            sp = dataclasses.replace(sp, settings=dataclasses.replace(sp.settings, epochs=epochs))
        folder = None if data is None else Path(data)
        if folder is not None and not folder.is_dir():
            raise SynthError(f"--data {folder} not found (or not a folder); run python -m synth generate first")
        ds = datasets if isinstance(datasets, list) else synth_datasets.parse_names(datasets, folder)
        encs = encoders if isinstance(encoders, list) else encoder_registry.parse_names(encoders)
        encs = [encoder_registry.canonical_name(e) for e in encs]
        seeds, dseeds = int_list(seeds, "seeds"), int_list(data_seeds, "dataset seeds")
        sp.check_for(encs)
        for e in encs:  # a plugin's output, once, before any work
            encoder_registry.check_plugin(e, sp)
        notes: list = []
        policy = policy_from(sp.search, search, f"space {sp.name} [search]", notes)
        if policy.pruner != "none" and policy.first_rung is not None and policy.first_rung >= sp.settings.epochs:
            raise SynthError(f"first rung {policy.first_rung} is not below the {sp.settings.epochs} epochs: no trial "
                             f"would ever be pruned (use a first rung below {sp.settings.epochs}, or --pruner none)")
        dev = resolve_device(device) if isinstance(device, str) else device
        slurm_opts = {**sp.executor, **(slurm or {})}
        if executor != "submitit" and sp.executor and not slurm:
            slurm_opts = {}  # the space's [executor] table only matters to the submitit executor
        opts = ExecutorOptions(executor, workers, Path(log_dir) if log_dir else Path(db).parent / "logs", slurm_opts)
        study = cls(sp, policy, ds, dseeds, encs, seeds, dev, opts, Path(db), folder, max_members,
                    bool(resume), lock_timeout, bool(progress), notes, name=experiment)
        study.draws = Draws(ds, dseeds, folder)
        study.draws.verify()
        study.recipe_hashes = {n: digest(study.draws.recipe(n).to_dict()) for n in ds}
        recipes = [study.draws.recipe(n) for n in ds]
        check_against_data(sp, encs, min(r.split_sizes()[0] * r.n_classes for r in recipes))
        study._note_policy()
        return study

    def _note_policy(self) -> None:
        p = self.policy
        if p.is_exhaustive:
            return
        for enc in self.encoders:
            n = len(self.space.configs(enc))
            if p.sampler != "grid" and p.trials >= n:
                self.notes.append(f"note: {enc}: {p.trials} trials >= its {n} configuration(s): every configuration "
                                  "is tried once, in order")
            trials = p.n_trials(n)
            if p.finalists is not None and p.finalists > trials:
                self.notes.append(f"note: {enc}: {p.finalists} finalists asked for but only {trials} trial(s): at "
                                  f"most {trials} finalist(s)")

    # ------------------------------------------------------------------ what it is
    @property
    def experiment(self) -> str:
        return self.name or experiment_name(self.space, self.policy)

    @property
    def first_draw(self) -> int:
        return min(self.data_seeds)

    @property
    def other_seeds(self) -> list:
        first = self.first_draw  # once: data_seeds may hold 10^5 draws
        return [s for s in self.data_seeds if s != first]

    def header(self) -> list[str]:
        lines = [describe_executor(self.executor),
                 f"experiment {self.experiment} (space {self.space.name}): {self.policy.describe()} on seeds "
                 f"{ranges(self.seeds)}; {len(self.datasets)} dataset(s) (draw {self.first_draw}) x "
                 f"{len(self.encoders)} encoder(s) on {self.device}"]
        return lines + self.notes

    def _workers(self) -> tuple[int, int]:
        """(workers busy at once, torch threads each) for the estimate: the executor's."""
        if self.executor.kind == "inline":
            return 1, torch.get_num_threads()
        workers = n_workers(self.executor)
        return workers, max(1, usable_cpus() // workers) if self.executor.kind == "local" else None

    def _cost(self) -> CostModel:
        workers, threads = self._workers()
        return CostModel(self.space.settings, self.draws[(self.datasets[0], self.first_draw)], self.device,
                         threads=threads)

    def _check_transfer(self) -> None:
        """A transfer's source experiment, datasets and encoders must be in the database (the search
        would stop on them half-way): the dry run checks what the run checks."""
        if self.policy.transfer_from is not None:
            check_sources(self.db, self.policy, self.datasets, self.encoders, self.space)

    # ------------------------------------------------------------------ dry run
    def dry_run(self) -> str:
        """The plan and an estimated wall time; trains nothing, writes nothing (an existing database
        is read, read-only, to leave out what --resume would skip). The estimate is compute seconds
        (measured epoch costs x expected member-epochs) over the workers that can be busy at once."""
        if not self.sources_pending:
            self._check_transfer()
        lines = self.header()
        cost = self._cost()
        workers, threads = self._workers()
        settings = self.space.settings
        if self.policy.is_exhaustive:
            skip = set()
            if self.resume and self.db.exists():
                with ResultsStore(self.db, readonly=True) as store:
                    skip = store.stored_keys(self.experiment)
            plan = make_plan(self.space, self.datasets, [self.first_draw], self.encoders, self.seeds, self.device,
                             self.recipe_hashes, self.experiment, max_pop=self.max_members, skip=skip)
            lines.append(describe_plan(plan, self.experiment, self.device))
            est = plan_seconds(plan, cost) / max(1, min(workers, len(plan.populations)))
            lines.append(f"  {plan.n_members * settings.epochs} member-epochs at most; estimated time: "
                         f"{est / 60:.1f} min")
            if not plan.populations:
                lines.append("nothing to do" + (" on the first draw" if self.other_seeds else ""))
        else:
            lines += describe_search(self.space, self.policy, self.encoders, len(self.datasets), self.seeds)
            cells = len(self.datasets) * len(self.encoders)  # searched in parallel, each one population at a time
            est = sum(len(self.datasets) * cell_seconds(self.space, self.policy, e, self.seeds, cost)
                      for e in self.encoders) / max(1, min(workers, cells))
            pruning = ("" if self.policy.pruner == "none" else
                       f"; pruning keeps a third of the trials at each rung ({self.policy.pruner})")
            lines.append(f"  estimated time: {est / 60:.1f} min{pruning}")
        more = 0.0
        if self.other_seeds:
            lines.append(self._other_draws_line())
            runs = len(self.datasets) * len(self.other_seeds) * len(self.seeds)
            more = sum(runs * settings.epochs * run_fraction(settings) * cost.mean_seconds(e, self.space.configs(e))
                       for e in self.encoders) / max(1, min(workers, runs * len(self.encoders)))
            lines.append(f"  estimated time: about {more / 60:.1f} min more (the mean epoch of each encoder's shapes: "
                         "the chosen shape is not known before the search)")
        lines.append(f"  estimated wall time in all: {(est + more) / 60:.1f} min; {assumptions(settings, workers, threads)}")
        return "\n".join(lines)

    def _other_draws_line(self) -> str:
        n = len(self.datasets) * len(self.encoders) * len(self.other_seeds) * len(self.seeds)
        return (f"other draws: the configuration chosen on draw {self.first_draw} (validation Top-1, as the report "
                f"chooses) of each (dataset, encoder), on draws {ranges(self.other_seeds)} x seeds "
                f"{ranges(self.seeds)}: {n} run(s), <= {n * self.space.settings.epochs} member-epochs")

    # ------------------------------------------------------------------ running
    def run(self, echo=print) -> dict:
        """Every stage, into the results store; ``echo`` gets one line at a time."""
        self._check_transfer()  # before the database is created: a bad source leaves nothing behind
        for line in self.header():
            echo(line)
        with ResultsStore(self.db, lock_timeout=self.lock_timeout) as store:
            self._record_rule(store, echo)
            runner = Runner(self.executor, self.device)
            try:
                cost = self._cost() if self.progress else None
                summary = self.search(store, runner, cost, echo)
                self.other_draws(store, runner, cost, echo)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop now, abandoning what is in flight
                runner.abort()
                raise
            finally:
                runner.close()
        return summary

    def _record_rule(self, store, echo) -> None:
        """Say in the database how this experiment's search decides (``report`` shows it), and name
        any search of the same space decided under the old rule: it is another experiment, kept apart.
        The policy itself is recorded too, and every git commit that ran a sweep of it (a reference
        file carries both: experiments.report.reference)."""
        store.set_meta(f"policy/{self.experiment}", canonical(self.policy.to_dict()))
        commit, commits = code_commit(), json.loads(store.meta(f"commits/{self.experiment}") or "[]")
        if commit is not None and commit not in commits:
            store.set_meta(f"commits/{self.experiment}", json.dumps(commits + [commit]))
        if self.policy.is_exhaustive:
            return
        for exp in store.experiments():
            if (exp != self.experiment and exp.startswith(f"{self.space.name}-")
                    and store.meta(f"search/{exp}") is None and store.rows(exp, "search")):
                echo(f"note: {self.db} holds {exp}, a search of space {self.space.name} decided by report order "
                     f"(before rung decisions by value); it is kept apart: {self.experiment} does not resume it")
        store.set_meta(f"search/{self.experiment}", f"{self.policy.describe()}; {pruners.RULE_TEXT}"
                       if self.policy.pruner != "none" else self.policy.describe())

    @checked(store=instance(ResultsStore), runner=optional(instance(Runner)), cost=optional(instance(CostModel)))
    def search(self, store, runner=None, cost=None, echo=print) -> dict:
        """Stage 1: the search on the first draw (and its finalists)."""
        # the parallel adaptive search reports no progress (its cells run in workers); the rest does
        shown = cost is not None and (self.policy.is_exhaustive or self.executor.kind == "inline")
        progress = Progress("search" if not self.policy.is_exhaustive else "train", show=shown,
                            unit_note=" (at most; pruning cuts it)" if self.policy.pruner != "none" else "")
        before = len(store.stored_keys(self.experiment))
        try:
            summary = run_search(self, store, runner, cost, progress, echo)
        finally:
            progress.close()
        summary["new_rows"] = len(store.stored_keys(self.experiment)) - before
        if self.policy.is_exhaustive:
            if summary["plan"].populations:
                echo(f"wrote {summary['written']} row(s) to {self.db} (experiment {self.experiment})")
            return summary
        for c in summary["cells"]:
            echo(f"  {c['dataset']} seed {c['data_seed']} {c['encoder']}: {c['trials']} trial(s) ({c['repeats']} "
                 f"repeat(s) answered without training), {c['pruned']} pruned, {c['search_member_epochs']} "
                 "member-epochs; finalists: " + "; ".join(f"#{n} val {v:.1f}" for _, v, n in c["finalists"]))
        if summary["new_rows"]:
            echo(f"done in {summary['seconds']:.0f} s: wrote {summary['new_rows']} row(s) (experiment {self.experiment})")
        else:  # the lines above are the stored search's, replayed from the database
            echo(f"nothing trained: every trial and finalist was already in {self.db} (--resume); the lines above "
                 f"are the stored search's (experiment {self.experiment})")
        return summary

    def chosen(self, store) -> dict:
        """{(dataset, encoder): chosen Cell} on the first draw (``selection.choose``, as the report)."""
        rows = [r for r in store.rows(self.experiment, "final")
                if r["data_seed"] == self.first_draw and r["train_seed"] in self.seeds
                and r["dataset"] in self.recipe_hashes and r["recipe_hash"] == self.recipe_hashes[r["dataset"]]
                and r["encoder"] in self.encoders]
        return choose(rows)

    @checked(store=instance(ResultsStore), runner=optional(instance(Runner)), cost=optional(instance(CostModel)))
    def other_draws(self, store, runner=None, cost=None, echo=print) -> int:
        """Stage 2: the configuration chosen on the first draw, on every other draw × seed.

        Table 8 is reported over several dataset draws (SPEC.md §7); the search runs on the first
        draw only, and the configuration the report chooses there is what the other draws train,
        so its test Top-1 is averaged over draws at a fraction of the search's cost. Runs already
        stored are skipped."""
        if not self.other_seeds:
            return 0
        echo(self._other_draws_line())
        chosen = self.chosen(store)
        skip = store.stored_keys(self.experiment)
        pops = []
        for d in self.datasets:
            for e in self.encoders:
                if (d, e) not in chosen:
                    echo(f"warning: {e} on {d}: no configuration chosen on draw {self.first_draw} (every one diverged "
                         "or none was trained), so it is not trained on the other draws")
                    continue
                pops += make_plan(self.space, [d], self.other_seeds, [e], self.seeds, self.device,
                                  {d: self.recipe_hashes[d]}, self.experiment, configs={e: [chosen[(d, e)].config]},
                                  skip=skip, max_pop=self.max_members).populations
        if not pops:
            echo("  nothing to do: every run is stored")
            return 0
        plan = Plan(self.space, pops, len(chosen))
        n = train_populations(plan, store, self.draws, self.device, self.experiment, runner, self.data_folder, cost)
        echo(f"wrote {n} row(s) to {self.db} (experiment {self.experiment})")
        return n


def ranges(values) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    values, out, i = sorted(values), [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(out)

