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

import numpy as np

from .errors import SynthError
from .random import uniform_numpy, uniform_torch

KAPPA_MIN, KAPPA_MAX = 1e-8, 1e6
_SMALL_KAPPA = 1e-4  # below this the series of log(sinh κ / κ) is exact to double precision
_SLICE = 1 << 16  # samples per slice on a CPU (see ``sample``)


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


def sample(mu, kappa, n: int, seed: int = 0):
    """Draw ``n`` samples from each vMF(μ, κ): returns (..., n, 3) unit vectors.

    ``mu`` and ``kappa`` may be NumPy arrays (NumPy path) or torch tensors (torch path, on
    their device). The same seed gives the same samples in both, up to the last bits of the
    libraries' transcendental functions.
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
    # Work through the flattened (component, sample) axis a slice at a time: temporaries of 2^16
    # values stay in cache, which makes the elementwise passes 1.5-2x faster than on whole arrays.
    # Sample k of component c always uses counter c·n + k, so slicing never changes the numbers.
    if xp is np:
        mu_f = np.broadcast_to(mu, batch + (3,)).reshape(-1, 3)
        k_f = np.broadcast_to(kappa, batch).reshape(-1)
        out = np.empty((total, 3))
    else:
        import torch

        mu_f = mu.expand(batch + (3,)).reshape(-1, 3)
        k_f = kappa.expand(batch).reshape(-1)
        out = torch.empty((total, 3), dtype=torch.float64, device=mu.device)
    step = _SLICE if (xp is np or mu.device.type == "cpu") else max(total, 1)
    for start in range(0, total, step):
        stop = min(total, start + step)
        comp = (xp.arange(start, stop) // max(n, 1)) if xp is np else \
            torch.div(torch.arange(start, stop, device=mu.device), max(n, 1), rounding_mode="floor")
        if xp is np:
            u_t = uniform_numpy(seed, 0, (stop - start,), offset=start)
            u_a = uniform_numpy(seed, 1, (stop - start,), offset=start)
        else:
            u_t = uniform_torch(seed, 0, (stop - start,), device=mu.device, offset=start)
            u_a = uniform_torch(seed, 1, (stop - start,), device=mu.device, offset=start)
        out[start:stop] = _sample_from_uniforms(u_t, u_a, mu_f[comp], k_f[comp], xp)
    return out.reshape(batch + (n, 3))


def _sample_from_uniforms(u_t, u_a, mu, kappa, xp):
    """One sample per row: uniforms (n,), mean directions (n, 3), concentrations (n,) -> (n, 3)."""
    k = kappa
    # t = 1 − w = −log(u + (1 − u) e^{−2κ}) / κ. For κ < 1 write the argument as
    # 1 + (1 − u) expm1(−2κ) so that log1p keeps the tiny-κ spread; for larger κ the plain
    # form keeps u → 0 (the far tail) exact. Usually every κ of a slice is on one side.
    small = k < 1.0
    n_small = int(small.sum())
    if n_small == len(k):
        t = -xp.log1p((1.0 - u_t) * xp.expm1(-2.0 * k)) / k
    elif n_small == 0:
        t = -xp.log(u_t + (1.0 - u_t) * xp.exp(-2.0 * k)) / k
    else:
        ks, kl = xp.where(small, k, xp.ones_like(k)), xp.where(small, xp.ones_like(k), k)
        t = xp.where(small, -xp.log1p((1.0 - u_t) * xp.expm1(-2.0 * ks)) / ks,
                     -xp.log(u_t + (1.0 - u_t) * xp.exp(-2.0 * kl)) / kl)
    t = _clip(t, 0.0, 2.0, xp)
    r = xp.sqrt(t * (2.0 - t))
    # Uniform tangent angle θ = 2πu. sin θ = ±√((1 − cos θ)(1 + cos θ)), with the sign of θ < π,
    # costs a sqrt instead of a second float64 transcendental (the sampler's most expensive step);
    # its error is below 1e-12 rad in the angle, which is uniform anyway.
    c = xp.cos((2.0 * math.pi) * u_a)
    s = xp.sqrt(_clip((1.0 - c) * (1.0 + c), 0.0, 1.0, xp))
    s = xp.where(u_a <= 0.5, s, -s)
    lx, ly, lz = r * c, r * s, 1.0 - t
    # Householder reflection H = I − 2vvᵀ/vᵀv with v = e_z + σμ maps e_z to −σμ; x = −σ H x_local.
    # |v|² = 2 + 2|μ_z| ≥ 2, so it is exact at both poles and everywhere else.
    sigma = xp.where(mu[:, 2] >= 0, xp.ones_like(mu[:, 2]), -xp.ones_like(mu[:, 2]))
    vx, vy, vz = sigma * mu[:, 0], sigma * mu[:, 1], sigma * mu[:, 2] + 1.0
    proj = (lx * vx + ly * vy + lz * vz) * (2.0 / (vx * vx + vy * vy + vz * vz))
    return xp.stack([sigma * (proj * vx - lx), sigma * (proj * vy - ly), sigma * (proj * vz - lz)], -1)


def _clip(a, lo, hi, xp):
    return np.clip(a, lo, hi) if xp is np else a.clamp(lo, hi)


def _namespace(*arrays):
    for a in arrays:
        if type(a).__module__.startswith("torch"):
            import torch

            return _TorchNS(torch)
    return np


class _TorchNS:
    """The few NumPy-named functions the shared formulas need, mapped onto torch."""

    def __init__(self, torch):
        self._t = torch

    def __getattr__(self, name):
        return getattr(self._t, {"concatenate": "cat"}.get(name, name))

    def stack(self, arrays, axis):
        return self._t.stack(arrays, dim=axis)

    def concatenate(self, arrays, axis):
        return self._t.cat(arrays, dim=axis)
