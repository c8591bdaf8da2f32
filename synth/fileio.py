"""Atomic file writes: a reader (or a crash, or a full disk) never leaves half a file behind.

Every file the toolkit writes (datasets, manifests, tables, figures) goes through here: the bytes
go to a temporary file in the target folder, are flushed to disk, and the temporary file is then
renamed over the target in one step. The final file gets the permissions an ordinary ``open``
would give it under the current umask (``mkstemp`` alone would leave 0600).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_output``)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)


@contextlib.contextmanager
def folder_lock(folder, name: str = ".manifest.lock"):
    """Hold an exclusive lock on ``folder/name`` (a file kept for the purpose) for a read-modify-write
    of a file in that folder shared by several processes (a manifest). The kernel drops the lock when
    its holder dies, so a killed process never leaves the folder locked."""
    import fcntl

    with open(Path(folder) / name, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def npz_bytes(arrays: dict) -> bytes:
    """``np.savez`` of ``arrays`` (in their order) as an uncompressed zip with fixed timestamps, so
    that equal arrays give equal file bytes on every run and machine (checksums in manifests)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    src, out = zipfile.ZipFile(io.BytesIO(buf.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for name in sorted(src.namelist()):
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), src.read(name))
    return out.getvalue()
