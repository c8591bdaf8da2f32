"""The datasets out of sphere-synth (CSV, Parquet, TorchSpatial pickles) and into PyTorch."""

import errno
import json
import pickle
import re
from pathlib import Path
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
    try:
        code = synth_main(argv)
    except SystemExit as e:  # argparse's own errors (OneLineParser: one line, status 2)
        code = e.code
    assert code == 2
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
    for bad, match in [("nope", "unknown dataset 'nope'"), (tmp_path, "is a folder"), (3, "source = 3 is not valid")]:
        with pytest.raises(SynthError, match=match):
            LocationDataset(bad)
    with pytest.raises(SynthError, match="split = 'dev' is not valid"):
        LocationDataset("U1", "dev")


def test_a_damaged_file_in_the_data_folder_stops_the_export_before_anything_is_written(tmp_path, capsys):
    assert synth_main(["generate", "--dataset", "U1,U2", "--out", str(tmp_path / "d")]) == 0
    p = tmp_path / "d" / "U2_seed0.npz"
    raw = bytearray(p.read_bytes())
    raw[-100] ^= 0xFF
    p.write_bytes(bytes(raw))
    _one_line_error(capsys, ["export", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")], "SHA-256 does not match")
    assert list((tmp_path / "o").iterdir()) == []  # U1 was written to staging only, and removed


# ----------------------------------------------------------------------------- bad inputs, round 5
def test_two_exports_into_one_folder_at_once_keep_both(tmp_path):
    """Two real processes export into one folder at the same time: every file either wrote is listed
    in export.json and reads back (each merges its entries under a lock, re-reading the manifest)."""
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "synth", "export", "--seed", "0-1", "--format", "csv", "--out", str(out)]
    procs = [subprocess.Popen(cmd + ["--dataset", names], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for names in ("U1,U2,U3,U4,S1.1,S1.2,S1.3,S1.4,S2.1,S2.2", "S2.3,S2.4,S3.1,S3.2,S3.3,S3.4,S4.1,S4.2,S4.3,S4.4")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    files = sorted(p.name for p in out.glob("*.csv"))
    listed = json.loads((out / export.MANIFEST).read_text())["files"]
    assert len(files) == 40 and sorted(listed) == files
    for name in files:
        export.read(out / name)
    assert not list(out.glob(export.STAGING + "*"))


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(tmp_path):
    """kill -9 in the middle of an export leaves its hidden staging folder; the next export into the
    folder removes it (its owner's lock died with it), and leaves a live export's folder alone."""
    import fcntl
    import time

    out = tmp_path / "o"
    p = subprocess.Popen([sys.executable, "-m", "synth", "export", "--all", "--seed", "0-29", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(len(list(s.iterdir())) > 3 for s in out.glob(export.STAGING + "*")):
        time.sleep(0.05)
    p.kill()
    p.wait()
    (dead,) = out.glob(export.STAGING + "*")
    live = out / (export.STAGING + "live")
    live.mkdir()
    with open(live / ".owner", "w") as f:  # an export writing right now holds this lock
        fcntl.flock(f, fcntl.LOCK_EX)
        export.export([datasets.generate("U1", 0)], out)
        assert not dead.exists() and live.exists()
    assert [q.name for q in out.glob("*.csv")] == ["U1_seed0.csv"]


def test_an_export_that_cannot_fit_is_refused_before_writing(tmp_path, capsys, monkeypatch):
    """--seed 0-99999 (about 40 GB of CSV per dataset) against the disk's free space: refused before
    a single dataset is generated; so is an export whose files would not fit, from the API."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**11, 10**11 - 10**9, 10**9))  # 1 GB free
    _one_line_error(capsys, ["export", "--dataset", "U1", "--seed", "0-99999", "--out", str(tmp_path / "o")],
                    "needs about 37.5 GB")
    assert not (tmp_path / "o").exists()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 10**5, 10**5))  # 100 kB free
    with pytest.raises(SynthError, match="needs about 375.0 kB"):
        export.export([datasets.generate("U1", 0)], tmp_path / "o")
    assert not (tmp_path / "o").exists()


def _hand_made(tmp_path, edit, manifest_edit=None):
    """An exported CSV edited by ``edit(text) -> text`` and listed again in export.json with the new
    SHA-256 and no dataset checksum (a hand-made export), then read back."""
    import hashlib

    (path,) = export.export([datasets.generate("U1", 0)], tmp_path / "h", "csv")
    path.write_text(edit(path.read_text()))
    m = json.loads((path.parent / export.MANIFEST).read_text())
    entry = m["files"][path.name]
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    entry.pop("dataset_sha256")
    if manifest_edit:
        manifest_edit(entry)
    (path.parent / export.MANIFEST).write_text(json.dumps(m))
    return path


def _cell(row, column, value):
    """Edit one cell of data row ``row`` (1: the first row after the header) of a CSV text."""
    def edit(text):
        lines = text.split("\n")
        cells = lines[row].split(",")
        cells[export.COLUMNS.index(column)] = value
        lines[row] = ",".join(cells)
        return "\n".join(lines)
    return edit


@pytest.mark.parametrize("edit, match", [
    (_cell(3, "lon", "nan"), "row 3, column lon: nan is not a finite number"),
    (_cell(3, "lon", "inf"), "row 3, column lon: inf is not a finite number"),
    (_cell(4, "lat", "500"), "row 4, column lat: 500.0 is not a latitude in [-90, 90]"),
    (_cell(4, "lat", "95"), "row 4, column lat: 95.0 is not a latitude"),
    (_cell(5, "lon", "999"), "row 5, column lon: 999.0 is not a longitude in [-180, 180)"),
    (_cell(6, "kappa", "-5"), "row 6, column kappa: -5.0 is not a concentration > 0"),
    (_cell(7, "split", "holdout"), "row 7, column split: 'holdout' is not one of train, val, test"),
    (_cell(8, "class", "50"), "row 8, column class: 50 is not a class of the recipe (0..49)"),
    (_cell(9, "kappa", "3.5"), "row 9, column kappa: 3.5 is not the value of the class's first row"),
    (lambda t: t.replace('"lon","lat"', '"lat","lon"', 1), "its columns are lat, lon"),
    (_cell(2, "lon", "12.5"), "array train_lonlat does not follow its recipe U1"),
])
def test_values_are_checked_on_the_way_in(tmp_path, edit, match):
    """A hand-made CSV (listed with its SHA-256, no dataset checksum) is read value by value: the
    error names the file, the row and the column. A value that is valid but not the recipe's (one
    moved point) is found by comparing with the dataset the recipe and seed generate."""
    path = _hand_made(tmp_path, edit)
    with pytest.raises(SynthError, match=re.escape(match)) as e:
        export.read(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SynthError, match=re.escape(match)):
        LocationDataset(path)


@pytest.mark.parametrize("key, value", [("seed", 1), ("name", "U2"), ("seed", -1), ("seed", "0")])
def test_an_edited_manifest_does_not_relabel_the_arrays(tmp_path, key, value):
    """An edited seed or recipe name in export.json would label U1's points as another dataset."""
    def relabel(entry):
        if key == "name":
            entry["recipe"]["name"] = entry["name"] = value
        else:
            entry["seed"] = value
    path = _hand_made(tmp_path, lambda t: t, relabel)
    with pytest.raises(SynthError, match="does not follow its recipe|is not a non-negative integer"):
        export.read(path)


def test_export_refuses_a_dataset_it_could_not_have_made(tmp_path):
    ds = datasets.generate("U1", 0)
    bad = datasets.Dataset(recipe=ds.recipe, seed=0, arrays={**ds.arrays, "train_lonlat": ds["train_lonlat"].copy()})
    bad.arrays["train_lonlat"][3, 0] = np.nan
    with pytest.raises(SynthError, match="non-finite"):
        export.export([bad], tmp_path / "o")
    bad = datasets.Dataset(recipe=ds.recipe, seed=0, arrays={**ds.arrays, "test_label": ds["test_label"] + 1})
    with pytest.raises(SynthError, match="labels outside 0..49"):
        export.export([bad], tmp_path / "o", "parquet")
    with pytest.raises(SynthError, match="not str"):
        export.export(["U1"], tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_location_dataset_refuses_what_it_would_silently_change(tmp_path):
    (csv,) = export.export([datasets.generate("U1", 3)], tmp_path / "e", "csv")
    for kwargs, match in [({"dtype": torch.int64}, "floating torch dtype"), ({"dtype": "float32"}, "floating torch dtype"),
                          ({"seed": 1.5}, "seed = 1.5 is not valid"), ({"seed": -1}, "seed = -1 is not valid")]:
        with pytest.raises(SynthError, match=match):
            LocationDataset("U1", **kwargs)
    with pytest.raises(SynthError, match="holds seed 3"):
        LocationDataset(csv, seed=0)
    assert LocationDataset(csv, seed=3).dataset.seed == 3 and LocationDataset(csv).dataset.seed == 3


@pytest.mark.parametrize("argv, match", [
    (["--data", "D", "--seed", "3"], "with --data the folder's files are exported as they are"),
    (["--dataset", "U1", "--out", ""], "argument --out: '' is not a path"),
])
def test_export_flags_that_would_do_nothing_are_refused(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)  # where --out '' used to write
    datasets.save(datasets.generate("U1", 0), tmp_path / "D")
    argv = [str(tmp_path / "D") if x == "D" else x for x in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o")]
    _one_line_error(capsys, ["export", *argv], match)
    assert not (tmp_path / "o").exists() and not (tmp_path / "U1_seed0.csv").exists()


def test_export_has_the_allow_paper_name_its_error_advises(tmp_path, capsys):
    (tmp_path / "r.toml").write_text('[recipe]\nname = "U1"\nn_classes = 5\nsamples_per_class = 20\n')
    _one_line_error(capsys, ["export", "--recipe", str(tmp_path / "r.toml"), "--out", str(tmp_path / "o")],
                    "--allow-paper-name")
    assert synth_main(["export", "--recipe", str(tmp_path / "r.toml"), "--allow-paper-name", "--out",
                       str(tmp_path / "o")]) == 0


def test_pickle_rows_count_that_files_points(tmp_path):
    export.export([datasets.generate("U1", 0)], tmp_path / "t", "torchspatial")
    files = json.loads((tmp_path / "t" / export.MANIFEST).read_text())["files"]
    assert {k.rsplit("_", 2)[1]: v["rows"] for k, v in files.items()} == {"train": 3500, "val": 500, "test": 1000}


def test_a_missing_pyarrow_is_one_line_naming_the_package(tmp_path, capsys, monkeypatch):
    import importlib

    real = importlib.import_module

    def no_arrow(name, *a, **k):
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_arrow)  # export reaches pyarrow only through it
    _one_line_error(capsys, ["export", "--dataset", "U1", "--out", str(tmp_path / "o")], "need the pyarrow package")
    assert not list((tmp_path / "o").glob("*.csv"))


def _blocks(section: str, lang: str) -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    part = text.split(f"## {section}")[1].split("\n## ")[0]
    return re.findall(rf"```{lang}\n(.*?)```", part, re.S)


def _run_bash_lines(block: str, cwd) -> list[str]:
    """Each command line of a doc's bash block, ``python`` being this interpreter; their stdout."""
    out = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for cmd in line.split(" && "):
            args = cmd.split()
            if args[0] == "python":
                args[0] = sys.executable
            elif args[0] == "pip":
                args = [sys.executable, "-m", "pip", *args[1:]]
            r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, (cmd, r.stderr[-2000:])
            out.append(r.stdout)
    return out


def test_the_pytorch_example_of_export_md_runs_as_written_in_a_fresh_folder(tmp_path, monkeypatch):
    """Its snippet read data/ and export/ without saying how to make them; the commands it shows now
    make them, and the snippet runs."""
    (bash,) = _blocks("Into PyTorch", "bash")
    (code,) = _blocks("Into PyTorch", "python")
    _run_bash_lines(bash, tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "export.md", "exec"), namespace)
    assert len(namespace["test"]) == 1000 and namespace["val"].dataset.seed == 0


def test_torchspatials_own_loader_reads_our_export(tmp_path):
    """The path docs/export.md says was run: TorchSpatial 0.0.0.1 from PyPI (pip download, the
    package registry), its load_dataset on our pickles, through docs/examples/torchspatial_load.py."""
    (bash,) = _blocks("Into TorchSpatial", "bash")
    root = Path(__file__).resolve().parents[1]
    bash = bash.replace("docs/examples/", f"{root}/docs/examples/").replace("unzip -q ts/", "unzip -q -o ts/")
    import zipfile

    lines = [x for x in bash.splitlines() if x.strip() and not x.startswith("#")]
    _run_bash_lines(lines[0].split(" && ")[0], tmp_path)  # pip download
    (wheel,) = (tmp_path / "ts").glob("torchspatial-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "ts")  # the doc's unzip, without needing unzip here
    (out,) = _run_bash_lines("\n".join(lines[1:]), tmp_path)[-1:]
    assert "identical to sphere-synth's arrays" in out and "train (3500, 2), test (1000, 2), 50 classes" in out, out
