"""The matmul floor of a finished sweep: the least its training can take on this machine (not a test).

A finished run's database (``make reproduce``'s ``results/results.sqlite``) holds, per encoder, the
member-epochs it trained, in populations of which size, and their seconds. For each (encoder,
population size) this trains, here and now, a population of that size made of the database's own
configurations and settings, on its first dataset, for ``--epochs`` epochs, and times per
member-epoch:

- **trainer**: the trainer's wall time, unprofiled;
- **floor**: the matmuls that trainer ran (forward, backward and validation; their shapes read by
  ``torch.profiler`` as in ``bench_roofline.py``) timed with ``torch.bmm`` alone: what an epoch
  would cost if everything else (activations, dropout, normalisation, loss, random numbers,
  optimiser, Python) took no time at all.

Scaled by the database's member-epochs and shared over ``--workers``, the floor is the least the
run's training could take here with these matmuls. With ``--wall`` (the run's measured wall time)
the run's other work (data, figures, reports: the wall time less the database's training seconds
per worker) is added, and the share of the training time the matmuls would need to have for the run
to fit ``--target-min`` is printed (today's share: floor / trainer). A second table splits the
trainer's time into the phases of its steps (``experiments.models.train.PHASES``: batches and
negatives, forward, loss, backward, optimiser, validation), from a profile without shapes.

    python benchmarks/bench_floor.py --db results/results.sqlite [--experiment NAME] [--epochs 3]
                                     [--workers 2] [--wall 2780] [--target-min 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_roofline import bmm_seconds, matmul_calls, minor_faults  # noqa: E402

from synth import datasets  # noqa: E402
from synth.errors import SynthError  # noqa: E402
from experiments.models import TrainSettings, train_population  # noqa: E402
from experiments.models.host_memory import keep_freed_memory  # noqa: E402
from experiments.models.train import PHASES, phase_label  # noqa: E402
from experiments.store.results import ResultsStore, choose_experiment  # noqa: E402

KEY = ("dataset", "data_seed", "encoder", "config_hash", "train_seed", "settings_hash")


def trained_rows(store: ResultsStore, experiment: str) -> list[dict]:
    """Every row the run trained: a final row that copies an unpruned search run (same cell,
    configuration, seed and settings: cell_search._finalists) cost nothing and is left out."""
    search = store.rows(experiment, "search")
    searched = {tuple(r[k] for k in KEY) for r in search if r["pruned_at"] is None}
    finals = [r for r in store.rows(experiment, "final") if tuple(r[k] for k in KEY) not in searched]
    return search + finals


def groups(rows: list[dict]) -> dict:
    """{(encoder, population size): {member_epochs, seconds, configs, settings, dataset, data_seed}};
    configs: the first population's worth of configurations of that encoder, each with its seed."""
    out: dict = {}
    for r in rows:
        size = int(r["population"] or 1)
        g = out.setdefault((r["encoder"], size), {
            "member_epochs": 0, "seconds": 0.0, "configs": [], "settings": json.loads(r["settings"]),
            "dataset": r["dataset"], "data_seed": r["data_seed"]})
        g["member_epochs"] += r["epochs_run"] or 0
        g["seconds"] += r["seconds"] or 0.0
        config = dict(json.loads(r["config"]), seed=r["train_seed"])
        if len(g["configs"]) < size and config not in g["configs"]:
            g["configs"].append(config)
    return out


def _train(ds, encoder, configs, settings, epochs):
    s = TrainSettings(**dict(settings, epochs=epochs, patience=None))
    return train_population(ds, encoder, configs, s, device="cpu")


