"""The datasets as a PyTorch ``Dataset``: ``LocationDataset("S2.3", "train")`` for a ``DataLoader``.

Each item is ``(lonlat, label)``: a (2,) tensor of longitude and latitude in degrees (the order
TorchSpatial and locationencoder take) and the class as an int64 tensor. The source is a dataset
name (generated in memory: registered names, paper or user recipes), a ``.npz`` file written by
``python -m synth generate`` (checked against its manifest), an exported ``.csv`` or ``.parquet``
file (checked against its ``export.json``), or a ``synth.datasets.Dataset``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset as _TorchDataset

from . import datasets, export
from .errors import SynthError
from .params import Kind, checked, integer, one_of


def _source(value):
    if isinstance(value, datasets.Dataset) or isinstance(value, Path) or isinstance(value, str) and value.strip():
        return value
    raise TypeError


SOURCE = Kind("a dataset name, a .npz/.csv/.parquet file or a Dataset", _source)


@checked(source=SOURCE, seed=integer(0, 2**32 - 1, optional=True))
def resolve(source, seed: int | None = None) -> datasets.Dataset:
    """A ``synth.datasets.Dataset`` from any source ``LocationDataset`` accepts. ``seed`` chooses the
    draw of a dataset *name* (default 0); a file or a Dataset has its own, and another one is refused."""
    if isinstance(source, datasets.Dataset):
        return _same_seed(source, seed, "the Dataset given")
    path = Path(source)
    if path.suffix.lower() == ".npz":
        return _same_seed(datasets.load(path), seed, path)
    if path.suffix.lower() in export.READABLE:
        return _same_seed(export.read(path), seed, path)
    if path.is_dir():
        raise SynthError(f"{path} is a folder: name one of its files (.npz, .csv or .parquet)")
    if str(source) in datasets.available():
        return datasets.generate(str(source), 0 if seed is None else seed)
    raise SynthError(f"unknown dataset {str(source)!r}: give a registered name ({', '.join(datasets.PAPER_DATASETS[:3])}, "
                     "...), a .npz file, or an exported .csv or .parquet file")


def _same_seed(ds: datasets.Dataset, seed, where) -> datasets.Dataset:
    if seed is not None and seed != ds.seed:
        raise SynthError(f"seed={seed} chooses the draw of a dataset name; {where} holds seed {ds.seed} (leave seed "
                         "out)")
    return ds


def _float_dtype(value):
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise TypeError
    return value


class LocationDataset(_TorchDataset):
    """One split (``train``, ``val``, ``test`` or ``all``) of a dataset as (lonlat, label) pairs.

    ``dataset`` keeps the source (recipe, seed, centres, κ); ``n_classes`` sizes a classifier."""

    @checked(source=SOURCE, split=one_of("train", "val", "test", "all"), seed=integer(0, 2**32 - 1, optional=True),
             dtype=Kind("a floating torch dtype (torch.float32, torch.float64): coordinates in degrees are not "
                        "integers", _float_dtype))
    def __init__(self, source, split: str = "train", seed: int | None = None, dtype: torch.dtype = torch.float32):
        self.dataset = resolve(source, seed)
        lonlat, labels = self.dataset.split(split)
        self.split = split
        self.lonlat = torch.as_tensor(lonlat, dtype=dtype)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.n_classes = self.dataset.recipe.n_classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.lonlat[i], self.labels[i]

    def __repr__(self) -> str:
        return f"LocationDataset({self.dataset.name!r}, seed {self.dataset.seed}, {self.split!r}: {len(self)} points)"
