import numpy as np
import pytest

from synth import bayes, datasets, vmf
from synth.metrics import summarize_ranks, true_class_ranks
from synth.sphere import xyz_to_lonlat

# SPEC.md section 3: mean Bayes Top-1 over 5 draws is about 71 / 87 / 95 / 98.5 %.
EXPECTED = {"U1": 71.0, "U2": 87.0, "U3": 95.0, "U4": 98.5}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bayes_ceiling_of_uniform_datasets(name):
    # All 5000 points of each of seeds 0-4. Between-seed spread dominates (each seed draws new
    # centres and kappas), so the tolerance is 3 standard errors of the 5-seed mean, with a
    # 1-point floor for the rounding of the SPEC's own numbers (themselves a 5-draw mean).
    top1 = np.array([bayes.evaluate(datasets.generate(name, s), "all")["top1"] for s in range(5)])
    tol = max(1.0, 3 * top1.std(ddof=1) / np.sqrt(5))
    assert abs(top1.mean() - EXPECTED[name]) < tol, (top1, tol)


def test_bayes_matches_closed_form_for_two_antipodal_classes():
    # Classes at the two poles with equal kappa: the Bayes rule is the sign of z and its accuracy
    # is P(z > 0) = 1 / (1 + e^{-kappa}).
    kappa = 1.5
    mu = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    x = vmf.sample(mu, kappa, 100_000, seed=1)
    labels = np.repeat([0, 1], 100_000)
    ll = xyz_to_lonlat(x.reshape(-1, 3))
    ranks = true_class_ranks(bayes.log_posterior_scores(ll, xyz_to_lonlat(mu), [kappa, kappa]), labels)
    acc = summarize_ranks(ranks)["top1"] / 100
    assert acc == pytest.approx(1 / (1 + np.exp(-kappa)), abs=3 * np.sqrt(0.25 / 200_000))


def test_bayes_beats_the_nearest_centre_rule_when_kappas_differ():
    # A broad class (kappa 1) and a tight one (kappa 50) 60 degrees apart: nearest-centre splits
    # the sphere at 30 degrees and misclassifies most of the broad class's mass near the tight one;
    # the Bayes rule accounts for kappa and is strictly better, by the closed-form integral below.
    mu_ll = np.array([[0.0, 0.0], [60.0, 0.0]])
    kappa = np.array([1.0, 50.0])
    from synth.sphere import lonlat_to_xyz
    mu = lonlat_to_xyz(mu_ll)
    x = vmf.sample(mu, kappa, 200_000, seed=2).reshape(-1, 3)
    labels = np.repeat([0, 1], 200_000)
    ll = xyz_to_lonlat(x)
    bayes_acc = np.mean(bayes.log_posterior_scores(ll, mu_ll, kappa).argmax(1) == labels)
    nearest_acc = np.mean((x @ mu.T).argmax(1) == labels)
    other_acc = np.mean(bayes.log_posterior_scores(ll, mu_ll, kappa[::-1]).argmax(1) == labels)
    assert bayes_acc > nearest_acc + 0.01
    assert bayes_acc > other_acc + 0.01


def test_bands_and_metrics_are_consistent():
    m = bayes.evaluate(datasets.generate("S4.4", 0), "test")
    assert sum(b["n"] for b in m["bands"]) == m["n"] == 1000
    assert 0 < m["mrr"] <= 1 and m["top1"] <= m["top3"]
    weighted = sum(b["top1"] * b["n"] for b in m["bands"] if b["n"]) / m["n"]
    assert weighted == pytest.approx(m["top1"])


def test_bands_by_other_latitudes():
    """``band_lat`` bins the same ranks by other latitudes (a tilted dataset's frame before the tilt):
    the split's own latitudes give the default bands, a wrong length is one line."""
    import pytest
    from synth import bayes, datasets
    from synth.errors import SynthError
    ds = datasets.generate("S2.3", 0)
    lat = ds.split("test")[0][:, 1]
    assert bayes.evaluate(ds, band_lat=lat) == bayes.evaluate(ds)
    flipped = bayes.evaluate(ds, band_lat=-lat)
    assert [b["top1"] for b in flipped["bands"]] == [b["top1"] for b in bayes.evaluate(ds)["bands"]][::-1]
    with pytest.raises(SynthError, match="one latitude per test point") as e:
        bayes.evaluate(ds, band_lat=lat[:-1])
    assert "\n" not in str(e.value)


def test_the_bayes_ceiling_is_scored_in_slices_with_the_same_ranks_and_bounded_memory(monkeypatch):
    """The posterior of every point at once took 11 GB on 1 000 classes x 1 000 samples.
    Ranks are per row, so slices give exactly the whole matrix's ranks; memory is O(slice x classes)."""
    import tracemalloc

    ds = datasets.generate(datasets.Recipe(name="many", n_classes=1000, samples_per_class=20, kappa_max=64), 0)
    lonlat, labels = ds.split("test")
    whole = true_class_ranks(bayes.log_posterior_scores(lonlat, ds["centers_lonlat"], ds["kappa"]), labels)
    full_bytes = len(labels) * 1000 * 8
    monkeypatch.setattr(bayes, "CHUNK_VALUES", 1 << 16)
    tracemalloc.start()
    got = bayes.evaluate(ds, "test")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(bayes.true_ranks(lonlat, labels, ds["centers_lonlat"], ds["kappa"]), whole)
    assert got["top1"] == summarize_ranks(whole)["top1"]
    assert full_bytes > 30e6 and peak < full_bytes / 4, (peak, full_bytes)  # one score matrix would not fit


def test_the_posterior_is_computed_in_slices_and_for_the_classes_asked(monkeypatch):
    """P(class | x) sliced equals the whole matrix's softmax (to rounding), each full row
    sums to one, and asking for some classes returns exactly those columns with memory O(slice), so a
    map of one class of 1 000 never holds the points x classes matrix."""
    import tracemalloc

    ds = datasets.generate(datasets.Recipe(name="many", n_classes=1000, samples_per_class=20, kappa_max=64), 0)
    lonlat, _ = ds.split("test")
    s = bayes.log_posterior_scores(lonlat, ds["centers_lonlat"], ds["kappa"])
    whole = np.exp(s - s.max(1, keepdims=True))
    whole /= whole.sum(1, keepdims=True)
    monkeypatch.setattr(bayes, "CHUNK_VALUES", 1 << 16)
    sliced = bayes.posterior(lonlat, ds["centers_lonlat"], ds["kappa"])
    np.testing.assert_allclose(sliced, whole, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sliced.sum(1), 1.0, rtol=0, atol=1e-12)
    tracemalloc.start()
    two = bayes.posterior(lonlat, ds["centers_lonlat"], ds["kappa"], classes=[7, 3])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(two, sliced[:, [7, 3]])
    assert peak < whole.nbytes / 4, (peak, whole.nbytes)
