"""A shipped reference of the baselines, and your encoder judged against it while
training only yours."""

import csv
import json
from pathlib import Path

import pytest

from helpers import experiments
from synth.errors import SynthError

SPACE = """
description = "reference test"
[settings]
epochs = 4
patience = 100
batch_size = 1024
[grid]
lr = [0.01, 0.02]
hidden_dim = [32]
num_filts = [16]
"""

COPY = """
import dataclasses
from experiments.models.encoders import register, spec
register(dataclasses.replace(spec("xyz"), name="xyz_copy", aliases=(), description="a copy of xyz"))
"""

PROTOCOL = ["--datasets", "U1,S2.3", "--seeds", "0", "--data-seeds", "0-2"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    (tmp / "space.toml").write_text(SPACE)
    (tmp / "copy.py").write_text(COPY)
    r = experiments("sweep", "--space", str(tmp / "space.toml"), "--encoders", "xyz", *PROTOCOL, "--db",
                    str(tmp / "base.sqlite"), "--no-progress")
    assert r.returncode == 0, r.stderr
    r = experiments("reference", "--db", str(tmp / "base.sqlite"), "--name", "tiny", "--out", str(tmp / "tiny.json"),
                    "--machine", "the test machine")
    assert r.returncode == 0, r.stderr
    return tmp


def test_the_reference_file_holds_the_chosen_rows_and_where_they_came_from(reference):
    ref = json.loads((reference / "tiny.json").read_text())
    assert ref["name"] == "tiny" and ref["machine"] == "the test machine" and ref["encoders"] == ["xyz"]
    assert sorted(ref["datasets"]) == ["S2.3", "U1"] and ref["policy"]["sampler"] == "grid"
    assert len(ref["rows"]) == 2 * 3  # datasets x draws x seeds, the chosen configuration only
    for d in ("U1", "S2.3"):
        configs = {json.dumps(r["config"], sort_keys=True) for r in ref["rows"] if r["dataset"] == d}
        assert len(configs) == 1
    row = ref["rows"][0]
    assert set(row["bands"]) >= {"equal-angle", "equal-area"}
    assert len(row["bands"]["equal-angle"]["top1"]) == len(row["bands"]["equal-angle"]["mrr"]) == 18
    assert ref["date"] and ref["torch"] and ref["code_versions"]
    import subprocess

    # the commit that ran the sweep (this checkout's, -dirty with uncommitted changes), also in the tables
    head = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert ref["commits"] == [head] and len(head) >= 12


def test_a_copy_of_a_builtin_trained_here_ties_with_its_reference_column(reference):
    tmp = reference
    r = experiments("sweep", "--plugin", str(tmp / "copy.py"), "--encoders", "xyz_copy", "--reference",
                    str(tmp / "tiny.json"), "--space", str(tmp / "space.toml"), "--db", str(tmp / "mine.sqlite"),
                    "--no-progress")  # datasets, draws and seeds from the reference
    assert r.returncode == 0, r.stderr
    r = experiments("report", "--plugin", str(tmp / "copy.py"), "--db", str(tmp / "mine.sqlite"), "--reference",
                    str(tmp / "tiny.json"), "--out", str(tmp / "out"), "--no-figures")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp / "out" / "table8.csv").open()))
    assert [row["dataset"] for row in rows] == ["U1", "S2.3"]
    for row in rows:
        assert row["verdict"] == "tie" and abs(float(row["delta_top1"])) < 1.0, row
    md = (tmp / "out" / "table8.md").read_text()
    assert "Trained here: xyz_copy" in md and "From the reference tiny" in md and "the test machine" in md
    assert f"code {json.loads((tmp / 'tiny.json').read_text())['commits'][0]})" in md
    assert "tie on 2" in (tmp / "out" / "summary.md").read_text()


@pytest.mark.parametrize("case", ["baseline-again", "no-encoders", "other-settings", "other-space", "unknown",
                                  "report-clash"])
