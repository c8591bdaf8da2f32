"""Table formatting and table files: Markdown, LaTeX, the per-latitude-band table, and ``compare``
of two ``table8.csv`` files, the search's finalists (``search.md``). No statistics here (``stats``) and no database (``results``).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from synth.errors import SynthError
from synth.params import PATH, checked

from ..search.selection import choose
from .stats import verdict

LABELS = {"wrap_ffn": "wrap+ffn"}  # column labels where an encoder's name is not what the paper prints


def to_markdown(recs: list[dict]) -> str:
    if not recs:  # e.g. every run diverged: say so rather than fail
        return "(no results to show)\n"
    cols = list(recs[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in recs]
    return "\n".join(lines) + "\n"


def to_csv_bytes(recs: list[dict]) -> bytes:
    """Records (dicts with the same keys) as CSV, header first."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(recs[0]))
    w.writeheader()
    w.writerows(recs)
    return buf.getvalue().encode()


def to_latex(recs: list[dict], caption: str) -> str:
    cols = list(recs[0])
    esc = lambda s: str(s).replace("%", r"\%").replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("†", r"$\dagger$").replace("—", "--")  # noqa: E731
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize", r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}",
             r"\toprule", " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(r[c]) for c in cols) + r" \\" for r in recs]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


VERDICTS = ("win", "tie", "loss", "—")
MAX_TABLE_BYTES = 10 * 2**20  # a table8.csv of 20 datasets is a few kB


def _number(text: str, where: str) -> float | None:
    """'' -> None; a finite number; anything else is one line naming the cell."""
    if text is None or text == "":
        return None
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not np.isfinite(v):
        raise SynthError(f"{where} = {text[:40]!r} is not a finite number")
    return v


@checked(path=PATH)
def read_table8_csv(path) -> dict:
    """{dataset: record} of a ``table8.csv`` written by ``report``, every field checked: UTF-8 text,
    the columns compare needs, numbers that are numbers, one row per dataset, and verdicts that
    follow their interval (win: above 0, loss: below 0, tie: around 0)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TABLE_BYTES + 1)
    except OSError as e:
        raise SynthError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_TABLE_BYTES:
        raise SynthError(f"{path} is larger than {MAX_TABLE_BYTES // 2**20} MB: not a table8.csv")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SynthError(f"{path} is not UTF-8 text: not a table8.csv written by `experiments report`") from None
    try:
        recs = list(csv.DictReader(text.splitlines()))
    except csv.Error as e:
        raise SynthError(f"{path} is not a readable CSV file ({e})") from None
    need = {"dataset", "verdict", "delta_top1", "ci_low", "ci_high"}
    if not recs or not need <= set(recs[0]) or not any(c.endswith("_mean") for c in recs[0]):
        raise SynthError(f"{path} is not a table8.csv with verdicts (written by `experiments report`): it needs the "
                         f"columns {', '.join(sorted(need))} and <encoder>_mean")
    out = {}
    for n, r in enumerate(recs, start=2):
        d = r["dataset"]
        if not d or None in r or any(v is None for v in r.values()):
            raise SynthError(f"{path} line {n}: a row with missing or extra fields")
        if d in out:
            raise SynthError(f"{path}: dataset {d} appears twice")
        if r["verdict"] not in VERDICTS:
            raise SynthError(f"{path} line {n}: verdict {r['verdict'][:20]!r} is not one of {', '.join(VERDICTS)}")
        nums = {c: _number(v, f"{path} line {n} {c}") for c, v in r.items()
                if c in ("delta_top1", "ci_low", "ci_high") or c.endswith("_mean")}
        lo, hi = nums["ci_low"], nums["ci_high"]
        want = verdict(None if lo is None or hi is None else (lo, hi))  # the one rule (stats.verdict)
        if (lo is None) != (hi is None) or (lo is not None and lo > hi) or r["verdict"] != want:
            raise SynthError(f"{path} line {n}: verdict {r['verdict']} does not follow its interval "
                             f"[{r['ci_low']}, {r['ci_high']}]")
        out[d] = {**r, **nums}
    return out


@checked(path_a=PATH, path_b=PATH)
def compare_tables(path_a, path_b) -> str:
    """Two ``table8.csv`` files of the same datasets (e.g. disjoint training seeds, or two machines):
    the verdicts side by side, how many agree, and how far the cells' means moved."""
    a, b = read_table8_csv(path_a), read_table8_csv(path_b)
    common = [d for d in a if d in b]
    if not common:
        raise SynthError(f"{path_a} and {path_b} have no dataset in common")
    encs = [c[:-5] for c in a[common[0]] if c.endswith("_mean") and c in b[common[0]]]
    lines = ["| dataset | verdict A | verdict B | ΔTop1 A [95% CI] | ΔTop1 B [95% CI] |", "|---|---|---|---|---|"]
    for d in common:
        fmt = lambda r: (f"{r['delta_top1']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"  # noqa: E731
                         if r["ci_low"] is not None and r["delta_top1"] is not None else "—")
        lines.append(f"| {d} | {a[d]['verdict']} | {b[d]['verdict']} | {fmt(a[d])} | {fmt(b[d])} |")
    agree = sum(a[d]["verdict"] == b[d]["verdict"] for d in common)
    moves = [abs(a[d][f"{e}_mean"] - b[d][f"{e}_mean"]) for d in common for e in encs
             if a[d][f"{e}_mean"] is not None and b[d][f"{e}_mean"] is not None]
    lines += ["", f"Verdicts agree on {agree} of {len(common)} datasets."]
    older = [str(p) for p, t in ((path_a, a), (path_b, b)) if "detectable_win" not in t[common[0]]]
    if older:  # written before the verdict rule of docs/statistics.md: its verdicts are that older rule's
        lines.append(f"Note: {', '.join(older)} predate(s) the verdict rule of docs/statistics.md (no detectable "
                     "columns): rebuild with `report` for verdicts by today's rule.")
    if moves:
        lines.append(f"Cell means (Top-1, {len(moves)} encoder cells): mean |A − B| {np.mean(moves):.2f} points, "
                     f"median {np.median(moves):.2f}, max {max(moves):.2f}.")
    return "\n".join(lines) + "\n"


