"""One declared study, one search path, no import cycles; what the user
asks for is what runs."""

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from helpers import TINY_SPACE, sweep
from synth import SynthError

ROOT = Path(__file__).parent.parent
SPACE = TINY_SPACE


@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(SPACE)
    return p


# ------------------------------------------------------------------ architecture
def _imports(path: Path, package: str) -> set:
    """Modules of synth/ and experiments/ that ``path`` imports, at any depth (lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import x` names a module
    return out


def _graph() -> dict:
    modules = {}
    for pkg in ("synth", "experiments"):
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if f.stem == "__init__" else parts)
            modules[name] = f
    graph = {}
    for name, f in modules.items():
        package = name if f.stem == "__init__" else name.rsplit(".", 1)[0]
        graph[name] = {m for m in _imports(f, package) if m in modules and m != name}
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_in_synth_and_experiments():
    graph = _graph()
    assert "experiments.search.cell_search" in graph and graph["experiments.search.study"]  # the graph is really built
    assert _cycles(graph) == []


# the layers of experiments/, bottom first: a module imports only from its own package and those before it
LAYERS = ("models", "store", "search", "report", "ablate", "cli")


def _layer(module: str):
    """The layer index of an experiments module; -1 for the package's own base (its __init__, _faces)."""
    parts = module.split(".")
    if parts[0] != "experiments":
        return None
    if len(parts) == 1 or parts[1] in ("_faces",):
        return -1
    return LAYERS.index("cli" if parts[1] in ("cli", "__main__") else parts[1])


def test_no_module_imports_from_a_layer_above_its_own():
    graph = _graph()
    assert {m.split(".")[1] for m in graph if m.startswith("experiments.")} >= set(LAYERS)  # really built
    above = sorted((m, d) for m, deps in graph.items() for d in deps
                   if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m))
    assert above == []


def test_the_layer_rule_finds_an_import_from_above():
    graph = {"experiments.models.train": {"experiments.search.plan"}, "experiments.search.plan": set()}
    assert [(m, d) for m, deps in graph.items() for d in deps if _layer(d) > _layer(m)] == \
        [("experiments.models.train", "experiments.search.plan")]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_executors_import_no_module_that_sends_them_work():
    graph = _graph()
    assert not graph["experiments.store.executors"] & {"experiments.search.cell_search", "experiments.search.populations",
                                                 "experiments.search.study", "experiments.search.space"}


def test_no_module_over_500_lines():
    long = {f.name: n for pkg in ("synth", "experiments") for f in (ROOT / pkg).rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 520}
    assert long == {}


# ------------------------------------------------------------------ one pipeline
def test_the_python_study_writes_the_rows_the_cli_writes(tmp_path, space_file):
    from experiments.search.study import Study

    cli_db, py_db = tmp_path / "cli.sqlite", tmp_path / "py.sqlite"
    common = ["--datasets", "U1", "--encoders", "grid", "--space", str(space_file), "--seeds", "0-1",
              "--data-seeds", "0-1"]
    assert sweep(*common, "--db", str(cli_db)).returncode == 0
    study = Study.build(space=str(space_file), datasets="U1", encoders="grid", seeds="0-1", data_seeds="0-1",
                        device="cpu", db=py_db, progress=False)
    assert "8 member(s) to train" in study.dry_run() and not py_db.exists()
    study.run(echo=lambda line: None)
    cols = "experiment, dataset, data_seed, config_hash, train_seed, stage, val_top1, test_top1, bands"
    get = lambda db: sorted(sqlite3.connect(db).execute(f"SELECT {cols} FROM runs").fetchall())  # noqa: E731
    assert get(cli_db) == get(py_db) and len(get(py_db)) == 8 + 2


def test_bad_study_values_are_one_line_errors_from_python(tmp_path):
    from experiments.search.study import Study

    for kwargs, word in [({"seeds": [1.7]}, "seeds"), ({"max_members": 0}, "max_members = 0"),
                         ({"search": {"search_seeds": [1.7]}}, "search_seeds"), ({"workers": 2.5,
                                                                                 "executor": "local"}, "workers"),
                         ({"lock_timeout": float("nan")}, "lock_timeout = nan")]:
        with pytest.raises(SynthError, match=word):
            Study.build(space="smoke", datasets="U1", encoders="xyz", device="cpu", db=tmp_path / "r.sqlite", **kwargs)
    assert not (tmp_path / "r.sqlite").exists()


