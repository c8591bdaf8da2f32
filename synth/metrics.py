"""Ranking metrics shared by the Bayes classifier and the trained models: Top-k, MRR, per band.

One rank formula for NumPy and torch: the rank of the true class y is
1 + #{c != y : s_c >= s_y}. Ties count *against* the true class, so a collapsed model whose
scores are all equal ranks every point last rather than first; a row with any non-finite score
(NaN, inf) gets the worst rank, C, since its order means nothing.
"""

from __future__ import annotations

import numpy as np

from .sphere import band_edges, band_index
from .xp import is_torch, namespace


def true_class_ranks(scores, labels):
    """Rank (1 = best) of the true label in each row of ``scores`` (..., N, C); ``labels`` (N,).

    NumPy in, NumPy out; torch in, torch out (on the scores' device)."""
    xp = namespace(scores, labels)
    if not is_torch(xp):
        scores, labels = np.asarray(scores), np.asarray(labels)
    idx = labels[..., None]
    if is_torch(xp):
        idx = idx.expand(*scores.shape[:-1], 1)
    else:
        idx = np.broadcast_to(idx, scores.shape[:-1] + (1,))
    true = xp.take_along_axis(scores, idx, axis=-1)
    at_least = (scores >= true).sum(-1)  # counts y itself once when s_y is finite
    finite = xp.isfinite(scores).all(-1)
    return xp.where(finite, at_least, scores.shape[-1])


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
