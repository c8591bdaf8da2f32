"""Statistical tests of the vMF sampler. Seeds are fixed; p-value thresholds are 1e-3 so a correct
sampler fails a given test with probability about 1/1000, and a wrong one fails with near certainty
at these sample sizes (each wrong variant below was checked to fail)."""

import numpy as np
import pytest
import torch
from scipy import stats

from synth import SynthError, vmf
from synth.sphere import lonlat_to_xyz

KAPPAS = [1e-3, 1.0, 16.0, 128.0**2, 1e5]
MU = np.array([0.6, 0.0, 0.8])  # not (1, 0, 0): tfp's VonMisesFisher is NaN there (tfp#1211)


def _t(x, mu):
    # 1 - mu.x computed without cancellation: |x - mu|^2 / 2
    return 0.5 * ((x - mu) ** 2).sum(-1)


@pytest.mark.parametrize("kappa", KAPPAS + [1e-8, 1e6])
def test_mean_of_w_matches_closed_form(kappa):
    n = 400_000
    w = vmf.sample(MU, kappa, n, seed=1) @ MU
    se = w.std() / np.sqrt(n)
    assert abs(w.mean() - vmf.mean_w(kappa)) < 5 * se + 1e-15


@pytest.mark.parametrize("kappa", KAPPAS)
def test_ks_of_t_against_exact_cdf(kappa):
    t = _t(vmf.sample(MU, kappa, 50_000, seed=2), MU)
    assert stats.kstest(t, lambda s: vmf.t_cdf(s, kappa)).pvalue > 1e-3


