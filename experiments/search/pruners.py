"""The search's pruners: successive halving and Hyperband whose rung decisions depend on values only.

Why our own (on Optuna's ``BasePruner``) rather than Optuna's ``SuccessiveHalvingPruner``: Optuna's
is *asynchronous* — a trial reaching a rung is promoted if its value is in the top 1/η of the values
already recorded there, so the first trial to arrive always passes. Our trials arrive together (a
population's members train side by side and report the same epoch), and ``should_prune`` is asked
trial by trial in trial order, so Optuna's rule promoted the lowest-numbered trial of every
population whatever its value (trial 0 took 55 % of ``make reproduce``'s search and
completed in 24 of 24 cells). Here every trial of a population reports at a rung *before* any is
decided (``search.CellSearch._decide``), and a trial is decided against every trial that has reached
that rung so far, its own population's and earlier ones': the top ``max(1, n // η)`` by value go on,
the others stop. Ties are broken by the configuration (its canonical JSON), never by trial number or
arrival, so permuting the trials of a population changes nothing. Replay (``--resume``) reports the
same values in the same way, so a resumed search decides exactly as an uninterrupted one.

A trial's value at a rung is its best validation Top-1 up to that epoch: what it would be selected
on if it stopped there (training selects the best validated epoch), and less noisy than one epoch.

Hyperband runs several such halvings ("brackets") whose first rung starts later and later; a trial's
bracket is a hash of its configuration (not of its trial number: again, order must not matter), with
Hyperband's weights (more trials in the brackets that prune earliest), and a trial competes with its
own bracket only.
"""

from __future__ import annotations

import hashlib
import json
import math

from synth.errors import SynthError

# Written into every adaptive search's experiment identity and shown by ``report``: a search decided
# under another rule is a different experiment.
RULE = "by-value"
RULE_TEXT = ("rung decisions by value: at each rung the best 1/3 of the trials that reached it go on, ties by "
             "configuration (synchronous successive halving)")
OLD_RULE_TEXT = ("recorded before rung decisions were made by value: Optuna's asynchronous successive halving, "
                 "which promoted the first trial to report at each rung")


def rungs(first: int, epochs: int, eta: int) -> list[int]:
    """Rung epochs first, first·η, first·η², ... below ``epochs`` (at the last epoch nothing is saved)."""
    out, r = [], first
    while r < epochs:
        out.append(r)
        r *= eta
    return out


def _tie_key(trial) -> str:
    return json.dumps(trial.params, sort_keys=True, default=str)


def _value_at(trial, rung: int) -> float | None:
    """The best value reported up to ``rung``, or None if the trial did not report at the rung itself."""
    values = trial.intermediate_values
    if rung not in values:
        return None
    return max(v for s, v in values.items() if s <= rung)


def keeps(values: dict, eta: int) -> set:
    """Of ``{configuration key: value}`` the keys that go on: the top ``max(1, n // eta)`` by value,
    ties by the key (a fixed rule that does not depend on trial numbers or arrival)."""
    ranked = sorted(values, key=lambda k: (-values[k], k))
    return set(ranked[:max(1, len(ranked) // eta)])


def _base():
    import optuna

    return optuna.pruners.BasePruner


class _Halving:
    """The decision shared by both pruners (mixed into a ``BasePruner`` subclass at first use)."""

    eta: int

    def _rungs_of(self, trial) -> list[int]:
        raise NotImplementedError

    def _same_group(self, a, b) -> bool:
        return True

    def prune(self, study, trial) -> bool:
        step = trial.last_step
        if step is None or step not in self._rungs_of(trial):
            return False
        # one entry per configuration: a repeat of a configuration (TPE, answered from its first
        # trial) reports the same values and must not count twice
        competing = {}
        for t in study.get_trials(deepcopy=False):
            if not self._same_group(t, trial):
                continue
            v = _value_at(t, step)
            if v is not None and not math.isnan(v):
                competing[_tie_key(t)] = v
        own = _value_at(trial, step)
        if own is None or math.isnan(own):
            return True
        return _tie_key(trial) not in keeps(competing, self.eta)


def successive_halving(first_rung: int, epochs: int, eta: int):
    """Synchronous successive halving with rungs at ``rungs(first_rung, epochs, eta)``."""

    class SyncHalving(_Halving, _base()):
        def __init__(self):
            self.eta, self.rung_list = eta, rungs(first_rung, epochs, eta)

        def _rungs_of(self, trial):
            return self.rung_list

    return SyncHalving()


def bracket_of(params: dict, n_brackets: int, eta: int) -> int:
    """A configuration's Hyperband bracket: a stable hash of its parameters, weighted like Hyperband's
    trial counts (bracket s, whose first rung is first_rung·η^s, gets ∝ ⌈B/(s+1)·η^(B-1-s)⌉)."""
    weights = [math.ceil(n_brackets / (s + 1) * eta ** (n_brackets - 1 - s)) for s in range(n_brackets)]
    h = int(hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12], 16)
    x = h % sum(weights)
    for s, w in enumerate(weights):
        if x < w:
            return s
        x -= w
    raise AssertionError("unreachable")


def hyperband(first_rung: int, epochs: int, eta: int):
    """Hyperband: brackets s = 0, 1, ... with rungs ``rungs(first_rung·η^s, epochs, eta)``; each a
    synchronous halving of its own trials."""
    n_brackets = len(rungs(first_rung, epochs, eta)) + 1  # the last bracket never prunes

    class SyncHyperband(_Halving, _base()):
        def __init__(self):
            self.eta, self.n_brackets = eta, n_brackets

        def bracket(self, trial) -> int:
            return bracket_of(trial.params, self.n_brackets, self.eta)

        def _rungs_of(self, trial):
            return rungs(first_rung * self.eta ** self.bracket(trial), epochs, self.eta)

        def _same_group(self, a, b):
            return self.bracket(a) == self.bracket(b)

    return SyncHyperband()


def make(pruner: str, first_rung: int, epochs: int, eta: int):
    """The pruner named by a search policy (``none``: Optuna's ``NopPruner``)."""
    import optuna

    if first_rung < 1:
        raise SynthError(f"the first rung must be at least 1 epoch, got {first_rung}")
    if pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "halving":
        return successive_halving(first_rung, epochs, eta)
    if pruner == "hyperband":
        return hyperband(first_rung, epochs, eta)
    raise SynthError(f"unknown pruner {pruner!r}")