def measure(table: dict, epochs: int) -> None:
    """Adds to each group: 'trainer' and 'floor' (seconds per member-epoch), 'flops' (the matmuls'
    per member-epoch), 'faults' (of the timed epochs) and 'phases' (share of the trainer's time per
    train.PHASES). All the unprofiled timings come first: profiling with shapes splits the kept heap
    (bench_roofline.py)."""
    keep_freed_memory()
    torch.set_num_threads(1)
    data = {}
    for (encoder, size), g in table.items():
        ds = data.setdefault((g["dataset"], g["data_seed"]), datasets.generate(g["dataset"], g["data_seed"]))
        configs = (g["configs"] * size)[:size]  # a population of `size` (configurations repeat if fewer were stored)
        g["run"] = (ds, encoder, configs, g["settings"])
        _train(*g["run"], 1)  # warm
        faults, t0 = minor_faults(), time.perf_counter()
        _train(*g["run"], epochs)
        g["trainer"] = (time.perf_counter() - t0) / (epochs * size)
        g["faults"] = minor_faults() - faults
    from torch.profiler import ProfilerActivity, profile

    for g in table.values():  # the trainer's phases (train.PHASES), from a profile without shapes
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            _train(*g["run"], epochs)
            wall = time.perf_counter() - t0
        spans = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
        g["phases"] = {name: spans.get(phase_label(name), 0.0) / wall for name in PHASES}
    for (encoder, size), g in table.items():
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            _train(*g["run"], epochs)
        seconds, flops = bmm_seconds(matmul_calls(prof))
        g["floor"], g["flops"] = seconds / (epochs * size), flops / (epochs * size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", type=Path, required=True, help="a finished run's results database")
    p.add_argument("--experiment", help="the experiment in it (default: the only one)")
    p.add_argument("--epochs", type=int, default=3, help="epochs trained per measurement")
    p.add_argument("--workers", type=int, default=2, help="workers the run had (one core each)")
    p.add_argument("--wall", type=float, help="the run's measured wall time, seconds")
    p.add_argument("--target-min", type=float, default=30.0)
    a = p.parse_args(argv)
    try:
        if not a.db.is_file():
            raise SynthError(f"{a.db}: no such database")
        with ResultsStore(a.db, readonly=True) as store:
            experiment = choose_experiment(store, a.experiment)
            table = groups(trained_rows(store, experiment))
    except SynthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    measure(table, a.epochs)
    print(f"experiment {experiment}; measured here on one thread, {a.epochs} epochs per row, "
          f"dataset {next(iter(table.values()))['dataset']}")
    print("\n| encoder | population | member-epochs | its seconds (run) | s per member-epoch: run | trainer here "
          "| floor | floor / trainer | page faults |")
    print("|---|---|---|---|---|---|---|---|---|")
    me = cpu = floor = here = flops = 0.0
    for (encoder, size), g in sorted(table.items()):
        n = g["member_epochs"]
        print(f"| {encoder} | {size} | {n} | {g['seconds']:.0f} | {g['seconds'] / max(n, 1):.4f} | "
              f"{g['trainer']:.4f} | {g['floor']:.4f} | {g['floor'] / g['trainer']:.2f} | {g['faults']} |")
        me, cpu, floor, here = me + n, cpu + g["seconds"], floor + n * g["floor"], here + n * g["trainer"]
        flops += n * g["flops"]
    print("\nshare of the trainer's time per phase of its steps (torch.profiler, experiments.models.train.phase):")
    print("\n| encoder | population | " + " | ".join(PHASES) + " | the rest |")
    print("|---|---|" + "---|" * (len(PHASES) + 1))
    weights = {k: g["member_epochs"] * g["trainer"] for k, g in table.items()}
    for (encoder, size), g in sorted(table.items()):
        shares = [g["phases"][name] for name in PHASES]
        print(f"| {encoder} | {size} | " + " | ".join(f"{100 * x:.1f} %" for x in shares)
              + f" | {100 * (1 - sum(shares)):.1f} % |")
    no_matmul = ("batch", "loss", "optimiser")
    outside = sum(w * sum(table[key]["phases"][k] for k in no_matmul) for key, w in weights.items()) / sum(weights.values())
    print(f"\nphases without a matmul ({', '.join(no_matmul)}): {100 * outside:.1f} % of the training time, weighted "
          f"by the run's member-epochs. The rest: Python between the spans, building each population and scoring "
          f"it at the end (once per {a.epochs} epoch(s) here, once per run's ~50 there)")
    w = a.workers
    print(f"\ntraining: {me:.0f} member-epochs, {cpu:.0f} s in the run ({cpu / w / 60:.1f} min on {w} workers); "
          f"the trainer here {here:.0f} s; its matmuls alone (the floor) {floor:.0f} s ({floor / w / 60:.1f} min "
          f"on {w} workers; {flops / 1e12:.0f} TFLOP at {flops / floor / 1e9:.0f} GFLOP/s): floor / trainer here "
          f"{floor / here:.2f}, floor / run {floor / cpu:.2f}")
    if a.wall is not None:
        other = a.wall - cpu / w
        budget = a.target_min * 60 - other
        need = floor / (budget * w) if budget > 0 else float("inf")
        print(f"the run: {a.wall / 60:.1f} min, of which {other / 60:.1f} min not training; at the floor it would "
              f"take {(floor / w + other) / 60:.1f} min. {a.target_min:g} min needs the matmuls to be "
              + (f"{need:.2f} of the training time (today {floor / cpu:.2f})" if need <= 1 else
                 f"{need:.2f}x the training time: below the floor, out of reach with these matmuls"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
