"""Ranking metrics shared by the Bayes classifier and the trained models: Top-k, MRR, per band.

Ranks are computed from scores (log-densities or logits) as 1 + the number of classes scoring
strictly higher than the true class, so ties never favour the true class by argsort accident.
"""

from __future__ import annotations

import numpy as np

from .sphere import band_edges, band_index


def true_class_ranks(scores, labels) -> np.ndarray:
    """Rank (1 = best) of the true label in each row of ``scores`` (N, C)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    true = np.take_along_axis(scores, labels[:, None], axis=1)
    return 1 + (scores > true).sum(axis=1)


def summarize_ranks(ranks) -> dict:
    """Top-1, Top-3 (percent) and MRR of a rank vector."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return {"top1": float("nan"), "top3": float("nan"), "mrr": float("nan"), "n": 0}
    return {"top1": 100.0 * float(np.mean(r <= 1)), "top3": 100.0 * float(np.mean(r <= 3)),
            "mrr": float(np.mean(1.0 / r)), "n": int(r.size)}


def per_band(ranks, lat, edges) -> list[dict]:
    """Metrics of the samples in each latitude band ``edges[i]..edges[i+1]``."""
    idx = band_index(lat, edges)
    out = []
    for b in range(len(edges) - 1):
        m = summarize_ranks(np.asarray(ranks)[idx == b])
        m.update(lat_lo=float(edges[b]), lat_hi=float(edges[b + 1]))
        out.append(m)
    return out


def default_bands(kind: str = "equal-angle", width_deg: float = 10.0, n_bands: int = 18) -> np.ndarray:
    return band_edges(width_deg=width_deg) if kind == "equal-angle" else band_edges(n_bands, kind=kind)
