"""The position encodings G: degrees in, features out, one class per family (registered in
``experiments.models.encoders``). Formulas, units and test vectors: SPEC.md section 4 and
../shared/reference/encoders-spec.md."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from synth.errors import SynthError
from synth.sphere import great_circle, lonlat_to_xyz, validate_lonlat

from .harmonics import real_spherical_harmonics
from .members import uniform_lonlat

CHUNK_VALUES = 1 << 20  # output values per slice of points on a CPU; see PositionEncoder._chunked


# ----------------------------------------------------------------------------- position encoders
class PositionEncoder(nn.Module):
    """Base class: input handling, validation and output shapes; subclasses define ``features``.

    ``features(lon, lat)`` receives float64 degrees of shape (1 or M, N, 1) and returns
    (1 or M, N, D) float64; the result is cast to ``out_dtype`` (float32 by default). Scaled angles
    are formed in float64 because f·φ reaches 10⁴ rad at r_min = 1e-4, where float32 keeps only
    ~3 decimals of the angle.
    """

    out_dim: int

    def __init__(self, n_members: int, batched: bool):
        super().__init__()
        self.n_members = n_members
        self.batched = batched
        self.check_inputs = True
        self.out_dtype = torch.float32
        self.chunk_values = CHUNK_VALUES

    def forward(self, lonlat):
        x = torch.as_tensor(lonlat)
        if x.dim() == 0 or x.shape[-1] != 2:
            raise SynthError(f"location input must have shape (..., 2) as (lon, lat) in degrees, got {tuple(x.shape)}")
        state = next(iter(self.buffers()), None)
        if state is None:
            state = next(iter(self.parameters()), None)
        x = x.to(dtype=torch.float64, device=state.device if state is not None else x.device)
        if self.check_inputs:
            check_lonlat(x)
        if self.batched:
            if x.dim() == 2:
                x3 = x[None]
            elif x.dim() == 3 and x.shape[0] == self.n_members:
                x3 = x
            else:
                raise SynthError(f"a batched encoder of {self.n_members} members takes (N, 2) or "
                                 f"({self.n_members}, N, 2) input, got {tuple(x.shape)}")
            return self._chunked(x3)
        lead = x.shape[:-1]
        return self._chunked(x.reshape(1, -1, 2)).reshape(*lead, self.out_dim)

    def _chunked(self, x3):
        """Features of (1 or M, N, 2) points, computed a slice of points at a time.

        The float64 intermediates of M members x N points x D features run to gigabytes; on a CPU,
        touching fresh memory of that size costs more than the arithmetic (64 members were 3x
        slower in one call than in 64 calls). Slices of 2^20 output values stay in cache. A GPU
        wants the opposite (few, large kernels), so there the slices are 128 times larger.
        """
        limit = self.chunk_values if x3.device.type == "cpu" else self.chunk_values << 7
        step = max(1, limit // max(1, self.n_members * self.out_dim))
        if step >= x3.shape[1]:
            f = self.features(x3[..., 0:1], x3[..., 1:2])
            return f.expand(self.n_members, *f.shape[1:]).to(self.out_dtype)
        out = torch.empty((self.n_members, x3.shape[1], self.out_dim), dtype=self.out_dtype, device=x3.device)
        for i in range(0, x3.shape[1], step):
            xi = x3[:, i:i + step]
            out[:, i:i + step] = self.features(xi[..., 0:1], xi[..., 1:2])
        return out

    def _member_param(self, name, values):
        self.register_buffer(name, torch.tensor(values, dtype=torch.float64).view(-1, 1, 1))


def check_lonlat(x) -> None:
    """One-line errors for NaN/inf or out-of-range coordinates (SPEC.md section 1; synth.sphere's check)."""
    validate_lonlat(x, name="location input")


def scale_frequencies(S: int, r_min, r_max):
    """f_s = 1/τ_s, τ_s = r_min·(r_max/r_min)^{s/(S−1)}, s = 0 finest; S = 1 is the single scale r_max.

    ``r_min``/``r_max`` have shape (M, 1, 1); returns (M, 1, S).
    """
    if S == 1:
        return 1.0 / r_max
    s = torch.arange(S, dtype=torch.float64, device=r_min.device) / (S - 1)
    return 1.0 / (r_min * (r_max / r_min) ** s)


def _pairs(sin, cos):
    """Interleave (..., S) sines and cosines as [sin_0, cos_0, sin_1, cos_1, ...]."""
    return torch.stack([sin, cos], -1).flatten(-2)


_THEORY_DIRS = torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]], dtype=torch.float64)


