"""Statistics of comparisons: error reduction, the two-level bootstrap over dataset draws and
training seeds, percentile intervals, win / tie / loss verdicts and the trend test of observation 3.

Pure functions of numbers: no store, no tables, no figures (Table 8 and ablation reports share them).
"""

from __future__ import annotations

import numpy as np

from synth.errors import SynthError


def error_reduction(top1_new, top1_best):
    """ER in the paper's sign convention: (E_new − E_best) / E_best × 100, negative = fewer errors.
    Floats or arrays (bootstrap replicates); NaN where E_best is 0."""
    e_new, e_best = 100.0 - np.asarray(top1_new, float), 100.0 - np.asarray(top1_best, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        er = np.where(e_best == 0, np.nan, (e_new - e_best) / np.where(e_best == 0, 1, e_best) * 100.0)
    return float(er) if er.ndim == 0 else er


def two_level_bootstrap(a: dict, b: dict, n: int = 10000, seed: int = 0, inflate: bool = True):
    """Bootstrap replicates (mean_a, mean_b), two arrays of ``n``, of the paired means over the
    (draw, seed) pairs both ``a`` and ``b`` have ({(data seed, training seed): Top-1}).

    Two levels, because draws and training seeds are two sources of noise: each replicate draws
    the dataset draws with replacement, then within each drawn draw its training seeds with
    replacement, and averages seeds within a draw, then draws (each draw weighs the same, as in
    ``Cell.mean``). With one draw this is the ordinary paired bootstrap over seeds.

    ``inflate``: the bootstrap variance of a mean of n values is (n−1)/n of the usual s²/n, which
    matters with the 5 draws of the default (20 % too small, intervals too narrow, ties called
    wins). Each replicate's deviation from the point estimate is scaled by √(n/(n−1)), n = draws
    (seeds when there is one draw), so the replicates' variance is the unbiased one.
    None when there are fewer than two pairs."""
    common = sorted(set(a) & set(b))
    bad = [k for k in common if not (np.isfinite(a[k]) and np.isfinite(b[k]))]
    if bad:  # a NaN would drop its replicates and leave a finite, too narrow interval
        raise SynthError(f"two_level_bootstrap: non-finite Top-1 at (draw, seed) {bad[0]}")
    if len(common) < 2:
        return None
    draws = sorted({k[0] for k in common})
    per = [[k for k in common if k[0] == d] for d in draws]
    width = max(len(p) for p in per)
    A = np.full((len(draws), width), np.nan)
    B = np.full((len(draws), width), np.nan)
    for i, keys in enumerate(per):
        A[i, :len(keys)] = [a[k] for k in keys]
        B[i, :len(keys)] = [b[k] for k in keys]
    n_seeds = np.array([len(p) for p in per])
    rng = np.random.default_rng(seed)
    if len(draws) > 1:
        d_idx = rng.integers(0, len(draws), size=(n, len(draws)))
    else:
        d_idx = np.zeros((n, 1), dtype=int)
    s_idx = np.floor(rng.random((n, d_idx.shape[1], width)) * n_seeds[d_idx][..., None]).astype(int)
    used = np.arange(width)[None, None, :] < n_seeds[d_idx][..., None]  # draw i resamples n_i of its seeds

    def means(M):
        vals = np.where(used, M[d_idx[..., None], s_idx], 0.0)
        reps = (vals.sum(-1) / used.sum(-1)).mean(-1)
        if not inflate:
            return reps
        m = len(draws) if len(draws) > 1 else int(n_seeds[0])
        point = float(np.mean(np.nanmean(M, 1)))  # mean over draws of each draw's mean
        return point + (reps - point) * np.sqrt(m / (m - 1))

    return means(A), means(B)


def spread_if_equal(replicates, point) -> np.ndarray:
    """The spread (largest − smallest) that k quantities would show by noise alone if their true values
    were equal: per bootstrap replicate, the spread of the replicates' deviations from their point
    estimates. ``replicates`` is (k, n), resampled jointly (replicate i of every quantity from the same
    resampled draws, so their correlation is kept); ``point`` the k point estimates. Compare an observed
    spread with this distribution's percentiles: a spread below its 95th is inside the noise."""
    dev = np.asarray(replicates, float) - np.asarray(point, float)[:, None]
    return dev.max(0) - dev.min(0)


def interval(x) -> tuple[float, float]:
    """The 95 % percentile interval of bootstrap replicates (NaN replicates ignored)."""
    return float(np.nanpercentile(x, 2.5)), float(np.nanpercentile(x, 97.5))


def verdict(ci) -> str:
    """win / loss when the 95 % interval of sphereM+ − best baseline excludes 0 (above / below), else tie."""
    if ci is None or not all(np.isfinite(ci)):  # no interval, no verdict (a NaN is not a tie)
        return "—"
    return "win" if ci[0] > 0 else ("loss" if ci[1] < 0 else "tie")


def er_trend(n_mu, er, er_boot):
    """Spearman rho of N_mu with the error reduction (−ER), and its 95 % interval over the bootstrap
    replicates of each dataset's ER (datasets resampled independently: their draws are independent).
    The interval is None when a dataset has no replicates."""
    from scipy.stats import rankdata, spearmanr

    rho = float(spearmanr(n_mu, -np.asarray(er, float)).statistic)
    if any(b is None for b in er_boot):
        return rho, None
    reps = -np.stack(er_boot, 1)  # (replicates, datasets)
    ranks = rankdata(reps, axis=1)
    x = rankdata(n_mu) - (len(n_mu) + 1) / 2
    y = ranks - (len(n_mu) + 1) / 2
    with np.errstate(invalid="ignore"):
        rhos = (y @ x) / np.sqrt((y ** 2).sum(1) * (x ** 2).sum())
    rhos[np.isnan(reps).any(1)] = np.nan
    return rho, interval(rhos)
