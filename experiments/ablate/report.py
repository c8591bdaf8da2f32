"""The report of an ablation: every level, its paired difference against the reference level with
the t interval and verdict of Table 8 (``experiments.report.stats``), pooled over its datasets, per latitude band
beside the Bayes ceiling, as tables (md, csv, tex) and two figures.

- ``ablation_<name>.{md,csv,tex}``: per (dataset, encoder, level) test Top-1 mean ± sd over draws,
  the physical and native value of a scale, Δ against the reference [95 % interval], the verdict,
  the difference it could detect, and the Bayes ceiling of that level's data; below, each level
  pooled over the datasets.
- ``ablation_<name>_bands.{md,csv}``: per equal-area latitude band, Top-1, Δ against the reference
  and the Bayes ceiling. For a tilted dataset the bands are taken in the frame *before* the tilt (the
  same test points in the same band at every level, so the difference is paired); the csv also has
  the bands of the frame the encoder sees (``frame`` column).
- figures ``ablation_<name>_levels`` (Top-1 against level, one line per encoder, its 95 % band, the
  Bayes ceiling dashed) and ``ablation_<name>_bands`` (level × band heat map of Δ against the reference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from synth import bayes, datasets as synth_datasets
from synth.errors import SynthError
from synth.params import PATH, ROWS, TABLE, Kind, checked, instance, optional
from synth.fileio import atomic_write_bytes
from synth.metrics import default_bands
from synth.plot import save_figure

from ..models import encoders, scales
from ..report.diagnostics import COLORS
from ..store.results import ResultsStore
from ..report.stats import difference, judge, mean, pool
from ..report.tables import to_csv_bytes, to_latex, to_markdown
from ..models.train import ORIGINAL_FRAME

BAND_KIND = "equal-area"


def _paired(cell, ref):
    """The judgement (stats.judge) of cell − ref: paired by draw, a t interval, the verdict."""
    return judge({"reference": difference(cell.values(), ref.values())})


def _mean_interval(cell):
    """95 % t interval of a level's mean Top-1 over draws (seeds when there is one draw)."""
    est = mean(cell.values())
    return (cell.mean, cell.mean) if est is None else est.interval()


def _ablation(value):
    if not all(hasattr(value, a) for a in ("factor", "datasets", "encoders")):
        raise TypeError
    return value


ABLATION = Kind("an Ablation (Ablation.build)", _ablation)


def _check_ceil(abl, ceil: dict) -> None:
    f = abl.factor
    levels = f.levels if f.kind == "data" else [None]  # one ceiling per dataset unless the data change
    missing = [(d, level) for d in abl.datasets for level in levels if (d, level) not in ceil]
    if missing:
        raise SynthError(f"ceil has no Bayes ceiling for {missing[0]} (of {len(missing)}): pass bayes_by_level(abl)")


@checked(abl=ABLATION)
def bayes_by_level(abl) -> dict:
    """{(dataset, level): {"top1": mean over draws, "bands": {frame: [per band]}}} of the Bayes classifier."""
    out = {}
    levels = abl.factor.levels if abl.factor.kind == "data" else [None]
    for d in abl.datasets:
        for level in levels:
            recipe = abl.recipe(d, level)
            top1, bands = [], {"": [], ORIGINAL_FRAME: []}
            for s in abl.data_seeds:
                ds = synth_datasets.generate(recipe, s)
                lat = {"": None, ORIGINAL_FRAME: synth_datasets.original_frame(recipe, ds.split("test")[0])[:, 1]}
                for frame, band_lat in lat.items():
                    b = bayes.evaluate(ds, "test", band_kind=BAND_KIND, band_lat=band_lat)
                    bands[frame].append([x["top1"] for x in b["bands"]])
                top1.append(b["top1"])
            out[(d, level)] = {"top1": float(np.mean(top1)),
                               "bands": {f: np.nanmean(np.array(v, float), 0) for f, v in bands.items()}}
    return out


def _bayes(ceil, d, level, kind):
    return ceil[(d, level if kind == "data" else None)]


def _band_values(cell, frame):
    """{(draw, seed): per-band Top-1 array} of a cell in one frame (the encoder's if the row has no other)."""
    out = {}
    for key, b in zip(cell.keys, cell.bands):
        kind = BAND_KIND + frame if BAND_KIND + frame in b else BAND_KIND
        out[key] = np.array(b[kind]["top1"], float)
    return out


