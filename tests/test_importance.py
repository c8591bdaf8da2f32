"""Parameter importances (experiments.report.importance): PED-ANOVA on an adaptive search's stored trials,
every trial scored at the same budget."""

import json

import numpy as np

from experiments.report import importance
from tests.helpers import experiments, one_line, sweep


def test_the_parameter_that_decides_the_score_ranks_first():
    """Validation depends on lr only (plus small noise); hidden_dim and dropout are noise: lr > 0.5."""
    rng = np.random.default_rng(0)
    scores = []
    for lr in (0.001, 0.003, 0.01, 0.03, 0.1):
        for h in (64, 128, 256):
            for p in (0.1, 0.5):
                scores.append(({"lr": lr, "hidden_dim": h, "dropout": p, "activation": "relu"},
                               60 - 10 * abs(np.log10(lr) + 2) + rng.normal(0, 0.3)))
    imp = importance.importances(importance.study_of(scores))
    assert set(imp) == {"lr", "hidden_dim", "dropout"}  # activation never varies: nothing to attribute
    assert max(imp, key=imp.get) == "lr" and imp["lr"] > 0.5
    assert abs(sum(imp.values()) - 1) < 1e-9


def rows_with_curves(curves):
    return [{"config_hash": str(i), "config": json.dumps({"lr": 0.01 * (i + 1)}), "val_curve": json.dumps(c)}
            for i, c in enumerate(curves)]


def test_every_trial_is_scored_at_the_same_budget():
    """Pruned trials ran 1 or 3 epochs; with min_trials 3 the budget is 3 epochs and the trial of 1 epoch
    is left out; each score is the best validation within the budget."""
    rows = rows_with_curves([[10, 20, 30, 40, 50], [5, 25, 15], [1], [7, 8, 9, 10]])
    budget, scores = importance.trial_scores(rows, min_trials=3)
    assert budget == 3
    assert sorted(v for _, v in scores) == [9, 25, 30]


def test_importance_command_on_a_stored_search(tmp_path):
    (tmp_path / "s.toml").write_text("[settings]\nepochs = 3\npatience = 10\nbatch_size = 1024\n[grid]\n"
                                     "lr = [0.002, 0.01, 0.05]\nhidden_dim = [16, 32]\nnum_filts = [16]\n")
    db = tmp_path / "r.db"
    assert sweep("--space", str(tmp_path / "s.toml"), "--datasets", "U1", "--encoders", "xyz", "--seeds", "0",
                 "--sampler", "tpe", "--trials", "6", "--finalists", "1", "--db", str(db)).returncode == 0
    r = experiments("importance", "--db", str(db), "--out", str(tmp_path / "o"), "--figures", str(tmp_path / "f"),
                    "--min-trials", "4")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "o" / "importance.md").read_text()
    assert "| U1 | xyz |" in md and "PED-ANOVA" in md
    assert (tmp_path / "f" / "importance_U1_xyz.png").exists()
    # an exhaustive sweep has no trials to attribute: one line
    ex = tmp_path / "ex.db"
    assert sweep("--space", str(tmp_path / "s.toml"), "--datasets", "U1", "--encoders", "xyz", "--seeds", "0",
                 "--db", str(ex)).returncode == 0
    assert one_line(experiments("importance", "--db", str(ex), "--out", str(tmp_path / "o")), "no search trials")


def test_a_trial_whose_config_is_not_a_table_is_one_line(tmp_path):
    """A trial whose config is null or a string: one line naming the row, not a crash."""
    import sqlite3

    space = tmp_path / "s.toml"
    space.write_text("[settings]\nepochs = 3\npatience = 100\nbatch_size = 1024\n[grid]\nlr = [0.005, 0.01, 0.02]\n"
                     "hidden_dim = [32]\nnum_filts = [16]\n")
    db = tmp_path / "r.sqlite"
    assert sweep("--space", space, "--datasets", "U1", "--encoders", "xyz", "--seeds", "0", "--sampler", "random",
                 "--trials", "3", "--db", db).returncode == 0
    for bad in ("null", '"abc"'):
        c = sqlite3.connect(db)
        c.execute("PRAGMA ignore_check_constraints = ON")
        c.execute("UPDATE runs SET config = ? WHERE id = (SELECT MIN(id) FROM runs WHERE stage = 'search')", (bad,))
        c.commit()
        c.close()
        r = experiments("importance", "--db", db, "--out", tmp_path / "imp", "--min-trials", "2")
        assert one_line(r, "column config is not a JSON object"), r.stderr
