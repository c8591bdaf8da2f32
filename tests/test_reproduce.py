"""Smoke run of the main job (`make reproduce`) with the seconds-long smoke preset."""

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).parent.parent


def test_make_reproduce_smoke(tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "run-reproduce", f"PY={sys.executable}",
                        "PRESET=smoke", "DATASETS=U1,S4.3", "SEEDS=0-1", "DATA_SEEDS=0-1", "DEVICE=cpu",
                        f"DATA={tmp_path / 'data'}", f"RESULTS={tmp_path / 'results'}", f"FIGURES={tmp_path / 'figs'}"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert len(list((tmp_path / "data").glob("*.npz"))) == 40  # 20 datasets x 2 draws
    table = (tmp_path / "results" / "table8.md").read_text()
    assert "| U1 |" in table and "| S4.3 |" in table and "sphereM+" in table and "| verdict |" in table
    draws = (tmp_path / "results" / "table8_draws.md").read_text()
    assert "| U1 | 0 |" in draws and "| U1 | 1 |" in draws
    figs = {p.name for p in (tmp_path / "figs").glob("*.png")}
    assert {"fig13_uniform_platecarree.png", "polar_bands_equal-angle.png", "distortion.png", "delta_map.png",
            "predicted_maps.png"} <= figs
    assert "done in" in r.stdout


def test_make_reproduce_checks_its_variables_before_any_work(tmp_path):
    """PRESET=nonexistent (or a bad DATA_SEEDS, DATASETS) failed only after ~40 s of data and figures."""
    import time

    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    for var, word in (("PRESET=nonexistent", "nonexistent"), ("DATA_SEEDS=4-0", "4-0"), ("DATASETS=U9", "U9")):
        t = time.time()
        r = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "run-reproduce", f"PY={sys.executable}",
                            var, "DEVICE=cpu", f"DATA={tmp_path / 'data'}", f"RESULTS={tmp_path / 'results'}",
                            f"FIGURES={tmp_path / 'figs'}"], capture_output=True, text=True, env=env, timeout=300)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode != 0 and len(errors) == 1 and word in errors[0], r.stderr
        assert not (tmp_path / "data").exists() and not (tmp_path / "figs").exists()
        assert time.time() - t < 60