def _groups(abl):
    """(group label, encoder at each level): per encoder, or one group when the encoder is the factor."""
    if abl.factor.kind == "encoder":
        return [("—", {v: v for v in abl.factor.levels})]
    return [(e, {v: e for v in abl.factor.levels}) for e in abl.encoders]


def _value_columns(abl, encoder, level, config) -> dict:
    f = abl.factor
    if f.kind == "physical":
        native = scales.scale_params(encoder)[scales.parse_physical(f.name)[0]]
        return {f.name: f.label(level), "native": f"{native} = {config.get(native, float('nan')):.4g}"}
    if f.kind == "hyper" and f.name in encoders.spec(encoder).scales:
        unit_value = scales.to_physical(encoder, f.name, level, "deg", config)
        return {f.name: f.label(level), "native": f"{encoders.spec(encoder).scales[f.name][0]} = {unit_value:.4g}°"}
    return {f.name: f.label(level)}


@checked(abl=ABLATION, cells=TABLE, ceil=TABLE, diverged=instance(set, frozenset))
def records(abl, cells: dict, ceil: dict, diverged=frozenset()) -> list[dict]:
    _check_ceil(abl, ceil)
    f = abl.factor
    recs = []
    for d in abl.datasets:
        for group, enc_at in _groups(abl):
            ref = cells.get((d, enc_at[f.reference], f.reference))
            for level in f.levels:
                e = enc_at[level]
                c = cells.get((d, e, level))
                rec = {"dataset": d, "encoder": group if f.kind != "encoder" else e}
                rec.update(_value_columns(abl, e, level, c.config if c else {}))
                if c is None:
                    what = "diverged" if (d, e, level) in diverged else "not run"
                    rec.update({"top1": what, "n": 0, "Δ vs ref": "", "95% CI": "", "verdict": "—", "detectable": ""})
                else:
                    rec["top1"] = f"{c.mean:.1f} ± {c.std:.1f}"
                    rec["n"] = len(c.test)
                    if level == f.reference:
                        rec.update({"Δ vs ref": "0 (reference)", "95% CI": "", "verdict": "reference", "detectable": ""})
                    elif ref is None:
                        rec.update({"Δ vs ref": "", "95% CI": "", "verdict": "—", "detectable": ""})
                    else:
                        j = _paired(c, ref)
                        rec["Δ vs ref"] = "" if j.estimate is None else f"{j.delta:+.2f}"
                        rec["95% CI"] = "" if j.ci is None else f"[{j.low:+.2f}, {j.high:+.2f}]"
                        rec["verdict"] = j.verdict
                        rec["detectable"] = "" if j.ci is None else f"±{j.detectable[0]:.2f}"
                rec["bayes"] = f"{_bayes(ceil, d, level, f.kind)['top1']:.1f}"
                recs.append(rec)
    return recs


@checked(abl=ABLATION, cells=TABLE)
def pooled_records(abl, cells: dict) -> list[dict]:
    """Per (encoder, level): the level − the reference pooled over the ablation's datasets (each weighing
    the same; stats.pool), with its interval, verdict and detectable difference. Only where the level
    pairs with the reference on every dataset; none with a single dataset (the table says it already)."""
    f = abl.factor
    if len(abl.datasets) < 2:
        return []
    recs = []
    for group, enc_at in _groups(abl):
        for level in f.levels:
            if level == f.reference:
                continue
            est = []
            for d in abl.datasets:
                c, ref = cells.get((d, enc_at[level], level)), cells.get((d, enc_at[f.reference], f.reference))
                est.append(None if c is None or ref is None else difference(c.values(), ref.values()))
            if any(e is None for e in est):
                continue
            j = judge({"reference": pool(est)})
            recs.append({"encoder": group if f.kind != "encoder" else enc_at[level], f.name: f.label(level),
                         "datasets": len(est), "Δ vs ref": f"{j.delta:+.2f}", "95% CI": f"[{j.low:+.2f}, {j.high:+.2f}]",
                         "verdict": j.verdict, "detectable": f"±{j.detectable[0]:.2f}"})
    return recs


