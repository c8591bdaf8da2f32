"""Your own encoder (experiments.models.encoders.register / --plugin): a toy plugin through encoders --params,
a sweep (inline and in worker processes), a report and an ablation; bad plugins are one line."""

from pathlib import Path

import pytest

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


def test_a_plugin_that_exits_on_import_is_one_line(tmp_path):
    """Sys.exit(0) in a plugin made sweep exit 0 having done nothing."""
    bad = tmp_path / "quits.py"
    bad.write_text("import sys\nsys.exit(0)\n")
    r = sweep("--plugin", str(bad), "--space", "smoke", "--datasets", "U1", "--encoders", "xyz", "--seeds", "0",
              "--db", str(tmp_path / "r.db"))
    assert one_line(r, "called exit(0)") and str(bad) in r.stderr, r.stderr
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("edit, word", [
    (('name="ring"', 'name="a,b"'), "encoder name 'a,b' is not valid"),
    (('name="ring"', 'name=""'), "encoder name '' is not valid"),
    (('name="ring"', 'name="table8"'), "encoder name 'table8' is not valid"),
    (('aliases=()', 'aliases=("all",)'), "encoder name 'all' is not valid"),
    (('Param("frequency_num", int, 4, Interval(1, 32)', 'Param("frequency_num", int, 64, Interval(1, 32)'),
     "(its own default)"),
    (('Param("frequency_num", int, 4,', 'Param("lr", int, 4,'), "'lr' is the optimiser's"),
    (('Param("frequency_num", int, 4,', 'Param("hidden_dim", int, 4,'), "'hidden_dim' is the optimiser's"),
    (('Param("frequency_num", int, 4,', 'Param("seed", int, 4,'), "'seed' is the optimiser's"),
])
def test_plugin_declarations_are_checked_when_it_registers(tmp_path, edit, word):
    """Such names and parameters were accepted, then silently dropped or merged."""
    text = Path(PLUGIN).read_text()
    assert edit[0] in text
    p = tmp_path / "bad.py"
    p.write_text(text.replace(edit[0], edit[1]))
    r = experiments("encoders", "--plugin", str(p))
    assert one_line(r, word), r.stderr


@pytest.mark.parametrize("edit, word", [
    (("        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)",
      "        return None"), "features() returned NoneType"),
    (("        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)",
      "        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1).numpy()"),
     "features() returned ndarray"),
    (("        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)",
      "        return lat_terms"), "returned shape (1, 3, 6), expected (1 or 1, 3, 8)"),
    (("        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)",
      "        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)[0]"), "returned shape (3, 8)"),
    (("        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)",
      "        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1) / 0 * 0"), "NaN"),
    (("        self.out_dim = 2 * self.K + 2", "        self.out_dim = 2 * self.K + 3"), "expected (1 or 1, 3, 9)"),
    (("        self.out_dim = 2 * self.K + 2", "        self.out_dim = 8.0"), "out_dim must be a positive integer"),
    (("        super().__init__(M, batched)", "        raise ValueError('no')"), "constructor raised ValueError: no"),
    (("make=lambda M, batched, rng, hp: Ring(", "make=lambda M, batched, rng, hp: None and Ring("),
     "must return an experiments.models.encodings.PositionEncoder"),
])
def test_a_plugin_that_misbehaves_is_named_before_any_training(tmp_path, edit, word):
    """Each of these ended in a torch traceback during training."""
    text = Path(PLUGIN).read_text()
    assert edit[0] in text
    p = tmp_path / "bad.py"
    p.write_text(text.replace(edit[0], edit[1]))
    (tmp_path / "s.toml").write_text(SPACE)
    r = sweep("--plugin", str(p), "--space", str(tmp_path / "s.toml"), "--datasets", "U1", "--encoders", "ring",
              "--seeds", "0", "--db", str(tmp_path / "r.db"))
    assert one_line(r, word), r.stderr
    assert "plugin encoder ring" in r.stderr and not (tmp_path / "r.db").exists()
