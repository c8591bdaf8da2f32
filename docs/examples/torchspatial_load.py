"""Load a sphere-synth ``torchspatial`` export with TorchSpatial's own loader, as that code really is.

    python -m synth export --dataset S2.3 --seed 0 --format torchspatial --out EXPORT
    python docs/examples/torchspatial_load.py TORCHSPATIAL_CODE EXPORT vmf_S2.3_seed0

TORCHSPATIAL_CODE is the folder holding its ``datasets.py``, ``data_utils.py`` and ``paths.py``: a
clone's ``main/``, or the ``torchspatial/`` folder of the PyPI wheel (``pip download torchspatial
--no-deps``, then unzip it; the wheel cannot be installed beside torch >= 2.4, and its modules import
each other by flat names, so they are put on ``sys.path`` here instead).

What it takes, said plainly (TorchSpatial 0.0.0.1 on PyPI, its GitHub ``main/`` the same lines):
- ``load_dataset``'s ``vmf`` branch never sets ``train_preds``, which the function then returns: an
  UnboundLocalError for every vmf dataset. The one patch applied here (in memory, to a copy of its
  source) sets ``train_preds = None`` in that branch, as its other branches without CNN predictions do.
- ``get_paths("vmf_data_dir")`` is a fixed relative path (``../geo_prior_data/data/vmf/``); here it
  returns EXPORT instead.
- ``datasets.py`` imports pandas at its top (the vmf branch does not use it); without pandas
  installed, an empty stand-in module is given to that import, and the script says so.

The script then checks that what TorchSpatial's loader returns is exactly the export's points:
coordinates (float32, TorchSpatial's own cast) and classes, train and test, and prints one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

VMF_BRANCH = '    elif params["dataset"].startswith("vmf"):\n'
PATCH = VMF_BRANCH + "        train_preds = None  # sphere-synth: the vmf branch never sets it, and it is returned\n"


def load_with_torchspatial(code: Path, export: Path, dataset: str, eval_split: str = "test") -> dict:
    """TorchSpatial's ``load_dataset`` on ``export``: its returned dict (``train_locs``, ``val_locs``, ...)."""
    source = (code / "datasets.py").read_text()
    if source.count(VMF_BRANCH) != 1:
        raise SystemExit(f"error: {code / 'datasets.py'} has no vmf branch where this script expects it: "
                         "another TorchSpatial version")
    sys.path.insert(0, str(code))  # its modules import each other by flat names (paths, data_utils)
    if importlib.util.find_spec("pandas") is None:
        print("note: pandas is not installed; TorchSpatial's datasets.py imports it but its vmf branch does not "
              "use it, so an empty stand-in is imported", file=sys.stderr)
        sys.modules["pandas"] = types.ModuleType("pandas")
    module = types.ModuleType("torchspatial_datasets")
    module.__file__ = str(code / "datasets.py")
    exec(compile(source.replace(VMF_BRANCH, PATCH), module.__file__, "exec"), module.__dict__)
    module.get_paths = lambda key: str(export) if key == "vmf_data_dir" else None
    params = {"dataset": dataset, "regress_dataset": []}
    return module.load_dataset(params, eval_split, train_remove_invalid=True, eval_remove_invalid=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("code", type=Path, help="the folder with TorchSpatial's datasets.py")
    p.add_argument("export", type=Path, help="the folder written by python -m synth export --format torchspatial")
    p.add_argument("dataset", help="vmf_<name>_seed<k>, as the export names its files")
    a = p.parse_args(argv)
    op = load_with_torchspatial(a.code, a.export, a.dataset)

    from synth import datasets

    name, seed = a.dataset[len("vmf_"):].rsplit("_seed", 1)
    ds = datasets.generate(name, int(seed))
    for ours, theirs in (("train", "train"), ("test", "val")):  # its eval split comes back as val_*
        lonlat, labels = ds.split(ours)
        same = (np.array_equal(op[f"{theirs}_locs"], lonlat.astype(np.float32))
                and np.array_equal(op[f"{theirs}_classes"], labels))
        if not same:
            print(f"error: TorchSpatial's {theirs} split differs from sphere-synth's {ours} split", file=sys.stderr)
            return 1
    print(f"TorchSpatial's load_dataset read {a.dataset}: train {op['train_locs'].shape}, test "
          f"{op['val_locs'].shape}, {len(np.unique(op['train_classes']))} classes; identical to sphere-synth's "
          "arrays (coordinates as float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
