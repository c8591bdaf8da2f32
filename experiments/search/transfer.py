"""Transfer between searches: what earlier datasets' searches found is tried first on a new one.

A full ``fair`` search costs one to two hours per dataset here. The best configurations
of one dataset are often good on the next (the same encoder, the same kinds of class scales), so a
search with ``transfer_from = <experiment>`` and ``transfer_datasets = [...]`` enqueues, before its
sampler proposes anything, the ``transfer_top`` best configurations (mean validation Top-1 over the
search seeds, among trials neither pruned nor diverged; ties by configuration) of every source
dataset's search of the same encoder in that experiment, in the order of ``transfer_datasets``,
each once. The target dataset itself is never a source. Then the sampler (TPE) goes on to the
policy's ``trials``, and the pruner decides as in any search, so a transferred configuration that
does not suit the new dataset is pruned like any other.

The list is read by the driver from the results store and sent with every job, so local workers
and SLURM jobs enqueue exactly the same trials, and a resumed search replays them the same way.
Because the list depends on the source searches, they must be complete before a transfer search
starts on them; a source without a finished trial of the encoder is an error, not a silent cold
start. What transfer costs in accuracy is measured against the cold search in docs/search.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from synth.errors import SynthError
from synth.params import TEXT, Kind, checked, instance

from ..store.results import canonical
from .space import SearchPolicy


def _store(value):
    if not callable(getattr(value, "rows", None)):
        raise TypeError
    return value


STORE = Kind("a results store (ResultsStore)", _store)


def _space(value):
    if not callable(getattr(value, "configs", None)):
        raise TypeError
    return value


SPACE = Kind("a Space (load_space)", _space)


def check_sources(db, policy, datasets, encoders, space) -> None:
    """Before any work (``Study.dry_run`` and ``Study.run``, before the database is opened for writing):
    the database must hold the source experiment, with a finished search trial of every encoder on
    every source dataset; else one line."""
    from ..store.results import ResultsStore

    if not Path(db).exists():
        raise SynthError(f"transfer: {db} does not exist, so it holds no experiment {policy.transfer_from} to "
                         "transfer from")
    with ResultsStore(db, readonly=True) as store:
        if policy.transfer_from not in store.experiments():
            raise SynthError(f"transfer: {db} has no experiment {policy.transfer_from!r} (it has "
                             f"{', '.join(store.experiments()) or 'none'})")
        warm_starts(store, policy, [(d, e) for d in datasets for e in encoders], space)


@checked(store=STORE, policy=instance(SearchPolicy), dataset=TEXT, encoder=TEXT, space=SPACE)
def warm_start(store, policy, dataset: str, encoder: str, space) -> list[dict]:
    """The configurations (of ``space.configs(encoder)``) that a transfer search tries first; without
    transfer none, and the grid is not expanded (a paper-space grid holds thousands)."""
    return warm_starts(store, policy, [(dataset, encoder)], space)[(dataset, encoder)]


def warm_starts(store, policy, cells, space) -> dict:
    """``warm_start`` of every (dataset, encoder) of ``cells``, reading the source searches' rows once."""
    if policy.transfer_from is None:
        return {cell: [] for cell in cells}
    rows = store.rows(policy.transfer_from, "search")
    return {(d, e): _first_trials(rows, policy, d, e, space) for d, e in cells}


def _first_trials(rows, policy, dataset: str, encoder: str, space) -> list[dict]:
    by_key = {canonical(c): c for c in space.configs(encoder)}
    out: dict = {}
    for source in policy.transfer_datasets:
        if source == dataset:
            continue
        scores: dict = {}
        for r in rows:
            if (r["dataset"], r["encoder"]) == (source, encoder) and r["pruned_at"] is None and not r["diverged"] \
                    and r["val_top1"] is not None:
                config = json.loads(r["config"]) if isinstance(r["config"], str) else r["config"]
                scores.setdefault(canonical(config), []).append(float(r["val_top1"]))
        if not scores:
            raise SynthError(f"transfer: experiment {policy.transfer_from} has no finished search trial of {encoder} "
                             f"on {source} in this database; search it first (or drop it from transfer_datasets)")
        ranked = sorted(scores, key=lambda k: (-sum(scores[k]) / len(scores[k]), k))
        for key in [k for k in ranked if k in by_key][:policy.transfer_top]:
            out.setdefault(key, by_key[key])
    return list(out.values())
