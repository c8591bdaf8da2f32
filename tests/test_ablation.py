"""Controlled ablations (experiments.ablate.ablation): declared factor and levels checked before any work,
each level its own experiment, paired differences against the reference with the Table 8 statistics,
known effects detected and a null effect called a tie, the cost of a plain sweep."""

import csv
import json
import re
import sqlite3

import pytest

from experiments.models import scales
from experiments.ablate.ablation import Ablation
from experiments.ablate.report import write_report
from synth.errors import SynthError
from tests.helpers import ONE_CONFIG as SPACE, experiments, one_line, sweep


def ablation_file(tmp_path, factor: str, extra: str = "", epochs: int = 2, name="abl", **top) -> str:
    (tmp_path / "space.toml").write_text(SPACE.format(epochs=epochs))
    head = {"datasets": '["U1"]', "encoders": '["xyz"]', "seeds": '"0"', "data_seeds": '"0-1"',
            "space": f'"{tmp_path / "space.toml"}"'}
    head.update(top)
    text = "\n".join(f"{k} = {v}" for k, v in head.items() if v is not None)
    p = tmp_path / f"{name}.toml"
    p.write_text(text + "\n[factor]\n" + factor + "\n" + extra + "\n")
    return str(p)


def build(path, tmp_path, **kw):
    return Ablation.build(path, db=tmp_path / "a.db", device="cpu", progress=False, **kw)


# ----------------------------------------------------------------------------- errors, before any work
@pytest.mark.parametrize("factor, extra, top, word", [
    ('name = "wingspan"\nlevels = [1, 2]', "", {}, "unknown factor 'wingspan'"),
    ('name = "hidden_dim"\nlevels = [16, 2.5]', "", {}, "hidden_dim = 2.5 is not valid"),
    ('name = "dropout"\nlevels = [0.1, 1.5]', "", {}, "dropout = 1.5 is not valid"),
    ('name = "lr"\nlevels = [0.01, 0.02]\nreference = 0.05', "", {}, "reference 0.05 is not one of its levels"),
    ('name = "min_radius"\nlevels = [0.01, 0.1]', "", {"encoders": '["grid", "xyz"]'}, "encoder xyz does not have it"),
    ('name = "min_wavelength_deg"\nlevels = [1.0, 2.0]', "", {}, "encoder xyz has no min_wavelength"),
    ('name = "min_wavelength_deg"\nlevels = [1.0, -2.0]', "", {"encoders": '["grid"]'}, "not a positive length"),
    ('name = "tilt"\nlevels = [0.0, nan]', "", {}, "tilt = nan is not valid"),
    ('name = "rotation"\nlevels = [0.0, inf]', "", {}, "tilt = inf is not valid"),
    ('name = "tilt"\nlevels = [0, 30, 30]', "", {}, "levels repeat a value"),
    # 0 and -0 are one level; levels that generate the same data change nothing
    ('name = "tilt"\nlevels = [0.0, -0.0]', "", {}, "levels repeat a value"),
    ('name = "tilt"\nlevels = [-180.0, 180.0]', "", {}, "generate the same data on U1"),
    ('name = "n_bands"\nlevels = [1, 5]', "", {}, "levels 1 and 5 generate the same data on U1"),
    ('name = "n_bands"\nlevels = [5, 7]', "", {"datasets": '["S1.1"]'}, "multiple of n_bands"),
    ('name = "encoder"\nlevels = ["xyz", "nosuch"]', "", {"encoders": None}, "nosuch"),
    ('name = "lr"\nlevels = [0.01, 0.02]', '[hold]\nmode = "sometimes"', {}, "mode = 'sometimes' is not valid"),
    ('name = "lr"\nlevels = [0.01, 0.02]', '[hold]\nvalues = { lr = 0.1 }', {}, "the factor itself"),
    ('name = "lr"\nlevels = [0.01, 0.02]', '[hold]\nvalues = { kernel_size = 2.0 }', {}, "none of xyz"),
    ('name = "lr"\nlevels = [0.01, 0.02]', '[hold]\nvalues = { min_wavelength_deg = 2.0 }', {}, "none of xyz"),
    ('name = "lr"\nlevels = [0.01, 0.02]', '[hold]\nvalues = { min_wavelength_deg = -2.0 }', {"encoders": '["grid"]'},
     "positive length"),
])
def test_bad_declarations_are_one_line(tmp_path, factor, extra, top, word):
    path = ablation_file(tmp_path, factor, extra, **top)
    with pytest.raises(SynthError, match=re.escape(word)) as e:
        Ablation.build(path, db=tmp_path / "a.db", device="cpu", progress=False).dry_run()
    assert "\n" not in str(e.value)
    assert not (tmp_path / "a.db").exists()