def test_leaving_the_reference_protocol_is_one_line(reference, case, tmp_path):
    tmp = reference
    ref = ["--reference", str(tmp / "tiny.json")]
    args, match = {
        "baseline-again": (["sweep", "--encoders", "xyz", "--space", str(tmp / "space.toml"), *ref],
                           "come(s) from the reference"),
        "no-encoders": (["sweep", "--space", str(tmp / "space.toml"), *ref], "name your own encoder(s)"),
        "other-settings": (["sweep", "--plugin", str(tmp / "copy.py"), "--encoders", "xyz_copy", "--space",
                            str(tmp / "space.toml"), "--epochs", "3", *ref], "other settings than the reference"),
        "other-space": (["sweep", "--plugin", str(tmp / "copy.py"), "--encoders", "xyz_copy", "--space", "smoke",
                         *ref], "space smoke is not the reference's"),
        "unknown": (["sweep", "--encoders", "xyz", "--reference", "nope"], "unknown reference 'nope'"),
        "report-clash": (["report", "--db", str(tmp / "base.sqlite"), *ref, "--no-figures", "--out", str(tmp_path)],
                         "with --reference, train only your own"),
    }[case]
    if args[0] == "sweep":
        args = args + ["--db", str(tmp_path / "x.sqlite"), "--dry-run"]
    r = experiments(*args)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and match in r.stderr, \
        r.stderr


TRANSFER_SPACE = SPACE.replace("lr = [0.01, 0.02]", "lr = [0.005, 0.01, 0.02, 0.05]") + """
[search]
sampler = "tpe"
trials = 4
pruner = "none"
finalists = 1
"""


def test_against_a_transfer_reference_your_encoder_is_searched_cold_on_its_sources_first(tmp_path):
    """A reference whose search transferred (as fair_full) records its sources; `sweep --reference`
    runs them for your encoder (cold, on the source datasets' first draw, under the sources' experiment
    name), then the transfer search with the reference's policy (no search flags given), and `report
    --reference` reads that one of the two experiments. A copy of xyz ties with xyz everywhere."""
    (tmp_path / "s.toml").write_text(TRANSFER_SPACE)
    (tmp_path / "copy.py").write_text(COPY)
    base, protocol = str(tmp_path / "base.sqlite"), ["--seeds", "0", "--no-progress", "--space", str(tmp_path / "s.toml")]
    r = experiments("sweep", "--encoders", "xyz", "--datasets", "U1,S2.3", "--data-seeds", "0", "--db", base, *protocol)
    assert r.returncode == 0, r.stderr
    cold = r.stdout.split("experiment ")[1].split()[0]
    r = experiments("sweep", "--encoders", "xyz", "--datasets", "U1,S2.3,S1.1", "--data-seeds", "0-1", "--db", base,
                    "--trials", "2", "--transfer-from", cold, "--transfer-datasets", "U1,S2.3", "--transfer-top", "1",
                    *protocol)
    assert r.returncode == 0, r.stderr
    warm = r.stdout.split("experiment ")[1].split()[0]
    r = experiments("reference", "--db", base, "--experiment", warm, "--name", "tt", "--out", str(tmp_path / "tt.json"))
    assert r.returncode == 0, r.stderr
    ref = json.loads((tmp_path / "tt.json").read_text())
    assert ref["sources"]["experiment"] == cold and ref["sources"]["policy"]["trials"] == 4
    assert ref["policy"]["transfer_from"] == cold and ref["policy"]["trials"] == 2

    mine = str(tmp_path / "mine.sqlite")
    args = ("sweep", "--plugin", str(tmp_path / "copy.py"), "--encoders", "xyz_copy", "--reference",
            str(tmp_path / "tt.json"), "--db", mine, "--no-progress", "--space", str(tmp_path / "s.toml"))
    r = experiments(*args, "--dry-run")
    assert r.returncode == 0 and "stage 1 of 2: the cold source searches" in r.stdout, r.stderr
    r = experiments(*args)
    assert r.returncode == 0, r.stderr
    import sqlite3

    con = sqlite3.connect(mine)
    cells = con.execute("SELECT experiment, dataset, group_concat(DISTINCT data_seed) FROM runs GROUP BY 1, 2 "
                        "ORDER BY 1, 2").fetchall()
    assert sorted(cells) == sorted([(cold, "S2.3", "0"), (cold, "U1", "0"), (warm, "S1.1", "0,1"),
                                    (warm, "S2.3", "0,1"), (warm, "U1", "0,1")])
    assert experiments(*args, "--resume").returncode == 0  # resumed: nothing new
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == sum(
        1 for _ in con.execute("SELECT DISTINCT experiment, stage, dataset, data_seed, config_hash, trial FROM runs"))
    r = experiments("report", "--plugin", str(tmp_path / "copy.py"), "--db", mine, "--reference",
                    str(tmp_path / "tt.json"), "--out", str(tmp_path / "out"), "--no-figures")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "table8.csv").open()))
    assert [row["dataset"] for row in rows] == ["U1", "S1.1", "S2.3"]  # paper order
    # both sides trained here, on one machine, by the same two stages: the copy's trials are xyz's
    assert all(row["verdict"] == "tie" and float(row["delta_top1"]) == 0.0 for row in rows), rows


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).parent.parent / "experiments" / "references")
                                        .glob("*.json")))
