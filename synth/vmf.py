"""Exact von Mises-Fisher sampling and log-density on S², in NumPy and in torch.

Sampling (Wood 1994, exact on S²): t = 1 − μᵀx has the closed-form inverse CDF
t = −log(u + (1 − u) e^{−2κ}) / κ, the tangent direction is uniform, and a Householder
reflection carries the north pole to μ. Both back-ends draw their uniforms from the same
counter-based generator (:mod:`synth.random`), so the same seed gives the same samples.

Everything is vectorised: ``mu`` has shape (..., 3), ``kappa`` broadcasts against (...), and
``sample(mu, kappa, n)`` returns (..., n, 3). Work is float64 throughout (SPEC.md section 6:
float32 visibly discretises the spread at κ = 128²).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import SynthError
from .params import NONNEGATIVE, XYZ, checked, integer
from .random import uniform_numpy, uniform_torch
from .xp import namespace as _namespace

KAPPA_MIN, KAPPA_MAX = 1e-8, 1e6
_SMALL_KAPPA = 1e-4  # below this the series of log(sinh κ / κ) is exact to double precision
_SLICE = 1 << 16  # samples per slice on a CPU (see ``sample``)
_THREADS = min(os.cpu_count() or 1, 8)


def _check_params(mu, kappa, xp):
    mu_np = mu.detach().cpu().numpy() if xp is not np else mu
    k_np = kappa.detach().cpu().numpy() if xp is not np else kappa
    if mu_np.shape[-1:] != (3,):
        raise SynthError(f"mean direction mu must have shape (..., 3), got {mu_np.shape}")
    if not np.all(np.isfinite(mu_np)):
        raise SynthError("mean direction mu contains non-finite values")
    norm = np.linalg.norm(mu_np, axis=-1)
    if np.any(np.abs(norm - 1.0) > 1e-6):
        raise SynthError(f"mean direction mu must be a unit vector (found norm {norm.flat[np.argmax(np.abs(norm - 1))]:.6g})")
    if not np.all(np.isfinite(k_np)) or np.any(k_np <= 0):
        raise SynthError(f"concentration kappa must be finite and > 0 (found {k_np.flat[np.argmin(np.where(np.isfinite(k_np), k_np, -np.inf))]:.6g})")


@checked(kappa=NONNEGATIVE)
def log_normalizer(kappa):
    """log C(κ) for the density C(κ) exp(κ μᵀx), C(κ) = κ / (4π sinh κ); NumPy or torch.

    log C = log κ − log 2π − κ − log1p(−e^{−2κ}); below κ = 1e-4 the series
    −log 4π − κ²/6 + κ⁴/180 avoids the cancellation in log κ − log(1 − e^{−2κ}).
    """
    xp = _namespace(kappa)
    k = kappa if xp is not np else np.asarray(kappa, dtype=np.float64)
    small = k < _SMALL_KAPPA
    ks = xp.where(small, xp.ones_like(k), k)  # keep the large branch finite where it is unused
    large = xp.log(ks) - math.log(2 * math.pi) - ks - xp.log1p(-xp.exp(-2 * ks))
    series = -math.log(4 * math.pi) - k**2 / 6 + k**4 / 180
    return xp.where(small, series, large)


@checked(xyz=XYZ, mu=XYZ, kappa=NONNEGATIVE)
def log_density(xyz, mu, kappa):
    """log vMF(x; μ, κ) for unit vectors ``xyz`` (..., 3); ``mu`` (..., 3) and ``kappa`` broadcast."""
    xp = _namespace(xyz)
    if xp is np:
        xyz, mu, kappa = (np.asarray(a, dtype=np.float64) for a in (xyz, mu, kappa))
    _check_params(mu, kappa, xp)
    return log_normalizer(kappa) + kappa * (xyz * mu).sum(-1)


def mean_w(kappa):
    """E[μᵀx] = coth κ − 1/κ (κ/3 − κ³/45 for small κ, where the difference cancels)."""
    k = np.asarray(kappa, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exact = 1.0 / np.tanh(k) - 1.0 / k
    return np.where(k < 1e-3, k / 3 - k**3 / 45, exact)


def t_cdf(t, kappa):
    """P(1 − μᵀx ≤ t) = (1 − e^{−κt}) / (1 − e^{−2κ}), for t in [0, 2]."""
    t, k = np.asarray(t, dtype=np.float64), np.asarray(kappa, dtype=np.float64)
    return np.expm1(-k * np.clip(t, 0, 2)) / np.expm1(-2 * k)


@checked(mu=XYZ, kappa=NONNEGATIVE, n=integer(0, 10**9), seed=integer(0, 2**64 - 1),
         threads=integer(1, 1024, optional=True))
def sample(mu, kappa, n: int, seed: int = 0, threads: int | None = None):
    """Draw ``n`` samples from each vMF(μ, κ): returns (..., n, 3) unit vectors.

    ``mu`` and ``kappa`` may be NumPy arrays (NumPy path) or torch tensors (torch path, on
    their device). The same seed gives the same samples in both, up to the last bits of the
    libraries' transcendental functions. ``threads``: worker threads of the NumPy path
    (default: the CPU count, at most 8); the samples do not depend on it.
    """
    xp = _namespace(mu, kappa)
    if xp is np:
        mu = np.asarray(mu, dtype=np.float64)
        kappa = np.asarray(kappa, dtype=np.float64)
    else:
        import torch

        mu = torch.as_tensor(mu, dtype=torch.float64)
        kappa = torch.as_tensor(kappa, dtype=torch.float64, device=mu.device)
    _check_params(mu, kappa, xp)
    if int(n) < 0:
        raise SynthError(f"number of samples must be >= 0, got {n}")
    batch = tuple(np.broadcast_shapes(tuple(mu.shape[:-1]), tuple(kappa.shape)))
    n = int(n)
    total = int(np.prod(batch, dtype=np.int64)) * n
    if xp is np:
        mu_f = np.broadcast_to(mu, batch + (3,)).reshape(-1, 3)
        k_f = np.broadcast_to(kappa, batch).reshape(-1)
        out = np.empty((total, 3))
    else:
        mu_f = mu.expand(batch + (3,)).reshape(-1, 3)
        k_f = kappa.expand(batch).reshape(-1)
        out = torch.empty((total, 3), dtype=torch.float64, device=mu.device)
    if total == 0:
        return out.reshape(batch + (n, 3))
    rot = _rotations(mu_f, xp)
    # Work through the flattened (component, sample) axis a slice at a time: temporaries of 2^16
    # values stay in cache, which makes the elementwise passes 1.5-2x faster than on whole arrays.
    # Sample k of component c always uses counter c·n + k, so slicing never changes the numbers.
    step = _SLICE if (xp is np or mu.device.type == "cpu") else total
    slices = [(a, min(total, a + step)) for a in range(0, total, step)]

    def run(bounds):
        start, stop = bounds
        c0, c1 = start // n, (stop - 1) // n
        if c0 == c1:  # one component: its parameters are scalars (the common case, and cheaper)
            params = [k_f[c0:c0 + 1]] + [r[c0:c0 + 1] for r in rot]
        else:
            comp = np.arange(start, stop) // n if xp is np else \
                torch.div(torch.arange(start, stop, device=mu.device), n, rounding_mode="floor")
            params = [k_f[comp]] + [r[comp] for r in rot]
        _sample_slice(seed, start, stop, params, out[start:stop], xp)

    threads = _THREADS if threads is None else int(threads)
    if xp is np and len(slices) > 1 and threads > 1:
        # NumPy's elementwise loops release the GIL, so slices run in parallel on the CPU's cores
        # (torch parallelises inside each operation already).
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, slices))
    else:
        for b in slices:
            run(b)
    return out.reshape(batch + (n, 3))


def _rotations(mu, xp):
    """Per-component coefficients of the Householder map from the north pole to μ.

    H = I − 2vvᵀ/vᵀv with v = e_z + σμ maps e_z to −σμ, so x = σ((x_local·a) v − x_local) with
    a = 2v/vᵀv carries a sample drawn around e_z to one around μ. |v|² = 2 + 2|μ_z| ≥ 2, so it is
    exact at both poles and everywhere else. Returns (a_x, a_y, a_z, σv_x, σv_y, σv_z, σ).
    """
    sigma = xp.where(mu[:, 2] >= 0, xp.ones_like(mu[:, 2]), -xp.ones_like(mu[:, 2]))
    vx, vy, vz = sigma * mu[:, 0], sigma * mu[:, 1], sigma * mu[:, 2] + 1.0
    scale = 2.0 / (vx * vx + vy * vy + vz * vz)
    return (scale * vx, scale * vy, scale * vz, sigma * vx, sigma * vy, sigma * vz, sigma)


def _sample_slice(seed, start, stop, params, out, xp):
    """Samples ``start:stop`` of the flattened stream into ``out`` (stop − start, 3).

    ``params`` holds κ and the :func:`_rotations` coefficients, either one value (length 1,
    broadcast) or one per sample.
    """
    k, ax, ay, az, bx, by, bz, sigma = params
    if xp is np:
        u_t = uniform_numpy(seed, 0, (stop - start,), offset=start)
        u_a = uniform_numpy(seed, 1, (stop - start,), offset=start)
    else:
        u_t = uniform_torch(seed, 0, (stop - start,), device=out.device, offset=start)
        u_a = uniform_torch(seed, 1, (stop - start,), device=out.device, offset=start)
    t = _clip(_inverse_cdf_t(u_t, k, xp), 0.0, 2.0, xp)
    r = xp.sqrt(t * (2.0 - t))
    c, s = _unit_circle(u_a, xp)
    lx, ly, lz = r * c, r * s, 1.0 - t
    proj = lx * ax + ly * ay + lz * az
    out[:, 0] = proj * bx - sigma * lx
    out[:, 1] = proj * by - sigma * ly
    out[:, 2] = proj * bz - sigma * lz


def _inverse_cdf_t(u, k, xp):
    """t = 1 − w = −log(u + (1 − u) e^{−2κ}) / κ.

    For κ < 1 write the argument as 1 + (1 − u) expm1(−2κ) so that log1p keeps the tiny-κ
    spread; for larger κ the plain form keeps u → 0 (the far tail) exact. Usually every κ of a
    slice is on one side.
    """
    small = k < 1.0
    n_small = int(small.sum())
    if n_small == len(k):
        return -xp.log1p((1.0 - u) * xp.expm1(-2.0 * k)) / k
    if n_small == 0:
        return -xp.log(u + (1.0 - u) * xp.exp(-2.0 * k)) / k
    ks, kl = xp.where(small, k, xp.ones_like(k)), xp.where(small, xp.ones_like(k), k)
    return xp.where(small, -xp.log1p((1.0 - u) * xp.expm1(-2.0 * ks)) / ks,
                    -xp.log(u + (1.0 - u) * xp.exp(-2.0 * kl)) / kl)


# Taylor coefficients of (sin x)/x in powers of x²: on |x| ≤ π/4 the first omitted term
# (x¹⁷/17!) is below 5e-17, under float64's rounding of sin x.
_SIN = tuple((-1) ** j / math.factorial(2 * j + 1) for j in range(8))
# Per octant of the circle (index 0-7, and 8 for u = 1): whether the angle runs backwards in
# it, whether cos and sin trade places, and their signs.
_OCTANT = np.array([[0, 1, 0, 1, 0, 1, 0, 1, 0],
                    [0, 1, 1, 0, 0, 1, 1, 0, 0],
                    [1, 1, -1, -1, -1, -1, 1, 1, 1],
                    [1, 1, 1, 1, -1, -1, -1, -1, 1]], dtype=np.float64)


def _unit_circle(u, xp):
    """(cos 2πu, sin 2πu): the uniform tangent direction.

    torch's cos/sin are vectorised; NumPy's float64 cos is a scalar libm call (~15 ns a value,
    more than all the rest of a sample), so the NumPy path reduces the angle to an octant,
    x = (π/4)g with g in [0, 1], evaluates sin x by its Taylor polynomial and cos x as
    √((1 − sin x)(1 + sin x)) (well conditioned there: cos x ≥ 0.7), then maps the octant back
    by swaps and sign flips, written as arithmetic with a table because np.where costs more than
    the polynomial. Agrees with np.cos/np.sin to a few ulp (tested).
    """
    if xp is not np:
        theta = (2.0 * math.pi) * u
        return xp.cos(theta), xp.sin(theta)
    v = u * 8.0
    octant = np.floor(v)
    f = v - octant
    backwards, swap, sign_c, sign_s = _OCTANT.take(octant.astype(np.intp), axis=1)
    x = (f + backwards * (1.0 - 2.0 * f)) * (math.pi / 4)  # g = 1 − f where the angle runs backwards
    x2 = x * x
    s = np.full_like(x2, _SIN[-1])
    for b in _SIN[-2::-1]:
        s *= x2
        s += b
    s *= x
    c = np.sqrt((1.0 - s) * (1.0 + s))
    d = swap * (s - c)
    c += d
    s -= d
    c *= sign_c
    s *= sign_s
    return c, s


def _clip(a, lo, hi, xp):
    return np.clip(a, lo, hi) if xp is np else a.clamp(lo, hi)


