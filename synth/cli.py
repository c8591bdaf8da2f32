"""``python -m synth``: list, describe, generate, export, verify, bayes, plot."""

from __future__ import annotations

import time
from pathlib import Path

from . import bayes, datasets, export
from .cliutil import OneLineParser, command_parser, parse_int_list, path_arg, read_toml, run_main
from .errors import SynthError


def _parser() -> OneLineParser:
    p, sub = command_parser("python -m synth", "Synthetic vMF datasets of the Sphere2Vec paper (Appendix 9.15).")
    sub.add_parser("list", help="list the registered datasets")
    d = sub.add_parser("describe", help="show a dataset's recipe")
    d.add_argument("name")
    g = sub.add_parser("generate", help="generate datasets into a folder (npz + manifest.json)")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="all 20 paper datasets")
    which.add_argument("--dataset", help="comma-separated dataset names, e.g. U1,S2.3")
    which.add_argument("--recipe", type=path_arg, help="a TOML file with a [recipe] table defining your own dataset")
    g.add_argument("--seed", default="0", help="seed(s): 0, 0-4 or 0,3 (default 0)")
    g.add_argument("--allow-paper-name", action="store_true",
                   help="let a --recipe reuse a paper dataset's name (its results are kept apart by recipe)")
    g.add_argument("--out", type=path_arg, required=True, help="output folder")
    e = sub.add_parser("export", help="write datasets as CSV, Parquet or TorchSpatial pickles, with export.json "
                                      "(recipe and checksums; docs/export.md)")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="all 20 paper datasets (generated)")
    which.add_argument("--dataset", help="comma-separated dataset names, e.g. U1,S2.3 (generated)")
    which.add_argument("--recipe", type=path_arg, help="a TOML file with a [recipe] table (generated)")
    which.add_argument("--data", type=path_arg, help="every dataset of a folder written by generate (verified)")
    e.add_argument("--seed", help="seed(s) to generate: 0, 0-4 or 0,3 (default 0; not with --data, whose files "
                   "have their own)")
    e.add_argument("--allow-paper-name", action="store_true",
                   help="let a --recipe reuse a paper dataset's name (its results are kept apart by recipe)")
    e.add_argument("--format", default="csv", help=f"comma-separated: {', '.join(export.FORMATS)} (default csv)")
    e.add_argument("--out", type=path_arg, required=True, help="output folder")
    v = sub.add_parser("verify", help="check every file of a folder against its manifest")
    v.add_argument("folder", type=path_arg)
    b = sub.add_parser("bayes", help="Bayes-optimal accuracy of a dataset file (last line: test Top-1 in %%)")
    b.add_argument("file", type=path_arg)
    b.add_argument("--band-width", type=float, default=10.0, help="latitude band width in degrees (default 10)")
    pl = sub.add_parser("plot", help="draw maps of dataset files, or the paper's Figures 13/14")
    pl.add_argument("files", nargs="*", type=path_arg, help=".npz files to map")
    pl.add_argument("--paper", action="store_true", help="draw the Figure 13/14 analogues (generated with --seed)")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--projection", default="platecarree", choices=["platecarree", "equalarea"])
    pl.add_argument("--out", type=path_arg, default=Path("figures"), help="output folder (default figures/)")
    return p


def _recipes(a) -> list:
    """The recipes named by --all, --dataset or --recipe (a bad name fails before anything is written)."""
    if a.recipe is not None:
        spec = read_toml(a.recipe).get("recipe")
        if not isinstance(spec, dict):
            raise SynthError(f"{a.recipe}: needs a [recipe] table")
        return [datasets.user_recipe(spec, getattr(a, "allow_paper_name", False))]
    names = list(datasets.PAPER_DATASETS) if a.all else datasets.parse_names(a.dataset)
    return [datasets.get_recipe(n) for n in names]


def _cmd_generate(a) -> None:
    names = _recipes(a)
    seeds = parse_int_list(a.seed)
    if a.out.exists() and not a.out.is_dir():
        raise SynthError(f"--out {a.out} is a file, not a folder")
    t0 = time.perf_counter()
    for seed in seeds:
        for r in names:
            datasets.save(datasets.generate(r, seed), a.out)
    print(f"wrote {len(names) * len(seeds)} dataset file(s) and {datasets.MANIFEST} to {a.out} "
          f"in {time.perf_counter() - t0:.2f} s")


def _cmd_export(a) -> None:
    formats = export.parse_formats(a.format)
    t0 = time.perf_counter()
    if a.data is not None:
        if a.seed is not None:
            raise SynthError("--seed chooses the draws to generate; with --data the folder's files are exported as "
                             "they are (their seeds are in its manifest)")
        # one at a time; a bad file stops all (nothing written)
        dss = (datasets.load(a.data / f) for f in datasets.listed_files(a.data))
    else:
        recipes, seeds = _recipes(a), parse_int_list(a.seed or "0")
        # an absurd request (--seed 0-99999) is refused here, before a single dataset is generated
        export.check_free_space(a.out, len(seeds) * sum(r.n_classes * r.samples_per_class for r in recipes), formats)
        dss = (datasets.generate(r, seed) for seed in seeds for r in recipes)
    written = export.export(dss, a.out, formats)
    print(f"wrote {len(written)} file(s) ({', '.join(formats)}) and {export.MANIFEST} to {a.out} "
          f"in {time.perf_counter() - t0:.2f} s")


def _handle(argv) -> int:
    a = _parser().parse_args(argv)
    if a.cmd == "list":
        for n in datasets.available():
            print(f"{n:6s} {datasets.get_recipe(n).description}")
    elif a.cmd == "describe":
        print(datasets.describe(a.name))
    elif a.cmd == "generate":
        _cmd_generate(a)
    elif a.cmd == "export":
        _cmd_export(a)
    elif a.cmd == "verify":
        problems = datasets.verify_folder(a.folder)
        n = len(datasets.listed_files(a.folder))
        for msg in problems:
            print(f"FAIL {msg}")
        if problems:
            raise SynthError(f"{len(problems)} of {n} file(s) in {a.folder} failed verification")
        print(f"ok: {n} file(s) in {a.folder} match {datasets.MANIFEST}")
    elif a.cmd == "bayes":
        ds = datasets.load(a.file)
        for split in ("train", "val", "test"):
            m = bayes.evaluate(ds, split, band_width=a.band_width)
            print(f"{split:5s} Top-1 {m['top1']:6.2f}  Top-3 {m['top3']:6.2f}  MRR {m['mrr']:.4f}  (n={m['n']})")
        print("test per band:  " + "  ".join(f"[{b['lat_lo']:+.0f},{b['lat_hi']:+.0f}] {b['top1']:.0f}%/{b['n']}"
                                            for b in m["bands"] if b["n"]))
        print(f"{m['top1']:.2f}")
    elif a.cmd == "plot":
        from . import plot

        if a.paper:
            written = plot.paper_figures(lambda n: datasets.generate(n, a.seed), a.out)
        elif a.files:
            dss = [datasets.load(f) for f in a.files]
            written = plot.save_figure(plot.dataset_figure(dss, a.projection),
                                       a.out / f"map_{'_'.join(d.name for d in dss)}_{a.projection}")
        else:
            raise SynthError("plot needs dataset files or --paper")
        for w in written:
            print(w)
    return 0


def main(argv=None) -> int:
    return run_main(_handle, argv, resumable=())
