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
from .fileio import atomic_write_bytes, folder_lock
from .params import PATH, Kind, checked, instance

FORMATS = ("csv", "parquet", "torchspatial")


def _datasets_arg(value):
    """One Dataset, or an iterable of them (a list, or a generator: checked one by one as it is read)."""
    import collections.abc

    if isinstance(value, Dataset):
        return [value]
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, collections.abc.Iterable):
        raise TypeError
    return value


def _formats_arg(value):
    if isinstance(value, str) or isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return value
    raise TypeError


DATASETS = Kind("a Dataset or an iterable of Datasets", _datasets_arg)
FORMATS_ARG = Kind(f"a comma-separated string or a list of {', '.join(FORMATS)}", _formats_arg)
MANIFEST = "export.json"
COLUMNS = ("lon", "lat", "class", "split", "center_lon", "center_lat", "kappa")
READABLE = {".csv": "csv", ".parquet": "parquet"}


def _arrow(part: str = ""):
    """pyarrow (or one of its modules); without it, one line naming the package, not an ImportError."""
    import importlib

    try:
        return importlib.import_module("pyarrow" + (f".{part}" if part else ""))
    except ImportError:
        raise SynthError("CSV and Parquet export need the pyarrow package, which is not installed "
                         "(pip install pyarrow)") from None


@checked(text=FORMATS_ARG)
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


@checked(ds=instance(Dataset))
def table(ds: Dataset):
    """The dataset as a pyarrow Table, one row per point (columns ``COLUMNS``)."""
    pa = _arrow()

    lonlat = np.concatenate([ds.split(s)[0] for s in SPLITS])
    labels = np.concatenate([ds.split(s)[1] for s in SPLITS]).astype(np.int64)
    split = pa.DictionaryArray.from_arrays(
        np.repeat(np.arange(len(SPLITS), dtype=np.int8), [len(ds.split(s)[1]) for s in SPLITS]), list(SPLITS))
    centers, kappa = ds["centers_lonlat"], ds["kappa"]
    return pa.table({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "class": labels, "split": split,
                     "center_lon": centers[labels, 0], "center_lat": centers[labels, 1], "kappa": kappa[labels]})


def _csv_bytes(tbl) -> bytes:
    pa, pacsv = _arrow(), _arrow("csv")

    sink = pa.BufferOutputStream()
    pacsv.write_csv(tbl.set_column(3, "split", tbl.column("split").cast(pa.string())), sink)
    return sink.getvalue().to_pybytes()


def _parquet_bytes(tbl) -> bytes:
    pa, pq = _arrow(), _arrow("parquet")

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


# Bytes per point of each format, rounded down from measured exports (S2.3 and U1: CSV 82.5,
# Parquet 19.2, TorchSpatial 28.4), so that the free-space check never refuses an export that fits.
BYTES_PER_POINT = {"csv": 75, "parquet": 15, "torchspatial": 25}
STAGING = ".export-"  # the hidden folder an export writes into before moving its files into place
_OWNER = ".owner"  # inside a staging folder: locked by the export writing it, for as long as it lives


