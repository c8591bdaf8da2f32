"""Controlled ablations: one factor, every level, everything else held — over draws and seeds.

An ablation is a TOML file (``experiments/ablations/*.toml``; ``python -m experiments ablate FILE``)::

    description = "the finest wavelength in one unit"
    datasets = ["U1", "S4.3"]            # the base datasets
    encoders = ["grid", "sphereM+"]      # (not with factor "encoder": its levels are the encoders)
    seeds = "0"                          # training seeds
    data_seeds = "0-4"                   # dataset draws
    space = "quick"                      # training settings; with hold = "retune" also the search

    [factor]
    name = "min_wavelength_deg"          # see FACTOR KINDS below
    levels = [0.5, 2, 8, 32]
    reference = 2                        # default: the first level

    [hold]
    mode = "fixed"                       # or "retune"
    values = { lr = 0.01, hidden_dim = 128 }   # every other hyper-parameter (where an encoder declares it)
    experiment = "quick-1b5e0d63"        # optional: start from the configuration this stored experiment
                                         # chose per (dataset, encoder); values and [hold.encoders.NAME] override
    [hold.encoders.grid]
    frequency_num = 16

Factor kinds: an encoder, network or optimiser hyper-parameter every named encoder declares
(``min_radius``, ``frequency_num``, ``hidden_dim``, ``lr``, ...); a physical scale
(``min_wavelength_deg``/``_km``, ``max_wavelength_deg``/``_km``: converted per encoder by
``experiments.models.scales``); ``encoder`` (levels are encoder names, each with its own held settings); or a
data-geometry factor — ``tilt`` (alias ``rotation``, degrees), ``kappa_max``, ``n_bands``, ``centers``,
``n_train`` — applied to each base dataset's recipe. A data level is a recipe of its own (named
``<base>+<factor>_<level>``) that draws the base's random stream, so levels differ only in the factor.

Each level is its own experiment in the results store, ``<name>-<hash>@<factor>=<level>`` (the hash
covers the settings, the factor and what is held, not the levels, so adding a level resumes): levels
are never pooled with each other or with sweeps. ``hold = "fixed"`` trains each level's one
configuration on every draw × seed — exactly the runs a plain sweep of those configurations would
make (the dry run prints the member-epochs); ``"retune"`` runs the space's adaptive search per level,
with the same budget for every level (``experiments.search.study.Study``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth import datasets as synth_datasets
from synth.cliutil import read_toml
from synth.draws import Draws
from synth.errors import SynthError
from synth.params import PATH, TABLE, TEXT, Kind, checked, flag, instance, integer, one_of, optional

from ..models import encoders as registry
from ..models import scales
from .factors import LEVEL, Factor, derived_recipe, parse_factor  # noqa: F401 (derived_recipe: public here too)
from ..store.executors import ExecutorOptions, Runner
from ..search.plan import CostModel, Plan, make_plan, plan_seconds, describe_search, cell_seconds
from ..search.populations import Progress, train_populations
from ..store.results import ResultsStore, digest
from ..search.selection import choose
from ..search.space import Space, load_space, policy_from, space_params
from ..search.study import STUDY_PARAMS, Study, check_arguments, int_list, ranges
from ..models.train import DEVICE, resolve_device

HOLD_MODES = ("fixed", "retune")
TOP_KEYS = {"description", "datasets", "encoders", "seeds", "data_seeds", "space", "factor", "hold"}


def _ablation_source(value):
    return value if isinstance(value, dict) else PATH.test(value)


ABLATION_SOURCE = Kind("an ablation TOML file or its table as a dict", _ablation_source)


@dataclass(frozen=True)
class Hold:
    """What every other hyper-parameter is."""

    mode: str = "fixed"
    values: dict = field(default_factory=dict)
    per_encoder: dict = field(default_factory=dict)
    experiment: str | None = None

    def to_dict(self) -> dict:
        return {"mode": self.mode, "values": self.values, "per_encoder": self.per_encoder,
                "experiment": self.experiment}


def parse_hold(table, factor: Factor, encoder_names) -> Hold:
    table = {"mode": "fixed"} if table is None else table
    if not isinstance(table, dict):
        raise SynthError("[hold] must be a table (mode = \"fixed\" or \"retune\")")
    unknown = set(table) - {"mode", "values", "encoders", "experiment"}
    if unknown:
        raise SynthError(f"[hold]: unknown key(s) {', '.join(sorted(unknown))}; valid: mode, values, encoders, experiment")
    mode = table.get("mode", "fixed")
    if mode not in HOLD_MODES:
        raise SynthError(f"[hold] mode = {mode!r} is not valid: expected \"fixed\" or \"retune\"")
    values, per = table.get("values", {}), table.get("encoders", {})
    experiment = table.get("experiment")
    if mode == "retune" and (values or per or experiment):
        raise SynthError("[hold] mode = \"retune\" searches every other hyper-parameter in the space; "
                         "values, encoders and experiment are for mode = \"fixed\"")
    if experiment is not None and not isinstance(experiment, str):
        raise SynthError(f"[hold] experiment must be an experiment name, got {experiment!r}")
    if not isinstance(values, dict) or not isinstance(per, dict):
        raise SynthError("[hold] values and [hold.encoders.NAME] must be tables")
    if factor.name in values or any(factor.name in (t or {}) for t in per.values()):
        raise SynthError(f"[hold] sets {factor.name}, the factor itself: its levels are in [factor]")
    for k, v in values.items():
        owners = [e for e in encoder_names if k in space_params(e)]
        if scales.is_physical(k):
            owners = [e for e in encoder_names if scales.parse_physical(k)[0] in scales.scale_params(e)]
        if not owners:
            raise SynthError(f"[hold] values: {k!r} is a hyper-parameter of none of {', '.join(encoder_names)}")
        for e in owners:
            if scales.is_physical(k):
                scales.to_native(e, k, v)  # a positive length
            else:
                space_params(e)[k].check(v, f"[hold] values for {e}")
    checked_per = {}
    for enc, t in per.items():
        name = registry.canonical_name(enc)
        if not isinstance(t, dict):
            raise SynthError(f"[hold.encoders.{enc}] must be a table")
        params = space_params(name, t.get("network"))
        for k, v in t.items():
            if scales.is_physical(k):
                continue
            if k not in params:
                raise SynthError(f"[hold.encoders.{enc}]: unknown hyper-parameter {k!r} for {name}")
            params[k].check(v, f"[hold.encoders.{enc}]")
        checked_per[name] = dict(t)
    return Hold(mode, dict(values), checked_per, experiment)


@dataclass
class Ablation:
    name: str
    description: str
    factor: Factor
    hold: Hold
    space: Space
    datasets: list  # base dataset names
    encoders: list  # the encoders of every level (factor "encoder": the levels)
    seeds: list
    data_seeds: list
    device: object
    executor: ExecutorOptions
    db: Path
    resume: bool = False
    progress: bool = True
    max_members: int | None = None
    recipes: dict = field(default_factory=dict)  # {(base, level): Recipe} (data factors), {base: Recipe} otherwise

    # ------------------------------------------------------------------ building
    @classmethod
    @checked(path=ABLATION_SOURCE, db=PATH, device=DEVICE, executor=one_of("inline", "local", "submitit"),
             workers=integer(1, 10**4, optional=True), log_dir=optional(PATH), resume=flag(), progress=flag(),
             max_members=STUDY_PARAMS["max_members"], name=optional(TEXT))
    def build(cls, path, db="results/ablations.sqlite", device="auto", executor="inline", workers=None,
              log_dir=None, resume=False, progress=True, max_members=None, name=None) -> "Ablation":
        """Read and check an ablation (a TOML file, or the same tables as a dict with ``name``) before
        any work; a bad value is one SynthError naming it."""
        if isinstance(path, dict):
            raw, stem, path = path, str(name or "ablation"), Path(str(name or "ablation"))
        else:
            path = Path(path)
            if not path.is_file():
                raise SynthError(f"ablation file {path} not found")
            raw, stem = read_toml(path), path.stem
        unknown = set(raw) - TOP_KEYS
        if unknown:
            raise SynthError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(TOP_KEYS))}")
        if "factor" not in raw:
            raise SynthError(f"{path}: no [factor] table (name, levels, reference)")
        try:  # the top-level values by kind, as Study.build checks its arguments (a list of numbers was a TypeError)
            check_arguments(**{k: raw[k] for k in ("datasets", "encoders", "space") if k in raw})
        except SynthError as e:
            raise SynthError(f"{path}: {e}") from None
        ftable = raw["factor"]
        is_encoder_factor = isinstance(ftable, dict) and ftable.get("name") == "encoder"
        if is_encoder_factor and "encoders" in raw:
            raise SynthError(f"{path}: factor encoder takes its encoders from its levels; remove encoders")
        if not is_encoder_factor:
            enc_value = raw.get("encoders", "table8")
            encs = registry.parse_names(",".join(enc_value) if isinstance(enc_value, list) else str(enc_value))
        else:
            encs = [registry.canonical_name(v) for v in ftable.get("levels") or [] if isinstance(v, str)]
        try:
            factor = parse_factor(ftable, encs)
            hold = parse_hold(raw.get("hold"), factor, encs)
        except SynthError as e:
            raise SynthError(f"{path}: {e}") from None
        if factor.kind == "encoder":
            encs = list(factor.levels)
        space = load_space(str(raw.get("space", "quick")))
        ds_value = raw.get("datasets", "U1")
        datasets = synth_datasets.parse_names(",".join(ds_value) if isinstance(ds_value, list) else str(ds_value))
        seeds = int_list(raw.get("seeds", "0"), "seeds")
        dseeds = int_list(raw.get("data_seeds", "0"), "data_seeds")
        opts = ExecutorOptions(executor, workers, Path(log_dir) if log_dir else Path(db).parent / "logs", {})
        abl = cls(stem, str(raw.get("description", "")), factor, hold, space, datasets, encs, seeds, dseeds,
                  resolve_device(device) if isinstance(device, str) else device, opts, Path(db), bool(resume),
                  bool(progress), max_members)
        abl._make_recipes()
        for e in encs:  # a plugin's output, once, before any work
            registry.check_plugin(e, space)
        if hold.mode == "retune":
            policy_from(space.search, None, f"space {space.name} [search]")
        return abl

    def _make_recipes(self) -> None:
        for d in self.datasets:
            base = synth_datasets.get_recipe(d)
            if self.factor.kind != "data":
                self.recipes[(d, None)] = base
                continue
            for level in self.factor.levels:
                try:
                    r = derived_recipe(base, self.factor, level)
                except SynthError as e:
                    raise SynthError(f"factor {self.factor.name} = {level!r} on {d}: {e}") from None
                synth_datasets.register(r, overwrite=True)  # deterministic: the same name is the same recipe
                self.recipes[(d, level)] = r
        if self.factor.kind == "data":
            self._check_levels_change_the_data()

    def _check_levels_change_the_data(self) -> None:
        """Two data levels that generate the same points and labels on every dataset (n_bands on
        uniform centres, a tilt of -180 and 180) would train identical runs and report Δ 0 as a
        finding: refused before any work. Generating the first draw costs milliseconds."""
        def points(recipe):
            ds = synth_datasets.generate(recipe, self.data_seeds[0])
            return [ds.split(split) for split in ("train", "val", "test")]

        def same(a, b):  # a rotation by -180 and by 180 degrees differ in the 16th digit
            return all(la.shape == lb.shape and np.array_equal(la, lb) and np.allclose(xa, xb, rtol=0, atol=1e-9)
                       for (xa, la), (xb, lb) in zip(a, b))

        levels = self.factor.levels
        data = {(d, v): points(self.recipes[(d, v)]) for d in self.datasets for v in levels}
        for i, a in enumerate(levels):
            for b in levels[i + 1:]:
                if all(same(data[(d, a)], data[(d, b)]) for d in self.datasets):
                    raise SynthError(f"factor {self.factor.name}: levels {self.factor.label(a)} and "
                                     f"{self.factor.label(b)} generate the same data on {', '.join(self.datasets)}: "
                                     "the factor changes nothing between them")

    # ------------------------------------------------------------------ what it is
    @functools.cached_property
    def identity(self) -> str:
        """The hash of what defines the ablation except its levels (so adding a level resumes)."""
        key = {"settings": self.space.settings.to_dict(), "factor": self.factor.name, "hold": self.hold.to_dict()}
        if self.hold.mode == "retune":
            key["search"] = policy_from(self.space.search, None).to_dict()
            key["grid"] = {e: self.space.configs(e) for e in self.encoders}
        return digest(key)[:8]

    @checked(level=LEVEL)
    def experiment(self, level) -> str:
        return f"{self.name}-{self.identity}@{self.factor.name}={self.factor.label(level)}"

    def recipe(self, dataset: str, level) -> synth_datasets.Recipe:
        return self.recipes[(dataset, level if self.factor.kind == "data" else None)]

    def level_encoders(self, level) -> list:
        return [level] if self.factor.kind == "encoder" else list(self.encoders)

    @checked(dataset=TEXT, encoder=TEXT, level=LEVEL, chosen=optional(TABLE))
    def config(self, dataset: str, encoder: str, level, chosen: dict | None = None) -> dict:
        """The one configuration of (dataset, encoder) at a level with ``hold = "fixed"``: the held
        experiment's choice (if any), then [hold] values, then [hold.encoders.NAME], then the factor."""
        config = {}
        if chosen is not None:
            if (dataset, encoder) not in chosen:
                raise SynthError(f"config: chosen has no configuration for ({dataset}, {encoder}) (retune mode: "
                                 "the cells chosen at the reference level)")
            config.update(chosen[(dataset, encoder)].config)
        own = self.hold.per_encoder.get(encoder, {})
        network = own.get("network") or config.get("network")
        if network is None and "network" in space_params(encoder):
            network = self.hold.values.get("network")
        params = space_params(encoder, network)
        table = {k: v for k, v in self.hold.values.items() if k in params or scales.is_physical(k)}
        table.update(own)
        if self.factor.kind in ("hyper", "physical"):
            table[self.factor.name] = level
        if any(scales.is_physical(k) for k in table):
            for k in [k for k in table if scales.is_physical(k)]:  # a physical key replaces its native one
                config.pop(scales.scale_params(encoder).get(scales.parse_physical(k)[0]), None)
            table = scales.native_grid(encoder, {k: v for k, v in table.items()
                                                 if not scales.is_physical(k) or scales.parse_physical(k)[0]
                                                 in scales.scale_params(encoder)}, f"ablation {self.name}")
            table = {k: v[0] if isinstance(v, list) else v for k, v in table.items()}
        config.update(table)
        return {k: params[k].check(v, f"ablation {self.name} {encoder}") for k, v in sorted(config.items())}

    def held_choices(self, store) -> dict | None:
        """The held experiment's chosen configuration per (base dataset, encoder); one line if missing."""
        if self.hold.experiment is None:
            return None
        if self.hold.experiment not in store.experiments():
            raise SynthError(f"[hold] experiment {self.hold.experiment!r} is not in {store.path}")
        chosen = choose(store.rows(self.hold.experiment, "final"))
        for d in self.datasets:
            for e in self.encoders:
                if (d, e) not in chosen:
                    raise SynthError(f"[hold] experiment {self.hold.experiment} chose nothing for {e} on {d}")
        return chosen

    # ------------------------------------------------------------------ plans
    def _plan(self, level, store, chosen: dict | None, skip_stored: bool) -> Plan:
        exp = self.experiment(level)
        skip = store.stored_keys(exp) if (store is not None and skip_stored) else set()
        pops, n = [], 0
        for d in self.datasets:
            r = self.recipe(d, level)
            for e in self.level_encoders(level):
                config = self.config(d, e, level, chosen)
                plan = make_plan(self.space, [r.name], self.data_seeds, [e], self.seeds, self.device,
                                 {r.name: digest(r.to_dict())}, exp, configs={e: [config]}, skip=skip,
                                 max_pop=self.max_members, num_classes=r.n_classes)
                pops += plan.populations
                n += 1
        return Plan(self.space, pops, n)

    def _level_study(self, level) -> Study:
        """``hold = "retune"``: the space's search with the factor fixed at ``level``."""
        space = self.space
        if self.factor.kind in ("hyper", "physical"):
            per = {}
            for e in self.level_encoders(level):
                own = dict(space.per_encoder.get(e, {}))
                if self.factor.kind == "physical":
                    native = scales.scale_params(e)[scales.parse_physical(self.factor.name)[0]]
                    own[native] = [scales.to_native(e, self.factor.name, level, {})[1]]
                else:
                    own[self.factor.name] = [level]
                per[e] = own
            space = dataclasses.replace(space, per_encoder={**space.per_encoder, **per})
        names = [self.recipe(d, level).name for d in self.datasets]
        return Study.build(space=space, datasets=names, encoders=self.level_encoders(level), seeds=self.seeds,
                           data_seeds=self.data_seeds, device=self.device, db=self.db, executor=self.executor.kind,
                           workers=self.executor.workers, resume=self.resume, progress=self.progress,
                           max_members=self.max_members, experiment=self.experiment(level))

    def _cost(self) -> CostModel:
        r = self.recipe(self.datasets[0], self.factor.levels[0])
        return CostModel(self.space.settings, synth_datasets.generate(r, self.data_seeds[0]), self.device)

    # ------------------------------------------------------------------ dry run and run
    def header(self) -> list[str]:
        f = self.factor
        ref = f.label(f.reference)
        lines = [f"ablation {self.name}: factor {f.name} at {len(f.levels)} level(s) "
                 f"{', '.join(f.label(v) for v in f.levels)} (reference {ref}); hold {self.hold.mode}",
                 f"  {len(self.datasets)} dataset(s) {', '.join(self.datasets)} x encoder(s) "
                 f"{', '.join(self.encoders)}; draws {ranges(self.data_seeds)} x seeds {ranges(self.seeds)}; "
                 f"space {self.space.name} ({self.space.settings.epochs} epochs); database {self.db}"]
        return lines

    def dry_run(self) -> str:
        lines = self.header()
        epochs = self.space.settings.epochs
        store = ResultsStore(self.db, readonly=True) if self.db.exists() else None
        try:
            if self.hold.mode == "fixed" and self.hold.experiment is not None and store is None:
                raise SynthError(f"[hold] experiment {self.hold.experiment!r}: {self.db} does not exist")
            cost = self._cost()
            chosen = self.held_choices(store) if store is not None else None
            total_members, total_secs = 0, 0.0
            for level in self.factor.levels:
                if self.hold.mode == "fixed":
                    plan = self._plan(level, store, chosen, self.resume)
                    secs = plan_seconds(plan, cost)
                    total_members += plan.n_members
                    total_secs += secs
                    lines.append(f"  {self.experiment(level)}: {plan.n_configs} configuration(s), {plan.n_members} "
                                 f"run(s), {plan.n_members * epochs} member-epochs, ~{secs / 60:.1f} min")
                else:
                    study = self._level_study(level)
                    lines.append(f"  {self.experiment(level)}:")
                    lines += ["  " + x for x in describe_search(study.space, study.policy, study.encoders,
                                                                 len(study.datasets), study.seeds)]
                    total_secs += sum(len(study.datasets) * cell_seconds(study.space, study.policy, e, study.seeds, cost)
                                      for e in study.encoders)
            if self.hold.mode == "fixed":
                n_cells = len(self.datasets) * sum(len(self.level_encoders(v)) for v in self.factor.levels)
                plain = n_cells * len(self.data_seeds) * len(self.seeds)
                lines.append(f"  total: {total_members} run(s) = {total_members * epochs} member-epochs "
                             f"(a plain sweep of the same {n_cells} configuration(s) x {len(self.data_seeds)} draw(s) x "
                             f"{len(self.seeds)} seed(s): {plain * epochs} member-epochs"
                             + (", less what is stored" if total_members < plain else "") + f"); estimated "
                             f"{total_secs / 60:.1f} min on {self.device} (early stopping can shorten it)")
            else:
                policy = policy_from(self.space.search, None)
                lines.append(f"  the same budget at every level: {policy.describe()}; search on draw "
                             f"{min(self.data_seeds)}, the chosen configuration on every other draw; "
                             f"search estimated {total_secs / 60:.1f} min on {self.device}")
        finally:
            if store is not None:
                store.close()
        return "\n".join(lines)

    def run(self, echo=print) -> int:
        for line in self.header():
            echo(line)
        if self.hold.mode == "retune":
            for level in self.factor.levels:
                self._level_study(level).run(echo)
            return 0
        written = 0
        with ResultsStore(self.db) as store:
            runner = Runner(self.executor, self.device)
            cost = self._cost() if self.progress else None
            chosen = self.held_choices(store)
            plans = [(level, self._plan(level, store, chosen, self.resume)) for level in self.factor.levels]
            progress = Progress("ablate", show=cost is not None)
            try:
                names = [self.recipe(d, v).name for d in self.datasets for v in self.factor.levels]
                draws = Draws(sorted(set(names)), self.data_seeds, None)
                for level, plan in plans:
                    if plan.populations:
                        written += train_populations(plan, store, draws, self.device, self.experiment(level),
                                                     runner, None, cost, progress)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop now, abandoning what is in flight
                runner.abort()
                raise
            finally:
                progress.close()
                runner.close()
        echo(f"wrote {written} row(s) to {self.db}" if written else "nothing to do: every run is stored")
        return written

    @checked(store=instance(ResultsStore), diverged=optional(instance(set, frozenset)),
             bands=optional(one_of("equal-angle", "equal-area")))
    def cells(self, store, diverged: set | None = None, bands: str | None = None) -> dict:
        """{(base dataset, encoder, level): Cell} of every level's experiment (``selection.choose``);
        ``diverged`` collects the (dataset, encoder, level) whose every stored run diverged; with
        ``bands``, a finished run without that kind of bands is one line naming its row."""
        out = {}
        have = store.experiments()
        for level in self.factor.levels:
            exp = self.experiment(level)
            if exp not in have:
                continue
            rows = store.rows(exp, "final")
            for r in rows if bands else ():
                if not r["diverged"] and bands not in json.loads(r["bands"] or "{}"):
                    raise SynthError(f"{self.db}: row id {r['id']} column bands lacks the {bands} bands the "
                                     "report reads; fix or delete that row")
            chosen = choose(rows)
            for d in self.datasets:
                for e in self.level_encoders(level):
                    name = self.recipe(d, level).name
                    c = chosen.get((name, e))
                    if c is not None:
                        out[(d, e, level)] = c
                    elif diverged is not None and any(r["dataset"] == name and r["encoder"] == e for r in rows):
                        diverged.add((d, e, level))  # runs stored, none usable: every one diverged
        return out
