"""Racing finalists over training seeds: fewer seeds where more would not change the choice."""

from __future__ import annotations

import math

import numpy as np

from synth.params import INTS, TABLE, checked, instance, integer


RACE_LEVEL = 0.05  # two-sided: a finalist stops when the leader is ahead at the 2.5 % one-sided level


@checked(order=instance(list), runs=TABLE, seeds=INTS, n_val=integer(1))
def race_survivors(order: list, runs: dict, seeds: list, n_val: int):
    """Replay the finalists' race from their runs: ``(survivors, next seed, who trains on it)``,
    the next seed ``None`` when the race is over.

    ``order`` is the finalists' config hashes, best search score first; ``runs`` maps each to
    ``{seed: (validation Top-1, diverged)}``. Rounds go through ``seeds`` in order; a round is
    complete when every survivor has a run on its seed. After each round a finalist stops if it
    diverged (the report never chooses it) or if the leader's mean validation Top-1 over the rounds
    so far is ahead of its own by more than a t-test's margin at RACE_LEVEL, with the seed-to-seed
    variance pooled over the survivors. After one round there is no seed-to-seed variance to pool;
    the binomial sampling error of a validation Top-1 on ``n_val`` points stands in for it (on the
    paper's data it is several times the seed spread: only finalists far behind stop there). The
    leader never stops, so the race always ends with the best finalist on every seed; a finalist
    kept in a tie trains on every seed too. Why race: the finalists are mostly statistically tied,
    but a trial that is far behind (TPE's first random trial can be a finalist in a small grid) is
    then not retrained on every seed for nothing."""
    from scipy.stats import t as student_t

    alive, done = list(order), []
    for seed in seeds:
        todo = [h for h in alive if seed not in runs.get(h, {})]
        if todo:
            return alive, seed, todo
        done.append(seed)
        vals = {h: [runs[h][s][0] for s in done] for h in alive}
        # a diverged run, or a score that is not a number, stops that finalist only (never the others)
        healthy = [h for h in alive if not any(runs[h][s][1] or runs[h][s][0] is None
                                               or not math.isfinite(runs[h][s][0]) for s in done)]
        if not healthy:
            return alive, None, []
        mean = {h: float(np.mean(vals[h])) for h in healthy}
        leader = max(healthy, key=lambda h: (mean[h], -alive.index(h)))
        n = len(done)
        if n == 1:
            p = min(max(mean[leader] / 100.0, 0.0), 1.0)
            spread = 100.0 * math.sqrt(max(p * (1 - p), 1.0 / n_val) / n_val)
            quantile = student_t.ppf(1 - RACE_LEVEL / 2, math.inf)
        else:
            df = len(healthy) * (n - 1)
            spread = math.sqrt(sum(float(np.var(vals[h], ddof=0)) * n for h in healthy) / df)
            quantile = student_t.ppf(1 - RACE_LEVEL / 2, df)
        margin = quantile * spread * math.sqrt(2.0 / n)
        alive = [h for h in alive if h in healthy and mean[leader] - mean[h] <= margin]
    return alive, None, []
