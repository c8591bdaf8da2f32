"""Statistics of comparisons: paired differences over dataset draws with t intervals, the one
verdict rule (win / tie / loss) of every table, the detectable difference and the draws a
difference needs, the pooled answer over datasets, error reduction and the trend test of
observation 3. docs/statistics.md says why each is what it is and how its error rate was checked.

Pure functions of numbers: no store, no tables, no figures. Every verdict the toolkit prints —
Table 8, ``report --reference``, ablation levels, the handicap tables, ``compare`` — comes from
``judge`` (through ``verdict``).

The unit of replication is the dataset draw: two encoders see the same draw, so their Top-1 on it
pair, and draws are independent. Within a draw, an encoder's training seeds are averaged first
(each draw weighs the same, as in ``selection.Cell.mean``), so the seeds of the two need not match
(another machine, another training seed) and a draw with more seeds simply has a less noisy mean.
The interval is Student's t on the per-draw differences with draws − 1 degrees of freedom: with
5 draws its 97.5 % quantile is 2.78, not the 1.96 a bootstrap's percentiles behave like. With one
draw, its training seeds are the units, and the interval speaks for that draw only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize, stats as sps

from synth.errors import SynthError
from synth.params import SERIES, VECTOR, Kind, checked, instance, integer, number

from ..search.selection import draw_means  # noqa: F401 (public here too: the unit of every interval)

LEVEL = 0.95  # two-sided confidence of every interval; a verdict is wrong at most 1 − LEVEL of the time
POWER = 0.80  # the power at which a detectable difference is stated


@lru_cache(maxsize=4096)
def _t(q: float, df: float) -> float:
    """Student's t quantile (cached: the same few degrees of freedom recur in every table)."""
    return float(sps.t.ppf(q, df))


@dataclass(frozen=True)
class Estimate:
    """A difference (or a mean) over independent units: its value, standard error and degrees of freedom."""

    value: float
    se: float
    df: float
    n: int  # units: draws; the seeds of one draw; datasets x draws when pooled
    unit: str

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        h = _t(0.5 + level / 2, self.df) * self.se
        return self.value - h, self.value + h

    def replicates(self, n: int, rng) -> np.ndarray:
        """``n`` values from the estimate's t distribution (value + se · t_df): its uncertainty as samples,
        for statistics of several estimates (the trend test) whose intervals have no closed form."""
        return self.value + self.se * rng.standard_t(self.df, size=n)


def _top1(value):
    """{(draw, seed): Top-1}: finite values are checked where they are used (a NaN names its run)."""
    import numbers

    if not isinstance(value, dict) or not all(
            isinstance(k, tuple) and len(k) == 2 and isinstance(v, numbers.Real) and not isinstance(v, bool)
            for k, v in value.items()):
        raise TypeError
    return value


def _estimates(value):
    if not isinstance(value, (list, tuple)) or not all(e is None or isinstance(e, Estimate) for e in value):
        raise TypeError
    return value


def _by_baseline(value):
    if not isinstance(value, dict) or not all(e is None or isinstance(e, Estimate) for e in value.values()):
        raise TypeError
    return value


def _ci(value):
    import numbers

    if value is not None and not (isinstance(value, (tuple, list, np.ndarray)) and len(value) == 2
                                  and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in value)):
        raise TypeError
    return value


def _percent(value):
    """Numbers, not a range: the replicates of a mean (summary's ER intervals) may fall outside
    [0, 100] by their noise, and the function is defined for them."""
    if isinstance(value, (str, bytes, dict, bool, type(None))):
        raise TypeError
    np.asarray(value, dtype=float)  # a ValueError/TypeError for anything that is not numbers
    return value


TOP1 = Kind("a dict {(draw, seed): Top-1}", _top1)
ESTIMATES = Kind("a list of Estimates (or None)", _estimates)
BY_BASELINE = Kind("a dict {baseline name: Estimate (or None)}", _by_baseline)
CI = Kind("an interval (low, high), or None", _ci)
PERCENT = Kind("a Top-1 in percent (a number or an array of numbers)", _percent)
LEVEL_ARG = number(0, 1, closed="neither")