def test_levels_that_print_alike_are_separate_experiments(tmp_path):
    """Names formatted levels with :g, so 30.0 and 30.0000001 shared one experiment."""
    for factor, levels in (("tilt", (30.0, 30.0000001)), ("lr", (0.01, 0.0100000001))):
        abl = build(ablation_file(tmp_path, f'name = "{factor}"\nlevels = [{levels[0]!r}, {levels[1]!r}]'), tmp_path)
        assert abl.experiment(levels[0]) != abl.experiment(levels[1])
        assert abl.experiment(levels[0]).endswith(f"={levels[0]:g}")  # short where exact: old databases resume
        if factor == "tilt":
            assert abl.recipe("U1", levels[0]).name != abl.recipe("U1", levels[1]).name


def test_bad_declaration_on_the_command_line(tmp_path):
    path = ablation_file(tmp_path, 'name = "wingspan"\nlevels = [1, 2]')
    r = experiments("ablate", path, "--db", str(tmp_path / "a.db"), "--dry-run")
    assert one_line(r, "unknown factor 'wingspan'"), r.stderr
    assert not (tmp_path / "a.db").exists()


def test_held_experiment_must_exist_and_have_chosen(tmp_path):
    db = tmp_path / "a.db"
    (tmp_path / "sp.toml").write_text(SPACE.format(epochs=1))
    assert sweep("--space", str(tmp_path / "sp.toml"), "--datasets", "U1", "--encoders", "xyz", "--seeds", "0",
                 "--db", str(db)).returncode == 0
    missing = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.01, 0.02]', '[hold]\nexperiment = "nosuch-1"', name="m")
    r = experiments("ablate", missing, "--db", str(db), "--dry-run")
    assert one_line(r, "'nosuch-1' is not in"), r.stderr
    exp = sqlite3.connect(db).execute("SELECT DISTINCT experiment FROM runs").fetchone()[0]
    other = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.01, 0.02]', f'[hold]\nexperiment = "{exp}"',
                          datasets='["U2"]', name="o")
    r = experiments("ablate", other, "--db", str(db), "--dry-run")
    assert one_line(r, f"{exp} chose nothing for xyz on U2"), r.stderr
    # and where it chose, the held configuration is that experiment's, with the factor changed
    ok = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.005, 0.05]', f'[hold]\nexperiment = "{exp}"', name="k")
    abl = build(ok, tmp_path)
    from experiments.store.results import ResultsStore
    with ResultsStore(db, readonly=True) as store:
        chosen = abl.held_choices(store)
    c = abl.config("U1", "xyz", 0.05, chosen)
    assert c == {**chosen[("U1", "xyz")].config, "lr": 0.05}


# ----------------------------------------------------------------------------- running and reporting
def test_levels_are_separate_experiments_and_the_reference_differs_by_zero(tmp_path):
    path = ablation_file(tmp_path, 'name = "min_wavelength_deg"\nlevels = [2.0, 8.0, 32.0]\nreference = 8.0',
                         '[hold]\nvalues = { frequency_num = 4 }', encoders='["grid", "sphereM+"]')
    abl = build(path, tmp_path)
    dry = abl.dry_run()
    # the cost of the ablation is the cost of the same runs as a plain sweep: 3 levels x 2 encoders x 2 draws
    assert "total: 12 run(s) = 24 member-epochs (a plain sweep of the same 6 configuration(s) x 2 draw(s) x 1 " \
           "seed(s): 24 member-epochs)" in dry
    abl.run(echo=lambda s: None)
    rows = sqlite3.connect(tmp_path / "a.db").execute("SELECT experiment, encoder, config FROM runs").fetchall()
    assert len(rows) == 12
    for level in (2.0, 8.0, 32.0):
        mine = [(e, json.loads(c)) for x, e, c in rows if x == abl.experiment(level)]
        assert len(mine) == 4  # 2 encoders x 2 draws, nothing of another level
        for e, c in mine:
            assert scales.to_physical(e, "min_radius", c["min_radius"]) == pytest.approx(level)
    from experiments.ablate.report import _paired
    from experiments.store.results import ResultsStore
    with ResultsStore(tmp_path / "a.db", readonly=True) as store:
        cells = abl.cells(store)
    ref = cells[("U1", "grid", 8.0)]
    j = _paired(ref, ref)
    assert (j.delta, j.ci, j.verdict) == (0.0, (0.0, 0.0), "tie")  # the reference against itself: exactly 0
    assert _paired(cells[("U1", "grid", 2.0)], ref).delta == pytest.approx(
        cells[("U1", "grid", 2.0)].mean - ref.mean)  # paired on the same draws: the difference of means
    out = write_report(abl, tmp_path / "out", tmp_path / "fig")
    recs = (tmp_path / "out" / "ablation_abl.csv").read_text().splitlines()
    ref_rows = [r for r in recs if ",8," in r]
    assert len(ref_rows) == 2 and all("0 (reference)" in r and "reference" in r for r in ref_rows)
    assert any("min_radius = 0.02222" in r for r in recs)  # sphereM+ at 8°: 8/360 radians
    assert any("min_radius = 1.273" in r for r in recs)  # grid at 8°: 8/2π degrees
    assert {p.suffix for p in out} == {".md", ".csv", ".tex", ".png", ".pdf"}
    # resuming trains nothing
    again = Ablation.build(path, db=tmp_path / "a.db", device="cpu", progress=False, resume=True)
    lines = []
    assert again.run(echo=lines.append) == 0 and "nothing to do" in lines[-1]