def _multiscale_features(kind, lam, phi, f):
    """The grid/theory/sphere* families: ``lam``/``phi`` (·, N, 1) in the family's unit, ``f`` (M, 1, S)."""
    ls, ps = lam * f, phi * f
    if kind == "grid":
        return torch.cat([_pairs(torch.sin(ls), torch.cos(ls)), _pairs(torch.sin(ps), torch.cos(ps))], -1)
    if kind == "theory":
        proj = torch.cat([lam, phi], -1) @ _THEORY_DIRS.to(lam.device).T  # (·, N, 3)
        ang = f[..., :, None] * proj[..., None, :]  # (M, N, S, 3)
        return torch.stack([torch.sin(ang), torch.cos(ang)], -1).flatten(-3)
    sp, cp, sl, cl = torch.sin(ps), torch.cos(ps), torch.sin(ls), torch.cos(ls)
    if kind == "sphereC":
        terms = [sp, cp * cl, cp * sl]
    elif kind == "sphereC+":
        terms = [sp, cp, sl, cl, cp * cl, cp * sl]
    elif kind in ("sphereM", "sphereM+"):
        c1, s1, cphi = torch.cos(lam), torch.sin(lam), torch.cos(phi)  # the single-scale (f = 1) angles
        mix = [cp * c1, cphi * cl, cp * s1, cphi * sl]
        terms = [sp] + mix if kind == "sphereM" else [sp, cp, sl, cl] + mix
    elif kind == "sphereDFS":
        A = torch.cat([sl, cl], -1)
        B = torch.cat([sp, cp], -1)
        outer = (A[..., :, None] * B[..., None, :]).flatten(-2)
        return torch.cat([outer, torch.stack([sp, cp, sl, cl], -1).flatten(-2)], -1)
    else:  # pragma: no cover - guarded by the registry
        raise AssertionError(kind)
    return torch.stack(terms, -1).flatten(-2)


class MultiScale(PositionEncoder):
    """Space2Vec grid/theory (degrees, r_max = 360) and the Sphere2Vec family (radians, r_max = 1)."""

    TERMS = {"grid": 4, "theory": 6, "sphereC": 3, "sphereC+": 6, "sphereM": 5, "sphereM+": 8}

    def __init__(self, kind, M, batched, frequency_num, min_radius, max_radius):
        super().__init__(M, batched)
        S = int(frequency_num)
        if S < 1:
            raise SynthError(f"frequency_num (S) must be >= 1, got {frequency_num}")
        r_min, r_max = np.asarray(min_radius, float), np.asarray(max_radius, float)
        if np.any(r_min <= 0) or np.any(r_max <= 0) or (S > 1 and np.any(r_min >= r_max)):
            raise SynthError(f"need 0 < min_radius < max_radius, got min_radius={min_radius}, max_radius={max_radius}")
        self.kind, self.S = kind, S
        self.degrees = kind in ("grid", "theory")
        self._member_param("r_min", r_min)
        self._member_param("r_max", r_max)
        self.out_dim = 4 * S * S + 4 * S if kind == "sphereDFS" else self.TERMS[kind] * S

    def features(self, lon, lat):
        if not self.degrees:
            lon, lat = torch.deg2rad(lon), torch.deg2rad(lat)
        return _multiscale_features(self.kind, lon, lat, scale_frequencies(self.S, self.r_min, self.r_max))


def _xyz(lon_deg, lat_deg):
    """(·, N, 1) lon and lat in degrees -> (·, N, 3) unit vectors, by synth.sphere's formula."""
    return lonlat_to_xyz(torch.cat([lon_deg, lat_deg], -1))


class XYZ(PositionEncoder):
    """χ(x) = (cos φ cos λ, cos φ sin λ, sin φ), the code's (x, y, z) order."""

    out_dim = 3

    def features(self, lon, lat):
        return _xyz(lon, lat)


