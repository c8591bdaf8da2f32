"""``python -m experiments``: encoders, sweep, report."""

from __future__ import annotations

from pathlib import Path

from synth.cliutil import OneLineParser, command_parser, parse_int_list, run_main
from synth.errors import SynthError


def _parser() -> OneLineParser:
    p, sub = command_parser("python -m experiments", "Train, search and report location encoders.")
    sub.add_parser("encoders", help="list the encoders, their dimensions and behaviour at the antimeridian/poles")
    s = sub.add_parser("sweep", help="train a search space on datasets, storing every result in SQLite")
    s.add_argument("--datasets", default="all", help="comma list (U1,S2.3) or 'all' (default)")
    s.add_argument("--encoders", default="table8", help="comma list, 'table8' (default) or 'all'")
    s.add_argument("--space", default="quick", help="quick (default), paper, or a TOML file")
    s.add_argument("--seeds", default="0-4", help="training seeds: 0-4 (default), 0,3, ...")
    s.add_argument("--data-seeds", default="0", help="dataset seeds (default 0)")
    s.add_argument("--data", type=Path, help="read datasets from this folder (verified); default: generate in memory")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    s.add_argument("--db", type=Path, default=Path("results/results.sqlite"))
    s.add_argument("--mode", default="grid", choices=["grid", "random", "halving"],
                   help="exhaustive grid, a random subset (--n-random), or successive halving")
    s.add_argument("--n-random", type=int, default=None, help="configurations per encoder for --mode random")
    s.add_argument("--max-members", type=int, default=None, help="cap on the population size (default: by memory)")
    s.add_argument("--resume", action="store_true", help="skip members already stored in the database")
    s.add_argument("--dry-run", action="store_true", help="print the plan and an estimated time, train nothing")
    s.add_argument("--epochs", type=int, help="override the space's epochs")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    r = sub.add_parser("report", help="Table 8 replica, diagnostics and figures from a results database")
    r.add_argument("--db", type=Path, default=Path("results/results.sqlite"))
    r.add_argument("--out", type=Path, default=Path("results"))
    r.add_argument("--figures", type=Path, default=Path("figures"))
    r.add_argument("--encoders", default="table8", help="encoders for the table (default: the paper's 8)")
    r.add_argument("--datasets", default="all")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--device", default="auto", help="device for the distortion and map figures")
    return p


def _cmd_sweep(a) -> None:
    import dataclasses

    from . import results, search
    from .train import resolve_device

    space = search.load_space(a.space)
    if a.epochs:
        space = dataclasses.replace(space, settings=dataclasses.replace(space.settings, epochs=a.epochs))
    ds = search.parse_names(a.datasets, "datasets")
    encs = search.parse_names(a.encoders, "encoders")
    seeds, data_seeds = parse_int_list(a.seeds, "seeds"), parse_int_list(a.data_seeds, "dataset seeds")
    device = resolve_device(a.device)
    if a.data is not None:
        from synth import datasets as sd

        for n in ds:
            for s in data_seeds:
                if not (a.data / sd.file_name(n, s)).exists():
                    raise SynthError(f"{a.data / sd.file_name(n, s)} not found; run python -m synth generate first")
    if a.mode == "random" and not a.n_random:
        raise SynthError("--mode random needs --n-random K")
    conn = results.connect(a.db) if (a.resume or not a.dry_run) else None  # refuses a newer schema up front
    skip = results.stored_keys(conn) if (conn is not None and a.resume) else None
    if conn is not None:
        conn.close()
    if a.mode == "halving":
        if a.dry_run:
            plan = search.make_plan(space, ds, data_seeds, encs, seeds, device, max_pop=a.max_members)
            print(search.describe_plan(plan, device, None) + "\n  (successive halving: rung 0 shown; later rungs "
                  "train a third of the configurations each, for three times as many epochs)")
            return
        n = search.successive_halving(space, ds, data_seeds, encs, seeds, device, a.db, a.data,
                                      show_progress=not a.no_progress)
        print(f"wrote {n} row(s) to {a.db}")
        return
    plan = search.make_plan(space, ds, data_seeds, encs, seeds, device, mode=a.mode, n_random=a.n_random,
                            max_pop=a.max_members, skip=skip)
    est = search.estimate_seconds(plan, device) if plan.populations else 0.0
    print(search.describe_plan(plan, device, est))
    if a.dry_run or not plan.populations:
        if not plan.populations:
            print("nothing to do")
        return
    n = search.sweep(plan, a.db, device, a.data, show_progress=not a.no_progress)
    print(f"wrote {n} row(s) to {a.db}")


def _cmd_encoders() -> None:
    from . import encoders

    print(f"{'name':22s} {'dim':>13s} {'network':8s} {'antimeridian':13s} {'poles':14s} aliases")
    for n in encoders.available():
        s = encoders.spec(n)
        print(f"{n:22s} {s.dim:>13s} {s.network:8s} {'continuous' if s.antimeridian_continuous else 'jumps':13s} "
              f"{'single-valued' if s.pole_single_valued else 'lon-dependent':14s} {', '.join(s.aliases)}")


def _handle(argv) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "encoders":
        _cmd_encoders()
    elif a.cmd == "sweep":
        _cmd_sweep(a)
    elif a.cmd == "report":
        from .report import main_report

        main_report(a)
    return 0


def main(argv=None) -> int:
    return run_main(_handle, argv)
