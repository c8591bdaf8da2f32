"""Bad inputs, round 5, item 8: every public name of docs/api.md refuses wrong arguments with one
SynthError line, never a traceback from deep inside, never a silently wrong result.

The public API declares its arguments once (``synth.params.checked``, as scikit-learn's
``validate_params``); this file checks that every documented callable is covered, then calls each with
one argument at a time replaced by a hostile value (None, a string, 2.7, NaN, -1, True, [], {}, an
object, a duplicated tuple): each call either works or raises SynthError."""

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import ONE_CONFIG
from synth import SynthError

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = [None, "x", "", 2.7, math.nan, -1, True, [], {}, object(), ("U1", "U1")]


def documented(faces: bool = False):
    """[(module, name, methods)] of docs/api.md's tables: the modules' (or, with ``faces``, the
    package faces'). Getting each name imports it."""
    import importlib

    out = []
    for line in (ROOT / "docs" / "api.md").read_text().splitlines():
        m = re.match(r"\| `([\w.]+)`( \([\w ]+\))? \| (.*) \|$", line)
        if not m or m.group(1) == "module" or (m.group(2) == " (face)") != faces:
            continue
        module = importlib.import_module(m.group(1))
        for name, methods in re.findall(r"`(\w+)`(?: \(([^)]*)\))?", m.group(3)):
            out.append((module, name, re.findall(r"`(\w+)`", methods)))
    return out


def callables():
    """{qualified name: the callable whose arguments are declared} of every documented function,
    class and method."""
    out = {}
    for module, name, methods in documented():
        obj = getattr(module, name)
        if inspect.isclass(obj):
            out[f"{module.__name__}.{name}"] = obj
            for meth in methods:
                if callable(getattr(obj, meth)):
                    out[f"{module.__name__}.{name}.{meth}"] = getattr(obj, meth)
        elif callable(obj):
            out[f"{module.__name__}.{name}"] = obj
    return out


def test_every_name_of_a_package_face_is_the_documented_object():
    """The faces (experiments.models, .search, ...) re-export, lazily, the objects of the module table."""
    by_name = {}
    for module, name, _ in documented():
        by_name.setdefault(name, []).append(getattr(module, name))
    faces = documented(faces=True)
    assert {m.__name__ for m, _, _ in faces} == {f"experiments.{p}" for p in ("models", "store", "search", "report",
                                                                              "ablate")}
    for module, name, _ in faces:
        obj = getattr(module, name)
        assert name in module.__all__ and (name in ("Param", "Interval", "ExecutorOptions", "Table8", "build_table8",
                                                    "main_report") or any(obj is o for o in by_name[name])), name


def test_the_old_flat_module_names_still_import_with_a_warning():
    import importlib
    import sys
    import warnings

    import experiments

    for old, new in experiments.MOVED.items():
        sys.modules.pop(f"experiments.{old}", None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(f"experiments.{old}")
        assert module is importlib.import_module(f"experiments.{new}"), old
        assert [str(w.message).split(" (")[0] for w in caught if w.category is FutureWarning] == \
            [f"experiments.{old} moved to experiments.{new}"], old
    from experiments.report import main_report  # the old module experiments.report is a package now

    assert main_report is importlib.import_module("experiments.report.table8").main_report


# classes that users get from a documented function, not by calling them (docs/api.md says which):
# their constructors are internal; the function that makes them checks its arguments
MADE_BY = {"experiments.search.space.Space": "load_space", "experiments.search.study.Study": "Study.build",
           "experiments.ablate.ablation.Ablation": "Ablation.build", "experiments.models.encoders.EncoderSpec": "you, checked by register",
           "experiments.models.encodings.PositionEncoder": "you: a plugin's encoding subclasses it",
           "experiments.report.stats.Estimate": "difference, mean, pool", "experiments.report.stats.Judgement": "judge"}


def _declared(obj) -> set:
    """The arguments ``obj`` checks: declared with ``checked``, or (a dataclass) every field, checked
    in ``__post_init__`` against its ``Param`` declarations."""
    import dataclasses

    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj) and "__post_init__" in vars(obj):
            return {f.name for f in dataclasses.fields(obj)}
        obj = obj.__init__
    return set(getattr(obj, "constraints", {}))


