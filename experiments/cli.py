"""``python -m experiments``: encoders, sweep, report."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from synth.cliutil import OneLineParser, command_parser, parse_int_list, path_arg, run_main
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


# flags of the search paths that were merged into one (sampler x pruner x seed policy)
REMOVED_FLAGS = {
    "--mode": "the exhaustive sweep is the default (--sampler grid --pruner none --finalists all); "
              "--mode random is --sampler random --trials K, --mode halving is --pruner halving",
    "--n-random": "use --sampler random --trials K --finalists all (every drawn configuration on every seed, as "
                  "--mode random did)",
}


# the sweep's defaults, in one place; the parser leaves these flags None when they are not given, so that
# --reference can fill in the ones not given with its protocol and keep (or refuse) the ones given
SWEEP_DEFAULTS = {"datasets": "all", "encoders": "table8", "space": "quick", "seeds": "0-4", "data_seeds": "0"}


def _finalists(text):
    if text == "all":
        return "all"
    return _number(int, 1, "--finalists")(text)


def _parser() -> OneLineParser:
    p, sub = command_parser("python -m experiments", "Train, search and report location encoders.")
    e = sub.add_parser("encoders", help="list the encoders, their dimensions and behaviour at the antimeridian/poles")
    e.add_argument("--params", action="store_true", help="also list every declared hyper-parameter: role, default, "
                   "valid values")
    s = sub.add_parser("sweep", help="train a search space on datasets, storing every result in SQLite")
    s.add_argument("--datasets", help="comma list (U1,S2.3) or 'all' (default)")
    s.add_argument("--encoders", help="comma list, 'table8' (default) or 'all'")
    s.add_argument("--space", help="quick (default), paper, or a TOML file")
    s.add_argument("--seeds", help="training seeds: 0-4 (default), 0,3, ...")
    s.add_argument("--data-seeds", help="dataset draws (default 0): the search runs on the first, "
                   "the configuration chosen there on every draw")
    s.add_argument("--data", type=path_arg, help="read datasets from this folder (verified); default: generate in memory")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    s.add_argument("--db", type=path_arg, default=Path("results/results.sqlite"))
    for old in REMOVED_FLAGS:
        s.add_argument(old, nargs="?", const=True, default=None, help=argparse.SUPPRESS)
    g = s.add_argument_group("search = sampler x pruner x seed policy (default: the space's [search] table, else the "
                             "exhaustive sweep: every configuration on every seed); flags override the table")
    g.add_argument("--sampler", choices=["grid", "random", "tpe"], help="which configurations are tried (default grid)")
    g.add_argument("--pruner", choices=["none", "halving", "hyperband", "asha"],
                   help="which trials stop early (default none); halving: successive halving decided by value at "
                        "each rung (asha: its former name)")
    g.add_argument("--first-rung", type=_number(int, 1, "--first-rung"),
                   help="epoch of the first pruning rung, then x3, x9, ... (default: the space's, else 9)")
    g.add_argument("--trials", type=_number(int, 1, "--trials"), help="trials per (dataset, encoder): random, tpe")
    g.add_argument("--finalists", type=_finalists, help="configurations retrained on every seed of --seeds "
                   "(default 3; 'all': every configuration tried)")
    g.add_argument("--race", action=argparse.BooleanOptionalAction, default=None,
                   help="finalists race seed by seed: one clearly behind the leader stops (default off; on in "
                        "the paper space)")
    g.add_argument("--search-seeds", help="training seeds of the search itself (default 0)")
    g.add_argument("--transfer-from", metavar="EXPERIMENT", help="try first the best configurations of this "
                   "experiment's searches (same --db) on --transfer-datasets (experiments.search.transfer)")
    g.add_argument("--transfer-datasets", help="comma list: the source datasets of --transfer-from")
    g.add_argument("--transfer-top", type=_number(int, 1, "--transfer-top"),
                   help="configurations taken from each source dataset (default 3)")
    x = s.add_argument_group("where it runs")
    x.add_argument("--executor", default="inline", choices=["inline", "local", "submitit"],
                   help="inline (this process, default), local (--workers processes), submitit (SLURM job array, or "
                        "local subprocesses where there is no sbatch)")
    x.add_argument("--workers", type=_number(int, 1, "--workers"), help="local: worker processes (default: one per CUDA device, else one per CPU core); "
                                               "submitit: jobs running at once")
    x.add_argument("--log-dir", type=path_arg, help="submitit: job logs (default: next to --db, in logs/)")
    x.add_argument("--partition", help="SLURM partition")
    x.add_argument("--gpus-per-job", type=_number(int, 0, "--gpus-per-job"), help="SLURM GPUs per job")
    x.add_argument("--cpus-per-job", type=_number(int, 1, "--cpus-per-job"), help="SLURM CPUs per job")
    x.add_argument("--time", type=_number(int, 1, "--time"), help="SLURM time limit per job, minutes")
    x.add_argument("--array-parallelism", type=_number(int, 1, "--array-parallelism"),
                   help="SLURM: jobs of an array running at once")
    x.add_argument("--sbatch-line", action="append", help="a line run in each job before the work (repeatable)")
    s.add_argument("--max-members", type=_number(int, 1, "--max-members"), default=None,
                   help="cap on the population size (default: by memory)")
    s.add_argument("--lock-timeout", type=_number(float, 0, "--lock-timeout"), default=600.0,
                   help="seconds to wait for another process's write lock on --db before giving up (default 600)")
    s.add_argument("--resume", action="store_true", help="skip members already stored in the database")
    s.add_argument("--dry-run", action="store_true", help="print the plan and an estimated time, train nothing")
    s.add_argument("--epochs", type=_number(int, 1, "--epochs"), help="override the space's epochs (a new experiment)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--reference", metavar="NAME", help="train only your encoder(s) by the protocol of a shipped "
                   "reference (its space, settings, search, datasets, draws and seeds unless given); report "
                   "--reference NAME then compares them with its baselines (experiments.report.reference)")
    r = sub.add_parser("report", help="Table 8 replica, diagnostics and figures from a results database")
    r.add_argument("--db", type=path_arg, help="the results database (default results/results.sqlite; with "
                   "--reference alone: none, the reference's own Table 8)")
    r.add_argument("--out", type=path_arg, default=Path("results"))
    r.add_argument("--figures", type=path_arg, default=Path("figures"))
    r.add_argument("--encoders", default="table8", help="encoders for the table (default: the paper's 8)")
    r.add_argument("--datasets", default="all")
    r.add_argument("--experiment", help="the experiment to report (default: the only one in --db)")
    r.add_argument("--seeds", help="only these training seeds, e.g. 2-3 (default: all stored)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--device", default="auto", help="device for the distortion and map figures")
    r.add_argument("--reference", metavar="NAME", help="the baselines' columns from this shipped reference "
                   "(name or file); the experiment holds only your encoder(s)")
    r.add_argument("--target", help="the encoder compared against the best baseline (default sphereM+; with "
                   "--reference, the one encoder trained here)")
    f = sub.add_parser("reference", help="write a reference file from a finished Table 8 experiment (the chosen "
                       "configurations' rows, settings, search policy, machine and date)")
    f.add_argument("--db", type=path_arg, required=True)
    f.add_argument("--experiment", help="default: the only one in --db")
    f.add_argument("--name", required=True, help="the name it is loaded by")
    f.add_argument("--out", type=path_arg, help="default: NAME.json in the current folder (load it with --reference FILE)")
    f.add_argument("--force", action="store_true", help="replace --out if it exists (says what it replaced)")
    f.add_argument("--machine", help="describe the machine (default: this one's processor and cores)")
    b = sub.add_parser("ablate", help="a controlled ablation from a TOML file: one factor, every level, the rest held; "
                       "runs it, then writes its tables and figures")
    b.add_argument("file", type=path_arg, help="the ablation (see experiments/ablations/*.toml)")
    b.add_argument("--db", type=path_arg, default=Path("results/ablations.sqlite"))
    b.add_argument("--out", type=path_arg, default=Path("results/ablations"), help="tables (md, csv, tex)")
    b.add_argument("--figures", type=path_arg, default=Path("figures/ablations"), help="figures (png, pdf)")
    b.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    b.add_argument("--executor", default="inline", choices=["inline", "local", "submitit"])
    b.add_argument("--workers", type=_number(int, 1, "--workers"))
    b.add_argument("--max-members", type=_number(int, 1, "--max-members"), default=None)
    b.add_argument("--resume", action="store_true", help="skip runs already stored in the database")
    b.add_argument("--dry-run", action="store_true", help="print the plan, its member-epochs and an estimated time")
    b.add_argument("--report-only", action="store_true", help="train nothing: tables and figures from --db")
    b.add_argument("--no-figures", action="store_true")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = sub.add_parser("importance", help="which hyper-parameter matters: PED-ANOVA importances from an adaptive "
                       "search's stored trials, a table and a figure per (dataset, encoder)")
    m.add_argument("--db", type=path_arg, default=Path("results/results.sqlite"))
    m.add_argument("--experiment", help="the adaptive search to read (default: the only one in --db)")
    m.add_argument("--datasets", help="comma list (default: all searched)")
    m.add_argument("--encoders", help="comma list (default: all searched)")
    m.add_argument("--min-trials", type=_number(int, 2, "--min-trials"), default=20,
                   help="score every trial at the longest budget at least this many trials reached (default 20)")
    m.add_argument("--out", type=path_arg, default=Path("results"))
    m.add_argument("--figures", type=path_arg, default=Path("figures"))
    m.add_argument("--no-figures", action="store_true")
    for parser in (e, s, r, b, m):
        parser.add_argument("--plugin", action="append", type=path_arg, metavar="FILE.py",
                            help="register your own encoder(s) from this file (repeatable; docs/plugins.md)")
    w = sub.add_parser("power", help="how many dataset draws a difference needs, per dataset, from a shipped "
                       "reference's (or a database's) per-draw variances")
    w.add_argument("--reference", default="fair_full", metavar="NAME", help="default: fair_full")
    w.add_argument("--db", type=path_arg, help="read this database's experiment instead of a reference")
    w.add_argument("--experiment", help="with --db: the experiment (default: the only one)")
    w.add_argument("--target", default="sphereM+")
    w.add_argument("--baseline", help="default: each dataset's baseline with the best mean")
    w.add_argument("--diff", default="0.3,0.5,1.0", help="true differences in points (default 0.3,0.5,1.0)")
    w.add_argument("--datasets", default="all")
    w.add_argument("--plugin", action="append", type=path_arg, metavar="FILE.py", help="as for report")
    c = sub.add_parser("compare", help="two table8.csv files side by side: verdicts, agreement, how far cells moved")
    c.add_argument("a", type=path_arg, help="table8.csv of one run (e.g. training seeds 0-1)")
    c.add_argument("b", type=path_arg, help="table8.csv of another (e.g. seeds 2-3, or another machine)")
    return p


def _cmd_sweep(a) -> None:
    from .report.reference import check_protocol, policy_flags, source_datasets
    from .search.study import Study

    for flag, replacement in REMOVED_FLAGS.items():
        if getattr(a, flag.lstrip("-").replace("-", "_")) is not None:
            raise SynthError(f"{flag} was removed: {replacement}")
    search = {k: v for k, v in (("sampler", a.sampler), ("pruner", a.pruner), ("first_rung", a.first_rung),
                                ("trials", a.trials), ("finalists", a.finalists), ("race", a.race),
                                ("search_seeds", a.search_seeds), ("transfer_from", a.transfer_from),
                                ("transfer_datasets", a.transfer_datasets), ("transfer_top", a.transfer_top))
              if v is not None}
    slurm = {k: v for k, v in (("partition", a.partition), ("gpus_per_job", a.gpus_per_job),
                               ("cpus_per_job", a.cpus_per_job), ("time", a.time),
                               ("array_parallelism", a.array_parallelism), ("sbatch_lines", a.sbatch_line))
             if v is not None}
    ref = _reference_protocol(a) if a.reference is not None else None
    for flag, value in SWEEP_DEFAULTS.items():  # what --reference did not fill in
        if getattr(a, flag) is None:
            setattr(a, flag, value)
    if ref is not None and ref.get("sources") and not search:  # a transfer reference's search, unless given
        search = policy_flags(ref["policy"])
    common = dict(space=a.space, encoders=a.encoders, seeds=a.seeds, device=a.device, db=a.db, data=a.data,
                  executor=a.executor, workers=a.workers, slurm=slurm, log_dir=a.log_dir, epochs=a.epochs,
                  max_members=a.max_members, lock_timeout=a.lock_timeout, progress=not a.no_progress)
    study = Study.build(datasets=a.datasets, data_seeds=a.data_seeds, search=search, resume=a.resume, **common)
    stages = [study]
    if ref is not None:
        check_protocol(ref, study)
        if source_datasets(ref):
            # the cold searches the reference's transfer started from, for your encoder(s): on the
            # source datasets' first draw, by the sources' policy, under the sources' experiment name
            # (so the transfer search finds them); resumed, never trained twice
            first = str(min(parse_int_list(a.data_seeds, "dataset seeds")))
            source = Study.build(datasets=",".join(source_datasets(ref)), data_seeds=first, resume=True,
                                 search=policy_flags(ref["sources"]["policy"]), **common)
            if source.experiment != ref["sources"]["experiment"]:
                raise SynthError(f"--reference {ref['name']}: the source searches here would be experiment "
                                 f"{source.experiment}, the reference's are {ref['sources']['experiment']}")
            stages.insert(0, source)
            study.sources_pending = True  # trained by the first stage: checked when the second runs
    for i, stage in enumerate(stages):
        if len(stages) > 1:
            print(f"stage {i + 1} of {len(stages)}: " + ("the cold source searches" if i == 0 else "the transfer search"),
                  flush=True)
        if a.dry_run:
            print(stage.dry_run())
        else:
            stage.run(echo=lambda line: print(line, flush=True))


def _reference_protocol(a) -> dict:
    """--reference: the reference's datasets, draws, seeds and space for the flags not given; a given
    space must be the reference's, given datasets and draws must be among its own (they pair with
    nothing else). Given training seeds are kept: the draws pair whatever the seeds (another seed is
    how an A/A run is made)."""
    from .report.reference import load
    from .search.space import load_space

    if not a.reference:
        raise SynthError("--reference '': name a shipped reference or a reference file")
    ref = load(a.reference)
    draws = sorted({r["data_seed"] for r in ref["rows"]})
    space = ref["experiment"].rsplit("-", 1)[0]
    if a.encoders is None:
        raise SynthError(f"--reference {ref['name']}: name your own encoder(s) with --encoders; the baselines "
                         f"({', '.join(ref['encoders'])}) come from the reference")
    if a.space is not None and load_space(a.space).name != space:  # a name or a file of the same space
        raise SynthError(f"--reference {ref['name']}: space {a.space} is not the reference's ({space}); leave --space "
                         "out to follow it")
    if a.data_seeds is not None:
        other = sorted(set(parse_int_list(a.data_seeds, "dataset seeds")) - set(draws))
        if other:
            raise SynthError(f"--reference {ref['name']}: draw(s) {','.join(map(str, other))} are not in the reference "
                             f"(it has {','.join(map(str, draws))}): they would pair with nothing")
    for flag, value in (("datasets", ",".join(sorted(ref["datasets"]))), ("data_seeds", ",".join(map(str, draws))),
                        ("seeds", ",".join(map(str, sorted({r["train_seed"] for r in ref["rows"]})))),
                        ("space", space)):
        if getattr(a, flag) is None:
            setattr(a, flag, value)
    return ref


def _cmd_ablate(a) -> None:
    from .ablate.ablation import Ablation
    from .ablate.report import write_report

    abl = Ablation.build(a.file, db=a.db, device=a.device, executor=a.executor, workers=a.workers,
                         resume=a.resume, progress=not a.no_progress, max_members=a.max_members)
    if a.dry_run:
        print(abl.dry_run())
        return
    if not a.report_only:
        abl.run(echo=lambda line: print(line, flush=True))
    for p in write_report(abl, a.out, None if a.no_figures else a.figures):
        print(f"wrote {p}")


def _cmd_power(a) -> None:
    from .report import reference
    from .store import results
    from .report.summary import power_records
    from .report.stats import LEVEL, POWER
    from .report.tables import to_markdown

    diffs = []
    for x in a.diff.split(","):
        try:
            diffs.append(float(x))
        except ValueError:
            diffs.append(float("nan"))
        if not (math.isfinite(diffs[-1]) and diffs[-1] > 0):
            raise SynthError(f"--diff: {x!r} is not a positive number of points")
    if a.db is not None:
        with results.ResultsStore(a.db, readonly=True) as store:
            exp = results.choose_experiment(store, a.experiment)
            rows, source = store.rows(exp, "final"), f"{a.db}, experiment {exp}"
    else:
        ref = reference.load(a.reference)
        rows, source = reference.final_rows(ref, ref["experiment"]), reference.provenance_line(ref)
    wanted = None if a.datasets == "all" else [d.strip() for d in a.datasets.split(",") if d.strip()]
    recs = power_records(rows, a.target, a.baseline, diffs, wanted)
    if not recs:
        raise SynthError(f"no dataset of {a.datasets} in {source}")
    print(f"Draws needed for {a.target} to be called better with {100 * POWER:.0f} % power at the "
          f"{100 * (1 - LEVEL):.0f} % level (t test over draws; one training seed per draw), from {source}. "
          "A second seed costs a run, as a draw does, and averages only the training noise: add draws.\n")
    print(to_markdown(recs), end="")


def _cmd_encoders(show_params: bool) -> None:
    from .models import encoders

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
    if getattr(a, "plugin", None):
        from .models.encoders import load_plugin

        for path in a.plugin:
            load_plugin(path)
    if a.cmd == "encoders":
        _cmd_encoders(a.params)
    elif a.cmd == "sweep":
        _cmd_sweep(a)
    elif a.cmd == "ablate":
        _cmd_ablate(a)
    elif a.cmd == "importance":
        from .models.encoders import parse_names as encoders_parse
        from .report.importance import report as importance_report

        for p in importance_report(a.db, a.out, None if a.no_figures else a.figures, a.experiment,
                                   a.datasets and a.datasets.split(","),
                                   a.encoders and encoders_parse(a.encoders), a.min_trials):
            print(f"wrote {p}")
    elif a.cmd == "reference":
        from .store import results
        from .report.reference import REFERENCES_DIR, build, write

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", a.name):
            raise SynthError(f"--name {a.name!r}: a reference's name is a plain file name (letters, digits, '_', '.', "
                             "'+', '-'), not a path")
        out = a.out or Path(f"{a.name}.json")  # never into the package's shipped references unless named
        if out.exists() and not a.force:
            raise SynthError(f"{out} exists: give another --out, or --force to replace it")
        replaced = out.exists()
        with results.ResultsStore(a.db, readonly=True) as store:
            ref = build(store, results.choose_experiment(store, a.experiment), a.name, a.machine)
        path = write(ref, out)
        print(f"wrote {path}: {len(ref['rows'])} rows, {len(ref['datasets'])} dataset(s) x {len(ref['encoders'])} "
              f"encoder(s), trained on {ref['machine']}, {ref['date']}"
              + (" (replaced the file that was there: --force)" if replaced else "")
              + ("" if path.resolve().parent == REFERENCES_DIR.resolve() else
                 f"; load it with --reference {path}"))
    elif a.cmd == "power":
        _cmd_power(a)
    elif a.cmd == "compare":
        from .report.tables import compare_tables

        print(compare_tables(a.a, a.b), end="")
    elif a.cmd == "report":
        from .report.table8 import main_report

        db = a.db if a.db is not None or a.reference else Path("results/results.sqlite")
        main_report(db, a.out, a.figures, encoders=a.encoders, datasets=a.datasets, experiment=a.experiment,
                    reference=a.reference, target=a.target,
                    figures_on=not a.no_figures, device=a.device,
                    seeds=None if a.seeds is None else parse_int_list(a.seeds, "seeds"))
    return 0


def main(argv=None) -> int:
    return run_main(_handle, argv)