@checked(abl=ABLATION, cells=TABLE, ceil=TABLE)
def band_records(abl, cells: dict, ceil: dict) -> list[dict]:
    _check_ceil(abl, ceil)
    """One record per (dataset, encoder, level, frame, band): Top-1, Δ against the reference, Bayes."""
    f = abl.factor
    edges = default_bands(BAND_KIND)
    frames = [ORIGINAL_FRAME, ""] if f.name == "tilt" else [""]
    recs = []
    for frame in frames:
        for d in abl.datasets:
            for group, enc_at in _groups(abl):
                ref = cells.get((d, enc_at[f.reference], f.reference))
                ref_b = _band_values(ref, frame) if ref else {}
                for level in f.levels:
                    c = cells.get((d, enc_at[level], level))
                    if c is None:
                        continue
                    vals = _band_values(c, frame)
                    mean = np.nanmean(np.stack(list(vals.values())), 0)
                    common = sorted(set(vals) & set(ref_b))
                    diff = (np.nanmean(np.stack([vals[k] - ref_b[k] for k in common]), 0) if common
                            else np.full(len(mean), np.nan))
                    bay = _bayes(ceil, d, level, f.kind)["bands"][frame]
                    for i in range(len(edges) - 1):
                        recs.append({"frame": "before tilt" if frame else "encoder's", "dataset": d,
                                     "encoder": group if f.kind != "encoder" else enc_at[level],
                                     f.name: f.label(level), "band": i, "lat_lo": f"{edges[i]:.1f}", "lat_hi": f"{edges[i + 1]:.1f}",
                                     "top1": f"{mean[i]:.1f}", "Δ vs ref": f"{diff[i]:+.2f}", "bayes": f"{bay[i]:.1f}"})
    return recs


