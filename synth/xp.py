"""One formula for NumPy and torch: the array namespace of the inputs.

The shared formulas (vMF sampling and density, coordinates, ranks) are written once against
NumPy's names; ``namespace`` returns NumPy itself, or a thin adapter that maps those names onto
torch, so tensors stay on their device and in their dtype.
"""

from __future__ import annotations

import numpy as np


def namespace(*arrays):
    for a in arrays:
        if type(a).__module__.startswith("torch"):
            import torch

            return _TorchNS(torch)
    return np


def is_torch(xp) -> bool:
    return xp is not np


class _TorchNS:
    """The few NumPy-named functions the shared formulas need, mapped onto torch."""

    def __init__(self, torch):
        self._t = torch

    def __getattr__(self, name):
        return getattr(self._t, name)

    def stack(self, arrays, axis):
        return self._t.stack(arrays, dim=axis)

    def concatenate(self, arrays, axis):
        return self._t.cat(arrays, dim=axis)

    def take_along_axis(self, a, idx, axis):
        return self._t.take_along_dim(a, idx, dim=axis)

    def sum(self, a, axis=None):
        return a.sum() if axis is None else a.sum(axis)

    def all(self, a, axis=None):
        return a.all() if axis is None else a.all(axis)
