"""Results you can trust. One test (or a few) per numbered finding of the adversarial try,
each written to fail on the code before the fix."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from helpers import experiments, sweep
from synth import SynthError, datasets
from synth.metrics import true_class_ranks


def cli(tool, *args, **kw):
    if tool == "experiments":
        return experiments(*args, **kw)
    return subprocess.run([sys.executable, "-m", tool, *args], capture_output=True, text=True, **kw)


def one_line_error(r, word=""):
    lines = r.stderr.strip().splitlines()
    return r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and word in lines[0]


SMALL_SPACE = """
[settings]
epochs = {epochs}
patience = 5
batch_size = 1024
[grid]
lr = {lr}
hidden_dim = [16]
num_filts = [8]
"""


def space(tmp_path, lr="[0.02]", epochs=2, extra="", name="s"):
    p = tmp_path / f"{name}.toml"
    p.write_text(SMALL_SPACE.format(lr=lr, epochs=epochs) + extra)
    return p


# ------------------------------------------------------------------ 1. honest ranks, diverged members
@pytest.mark.parametrize("xp", ["numpy", "torch"])
def test_ties_and_non_finite_scores_count_against_the_true_class(xp):
    scores = np.array([[0.0, 0.0, 0.0],     # all tied: worst rank, not a hit
                       [1.0, 3.0, 3.0],     # true class 1 tied with class 2: rank 2
                       [5.0, 1.0, 0.0],     # clean win: rank 1
                       [np.nan, 1.0, 0.0],  # a NaN anywhere in the row: worst rank
                       [np.inf, 1.0, 0.0]])
    labels = np.array([0, 1, 0, 0, 0])
    if xp == "torch":
        scores, labels = torch.tensor(scores), torch.tensor(labels)
    ranks = np.asarray(true_class_ranks(scores, labels))
    assert ranks.tolist() == [3, 2, 1, 3, 3]


def test_a_collapsed_model_scores_zero_not_one_hundred():
    # lr 0.2 kills every ReLU in a few steps: all logits are exactly 0 (the first finding)
    from experiments.models.train import TrainSettings, train_population

    ds = datasets.generate("S2.3", 0)
    res = train_population(ds, "xyz", [dict(lr=lr, hidden_dim=64, num_filts=64, seed=0) for lr in (0.02, 0.2)],
                           TrainSettings(epochs=5), device="cpu")
    bayes_test = 93.8  # S2.3 seed 0, README
    assert 40 < res[0].test["top1"] < bayes_test
    assert res[1].test["top1"] < 10 and res[1].val["top1"] < 10
    assert not res[0].diverged


def test_non_finite_logits_mark_a_member_diverged():
    """predict_ranks, the trainer's scoring, a batch of points at a time (3 of 4 here): a member with
    a NaN logit in any batch is not finite (diverged); ties count against the true class."""
    from experiments.models.train import predict_ranks

    logits = torch.zeros(2, 4, 3)
    logits[0] = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    logits[1, 3, 1] = float("nan")  # in the second batch

    class Fixed(torch.nn.Module):
        n_members = 2

        def forward(self, x):
            return logits[:, x[:, 0].long()]

    ranks, finite = predict_ranks(Fixed(), torch.arange(4.0)[:, None].repeat(1, 2), torch.tensor([0, 1, 2, 0]),
                                  batch=3)
    assert ranks[0].tolist() == [1, 1, 1, 1] and (ranks[1] > 1).all()
    assert finite.tolist() == [True, False]


@pytest.mark.parametrize("lr", ["nan", "inf", "1e30", "-0.1", "0"])
def test_a_learning_rate_that_means_nothing_is_refused_before_work(tmp_path, lr):
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(space(tmp_path, f"[{lr}]")), "--seeds", "0",
              "--db", str(db))
    assert one_line_error(r, "lr"), r.stderr
    assert not db.exists()


def test_report_flags_a_top1_above_the_bayes_ceiling(tmp_path):
    from experiments.report import table8 as report
    from experiments.store import results

    store = results.ResultsStore(tmp_path / "r.sqlite")
    rows = []
    for enc, top1 in (("xyz", 99.9), ("sphereM+", 80.0)):
        for s in range(3):
            rows.append(_row("U1", enc, s, val=top1, test=top1))
    store.write_population(rows)
    store.close()
    r = cli("experiments", "report", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "out"),
            "--encoders", "xyz,sphereM+", "--no-figures")
    assert r.returncode == 0, r.stderr
    assert "above the Bayes ceiling" in r.stderr and "xyz" in r.stderr
    assert "99.9 ± 0.0 !" in (tmp_path / "out" / "table8.md").read_text()


def test_a_diverged_member_is_stored_but_never_selected(tmp_path):
    from experiments.report import table8 as report
    from experiments.store import results

    rows = [_row("U1", "xyz", s, val=90.0, test=90.0, lr=0.5, diverged=True) for s in range(2)]
    rows += [_row("U1", "xyz", s, val=60.0, test=61.0, lr=0.01) for s in range(2)]
    cells = report.choose(rows)
    c = cells[("U1", "xyz")]
    assert c.config["lr"] == 0.01 and c.n_diverged == 1


# ------------------------------------------------------------------ 2. experiments are never pooled
def test_runs_under_different_settings_are_separate_experiments(tmp_path):
    db = tmp_path / "r.sqlite"
    base = ["--datasets", "U1", "--encoders", "xyz,sphereM+", "--space", "smoke", "--seeds", "0", "--db", str(db)]
    assert sweep(*base).returncode == 0
    assert sweep(*base, "--epochs", "3").returncode == 0
    r = cli("experiments", "report", "--db", str(db), "--out", str(tmp_path / "o"), "--no-figures",
            "--encoders", "xyz,sphereM+")
    assert one_line_error(r, "experiments"), r.stderr
    assert "smoke-" in r.stderr and "2 rows" in r.stderr
    from experiments.store import results

    store = results.ResultsStore(db, readonly=True)
    names = sorted(store.experiments())
    assert len(names) == 2
    for name in names:
        r = cli("experiments", "report", "--db", str(db), "--out", str(tmp_path / name), "--no-figures",
                "--encoders", "xyz,sphereM+", "--experiment", name)
        assert r.returncode == 0, r.stderr
        rows = (tmp_path / name / "table8.csv").read_text().splitlines()
        assert ",1," in rows[1]  # n = 1 seed per cell, not 2 pooled
    store.close()


def test_choose_refuses_rows_of_two_settings(tmp_path):
    from experiments.report import table8 as report

    rows = [_row("U1", "xyz", 0, 50, 50, settings_hash="a"), _row("U1", "xyz", 0, 60, 60, settings_hash="b")]
    with pytest.raises(SynthError, match="settings"):
        report.choose(rows)


# ------------------------------------------------------------------ 3. recipe names are not paths
@pytest.mark.parametrize("name", ["../x", "sub/dir", "/abs/path", "", ".", "a..b", "x" * 100, "with space"])
def test_recipe_names_that_are_paths_are_refused(tmp_path, name):
    rec = tmp_path / "r.toml"
    rec.write_text(f'[recipe]\nname = "{name}"\nkappa_max = 32\n')
    out = tmp_path / "sub" / "out"
    r = cli("synth", "generate", "--recipe", str(rec), "--out", str(out))
    assert one_line_error(r, "name"), r.stderr
    assert not any(p.is_file() for p in tmp_path.rglob("*") if p != rec)


def test_a_user_recipe_cannot_shadow_a_paper_dataset_by_accident(tmp_path):
    rec = tmp_path / "r.toml"
    rec.write_text('[recipe]\nname = "U1"\nkappa_max = 128\n')
    r = cli("synth", "generate", "--recipe", str(rec), "--out", str(tmp_path / "d"))
    assert one_line_error(r, "paper dataset"), r.stderr


def test_a_user_recipe_is_swept_and_reported_with_its_own_bayes_ceiling(tmp_path):
    rec = tmp_path / "r.toml"
    rec.write_text('[recipe]\nname = "U1"\nkappa_max = 128\n')
    data = tmp_path / "d"
    r = cli("synth", "generate", "--recipe", str(rec), "--out", str(data), "--allow-paper-name")
    assert r.returncode == 0, r.stderr
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz,sphereM+", "--space", "smoke", "--seeds", "0", "--db", str(db),
              "--data", str(data))
    assert r.returncode == 0, r.stderr
    r = cli("experiments", "report", "--db", str(db), "--out", str(tmp_path / "o"), "--no-figures",
            "--encoders", "xyz,sphereM+")
    assert r.returncode == 0, r.stderr
    import csv

    row = next(csv.DictReader(open(tmp_path / "o" / "table8.csv")))
    user = datasets.Recipe(name="U1", kappa_max=128)
    from synth import bayes

    own = bayes.evaluate(datasets.generate(user, 0), "test")["top1"]
    assert abs(own - 72.0) > 10  # the paper U1's ceiling would be 72.0
    assert row["dataset"] == "U1 (user recipe)" and float(row["bayes_top1"]) == pytest.approx(own, abs=0.01)
    assert row["paper_sphereM_plus"] == ""  # the paper's U1 numbers are not set beside another recipe


def test_sweep_verifies_every_data_file_before_training(tmp_path):
    data = tmp_path / "d"
    assert cli("synth", "generate", "--dataset", "U1,U2", "--out", str(data)).returncode == 0
    f = data / "U2_seed0.npz"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1,U2", "--encoders", "xyz", "--space", "smoke", "--seeds", "0", "--db", str(db),
              "--data", str(data))
    assert one_line_error(r, "U2_seed0.npz"), r.stderr
    assert not db.exists()


def test_a_data_file_whose_arrays_do_not_follow_its_recipe_is_refused(tmp_path):
    # the manifest re-hashed after the arrays were edited: the checksum passes, the recipe does not
    data = tmp_path / "d"
    assert cli("synth", "generate", "--dataset", "U1", "--out", str(data)).returncode == 0
    ds = datasets.load(data / "U1_seed0.npz")
    ds.arrays["test_lonlat"] = ds.arrays["test_lonlat"].copy()
    ds.arrays["test_lonlat"][0] = [10.0, 10.0]
    datasets.save(ds, data)
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--seeds", "0",
              "--db", str(tmp_path / "r.sqlite"), "--data", str(data))
    assert one_line_error(r, "recipe"), r.stderr


# ------------------------------------------------------------------ 4. ASHA: resume and caps
def test_asha_respects_max_members_and_resumes_without_retraining(tmp_path):
    # was the --mode halving test; successive halving is now the asha pruner of the one search path
    sp = space(tmp_path, "[0.005, 0.01, 0.02, 0.05]", epochs=3)
    db = tmp_path / "r.sqlite"
    args = ["--datasets", "U1", "--encoders", "xyz", "--space", str(sp), "--seeds", "0", "--db", str(db),
            "--pruner", "asha", "--max-members", "1"]
    r = sweep(*args)
    assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(db)
    assert {p for (p,) in conn.execute("SELECT population FROM runs WHERE stage = 'search'")} == {1}
    before = dict(conn.execute("SELECT id, created FROM runs").fetchall())
    r = sweep(*args, "--resume")
    assert r.returncode == 0, r.stderr
    after = dict(conn.execute("SELECT id, created FROM runs").fetchall())
    assert after == before  # nothing retrained, nothing duplicated


def test_a_search_reads_only_its_own_experiment(tmp_path):
    # rows of another experiment (other settings) with a high validation score must not steer the search
    sp = space(tmp_path, "[0.005, 0.05]", epochs=3)
    db = tmp_path / "r.sqlite"
    from experiments.store import results
    from experiments.search.space import experiment_name, load_space, policy_from

    s = load_space(str(sp))
    fake = [_row("U1", "xyz", 0, 99.0, 99.0, lr=0.05, hidden_dim=16, num_filts=8, stage="search",
                 settings_hash="other", experiment="other-00000000")]
    store = results.ResultsStore(db)
    store.write_population(fake)
    store.close()
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", str(sp), "--seeds", "0", "--db", str(db),
              "--finalists", "1", "--resume")
    assert r.returncode == 0, r.stderr
    store = results.ResultsStore(db, readonly=True)
    exp = experiment_name(s, policy_from({}, {"finalists": 1}))
    search = store.rows(exp, "search")
    final = store.rows(exp, "final")
    best = max(search, key=lambda r: r["val_top1"])
    assert len(search) == 2 and [r["config_hash"] for r in final] == [best["config_hash"]]
    store.close()


# ------------------------------------------------------------------ 5. atomic writes, OS errors
def test_atomic_writes_follow_the_umask(tmp_path):
    from synth.fileio import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.txt", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_a_failed_figure_write_keeps_the_previous_figure(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from synth import plot

    fig = plt.figure()
    plot.save_figure(fig, tmp_path / "f")
    before = (tmp_path / "f.png").read_bytes()

    def full_disk(self, fname, *a, **k):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG truncated")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    with pytest.raises(OSError):
        plot.save_figure(fig, tmp_path / "f")
    assert (tmp_path / "f.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]  # no temporary left behind


def test_an_output_path_inside_a_file_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker / "data"
    r = cli("synth", "generate", "--dataset", "U1", "--out", str(out))
    assert one_line_error(r), r.stderr
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--seeds", "0",
              "--db", str(out / "r.sqlite"))
    assert one_line_error(r, "directory"), r.stderr


@pytest.mark.parametrize("err", [(30, "Read-only file system"), (28, "No space left on device")])
def test_read_only_or_full_disk_while_writing_data_is_one_line(tmp_path, monkeypatch, capsys, err):
    # Root ignores folder permissions, so the OS error is injected where every file is created.
    import synth.fileio
    from synth import cli as synth_cli

    def refuse(*a, **k):
        raise OSError(err[0], err[1], str(tmp_path / "d"))

    monkeypatch.setattr(synth.fileio.tempfile, "mkstemp", refuse)
    assert synth_cli.main(["generate", "--dataset", "U1", "--out", str(tmp_path / "d")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {err[1]}: {tmp_path / 'd'}"]


def test_a_full_disk_while_storing_results_is_one_line(tmp_path, monkeypatch):
    from experiments.store import results

    store = results.ResultsStore(tmp_path / "r.sqlite")
    real = store._execute_write

    def full(*a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_execute_write", full)
    with pytest.raises(SynthError, match="disk is full"):
        store.write_population([_row("U1", "xyz", 0, 50, 50)])
    monkeypatch.setattr(store, "_execute_write", real)
    assert store.rows(None, "final") == []
    store.close()


# ------------------------------------------------------------------ 6. values that mean nothing
@pytest.mark.parametrize("args,word", [
    (["--max-members", "-1"], "max-members"),
    (["--max-members", "0"], "max-members"),
    (["--epochs", "0"], "epochs"),
    (["--seeds", "0-10000000000"], "seeds"),
    (["--seeds", str(2**63)], "seeds"),
    (["--n-random", "0"], "--n-random was removed"),
    (["--lock-timeout", "-1"], "lock-timeout"),
])
def test_meaningless_cli_values_are_refused(tmp_path, args, word):
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--db", str(db), *args)
    assert one_line_error(r, word), r.stderr
    assert not db.exists()


@pytest.mark.parametrize("table,text,word", [
    ("settings", "eval_every = 50", "eval_every"),
    ("settings", "pos_weight = -1", "pos_weight"),
    ("settings", "patience = -5", "patience"),
    ("settings", "epochs = 2.5", "epochs"),
    ("settings", 'batch_size = "8"', "batch_size"),
    ("grid", 'use_layernorm = ["false"]', "use_layernorm"),
    ("grid", "dropout = [1.5]", "dropout"),
    ("grid", "hidden_dim = [0]", "hidden_dim"),
    ("encoders.grid", "frequency_num = [2.7]", "frequency_num"),
    ("encoders.grid", 'frequency_num = ["8"]', "frequency_num"),
    ("encoders.grid", "min_radius = [nan]", "min_radius"),
    ("encoders.grid", "frequency_num = [true]", "frequency_num"),
    ("encoders.rbf", 'distance = ["manhattan"]', "distance"),
    ("grid", "weight_decay = [-1.0]", "weight_decay"),
])
def test_space_values_are_checked_against_the_schema(tmp_path, table, text, word):
    from experiments.search.space import load_space

    p = tmp_path / "bad.toml"
    body = SMALL_SPACE.format(lr="[0.01]", epochs=10)
    key = text.split("=")[0].strip()
    body = "\n".join(ln for ln in body.splitlines() if not ln.startswith(key + " ")) + "\n"  # one value per key
    if table == "settings":
        body = body.replace("[settings]\n", f"[settings]\n{text}\n")
    elif table == "grid":
        body = body.replace("[grid]\n", f"[grid]\n{text}\n")
    else:
        body += f"\n[{table}]\n{text}\n"
    p.write_text(body)
    with pytest.raises(SynthError, match=word):
        load_space(str(p))


def test_python_calls_are_checked_by_the_same_schema():
    from experiments.models import encoders
    from experiments.models.train import TrainSettings

    with pytest.raises(SynthError, match="frequency_num"):
        encoders.build("grid", 10, frequency_num=2.7)
    with pytest.raises(SynthError, match="use_layernorm"):
        encoders.build("xyz", 10, use_layernorm="false")
    with pytest.raises(SynthError, match="patience"):
        TrainSettings(patience=-5)
    with pytest.raises(SynthError, match="eval_every"):
        TrainSettings(epochs=3, eval_every=5)


@pytest.mark.parametrize("split", ["[0.9, 0.1, 0.0]", "[0.0, 0.5, 0.5]", "[0.995, 0.0, 0.005]"])
def test_an_empty_split_is_refused(tmp_path, split):
    rec = tmp_path / "r.toml"
    rec.write_text(f'[recipe]\nname = "mine"\nsplit = {split}\n')
    r = cli("synth", "generate", "--recipe", str(rec), "--out", str(tmp_path / "d"))
    assert one_line_error(r, "split"), r.stderr


@pytest.mark.parametrize("damage", ["nan_center", "nan_kappa", "negative_kappa", "float_labels"])
def test_verify_refuses_damaged_arrays(tmp_path, damage):
    data = tmp_path / "d"
    ds = datasets.generate("U1", 0)
    a = dict(ds.arrays)
    if damage == "nan_center":
        a["centers_lonlat"] = a["centers_lonlat"].copy()
        a["centers_lonlat"][3, 0] = np.nan
    elif damage == "nan_kappa":
        a["kappa"] = a["kappa"].copy()
        a["kappa"][0] = np.nan
    elif damage == "negative_kappa":
        a["kappa"] = -a["kappa"]
    else:
        a["train_label"] = a["train_label"].astype(np.float64) + 0.5
    datasets.save(datasets.Dataset(ds.recipe, 0, a), data)
    r = cli("synth", "verify", str(data))
    assert r.returncode == 2 and r.stderr.startswith("error:")


@pytest.mark.parametrize("case", ["manifest_entry", "manifest_list", "band_width_0", "band_width_nan", "device_meta",
                                  "no_dataset", "rbf_anchors"])
def test_more_bad_inputs_found_by_fuzzing_are_one_line_errors(tmp_path, case):
    data = tmp_path / "d"
    assert cli("synth", "generate", "--dataset", "U1", "--out", str(data)).returncode == 0
    m = data / "manifest.json"
    if case == "manifest_entry":
        m.write_text('{"datasets": {"U1_seed0.npz": {"name": "U1"}}}')
        r = cli("synth", "verify", str(data))
    elif case == "manifest_list":
        m.write_text("[1, 2]")
        r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--data", str(data),
                  "--db", str(tmp_path / "r.sqlite"))
    elif case.startswith("band_width"):
        r = cli("synth", "bayes", str(data / "U1_seed0.npz"), "--band-width", "0" if case.endswith("0") else "nan")
    elif case == "device_meta":
        r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--device", "meta",
                  "--db", str(tmp_path / "r.sqlite"))
    elif case == "no_dataset":
        r = cli("synth", "generate", "--dataset", ",", "--out", str(tmp_path / "e"))
    else:
        r = sweep("--datasets", "U1", "--encoders", "rbf", "--space", str(space(tmp_path, extra="[encoders.rbf]\n"
                  "num_anchors = [5000]\n")), "--db", str(tmp_path / "r.sqlite"))
    assert one_line_error(r), r.stderr
    assert not (tmp_path / "r.sqlite").exists()


# ------------------------------------------------------------------ 7. --encoders all
def test_every_shipped_space_expands_for_every_encoder():
    from experiments.models import encoders
    from experiments.search.space import load_space

    for name in ("quick", "quick_public", "paper", "smoke"):
        s = load_space(name)
        for enc in encoders.available():
            for cfg in s.configs(enc)[:3]:
                hp = {k: v for k, v in cfg.items() if k not in ("lr", "weight_decay")}
                encoders.build(enc, 5, **hp)  # raises on a key the encoder's network does not take


def test_spherical_harmonics_can_be_swept(tmp_path):
    db = tmp_path / "r.sqlite"
    r = sweep("--datasets", "U1", "--encoders", "all", "--space", "smoke", "--seeds", "0", "--db", str(db), "--dry-run")
    assert r.returncode == 0, r.stderr
    r = sweep("--datasets", "U1", "--encoders", "spherical_harmonics", "--space", "smoke", "--seeds", "0",
              "--db", str(db))
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ 8. locks and side effects
def test_report_does_not_touch_a_foreign_sqlite_file(tmp_path):
    f = tmp_path / "other.sqlite"
    c = sqlite3.connect(f)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    before = hashlib.sha256(f.read_bytes()).hexdigest()
    r = cli("experiments", "report", "--db", str(f), "--out", str(tmp_path / "o"), "--no-figures")
    assert one_line_error(r, "not a sphere-synth results database"), r.stderr
    assert hashlib.sha256(f.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


def test_report_opens_the_database_read_only(tmp_path):
    from experiments.store import results

    db = tmp_path / "r.sqlite"
    store = results.ResultsStore(db)
    store.write_population([_row("U1", e, s, 60, 60) for e in ("xyz", "sphereM+") for s in range(2)])
    store.close()
    os.chmod(db, 0o444)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    r = cli("experiments", "report", "--db", str(db), "--out", str(tmp_path / "o"), "--no-figures",
            "--encoders", "xyz,sphereM+")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_lock_wait_says_what_it_waits_for_and_gives_up(tmp_path):
    from experiments.store import results

    db = tmp_path / "r.sqlite"
    results.ResultsStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock
    try:
        t = time.time()
        r = sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--seeds", "0", "--db", str(db),
                  "--lock-timeout", "2")
        waited = time.time() - t
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert any("waiting" in ln and str(db) in ln for ln in lines)
    assert lines[-1].startswith("error:") and "lock" in lines[-1]
    assert waited < 60


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, dataset TEXT NOT NULL, data_seed INTEGER NOT NULL,
  encoder TEXT NOT NULL, config_hash TEXT NOT NULL, config TEXT NOT NULL, train_seed INTEGER NOT NULL,
  settings_hash TEXT NOT NULL, settings TEXT NOT NULL, stage TEXT NOT NULL DEFAULT 'final',
  val_top1 REAL, val_top3 REAL, val_mrr REAL, test_top1 REAL, test_top3 REAL, test_mrr REAL,
  best_epoch INTEGER, epochs_run INTEGER, bands TEXT, seconds REAL, population INTEGER, device TEXT,
  code_version TEXT, created REAL,
  UNIQUE (dataset, data_seed, encoder, config_hash, train_seed, settings_hash, stage));
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_a_database_of_the_previous_schema_is_refused_in_one_line(tmp_path):
    db = tmp_path / "v1.sqlite"
    c = sqlite3.connect(db)
    c.executescript(V1_SCHEMA)
    c.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for r in (cli("experiments", "report", "--db", str(db), "--out", str(tmp_path / "o"), "--no-figures"),
              sweep("--datasets", "U1", "--encoders", "xyz", "--space", "smoke", "--seeds", "0", "--db", str(db))):
        assert one_line_error(r, "schema 1"), r.stderr
        assert "tied" in r.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


# ------------------------------------------------------------------ design: no import cycle
def test_reading_results_and_writing_tables_does_not_import_the_trainer():
    code = ("import sys, experiments.report.table8, experiments.store.results; "
            "bad = [m for m in ('experiments.models.train', 'experiments.search.cell_search', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ helpers
BANDS = json.dumps({k: {"edges": list(np.linspace(-90, 90, 19)), "n": [1] * 18, "top1": [50.0] * 18,
                        "mrr": [0.5] * 18} for k in ("equal-angle", "equal-area")})


def _row(dataset, encoder, seed, val, test, lr=0.01, diverged=False, stage="final", settings_hash="s",
         experiment="fixture-00000000", **cfg):
    from experiments.store import results

    config = {"lr": lr, **cfg}
    recipe = datasets.get_recipe(dataset).to_dict()
    return dict(experiment=experiment, dataset=dataset, recipe=results.canonical(recipe),
                recipe_hash=results.digest(recipe), data_seed=0, encoder=encoder,
                config_hash=results.digest(config), config=results.canonical(config), train_seed=seed,
                settings_hash=settings_hash, settings="{}", stage=stage, val_top1=val, val_top3=val, val_mrr=0.5,
                test_top1=test, test_top3=test, test_mrr=0.5, best_epoch=1, epochs_run=1, bands=BANDS,
                diverged=int(diverged), seconds=0.1, population=3, device="cpu")


def test_an_experiment_can_be_named_by_its_space_when_that_is_unambiguous(tmp_path):
    from experiments.store import results

    store = results.ResultsStore(tmp_path / "r.sqlite")
    store.write_population([_row("U1", "xyz", 0, 50, 50, experiment="quick-11111111"),
                            _row("U1", "xyz", 0, 50, 50, experiment="smoke-22222222"),
                            _row("U1", "xyz", 0, 50, 50, experiment="smoke-33333333")])
    assert results.choose_experiment(store, "quick") == "quick-11111111"
    assert results.choose_experiment(store, "smoke-22222222") == "smoke-22222222"
    with pytest.raises(SynthError, match="space smoke has 2 experiments"):
        results.choose_experiment(store, "smoke")
    with pytest.raises(SynthError, match="no experiment 'paper'"):
        results.choose_experiment(store, "paper")
    store.close()
