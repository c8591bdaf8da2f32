"""The Bayes-optimal classifier of a synthetic dataset: the accuracy ceiling no encoder can beat.

With equal class priors and the true (μ_c, κ_c), the posterior is maximised by
argmax_c log C(κ_c) + κ_c μ_cᵀχ(x) (SPEC.md section 2 for the stable log C).
"""

from __future__ import annotations

import numpy as np

from .datasets import Dataset
from .metrics import default_bands, per_band, summarize_ranks, true_class_ranks
from .errors import SynthError
from .params import LONLAT, NONNEGATIVE, VECTOR, checked, instance, integer, number, one_of, optional
from .sphere import lonlat_to_xyz, validate_lonlat
from .vmf import log_normalizer


@checked(lonlat=LONLAT, centers_lonlat=LONLAT, kappa=NONNEGATIVE)
def log_posterior_scores(lonlat, centers_lonlat, kappa) -> np.ndarray:
    """Unnormalised log-posterior (N, C) = log vMF(x; μ_c, κ_c) under equal priors."""
    lonlat = validate_lonlat(np.asarray(lonlat, dtype=np.float64), wrap_longitude=True, name="lonlat")
    centers = np.asarray(centers_lonlat, dtype=np.float64)
    kappa = np.asarray(kappa, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != 2 or not len(centers):
        raise SynthError(f"centers_lonlat must have shape (C, 2), got {centers.shape}")
    centers = validate_lonlat(centers, wrap_longitude=True, name="centers_lonlat")
    if kappa.shape != (len(centers),) or not np.all(np.isfinite(kappa)) or np.any(kappa <= 0):
        raise SynthError(f"kappa must be {len(centers)} finite values > 0 (one per centre), got shape {kappa.shape}")
    x = lonlat_to_xyz(lonlat)
    mu = lonlat_to_xyz(centers)
    return log_normalizer(kappa)[None, :] + kappa[None, :] * (x @ mu.T)


# Points x classes values scored at once: the scores of every point at once took 11 GB for a recipe of
# 1 000 classes x 1 000 samples; in slices of 2^22 values (32 MB) memory is O(slice).
CHUNK_VALUES = 1 << 22


def _slices(n_points: int, n_classes: int):
    """Slices of points whose score matrix holds about CHUNK_VALUES values (at least one point)."""
    step = max(1, CHUNK_VALUES // max(1, n_classes))
    return (slice(i, i + step) for i in range(0, n_points, step))


@checked(lonlat=LONLAT, centers_lonlat=LONLAT, kappa=NONNEGATIVE, classes=optional(VECTOR))
def posterior(lonlat, centers_lonlat, kappa, classes=None) -> np.ndarray:
    """P(class | x) of the true mixture, (N, C) or (N, len(classes)) for the ``classes`` asked: the
    softmax of ``log_posterior_scores`` (equal priors), computed stably (κ reaches 16 384, so the
    scores span thousands of nats). Full rows sum to one: it is the quantity a classifier
    estimates. Scored a slice of points at a time, so memory beyond the answer is O(slice); ask for
    the classes you need (a map of one class of 1 000 needs 1/1 000 of the full matrix)."""
    lonlat = np.asarray(lonlat, dtype=np.float64)
    n_classes = len(np.asarray(kappa).reshape(-1))
    cols = slice(None) if classes is None else np.asarray(classes, dtype=np.int64).reshape(-1)
    out = np.empty((len(lonlat), n_classes if classes is None else len(cols)))
    for sl in _slices(len(lonlat), n_classes):
        s = log_posterior_scores(lonlat[sl], centers_lonlat, kappa)
        s = np.exp(s - s.max(1, keepdims=True))
        out[sl] = s[:, cols] / s.sum(1, keepdims=True)
    return out


@checked(lonlat=LONLAT, labels=VECTOR, centers_lonlat=LONLAT, kappa=NONNEGATIVE)
def true_ranks(lonlat, labels, centers_lonlat, kappa) -> np.ndarray:
    """The Bayes classifier's rank of each point's true class, a slice of points at a time (exactly
    the ranks of the whole score matrix: each row is ranked on its own)."""
    labels = np.asarray(labels)
    ranks = np.empty(len(labels), dtype=np.int64)
    for sl in _slices(len(labels), len(np.asarray(kappa).reshape(-1))):
        ranks[sl] = true_class_ranks(log_posterior_scores(lonlat[sl], centers_lonlat, kappa), labels[sl])
    return ranks


@checked(ds=instance(Dataset), split=one_of("train", "val", "test", "all"),
         band_kind=one_of("equal-angle", "equal-area"), band_width=number(0, 180, "right"),
         n_bands=integer(1, 10**4), band_lat=optional(VECTOR))
def evaluate(ds: Dataset, split: str = "test", band_kind: str = "equal-angle", band_width: float = 10.0,
             n_bands: int = 18, band_lat=None) -> dict:
    """Top-1, Top-3, MRR of the Bayes classifier on a split, overall and per latitude band; the bands
    bin the split's latitudes, or ``band_lat`` (one per point: e.g. a tilted dataset's before the tilt)."""
    lonlat, labels = ds.split(split)
    ranks = true_ranks(lonlat, labels, ds["centers_lonlat"], ds["kappa"])
    out = summarize_ranks(ranks)
    lat = lonlat[:, 1] if band_lat is None else np.asarray(band_lat, dtype=np.float64)
    if lat.shape != (len(labels),):
        raise SynthError(f"band_lat must hold one latitude per {split} point ({len(labels)}), got shape {lat.shape}")
    out["bands"] = per_band(ranks, lat, default_bands(band_kind, band_width, n_bands))
    return out
