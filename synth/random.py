"""Counter-based uniform random numbers, bit-identical in NumPy and torch, on CPU and GPU.

Why not ``numpy.random`` or ``torch.Generator``: the same seed must give the same numbers in
both back-ends (the vMF sampler's two implementations agree sample for sample), and a population
of models must draw each member's numbers from that member's own key, so that one member's
stream never depends on which other members share its batch. A stateless hash of
(key, stream, index) gives both for free: no generator state to carry or split.

The hash is SplitMix64's finaliser over 64-bit integers (wrapping arithmetic). torch has no
uint64 arithmetic with logical shifts, so right shifts are done on int64 and masked.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_STREAM = 0xD1B54A32D192ED03
_MASK64 = (1 << 64) - 1
_INV_2_53 = 1.0 / (1 << 53)
_INV_2_24 = 1.0 / (1 << 24)


def _signed(c: int) -> int:
    c &= _MASK64
    return c - (1 << 64) if c >= 1 << 63 else c


def _mix_numpy(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
        return z ^ (z >> np.uint64(31))


def _srl(z, k: int):
    """Logical right shift of an int64 torch tensor."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix_torch(z):
    z = (z ^ _srl(z, 30)) * _signed(_M1)
    z = (z ^ _srl(z, 27)) * _signed(_M2)
    return z ^ _srl(z, 31)


def uniform_numpy(key, stream: int, shape) -> np.ndarray:
    """Uniforms in (0, 1] as float64 (53 random bits), shape ``key.shape + shape``.

    (0, 1] rather than [0, 1): inverse-CDF samplers take log(u), which must stay finite.
    """
    key = np.asarray(key, dtype=np.int64).astype(np.uint64)
    shape = tuple(np.atleast_1d(shape).tolist()) if not isinstance(shape, tuple) else shape
    n = int(np.prod(shape)) if shape else 1
    counter = np.arange(n, dtype=np.uint64).reshape(shape)
    with np.errstate(over="ignore"):
        base = key.reshape(key.shape + (1,) * len(shape)) * np.uint64(_GOLDEN)
        base = base + np.uint64((stream * _STREAM) & _MASK64)
        z = _mix_numpy(base + (counter + np.uint64(1)) * np.uint64(_GOLDEN))
    return ((z >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * _INV_2_53


def uniform_torch(key, stream: int, shape, device=None, dtype=None):
    """Same numbers as :func:`uniform_numpy` (float64), or float32 in (0, 1] with 24 random bits."""
    import torch

    key = torch.as_tensor(key, dtype=torch.int64, device=device)
    device = key.device
    shape = tuple(shape)
    n = 1
    for s in shape:
        n *= int(s)
    counter = torch.arange(n, dtype=torch.int64, device=device).reshape(shape)
    base = key.reshape(key.shape + (1,) * len(shape)) * _signed(_GOLDEN)
    base = base + _signed(stream * _STREAM)
    z = _mix_torch(base + (counter + 1) * _signed(_GOLDEN))
    if dtype is None or dtype == torch.float64:
        return (_srl(z, 11) + 1).to(torch.float64) * _INV_2_53
    # float32: 24 bits, so that every value is exactly representable and lies in (0, 1].
    return (_srl(z, 40) + 1).to(dtype) * _INV_2_24
