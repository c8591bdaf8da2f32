"""Issue 32: the datasets out of sphere-synth (CSV, Parquet, TorchSpatial pickles) and into PyTorch."""

import errno
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from synth import SynthError, datasets, export
from synth.cli import main as synth_main
from synth.torch import LocationDataset

ODD = datasets.Recipe(name="odd-1", centers="stratified", n_bands=3, n_classes=9, samples_per_class=13,
                      kappa_max=64, tilt=33.0, n_train=5)


def _same(a: datasets.Dataset, b: datasets.Dataset) -> None:
    assert a.recipe == b.recipe and a.seed == b.seed
    for k in datasets.ARRAYS:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("source", ["S2.3", ODD])
def test_export_then_read_gives_identical_arrays(tmp_path, fmt, source):
    ds = datasets.generate(source, 3)
    (path,) = export.export([ds], tmp_path, [fmt])
    _same(export.read(path), ds)
    entry = json.loads((tmp_path / export.MANIFEST).read_text())["files"][path.name]
    npz = datasets.save(ds, tmp_path / "npz")
    manifest = json.loads((tmp_path / "npz" / datasets.MANIFEST).read_text())
    assert entry["dataset_sha256"] == manifest["datasets"][npz.name]["sha256"]  # the generate checksum
    assert entry["recipe"] == ds.recipe.to_dict() and entry["rows"] == sum(len(ds.split(s)[1]) for s in datasets.SPLITS)


def test_rows_carry_their_class_centre_kappa_and_split(tmp_path):
    import pyarrow.parquet as pq

    ds = datasets.generate("U2", 0)
    (path,) = export.export([ds], tmp_path, "parquet")
    t = pq.read_table(path).to_pydict()
    assert list(t) == list(export.COLUMNS)
    labels = np.asarray(t["class"])
    np.testing.assert_array_equal(np.c_[t["center_lon"], t["center_lat"]], ds["centers_lonlat"][labels])
    np.testing.assert_array_equal(t["kappa"], ds["kappa"][labels])
    n = [len(ds.split(s)[1]) for s in datasets.SPLITS]
    assert t["split"] == ["train"] * n[0] + ["val"] * n[1] + ["test"] * n[2]


def test_exports_are_the_same_bytes_every_time(tmp_path):
    ds = datasets.generate("S1.2", 1)
    a = export.export([ds], tmp_path / "a", "csv,parquet,torchspatial")
    b = export.export([ds], tmp_path / "b", "csv,parquet,torchspatial")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_torchspatial_pickles_hold_what_its_vmf_loader_unpacks(tmp_path):
    """TorchSpatial (main/datasets.py, load_dataset, dataset names starting with 'vmf') unpacks
    ``locs, classes, inds = pickle_load(<dir>/<dataset>_<split>_locations.pkl)``."""
    ds = datasets.generate("S4.4", 0)
    export.export([ds], tmp_path, "torchspatial")
    for s in datasets.SPLITS:
        with open(tmp_path / f"vmf_S4.4_seed0_{s}_locations.pkl", "rb") as f:
            locs, classes, inds = pickle.load(f)
        lonlat, labels = ds.split(s)
        assert locs.dtype == np.float32 and np.array_equal(locs, lonlat.astype(np.float32))
        assert np.array_equal(classes, labels) and np.array_equal(inds, np.arange(len(labels)))