def test_a_known_effect_is_detected_and_a_null_effect_is_a_tie(tmp_path):
    """A 1-unit bottleneck cannot separate 50 classes (a loss against 32 units); tilting the data by a
    quarter turn maps xyz codes by a signed permutation, under which the network's initial weights have
    the same law — no effect, a tie. Fixed seeds, 6 epochs; 3 draws x 2 seeds for the bottleneck, 6 x 4
    for the null (with 3 x 2 this null happens to fall outside its 95 % interval, as 1 in 20 nulls do)."""
    narrow = ablation_file(tmp_path, 'name = "hidden_dim"\nlevels = [32, 1]', epochs=6, data_seeds='"0-2"',
                           seeds='"0-1"', name="narrow")
    abl = build(narrow, tmp_path)
    abl.run(echo=lambda s: None)
    write_report(abl, tmp_path / "out")
    rows = list(csv.DictReader(open(tmp_path / "out" / "ablation_narrow.csv")))
    assert rows[1]["verdict"] == "loss" and float(rows[1]["detectable"].lstrip("±")) > 0, rows
    null = ablation_file(tmp_path, 'name = "tilt"\nlevels = [0.0, 90.0]', epochs=6, data_seeds='"0-5"',
                         seeds='"0-3"', name="null")
    abl = build(null, tmp_path)
    abl.run(echo=lambda s: None)
    write_report(abl, tmp_path / "out", tmp_path / "fig")
    rows = list(csv.DictReader(open(tmp_path / "out" / "ablation_null.csv")))
    assert rows[1]["verdict"] == "tie", rows
    # the tilted level is its own dataset; band tables in both frames
    bands = (tmp_path / "out" / "ablation_null_bands.csv").read_text()
    assert "before tilt" in bands and "encoder's" in bands
    names = {r[0] for r in sqlite3.connect(tmp_path / "a.db").execute("SELECT dataset FROM runs")}
    assert {"U1+tilt_0", "U1+tilt_90"} <= names


def test_data_levels_share_the_base_stream():
    from synth import datasets as D
    from experiments.ablate.ablation import Factor, derived_recipe
    f = Factor("kappa_max", "data", (16.0, 64.0), 16.0)
    a, b = (D.generate(derived_recipe(D.get_recipe("U1"), f, k), 0) for k in f.levels)
    assert (a["centers_lonlat"] == b["centers_lonlat"]).all()  # common random numbers: same centres
    assert (a["kappa"] < b["kappa"]).all()
    base = D.generate("U1", 0)
    assert (a["train_lonlat"] == base["train_lonlat"]).all()  # kappa_max 16 is U1 itself


def test_python_api_in_a_few_lines(tmp_path):
    path = ablation_file(tmp_path, 'name = "encoder"\nlevels = ["xyz", "wrap_ffn"]', encoders=None)
    abl = Ablation.build(path, db=tmp_path / "a.db", device="cpu", progress=False)
    assert abl.encoders == ["xyz", "wrap_ffn"]
    abl.run(echo=lambda s: None)
    paths = write_report(abl, tmp_path / "out")
    md = (tmp_path / "out" / "ablation_abl.md").read_text()
    assert "| U1 | wrap_ffn |" in md and "| U1 | xyz |" in md
    assert len(paths) == 5


def test_report_before_running_is_one_line(tmp_path):
    path = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.01, 0.02]')
    r = experiments("ablate", path, "--db", str(tmp_path / "a.db"), "--report-only")
    assert one_line(r, "does not exist"), r.stderr
    with pytest.raises(SynthError):
        write_report(build(path, tmp_path), tmp_path / "out")