def check_free_space(out, points: int, formats) -> None:
    """Refuse, before anything is written, an export of ``points`` points (all datasets together)
    that would not fit in the free space of the disk holding ``out``."""
    need = points * sum(BYTES_PER_POINT[f] for f in parse_formats(formats))
    where = Path(out)
    while not where.exists():  # the folder may not exist yet: its nearest existing parent's disk
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise SynthError(f"the export needs about {_size(need)} and {where} has {_size(free)} free: export fewer "
                         "datasets or seeds, or free some space")


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def _remove_abandoned_staging(out: Path) -> None:
    """A killed export leaves its staging folder behind; the next export into the folder removes it.
    A folder whose owner lock can be taken has no live export writing it (the kernel drops a dead
    process's lock); one still without its lock file is left alone while it is young (its export
    may be just starting)."""
    import fcntl
    import time

    for folder in out.glob(STAGING + "*"):
        owner = folder / _OWNER
        if not owner.exists():
            if time.time() - folder.stat().st_mtime > 60:
                shutil.rmtree(folder, ignore_errors=True)
            continue
        with open(owner, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another export is writing it
            shutil.rmtree(folder, ignore_errors=True)


def _check_dataset(ds) -> None:
    """What is exported is a dataset the toolkit could have made: coordinates, labels and κ valid."""
    if not isinstance(ds, Dataset):
        raise SynthError(f"export takes synth.datasets.Dataset objects, not {type(ds).__name__}")
    datasets._check_arrays(ds.arrays, ds.recipe, Path(f"dataset {ds.name} (seed {ds.seed})"))


@checked(dss=DATASETS, out=PATH, formats=FORMATS_ARG)
def export(dss, out, formats=("csv",)) -> list[Path]:
    """Write every dataset of ``dss`` in every format to the folder ``out``, all or nothing, and
    record them in ``out/export.json``. Returns the paths written.

    Several exports may write into one folder at once: each stages its files apart and merges its
    entries into ``export.json`` under a lock, so every file written is listed."""
    import fcntl

    formats = parse_formats(formats)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} is a file, not a folder")
    listed = isinstance(dss, (list, tuple))  # checked and sized up front; a generator, one by one as it is read
    if listed:
        for ds in dss:
            _check_dataset(ds)
        check_free_space(out, sum(len(ds.split("all")[1]) for ds in dss), formats)
    out.mkdir(parents=True, exist_ok=True)
    _read_manifest(out)  # a damaged manifest is refused before anything is written
    _remove_abandoned_staging(out)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=STAGING))
    entries = {}
    try:
        with open(staging / _OWNER, "w") as owner:
            fcntl.flock(owner, fcntl.LOCK_EX)  # held while this export lives: its staging folder is not abandoned
            for ds in dss:
                if not listed:
                    _check_dataset(ds)
                checksum = hashlib.sha256(datasets._npz_bytes(ds.arrays)).hexdigest()
                tbl = table(ds) if set(formats) & set(READABLE.values()) else None  # one table for CSV and Parquet
                for fmt in formats:
                    files = files_of(ds, fmt, tbl)
                    if sum(map(len, files.values())) > shutil.disk_usage(staging).free:  # datasets read one by one
                        raise SynthError(f"{out} has {_size(shutil.disk_usage(staging).free)} free, too little for "
                                         f"{ds.name} (seed {ds.seed}) as {fmt}: nothing was exported")
                    for name, data in files.items():
                        _write(staging / name, data)
                        entries[name] = {"name": ds.name, "seed": ds.seed, "recipe": ds.recipe.to_dict(),
                                         "format": fmt, "sha256": hashlib.sha256(data).hexdigest(),
                                         "dataset_sha256": checksum,
                                         # the points in this file (a TorchSpatial pickle holds one split)
                                         "rows": _rows(ds, name, fmt),
                                         "columns": list(COLUMNS) if fmt != "torchspatial" else None}
            with folder_lock(out, ".export.lock"):  # read-modify-write of export.json, one export at a time
                manifest = _read_manifest(out)
                for name in entries:
                    os.replace(staging / name, out / name)
                manifest.update(package_version=__version__)
                manifest["files"].update(entries)
                atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / n for n in entries]


def _rows(ds: Dataset, file_name: str, fmt: str) -> int:
    if fmt != "torchspatial":
        return int(len(ds.split("all")[1]))
    split = next(s for s in SPLITS if file_name.endswith(f"_{s}_locations.pkl"))
    return int(len(ds.split(split)[1]))