def _finite(values: dict, what: str) -> None:
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:  # a NaN would drop out of a mean and leave a finite, too narrow interval
        raise SynthError(f"{what}: non-finite Top-1 at (draw, seed) {bad[0]}")


def _sample(x, unit: str) -> Estimate | None:
    x = np.asarray(x, float)
    if len(x) < 2:
        return None
    return Estimate(float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))), len(x) - 1.0, len(x), unit)


def _welch(x, y, unit: str) -> Estimate | None:
    """Two independent samples (the seeds of one draw, when the two encoders' seeds differ)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or len(y) < 2:
        return None
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    v = vx + vy
    df = v ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1)) if v > 0 else len(x) + len(y) - 2.0
    return Estimate(float(x.mean() - y.mean()), float(np.sqrt(v)), float(df), len(x) + len(y), unit)


@checked(a=TOP1, b=TOP1)
def difference(a: dict, b: dict) -> Estimate | None:
    """a − b, each {(draw, seed): Top-1}: the mean over their common draws of the per-draw difference of
    seed means, with a t interval over draws (draws − 1 degrees of freedom). With one common draw the
    seeds are the units: paired by seed where both have the same seeds, else Welch's two samples.
    None when there is nothing to estimate a variance from (one draw and one seed)."""
    _finite(a, "difference")
    _finite(b, "difference")
    ma, mb = draw_means(a), draw_means(b)
    common = [d for d in ma if d in mb]
    if len(common) >= 2:
        return _sample([ma[d] - mb[d] for d in common], "draws")
    if not common:
        return None
    d = common[0]
    sa = {s: v for (dd, s), v in a.items() if dd == d}
    sb = {s: v for (dd, s), v in b.items() if dd == d}
    if set(sa) == set(sb):
        return _sample([sa[s] - sb[s] for s in sorted(sa)], "seeds of one draw")
    return _welch(list(sa.values()), list(sb.values()), "seeds of one draw")


@checked(a=TOP1)
def mean(a: dict) -> Estimate | None:
    """The mean Top-1 of {(draw, seed): Top-1} over draws (seeds when there is one draw), with its t interval."""
    _finite(a, "mean")
    m = draw_means(a)
    if len(m) >= 2:
        return _sample(list(m.values()), "draws")
    return _sample(list(a.values()), "seeds of one draw")


@checked(estimates=ESTIMATES)
def pool(estimates: list) -> Estimate | None:
    """The mean of several independent estimates, each weighing the same (the datasets of a table: the
    paper's fixed set, so the average over *these* datasets, with the draws as the noise). Its degrees
    of freedom are Welch–Satterthwaite's: each estimate's variance is itself estimated from few draws."""
    est = [e for e in estimates if e is not None]
    if not est:
        return None
    k = len(est)
    v = np.array([e.se ** 2 for e in est]) / k ** 2
    dfs = np.array([e.df for e in est])
    df = float(v.sum() ** 2 / np.sum(v ** 2 / dfs)) if v.sum() > 0 else float(dfs.sum())
    return Estimate(float(np.mean([e.value for e in est])), float(np.sqrt(v.sum())), df,
                    int(sum(e.n for e in est)), f"{k} datasets x draws")


@checked(ci=CI)
def verdict(ci) -> str:
    """win / loss when the interval lies above / below 0, else tie; "—" without an interval."""
    if ci is None or not all(np.isfinite(ci)):  # no interval, no verdict (a NaN is not a tie)
        return "—"
    return "win" if ci[0] > 0 else ("loss" if ci[1] < 0 else "tie")


def _detectable(se: float, df: float, crit: float, power: float) -> float:
    """The true difference whose t statistic exceeds ``crit`` with probability ``power`` (noncentral t)."""
    if se == 0:
        return 0.0
    nc = optimize.brentq(lambda nc: sps.nct.sf(crit, df, nc) - power, 0.0, crit + 50.0)
    return float(nc * se)


@checked(se=number(0), df=number(0, closed="neither"), k=integer(1, 10**4), level=LEVEL_ARG, power=LEVEL_ARG)
def detectable(se: float, df: float, k: int = 1, level: float = LEVEL, power: float = POWER) -> tuple[float, float]:
    """(win, loss): the smallest true advantage of the target that ``judge`` calls a win with probability
    ``power``, and the smallest true deficit it calls a loss, at this standard error and degrees of freedom
    against ``k`` baselines (a loss must beat the k-fold multiplicity; a win need not)."""
    a = 1 - level
    return (_detectable(se, df, _t(1 - a / 2, df), power), _detectable(se, df, _t(1 - a / (2 * k), df), power))


@checked(sd=number(0), diff=number(0, closed="neither"), k=integer(1, 10**4), level=LEVEL_ARG, power=LEVEL_ARG,
         at_most=integer(2, 10**9))
def draws_needed(sd: float, diff: float, k: int = 1, level: float = LEVEL, power: float = POWER,
                 at_most: int = 10000) -> int | None:
    """The fewest draws with which a true difference ``diff`` is called (a win, or with k = 1 a loss) with
    probability ``power``, when one draw's difference has standard deviation ``sd``. None beyond ``at_most``."""
    if not (np.isfinite(sd) and np.isfinite(diff)) or sd < 0 or diff <= 0:
        raise SynthError(f"draws_needed: sd must be finite and >= 0 and diff > 0 (got sd={sd}, diff={diff})")
    if sd == 0:
        return 2
    crit = lambda n: _t(1 - (1 - level) / (2 * k), n - 1)  # noqa: E731
    ok = lambda n: sps.nct.sf(crit(n), n - 1, diff * np.sqrt(n) / sd) >= power  # noqa: E731
    if not ok(at_most):
        return None
    lo, hi = 2, at_most  # power grows with n: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return lo


@dataclass(frozen=True)
class Judgement:
    """A target against one or several baselines. ``delta``: target − the baseline with the best mean
    (``against``); ``low``/``high``: the interval of target − the truly best baseline; ``verdict``."""

    delta: float
    low: float
    high: float
    verdict: str
    against: str | None
    estimate: Estimate | None  # of target − ``against``
    k: int  # baselines judged against
    each: dict = field(default_factory=dict)  # {baseline: Estimate}
    level: float = LEVEL

    @property
    def ci(self):
        return None if self.estimate is None else (self.low, self.high)

    @property
    def detectable(self) -> tuple[float, float]:
        """(win, loss) detectable differences of this layout (``detectable``); NaN without an estimate."""
        if self.estimate is None:
            return float("nan"), float("nan")
        return detectable(self.estimate.se, self.estimate.df, self.k, self.level)


NO_JUDGEMENT = Judgement(float("nan"), float("nan"), float("nan"), "—", None, None, 0)


@checked(estimates=BY_BASELINE, level=LEVEL_ARG)
def judge(estimates: dict, level: float = LEVEL) -> Judgement:
    """The verdict of a target against every baseline at once, {baseline: Estimate of target − baseline}.

    win:  the target is better than *each* baseline (every one-sided lower bound at (1 − level)/2 is
          above 0; an intersection of tests needs no correction for their number);
    loss: *some* baseline is better than the target (an upper bound below 0, Bonferroni over the k
          baselines, since any of them could be the one);
    tie:  neither. The interval [min of the lower bounds, min of the upper bounds] covers target − the
    truly best baseline with probability >= level, and the verdict is that interval against 0: the
    best baseline is never picked on the numbers it is then tested on. With one baseline it is the plain
    t interval."""
    est = {name: e for name, e in estimates.items() if e is not None}
    if not est:
        return NO_JUDGEMENT
    k, a = len(est), 1 - level
    low = min(e.value - _t(1 - a / 2, e.df) * e.se for e in est.values())
    high = min(e.value + _t(1 - a / (2 * k), e.df) * e.se for e in est.values())
    against = min(est, key=lambda name: est[name].value)
    e = est[against]
    return Judgement(e.value, float(low), float(high), verdict((low, high)), against, e, k, est, level)


@checked(top1_new=PERCENT, top1_best=PERCENT)
def error_reduction(top1_new, top1_best):
    """ER in the paper's sign convention: (E_new − E_best) / E_best × 100, negative = fewer errors.
    Floats or arrays; NaN where E_best is 0."""
    e_new, e_best = 100.0 - np.asarray(top1_new, float), 100.0 - np.asarray(top1_best, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        er = np.where(e_best == 0, np.nan, (e_new - e_best) / np.where(e_best == 0, 1, e_best) * 100.0)
    return float(er) if er.ndim == 0 else er


def joint_deviations(rows, n: int = 10000, seed: int = 0) -> np.ndarray:
    """(k, n) samples of the deviation of k column means from their true values, from a (draws, k) array
    of per-draw values: multivariate t with draws − 1 degrees of freedom and the columns' sample
    covariance / draws (a Gaussian multiplier on the centred rows, then a χ² scale), the joint analogue
    of the t interval. None with fewer than 2 draws."""
    X = np.asarray(rows, float)
    D = X.shape[0]
    if D < 2:
        return None
    rng = np.random.default_rng(seed)
    R = X - X.mean(0)
    z = (R.T @ rng.normal(size=(D, n))) / np.sqrt(D * (D - 1))  # covariance: sample covariance / D
    return z * np.sqrt((D - 1) / rng.chisquare(D - 1, size=n))


def spread_if_equal(replicates, point) -> np.ndarray:
    """The spread (largest − smallest) that k quantities would show by noise alone if their true values
    were equal: per replicate, the spread of the replicates' deviations from their point estimates.
    ``replicates`` is (k, n), drawn jointly (``joint_deviations``: their correlation is kept); ``point``
    the k point estimates. A spread below this distribution's 95th percentile is inside the noise."""
    dev = np.asarray(replicates, float) - np.asarray(point, float)[:, None]
    return dev.max(0) - dev.min(0)


@checked(n_mu=VECTOR, er=SERIES,
         er_reps=instance(list, tuple, what="a list of replicate arrays (or None), one per dataset"),
         level=LEVEL_ARG)
def er_trend(n_mu, er, er_reps, level: float = LEVEL):
    """Spearman rho of N_mu with the error reduction (−ER), and its interval over replicates of each
    dataset's ER (``Estimate.replicates``, datasets independent: their draws are). The interval is None
    when a dataset has no replicates."""
    from scipy.stats import rankdata, spearmanr

    if not len(n_mu) == len(er) == len(er_reps) >= 2:
        raise SynthError(f"er_trend: n_mu, er and er_reps need one entry per dataset (at least 2), got "
                         f"{len(n_mu)}, {len(er)} and {len(er_reps)}")
    given = [b for b in er_reps if b is not None]
    if not all(isinstance(b, (list, tuple, np.ndarray)) and np.ndim(b) == 1 for b in given) or \
            len({len(b) for b in given}) > 1:
        raise SynthError("er_trend: er_reps holds one 1-D array of replicates per dataset, all of one length (or None)")
    rho = float(spearmanr(n_mu, -np.asarray(er, float)).statistic)
    if any(b is None for b in er_reps):
        return rho, None
    reps = -np.stack(er_reps, 1)  # (replicates, datasets)
    ranks = rankdata(reps, axis=1)
    x = rankdata(n_mu) - (len(n_mu) + 1) / 2
    y = ranks - (len(n_mu) + 1) / 2
    with np.errstate(invalid="ignore"):
        rhos = (y @ x) / np.sqrt((y ** 2).sum(1) * (x ** 2).sum())
    rhos = rhos[~np.isnan(reps).any(1)]
    a = 1 - level
    return rho, (float(np.percentile(rhos, 100 * a / 2)), float(np.percentile(rhos, 100 * (1 - a / 2))))
