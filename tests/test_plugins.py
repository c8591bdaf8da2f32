"""Your own encoder (experiments.encoders.register / --plugin): a toy plugin through encoders --params,
a sweep (inline and in worker processes), a report and an ablation; bad plugins are one line."""

from pathlib import Path

from tests.helpers import ONE_CONFIG, experiments, one_line, sweep

PLUGIN = str(Path(__file__).resolve().parents[1] / "docs" / "examples" / "my_encoder.py")
SPACE = ONE_CONFIG.format(epochs=2) + """
[encoders.ring]
frequency_num = [3]
min_wavelength_deg = [4.0, 16.0]
"""


def test_plugin_lists_sweeps_and_reports(tmp_path):
    r = experiments("encoders", "--params", "--plugin", PLUGIN)
    assert r.returncode == 0 and "ring" in r.stdout and "min_radius" in r.stdout
    (tmp_path / "s.toml").write_text(SPACE)
    db = tmp_path / "r.db"
    r = sweep("--plugin", PLUGIN, "--space", str(tmp_path / "s.toml"), "--datasets", "U1", "--encoders", "ring,xyz",
              "--seeds", "0", "--db", str(db))
    assert r.returncode == 0, r.stderr
    # in worker processes too (they load the plugin from SPHERE_SYNTH_PLUGINS)
    r = sweep("--plugin", PLUGIN, "--space", str(tmp_path / "s.toml"), "--datasets", "U1", "--encoders", "ring",
              "--seeds", "1", "--db", str(db), "--executor", "local", "--workers", "1")
    assert r.returncode == 0, r.stderr
    r = experiments("report", "--plugin", PLUGIN, "--db", str(db), "--encoders", "xyz,ring", "--datasets", "U1",
                    "--out", str(tmp_path / "out"), "--no-figures")
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "out" / "table8.md").read_text()
    assert "ring" in table
    # its scale was given in degrees and converted by the plugin's declared law (360° per radian unit)
    import sqlite3
    radii = {round(float(x[0]), 6) for x in sqlite3.connect(db).execute(
        "SELECT json_extract(config, '$.min_radius') FROM runs WHERE encoder = 'ring'")}
    assert radii == {round(4 / 360, 6), round(16 / 360, 6)}


def test_plugin_in_an_ablation(tmp_path):
    (tmp_path / "a.toml").write_text('datasets = ["U1"]\nencoders = ["ring"]\nspace = "smoke"\n'
                                     '[factor]\nname = "min_wavelength_deg"\nlevels = [4.0, 16.0]\n')
    r = experiments("ablate", str(tmp_path / "a.toml"), "--plugin", PLUGIN, "--db", str(tmp_path / "a.db"),
                    "--out", str(tmp_path / "o"), "--no-figures", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "| U1 | ring | 16 | min_radius = 0.04444 |" in (tmp_path / "o" / "ablation_a.md").read_text()


def test_bad_plugins_are_one_line(tmp_path):
    r = experiments("encoders", "--plugin", str(tmp_path / "nope.py"))
    assert one_line(r, "no such file"), r.stderr
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert one_line(experiments("encoders", "--plugin", str(tmp_path / "empty.py")), "registered no encoder")
    (tmp_path / "shadow.py").write_text(Path(PLUGIN).read_text().replace('name="ring"', 'name="grid"'))
    assert one_line(experiments("encoders", "--plugin", str(tmp_path / "shadow.py")), "'grid' shadows a built-in")
    (tmp_path / "alias.py").write_text(Path(PLUGIN).read_text().replace('aliases=()', 'aliases=("sphereM+",)'))
    assert one_line(experiments("encoders", "--plugin", str(tmp_path / "alias.py")), "shadows a built-in")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    assert one_line(experiments("encoders", "--plugin", str(tmp_path / "broken.py")), "RuntimeError: boom")