def _two_sample(ours, ref, mu):
    # the radial part (1 - mu.x) and one tangent coordinate: a rotation or radius bug shows in one of them
    a = np.cross(mu, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    p1 = stats.ks_2samp(_t(ours, mu), _t(ref, mu)).pvalue
    p2 = stats.ks_2samp(ours @ a, ref @ a).pvalue
    return min(p1, p2)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_agrees_with_scipy(kappa):
    ref = stats.vonmises_fisher(MU, kappa).rvs(20_000, random_state=3)
    assert _two_sample(vmf.sample(MU, kappa, 20_000, seed=3), ref, MU) > 1e-3


@pytest.mark.parametrize("kappa", KAPPAS)
def test_agrees_with_tensorflow_probability(kappa):
    # a hard import: the reference must be there (the 'test' extra installs it), never a silent skip
    import tensorflow_probability.substrates.numpy as tfp

    with np.errstate(all="ignore"):
        ref = np.asarray(tfp.distributions.VonMisesFisher(mean_direction=MU, concentration=kappa).sample(20_000, seed=4))
    assert not np.isnan(ref).any()
    assert _two_sample(vmf.sample(MU, kappa, 20_000, seed=4), ref, MU) > 1e-3


@pytest.mark.parametrize("lonlat", [(0, 90), (0, -90), (-180, 0), (179.999, 0), (-180, 45), (0, 0)])
def test_mean_direction_recovered_at_poles_and_antimeridian(lonlat):
    mu = lonlat_to_xyz(np.array(lonlat, dtype=float))
    mu /= np.linalg.norm(mu)
    x = vmf.sample(mu, 50.0, 100_000, seed=5)
    m = x.mean(0)
    assert np.isfinite(x).all()
    assert np.degrees(np.arccos(np.clip(m @ mu / np.linalg.norm(m), -1, 1))) < 0.1
    assert np.linalg.norm(m) == pytest.approx(vmf.mean_w(50.0), abs=1e-3)


def test_torch_and_numpy_give_the_same_samples():
    mu = lonlat_to_xyz(np.array([[0, 90], [-180, 0], [30, -60], [0, 0]], dtype=float))
    kappa = np.array([1e-6, 3.0, 500.0, 1e5])
    a = vmf.sample(mu, kappa, 1000, seed=11)
    b = vmf.sample(torch.tensor(mu), torch.tensor(kappa), 1000, seed=11)
    assert isinstance(b, torch.Tensor) and b.shape == (4, 1000, 3)
    assert np.abs(a - b.numpy()).max() < 1e-12
    assert not np.array_equal(a, vmf.sample(mu, kappa, 1000, seed=12))


def test_fast_unit_circle_matches_libm_cos_and_sin():
    # The NumPy path's octant-reduced Taylor polynomials replace np.cos/np.sin (see _unit_circle):
    # octant edges (and their neighbours), the ends of (0, 1] and random points.
    edges = np.arange(9) / 8.0
    u = np.concatenate([edges, np.nextafter(edges, 2), np.nextafter(edges, -1), [2.0**-53, 1e-12, 1e-6],
                        np.random.default_rng(0).random(200_000)])
    u = u[(u > 0) & (u <= 1)]
    c, s = vmf._unit_circle(u, np)
    theta = 2 * np.pi * u
    assert np.abs(c - np.cos(theta)).max() < 2e-15 and np.abs(s - np.sin(theta)).max() < 2e-15
    assert np.abs(c * c + s * s - 1).max() < 4e-16 * 8


def test_slicing_and_threads_do_not_change_the_samples(monkeypatch):
    # 3 components x 50_000 samples cross slice boundaries, inside and between components.
    mu = lonlat_to_xyz(np.array([[0, 90], [120, -30], [-60, 10]], dtype=float))
    kappa = np.array([0.5, 20.0, 3e4])
    one = vmf.sample(mu, kappa, 50_000, seed=13, threads=1)
    two = vmf.sample(mu, kappa, 50_000, seed=13, threads=2)
    assert np.array_equal(one, two)
    monkeypatch.setattr(vmf, "_SLICE", 7_777)
    assert np.array_equal(one, vmf.sample(mu, kappa, 50_000, seed=13, threads=3))
    assert np.abs(one - vmf.sample(torch.tensor(mu), torch.tensor(kappa), 50_000, seed=13).numpy()).max() < 1e-12


def test_vectorised_over_many_components_matches_one_at_a_time():
    mu = lonlat_to_xyz(np.array([[10, 20], [100, -40]], dtype=float))
    kappa = np.array([5.0, 50.0])
    both = vmf.sample(mu, kappa, 200, seed=9)
    assert both.shape == (2, 200, 3)
    w = np.einsum("knd,kd->kn", both, mu)
    assert w[0].mean() < w[1].mean()  # each component uses its own kappa


def test_large_kappa_keeps_its_spread_and_small_kappa_is_uniform():
    t = _t(vmf.sample(MU, 1e6, 100_000, seed=6), MU)
    assert np.unique(t).size > 99_000  # no float32-style discretisation
    assert stats.kstest(t * 1e6, "expon").pvalue > 1e-3  # t*kappa ~ Exp(1) as kappa -> inf
    w = vmf.sample(MU, 1e-8, 100_000, seed=7) @ MU
    assert stats.kstest(w, "uniform", args=(-1, 2)).pvalue > 1e-3


@pytest.mark.parametrize("kappa", [1e-8, 1e-3, 1.0, 100.0, 1e4])
def test_log_density_is_normalised_and_matches_scipy(kappa):
    # Gauss-Legendre in z = mu.x (the density depends only on it) times 2*pi
    z, wts = np.polynomial.legendre.leggauss(400)
    mu = np.array([0.0, 0.0, 1.0])
    x = np.stack([np.sqrt(1 - z**2), np.zeros_like(z), z], -1)
    if kappa > 100:  # concentrate the nodes where the mass is
        z = 1 - (1 - z) / 2 * 50 / kappa
        wts = wts / 2 * 50 / kappa
        x = np.stack([np.sqrt(1 - z**2), np.zeros_like(z), z], -1)
    total = 2 * np.pi * np.sum(wts * np.exp(vmf.log_density(x, mu, kappa)))
    assert total == pytest.approx(1.0, rel=1e-6)
    ref = stats.vonmises_fisher(mu, kappa).logpdf(x[:5])
    assert np.allclose(vmf.log_density(x[:5], mu, kappa), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kappa,mu,word", [(0.0, MU, "kappa"), (-1.0, MU, "kappa"), (np.nan, MU, "kappa"),
                                           (1.0, np.array([1.0, 1.0, 0.0]), "unit"), (1.0, np.array([1.0, 0.0]), "shape")])
def test_bad_parameters_raise_one_line_errors(kappa, mu, word):
    with pytest.raises(SynthError, match=word) as e:
        vmf.sample(mu, kappa, 10)
    assert "\n" not in str(e.value)