def test_every_documented_callable_declares_every_argument():
    missing = {}
    api = (ROOT / "docs" / "api.md").read_text()
    for name, maker in MADE_BY.items():
        assert f"`{name.rsplit('.', 1)[1]}` (made by {maker}" in api, name
    for name, obj in callables().items():
        if name in MADE_BY:
            continue
        params = [p for p, v in inspect.signature(obj).parameters.items()
                  if p not in ("self", "cls", "echo") and v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
        undeclared = [p for p in params if p not in _declared(obj)]
        if undeclared:
            missing[name] = undeclared
    assert not missing, missing


ABLATION = """
description = "tiny"
datasets = ["tiny"]
encoders = ["xyz"]
seeds = "0"
data_seeds = "0"
space = "{space}"

[factor]
name = "tilt"
levels = [0.0, 30.0]
reference = 0.0

[hold]
mode = "fixed"
values = {{ lr = 0.01, hidden_dim = 8, num_filts = 8 }}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Cheap, valid values for every documented callable's arguments."""
    from experiments.ablate import ablation
    from experiments.report import reference, table8 as report, stats
    from experiments.store import results
    from experiments.search import space, study
    from experiments.models import train
    from synth import datasets, export

    tmp = tmp_path_factory.mktemp("api")
    w = {"tmp": tmp}
    tiny = datasets.Recipe(name="tiny", n_classes=5, samples_per_class=40)
    datasets.register(tiny, overwrite=True)
    w["ds"] = datasets.generate("U1", 0)
    w["tiny"] = datasets.generate(tiny, 0)
    w["npz"] = datasets.save(w["ds"], tmp / "d")
    (w["csv"],) = export.export([w["ds"]], tmp / "e")
    (tmp / "tiny.toml").write_text(ONE_CONFIG.format(epochs=1))
    (tmp / "abl.toml").write_text(ABLATION.format(space=tmp / "tiny.toml"))
    w["store"] = results.ResultsStore(tmp / "r.sqlite")
    w["space"] = space.load_space(str(tmp / "tiny.toml"))
    w["study"] = study.Study.build(space=str(tmp / "tiny.toml"), datasets="tiny", encoders="xyz", seeds="0",
                                   db=tmp / "s.sqlite", progress=False)
    w["abl"] = ablation.Ablation.build(tmp / "abl.toml", db=tmp / "a.sqlite", progress=False)
    w["ref"] = reference.load("fair_quick")
    w["est"] = stats.difference({(0, 0): 50.0, (1, 0): 51.0}, {(0, 0): 49.0, (1, 0): 50.5})
    w["settings"] = train.TrainSettings(epochs=1, batch_size=256)
    w["t"] = report.Table8([], ["xyz", "sphereM+"], [], target="sphereM+")
    from experiments.ablate.report import bayes_by_level

    w["ceil"] = bayes_by_level(w["abl"])
    return w


def good_calls(w):
    """{qualified name: (callable, {argument: a valid value})}."""
    from experiments.ablate import ablation, report as ablation_report
    from experiments.models import encoders, scales, train
    from experiments.report import importance, reference, stats, summary, tables
    from experiments.search import race, selection, space, transfer
    from synth import bayes, datasets, draws, export, vmf
    from synth import torch as synth_torch

    ds, tmp, ref = w["ds"], w["tmp"], w["ref"]
    test = {"lonlat": ds["test_lonlat"][:10], "centers_lonlat": ds["centers_lonlat"], "kappa": ds["kappa"]}
    top1 = {(0, 0): 50.0, (1, 0): 51.0}
    table8 = ROOT / "results" / "table8.csv"
    calls = {
        "synth.datasets.Recipe": (datasets.Recipe, {"name": "r1", "n_classes": 5, "samples_per_class": 20}),
        "synth.datasets.user_recipe": (datasets.user_recipe, {"spec": {"name": "r2", "n_classes": 5,
                                                                        "samples_per_class": 20},
                                                               "allow_paper_name": False}),
        "synth.datasets.generate": (datasets.generate, {"name_or_recipe": "U1", "seed": 0}),
        "synth.datasets.load": (datasets.load, {"path": w["npz"], "verify": True}),
        "synth.datasets.save": (datasets.save, {"ds": ds, "folder": tmp / "saved"}),
        "synth.datasets.load_many": (datasets.load_many, {"names": ["U1"], "seeds": [0], "folder": None}),
        "synth.datasets.get_recipe": (datasets.get_recipe, {"name": "U1"}),
        "synth.datasets.describe": (datasets.describe, {"name": "U1"}),
        "synth.datasets.tilt_matrix": (datasets.tilt_matrix, {"tilt_deg": 10.0}),
        "synth.datasets.original_frame": (datasets.original_frame, {"recipe": ds.recipe, "lonlat": test["lonlat"]}),
        "synth.draws.Draws": (draws.Draws, {"names": ["U1"], "seeds": [0], "folder": None}),
        "synth.vmf.sample": (vmf.sample, {"mu": np.array([0, 0, 1.0]), "kappa": 2.0, "n": 5, "seed": 0, "threads": 1}),
        "synth.vmf.log_density": (vmf.log_density, {"xyz": np.array([[0, 0, 1.0]]), "mu": np.array([0, 0, 1.0]),
                                                    "kappa": 2.0}),
        "synth.vmf.log_normalizer": (vmf.log_normalizer, {"kappa": 2.0}),
        "synth.bayes.posterior": (bayes.posterior, {**test, "classes": None}),
        "synth.bayes.log_posterior_scores": (bayes.log_posterior_scores, test),
        "synth.bayes.evaluate": (bayes.evaluate, {"ds": ds, "split": "test", "band_kind": "equal-angle",
                                                  "band_width": 10.0, "n_bands": 18, "band_lat": None}),
        "synth.bayes.true_ranks": (bayes.true_ranks, {**test, "labels": ds["test_label"][:10]}),
        "synth.export.export": (export.export, {"dss": [ds], "out": tmp / "x", "formats": "csv"}),
        "synth.export.read": (export.read, {"path": w["csv"]}),
        "synth.export.table": (export.table, {"ds": ds}),
        "synth.export.parse_formats": (export.parse_formats, {"text": "csv"}),
        "synth.torch.LocationDataset": (synth_torch.LocationDataset, {"source": "U1", "split": "val", "seed": 0,
                                                                      "dtype": torch.float32}),
        "synth.torch.resolve": (synth_torch.resolve, {"source": "U1", "seed": 0}),
        "experiments.models.encoders.position_encoder": (encoders.position_encoder, {"name": "xyz", "rng": None}),
        "experiments.models.encoders.build": (encoders.build, {"name": "xyz", "num_classes": 5, "rng": None}),
        "experiments.models.encoders.hyperparameters": (encoders.hyperparameters, {"name": "xyz", "network": None,
                                                                           "with_network": True}),
        "experiments.models.encoders.spec": (encoders.spec, {"name": "xyz"}),
        "experiments.models.encoders.register": (encoders.register, {"encoder": encoders.spec("xyz")}),
        "experiments.models.encoders.load_plugin": (encoders.load_plugin, {"path": tmp / "no_such_plugin.py"}),
        "experiments.models.train.TrainSettings": (train.TrainSettings, {"epochs": 1}),
        "experiments.models.train.train_population": (train.train_population, {
            "data": w["tiny"], "encoder": "xyz", "configs": [{"lr": 0.01, "hidden_dim": 8, "num_filts": 8}],
            "settings": w["settings"], "device": "cpu", "progress": None, "return_model": False, "on_epoch": None}),
        "experiments.search.space.load_space": (space.load_space, {"name_or_path": "smoke"}),
        "experiments.search.space.SearchPolicy": (space.SearchPolicy, {"sampler": "grid"}),
        "experiments.search.space.policy_from": (space.policy_from, {"table": {}, "flags": None, "owner": "search",
                                                              "notes": None}),
        "experiments.search.study.Study.build": (type(w["study"]).build, {
            "space": str(tmp / "tiny.toml"), "datasets": "tiny", "encoders": "xyz", "seeds": "0", "data_seeds": "0",
            "db": tmp / "b.sqlite", "progress": False}),
        "experiments.search.study.Study.search": (w["study"].search, {"store": w["store"], "runner": None, "cost": None}),
        "experiments.search.study.Study.other_draws": (w["study"].other_draws, {"store": w["store"], "runner": None,
                                                                          "cost": None}),
        "experiments.store.results.ResultsStore": (type(w["store"]), {"path": tmp / "r2.sqlite", "readonly": False,
                                                                 "lock_timeout": 1.0}),
        "experiments.store.results.ResultsStore.rows": (w["store"].rows, {"experiment": "x", "stage": "final"}),
        "experiments.store.results.ResultsStore.write_population": (w["store"].write_population, {"rows": []}),
        "experiments.search.selection.choose": (selection.choose, {"rows": []}),
        "experiments.report.stats.difference": (stats.difference, {"a": top1, "b": {(0, 0): 49.0, (1, 0): 50.5}}),
        "experiments.report.stats.mean": (stats.mean, {"a": top1}),
        "experiments.report.stats.pool": (stats.pool, {"estimates": [w["est"]]}),
        "experiments.report.stats.judge": (stats.judge, {"estimates": {"grid": w["est"]}, "level": 0.95}),
        "experiments.report.stats.verdict": (stats.verdict, {"ci": (0.1, 0.2)}),
        "experiments.report.stats.detectable": (stats.detectable, {"se": 0.5, "df": 4.0, "k": 1, "level": 0.95,
                                                            "power": 0.8}),
        "experiments.report.stats.draws_needed": (stats.draws_needed, {"sd": 1.0, "diff": 0.5, "k": 1, "level": 0.95,
                                                                "power": 0.8, "at_most": 1000}),
        "experiments.report.stats.error_reduction": (stats.error_reduction, {"top1_new": 60.0, "top1_best": 50.0}),
        "experiments.report.stats.er_trend": (stats.er_trend, {"n_mu": [1, 2, 3, 4], "er": [1.0, 2.0, 3.0, 4.0],
                                                        "er_reps": [np.array([1.0, 1.1])] * 4, "level": 0.95}),
        "experiments.search.race.race_survivors": (race.race_survivors, {
            "order": ["a", "b"], "runs": {"a": {0: (50.0, False)}, "b": {0: (40.0, False)}}, "seeds": [0, 1],
            "n_val": 500}),
        "experiments.report.tables.compare_tables": (tables.compare_tables, {"path_a": table8, "path_b": table8}),
        "experiments.report.tables.read_table8_csv": (tables.read_table8_csv, {"path": table8}),
        "experiments.models.scales.to_native": (scales.to_native, {"encoder": "sphereM+", "key": "min_wavelength_deg",
                                                            "value": 2.0, "hparams": None}),
        "experiments.models.scales.to_physical": (scales.to_physical, {"encoder": "sphereM+", "native": "min_radius",
                                                                "value": 1.0, "unit": "deg", "hparams": None}),
        "experiments.models.scales.scale_params": (scales.scale_params, {"encoder": "sphereM+"}),
        "experiments.models.scales.native_grid": (scales.native_grid, {"encoder": "sphereM+",
                                                                "table": {"min_wavelength_deg": [2.0]},
                                                                "where": "test"}),
        "experiments.ablate.ablation.Ablation.build": (type(w["abl"]).build, {"path": tmp / "abl.toml", "db": tmp / "a2.sqlite",
                                                                       "progress": False}),
        "experiments.ablate.ablation.Ablation.cells": (w["abl"].cells, {"store": w["store"], "diverged": None, "bands": None}),
        "experiments.ablate.ablation.Ablation.experiment": (w["abl"].experiment, {"level": 30.0}),
        "experiments.ablate.ablation.Ablation.config": (w["abl"].config, {"dataset": "tiny", "encoder": "xyz", "level": 30.0,
                                                                   "chosen": None}),
        "experiments.ablate.ablation.derived_recipe": (ablation.derived_recipe, {"base": w["tiny"].recipe,
                                                                          "factor": w["abl"].factor, "level": 30.0}),
        "experiments.ablate.report.write_report": (ablation_report.write_report, {"abl": w["abl"], "out": tmp / "ar",
                                                                                    "figures": None}),
        "experiments.ablate.report.records": (ablation_report.records, {"abl": w["abl"], "cells": {}, "ceil": w["ceil"],
                                                                          "diverged": frozenset()}),
        "experiments.ablate.report.pooled_records": (ablation_report.pooled_records, {"abl": w["abl"], "cells": {}}),
        "experiments.ablate.report.band_records": (ablation_report.band_records, {"abl": w["abl"], "cells": {},
                                                                                    "ceil": w["ceil"]}),
        "experiments.ablate.report.bayes_by_level": (ablation_report.bayes_by_level, {"abl": w["abl"]}),
        "experiments.ablate.report.levels_figure": (ablation_report.levels_figure, {"abl": w["abl"], "cells": {},
                                                                                      "ceil": w["ceil"]}),
        "experiments.ablate.report.bands_figure": (ablation_report.bands_figure, {"abl": w["abl"], "band_recs": []}),
        "experiments.report.summary.summary": (summary.summary, {"t": w["t"]}),
        "experiments.report.summary.pooled": (summary.pooled, {"t": w["t"]}),
        "experiments.report.summary.pooled_section": (summary.pooled_section, {"t": w["t"], "title": "x"}),
        "experiments.report.summary.power_records": (summary.power_records, {
            "rows": reference.final_rows(ref, ref["experiment"]), "target": "sphereM+", "baseline": None,
            "diffs": (0.5,), "datasets": ["U1"]}),
        "experiments.report.importance.report": (importance.report, {"db": tmp / "r.sqlite", "out": tmp / "imp",
                                                              "figures": None, "experiment": None, "datasets": None,
                                                              "encoders": None, "min_trials": 20}),
        "experiments.report.importance.trial_scores": (importance.trial_scores, {"rows": [], "min_trials": 20}),
        "experiments.report.importance.study_of": (importance.study_of, {"scores": []}),
        "experiments.report.importance.importances": (importance.importances, {"study": None}),
        "experiments.search.transfer.warm_start": (transfer.warm_start, {"store": w["store"], "policy": space.SearchPolicy(),
                                                                  "dataset": "U1", "encoder": "xyz",
                                                                  "space": w["space"]}),
        "experiments.report.reference.build": (reference.build, {"store": w["store"], "experiment": "x", "name": "n",
                                                          "machine": None}),
        "experiments.report.reference.write": (reference.write, {"ref": ref, "path": tmp / "w.json"}),
        "experiments.report.reference.load": (reference.load, {"name_or_path": "fair_quick"}),
        "experiments.report.reference.final_rows": (reference.final_rows, {"ref": ref, "experiment": ref["experiment"]}),
        "experiments.report.reference.check_protocol": (reference.check_protocol, {"ref": ref, "study": w["study"]}),
        "experiments.report.reference.source_datasets": (reference.source_datasets, {"ref": ref}),
        "experiments.report.reference.policy_flags": (reference.policy_flags, {"policy": ref["policy"]}),
    }
    return calls


def test_every_documented_callable_with_arguments_has_a_good_call(world):
    calls = good_calls(world)
    for name, obj in callables().items():
        params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls", "echo")]
        if params and name not in MADE_BY:
            assert name in calls, name


def test_a_hostile_argument_is_a_synth_error_or_works(world, tmp_path, monkeypatch):
    """Each documented callable, each argument replaced by each hostile value in turn: it works or it
    raises SynthError; any other exception is listed."""
    monkeypatch.chdir(tmp_path)  # a hostile "x" is a path relative to here
    failures = []
    for name, (fn, good) in good_calls(world).items():
        for arg in good:
            for bad in HOSTILE:
                try:
                    fn(**{**good, arg: bad})
                except SynthError as e:
                    assert "\n" not in str(e), (name, arg, bad, str(e))
                except Exception as e:  # noqa: BLE001 - what this test looks for
                    failures.append(f"{name}({arg}={bad!r}): {type(e).__name__}: {str(e)[:80]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("call, match", [
    ("vmf.sample(np.array([0, 0, 1.0]), 2.0, n=2.7)", "n = 2.7 is not valid"),
    ("vmf.sample(np.array([0, 0, 1.0]), 2.0, n=3, seed=1.5)", "seed = 1.5 is not valid"),
    ("vmf.sample(np.array([0, 0, math.nan]), 2.0, n=3)", "mu = "),
    ("vmf.log_normalizer(-1)", "kappa = -1 is not valid"),
    ("datasets.tilt_matrix(math.nan)", "tilt_deg = nan is not valid"),
    ("ResultsStore(tmp / 'x.sqlite', lock_timeout=-1)", "lock_timeout = -1 is not valid"),
    ("Study.build(space='smoke', datasets=('U1', 'U1'), encoders='xyz', db=tmp / 'y.sqlite')", "datasets = "),
    ("Study.build(space='smoke', datasets='U1', encoders=['xyz', 'xyz'], db=tmp / 'y.sqlite')", "encoders = "),
    ("Study.build(space='smoke', datasets='U1', encoders='xyz', resume='no', db=tmp / 'y.sqlite')", "resume = 'no'"),
    ("Study.build(space='smoke', datasets='U1', encoders='xyz', seeds=[0, 0], db=tmp / 'y.sqlite')", "seeds = "),
    ("reference.write(None, tmp / 'null.json')", "ref = None is not valid"),
    ("reference.write({}, tmp / 'empty.json')", "ref = {} is not valid: expected a reference"),
    ("encoders.load_plugin(None)", "path = None is not valid"),
    ("stats.detectable(0.5, 4, k=0)", "k = 0 is not valid"),
    ("LocationDataset('U1', dtype='float32')", "dtype = 'float32' is not valid"),
])
def test_what_was_silently_wrong_is_refused(tmp_path, call, match):
    from experiments.models import encoders
    from experiments.report import reference, stats
    from experiments.store.results import ResultsStore
    from experiments.search.study import Study
    from synth import datasets, vmf
    from synth.torch import LocationDataset

    tmp = tmp_path
    with pytest.raises(SynthError, match=re.escape(match)):
        eval(call)
    assert not (tmp / "null.json").exists() and not (tmp / "empty.json").exists()
