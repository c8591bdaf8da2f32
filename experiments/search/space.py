"""Search spaces and search policies: what may be tried, and how.

A *space* is a TOML file (``experiments/spaces/quick.toml``, ``paper.toml`` or your own) with
``[settings]`` (TrainSettings fields), ``[grid]`` (lists applied to every encoder for which the key
is a declared hyper-parameter), ``[encoders.NAME]`` (lists for one encoder, overriding ``[grid]``),
and optionally ``[search]`` (the default search policy) and ``[executor]`` (SLURM options). Every
value is checked against the declarations (``synth.params``) before any work: per-encoder tables
when the space is loaded, ``[grid]`` values against the encoders a study asks for
(``Space.check_for``), so a value one unrequested encoder refuses does not block the others.

A *search policy* is sampler × pruner × seed policy (see ``experiments.search.cell_search``). The exhaustive
sweep is ``sampler = grid, pruner = none, finalists = all`` — every configuration on every seed —
and is the policy of a space without a ``[search]`` table. Experiments are named here: the
exhaustive sweep ``<space>-<settings hash>``, any other policy ``<space>-<hash of settings and
policy>`` (as before this module existed, so databases written earlier keep their names).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from experiments import PACKAGE_DIR
from synth.cliutil import parse_int_list, read_toml
from synth.errors import SynthError
from synth.params import PATH, TABLE, TEXT, Interval, Param, check_values, checked, instance, optional

from ..models import encoders, scales
from ..store.executors import check_slurm_options
from ..models.members import OPTIMIZER_PARAMS
from .pruners import RULE
from ..store.results import canonical, digest
from ..models.train import SETTINGS_PARAMS, TrainSettings

SPACES_DIR = PACKAGE_DIR / "spaces"
SAMPLERS = ("grid", "random", "tpe")
# "halving": synchronous successive halving decided by value (experiments.search.pruners); "asha" is its former
# name (Optuna's asynchronous rule, which decided by report order) and is read as "halving"
PRUNERS = ("none", "halving", "hyperband")
PRUNER_ALIASES = {"asha": "halving"}
SEARCH_PARAMS = {p.name: p for p in (
    Param("sampler", str, "grid", SAMPLERS, "setting", help="which configurations are tried"),
    Param("pruner", str, "none", PRUNERS, "setting", help="which trials stop early"),
    Param("first_rung", int, None, Interval(1, 10**6), "setting", optional=True,
          help="epoch of the first pruning rung (then x3, x9, ...); default: 9 % of the epochs (plan.FIRST_RUNG_SHARE)"),
    Param("trials", int, None, Interval(1, 10**6), "setting", optional=True,
          help="trials per (dataset, encoder) for random/tpe"),
    Param("finalists", int, 3, Interval(1, 10**6), "setting", optional=True,
          help="configurations retrained on every seed of --seeds (none: all, the exhaustive sweep)"),
    Param("race", bool, False, None, "setting",
          help="finalists race seed by seed; one clearly behind the leader stops (see search.race_survivors)"),
    Param("transfer_from", str, None, None, "setting", optional=True,
          help="an experiment in the same database whose searches start this one (experiments.search.transfer)"),
    Param("transfer_top", int, 3, Interval(1, 1000), "setting",
          help="transfer: the best this many configurations of each source dataset are tried first"),
)}
TRANSFER_KEYS = ("transfer_from", "transfer_datasets", "transfer_top")


# ----------------------------------------------------------------------------- search policy
@dataclass(frozen=True)
class SearchPolicy:
    sampler: str = "grid"
    pruner: str = "none"
    first_rung: int | None = None  # None: plan.FIRST_RUNG_SHARE of the epochs (chosen from measured curves)
    trials: int | None = None
    finalists: int | None = 3  # None: every configuration tried is a finalist
    race: bool = False
    search_seeds: tuple = (0,)
    transfer_from: str | None = None  # experiments.search.transfer: earlier searches' best configurations first
    transfer_datasets: tuple = ()
    transfer_top: int = 3

    def __post_init__(self):
        if isinstance(self.pruner, str):
            object.__setattr__(self, "pruner", PRUNER_ALIASES.get(self.pruner, self.pruner))
        for name, param in SEARCH_PARAMS.items():
            object.__setattr__(self, name, param.check(getattr(self, name), "search"))
        if self.sampler == "grid" and self.trials is not None:
            raise SynthError("search: trials is for the random and tpe samplers; grid tries every configuration")
        if self.sampler != "grid" and self.trials is None:
            raise SynthError(f"search: the {self.sampler} sampler needs trials N")
        seeds = self.search_seeds
        if not isinstance(seeds, (tuple, list)) or not seeds or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds):
            raise SynthError("search: search_seeds must be a non-empty list of integers in [0, 2^32)")
        object.__setattr__(self, "search_seeds", tuple(sorted(set(int(s) for s in seeds))))
        if self.transfer_from is not None and not self.transfer_from.strip():
            raise SynthError("search: transfer_from '' names no experiment")
        names = self.transfer_datasets
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) and n for n in names):
            raise SynthError("search: transfer_datasets must be a list of dataset names")
        object.__setattr__(self, "transfer_datasets", tuple(dict.fromkeys(names)))
        if (self.transfer_from is None) != (not self.transfer_datasets):
            raise SynthError("search: transfer_from (an experiment) and transfer_datasets (its datasets) go together")
        if self.transfer_from is not None and self.sampler == "grid":
            raise SynthError("search: transfer orders the first trials of the random or tpe sampler; grid tries every "
                             "configuration anyway")

    @classmethod
    def exhaustive(cls) -> "SearchPolicy":
        """Every configuration of the grid on every training seed: no decision is made on any run."""
        return cls(finalists=None)

    @property
    def is_exhaustive(self) -> bool:
        """Grid, no pruner, every configuration a finalist: nothing is decided, so no search seeds."""
        return self.sampler == "grid" and self.pruner == "none" and self.finalists is None

    def to_dict(self) -> dict:
        d = {**dataclasses.asdict(self), "search_seeds": list(self.search_seeds),
             "transfer_datasets": list(self.transfer_datasets)}
        if self.transfer_from is None:  # searches without transfer keep the names they had before it existed
            for k in TRANSFER_KEYS:
                d.pop(k)
        return d

    def n_trials(self, n_configs: int) -> int:
        """Trials per cell: the whole grid, or ``trials`` of it (more would only retrain duplicates)."""
        return n_configs if self.sampler == "grid" else min(self.trials, n_configs)

    def describe(self) -> str:
        if self.is_exhaustive:
            return "exhaustive: every configuration on every seed (sampler grid, pruner none, finalists all)"
        finalists = "all" if self.finalists is None else self.finalists
        transfer = (f" (first: the best {self.transfer_top} of {self.transfer_from} on each of "
                    f"{','.join(self.transfer_datasets)})" if self.transfer_from else "")
        return (f"adaptive search, sampler {self.sampler}{transfer}, pruner {self.pruner}, search seeds "
                f"{','.join(map(str, self.search_seeds))}, {finalists} finalist(s){' racing' if self.race else ''}")


@checked(table=optional(TABLE), flags=optional(TABLE), owner=TEXT, notes=optional(instance(list)))
def policy_from(table: dict, flags: dict | None = None, owner: str = "search", notes: list | None = None) -> SearchPolicy:
    """The policy of a space's [search] table overridden by command-line ``flags``.

    A key of the table that the chosen sampler does not read (``trials`` with ``--sampler grid``) is
    dropped and a line is added to ``notes``; the same key given as a flag is an error. With
    neither a table (None: the space has no [search] table) nor a flag, the exhaustive sweep; an
    empty table means the search's defaults."""
    flags = dict(flags or {})
    if table is None and not flags:
        return SearchPolicy.exhaustive()
    table = table or {}
    for where, values in ((owner, table), ("flags", flags)):
        unknown = set(values) - set(SEARCH_PARAMS) - {"search_seeds", "transfer_datasets"}
        if unknown:
            raise SynthError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: "
                             f"{', '.join(sorted(SEARCH_PARAMS) + ['search_seeds', 'transfer_datasets'])}")
    values = {**table, **flags}
    # trials is the one key a sampler may not read: from the table it is dropped with a note, asked
    # for as a flag it is an error (SearchPolicy refuses it)
    if values.get("sampler", "grid") == "grid" and "trials" in table and "trials" not in flags:
        values.pop("trials")
        if notes is not None:
            notes.append(f"note: {owner} trials = {table['trials']!r} is dropped: the grid sampler does not use it")
    # first_rung is read by a pruner only; as with trials, dropped with a note from the table, an
    # error as a flag (it would rename the experiment for an identical search)
    if PRUNER_ALIASES.get(values.get("pruner"), values.get("pruner", "none")) == "none" and \
            values.get("first_rung") is not None:
        if "first_rung" in flags:
            raise SynthError("first_rung (--first-rung) is the first rung of a pruner; with pruner none nothing is "
                             "pruned: give --pruner halving or hyperband, or leave it out")
        values.pop("first_rung")
        if notes is not None:
            notes.append(f"note: {owner} first_rung = {table['first_rung']!r} is dropped: pruner none prunes nothing")
    if "transfer_top" in flags and not values.get("transfer_from"):
        raise SynthError("transfer_top (--transfer-top) counts the configurations taken from --transfer-from; give "
                         "--transfer-from and --transfer-datasets, or leave it out")
    if values.get("finalists") == "all":
        values["finalists"] = None
    seeds = values.pop("search_seeds", [0])
    if isinstance(seeds, str):
        seeds = parse_int_list(seeds, "search seeds")
    elif not isinstance(seeds, list):
        raise SynthError(f"{owner}: search_seeds must be a list of non-negative integers or a range like '0-2'")
    try:
        return SearchPolicy(**values, search_seeds=tuple(seeds))
    except SynthError as e:
        raise SynthError(f"{owner}: {e}") from None