class Wrap(PositionEncoder):
    """Mac Aodha et al.: [sin πλ', sin πφ', cos πλ', cos πφ'], λ' = lon/180, φ' = lat/90 (both poles coincide)."""

    out_dim = 4

    def features(self, lon, lat):
        a, b = math.pi * lon / 180.0, math.pi * lat / 90.0
        return torch.cat([torch.sin(a), torch.sin(b), torch.cos(a), torch.cos(b)], -1)


class NeRF(PositionEncoder):
    """[sin(π2ˡ p_k)], then [cos(π2ˡ p_k)], for the 3-D point p = χ(x), k in (x, y, z), l < L."""

    def __init__(self, M, batched, frequency_num):
        super().__init__(M, batched)
        if int(frequency_num) < 1:
            raise SynthError(f"frequency_num (L) must be >= 1, got {frequency_num}")
        # shape (1, L), not (L,): a leading dimension equal to the population size would read as per-member
        self.register_buffer("freq", math.pi * 2.0 ** torch.arange(int(frequency_num), dtype=torch.float64)[None])
        self.out_dim = 6 * int(frequency_num)

    def features(self, lon, lat):
        ang = _xyz(lon, lat)[..., :, None] * self.freq  # (·, N, 3, L)
        return torch.cat([torch.sin(ang).flatten(-2), torch.cos(ang).flatten(-2)], -1)


class SphericalHarmonics(PositionEncoder):
    def __init__(self, M, batched, legendre_polys):
        super().__init__(M, batched)
        if int(legendre_polys) < 1:
            raise SynthError(f"legendre_polys (L) must be >= 1, got {legendre_polys}")
        self.L = int(legendre_polys)
        self.out_dim = self.L ** 2

    def features(self, lon, lat):
        return real_spherical_harmonics(torch.deg2rad(lon[..., 0]), torch.deg2rad(lat[..., 0]), self.L)


class RBF(PositionEncoder):
    """exp(−d(x, a_m)²/2σ²), σ = kernel_size degrees, at anchors a_m.

    ``distance="euclidean"`` (default, the public code's metric): d is the distance in the
    (lon°, lat°) plane, which jumps at the antimeridian and stretches near the poles.
    ``distance="great_circle"``: d is the great-circle angle in degrees (SPEC.md's optional
    haversine variant), a function on the sphere: continuous everywhere, one code per pole.
    """

    def __init__(self, M, batched, rng, num_anchors, kernel_size, anchor_points=None, distance="euclidean"):
        super().__init__(M, batched)
        if int(num_anchors) < 1 or np.any(np.asarray(kernel_size) <= 0):
            raise SynthError(f"rbf needs num_anchors >= 1 and kernel_size > 0, got {num_anchors}, {kernel_size}")
        if distance not in ("euclidean", "great_circle"):
            raise SynthError(f"rbf distance must be 'euclidean' or 'great_circle', got {distance!r}")
        A = int(num_anchors)
        if anchor_points is None:  # no training points given: area-uniform anchors
            anchors = uniform_lonlat(rng, A)
        else:
            pts = (anchor_points if isinstance(anchor_points, torch.Tensor) else
                   torch.as_tensor(np.asarray(anchor_points)))  # a tensor stays on its device (no host copy)
            pts = pts.to(dtype=torch.float64, device=rng.device)
            if pts.dim() != 2 or pts.shape[1] != 2 or len(pts) < A:
                raise SynthError(f"anchor_points must be (n >= {A}, 2) degrees, got {tuple(pts.shape)}")
            anchors = pts[rng.permutation(len(pts))[:, :A]]  # per member, without replacement
        self.register_buffer("anchors", anchors)  # (M, A, 2)
        self._member_param("sigma", np.asarray(kernel_size, float))
        self.distance = distance
        self.out_dim = A

    def features(self, lon, lat):
        if self.distance == "great_circle":  # (M, N, A) angles in degrees, synth.sphere's formula
            d2 = great_circle(torch.cat([lon, lat], -1)[:, :, None, :], self.anchors[:, None, :, :], degrees=True) ** 2
            return self._gaussian(d2)
        x, a = torch.cat([lon, lat], -1).expand(self.n_members, -1, -1), self.anchors
        d2 = ((x * x).sum(-1, keepdim=True) + (a * a).sum(-1)[:, None, :]
              - 2.0 * torch.bmm(x, a.transpose(1, 2))).clamp_min(0.0)
        return self._gaussian(d2)

    def _gaussian(self, d2):
        """exp(−d²/2σ²), in place on d2, with values below the output dtype's smallest normal number
        set to 0. Most of the paper's points are many σ from most anchors, deep in exp's underflow,
        and there both dtypes are slow: float64's exp takes a slow path far below its own range, and
        float32 subnormals make every matrix product that reads them crawl (together about half of
        rbf's epoch at a 32° wavelength: benchmarks/bench_rbf.py). So exponents are raised to just
        below where the output would be subnormal (exp of the floor is under ``tiny``), and what
        lands below ``tiny`` is set to 0: each feature is unchanged or moves by less than the
        smallest normal number (1.2e-38 in float32)."""
        tiny = torch.finfo(self.out_dtype).tiny
        out = d2.div_(-2.0 * self.sigma**2).clamp_min_(math.log(tiny) - 0.01).exp_()
        return out.masked_fill_(out < tiny, 0.0)


