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
    """SplitMix64's finaliser, in place (fresh temporaries cost more than the arithmetic)."""
    t = np.empty_like(z)
    with np.errstate(over="ignore"):
        for shift, mult in ((30, _M1), (27, _M2)):
            np.right_shift(z, np.uint64(shift), out=t)
            np.bitwise_xor(z, t, out=z)
            np.multiply(z, np.uint64(mult), out=z)
        np.right_shift(z, np.uint64(31), out=t)
        np.bitwise_xor(z, t, out=z)
    return z


def _mix_torch(z):
    """As :func:`_mix_numpy`; logical shifts are arithmetic shifts with the sign bits masked off."""
    for shift, mult in ((30, _M1), (27, _M2)):
        z.bitwise_xor_(torch_srl(z, shift)).mul_(_signed(mult))
    return z.bitwise_xor_(torch_srl(z, 31))


def torch_srl(z, k: int):
    return (z >> k).bitwise_and_((1 << (64 - k)) - 1)


def uniform_numpy(key, stream: int, shape, offset: int = 0) -> np.ndarray:
    """Uniforms in (0, 1] as float64 (53 random bits), shape ``key.shape + shape``.

    (0, 1] rather than [0, 1): inverse-CDF samplers take log(u), which must stay finite.
    ``offset`` starts the counter there, so a long stream can be drawn a slice at a time.
    """
    key = np.asarray(key, dtype=np.int64).astype(np.uint64)
    shape = tuple(np.atleast_1d(shape).tolist()) if not isinstance(shape, tuple) else shape
    n = int(np.prod(shape)) if shape else 1
    with np.errstate(over="ignore"):
        base = key.reshape(key.shape + (1,) * len(shape)) * np.uint64(_GOLDEN)
        base = base + np.uint64((stream * _STREAM + _GOLDEN) & _MASK64)  # + GOLDEN: counter 0 is not 0
        z = np.arange(offset, offset + n, dtype=np.uint64).reshape(shape) * np.uint64(_GOLDEN)
        z = _mix_numpy(z + base)
        np.right_shift(z, np.uint64(11), out=z)
    out = z.astype(np.float64)
    out += 1.0
    out *= _INV_2_53
    return out


def uniform_torch(key, stream: int, shape, device=None, dtype=None, offset: int = 0):
    """Same numbers as :func:`uniform_numpy` (float64), or float32 in (0, 1] with 24 random bits."""
    import torch

    key = torch.as_tensor(key, dtype=torch.int64, device=device)
    device = key.device
    shape = tuple(shape)
    n = 1
    for s in shape:
        n *= int(s)
    base = key.reshape(key.shape + (1,) * len(shape)) * _signed(_GOLDEN) + _signed(stream * _STREAM + _GOLDEN)
    z = torch.arange(offset, offset + n, dtype=torch.int64, device=device).reshape(shape).mul_(_signed(_GOLDEN))
    z = _mix_torch(z.add_(base) if z.shape == base.shape else z + base)
    if dtype is None or dtype == torch.float64:
        return torch_srl(z, 11).to(torch.float64).add_(1.0).mul_(_INV_2_53)
    # float32: 24 bits, so that every value is exactly representable and lies in (0, 1].
    return torch_srl(z, 40).to(dtype).add_(1.0).mul_(_INV_2_24)
