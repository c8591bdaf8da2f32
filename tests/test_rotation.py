"""Rotating a dataset's frame (recipe ``tilt``) and the encoders' geometry under rotation.

The data side: a tilted recipe is the same draw rigidly rotated — the vMF law holds in the tilted
frame, the Bayes ceiling is unchanged, old recipes keep their dict and bytes. The encoder side is
tested directly, not through training: xyz keeps inner products under any common rotation, the
spherical-harmonics code keeps each degree's block inner product (the addition theorem), the
(lon, lat) encoders measurably do not."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from experiments.models import encoders
from synth import bayes
from synth import datasets as D
from synth.errors import SynthError
from synth.sphere import lonlat_to_xyz, xyz_to_lonlat


def tilted(name, tilt, **kw):
    r = D.get_recipe(name)
    return dataclasses.replace(r, name=f"{name}+tilt_{tilt:g}", tilt=tilt, stream=name, **kw)


def test_old_recipes_keep_their_dict_and_data():
    r = D.get_recipe("S2.3")
    assert set(r.to_dict()) == {"name", "centers", "n_bands", "n_classes", "samples_per_class", "kappa_min",
                                "kappa_max", "kappa_reading", "split", "version", "description"}
    a, b = D.generate(r, 1), D.generate(tilted("S2.3", 0.0), 1)
    for k in D.ARRAYS:
        assert np.array_equal(a[k], b[k]), k  # tilt 0 with the base's stream is the base draw itself


@pytest.mark.parametrize("tilt", [30.0, 90.0, -60.0])
def test_tilt_is_a_rigid_rotation_of_the_same_draw(tilt):
    base, rot = D.generate("S2.3", 0), D.generate(tilted("S2.3", tilt), 0)
    R = D.tilt_matrix(tilt)
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-15)
    for k in ("centers_lonlat", "train_lonlat", "test_lonlat"):
        assert np.allclose(lonlat_to_xyz(rot[k]), lonlat_to_xyz(base[k]) @ R.T, atol=1e-9)
    assert np.array_equal(rot["kappa"], base["kappa"])
    # (0°, 0°) goes to latitude +tilt; original_frame undoes the tilt
    assert np.allclose(xyz_to_lonlat(R @ np.array([1.0, 0.0, 0.0])), [0.0, tilt] if abs(tilt) <= 90 else [180, 180 - tilt])
    assert np.allclose(lonlat_to_xyz(D.original_frame(rot.recipe, rot["test_lonlat"])),
                       lonlat_to_xyz(base["test_lonlat"]), atol=1e-9)


def test_vmf_law_in_the_tilted_frame():
    """w = μ'·x' of every sample, through the vMF CDF of its class's κ, is uniform (KS, fixed seed, 1 %)."""
    ds = D.generate(tilted("S4.4", 45.0), 3)
    mu = lonlat_to_xyz(ds["centers_lonlat"])
    x, y = ds.split("all")
    k = ds["kappa"][y]
    w = np.einsum("ij,ij->i", lonlat_to_xyz(x), mu[y])
    # F(w) = (e^{κ(w+1)} − 1)/(e^{2κ} − 1) = e^{−κt}(1 − e^{−κ(2−t)})/(1 − e^{−2κ}), t = 1 − w (stable)
    t = 1 - w
    u = np.exp(-k * t) * np.expm1(-k * (2 - t)) / np.expm1(-2 * k)
    assert stats.kstest(u, "uniform").pvalue > 0.01
    # and the class centres really moved: S4.4's polar centres are no longer at the poles
    assert np.abs(D.generate("S4.4", 3)["centers_lonlat"][:, 1]).max() > 85
    assert np.abs(ds["centers_lonlat"][:, 1]).max() < np.abs(D.generate("S4.4", 3)["centers_lonlat"][:, 1]).max()


@pytest.mark.parametrize("name", ["U2", "S2.3", "S4.4"])
def test_tilt_keeps_the_bayes_ceiling(name):
    base = bayes.evaluate(D.generate(name, 0))["top1"]
    for tilt in (30.0, 60.0, 90.0):
        # the same samples rotated: only a 1e-9° rounding could flip a near-tie (at most one test point)
        assert abs(bayes.evaluate(D.generate(tilted(name, tilt), 0))["top1"] - base) <= 100 / 2000


