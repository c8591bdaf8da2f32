"""Datasets out of sphere-synth, for any pipeline: CSV, Parquet and TorchSpatial's pickles.

One row per point: ``lon, lat`` (degrees), ``class``, ``split`` (train, val, test), and the class's
``center_lon, center_lat, kappa``; the rows are in the ``.npz`` file's order (train, val, test).
Beside the files, ``export.json`` records for each its recipe, seed, format, SHA-256 and the
SHA-256 of the dataset's canonical ``.npz`` (the checksum ``python -m synth generate`` writes in
``manifest.json``, the same on every machine), so an export can be traced to its recipe and read
back (``read``) into exactly the arrays it came from: CSV writes each float in its shortest
round-trip form, Parquet stores the doubles themselves.

``torchspatial`` writes what TorchSpatial's ``vmf*`` datasets read (``main/datasets.py``,
``load_dataset``): ``vmf_<name>_seed<k>_<split>_locations.pkl`` holding (locations (N, 2) float32
lon/lat in degrees, classes (N,), indices (N,)). Its float32 coordinates are TorchSpatial's own
cast, so this format is written, not read back. docs/export.md shows how to load each format into
TorchSpatial, locationencoder and a plain PyTorch loop.

Writing is all or nothing: every file goes to a hidden staging folder inside the target folder and
is moved into place only when all are written; ``export.json`` is written last. A full or read-only
disk leaves the target folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__, datasets
from .datasets import SPLITS, Dataset, Recipe
from .errors import SynthError
from .fileio import atomic_write_bytes

FORMATS = ("csv", "parquet", "torchspatial")
MANIFEST = "export.json"
COLUMNS = ("lon", "lat", "class", "split", "center_lon", "center_lat", "kappa")
READABLE = {".csv": "csv", ".parquet": "parquet"}


def parse_formats(text) -> list[str]:
    """'csv,parquet' (or a list of names) -> ['csv', 'parquet']; an unknown name is a one-line error."""
    text = text if isinstance(text, str) else ",".join(map(str, text))
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise SynthError(f"no export format named in {text!r}; use {', '.join(FORMATS)}")
    for n in names:
        if n not in FORMATS:
            raise SynthError(f"unknown export format {n!r}; use {', '.join(FORMATS)} (comma-separated)")
    return list(dict.fromkeys(names))


def table(ds: Dataset):
    """The dataset as a pyarrow Table, one row per point (columns ``COLUMNS``)."""
    import pyarrow as pa

    lonlat = np.concatenate([ds.split(s)[0] for s in SPLITS])
    labels = np.concatenate([ds.split(s)[1] for s in SPLITS]).astype(np.int64)
    split = pa.DictionaryArray.from_arrays(
        np.repeat(np.arange(len(SPLITS), dtype=np.int8), [len(ds.split(s)[1]) for s in SPLITS]), list(SPLITS))
    centers, kappa = ds["centers_lonlat"], ds["kappa"]
    return pa.table({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "class": labels, "split": split,
                     "center_lon": centers[labels, 0], "center_lat": centers[labels, 1], "kappa": kappa[labels]})


def _csv_bytes(tbl) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(tbl.set_column(3, "split", tbl.column("split").cast(pa.string())), sink)
    return sink.getvalue().to_pybytes()


def _parquet_bytes(tbl) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # fixed writer settings, no timestamps: the same dataset gives the same bytes on every run
    pq.write_table(tbl, sink, compression="zstd", write_statistics=False)
    return sink.getvalue().to_pybytes()


def _torchspatial_files(ds: Dataset) -> dict:
    out = {}
    for s in SPLITS:
        lonlat, labels = ds.split(s)
        obj = (lonlat.astype(np.float32), labels.astype(np.int64), np.arange(len(labels), dtype=np.int64))
        out[f"vmf_{ds.name}_seed{ds.seed}_{s}_locations.pkl"] = pickle.dumps(obj, protocol=2)
    return out


def files_of(ds: Dataset, fmt: str, tbl=None) -> dict:
    """{file name: bytes} of one dataset in one format (``tbl``: its ``table``, if already built)."""
    if fmt == "torchspatial":
        return _torchspatial_files(ds)
    tbl = table(ds) if tbl is None else tbl
    return {f"{Path(ds.file_name).stem}.{fmt}": (_csv_bytes if fmt == "csv" else _parquet_bytes)(tbl)}


def _write(path: Path, data: bytes) -> None:
    """Every exported byte reaches the disk here (tests make it fail like a full disk)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.exists():
        return {"package": "sphere-synth", "files": {}}
    try:
        m = json.loads(path.read_text())
        assert isinstance(m, dict) and isinstance(m.get("files"), dict)
        assert all(isinstance(e, dict) and {"name", "seed", "recipe", "format", "sha256"} <= set(e)
                   for e in m["files"].values())
        return m
    except (json.JSONDecodeError, AssertionError, UnicodeDecodeError):
        raise SynthError(f"{path} is not a valid sphere-synth export manifest") from None


