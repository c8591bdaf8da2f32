import numpy as np
import pytest
from scipy import stats

from synth import SynthError
from synth.sphere import (band_areas, band_edges, band_index, great_circle, lonlat_to_xyz, uniform_lonlat,
                          validate_lonlat, wrap_lon, xyz_to_lonlat)


def test_roundtrip_and_known_values(rng):
    ll = np.stack([rng.uniform(-180, 180, 1000), rng.uniform(-90, 90, 1000)], -1)
    back = xyz_to_lonlat(lonlat_to_xyz(ll))
    assert np.allclose(back, ll, atol=1e-9)
    assert np.allclose(lonlat_to_xyz([0.0, 0.0]), [1, 0, 0])
    assert np.allclose(lonlat_to_xyz([90.0, 0.0]), [0, 1, 0], atol=1e-15)
    assert np.allclose(lonlat_to_xyz([12.0, 90.0]), [0, 0, 1], atol=1e-15)
    assert xyz_to_lonlat([-1.0, -1e-300, 0.0])[0] == -180.0  # the antimeridian maps into [-180, 180)


def test_great_circle_is_accurate_at_tiny_and_antipodal_separations():
    assert great_circle([0, 0], [0, 90], degrees=True) == pytest.approx(90)
    tiny = 1e-9
    assert great_circle([10, 20], [10, 20 + tiny], degrees=True) == pytest.approx(tiny, rel=1e-6)
    assert great_circle([0, 0], [180 - 1e-7, 0], degrees=True) == pytest.approx(180 - 1e-7, abs=1e-9)
    assert great_circle([-179.9999, 5], [179.9999, 5], degrees=True) == pytest.approx(0.0002 * np.cos(np.deg2rad(5)), rel=1e-4)


def test_validation_messages_are_one_line():
    for bad, word in [([np.nan, 0], "non-finite"), ([0, 91], "latitude"), ([180, 0], "longitude"),
                      ([[1, 2, 3]], "shape")]:
        with pytest.raises(SynthError, match=word) as e:
            validate_lonlat(bad)
        assert "\n" not in str(e.value)
    assert validate_lonlat([190.0, 0.0], wrap_longitude=True)[0] == pytest.approx(-170.0)
    assert wrap_lon(180.0) == -180.0


def test_uniform_points_are_area_uniform(rng):
    ll = uniform_lonlat(20000, rng)
    assert stats.kstest(np.sin(np.deg2rad(ll[:, 1])), "uniform", args=(-1, 2)).pvalue > 1e-3
    assert stats.kstest(ll[:, 0], "uniform", args=(-180, 360)).pvalue > 1e-3
    band = uniform_lonlat(5000, rng, (60, 90))
    assert band[:, 1].min() >= 60 and band[:, 1].max() <= 90


def test_bands():
    e = band_edges(18)
    assert np.allclose(np.diff(e), 10)
    assert np.isclose(band_areas(e).sum(), 1)
    ea = band_edges(6, kind="equal-area")
    assert np.allclose(band_areas(ea), 1 / 6)
    assert band_index([90.0, -90.0, 0.0], e).tolist() == [17, 0, 9]
    with pytest.raises(SynthError):
        band_edges(width_deg=7)
