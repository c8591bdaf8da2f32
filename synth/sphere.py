"""Coordinates on the unit sphere: validation, conversions, distances, uniform points, bands.

Convention (SPEC.md section 1): a location is (longitude, latitude) in **degrees**, lon in
[-180, 180), lat in [-90, 90], arrays of shape (..., 2). chi(lon, lat) = (cos φ cos λ, cos φ sin λ, sin φ).
"""

from __future__ import annotations

import numpy as np

from .errors import SynthError
from .params import checked, number
from .xp import is_torch, namespace


def validate_lonlat(lonlat, wrap_longitude: bool = False, name: str = "coordinates"):
    """Return ``lonlat`` as float64 of shape (..., 2), or raise a one-line SynthError.

    NumPy or torch (a tensor is checked where it lives and returned as it is). Longitudes
    outside [-180, 180) are rejected unless ``wrap_longitude`` is set, in which case they are
    wrapped (NumPy only); latitudes outside [-90, 90] and non-finite values are always rejected.
    """
    xp = namespace(lonlat)
    a = lonlat if is_torch(xp) else np.asarray(lonlat, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != 2:
        raise SynthError(f"{name} must have shape (..., 2) as (lon, lat) in degrees, got shape {tuple(a.shape)}")
    finite = xp.isfinite(a)
    if not bool(finite.all()):
        raise SynthError(f"{name} contain {int((~finite).sum())} non-finite value(s) (NaN or inf)")
    lat = a[..., 1]
    if bool((xp.abs(lat) > 90).any()):
        raise SynthError(f"{name}: latitude outside [-90, 90] degrees (max |lat| = {float(xp.abs(lat).max()):.6g})")
    lon = a[..., 0]
    outside = (lon < -180) | (lon >= 180)
    if bool(outside.any()):
        if not wrap_longitude or is_torch(xp):
            raise SynthError(f"{name}: longitude {float(lon[outside][0]):.6g} outside [-180, 180) degrees "
                             "(pass wrap_longitude=True to wrap)")
        a = a.copy()
        a[..., 0] = wrap_lon(lon)
    return a


def wrap_lon(lon):
    """Wrap longitudes in degrees into [-180, 180)."""
    w = np.mod(np.asarray(lon, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(w >= 180.0, w - 360.0, w)


def lonlat_to_xyz(lonlat):
    """(..., 2) degrees -> (..., 3) unit vectors (NumPy float64, or torch in the input's dtype and device)."""
    xp = namespace(lonlat)
    a = lonlat if is_torch(xp) else np.asarray(lonlat, dtype=np.float64)
    lon, lat = xp.deg2rad(a[..., 0]), xp.deg2rad(a[..., 1])
    c = xp.cos(lat)
    return xp.stack([c * xp.cos(lon), c * xp.sin(lon), xp.sin(lat)], axis=-1)


def xyz_to_lonlat(xyz) -> np.ndarray:
    """(..., 3) vectors (any length > 0) -> (..., 2) degrees, lon in [-180, 180).

    atan2 for the latitude keeps full precision near the poles, where arcsin(z) does not.
    """
    v = np.asarray(xyz, dtype=np.float64)
    lat = np.rad2deg(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    lon = wrap_lon(np.rad2deg(np.arctan2(v[..., 1], v[..., 0])))
    return np.stack([lon, lat], axis=-1)


def great_circle(a_lonlat, b_lonlat, degrees: bool = False):
    """Great-circle angle between two sets of points (radians, or degrees); NumPy or torch, broadcasting.

    atan2(|a x b|, a . b) is accurate for tiny and for nearly antipodal separations,
    where arccos(a . b) and the haversine formula respectively lose precision.
    """
    xp = namespace(a_lonlat, b_lonlat)
    a, b = lonlat_to_xyz(a_lonlat), lonlat_to_xyz(b_lonlat)
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    cross = xp.sqrt((ay * bz - az * by) ** 2 + (az * bx - ax * bz) ** 2 + (ax * by - ay * bx) ** 2)
    ang = xp.arctan2(cross, ax * bx + ay * by + az * bz)
    return xp.rad2deg(ang) if degrees else ang


def lonlat_from_uniforms(u_lon, u_lat, lat_range=(-90.0, 90.0)):
    """Area-uniform points from two arrays of U[0, 1) numbers; NumPy or torch.

    Uniform in sin(lat) within the band, so each band gets points in proportion to its area.
    The one formula behind both the datasets' centres (NumPy) and the trainer's random
    negatives and rbf anchors (torch, one stream per member)."""
    xp = namespace(u_lon, u_lat)
    lo, hi = np.sin(np.deg2rad(lat_range[0])), np.sin(np.deg2rad(lat_range[1]))
    lon = -180.0 + 360.0 * u_lon
    lat = xp.rad2deg(xp.arcsin(xp.clip(lo + (hi - lo) * u_lat, -1.0, 1.0)))
    return xp.stack([lon, lat], axis=-1)


def uniform_lonlat(n: int, rng: np.random.Generator, lat_range=(-90.0, 90.0)) -> np.ndarray:
    """n points uniform on the sphere's surface (area-uniform), optionally inside a latitude band."""
    u_lon = rng.random(n)  # the stream rng.uniform(-180, 180) drew before: datasets are unchanged
    return lonlat_from_uniforms(u_lon, rng.random(n), lat_range)


def band_edges(n_bands: int | None = None, width_deg: float | None = None, kind: str = "equal-angle") -> np.ndarray:
    """Latitude band edges in degrees, from -90 to 90.

    ``equal-angle``: bands of equal latitude width (``n_bands`` or ``width_deg``);
    ``equal-area``: bands of equal surface area (equal steps in sin(lat)).
    """
    if width_deg is not None:
        if not (np.isfinite(width_deg) and 0 < width_deg <= 180):
            raise SynthError(f"band width must be a number of degrees in (0, 180], got {width_deg}")
        n_bands = int(round(180.0 / width_deg))
        if n_bands < 1 or abs(n_bands * width_deg - 180.0) > 1e-9:
            raise SynthError(f"band width {width_deg} degrees does not divide 180")
    if n_bands is None or n_bands < 1:
        raise SynthError(f"number of latitude bands must be >= 1, got {n_bands}")
    if kind == "equal-angle":
        return np.linspace(-90.0, 90.0, n_bands + 1)
    if kind == "equal-area":
        return np.rad2deg(np.arcsin(np.linspace(-1.0, 1.0, n_bands + 1)))
    raise SynthError(f"unknown band kind {kind!r}; use 'equal-angle' or 'equal-area'")


def band_areas(edges) -> np.ndarray:
    """Fraction of the sphere's area in each latitude band: (sin φ_hi − sin φ_lo) / 2."""
    s = np.sin(np.deg2rad(np.asarray(edges, dtype=np.float64)))
    return np.diff(s) / 2.0


def band_index(lat, edges) -> np.ndarray:
    """Index of the band each latitude falls in (the north pole belongs to the last band)."""
    idx = np.searchsorted(np.asarray(edges), np.asarray(lat), side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


@checked(tilt_deg=number())
def tilt_matrix(tilt_deg: float) -> np.ndarray:
    """The rotation of a recipe's ``tilt``: about the y axis (90°E, 0°) by −tilt, so that the x axis
    (0°, 0°) goes to latitude +tilt. Exact for 0 and ±90 degrees (the identity and a quarter turn)."""
    t = float(tilt_deg)
    c, s = (1.0, 0.0) if t == 0 else (0.0, float(np.sign(t))) if abs(t) == 90 else (np.cos(np.deg2rad(t)), np.sin(np.deg2rad(t)))
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
