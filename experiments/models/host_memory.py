"""Keep freed host memory for the next training step instead of handing it back to the kernel.

Why: glibc's malloc serves every block over its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` on free, and trims the heap's top above 2x the threshold.
A population's activations are such blocks (16 members x 2048 points x 256 floats = 32 MiB), so
every elementwise operation of every step got brand-new pages: the kernel zero-filled them and
took a page fault per 4 KiB. On this workplace's virtual machines a fault is dear: a 16-member
population took 1.45 million faults in two epochs and a ReLU over 32 MiB took 17 ms instead of 2.
Serving blocks up to 1 GiB from the heap and keeping up to 2 GiB of free memory at its top lets
step n+1 reuse step n's pages: the same arithmetic, no faults (benchmarks/bench_roofline.py).

What it costs: a training process keeps its peak memory (plus at most 2 GiB free) until it exits,
which is what PyTorch's GPU allocator does too. ``SPHERE_SYNTH_MALLOC=system`` leaves the C library
as it was. Other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h> parameter numbers
MMAP_THRESHOLD = 1 << 30  # blocks under 1 GiB come from the heap
TRIM_THRESHOLD = 2 ** 31 - 1  # the largest value mallopt's int takes: keep up to 2 GiB free at the top
ENV = "SPHERE_SYNTH_MALLOC"

_state: bool | None = None


def keep_freed_memory() -> bool:
    """Set the C library's allocator to keep freed blocks (once per process); True where it did."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def _apply() -> bool:
    if os.environ.get(ENV, "keep") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