def test_every_shipped_reference_is_a_whole_table8_with_its_provenance(name):
    """A shipped reference covers the 20 paper datasets x the 8 Table-8 encoders, every cell on the same
    draws and seeds with one chosen configuration, each dataset's recipe the registry's own (so a new
    encoder's draws pair with it), and says where it came from. A reference missing a draw or a cell
    would silently give another table."""
    from experiments.models.encoders import parse_names
    from experiments.report.reference import load
    from synth.datasets import PAPER_DATASETS, get_recipe

    ref = load(name)
    assert ref["name"] == name and ref["machine"] and ref["date"] and ref["torch"] and ref["code_versions"]
    assert sorted(ref["datasets"]) == sorted(PAPER_DATASETS) and sorted(ref["encoders"]) == sorted(parse_names("table8"))
    cells = {}
    for r in ref["rows"]:
        cells.setdefault((r["dataset"], r["encoder"]), []).append(r)
    assert len(cells) == 20 * 8
    draws = {tuple(sorted((r["data_seed"], r["train_seed"]) for r in rows)) for rows in cells.values()}
    assert len(draws) == 1 and len(set(next(iter(draws)))) == len(next(iter(draws))) >= 5
    assert all(len({json.dumps(r["config"], sort_keys=True) for r in rows}) == 1 for rows in cells.values())
    assert all(0 < r["test_top1"] <= 100 and 0 < r["val_top1"] <= 100 for r in ref["rows"])
    from experiments.store.results import canonical

    assert all(canonical(d["recipe"]) == canonical(get_recipe(n).to_dict()) for n, d in ref["datasets"].items())
    if ref["policy"].get("transfer_from"):  # a transfer reference carries its cold sources' protocol
        assert ref["sources"]["experiment"] == ref["policy"]["transfer_from"] and ref["sources"]["policy"]["trials"]


