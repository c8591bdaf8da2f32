"""``python -m experiments``: encoders, sweep, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from synth.cliutil import OneLineParser, command_parser, parse_int_list, run_main
from synth.errors import SynthError


def _number(kind, lo, what):
    """An argparse type: ``kind`` (int or float) >= lo, finite."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or v != v or v in (float("inf"), float("-inf")) or v < lo:
            raise argparse.ArgumentTypeError(f"{what} must be {'an integer' if kind is int else 'a number'} >= {lo}, "
                                             f"got {text!r}")
        return v
    return parse


def _parser() -> OneLineParser:
    p, sub = command_parser("python -m experiments", "Train, search and report location encoders.")
    e = sub.add_parser("encoders", help="list the encoders, their dimensions and behaviour at the antimeridian/poles")
    e.add_argument("--params", action="store_true", help="also list every declared hyper-parameter: role, default, "
                   "valid values")
    s = sub.add_parser("sweep", help="train a search space on datasets, storing every result in SQLite")
    s.add_argument("--datasets", default="all", help="comma list (U1,S2.3) or 'all' (default)")
    s.add_argument("--encoders", default="table8", help="comma list, 'table8' (default) or 'all'")
    s.add_argument("--space", default="quick", help="quick (default), paper, or a TOML file")
    s.add_argument("--seeds", default="0-4", help="training seeds: 0-4 (default), 0,3, ...")
    s.add_argument("--data-seeds", default="0", help="dataset draws (default 0): the search runs on the first, "
                   "the configuration chosen there on every draw")
    s.add_argument("--data", type=Path, help="read datasets from this folder (verified); default: generate in memory")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    s.add_argument("--db", type=Path, default=Path("results/results.sqlite"))
    s.add_argument("--mode", default="grid", choices=["grid", "random", "halving"],
                   help="the exhaustive sweep (default), a random subset (--n-random), or successive halving that "
                        "retrains each rung; prefer the adaptive search below")
    g = s.add_argument_group("adaptive search (Optuna); any of these, or a [search] table in the space, turns it on")
    g.add_argument("--sampler", choices=["grid", "random", "tpe"], help="which configurations are tried (default grid)")
    g.add_argument("--pruner", choices=["none", "asha", "hyperband"], help="which trials stop early (default none)")
    g.add_argument("--trials", type=_number(int, 1, "--trials"), help="trials per (dataset, encoder): random, tpe")
    g.add_argument("--finalists", type=int, help="configurations retrained on every seed of --seeds (default 3)")
    g.add_argument("--race", action=argparse.BooleanOptionalAction, default=None,
                   help="finalists race seed by seed: one clearly behind the leader stops (default off; on in "
                        "the paper space)")
    g.add_argument("--search-seeds", help="training seeds of the search itself (default 0)")
    x = s.add_argument_group("where it runs")
    x.add_argument("--executor", default="inline", choices=["inline", "local", "submitit"],
                   help="inline (this process, default), local (--workers processes), submitit (SLURM job array, or "
                        "local subprocesses where there is no sbatch)")
    x.add_argument("--workers", type=int, help="local: worker processes (default: one per CUDA device, else 2); "
                                               "submitit: jobs running at once")
    x.add_argument("--log-dir", type=Path, help="submitit: job logs (default: next to --db, in logs/)")
    x.add_argument("--partition", help="SLURM partition")
    x.add_argument("--gpus-per-job", type=int, help="SLURM GPUs per job")
    x.add_argument("--cpus-per-job", type=int, help="SLURM CPUs per job")
    x.add_argument("--time", type=int, help="SLURM time limit per job, minutes")
    x.add_argument("--array-parallelism", type=int, help="SLURM: jobs of an array running at once")
    x.add_argument("--sbatch-line", action="append", help="a line run in each job before the work (repeatable)")
    s.add_argument("--n-random", type=_number(int, 1, "--n-random"), default=None,
                   help="configurations per encoder for --mode random")
    s.add_argument("--max-members", type=_number(int, 1, "--max-members"), default=None,
                   help="cap on the population size (default: by memory)")
    s.add_argument("--lock-timeout", type=_number(float, 0, "--lock-timeout"), default=600.0,
                   help="seconds to wait for another process's write lock on --db before giving up (default 600)")
    s.add_argument("--resume", action="store_true", help="skip members already stored in the database")
    s.add_argument("--dry-run", action="store_true", help="print the plan and an estimated time, train nothing")
    s.add_argument("--epochs", type=_number(int, 1, "--epochs"), help="override the space's epochs (a new experiment)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    r = sub.add_parser("report", help="Table 8 replica, diagnostics and figures from a results database")
    r.add_argument("--db", type=Path, default=Path("results/results.sqlite"))
    r.add_argument("--out", type=Path, default=Path("results"))
    r.add_argument("--figures", type=Path, default=Path("figures"))
    r.add_argument("--encoders", default="table8", help="encoders for the table (default: the paper's 8)")
    r.add_argument("--datasets", default="all")
    r.add_argument("--experiment", help="the experiment to report (default: the only one in --db)")
    r.add_argument("--seeds", help="only these training seeds, e.g. 2-3 (default: all stored)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--device", default="auto", help="device for the distortion and map figures")
    c = sub.add_parser("compare", help="two table8.csv files side by side: verdicts, agreement, how far cells moved")
    c.add_argument("a", type=Path, help="table8.csv of one run (e.g. training seeds 0-1)")
    c.add_argument("b", type=Path, help="table8.csv of another (e.g. seeds 2-3, or another machine)")
    return p


def _cmd_sweep(a) -> None:
    import dataclasses

    from synth import datasets as sd

    from . import encoders, results, search
    from .train import resolve_device

    # Everything is checked before any work: the space and its values, names, seeds, the device,
    # every data file, and the database (a foreign, older or newer file is refused untouched).
    space = search.load_space(a.space)
    if a.epochs is not None:
        space = dataclasses.replace(space, settings=dataclasses.replace(space.settings, epochs=a.epochs))
    if a.data is not None and not a.data.is_dir():
        raise SynthError(f"--data {a.data} not found (or not a folder); run python -m synth generate first")
    ds = sd.parse_names(a.datasets, a.data)
    encs = encoders.parse_names(a.encoders)
    seeds, data_seeds = parse_int_list(a.seeds, "seeds"), parse_int_list(a.data_seeds, "dataset seeds")
    if a.mode == "random" and not a.n_random:
        raise SynthError("--mode random needs --n-random K")
    if a.n_random and a.mode != "random":
        raise SynthError("--n-random is only used with --mode random")
    device = resolve_device(a.device)
    from .executors import ExecutorOptions, Runner, describe

    slurm = dict(space.executor)
    slurm.update({k: v for k, v in (("partition", a.partition), ("gpus_per_job", a.gpus_per_job),
                                    ("cpus_per_job", a.cpus_per_job), ("time", a.time),
                                    ("array_parallelism", a.array_parallelism), ("sbatch_lines", a.sbatch_line))
                  if v is not None})
    if a.executor != "submitit" and space.executor and len(slurm) == len(space.executor):
        slurm = {}  # the space's [executor] table only matters to the submitit executor
    opts = ExecutorOptions(a.executor, a.workers, a.log_dir or a.db.parent / "logs", slurm)
    data = sd.load_many(ds, data_seeds, a.data)
    search.check_against_data(space, encs, data)
    hashes = {n: results.digest(data[(n, data_seeds[0])].recipe.to_dict()) for n in ds}
    for (n, s), d in data.items():
        if results.digest(d.recipe.to_dict()) != hashes[n]:
            raise SynthError(f"dataset {n}: seeds {data_seeds[0]} and {s} follow different recipes in {a.data}")
    flags = {k: v for k, v in (("sampler", a.sampler), ("pruner", a.pruner), ("trials", a.trials),
                                ("finalists", a.finalists), ("race", a.race),
                                ("search_seeds", a.search_seeds)) if v is not None}
    policy = None
    if flags or space.search:
        from . import adaptive

        if a.mode != "grid" or a.n_random:
            raise SynthError("--mode/--n-random are the old search; with the adaptive search use --sampler, "
                             "--pruner and --trials")
        policy = adaptive.policy_from({**space.search, **flags})
    store = runner = None
    if a.resume or not a.dry_run:
        store = results.ResultsStore(a.db, lock_timeout=a.lock_timeout)
    print(describe(opts))
    try:
        runner = Runner(opts, device) if not a.dry_run else None
        first = {k: v for k, v in data.items() if k[1] == min(data_seeds)}
        cost_cache: dict = {}  # measured seconds per member-epoch of each shape, shared by the dry-run estimates
        if policy is not None:
            experiment = _adaptive_sweep(a, space, policy, first, ds, data_seeds, encs, seeds, device, store, runner,
                                         cost_cache)
            _other_draws(a, space, experiment, data, ds, data_seeds, encs, seeds, device, store, runner, hashes,
                         cost_cache)
            return
        skip = store.stored_keys(space.experiment) if (store is not None and a.resume) else None
        if a.mode == "halving":
            plan = search.make_plan(space, ds, [min(data_seeds)], encs, seeds, device, max_pop=a.max_members,
                                    skip=skip, recipe_hashes=hashes)
            print(search.describe_plan(plan, device, None) + "\n  (successive halving: rung 0 shown; later rungs "
                  "train a third of the configurations each, for three times as many epochs)")
            if not a.dry_run:
                n = search.successive_halving(space, first, encs, seeds, device, store, max_pop=a.max_members,
                                              runner=runner, data_folder=a.data, resume=a.resume,
                                              show_progress=not a.no_progress)
                print(f"wrote {n} row(s) to {a.db} (experiment {space.experiment})")
            _other_draws(a, space, space.experiment, data, ds, data_seeds, encs, seeds, device, store, runner, hashes,
                         cost_cache)
            return
        plan = search.make_plan(space, ds, [min(data_seeds)], encs, seeds, device, mode=a.mode, n_random=a.n_random,
                                max_pop=a.max_members, skip=skip, recipe_hashes=hashes)
        est = search.estimate_seconds(plan, data, device, cost_cache) if plan.populations else 0.0
        print(search.describe_plan(plan, device, est))
        if not plan.populations:
            print("nothing to do" + (" on the first draw" if len(data_seeds) > 1 else ""))
        elif not a.dry_run:
            n = search.sweep(plan, store, data, device, show_progress=not a.no_progress, runner=runner,
                             data_folder=a.data)
            print(f"wrote {n} row(s) to {a.db} (experiment {space.experiment})")
        _other_draws(a, space, space.experiment, data, ds, data_seeds, encs, seeds, device, store, runner, hashes,
                         cost_cache)
    finally:
        if runner is not None:
            runner.close()
        if store is not None:
            store.close()


def _other_draws(a, space, experiment, data, ds, data_seeds, encs, seeds, device, store, runner, hashes,
                 cost_cache) -> None:
    """After the search on the first draw: its chosen configurations on every other draw × seed."""
    from . import search

    others = sorted(set(data_seeds) - {min(data_seeds)})
    if not others:
        return
    n = len(ds) * len(encs) * len(others) * len(seeds)
    print(f"other draws: the configuration chosen on draw {min(data_seeds)} (validation Top-1, as the report "
          f"chooses) of each (dataset, encoder), on draws {','.join(map(str, others))} x seeds {a.seeds}: "
          f"{n} run(s), <= {n * space.settings.epochs} member-epochs")
    if a.dry_run:
        first = data[(ds[0], min(data_seeds))]
        total = sum(len(ds) * len(others) * len(seeds) * space.settings.epochs
                    * search.mean_seconds_per_member_epoch(space, enc, first, device, cost_cache) for enc in encs)
        print(f"  estimated time: about {total / 60:.1f} min more (the mean measured epoch of each encoder's shapes "
              f"on {device}; the chosen shape is not known before the search; early stopping can shorten it)")
        return
    plan, missing = search.other_draws_plan(space, store, experiment, ds, data_seeds, encs, seeds, device, hashes,
                                            a.max_members)
    for d, e in missing:
        print(f"warning: {e} on {d}: no configuration chosen on draw {min(data_seeds)} (every one diverged or none "
              "was trained), so it is not trained on the other draws")
    if plan.populations:
        n = search.sweep(plan, store, data, device, show_progress=not a.no_progress, experiment=experiment,
                         runner=runner, data_folder=a.data)
        print(f"wrote {n} row(s) to {a.db} (experiment {experiment})")
    else:
        print("  nothing to do: every run is stored")


def _adaptive_sweep(a, space, policy, data, ds, data_seeds, encs, seeds, device, store, runner, cost_cache) -> str:
    """The adaptive search on ``data`` (the first draw); returns the experiment's name."""
    from . import adaptive

    experiment = adaptive.experiment_name(space, policy)
    cells = len(ds)
    print(f"experiment {experiment} (space {space.name}): adaptive search, sampler {policy.sampler}, pruner "
          f"{policy.pruner}, search seeds {','.join(map(str, policy.search_seeds))}, {policy.finalists} finalist(s) "
          f"{'racing ' if policy.race else ''}on seeds {a.seeds}; {cells} dataset(s) (draw {min(data_seeds)}) x {len(encs)} encoder(s) on {device}")
    lines = adaptive.describe(space, policy, encs, cells, seeds)
    print("\n".join(lines))
    if a.dry_run:
        total = adaptive.estimate_seconds(space, policy, encs, cells, seeds, data[(ds[0], min(data_seeds))], device,
                                         cost_cache)
        print(f"  estimated time: {total / 60:.1f} min (measured: one epoch of each shape on {device}; pruning as "
              "expected for successive halving; early stopping can shorten it)")
        return experiment
    summary = adaptive.run(space, policy, data, encs, seeds, device, store, max_pop=a.max_members,
                           resume=a.resume, show_progress=not a.no_progress, runner=runner, data_folder=a.data)
    for c in summary["cells"]:
        print(f"  {c['dataset']} seed {c['data_seed']} {c['encoder']}: {c['trials']} trial(s) ({c['repeats']} repeat(s) "
              f"answered without training), {c['pruned']} pruned, "
              f"{c['search_member_epochs']} member-epochs; finalists: "
              + "; ".join(f"#{n} val {v:.1f}" for _, v, n in c["finalists"]))
    print(f"done in {summary['seconds']:.0f} s (experiment {experiment})")
    return experiment


def _cmd_encoders(show_params: bool) -> None:
    from . import encoders

    from synth.params import table

    print(f"{'name':22s} {'dim':>13s} {'network':8s} {'antimeridian':13s} {'poles':14s} aliases")
    for n in encoders.available():
        s = encoders.spec(n)
        print(f"{n:22s} {s.dim:>13s} {s.network:8s} {'continuous' if s.antimeridian_continuous else 'jumps':13s} "
              f"{'single-valued' if s.pole_single_valued else 'lon-dependent':14s} {', '.join(s.aliases)}")
        if show_params:
            print("\n".join(table(encoders.hyperparameters(n).values())))


def _handle(argv) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "encoders":
        _cmd_encoders(a.params)
    elif a.cmd == "sweep":
        _cmd_sweep(a)
    elif a.cmd == "compare":
        from .report import compare_tables

        print(compare_tables(a.a, a.b), end="")
    elif a.cmd == "report":
        from .report import main_report

        main_report(a.db, a.out, a.figures, encoders=a.encoders, datasets=a.datasets, experiment=a.experiment,
                    figures_on=not a.no_figures, device=a.device,
                    seeds=None if a.seeds is None else parse_int_list(a.seeds, "seeds"))
    return 0


def main(argv=None) -> int:
    return run_main(_handle, argv)
