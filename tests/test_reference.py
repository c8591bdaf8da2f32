"""Issue 30 (3, 4): a shipped reference of the baselines, and your encoder judged against it while
training only yours."""

import csv
import json

import pytest

from helpers import experiments

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
from experiments.encoders import register, spec
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
    assert "tie on 2" in (tmp / "out" / "summary.md").read_text()


@pytest.mark.parametrize("case", ["baseline-again", "no-encoders", "other-settings", "unknown", "report-clash"])
def test_leaving_the_reference_protocol_is_one_line(reference, case, tmp_path):
    tmp = reference
    ref = ["--reference", str(tmp / "tiny.json")]
    args, match = {
        "baseline-again": (["sweep", "--encoders", "xyz", "--space", str(tmp / "space.toml"), *ref],
                           "come(s) from the reference"),
        "no-encoders": (["sweep", "--space", str(tmp / "space.toml"), *ref], "name your own encoder(s)"),
        "other-settings": (["sweep", "--plugin", str(tmp / "copy.py"), "--encoders", "xyz_copy", "--space", "smoke",
                            *ref], "other settings than the reference"),
        "unknown": (["sweep", "--encoders", "xyz", "--reference", "nope"], "unknown reference 'nope'"),
        "report-clash": (["report", "--db", str(tmp / "base.sqlite"), *ref, "--no-figures", "--out", str(tmp_path)],
                         "with --reference, train only your own"),
    }[case]
    if args[0] == "sweep":
        args = args + ["--db", str(tmp_path / "x.sqlite"), "--dry-run"]
    r = experiments(*args)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and match in r.stderr, \
        r.stderr