class RFF(PositionEncoder):
    """√(2/D) cos(ωᵀx̃ + b), x̃ = (lon/180, lat/90), ω ~ N(0, κ·I) with κ = kernel_size read as a variance
    (the public code's reading; ``kernel_reading="std"`` reads it as a standard deviation)."""

    def __init__(self, M, batched, rng, frequency_num, kernel_size, kernel_reading="variance"):
        super().__init__(M, batched)
        D = int(frequency_num)
        if D < 1 or np.any(np.asarray(kernel_size) <= 0):
            raise SynthError(f"rff needs frequency_num >= 1 and kernel_size > 0, got {frequency_num}, {kernel_size}")
        if kernel_reading not in ("variance", "std"):
            raise SynthError(f"kernel_reading must be 'variance' or 'std', got {kernel_reading!r}")
        k = torch.tensor(np.asarray(kernel_size, float), dtype=torch.float64, device=rng.device).view(-1, 1, 1)
        std = k.sqrt() if kernel_reading == "variance" else k
        self.register_buffer("omega", rng.normal((2, D), dtype=torch.float64) * std)  # (M, 2, D)
        self.register_buffer("phase", 2 * math.pi * rng.rand((1, D), dtype=torch.float64))  # (M, 1, D)
        self.out_dim = D

    def features(self, lon, lat):
        x = torch.cat([lon / 180.0, lat / 90.0], -1).expand(self.n_members, -1, -1)
        return math.sqrt(2.0 / self.out_dim) * torch.cos(torch.bmm(x, self.omega) + self.phase)


class Tile(PositionEncoder):
    """A learned embedding per equal-angle cell of ``cell_size`` degrees over the globe (the intended
    tile_ffn; TorchSpatial never passes the cell size, so its grid has a single cell)."""

    def __init__(self, M, batched, rng, cell_size, embed_dim):
        super().__init__(M, batched)
        if not cell_size > 0 or int(embed_dim) < 1:
            raise SynthError(f"tile needs cell_size > 0 degrees and embed_dim >= 1, got {cell_size}, {embed_dim}")
        self.cell = float(cell_size)
        self.n_col, self.n_row = math.ceil(360.0 / self.cell), math.ceil(180.0 / self.cell)
        E = int(embed_dim)
        self.embedding = nn.Parameter(rng.normal((self.n_row * self.n_col, E)) / E)  # N(0, (1/E)²)
        self.out_dim = E

    def features(self, lon, lat):
        col = torch.floor((lon[..., 0] + 180.0) / self.cell).long().clamp(0, self.n_col - 1)
        row = torch.floor((lat[..., 0] + 90.0) / self.cell).long().clamp(0, self.n_row - 1)
        idx = (row * self.n_col + col).expand(self.n_members, -1)
        return self.embedding[torch.arange(self.n_members, device=idx.device)[:, None], idx]


# ----------------------------------------------------------------------------- registry