def export(dss, out, formats=("csv",)) -> list[Path]:
    """Write every dataset of ``dss`` in every format to the folder ``out``, all or nothing, and
    record them in ``out/export.json``. Returns the paths written."""
    formats = parse_formats(formats)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out)  # a damaged manifest is refused before anything is written
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    entries = {}
    try:
        for ds in dss:
            checksum = hashlib.sha256(datasets._npz_bytes(ds.arrays)).hexdigest()
            tbl = table(ds) if set(formats) & set(READABLE.values()) else None  # one table for CSV and Parquet
            for fmt in formats:
                for name, data in files_of(ds, fmt, tbl).items():
                    _write(staging / name, data)
                    entries[name] = {"name": ds.name, "seed": ds.seed, "recipe": ds.recipe.to_dict(), "format": fmt,
                                     "sha256": hashlib.sha256(data).hexdigest(), "dataset_sha256": checksum,
                                     "rows": int(sum(len(ds.split(s)[1]) for s in SPLITS)),
                                     "columns": list(COLUMNS) if fmt != "torchspatial" else None}
        for name in entries:
            os.replace(staging / name, out / name)
        manifest.update(package_version=__version__)
        manifest["files"].update(entries)
        atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / n for n in entries]


def read(path) -> Dataset:
    """Read an exported ``.csv`` or ``.parquet`` file back, checked against ``export.json`` beside it
    (SHA-256 of the file, then of the arrays as the dataset's canonical ``.npz``): the arrays are
    exactly those exported."""
    path = Path(path)
    fmt = READABLE.get(path.suffix.lower())
    if fmt is None:
        raise SynthError(f"{path}: can read back .csv and .parquet exports, not {path.suffix or 'a file without suffix'}")
    if not path.is_file():
        raise SynthError(f"no such export file: {path}")
    if not (path.parent / MANIFEST).exists():
        raise SynthError(f"{path.parent} has no {MANIFEST}: not a sphere-synth export folder (python -m synth export "
                         "writes one)")
    entry = _read_manifest(path.parent)["files"].get(path.name)
    if entry is None:
        raise SynthError(f"{path.name} is not listed in {path.parent / MANIFEST}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise SynthError(f"{path} is corrupt or was modified: its SHA-256 does not match {MANIFEST}")
    recipe = Recipe.from_dict(entry["recipe"])
    arrays = _arrays(_read_table(data, fmt), recipe, path)
    ds = Dataset(recipe=recipe, seed=int(entry["seed"]), arrays=arrays)
    if entry.get("dataset_sha256") not in (None, hashlib.sha256(datasets._npz_bytes(arrays)).hexdigest()):
        raise SynthError(f"{path}: its arrays do not give the dataset checksum recorded in {MANIFEST}")
    return ds


def _read_table(data: bytes, fmt: str):
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(pa.BufferReader(data))
        import pyarrow.csv as pacsv

        types = {"lon": pa.float64(), "lat": pa.float64(), "class": pa.int64(), "split": pa.string(),
                 "center_lon": pa.float64(), "center_lat": pa.float64(), "kappa": pa.float64()}
        return pacsv.read_csv(pa.BufferReader(data), convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowException, OSError) as e:
        raise SynthError(f"cannot read the {fmt} export ({type(e).__name__})") from None


def _arrays(tbl, recipe: Recipe, path: Path) -> dict:
    missing = [c for c in COLUMNS if c not in tbl.column_names]
    if missing:
        raise SynthError(f"{path} lacks column(s) {', '.join(missing)}")
    col = {c: tbl.column(c).to_numpy() for c in COLUMNS if c != "split"}
    split = np.asarray(tbl.column("split").cast("string").to_pylist(), dtype=object)
    arrays = {}
    for s in SPLITS:
        sel = split == s
        arrays[f"{s}_lonlat"] = np.stack([col["lon"][sel], col["lat"][sel]], 1).astype(np.float64)
        arrays[f"{s}_label"] = col["class"][sel].astype(np.int64)
    C = recipe.n_classes
    labels = col["class"]
    if labels.size and (labels.min() < 0 or labels.max() >= C):
        raise SynthError(f"{path}: class outside 0..{C - 1}")
    present, first = np.unique(labels, return_index=True)  # the first row of each class
    if len(present) != C:
        raise SynthError(f"{path}: class(es) without any row, so their centre and kappa are unknown")
    arrays["centers_lonlat"] = np.stack([col["center_lon"][first], col["center_lat"][first]], 1)
    arrays["kappa"] = col["kappa"][first]
    return arrays

