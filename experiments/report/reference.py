"""A shipped reference: the baselines' results of a finished Table 8, so that a new encoder is judged
against them while training only itself.

A reference file holds, for every (dataset, encoder) of one experiment, the configuration the report
chose (validation Top-1 on the first draw, ``selection.choose``) and that configuration's final rows
on every draw and seed: validation and test Top-1/Top-3/MRR and per-band Top-1 and MRR (rounded to
1e-4 points and 1e-6; the overall metrics are kept exactly). Beside them: the training settings and the search
policy (the protocol a new encoder must follow to be compared), the datasets' recipes, and the
machine, date, torch and code version the rows came from, which every table built on it prints.

The datasets are bit-identical everywhere, so the new encoder's draws pair with the reference's
draw by draw; its training ran on another machine, which the table says.

A reference whose search transferred (``fair_full``: 12 trials, the best configurations of cold
searches on three source datasets first; experiments.search.transfer) also records its ``sources``: the cold
searches' experiment and policy. A new encoder gets the same two stages: ``sweep --reference`` first
runs the cold search of that policy on the source datasets (the first draw: only its search trials
are transferred), under the same experiment name, then the transfer search on the datasets asked for.

    python -m experiments reference --db DB --experiment EXP --name mine        # writes ./mine.json (--out, --force)
    python -m experiments sweep --plugin mine.py --encoders mine --reference fair_full --db mine.sqlite
    python -m experiments sweep --plugin new.py --encoders new --reference mine.json --db new.sqlite
    python -m experiments report --db mine.sqlite --reference fair_full --out results/mine
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from experiments import PACKAGE_DIR
from synth.errors import SynthError
from synth.params import PATH, TABLE, TEXT, Kind, checked, instance, optional
from synth.fileio import atomic_write_bytes

from ..store import results
from ..search.selection import choose

REFERENCES_DIR = PACKAGE_DIR / "references"
FORMAT = 1
BAND_DECIMALS = 4
# what a reference row keeps of a results row (the rest is rebuilt: experiment, stage, recipe)
ROW_KEYS = ("dataset", "data_seed", "train_seed", "encoder", "config", "val_top1", "val_top3", "val_mrr",
            "test_top1", "test_top3", "test_mrr", "best_epoch", "epochs_run", "diverged", "seconds")
META_KEYS = ("format", "name", "experiment", "settings", "settings_hash", "policy", "machine", "date",
             "torch", "code_versions", "datasets", "encoders", "rows")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rounded(values, decimals: int) -> list:
    return [None if x is None or x != x else round(x, decimals) for x in values]


def _compact_bands(bands: dict) -> dict:
    """Per band: points, Top-1 (1e-4 points) and MRR (1e-6): the band table and figure read both."""
    return {kind: {"n": b["n"], "top1": _rounded(b["top1"], BAND_DECIMALS), "mrr": _rounded(b["mrr"], BAND_DECIMALS + 2)}
            for kind, b in bands.items()}


def _study(value):
    if not all(hasattr(value, a) for a in ("space", "policy", "datasets", "experiment")):
        raise TypeError
    return value


STUDY = Kind("a Study (Study.build)", _study)


def _reference(value):
    if not isinstance(value, dict) or not set(META_KEYS) <= set(value) or value.get("format") != FORMAT:
        raise TypeError
    return value


REFERENCE = Kind(f"a reference (a dict of format {FORMAT}: reference.load or reference.build)", _reference)


@checked(store=instance(results.ResultsStore), experiment=TEXT, name=TEXT, machine=optional(TEXT))
def build(store, experiment: str, name: str, machine: str | None = None) -> dict:
    """The reference of ``experiment`` (its final rows) in ``store``, as a dict ready to write. The
    machine (and torch) recorded are this one's unless ``machine`` says otherwise: build a reference
    where its experiment trained."""
    rows = store.rows(experiment, "final")
    if not rows:
        raise SynthError(f"experiment {experiment} has no final-stage results to make a reference of")
    cells = choose(rows)
    chosen = {key: results.canonical(c.config) for key, c in cells.items()}
    keep = [r for r in rows if chosen.get((r["dataset"], r["encoder"])) == results.canonical(json.loads(r["config"]))]
    policy = store.meta(f"policy/{experiment}")
    policy = json.loads(policy) if policy else _shipped_policy(experiment)
    sources = None
    if policy and policy.get("transfer_from"):
        source_policy = store.meta(f"policy/{policy['transfer_from']}")
        if source_policy is None:
            raise SynthError(f"experiment {experiment} transfers from {policy['transfer_from']}, whose policy is not in "
                             "this database; a reference needs it (a new encoder is searched with it first)")
        sources = {"experiment": policy["transfer_from"], "policy": json.loads(source_policy)}
    import torch

    out_rows, datasets = [], {}
    for r in sorted(keep, key=lambda r: (r["dataset"], r["encoder"], r["data_seed"], r["train_seed"])):
        row = {k: r[k] for k in ROW_KEYS}
        row["config"] = json.loads(r["config"])
        row["diverged"] = bool(r["diverged"])
        row["bands"] = _compact_bands(json.loads(r["bands"])) if r["bands"] else {}
        out_rows.append(row)
        datasets.setdefault(r["dataset"], {"recipe": json.loads(r["recipe"]), "recipe_hash": r["recipe_hash"]})
    settings = {r["settings_hash"]: json.loads(r["settings"]) for r in keep}
    if len(settings) != 1:
        raise SynthError(f"experiment {experiment} mixes {len(settings)} training settings; a reference needs one")
    (settings_hash, settings_dict), = settings.items()
    return {"format": FORMAT, "name": name, "experiment": experiment, "settings": settings_dict,
            "settings_hash": settings_hash, "policy": policy, "sources": sources,
            "machine": machine or f"{_cpu()}, {len(os.sched_getaffinity(0))} cores, "
                                  f"{sorted({r['device'] for r in keep})[0]}",
            "date": time.strftime("%Y-%m-%d", time.gmtime(max(r["created"] for r in keep))),
            "torch": torch.__version__, "code_versions": sorted({r["code_version"] or "" for r in keep}),
            "commits": json.loads(store.meta(f"commits/{experiment}") or "[]"),
            "datasets": datasets, "encoders": sorted({r["encoder"] for r in keep}), "rows": out_rows}


def _shipped_policy(experiment: str) -> dict | None:
    """The policy of an experiment recorded before policies were stored: that of the shipped space its
    name starts with, when the name checks out (the name hashes settings and policy); else None."""
    from ..search.space import experiment_name, load_space, policy_from

    try:
        space = load_space(experiment.rsplit("-", 1)[0])
        policy = policy_from(space.search, {})
    except SynthError:
        return None
    return policy.to_dict() if experiment_name(space, policy) == experiment else None


@checked(ref=REFERENCE, path=PATH)
def write(ref: dict, path) -> Path:
    """Write ``ref`` (``build``'s) to ``path``, checked as ``load`` checks it: what is written loads."""
    path = Path(path)
    if path.is_dir():
        raise SynthError(f"write: {path} is a folder; name the reference's file")
    _check(ref, path)
    atomic_write_bytes(path, (json.dumps(ref, sort_keys=True, separators=(",", ":")) + "\n").encode())
    return path


@checked(name_or_path=PATH)
def load(name_or_path) -> dict:
    """A reference by name (``experiments/references/<name>.json``) or by path, checked."""
    path = Path(name_or_path)
    if not path.suffix:
        path = REFERENCES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in REFERENCES_DIR.glob("*.json"))) or "none shipped"
        raise SynthError(f"unknown reference {str(name_or_path)!r}: not a file and not one of {known}")
    try:
        ref = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(ref, dict) and set(META_KEYS) <= set(ref) and ref["format"] == FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AssertionError, TypeError, KeyError):
        raise SynthError(f"{path} is not a sphere-synth reference file (format {FORMAT})") from None
    _check(ref, path)
    return ref