def test_retune_searches_every_level_with_the_same_budget(tmp_path):
    (tmp_path / "search.toml").write_text(SPACE.format(epochs=2).replace("hidden_dim = [32]", "hidden_dim = [16, 32]")
                                          + '[search]\nsampler = "grid"\npruner = "asha"\nfinalists = 1\n')
    path = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.005, 0.05]', '[hold]\nmode = "retune"',
                         space=f'"{tmp_path / "search.toml"}"', data_seeds='"0-1"')
    abl = build(path, tmp_path)
    dry = abl.dry_run()
    assert "the same budget at every level" in dry and dry.count("xyz: 2 trial(s)") == 2
    abl.run(echo=lambda s: None)
    con = sqlite3.connect(tmp_path / "a.db")
    for level in (0.005, 0.05):
        exp = abl.experiment(level)
        lrs = {json.loads(c)["lr"] for (c,) in con.execute("SELECT config FROM runs WHERE experiment = ?", (exp,))}
        assert lrs == {level}  # the factor is fixed at its level; the search ran over hidden_dim
        n = con.execute("SELECT COUNT(*) FROM runs WHERE experiment = ? AND stage = 'search'", (exp,)).fetchone()[0]
        assert n == 2
        draws = {d for (d,) in con.execute("SELECT DISTINCT data_seed FROM runs WHERE experiment = ? AND stage = "
                                           "'final'", (exp,))}
        assert draws == {0, 1}  # the chosen configuration on every draw
    write_report(abl, tmp_path / "out")
    assert "| U1 | xyz | 0.05 |" in (tmp_path / "out" / "ablation_abl.md").read_text()


@pytest.mark.parametrize("command", ["ablate", "sweep"])
def test_a_file_that_is_not_utf8_is_one_line(tmp_path, command):
    """``printf '\\xff' > b.toml`` ended in UnicodeDecodeError (ablation file and space loader)."""
    bad = tmp_path / "b.toml"
    bad.write_bytes(b"\xff[factor]\n")
    args = [str(bad), "--dry-run"] if command == "ablate" else ["--space", str(bad), "--dry-run"]
    r = experiments(command, *args)
    assert one_line(r, "not UTF-8"), r.stderr


def test_the_ablation_report_validates_what_it_reads(tmp_path):
    """A hand-edited test_top1 = 200 was shown as a win above the Bayes ceiling, damaged bands
    ended in tracebacks, and a level whose runs all diverged showed "not run"."""
    path = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.01, 0.02]', data_seeds='"0"')
    db = tmp_path / "a.db"
    run = ["ablate", path, "--db", db, "--out", tmp_path / "o", "--no-figures", "--no-progress"]
    assert experiments(*run).returncode == 0
    report = run + ["--report-only"]
    pristine = sqlite3.connect(db).execute("SELECT id, test_top1, bands FROM runs ORDER BY id").fetchall()

    def edit(sql, *args):
        c = sqlite3.connect(db)
        c.execute("PRAGMA ignore_check_constraints = ON")  # a hand edit, or a file written by another tool
        for i, t, b in pristine:
            c.execute("UPDATE runs SET test_top1 = ?, bands = ?, diverged = 0, val_top1 = 50 WHERE id = ?", (t, b, i))
        c.execute(sql, args)
        c.commit()
        c.close()

    first = pristine[0][0]
    bands = json.loads(pristine[0][2])
    bands["equal-area"]["top1"] = bands["equal-area"]["top1"][:-1]
    for sql, args, word in [("UPDATE runs SET test_top1 = 200 WHERE id = ?", (first,), "outside [0, 100]"),
                            ("UPDATE runs SET bands = '{}' WHERE id = ?", (first,), "lacks the equal-area bands"),
                            ("UPDATE runs SET bands = ? WHERE id = ?", (json.dumps(bands), first), "band value(s)")]:
        edit(sql, *args)
        assert one_line(experiments(*report), word)
    edit("UPDATE runs SET diverged = 1, val_top1 = NULL, test_top1 = NULL WHERE experiment LIKE '%lr=0.02'")
    r = experiments(*report)
    assert r.returncode == 0, r.stderr
    row = next(line for line in (tmp_path / "o" / "ablation_abl.md").read_text().splitlines() if "| 0.02 |" in line)
    assert "| diverged |" in row and "not run" not in row


def test_an_encoder_alias_is_a_level_as_on_the_command_line(tmp_path):
    """'sh' was refused as an encoder level although --encoders sh is accepted."""
    abl = build(ablation_file(tmp_path, 'name = "encoder"\nlevels = ["xyz", "sh"]\nreference = "sh"', encoders=None),
                tmp_path)
    assert abl.factor.levels == ("xyz", "spherical_harmonics") and abl.factor.reference == "spherical_harmonics"


@pytest.mark.parametrize("top, word", [({"encoders": "[1]"}, "encoders = [1]"), ({"datasets": "3"}, "datasets = 3"),
                                       ({"space": "3"}, "space = 3")])
def test_top_level_values_of_the_wrong_kind_are_one_line(tmp_path, top, word):
    """Found by the fuzz pass (tests/fuzz_inputs.py): encoders = [1] ended in a TypeError."""
    path = ablation_file(tmp_path, 'name = "lr"\nlevels = [0.01, 0.02]', **top)
    r = experiments("ablate", path, "--dry-run", "--db", tmp_path / "a.db")
    assert one_line(r, word), r.stderr