def test_the_cli_exports_names_recipes_and_folders(tmp_path, capsys):
    assert synth_main(["export", "--dataset", "U1,S2.3", "--seed", "0-1", "--format", "csv,parquet",
                       "--out", str(tmp_path / "e")]) == 0
    assert len(list((tmp_path / "e").glob("*.csv"))) == 4 and len(list((tmp_path / "e").glob("*.parquet"))) == 4
    _same(export.read(tmp_path / "e" / "S2.3_seed1.csv"), datasets.generate("S2.3", 1))
    assert synth_main(["generate", "--dataset", "U3", "--seed", "2", "--out", str(tmp_path / "d")]) == 0
    assert synth_main(["export", "--data", str(tmp_path / "d"), "--format", "parquet", "--out", str(tmp_path / "f")]) == 0
    _same(export.read(tmp_path / "f" / "U3_seed2.parquet"), datasets.load(tmp_path / "d" / "U3_seed2.npz"))
    (tmp_path / "r.toml").write_text('[recipe]\nname = "mine"\nn_classes = 6\nsamples_per_class = 20\n')
    assert synth_main(["export", "--recipe", str(tmp_path / "r.toml"), "--out", str(tmp_path / "f")]) == 0
    assert export.read(tmp_path / "f" / "mine_seed0.csv").recipe.n_classes == 6
    files = json.loads((tmp_path / "f" / export.MANIFEST).read_text())["files"]
    assert set(files) == {"U3_seed2.parquet", "mine_seed0.csv"}  # a second export adds to the manifest


def _one_line_error(capsys, argv, match):
    assert synth_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err