def test_building_a_reference_never_replaces_a_shipped_one_and_names_are_checked(reference, tmp_path):
    """Without --out, `reference` wrote into the package's shipped references: --name fair_quick replaced
    the 800-row fair_quick.json with an 8-row one, exit 0. Now it writes NAME.json in the current folder,
    an existing file is replaced only with --force (which says what it replaced), and a name that is not a
    plain file name is one line."""
    from experiments.report.reference import REFERENCES_DIR

    shipped = (REFERENCES_DIR / "fair_quick.json").read_bytes()
    db = str(reference / "base.sqlite")
    r = experiments("reference", "--db", db, "--name", "fair_quick", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (REFERENCES_DIR / "fair_quick.json").read_bytes() == shipped
    assert json.loads((tmp_path / "fair_quick.json").read_text())["name"] == "fair_quick"
    again = experiments("reference", "--db", db, "--name", "fair_quick", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("error:") and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    forced = experiments("reference", "--db", db, "--name", "fair_quick", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and "replaced" in forced.stdout
    for bad in ("../../../x", "", "a/b", ".hidden"):
        r = experiments("reference", "--db", db, "--name", bad, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith("error: --name"), (bad, r.stderr)


def _damaged(tmp_path, edit):
    from experiments.report.reference import load

    ref = load("fair_quick")
    edit(ref)
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(ref))
    return path


@pytest.mark.parametrize("edit,key", [
    (lambda r: r["rows"][3].update(test_top1=float("nan")), "test_top1"),
    (lambda r: r["rows"][3].update(test_top1=200.0), "test_top1"),
    (lambda r: r["rows"][3].update(val_mrr=-0.5), "val_mrr"),
    (lambda r: r.update(encoders=[]), "encoders"),
    (lambda r: r.update(encoders="grid"), "encoders"),
    (lambda r: r["rows"][5].pop("bands"), "bands"),
    (lambda r: r["settings"].update(lr=99.0), "settings_hash"),
    (lambda r: r.update(experiment=5), "experiment"),
    (lambda r: r["rows"][7].update(encoder="nope"), "encoder"),
    (lambda r: r["rows"][7].update(data_seed="0"), "data_seed"),
])
def test_a_damaged_reference_is_refused_in_one_line_naming_the_key(tmp_path, edit, key):
    """A NaN score silently dropped that baseline from "best baseline"; 200 gave a verdict "loss −193";
    "encoders": [] gave a Table 8 without baselines. Each is one line naming the key (and the row)."""
    from experiments.report.reference import load

    path = _damaged(tmp_path, edit)
    with pytest.raises(SynthError) as e:
        load(path)
    msg = str(e.value)
    assert key in msg and "\n" not in msg and str(path) in msg, msg
    r = experiments("report", "--reference", str(path), "--out", tmp_path / "out", "--no-figures")
    assert r.returncode == 2 and r.stderr.startswith("error:") and key in r.stderr


def test_sweep_with_a_reference_keeps_what_the_user_typed():
    """--reference filled in every flag that *equalled* the CLI's default, so --space quick silently planned
    fair_quick and --data-seeds 0 trained five draws; --reference '' ran a plain sweep. Now a flag given is
    kept (and refused in one line where it leaves the protocol), a flag not given is the reference's."""
    copy = ["--plugin", "benchmarks/aa_copy.py", "--encoders", "sphereM+copy", "--reference", "fair_quick", "--dry-run"]
    root = Path(__file__).parent.parent
    one = experiments("sweep", *copy, "--data-seeds", "0", cwd=root)
    assert one.returncode == 0, one.stderr
    assert "(draw 0)" in one.stdout and "other draws" not in one.stdout  # the one draw asked for
    full = experiments("sweep", *copy, cwd=root)
    assert full.returncode == 0 and "draws 1-4" in full.stdout  # not given: the reference's draws 0-4
    quick = experiments("sweep", *copy, "--space", "quick", cwd=root)
    assert quick.returncode == 2 and quick.stderr.startswith("error: --reference fair_quick: space quick")
    for bad in (["--data-seeds", "7"], ["--datasets", "U1,X9"]):
        r = experiments("sweep", *copy, *bad, cwd=root)
        assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    empty = experiments("sweep", "--reference", "", "--encoders", "xyz", "--dry-run", cwd=root)
    assert empty.returncode == 2 and empty.stderr.startswith("error: --reference")


def test_a_report_whose_draws_the_reference_lacks_advises_the_sweep_that_pairs(reference, tmp_path):
    """Your encoder trained by hand on a draw the reference does not hold: the report used to build a
    table without baselines and advise sweeping them, which --reference forbids."""
    tmp = reference
    r = experiments("sweep", "--plugin", str(tmp / "copy.py"), "--encoders", "xyz_copy", "--space",
                    str(tmp / "space.toml"), "--datasets", "U1", "--seeds", "0", "--data-seeds", "7", "--db",
                    str(tmp_path / "x.sqlite"), "--no-progress")
    assert r.returncode == 0, r.stderr
    r = experiments("report", "--plugin", str(tmp / "copy.py"), "--db", str(tmp_path / "x.sqlite"), "--reference",
                    str(tmp / "tiny.json"), "--out", str(tmp_path / "out"), "--no-figures")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "U1 draw 7" in r.stderr and "sweep your encoder with --reference tiny" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