# ------------------------------------------------------------------ what the user asks for is what runs
def test_flags_override_the_spaces_search_table_and_say_what_they_dropped(tmp_path):
    # the README's exhaustive command on the paper space was refused: [search] trials = 100 could not be overridden
    r = sweep("--space", "paper", "--datasets", "U1", "--encoders", "xyz", "--seeds", "0", "--sampler", "grid",
              "--pruner", "none", "--db", str(tmp_path / "r.sqlite"), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "trials = 100 is dropped: the grid sampler does not use it" in r.stdout
    assert "sampler grid, pruner none" in r.stdout and not (tmp_path / "r.sqlite").exists()
    r = sweep("--space", "paper", "--datasets", "U1", "--encoders", "xyz", "--sampler", "grid", "--trials", "5",
              "--db", str(tmp_path / "r.sqlite"), "--dry-run")
    assert r.returncode == 2 and "trials" in r.stderr  # asked for explicitly: an error, not a silent drop


def test_grid_values_are_checked_against_the_requested_encoders_only(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SPACE.replace("[grid]\n", "[grid]\nfrequency_num = [64]\n").replace(
        "[encoders.grid]\nfrequency_num = [4]\n", "[encoders.grid]\n"))
    r = sweep("--space", str(p), "--datasets", "U1", "--encoders", "grid", "--db", str(tmp_path / "r.sqlite"),
              "--dry-run")
    assert r.returncode == 0, r.stderr  # 64 is refused by nerf, which was not asked for
    r = sweep("--space", str(p), "--datasets", "U1", "--encoders", "grid,nerf", "--db", str(tmp_path / "r.sqlite"),
              "--dry-run")
    assert r.returncode == 2 and "frequency_num" in r.stderr and "nerf" in r.stderr


def test_an_empty_search_table_turns_the_search_on(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SPACE + "\n[search]\n")
    r = sweep("--space", str(p), "--datasets", "U1", "--encoders", "grid", "--db", str(tmp_path / "r.sqlite"),
              "--dry-run")
    assert r.returncode == 0 and "sampler grid, pruner none, search seeds 0, 3 finalist(s) on seeds" in r.stdout, r.stdout


def test_more_tpe_trials_than_configurations_try_every_configuration_once(tmp_path, space_file):
    db = tmp_path / "r.sqlite"
    r = sweep("--space", str(space_file), "--datasets", "U1", "--encoders", "grid", "--seeds", "0", "--db", str(db),
              "--sampler", "tpe", "--trials", "20", "--finalists", "5")
    assert r.returncode == 0, r.stderr
    assert "20 trials >= its 4 configuration(s): every configuration is tried once" in r.stdout
    assert "5 finalists asked for but only 4 trial(s)" in r.stdout
    hashes = [h for (h,) in sqlite3.connect(db).execute("SELECT config_hash FROM runs WHERE stage = 'search'")]
    assert len(hashes) == len(set(hashes)) == 4


# ------------------------------------------------------------------ what the user asks for is what runs
def test_a_dry_run_of_the_paper_space_over_every_encoder_trains_two_one_epoch_shapes_per_encoder(tmp_path, monkeypatch):
    # it once timed every shape (> 300 s); the cost model now times the smallest and largest shape of
    # each encoder plus one warm-up. Counted as work, not as wall time, so a loaded machine cannot fail it.
    import experiments.search.plan as plan_module
    from experiments.models import encoders as encoder_registry
    from experiments.search.study import Study

    calls = []
    real = plan_module.train_population

    def counting(data, encoder, members, settings, **kw):
        calls.append((encoder, len(members), settings.epochs))
        return real(data, encoder, members, settings, **kw)

    monkeypatch.setattr(plan_module, "train_population", counting)
    monkeypatch.setenv("SPHERE_SYNTH_CACHE", str(tmp_path / "cache"))  # an empty cache: every shape is measured
    # the machine counts as unshared (a busy one would keep its wall-clock costs out of the cache; tested below)
    monkeypatch.setattr(plan_module, "machine_cpu_seconds", lambda: None)
    study = Study.build(space="paper", datasets="U1", encoders="all", seeds="0", device="cpu",
                        db=tmp_path / "r.sqlite", progress=False)
    text = study.dry_run()
    n_encoders = len(encoder_registry.parse_names("all"))
    assert "estimated time" in text and len(study.encoders) == n_encoders
    assert all(members == 1 and epochs == 1 for _, members, epochs in calls)
    per_encoder = {e: sum(c[0] == e for c in calls) for e in study.encoders}
    assert sum(per_encoder.values()) <= 2 * n_encoders + 1  # + the one warm-up
    assert all(1 <= n <= 3 for n in per_encoder.values()), per_encoder
    assert not (tmp_path / "r.sqlite").exists()  # a dry run writes nothing
    # the epoch costs are kept per machine and code version; the next dry run measures none
    calls.clear()
    again = Study.build(space="paper", datasets="U1", encoders="all", seeds="0", device="cpu",
                        db=tmp_path / "r.sqlite", progress=False).dry_run()
    assert calls == [] and again.splitlines()[-1] == text.splitlines()[-1]


def test_many_draws_are_not_built_in_memory_at_once(tmp_path):
    from synth.draws import Draws

    draws = Draws(["U1"], list(range(100_000)))
    draws.verify()  # generated draws: only the recipe is needed before work
    assert draws[("U1", 99_999)].seed == 99_999 and len(draws._cache) <= Draws.CACHE
    for s in range(20):
        draws[("U1", s)]
    assert len(draws._cache) <= Draws.CACHE


def test_a_dry_run_over_the_documented_maximum_of_draws_holds_few_draws_in_memory(tmp_path):
    # --data-seeds 0-99999 built every draw in memory (and then a list scan made it quadratic)
    from experiments.search.study import Study
    from synth.draws import Draws

    r = sweep("--space", "smoke", "--datasets", "U1", "--encoders", "xyz", "--seeds", "0", "--data-seeds", "0-99999",
              "--dry-run", "--db", str(tmp_path / "r.sqlite"))
    assert r.returncode == 0, r.stderr
    assert "on draws 1-99999" in r.stdout
    study = Study.build(space="smoke", datasets="U1", encoders="xyz", seeds="0", data_seeds="0-99999", device="cpu",
                        db=tmp_path / "r.sqlite", progress=False)
    assert "on draws 1-99999" in study.dry_run()
    assert study.draws is not None and len(study.draws._cache) <= Draws.CACHE


def test_the_cost_model_measures_each_encoders_smallest_and_largest_shape_of_a_plan():
    # a fit made from the first population alone saw one shape and modelled every other as equal to it
    import torch

    from experiments.search.plan import CostModel, make_plan, plan_seconds, shape_key
    from experiments.search.space import Space
    from experiments.models.train import TrainSettings
    from synth import datasets

    ds = datasets.generate(datasets.Recipe(name="tiny", n_classes=5, samples_per_class=20, kappa_max=8), 0)
    space = Space("t", TrainSettings(epochs=2, batch_size=64), {"lr": [0.01], "hidden_dim": [8, 64, 256],
                                                                 "num_filts": [8]}, {})
    plan = make_plan(space, ["tiny"], [0], ["xyz"], [0], torch.device("cpu"), {"tiny": "h"}, "t-1", num_classes=5)
    assert len(plan.populations) == 3  # one per shape
    cost = CostModel(space.settings, ds, torch.device("cpu"))
    assert plan_seconds(plan, cost) > 0
    measured = {k[1] for k in cost.measured}
    assert measured == {shape_key(c) for c in (space.configs("xyz")[0], space.configs("xyz")[-1])}


def test_the_estimate_counts_copied_finalists_as_free_and_a_damaged_cost_cache_as_empty(tmp_path):
    """The dry run overestimated several-fold (finalists' search runs counted twice, every
    epoch assumed, one worker); and a cache that cannot be read is re-measured, never fatal."""
    from experiments.search.plan import EpochCosts, run_fraction, search_member_epochs
    from experiments.search.space import SearchPolicy, load_space

    space = load_space("fair_quick")
    policy = SearchPolicy(pruner="none", finalists=2, search_seeds=(0,))
    assert search_member_epochs(space, policy, "grid", [0])["final"] == 0  # seed 0 is copied
    assert search_member_epochs(space, policy, "grid", [0, 1, 2])["final"] == 2 * 2 * 100
    assert 0.4 < run_fraction(space.settings) < 0.7 and run_fraction(space.settings.__class__(patience=None)) == 1.0
    bad = tmp_path / "epoch_costs.json"
    for text in ("{not json", "[1, 2]", '{"k": "x"}', '{"k": -1}'):
        bad.write_text(text)
        cache = EpochCosts(bad)
        assert cache.get("k") is None
    cache.put("k", 0.5)
    assert EpochCosts(bad).get("k") == 0.5


def test_a_cost_measured_on_a_busy_machine_does_not_count_the_time_others_held_the_core():
    """The epoch-cost cache keeps a shape's cost for every later dry run and ETA, so a cost measured
    while a test suite shared the core must not be inflated by it: with one CPU thread the cost is
    the process's own CPU time. A sleep stands in for the time the process was not scheduled."""
    import time
    import torch
    from experiments.search.plan import seconds_of

    def waits():
        time.sleep(0.3)

    def works():  # at least 0.2 s of this process's own CPU time
        start = time.process_time()
        while time.process_time() - start < 0.2:
            pass

    cpu = torch.device("cpu")
    assert seconds_of(waits, cpu, threads=1)[0] < 0.1
    assert seconds_of(works, cpu, threads=1)[0] >= 0.2
    # several threads or a GPU: the CPU time is no measure, so the wall clock stays
    assert seconds_of(waits, cpu, threads=2)[0] >= 0.3
    assert seconds_of(waits, torch.device("cuda"), threads=1)[0] >= 0.3


@pytest.mark.parametrize("kw, word", [
    (dict(datasets=None), "datasets = None"), (dict(datasets=[]), "datasets = []"), (dict(datasets=[1]), "datasets"),
    (dict(encoders=None), "encoders = None"), (dict(encoders=[]), "encoders = []"),
    (dict(search="tpe"), "search = 'tpe'"), (dict(db=None), "db = None"), (dict(db=""), "db = ''"),
    (dict(space=None), "space = None"), (dict(data=3), "data = 3"), (dict(slurm="x"), "slurm = 'x'"),
    (dict(device=None), "device = None"), (dict(executor=None), "executor = None"),
])
def test_the_python_api_checks_its_arguments_as_the_cli_does(kw, word):
    """Each of these ended in a traceback (or, for datasets=[], in dry_run's ValueError)."""
    from experiments.search.study import Study

    with pytest.raises(SynthError, match=re.escape(word)):
        Study.build(**{"space": "smoke", "datasets": "U1", "encoders": "xyz", **kw}, progress=False)


@pytest.mark.parametrize("args, kw, word", [
    ((None,), {}, "path = None is not valid"), ((3,), {}, "path = 3 is not valid"),
    (("experiments/ablations/rotation.toml",), dict(max_members=-1), "max_members = -1"),
    (("experiments/ablations/rotation.toml",), dict(db=None), "db = None"),
])
def test_ablation_build_checks_its_arguments(args, kw, word):
    """Ablation.build(None) was a traceback; max_members=-1 trained nothing and said every run was stored."""
    from experiments.ablate.ablation import Ablation

    with pytest.raises(SynthError, match=re.escape(word)):
        Ablation.build(*args, **kw)


def test_a_several_thread_cost_measured_while_other_processes_used_the_machine_is_not_cached(tmp_path, monkeypatch):
    """With several threads the wall clock is the measure, so a dry run beside a sweep measured an epoch
    3.5x too slow and cached it for every later estimate (seen here: 5.2 s for 2 threads against 2.3 s of
    one thread's CPU time). Such a measurement serves its own run and is not kept. A busy-looping child
    process stands in for the other sweep."""
    import subprocess
    import sys
    import time

    import torch

    from experiments.search import plan

    def waits():
        time.sleep(0.4)

    cpu = torch.device("cpu")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        seconds, shared = plan.seconds_of(waits, cpu, threads=2)
        assert seconds >= 0.4 and shared  # the child used about a core during the 0.4 s
        seconds, shared = plan.seconds_of(waits, cpu, threads=1)
        assert seconds < 0.1 and not shared  # one thread counts its own CPU time: sharing does not inflate it
    finally:
        burner.kill()
        burner.wait()
    from synth import datasets
    from experiments.search.space import Space
    from experiments.models.train import TrainSettings

    ds = datasets.generate(datasets.Recipe(name="tiny", n_classes=5, samples_per_class=20, kappa_max=8), 0)
    space = Space("t", TrainSettings(epochs=1, batch_size=64), {"lr": [0.01], "hidden_dim": [8], "num_filts": [8]}, {})
    config = space.configs("xyz")[0]
    for shared in (True, False):
        monkeypatch.setattr(plan, "seconds_of", lambda work, device, threads, s=shared: (0.25, s))
        cache = plan.EpochCosts(tmp_path / f"costs_{shared}.json")
        cost = plan.CostModel(space.settings, ds, cpu, threads=2, cache=cache)
        assert cost._measure("xyz", config) == 0.25  # used for this run either way
        assert (plan.EpochCosts(tmp_path / f"costs_{shared}.json").table == {}) == shared