# ----------------------------------------------------------------------------- spaces
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
    search: dict | None = None  # the [search] table (None: absent): the default search policy
    executor: dict = field(default_factory=dict)  # the [executor] table: SLURM options

    @property
    def experiment(self) -> str:
        """The name of this space's exhaustive sweep (see ``experiment_name``)."""
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
                h = canonical(c)
                if h not in seen:
                    seen.add(h)
                    out.append(c)
        return out

    def check_for(self, encoder_names) -> None:
        """Check every [grid] value against each requested encoder it reaches (one line on the first bad one)."""
        for e in encoder_names:
            params = _any_network_params(e)
            for k, values in self.grid.items():
                if k in params and k not in self.per_encoder.get(e, {}):
                    for x in values:
                        params[k].check(x, f"space {self.name} [grid] for {e}")

    def to_dict(self) -> dict:
        """Plain data (for jobs sent to workers)."""
        return {"name": self.name, "settings": self.settings.to_dict(), "grid": self.grid,
                "per_encoder": self.per_encoder, "search": self.search}

    @classmethod
    def from_dict(cls, d: dict) -> "Space":
        return cls(d["name"], TrainSettings(**d["settings"]), d["grid"], d["per_encoder"], "", d["search"])


def experiment_name(space: Space, policy: SearchPolicy | None = None) -> str:
    """``<space>-<8 hex digits>``: the hash of the settings for the exhaustive sweep, of the settings
    and the policy for any other (the policy then picks the final rows)."""
    if policy is None or policy.is_exhaustive:
        return f"{space.name}-{digest(space.settings.to_dict())[:8]}"
    # "repeats": searches from before repeats were answered (search.CellSearch) ran other trials;
    # "rungs": searches from before rung decisions were made by value (experiments.search.pruners) chose
    # other configurations, so they are other experiments and never resumed or pooled with these
    key = {"settings": space.settings.to_dict(), "search": policy.to_dict(), "repeats": "answered",
           "rungs": RULE}
    return f"{space.name}-{digest(key)[:8]}"