# each row's scores: Top-1 and Top-3 in points, MRR in [0, 1]; NaN is never a score (a diverged run keeps
# the Top-1 it reached), and a value outside its range would print as a verdict ("loss −193")
SCORE_RANGES = {"val_top1": 100.0, "val_top3": 100.0, "test_top1": 100.0, "test_top3": 100.0, "val_mrr": 1.0,
                "test_mrr": 1.0}


def _check(ref: dict, path) -> None:
    """A reference's content, key by key, as a damaged database row is checked: one line naming the key
    (and the row) that is wrong, before any table is built on it."""
    def bad(key, what):
        raise SynthError(f"{path}: {key} {what}")

    for key in ("name", "experiment", "machine", "date", "torch", "settings_hash"):
        if not isinstance(ref[key], str) or not ref[key]:
            bad(key, f"must be a non-empty string, not {ref[key]!r:.40}")
    if not isinstance(ref["encoders"], list) or not ref["encoders"] or not all(isinstance(e, str) for e in ref["encoders"]):
        bad("encoders", f"must be a non-empty list of encoder names, not {ref['encoders']!r:.40}")
    if not isinstance(ref["datasets"], dict) or not ref["datasets"] or not all(
            isinstance(d, dict) and {"recipe", "recipe_hash"} <= set(d) for d in ref["datasets"].values()):
        bad("datasets", "must map each dataset to its recipe and recipe_hash")
    if not isinstance(ref["settings"], dict) or results.digest(ref["settings"]) != ref["settings_hash"]:
        bad("settings_hash", "does not match settings: the training settings were edited")
    if ref["policy"] is not None and not isinstance(ref["policy"], dict):
        bad("policy", "must be a table of the search policy or null")
    if not isinstance(ref["rows"], list) or not ref["rows"]:
        bad("rows", "must be a non-empty list")
    for i, r in enumerate(ref["rows"]):
        where = f"rows[{i}]"
        if not isinstance(r, dict):
            bad(where, "is not a table")
        missing = [k for k in (*ROW_KEYS, "bands") if k not in r]
        if missing:
            bad(f"{where}.{missing[0]}", "is missing")
        if r["dataset"] not in ref["datasets"]:
            bad(f"{where}.dataset", f"{r['dataset']!r:.40} is not one of the reference's datasets")
        if r["encoder"] not in ref["encoders"]:
            bad(f"{where}.encoder", f"{r['encoder']!r:.40} is not one of the reference's encoders")
        for key in ("data_seed", "train_seed"):
            if not isinstance(r[key], int) or isinstance(r[key], bool) or r[key] < 0:
                bad(f"{where}.{key}", f"must be a non-negative integer, not {r[key]!r:.20}")
        for key, top in SCORE_RANGES.items():
            v = r[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= top):  # NaN fails too
                bad(f"{where}.{key}", f"= {v!r:.20} is not a score in [0, {top:g}]")
        if not isinstance(r["config"], dict) or not isinstance(r["bands"], dict):
            bad(f"{where}.config" if not isinstance(r["config"], dict) else f"{where}.bands", "must be a table")