def band_table(cells: dict, dataset_names, encoder_names, ceilings: dict, kind="equal-angle") -> list[dict]:
    """Per band, pooled over the given datasets: test counts, Top-1 and MRR per encoder, Δ vs grid, Bayes."""
    out = []
    edges = None
    acc: dict = {}
    for d in dataset_names:
        for e in encoder_names:
            c = cells.get((d, e))
            if c is None:
                continue
            counted = set()
            for (draw, _), b in zip(c.keys, c.bands):  # one entry per (draw, seed): all weigh in,
                bk = b[kind]                             # each draw's test samples count once
                edges = bk["edges"]
                n = np.array(bk["n"], float)
                a = acc.setdefault(e, {"n": np.zeros_like(n), "w": np.zeros_like(n), "top1": np.zeros_like(n),
                                       "mrr": np.zeros_like(n)})
                if draw not in counted:
                    counted.add(draw)
                    a["n"] += n
                a["w"] += n
                a["top1"] += np.nan_to_num(np.array(bk["top1"], float)) * n
                a["mrr"] += np.nan_to_num(np.array(bk["mrr"], float)) * n
        for cdict in ceilings[d]:
            bands_b = cdict.get(f"bands_{kind}")
            if bands_b is None:
                continue
            a = acc.setdefault("bayes", {"n": np.zeros(len(bands_b)), "w": np.zeros(len(bands_b)),
                                         "top1": np.zeros(len(bands_b)), "mrr": np.zeros(len(bands_b))})
            n = np.array([b["n"] for b in bands_b], float)
            a["n"] += n
            a["w"] += n
            a["top1"] += np.nan_to_num(np.array([b["top1"] for b in bands_b])) * n
            a["mrr"] += np.nan_to_num(np.array([b["mrr"] for b in bands_b])) * n
    if edges is None:
        return out
    for i in range(len(edges) - 1):
        rec = {"lat_lo": edges[i], "lat_hi": edges[i + 1]}
        for e, a in acc.items():
            w = a["w"][i]
            rec[f"{e}_n"] = int(a["n"][i])
            rec[f"{e}_top1"] = a["top1"][i] / w if w else float("nan")
            rec[f"{e}_mrr"] = a["mrr"][i] / w if w else float("nan")
        if "grid" in acc:
            for e in acc:
                if e not in ("grid", "bayes"):
                    rec[f"{e}_dmrr_vs_grid"] = rec[f"{e}_mrr"] - rec["grid_mrr"]
        out.append(rec)
    return out