@checked(path=PATH)
def read(path) -> Dataset:
    """Read an exported ``.csv`` or ``.parquet`` file back, checked against ``export.json`` beside it
    (SHA-256 of the file), its values checked row by row (columns in order, coordinates, splits,
    classes, one centre and κ per class), and the arrays compared with the dataset its recipe and
    seed generate: what comes back is exactly the dataset the manifest names, or an error."""
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
    try:
        recipe = Recipe.from_dict(entry["recipe"])
    except (SynthError, TypeError, AttributeError) as e:
        raise SynthError(f"{path}: the recipe {MANIFEST} records for it is not valid ({e})") from None
    seed = entry["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SynthError(f"{path}: the seed {MANIFEST} records for it, {seed!r}, is not a non-negative integer")
    arrays = _arrays(_read_table(data, fmt, path), recipe, path)
    ds = Dataset(recipe=recipe, seed=seed, arrays=arrays)
    if entry.get("dataset_sha256") not in (None, hashlib.sha256(datasets._npz_bytes(arrays)).hexdigest()):
        raise SynthError(f"{path}: its arrays do not give the dataset checksum recorded in {MANIFEST}")
    # the manifest's recipe and seed name the dataset: the arrays must be the ones they generate
    # (an edited seed or recipe name would otherwise label the points as another dataset)
    datasets.check_follows_recipe(ds, path)
    return ds


def _read_table(data: bytes, fmt: str, path: Path):
    pa = _arrow()
    try:
        if fmt == "parquet":
            return _arrow("parquet").read_table(pa.BufferReader(data))
        pacsv = _arrow("csv")

        types = {"lon": pa.float64(), "lat": pa.float64(), "class": pa.int64(), "split": pa.string(),
                 "center_lon": pa.float64(), "center_lat": pa.float64(), "kappa": pa.float64()}
        return pacsv.read_csv(pa.BufferReader(data), convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowException, OSError) as e:
        raise SynthError(f"{path}: cannot read it as a {fmt} export ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _arrays(tbl, recipe: Recipe, path: Path) -> dict:
    """The dataset's arrays from the table, every value checked; an error names the row and column
    (row 1 is the first row after the header)."""
    if tuple(tbl.column_names) != COLUMNS:
        raise SynthError(f"{path}: its columns are {', '.join(tbl.column_names)}; an export has "
                         f"{', '.join(COLUMNS)} in this order")
    col = {c: tbl.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS if c != "split"}
    split = np.asarray(tbl.column("split").cast("string").to_pylist(), dtype=object)

    def refuse(bad, column, expected):
        i = int(np.flatnonzero(bad)[0])
        value = split[i] if column == "split" else col[column][i].item()
        raise SynthError(f"{path}: row {i + 1}, column {column}: {value!r} is not {expected}")

    for c in ("lon", "lat", "center_lon", "center_lat", "kappa"):
        if col[c].dtype.kind != "f":
            raise SynthError(f"{path}: column {c} holds {col[c].dtype}, not numbers")
        if not np.all(np.isfinite(col[c])):
            refuse(~np.isfinite(col[c]), c, "a finite number")
    for c in ("lon", "center_lon"):
        if np.any((col[c] < -180) | (col[c] >= 180)):
            refuse((col[c] < -180) | (col[c] >= 180), c, "a longitude in [-180, 180)")
    for c in ("lat", "center_lat"):
        if np.any(np.abs(col[c]) > 90):
            refuse(np.abs(col[c]) > 90, c, "a latitude in [-90, 90]")
    if np.any(col["kappa"] <= 0):
        refuse(col["kappa"] <= 0, "kappa", "a concentration > 0")
    if not np.all(np.isin(split, SPLITS)):
        refuse(~np.isin(split, SPLITS), "split", f"one of {', '.join(SPLITS)}")
    C = recipe.n_classes
    labels = col["class"]
    if labels.dtype.kind not in "iu":
        raise SynthError(f"{path}: column class holds {labels.dtype}, not integers")
    if np.any((labels < 0) | (labels >= C)):
        refuse((labels < 0) | (labels >= C), "class", f"a class of the recipe (0..{C - 1})")
    present, first = np.unique(labels, return_index=True)  # the first row of each class
    if len(present) != C:
        raise SynthError(f"{path}: class(es) without any row, so their centre and kappa are unknown")
    for c in ("center_lon", "center_lat", "kappa"):  # one centre and one κ per class
        differs = col[c] != col[c][first][labels]
        if np.any(differs):
            refuse(differs, c, f"the value of the class's first row ({col[c][first][labels][differs][0].item()!r})")
    arrays = {}
    for s in SPLITS:
        sel = split == s
        arrays[f"{s}_lonlat"] = np.stack([col["lon"][sel], col["lat"][sel]], 1).astype(np.float64)
        arrays[f"{s}_label"] = labels[sel].astype(np.int64)
    arrays["centers_lonlat"] = np.stack([col["center_lon"][first], col["center_lat"][first]], 1)
    arrays["kappa"] = col["kappa"][first]
    return arrays