@checked(ref=REFERENCE, experiment=TEXT)
def final_rows(ref: dict, experiment: str) -> list[dict]:
    """The reference as final-stage results rows of ``experiment`` (what ``report`` reads)."""
    out = []
    for r in ref["rows"]:
        d = ref["datasets"][r["dataset"]]
        row = dict(r, experiment=experiment, stage="final", recipe=results.canonical(d["recipe"]),
                   recipe_hash=d["recipe_hash"], config=results.canonical(r["config"]),
                   config_hash=results.digest(r["config"]), settings=results.canonical(ref["settings"]),
                   settings_hash=ref["settings_hash"], bands=json.dumps(_full_bands(r["bands"])), trial=None,
                   pruned_at=None, device="reference", code_version=None, created=None, id=None)
        out.append(row)
    return out


def _full_bands(bands: dict) -> dict:
    from synth.metrics import default_bands

    return {kind: {"edges": default_bands(kind.split("/")[0]).tolist() if kind.split("/")[0] in ("equal-angle", "equal-area")
                   else [], "n": b["n"], "top1": b["top1"], "mrr": b["mrr"]}
            for kind, b in bands.items()}


def with_reference(ref: dict | None, rows: list, enc_names: list, encoders_arg: str, target, experiment: str):
    """For ``report``: (rows, encoder names, target, provenance). Without a reference (None), the rows and
    the target as they are (None: report's default). With one, the reference's rows of the baselines join
    the experiment's own on its datasets, draws and seeds; the experiment must not train a reference
    encoder again, and must have trained with the reference's settings (else it is another protocol)."""
    if ref is None:
        return rows, enc_names, target, ""
    own = list(dict.fromkeys(r["encoder"] for r in rows))
    clash = [e for e in own if e in ref["encoders"]]
    if clash:
        raise SynthError(f"{', '.join(clash)}: trained in experiment {experiment} and in reference {ref['name']}; "
                         "with --reference, train only your own encoder(s)")
    other = sorted({r["settings_hash"] for r in rows} - {ref["settings_hash"]})
    if other:
        raise SynthError(f"experiment {experiment} trained with other settings than reference {ref['name']} "
                         f"(settings {', '.join(other)} against {ref['settings_hash']}): not the same protocol; "
                         "sweep with --reference to follow it")
    if target is None and len(own) != 1:
        raise SynthError(f"experiment {experiment} has {len(own)} encoders ({', '.join(own)}): name the one to compare "
                         "with --target")
    target = target or own[0]
    if target not in own:
        raise SynthError(f"--target {target}: not trained in experiment {experiment} (it has {', '.join(own)})")
    # paired by draw (the datasets are bit-identical): the reference's seeds need not be yours (another
    # training seed, another machine); stats.difference averages each side's seeds within a draw
    # a draw is (dataset, recipe, seed): a user recipe that reuses a paper name pairs with nothing
    draws = {(r["dataset"], r["recipe_hash"], r["data_seed"]) for r in rows}
    theirs = [r for r in final_rows(ref, experiment) if (r["dataset"], r["recipe_hash"], r["data_seed"]) in draws]
    unpaired = sorted(draws - {(r["dataset"], r["recipe_hash"], r["data_seed"]) for r in theirs})
    if unpaired:  # a draw of yours without the baselines: its verdict would have nothing to compare with
        ref_draws = sorted({r["data_seed"] for r in ref["rows"]})
        raise SynthError(f"experiment {experiment} has {len(unpaired)} (dataset, draw) pair(s) that reference "
                         f"{ref['name']} does not hold ({', '.join(f'{d} draw {k}' for d, _, k in unpaired[:4])}"
                         f"{', ...' if len(unpaired) > 4 else ''}); the reference has datasets "
                         f"{','.join(sorted(ref['datasets']))}, draws {','.join(map(str, ref_draws))}: sweep "
                         f"your encoder with --reference {ref['name']}, which follows them")
    if encoders_arg == "table8":  # the reference's encoders in Table 8's order, then yours
        from ..models.encoders import parse_names

        order = parse_names("table8")
        names = sorted(ref["encoders"], key=lambda e: (order.index(e) if e in order else len(order), e)) + own
    else:
        names = list(enc_names)
    devices = sorted({r["device"] for r in rows})
    dates = sorted(time.strftime("%Y-%m-%d", time.gmtime(r["created"])) for r in rows if r.get("created"))
    provenance = (f"Trained here: {', '.join(own)} (experiment {experiment}, on {', '.join(devices)}"
                  + (f", {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") if dates else "")
                  + f"). From the {provenance_line(ref)}: {', '.join(e for e in names if e in ref['encoders'])}. "
                  "The datasets are bit-identical on every machine, so the draws pair; each part trained where "
                  "it says, and training is bit-identical only on one machine.")
    return rows + theirs, names, target, provenance