def search_records(search_rows: list[dict], final_rows: list[dict]) -> list[dict]:
    """Per (dataset, encoder): trials, pruned, diverged, member-epochs of the search, and the
    finalists (mean search validation Top-1, trial number), the one Table 8 chose marked."""
    chosen = {k: c.config for k, c in choose(final_rows).items()} if final_rows else {}
    first = {}  # (dataset, encoder) -> its selection draw
    for r in final_rows:
        first[(r["dataset"], r["encoder"])] = min(r["data_seed"], first.get((r["dataset"], r["encoder"]), r["data_seed"]))
    finals: dict = {}  # (dataset, encoder, config hash) -> final-stage runs on the selection draw
    for r in final_rows:
        if r["data_seed"] == first[(r["dataset"], r["encoder"])]:
            k = (r["dataset"], r["encoder"], r["config_hash"])
            finals[k] = finals.get(k, 0) + 1
    cells: dict = {}
    for r in search_rows:
        cells.setdefault((r["dataset"], r["encoder"]), {}).setdefault(r["trial"], []).append(r)
    out = []
    for (d, e), trials in cells.items():
        fin = []
        for number, rs in sorted(trials.items()):
            # the finalist's own trial: TPE may have tried its configuration before, and pruned it
            if ((d, e, rs[0]["config_hash"]) in finals and all(r["pruned_at"] is None for r in rs)
                    and not any(f["config_hash"] == rs[0]["config_hash"] for f in fin)):
                fin.append({"config_hash": rs[0]["config_hash"], "config": json.loads(rs[0]["config"]), "trial": number,
                            "val": float(np.mean([r["val_top1"] for r in rs])),
                            "seeds": finals[(d, e, rs[0]["config_hash"])],
                            "chosen": json.loads(rs[0]["config"]) == chosen.get((d, e))})
        most = max((f["seeds"] for f in fin), default=0)
        for f in fin:
            f["stopped"] = f["seeds"] < most  # left the finalists' race early
        out.append({"dataset": d, "encoder": e, "trials": len(trials),
                    "pruned": sum(any(r["pruned_at"] is not None for r in rs) for rs in trials.values()),
                    "diverged": sum(any(r["diverged"] for r in rs) for rs in trials.values()),
                    "member_epochs": sum(r["epochs_run"] for rs in trials.values() for r in rs),
                    "finalists": sorted(fin, key=lambda f: -f["val"])})
    return out


def search_markdown(recs: list[dict]) -> str:
    lines = ["# Adaptive search: finalists per dataset and encoder", "",
             "A trial's score is its mean validation Top-1 over the search seeds; the best trials that were neither "
             "pruned nor diverged are the finalists, retrained on every seed; Table 8 chooses among them on "
             "validation (**chosen**). With the race (`race = true`), a finalist clearly behind the leader "
             "stops after fewer seeds (*stopped*).", "",
             "| dataset | encoder | trials | pruned | diverged | member-epochs | finalists (search val Top-1, trial, "
             "seeds) |",
             "|---|---|---|---|---|---|---|"]
    for r in recs:
        fin = "; ".join(("**" if f["chosen"] else "") + ", ".join(f"{k}={v}" for k, v in sorted(f["config"].items()))
                        + f" ({f['val']:.1f}, #{f['trial']}, {f['seeds']} seed(s)"
                        + ("; *stopped*)" if f["stopped"] else ")") + ("**" if f["chosen"] else "")
                        for f in r["finalists"])
        lines.append(f"| {r['dataset']} | {LABELS.get(r['encoder'], r['encoder'])} | {r['trials']} | {r['pruned']} | "
                     f"{r['diverged']} | {r['member_epochs']} | {fin} |")
    return "\n".join(lines) + "\n"