@checked(abl=ABLATION, cells=TABLE, ceil=TABLE)
def levels_figure(abl, cells, ceil) -> Figure:
    _check_ceil(abl, ceil)
    f = abl.factor
    n = len(abl.datasets)
    fig = Figure(figsize=(max(5.2 * n, 7.0), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    x = np.arange(len(f.levels))
    for ax, d in zip(axes, abl.datasets):
        for group, enc_at in _groups(abl):
            pts = [(i, cells.get((d, enc_at[v], v))) for i, v in enumerate(f.levels)]
            pts = [(i, c) for i, c in pts if c is not None]
            if not pts:
                continue
            xs = [i for i, _ in pts]
            lo_hi = np.array([_mean_interval(c) for _, c in pts])
            color = COLORS.get(group, None) if f.kind != "encoder" else "tab:blue"
            means = np.array([c.mean for _, c in pts])
            if f.kind == "encoder":  # categories: no line between them
                ax.errorbar(xs, means, yerr=[means - lo_hi[:, 0], lo_hi[:, 1] - means], fmt="o", capsize=4,
                            color=color, label="Top-1")
            else:
                ax.fill_between(xs, lo_hi[:, 0], lo_hi[:, 1], alpha=0.2, color=color)
                ax.plot(xs, means, "o-", color=color, label=group)
        ax.plot(x, [_bayes(ceil, d, v, f.kind)["top1"] for v in f.levels], "k--", lw=1.5, label="Bayes ceiling")
        ref = f.levels.index(f.reference)
        ax.axvline(ref, color="0.7", lw=0.8, ls=":")
        ax.set_xticks(x, [f.label(v) for v in f.levels], rotation=30 if f.kind == "encoder" else 0)
        ax.set(xlabel=f"{f.name} (reference {f.label(f.reference)})", ylabel="test Top-1 (%)", title=d)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.suptitle(f"ablation {abl.name}: test Top-1 against {f.name}\nmean over {len(abl.data_seeds)} draw(s) x "
                 f"{len(abl.seeds)} seed(s) with the 95 % interval of that mean\n(draws vary; the differences "
                 "against the reference are paired: see the table)", fontsize=9)
    return fig


@checked(abl=ABLATION, band_recs=ROWS)
def bands_figure(abl, band_recs) -> Figure:
    f = abl.factor
    frame = "before tilt" if f.name == "tilt" else "encoder's"
    recs = [r for r in band_recs if r["frame"] == frame]
    order = {e: i for i, e in enumerate(abl.encoders)}
    if not recs:
        raise SynthError(f"bands_figure: no band records in the {frame} frame (band_records gives them)")
    panels = sorted({(r["dataset"], r["encoder"]) for r in recs},
                    key=lambda p: (abl.datasets.index(p[0]), order.get(p[1], len(order))))
    if f.kind == "encoder":
        panels = sorted({(r["dataset"], "—") for r in recs}, key=lambda p: abl.datasets.index(p[0]))
    edges = default_bands(BAND_KIND)
    # one row per dataset, one column per encoder (at most 5 columns)
    ncol = min(len(panels), 5, len({e for _, e in panels}) if f.kind != "encoder" else len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig = Figure(figsize=(4.2 * ncol, 0.45 * len(f.levels) * nrow + 1.6 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    grids = []
    for d, e in panels:
        M = np.full((len(f.levels), len(edges) - 1), np.nan)
        for r in recs:
            if r["dataset"] == d and (f.kind == "encoder" or r["encoder"] == e):
                i = [f.label(v) for v in f.levels].index(r[f.name])
                M[i, r["band"]] = float(r["Δ vs ref"])
        grids.append(M)
    lim = max([np.nanmax(np.abs(M)) for M in grids if np.isfinite(M).any()] + [0.5])
    for ax, (d, e), M in zip(axes, panels, grids):
        im = ax.imshow(M, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim, origin="lower",
                       extent=(-0.5, len(edges) - 1.5, -0.5, len(f.levels) - 0.5))
        ax.set_yticks(range(len(f.levels)), [f.label(v) for v in f.levels])
        ticks = range(0, len(edges) - 1, 3)
        ax.set_xticks(list(ticks), [f"{(edges[j] + edges[j + 1]) / 2:.0f}°" for j in ticks], fontsize=7)
        ax.set(xlabel=f"{BAND_KIND} latitude band ({frame} frame)", ylabel=f.name,
               title=f"{d}" + (f" · {e}" if f.kind != "encoder" else ""))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes[:len(panels)].tolist(), label="Δ test Top-1 (points)")
    fig.suptitle(f"ablation {abl.name}: where accuracy moves — Δ test Top-1 against {f.name} = "
                 f"{f.label(f.reference)}, per band", fontsize=10)
    return fig


@checked(abl=ABLATION, out=PATH, figures=optional(PATH))
def write_report(abl, out, figures=None) -> list[Path]:
    """Every table (and both figures unless ``figures`` is None) of an ablation; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not abl.db.exists():
        raise SynthError(f"{abl.db} does not exist: run the ablation first")
    diverged: set = set()
    with ResultsStore(abl.db, readonly=True) as store:
        cells = abl.cells(store, diverged, bands=BAND_KIND)
    if not cells and not diverged:
        raise SynthError(f"{abl.db} holds no run of ablation {abl.name} ({abl.experiment(abl.factor.levels[0])} ...)")
    ceil = bayes_by_level(abl)
    recs = records(abl, cells, ceil, diverged)
    brecs = band_records(abl, cells, ceil)
    safe = abl.name.replace(".", "-")  # save_figure and with_suffix read a dot as a suffix
    stem = out / f"ablation_{safe}"
    title = (f"Ablation {abl.name}: {abl.factor.name}, hold {abl.hold.mode}; test Top-1 mean ± sd over "
             f"{len(abl.data_seeds)} draw(s) x {len(abl.seeds)} seed(s); Δ paired against the reference level, "
             "95 % t interval over the draws and its verdict (docs/statistics.md); detectable = the true Δ "
             "found with 80 % power; Bayes = the Bayes-optimal Top-1 of that level's data")
    pooled = pooled_records(abl, cells)
    pooled_md = (f"\n## Pooled over the {len(abl.datasets)} datasets\n\nEach level − the reference, the mean over the "
                 "datasets of the paired per-draw difference (each dataset weighing the same), with its interval and "
                 f"verdict\n\n{to_markdown(pooled)}") if pooled else ""
    written = []
    for suffix, data in ((".md", f"{title}\n\n{to_markdown(recs)}{pooled_md}".encode()), (".csv", to_csv_bytes(recs)),
                         (".tex", to_latex(recs, title).encode())):
        atomic_write_bytes(stem.with_suffix(suffix), data)
        written.append(stem.with_suffix(suffix))
    band_stem = out / f"ablation_{safe}_bands"
    frame_note = ("bands in the frame before the tilt (the same test points per band at every level); the csv "
                  "also has the encoder's frame" if abl.factor.name == "tilt" else "bands in the data's frame")
    main_frame = "before tilt" if abl.factor.name == "tilt" else "encoder's"
    md = [r for r in brecs if r["frame"] == main_frame]
    if brecs:
        atomic_write_bytes(band_stem.with_suffix(".md"),
                           f"Per {BAND_KIND} latitude band ({frame_note})\n\n{to_markdown(md)}".encode())
        atomic_write_bytes(band_stem.with_suffix(".csv"), to_csv_bytes(brecs))
        written += [band_stem.with_suffix(".md"), band_stem.with_suffix(".csv")]
    if figures is not None:
        fig_dir = Path(figures)
        written += save_figure(levels_figure(abl, cells, ceil), fig_dir / f"ablation_{safe}_levels")
        if brecs:
            written += save_figure(bands_figure(abl, brecs), fig_dir / f"ablation_{safe}_bands")
    return written
