"""Bad inputs, round 5: flags that would change nothing are refused, a dry run checks what the run
checks, and messages say what really happened."""

import json
import signal
import subprocess
import sys
import time

import pytest

from helpers import TINY_SPACE, WAIT_S, one_line, sweep

SIX = TINY_SPACE.replace("lr = [0.01, 0.02]", "lr = [0.01, 0.02, 0.03]")  # 6 configurations of grid


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished adaptive search of grid on U1 (the source of the transfer cases)."""
    tmp = tmp_path_factory.mktemp("flags")
    (tmp / "s.toml").write_text(SIX)
    r = sweep("--space", tmp / "s.toml", "--datasets", "U1", "--encoders", "grid", "--seeds", "0", "--finalists", "2",
              "--db", tmp / "db.sqlite")
    assert r.returncode == 0, r.stderr
    return tmp


@pytest.mark.parametrize("flags, match", [
    (["--first-rung", "2"], "with pruner none nothing is pruned"),
    (["--pruner", "none", "--first-rung", "2"], "with pruner none nothing is pruned"),
    (["--pruner", "halving", "--first-rung", "2"], "first rung 2 is not below the 2 epochs"),
    (["--pruner", "hyperband", "--first-rung", "50"], "first rung 50 is not below the 2 epochs"),
    (["--transfer-top", "2"], "give --transfer-from and --transfer-datasets"),
    (["--sampler", "tpe", "--trials", "3", "--transfer-from", "", "--transfer-datasets", "U2"],
     "transfer_from '' names no experiment"),
    (["--sampler", "tpe", "--trials", "3", "--transfer-from", "nope", "--transfer-datasets", "U2"],
     "has no experiment 'nope'"),
    (["--sampler", "tpe", "--trials", "3", "--transfer-from", "EXP", "--transfer-datasets", "S2.3"],
     "no finished search trial of grid on S2.3"),
    (["--sampler", "tpe", "--trials", "3", "--transfer-from", "EXP", "--transfer-datasets", "U1", "--encoders", "xyz"],
     "no finished search trial of xyz on U1"),
])
@pytest.mark.parametrize("dry", [True, False])
def test_flags_that_change_nothing_and_transfers_from_nothing_are_refused_by_the_dry_run_too(searched, flags, match,
                                                                                               dry, tmp_path):
    """Each was once a full plan with exit 0 (the run then stopped, or trained an identical search under
    a new name); now the dry run and the run both stop in one line, before any database is written."""
    exp = json.loads(sweep("--space", searched / "s.toml", "--datasets", "U1", "--encoders", "grid", "--seeds", "0",
                           "--finalists", "2", "--db", searched / "db.sqlite", "--dry-run").stdout.split(
                               "experiment ")[1].split()[0].join('""'))
    flags = [exp if f == "EXP" else f for f in flags]
    db = searched / "db.sqlite" if "--transfer-from" in flags else tmp_path / "db.sqlite"
    before = db.read_bytes() if db.exists() else None
    args = ["--space", searched / "s.toml", "--datasets", "U2", "--seeds", "0", "--db", db, *flags]
    if "--encoders" not in flags:
        args += ["--encoders", "grid"]
    r = sweep(*args, *(["--dry-run"] if dry else []))
    assert one_line(r, match), r.stderr
    assert (db.read_bytes() if db.exists() else None) == before  # no empty database left behind


def test_more_finalists_than_trials_is_noted(searched):
    r = sweep("--space", searched / "s.toml", "--datasets", "U1", "--encoders", "grid", "--seeds", "0",
              "--finalists", "99", "--db", searched / "other.sqlite", "--dry-run")
    assert r.returncode == 0 and "note: grid: 99 finalists asked for but only 6 trial(s)" in r.stdout, r.stdout


def test_a_resumed_search_that_trains_nothing_says_so(searched):
    args = ["--space", searched / "s.toml", "--datasets", "U1", "--encoders", "grid", "--seeds", "0", "--finalists",
            "2", "--db", searched / "db.sqlite", "--resume"]
    r = sweep(*args)
    assert r.returncode == 0, r.stderr
    assert "nothing trained: every trial and finalist was already in" in r.stdout and "done in" not in r.stdout


def test_a_cached_epoch_cost_of_infinity_is_measured_again(tmp_path, monkeypatch):
    from experiments.search.plan import EpochCosts

    path = tmp_path / "epoch_costs.json"
    path.write_text('{"a": Infinity, "b": NaN, "c": 0, "d": true, "e": "1", "f": 0.002}')
    costs = EpochCosts(path)
    assert [costs.get(k) for k in "abcdef"] == [None] * 5 + [0.002]


def test_sigterm_of_an_export_does_not_advise_a_resume_it_lacks(tmp_path):
    """export (like report) writes all or nothing: it has no --resume to advise (the sweep's message,
    which does, is tests/test_search.py's INTERRUPTED)."""
    out = tmp_path / "o"
    p = subprocess.Popen([sys.executable, "-m", "synth", "export", "--all", "--seed", "0-999", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + WAIT_S
    while time.time() < deadline and not list(out.glob(".export-*")):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "error: interrupted; no file was left half-written: run the command again\n"
    assert not list(out.glob("*.csv"))