def own_experiment(ref: dict | None, store) -> str | None:
    """The experiment ``report --reference`` reads by default: the one the reference's protocol gives
    (the same space, settings and search give the same name), where the database holds several (a
    transfer reference's sweep adds the cold source searches)."""
    if ref is None:
        return None
    return ref["experiment"] if ref["experiment"] in store.experiments() else None


def provenance_line(ref: dict) -> str:
    code = f", code {', '.join(ref['commits'])}" if ref.get("commits") else ""
    return (f"reference {ref['name']} (experiment {ref['experiment']}, trained on {ref['machine']}, {ref['date']}, "
            f"torch {ref['torch']}{code})")


def reference_summary(t, pooled: str = "") -> str:
    """summary.md of a table whose target is not sphereM+ (the paper's claims are about sphereM+):
    where the columns come from, the target's verdicts against the baselines, and ``pooled`` (the
    pooled answer over the datasets, written by the report)."""
    rows = [r for r in t.rows if r["verdict"] in ("win", "tie", "loss")]
    count = {v: [r for r in rows if r["verdict"] == v] for v in ("win", "tie", "loss")}
    lines = [f"# Summary: {t.target} against the best baseline", "", t.provenance, "",
             f"Verdicts of {t.target} against every baseline at once (95 % t intervals on the per-draw differences; "
             f"win = better than each baseline, loss = some baseline better; docs/statistics.md): **win on "
             f"{len(count['win'])}, tie on {len(count['tie'])}, loss on {len(count['loss'])}** of {len(rows)} "
             "datasets.", ""]
    for v in ("win", "tie", "loss"):
        if count[v]:
            lines.append(f"- {v}: " + "; ".join(f"{r['dataset']} {r['delta']:+.2f} [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}] "
                                                 f"vs {r['best_baseline']}" for r in count[v]))
    return "\n".join(lines + (["", pooled] if pooled else [])) + "\n"


