import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from synth import SynthError, datasets
from synth.sphere import band_edges


def test_twenty_paper_datasets_with_the_paper_parameters():
    assert list(datasets.PAPER_DATASETS) == ["U1", "U2", "U3", "U4"] + [f"S{i}.{j}" for i in range(1, 5) for j in range(1, 5)]
    assert datasets.get_recipe("S3.2").n_bands == 25 and datasets.get_recipe("S3.2").kappa_max == 32
    assert datasets.get_recipe("U4").centers == "uniform" and datasets.get_recipe("U4").kappa_max == 128


@pytest.mark.parametrize("name", ["U2", "S2.4"])
def test_sizes_and_split_fractions(name):
    ds = datasets.generate(name, 3)
    n = {s: len(ds.split(s)[1]) for s in datasets.SPLITS}
    assert n == {"train": 3500, "val": 500, "test": 1000}
    for s in datasets.SPLITS:
        counts = np.bincount(ds.split(s)[1], minlength=50)
        assert counts.tolist() == [{"train": 70, "val": 10, "test": 20}[s]] * 50
    assert ds["centers_lonlat"].shape == (50, 2) and ds["kappa"].shape == (50,)
    all_points = np.concatenate([ds.split(s)[0] for s in datasets.SPLITS])
    assert len(np.unique(all_points, axis=0)) == 5000  # the splits are disjoint


@pytest.mark.parametrize("i,n_bands", [(1, 5), (2, 10), (3, 25), (4, 50)])
def test_stratified_centres_fall_in_their_bands(i, n_bands):
    ds = datasets.generate(f"S{i}.2", 0)
    edges = band_edges(n_bands)
    lat = ds["centers_lonlat"][:, 1]
    per = 50 // n_bands
    for b in range(n_bands):
        in_band = lat[b * per:(b + 1) * per]
        assert np.all((in_band >= edges[b]) & (in_band <= edges[b + 1]))
    counts = np.histogram(lat, bins=edges)[0]
    assert counts.tolist() == [per] * n_bands


def test_kappa_readings():
    lit = np.concatenate([datasets.generate(f"U{j}", s)["kappa"] for j in (1, 4) for s in range(3)])
    assert lit.min() >= 1 and lit.max() <= 128**2
    assert datasets.generate("U4", 0)["kappa"].max() > 128  # literal: kappa up to kappa_max^2
    r = datasets.Recipe(name="U4-sqrt", kappa_max=128, kappa_reading="sqrt")
    k = datasets.generate(r, 0)["kappa"]
    assert k.min() >= 1 and k.max() <= 128


def _digest(name, seed):
    ds = datasets.generate(name, seed)
    return hashlib.sha256(b"".join(ds[k].tobytes() for k in datasets.ARRAYS)).hexdigest()


def test_deterministic_across_processes():
    code = "from tests.test_datasets import _digest; print(_digest('S3.4', 7))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == _digest("S3.4", 7)
    assert _digest("S3.4", 7) != _digest("S3.4", 8)


def test_save_load_roundtrip_and_manifest(tmp_path):
    ds = datasets.generate("S1.1", 2)
    path = datasets.save(ds, tmp_path)
    assert path.name == "S1.1_seed2.npz"
    back = datasets.load(path)
    assert all(np.array_equal(back[k], ds[k]) for k in datasets.ARRAYS)
    m = json.loads((tmp_path / "manifest.json").read_text())["datasets"]["S1.1_seed2.npz"]
    assert m["seed"] == 2 and m["recipe"]["n_bands"] == 5 and m["split_sizes"]["val"] == 500
    assert m["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(m["kappa"]) == 50 and m["package_version"]
    datasets.save(ds, tmp_path)
    assert path.read_bytes() == datasets._npz_bytes(ds.arrays)  # same arrays, same bytes


def test_checksum_catches_a_flipped_byte(tmp_path):
    path = datasets.save(datasets.generate("U1", 0), tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(SynthError, match="corrupt"):
        datasets.load(path)
    assert datasets.verify_folder(tmp_path)


def test_mismatched_or_unlisted_files_are_refused(tmp_path):
    datasets.save(datasets.generate("U1", 0), tmp_path)
    (tmp_path / "U1_seed0.npz").rename(tmp_path / "U2_seed0.npz")
    with pytest.raises(SynthError, match="not listed"):
        datasets.load(tmp_path / "U2_seed0.npz")
    (tmp_path / "manifest.json").write_text("{nonsense")
    with pytest.raises(SynthError, match="manifest"):
        datasets.load(tmp_path / "U2_seed0.npz")


def test_user_recipes_and_bad_recipes():
    r = datasets.Recipe(name="tiny", n_classes=4, samples_per_class=10, kappa_max=8, centers="stratified", n_bands=2,
                        split=(0.6, 0.2, 0.2))
    ds = datasets.generate(r, 0)
    assert len(ds.split("train")[1]) == 24 and len(ds.split("test")[1]) == 8
    for bad in [dict(centers="ring"), dict(kappa_min=0), dict(split=(0.5, 0.5, 0.5)),
                dict(centers="stratified", n_bands=3)]:
        with pytest.raises(SynthError):
            datasets.Recipe(name="bad", **bad)
    with pytest.raises(SynthError, match="unknown recipe key"):
        datasets.Recipe.from_dict({"name": "x", "kapa_max": 3})
    with pytest.raises(SynthError, match="unknown dataset"):
        datasets.generate("U9")
    with pytest.raises(SynthError, match="seed"):
        datasets.generate("U1", -1)


def test_two_generators_writing_one_folder_keep_every_manifest_entry(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "synth", "generate", "--dataset", names, "--seed", "0-2",
                               "--out", str(tmp_path)], stderr=subprocess.PIPE, text=True)
             for names in ("U1,U2,U3,U4", "S1.1,S2.1,S3.1,S4.1")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert len(json.loads((tmp_path / "manifest.json").read_text())["datasets"]) == 24
    assert datasets.verify_folder(tmp_path) == []