@checked(name_or_path=PATH)
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
    has_search = "search" in raw
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

    def lists(table, where, owners, every: bool):
        out = {}
        for k, v in table.items():
            v = v if isinstance(v, list) else [v]
            if not v:
                raise SynthError(f"{path}: empty grid for {k!r} in {where}")
            applies = [e for e in owners if k in per_encoder_params[e]]
            if not applies:
                raise SynthError(f"{path}: unknown hyper-parameter {k!r} in {where}")
            for x in v:  # a value valid for no encoder it reaches is refused now; see Space.check_for
                errors = []
                for e in applies:
                    try:
                        per_encoder_params[e][k].check(x, f"{path} {where} for {e}")
                    except SynthError as err:
                        errors.append(err)
                if errors and (every or len(errors) == len(applies)):
                    raise errors[0]
            out[k] = v
        return out

    grid_table = {k: v for k, v in tables["grid"].items() if not scales.is_physical(k)}
    physical = {k: v for k, v in tables["grid"].items() if scales.is_physical(k)}
    grid = lists(grid_table, "[grid]", encoders.available(), every=False)
    own_tables = {}
    for enc, table in tables["encoders"].items():
        if not isinstance(table, dict):
            raise SynthError(f"{path}: [encoders.{enc}] must be a table")
        own_tables[encoders.canonical_name(enc)] = table
    per_encoder = {}
    for name in encoders.available():
        table = _with_physical(name, own_tables.get(name), physical, f"{path} [encoders.{name}]")
        if table is not None:
            per_encoder[name] = lists(table, f"[encoders.{name}]", [name], every=True)
    search = dict(tables["search"]) if has_search else None
    policy_from(search, owner=f"{path} [search]")  # checked now, used when a study asks for it
    executor = check_slurm_options(tables["executor"], f"{path} [executor]")
    return Space(path.stem, settings, grid, per_encoder, str(raw.get("description", "")), search, executor)


def _with_physical(encoder: str, own: dict | None, physical: dict, where: str) -> dict | None:
    """An encoder's table with physical scales (``min_wavelength_deg`` ...; experiments.models.scales) in its
    native unit. A [grid] physical key reaches every encoder that declares that length, unless the
    encoder's own table sets it (natively or physically); None: no table for this encoder."""
    declared = scales.scale_params(encoder)
    own = dict(own or {})
    for key, values in physical.items():
        length = scales.parse_physical(key)[0]
        if length in declared and declared[length] not in own and not any(
                scales.parse_physical(k) and scales.parse_physical(k)[0] == length for k in own):
            own[key] = values
    if not own:
        return None
    return scales.native_grid(encoder, own, where)


def check_against_data(space: Space, encoder_names, n_train: int) -> None:
    """Checks that need the data, done before any work: rbf draws its anchors from the training
    points without replacement, so it cannot have more anchors than the smallest training split."""
    if "rbf" not in encoder_names:
        return
    default = encoders.spec("rbf").position_defaults["num_anchors"]
    for c in space.configs("rbf"):
        if c.get("num_anchors", default) > n_train:
            raise SynthError(f"rbf: num_anchors = {c.get('num_anchors', default)} is more than the {n_train} training "
                             "points of the smallest dataset (anchors are drawn from them)")