def test_n_train_is_a_nested_subsample():
    r = D.get_recipe("U1")
    full = D.generate(r, 2)
    small = D.generate(dataclasses.replace(r, name="U1+n_train_10", n_train=10, stream="U1"), 2)
    mid = D.generate(dataclasses.replace(r, name="U1+n_train_30", n_train=30, stream="U1"), 2)
    assert small["train_lonlat"].shape == (500, 2) and np.bincount(small["train_label"]).tolist() == [10] * 50
    for split in ("val", "test"):
        assert np.array_equal(small[f"{split}_lonlat"], full[f"{split}_lonlat"])
    as_set = lambda a: {tuple(p) for p in a}
    assert as_set(small["train_lonlat"]) <= as_set(mid["train_lonlat"]) <= as_set(full["train_lonlat"])


@pytest.mark.parametrize("bad, word", [
    ({"tilt": float("nan")}, "tilt"), ({"tilt": float("inf")}, "tilt"), ({"tilt": 200.0}, "tilt"),
    ({"tilt": "30"}, "tilt"), ({"n_train": 71}, "n_train"), ({"n_train": 0}, "n_train")])
def test_bad_recipe_values_are_one_line(bad, word):
    with pytest.raises(SynthError, match=word) as e:
        dataclasses.replace(D.get_recipe("U1"), name="x", **bad)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- encoder geometry
def random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def pairs(seed, n=200):
    rng = np.random.default_rng(seed)
    a = xyz_to_lonlat(rng.normal(size=(n, 3)))
    b = xyz_to_lonlat(rng.normal(size=(n, 3)))
    return a, b


def rotate(lonlat, R):
    return xyz_to_lonlat(lonlat_to_xyz(lonlat) @ R.T)


def codes(name, lonlat, **hp):
    G = encoders.position_encoder(name, **hp)
    return G(torch.as_tensor(lonlat, dtype=torch.float64)).double().numpy()


def block_products(f, g, L):
    return np.stack([np.einsum("ij,ij->i", f[:, l * l:(l + 1) ** 2], g[:, l * l:(l + 1) ** 2]) for l in range(L)], 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xyz_keeps_inner_products_under_rotation(seed):
    a, b = pairs(seed)
    R = random_rotation(seed + 10)
    before = np.einsum("ij,ij->i", codes("xyz", a), codes("xyz", b))
    after = np.einsum("ij,ij->i", codes("xyz", rotate(a, R)), codes("xyz", rotate(b, R)))
    assert np.abs(after - before).max() < 1e-6  # float32 codes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spherical_harmonics_keep_each_degree_under_rotation(seed):
    """Addition theorem: Σ_m Y_lm(x) Y_lm(y) = (2l+1)/4π P_l(x·y), a function of the angle alone."""
    L = 12
    a, b = pairs(seed)
    R = random_rotation(seed + 10)
    before = block_products(codes("spherical_harmonics", a, legendre_polys=L),
                            codes("spherical_harmonics", b, legendre_polys=L), L)
    after = block_products(codes("spherical_harmonics", rotate(a, R), legendre_polys=L),
                           codes("spherical_harmonics", rotate(b, R), legendre_polys=L), L)
    assert np.abs(after - before).max() < 1e-6  # float32 codes
    # and it is the Legendre polynomial of the angle (the theorem itself, not just invariance)
    cos = np.einsum("ij,ij->i", lonlat_to_xyz(a), lonlat_to_xyz(b))
    for l in range(L):
        assert np.allclose(before[:, l], (2 * l + 1) / (4 * np.pi) * np.polynomial.legendre.Legendre.basis(l)(cos),
                           atol=1e-6)


@pytest.mark.parametrize("name, hp", [("grid", {"frequency_num": 4, "min_radius": 1.0}),
                                      ("theory", {"frequency_num": 4, "min_radius": 1.0}),
                                      ("sphereM+", {"frequency_num": 4, "min_radius": 0.05}),
                                      ("sphereC", {"frequency_num": 4, "min_radius": 0.05}),
                                      ("wrap", {}), ("rbf", {"num_anchors": 50, "kernel_size": 30.0})])
def test_lonlat_encoders_are_not_rotation_invariant(name, hp):
    """Their inner products change under a rotation by far more than float error (median relative change > 1 %)."""
    a, b = pairs(0)
    R = random_rotation(10)
    before = np.einsum("ij,ij->i", codes(name, a, **hp), codes(name, b, **hp))
    after = np.einsum("ij,ij->i", codes(name, rotate(a, R), **hp), codes(name, rotate(b, R), **hp))
    scale = np.abs(before).mean()
    assert np.median(np.abs(after - before)) / scale > 0.01