def _state(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("fault", ["full-disk", "read-only"])
def test_a_full_or_read_only_disk_is_one_line_and_leaves_the_folder_as_it_was(tmp_path, capsys, monkeypatch, fault):
    out = tmp_path / "out"
    export.export([datasets.generate("U1", 0)], out, "csv")
    before = _state(out)
    if fault == "full-disk":  # the third file runs out of space half-way through
        calls, real = [], export._write

        def write(path, data):
            calls.append(path)
            if len(calls) == 3:
                path.write_bytes(data[:len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path, data)
        monkeypatch.setattr(export, "_write", write)
        match = "No space left on device"
    else:  # root ignores permission bits, so the read-only mount is simulated where the folder is opened
        def mkdtemp(dir=None, prefix=None):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        monkeypatch.setattr(export.tempfile, "mkdtemp", mkdtemp)
        match = "Read-only file system"
    _one_line_error(capsys, ["export", "--dataset", "U2,S2.3", "--format", "csv,parquet", "--out", str(out)], match)
    assert _state(out) == before  # no new file, no staging folder, the manifest and earlier export untouched


def test_a_folder_that_cannot_be_written_is_refused_for_real(tmp_path):
    """The same without simulation: a folder made unwritable (chmod for a user; for root, who ignores
    permission bits, the immutable attribute, which stops root too)."""
    import os

    out = tmp_path / "ro"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    if os.geteuid() != 0:
        lock, unlock = ["chmod", "555", str(out)], ["chmod", "755", str(out)]
    else:
        lock, unlock = ["chattr", "+i", str(out)], ["chattr", "-i", str(out)]
    if subprocess.run(lock, capture_output=True).returncode != 0:
        pytest.skip(f"cannot make a folder unwritable here ({lock[0]} failed); the simulated case above covers it")
    try:
        r = subprocess.run([sys.executable, "-m", "synth", "export", "--dataset", "U1", "--out", str(out)],
                           capture_output=True, text=True)
    finally:
        subprocess.run(unlock, check=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("case", ["unknown-format", "no-format", "no-manifest", "empty-manifest", "seed", "out-is-file"])
def test_bad_export_requests_are_one_line(tmp_path, capsys, case):
    (tmp_path / "plain").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / datasets.MANIFEST).write_text('{"datasets": {}}')
    argv, match = {
        "unknown-format": (["--dataset", "U1", "--format", "csv,xlsx"], "unknown export format 'xlsx'"),
        "no-format": (["--dataset", "U1", "--format", ","], "no export format"),
        "no-manifest": (["--data", str(tmp_path / "plain")], "has no manifest.json"),
        "empty-manifest": (["--data", str(tmp_path / "empty")], "lists no datasets"),
        "seed": (["--dataset", "U1", "--seed", "x"], "cannot read seeds"),
        "out-is-file": (["--dataset", "U1", "--out", str(tmp_path / "file")], "is a file, not a folder"),
    }[case]
    if "--out" not in argv:
        argv = argv + ["--out", str(tmp_path / "o")]
    _one_line_error(capsys, ["export", *argv], match)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("case", ["no-manifest", "empty-manifest"])
def test_verify_refuses_a_folder_with_nothing_to_verify(tmp_path, capsys, case):
    """`synth verify` reads the folder as `export --data` does (datasets.listed_files): an empty
    manifest is an error, not "ok: 0 file(s)"."""
    folder = tmp_path / "d"
    folder.mkdir()
    if case == "empty-manifest":
        (folder / datasets.MANIFEST).write_text('{"datasets": {}}')
    _one_line_error(capsys, ["verify", str(folder)], {"no-manifest": "has no manifest.json",
                                                      "empty-manifest": "lists no datasets"}[case])


def test_reading_back_refuses_what_it_cannot_vouch_for(tmp_path):
    (path,) = export.export([datasets.generate("U1", 0)], tmp_path / "e", "csv")
    raw = bytearray(path.read_bytes())
    raw[200] = ord("7") if raw[200] != ord("7") else ord("8")
    (tmp_path / "e" / "edited.csv").write_bytes(bytes(raw))
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "U1_seed0.csv").write_bytes(path.read_bytes())
    for p, match in [(tmp_path / "e" / "edited.csv", "not listed"), (lone / "U1_seed0.csv", "no export.json"),
                     (tmp_path / "e" / "U1_seed0.xlsx", "not .xlsx"), (tmp_path / "e" / "gone.csv", "no such export")]:
        with pytest.raises(SynthError, match=match):
            export.read(p)
    path.write_bytes(bytes(raw))
    with pytest.raises(SynthError, match="SHA-256 does not match"):
        export.read(path)
    (tmp_path / "e" / export.MANIFEST).write_text("{not json")
    with pytest.raises(SynthError, match="not a valid sphere-synth export manifest"):
        export.export([datasets.generate("U1", 0)], tmp_path / "e", "csv")


def test_location_dataset_feeds_a_dataloader_from_every_source(tmp_path):
    ds = datasets.generate("S2.3", 0)
    npz = datasets.save(ds, tmp_path)
    (csv,) = export.export([ds], tmp_path / "e", "csv")
    lonlat, labels = ds.split("val")
    for source in ("S2.3", npz, str(csv), ds):
        d = LocationDataset(source, "val")
        assert len(d) == len(labels) and d.n_classes == 50
        assert torch.equal(d.labels, torch.as_tensor(labels))
        assert torch.equal(d.lonlat, torch.as_tensor(lonlat, dtype=torch.float32))
    x, y = next(iter(DataLoader(LocationDataset("S2.3", "train"), batch_size=64, shuffle=True,
                                generator=torch.Generator().manual_seed(0))))
    assert x.shape == (64, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (x[:, 0].abs() <= 180).all() and (x[:, 1].abs() <= 90).all()
    assert len(LocationDataset("U1", "all", seed=2)) == 5000
    assert LocationDataset("U1", "test", dtype=torch.float64).lonlat.dtype == torch.float64
    for bad, match in [("nope", "unknown dataset 'nope'"), (tmp_path, "is a folder"), (3, "not int")]:
        with pytest.raises(SynthError, match=match):
            LocationDataset(bad)
    with pytest.raises(SynthError, match="unknown split"):
        LocationDataset("U1", "dev")


def test_a_damaged_file_in_the_data_folder_stops_the_export_before_anything_is_written(tmp_path, capsys):
    assert synth_main(["generate", "--dataset", "U1,U2", "--out", str(tmp_path / "d")]) == 0
    p = tmp_path / "d" / "U2_seed0.npz"
    raw = bytearray(p.read_bytes())
    raw[-100] ^= 0xFF
    p.write_bytes(bytes(raw))
    _one_line_error(capsys, ["export", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")], "SHA-256 does not match")
    assert list((tmp_path / "o").iterdir()) == []  # U1 was written to staging only, and removed