@checked(policy=TABLE)
def policy_flags(policy: dict) -> dict:
    """A recorded policy as the search flags that give it back (``space.policy_from``)."""
    return {k: v for k, v in policy.items() if v is not None}


@checked(ref=REFERENCE)
def source_datasets(ref: dict) -> list[str]:
    """The datasets whose cold searches a transfer reference's searches started from (none otherwise)."""
    return list(ref["policy"]["transfer_datasets"]) if ref.get("sources") else []


@checked(ref=REFERENCE, study=STUDY)
def check_protocol(ref: dict, study) -> None:
    """A sweep with --reference follows the reference's protocol: the same training settings and the
    same search policy (budget, pruner, finalists, seeds), and none of its encoders trained again."""
    clash = [e for e in study.encoders if e in ref["encoders"]]
    if clash:
        raise SynthError(f"--reference {ref['name']}: {', '.join(clash)} come(s) from the reference; train only your "
                         "own encoder(s)")
    if results.digest(study.space.settings.to_dict()) != ref["settings_hash"]:
        raise SynthError(f"--reference {ref['name']}: space {study.space.name} trains with other settings than the "
                         f"reference ({results.canonical(ref['settings'])}); a comparison needs the same training")
    if ref["policy"] is not None and study.policy.to_dict() != ref["policy"]:
        raise SynthError(f"--reference {ref['name']}: the search differs from the reference's "
                         f"({results.canonical(ref['policy'])}); every encoder gets the same budget")
    missing = sorted(set(study.datasets) - set(ref["datasets"]))
    if missing:
        raise SynthError(f"--reference {ref['name']} has no results on {', '.join(missing)}; it covers "
                         f"{', '.join(sorted(ref['datasets']))}")
