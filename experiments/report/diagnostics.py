"""Polar-band and distortion diagnostics, and maps of what trained models predict.

- ``band_figure``: the paper's Figure 4 style — test samples per latitude band, Top-1 per band of
  each encoder against the Bayes ceiling, and ΔMRR of each encoder against grid.
- ``distortion``: how ‖G(x₁) − G(x₂)‖ tracks the great-circle distance as a function of latitude:
  per band, the Spearman rank correlation over random pairs up to 10° apart, and the code distance
  of pairs exactly 2° apart relative to the same at the equator. A map-projection encoder (grid,
  theory) stretches near the poles; a spherical one should not.
- ``model_maps``: per-cell ΔRR of the compared encoder (sphereM+ unless a report compares another,
  e.g. a plugin's) against grid on a map (Figure 4d), and the predicted distribution of a polar and an
  equatorial class for grid, wrap, sphereM+ and that encoder (Figure 2).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from synth import bayes, datasets as synth_datasets
from synth.fileio import atomic_write_bytes
from synth.plot import save_figure, use_offline_natural_earth
from synth.sphere import lonlat_to_xyz, xyz_to_lonlat

from ..models import encoders
from ..models.train import predict_logits, predict_ranks, score_batch

DISTORTION_ENCODERS = ("grid", "theory", "wrap", "rbf", "rff", "xyz", "nerf", "sphereC", "sphereM+",
                       "spherical_harmonics")
COLORS = {"grid": "tab:orange", "theory": "tab:brown", "wrap": "tab:green", "wrap_ffn": "tab:olive", "rbf": "tab:pink",
          "rff": "tab:purple", "xyz": "tab:gray", "nerf": "tab:cyan", "sphereC": "tab:blue", "sphereM+": "tab:red",
          "spherical_harmonics": "black", "bayes": "black"}


def band_figure(bands: list[dict], encoder_names, title: str) -> Figure:
    lo = np.array([b["lat_lo"] for b in bands])
    hi = np.array([b["lat_hi"] for b in bands])
    mid, width = (lo + hi) / 2, (hi - lo)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    n_key = next((f"{e}_n" for e in encoder_names if f"{e}_n" in bands[0]), None)
    if n_key:
        ax1.bar(mid, [b[n_key] for b in bands], width=width * 0.9, color="0.5")
    ax1.set(xlabel="latitude band (degrees)", ylabel="test samples (summed over datasets and draws)",
            title="(a) samples per latitude band")
    if "bayes_top1" in bands[0]:
        ax2.plot(mid, [b["bayes_top1"] for b in bands], "k--", lw=2, label="Bayes-optimal")
    for e in encoder_names:
        if f"{e}_top1" in bands[0]:
            ax2.plot(mid, [b[f"{e}_top1"] for b in bands], "o-", ms=3, color=COLORS.get(e), label=e)
            if f"{e}_dmrr_vs_grid" in bands[0]:
                ax3.plot(mid, [b[f"{e}_dmrr_vs_grid"] for b in bands], "o-", ms=3, color=COLORS.get(e), label=e)
    ax2.set(xlabel="latitude band (degrees)", ylabel="test Top-1 (%)", title="(b) Top-1 per band vs the Bayes ceiling")
    ax3.axhline(0, color="0.6", lw=0.8)
    ax3.set(xlabel="latitude band (degrees)", ylabel="ΔMRR vs grid", title="(c) ΔMRR of each encoder against grid")
    for ax in (ax1, ax2, ax3):
        ax.set_xlim(-90, 90)
        ax.set_xticks(range(-90, 91, 30))
    # one legend for (b) and (c), below the panels: inside either it covered curves
    handles, labels = ax2.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 9), fontsize=8)
    fig.suptitle(title)
    return fig


def _destination(lonlat, bearing, dist_rad):
    """Points at great-circle distance ``dist_rad`` from ``lonlat`` along ``bearing`` (radians)."""
    p = lonlat_to_xyz(lonlat)
    north = np.stack([np.zeros(len(p)), np.zeros(len(p)), np.ones(len(p))], -1)
    east = np.cross(north, p)
    en = np.linalg.norm(east, axis=1, keepdims=True)
    east = np.where(en > 1e-12, east / np.maximum(en, 1e-12), np.array([0.0, 1.0, 0.0]))
    nrth = np.cross(p, east)
    t = np.cos(bearing)[:, None] * nrth + np.sin(bearing)[:, None] * east
    q = np.cos(dist_rad)[:, None] * p + np.sin(dist_rad)[:, None] * t
    return xyz_to_lonlat(q)


def distortion(encoder_names=DISTORTION_ENCODERS, n_pairs=3000, band_width=10.0, seed=0, device="cpu"):
    """Per encoder and latitude band: Spearman ρ(‖ΔG‖, great-circle distance) for pairs up to 10°
    apart, and the mean ‖ΔG‖ of pairs 2° apart relative to the equatorial band."""
    rng = np.random.default_rng(seed)
    edges = np.arange(-90, 90 + band_width, band_width)
    out = {}
    for e in encoder_names:
        hp = {"frequency_num": 16} if "frequency_num" in encoders.spec(e).position_defaults else {}
        if e in ("grid", "theory"):
            hp["min_radius"] = 0.5
        G = encoders.position_encoder(e, **hp).to(device)
        G.out_dtype = torch.float64
        rho, ratio = [], []
        for lo, hi in zip(edges[:-1], edges[1:]):
            s = rng.uniform(np.sin(np.deg2rad(lo)), np.sin(np.deg2rad(hi)), n_pairs)
            a = np.stack([rng.uniform(-180, 180, n_pairs), np.rad2deg(np.arcsin(s))], -1)
            bearing = rng.uniform(0, 2 * np.pi, n_pairs)
            d = np.deg2rad(rng.uniform(0.05, 10.0, n_pairs))
            b = _destination(a, bearing, d)
            b2 = _destination(a, bearing, np.full(n_pairs, np.deg2rad(2.0)))
            with torch.no_grad():
                ga = G(torch.tensor(a, device=device))
                dist = torch.linalg.norm(ga - G(torch.tensor(b, device=device)), dim=-1).cpu().numpy()
                dist2 = torch.linalg.norm(ga - G(torch.tensor(b2, device=device)), dim=-1).cpu().numpy()
            rho.append(float(spearmanr(dist, d).statistic))
            ratio.append(float(np.mean(dist2)))
        eq = np.mean([ratio[i] for i in range(len(ratio)) if edges[i] in (-10.0, 0.0)])
        out[e] = {"rho": rho, "ratio": [r / eq for r in ratio]}
    return edges, out


def distortion_figure(edges, dist) -> Figure:
    mid = (edges[:-1] + edges[1:]) / 2
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for e, v in dist.items():
        style = "o--" if e == "spherical_harmonics" else "o-"  # dashed: it lies exactly on xyz
        ax1.plot(mid, v["rho"], style, ms=3, color=COLORS.get(e), label=e)
        ax2.plot(mid, v["ratio"], style, ms=3, color=COLORS.get(e), label=e)
    ax1.set(xlabel="latitude band (degrees)", ylabel="Spearman ρ(‖G(x₁)−G(x₂)‖, great-circle distance)",
            title="(a) does code distance rank pairs by true distance? (pairs ≤ 10° apart)", xlim=(-90, 90))
    ax2.set(xlabel="latitude band (degrees)", ylabel="‖ΔG‖ for pairs 2° apart / same at the equator",
            title="(b) code distance of a fixed 2° step, relative to the equator", xlim=(-90, 90), yscale="log")
    ax2.axhline(1, color="0.6", lw=0.8)
    ax1.legend(fontsize=7, ncol=2)
    fig.suptitle("Distortion of the position encoders G by latitude (default settings, S = 16)")
    return fig


def _train_chosen(cells, dataset, names, device):
    from ..models.train import TrainSettings, train_population

    models = {}
    recipe = next((c.recipe for (d, _), c in cells.items() if d == dataset and c.recipe), None)
    ds = synth_datasets.generate(synth_datasets.Recipe.from_dict(recipe) if recipe else dataset, 0)
    for e in names:
        c = cells.get((dataset, e))
        if c is None:
            continue
        settings = TrainSettings(**c.settings) if c.settings else TrainSettings()  # as in the sweep
        (res,), model = train_population(ds, e, [dict(c.config, seed=0)], settings, device=device, return_model=True)
        models[e] = model
    return ds, models


MAP_PIXELS = 600  # per side of an orthographic panel: finer than the 150-dpi panel, so no blocks show


def orthographic_pixels(proj, n: int):
    """Points sampled at the pixel centres of an n × n image of the whole orthographic disc: the
    image's extent, the (lon, lat) of every pixel (row-major, origin lower), and which lie on the
    globe. Sampling in the projection's own plane gives every pixel its own value, unlike a
    (lon, lat) grid, whose cells grow into visible blocks near the centre of the disc."""
    import cartopy.crs as ccrs

    (x0, x1), (y0, y1) = proj.x_limits, proj.y_limits
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    X, Y = np.meshgrid(xs, ys)
    pts = ccrs.PlateCarree().transform_points(proj, X.ravel(), Y.ravel())[:, :2]
    inside = np.isfinite(pts).all(1) & (X.ravel() ** 2 + Y.ravel() ** 2 < min(x1, y1) ** 2)
    return (x0, x1, y0, y1), np.where(inside[:, None], pts, 0.0), inside


def class_probabilities(logits: np.ndarray, loss: str) -> np.ndarray:
    """A model's estimate of P(class | x), (N, C), rows summing to one. A softmax-trained model's
    softmax; a presence–absence model outputs one sigmoid per class (presence, not a distribution
    over classes), so its sigmoids are normalised over the classes. The ranking, hence Top-1, is
    unchanged either way."""
    logits = np.asarray(logits, np.float64)
    if loss == "softmax":
        e = np.exp(logits - logits.max(1, keepdims=True))
    else:
        e = 1.0 / (1.0 + np.exp(-logits))
    return e / e.sum(1, keepdims=True)


def _class_probability(model, lonlat, c: int, loss: str, device, batch: int) -> np.ndarray:
    """The model's P(class c | x) at each point, a batch of points at a time: a map of one class never
    holds the (points, classes) matrix (360 000 pixels x 1 000 classes would be gigabytes)."""
    out = np.empty(len(lonlat))
    for i in range(0, len(lonlat), batch):
        logits = predict_logits(model, torch.tensor(lonlat[i:i + batch], device=device))[0].cpu().numpy()
        out[i:i + batch] = class_probabilities(logits, loss)[:, c]
    return out


def model_maps(cells, dataset, device, target: str) -> list[Figure]:
    """``target``: the encoder Table 8 compares (a report's ``--target``, sphereM+ by default: the
    report owns that default): mapped against grid, as the paper maps sphereM+ (Figure 4d), and shown
    beside grid, wrap and sphereM+."""
    import cartopy.crs as ccrs

    use_offline_natural_earth()
    names = [e for e in dict.fromkeys(("grid", "wrap", "sphereM+", target)) if (dataset, e) in cells]
    ds, models = _train_chosen(cells, dataset, names, device)
    figs = []
    if "grid" in models and target in models and target != "grid":
        pts = np.concatenate([ds.split("val")[0], ds.split("test")[0]])
        lab = np.concatenate([ds.split("val")[1], ds.split("test")[1]])

        def rr(m):  # reciprocal ranks, scored a batch of points at a time (train.predict_ranks)
            x = torch.tensor(pts, device=device)
            y = torch.as_tensor(lab, device=device)
            return 1.0 / predict_ranks(m, x, y, score_batch(ds.recipe.n_classes))[0][0].cpu().numpy()

        delta = rr(models[target]) - rr(models["grid"])
        cell = 15.0
        lon_e, lat_e = np.arange(-180, 181, cell), np.arange(-90, 91, cell)
        s, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], [lon_e, lat_e], weights=delta)
        n, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], [lon_e, lat_e])
        with np.errstate(invalid="ignore"):
            mean = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        fig = Figure(figsize=(9, 5), layout="constrained")
        ax = fig.add_subplot(1, 1, 1, projection=ccrs.Mollweide())
        ax.set_global()
        ax.coastlines("110m", linewidth=0.4, color="0.3")
        lim = np.nanmax(np.abs(mean)) if np.isfinite(mean).any() else 1.0
        mesh = ax.pcolormesh(lon_e, lat_e, mean.T, cmap="RdBu", vmin=-lim, vmax=lim, transform=ccrs.PlateCarree())
        fig.colorbar(mesh, ax=ax, shrink=0.7, label=f"mean ΔRR ({target} − grid) per 15° cell")
        ax.set_title(f"{dataset} (seed 0), validation + test points: where {target} beats grid (blue) or loses (red)")
        figs.append(("delta_map", fig))
    centers = ds["centers_lonlat"]
    polar, equatorial = int(np.argmax(np.abs(centers[:, 1]))), int(np.argmin(np.abs(centers[:, 1])))
    cols = ["Bayes"] + list(models)
    fig = Figure(figsize=(3.2 * len(cols), 6.6), layout="constrained")
    for r, c in enumerate((polar, equatorial)):
        lon0, lat0 = centers[c]
        proj = ccrs.Orthographic(central_longitude=lon0, central_latitude=lat0)
        extent, lonlat, inside = orthographic_pixels(proj, MAP_PIXELS)
        for k, name in enumerate(cols):
            ax = fig.add_subplot(2, len(cols), r * len(cols) + k + 1, projection=proj)
            ax.set_global()
            val = np.full(len(lonlat), np.nan)
            if name == "Bayes":
                val[inside] = bayes.posterior(lonlat[inside], centers, ds["kappa"], classes=[c])[:, 0]
            else:
                settings = cells[(dataset, name)].settings or {}
                val[inside] = _class_probability(models[name], lonlat[inside], c, settings.get("loss", "presence-absence"),
                                                 device, score_batch(ds.recipe.n_classes))
            mesh = ax.imshow(val.reshape(MAP_PIXELS, MAP_PIXELS), extent=extent, origin="lower", transform=proj,
                             cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.coastlines("110m", linewidth=0.3, color="w")
            ax.gridlines(linewidth=0.2, color="w")
            title = "Bayes posterior (true mixture)" if name == "Bayes" else name
            ax.set_title(f"{title}\nclass {c} at ({round(lon0)}°, {round(lat0)}°), κ = {ds['kappa'][c]:.0f}", fontsize=8)
    fig.colorbar(mesh, ax=fig.axes, shrink=0.6, pad=0.02, label="P(class | x)")
    fig.suptitle(f"{dataset} (draw 0): P(class | x) of a polar and an equatorial class\nthe Bayes posterior of the "
                 "true vMF mixture beside the models' estimates (orthographic, centred on the class)", fontsize=10)
    figs.append(("predicted_maps", fig))
    return figs


def _write_csv(path: Path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def all_figures(cells, ds_names, enc_names, ceilings, fig_dir: Path, out_dir: Path, device, target: str) -> list[Path]:
    from .tables import band_table
    from ..models.train import resolve_device

    dev = resolve_device(device)
    fig_dir = Path(fig_dir)
    written = []
    strat = [d for d in ds_names if d.startswith("S")] or list(ds_names)
    for kind in ("equal-angle", "equal-area"):
        bt = band_table(cells, strat, enc_names, ceilings, kind)
        if bt:
            written += save_figure(band_figure(bt, enc_names, f"Per-latitude-band diagnostics ({kind} bands), pooled "
                                                              f"over {len(strat)} dataset(s)"),
                                   fig_dir / f"polar_bands_{kind}")
    # the usual encoders, and any requested encoder that is not built in (a plugin's) beside them
    extra = tuple(e for e in enc_names if e not in DISTORTION_ENCODERS and not encoders.is_builtin(e))
    edges, dist = distortion(DISTORTION_ENCODERS + extra, device=dev)
    written += save_figure(distortion_figure(edges, dist), fig_dir / "distortion")
    header = ["lat_lo", "lat_hi"] + [f"{e}_{m}" for e in dist for m in ("rho", "ratio")]
    rows = [[edges[i], edges[i + 1]] + [f"{dist[e][m][i]:.4f}" for e in dist for m in ("rho", "ratio")]
            for i in range(len(edges) - 1)]
    _write_csv(Path(out_dir) / "distortion.csv", header, rows)
    written.append(Path(out_dir) / "distortion.csv")
    md = ["| band | " + " | ".join(f"{e} ρ" for e in dist) + " |", "|---|" + "---|" * len(dist)]
    md += [f"| [{edges[i]:+.0f}, {edges[i + 1]:+.0f}] | " + " | ".join(f"{dist[e]['rho'][i]:.2f}" for e in dist) + " |"
           for i in range(len(edges) - 1)]
    atomic_write_bytes(Path(out_dir) / "distortion.md", ("\n".join(md) + "\n").encode())
    written.append(Path(out_dir) / "distortion.md")
    mapped = next((d for d in ("S4.3", "S4.4", "S3.3", "S4.2") if d in ds_names), ds_names[0] if ds_names else None)
    if mapped is not None:
        for name, fig in model_maps(cells, mapped, dev, target):
            written += save_figure(fig, fig_dir / name)
    return written
