"""Maps of synthetic datasets: plate carrée, an equal-area projection, and a 3-D globe.

Coastlines come from the Natural Earth 1:110m files shipped inside the package: cartopy is
pointed at them before any map is drawn, so nothing is ever downloaded (cartopy#2017: an
offline ``coastlines()`` can otherwise hang). Figures are built on ``matplotlib.figure.Figure``
without pyplot, so they save identically from scripts and display in notebooks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .datasets import Dataset
from .fileio import atomic_output
from .sphere import lonlat_to_xyz

DATA_DIR = Path(__file__).parent / "data"
PROJECTIONS = ("platecarree", "equalarea")


def use_offline_natural_earth() -> None:
    """Make cartopy read coastlines from the package and never reach for the network."""
    import cartopy

    cartopy.config["pre_existing_data_dir"] = str(DATA_DIR)


def projection(name: str):
    import cartopy.crs as ccrs

    if name == "platecarree":
        return ccrs.PlateCarree()
    if name == "equalarea":
        return ccrs.Mollweide()
    from .errors import SynthError

    raise SynthError(f"unknown projection {name!r}; use one of {', '.join(PROJECTIONS)}")


def class_colors(n: int) -> np.ndarray:
    """n distinguishable colours; a fixed shuffle keeps neighbouring classes apart."""
    import matplotlib

    base = matplotlib.colormaps["hsv"](np.linspace(0, 1, n, endpoint=False))
    return base[np.random.default_rng(7).permutation(n)]


def draw_map(ax, ds: Dataset, title: str | None = None, s: float = 1.5) -> None:
    """Scatter all points of ``ds`` coloured by class, with centres, on a cartopy GeoAxes."""
    import cartopy.crs as ccrs

    use_offline_natural_earth()
    lonlat, labels = ds.split("all")
    colors = class_colors(ds.recipe.n_classes)
    ax.set_global()
    ax.coastlines("110m", linewidth=0.4, color="0.4")
    ax.gridlines(linewidth=0.3, color="0.7", linestyle=":")
    ax.scatter(lonlat[:, 0], lonlat[:, 1], c=colors[labels], s=s, linewidths=0, transform=ccrs.PlateCarree(),
               rasterized=True)
    c = ds["centers_lonlat"]
    ax.scatter(c[:, 0], c[:, 1], marker="x", c="k", s=10, linewidths=0.6, transform=ccrs.PlateCarree())
    ax.set_title(title or f"{ds.name} (seed {ds.seed})", fontsize=9)


def draw_globe(ax, ds: Dataset, title: str | None = None, elev: float = 25, azim: float = 30) -> None:
    """3-D view of the points on the unit sphere (the paper's Figure 13e)."""
    lonlat, labels = ds.split("all")
    xyz = lonlat_to_xyz(lonlat)
    u, v = np.mgrid[0:2 * np.pi:40j, 0:np.pi:20j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.3)
    ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=class_colors(ds.recipe.n_classes)[labels], s=1.0, depthshade=False)
    ax.view_init(elev=elev, azim=azim)
    ax.set_box_aspect((1, 1, 1), zoom=1.5)
    ax.set_axis_off()
    ax.set_title(title or f"{ds.name} on the unit sphere", fontsize=9)


def dataset_figure(datasets: list[Dataset], proj: str = "platecarree", globe: Dataset | None = None,
                   suptitle: str = "", ncols: int = 2) -> Figure:
    """A grid of maps, one per dataset, plus an optional globe panel."""
    panels = len(datasets) + (globe is not None)
    nrows = int(np.ceil(panels / ncols))
    fig = Figure(figsize=(5.2 * ncols, 2.9 * nrows + 0.5), layout="constrained")
    for i, ds in enumerate(datasets):
        k = ds.recipe
        extra = f"N_mu={k.n_bands}, " if k.centers == "stratified" else ""
        ax = fig.add_subplot(nrows, ncols, i + 1, projection=projection(proj))
        draw_map(ax, ds, f"{ds.name}: {extra}kappa_max={k.kappa_max:g} (seed {ds.seed})")
    if globe is not None:
        # The globe takes a whole row so it is drawn at a readable size.
        draw_globe(fig.add_subplot(nrows, 1, nrows, projection="3d"), globe)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def save_figure(fig: Figure, path_stem) -> list[Path]:
    """Save as PNG (150 dpi) and PDF; returns both paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        p = stem.with_suffix(f".{ext}")
        # no creation date in the PDF, so an unchanged figure is an unchanged file; written atomically,
        # so a full disk leaves the previous figure, not a truncated one
        with atomic_output(p) as tmp:
            fig.savefig(tmp, dpi=150, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        out.append(p)
    return out


def paper_figures(load, out_dir) -> list[Path]:
    """The analogues of the paper's Figures 13 (U1–U4 + U4 globe) and 14 (S1.3–S4.3), both projections.

    ``load(name)`` returns the Dataset to draw (generated or read from disk).
    """
    written = []
    u = [load(n) for n in ("U1", "U2", "U3", "U4")]
    s = [load(n) for n in ("S1.3", "S2.3", "S3.3", "S4.3")]
    for proj, label in (("platecarree", "plate carree (2-D degree space)"), ("equalarea", "Mollweide equal-area")):
        written += save_figure(dataset_figure(u, proj, globe=u[-1] if proj == "platecarree" else None,
                                              suptitle=f"Uniform-centre datasets U1-U4, {label}"),
                               Path(out_dir) / f"fig13_uniform_{proj}")
        written += save_figure(dataset_figure(s, proj, suptitle=f"Stratified datasets, kappa_max = 64, {label}"),
                               Path(out_dir) / f"fig14_stratified_{proj}")
    return written
