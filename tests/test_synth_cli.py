import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "synth", *args], capture_output=True, text=True, cwd=cwd)


def test_generate_verify_bayes(tmp_path):
    r = run("generate", "--dataset", "U3,S1.1", "--seed", "0-1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("*.npz"))) == 4
    assert run("verify", str(tmp_path)).returncode == 0
    out = run("bayes", str(tmp_path / "U3_seed0.npz"))
    assert out.returncode == 0
    assert 50 < float(out.stdout.strip().splitlines()[-1]) <= 100


def test_user_recipe_file(tmp_path):
    (tmp_path / "r.toml").write_text('[recipe]\nname = "mine"\nn_classes = 6\nsamples_per_class = 20\nkappa_max = 8\n')
    assert run("generate", "--recipe", str(tmp_path / "r.toml"), "--out", str(tmp_path)).returncode == 0
    assert (tmp_path / "mine_seed0.npz").exists()


def _corrupt(folder):
    run("generate", "--dataset", "U1", "--out", str(folder))
    p = folder / "U1_seed0.npz"
    raw = bytearray(p.read_bytes())
    raw[-100] ^= 0xFF
    p.write_bytes(bytes(raw))
    return p


@pytest.mark.parametrize("case", ["unknown-describe", "unknown-generate", "no-which", "bad-seed", "missing-file",
                                  "corrupt-bayes", "corrupt-verify", "no-manifest", "bad-recipe", "no-command",
                                  "plot-nothing"])
def test_every_error_path_prints_one_line(case, tmp_path):
    args = {
        "unknown-describe": ["describe", "U7"],
        "unknown-generate": ["generate", "--dataset", "U1,Q2", "--out", str(tmp_path)],
        "no-which": ["generate", "--out", str(tmp_path)],
        "bad-seed": ["generate", "--all", "--seed", "x-y", "--out", str(tmp_path)],
        "missing-file": ["bayes", str(tmp_path / "none.npz")],
        "corrupt-bayes": None,
        "corrupt-verify": None,
        "no-manifest": ["verify", str(tmp_path)],
        "bad-recipe": None,
        "no-command": [],
        "plot-nothing": ["plot", "--out", str(tmp_path)],
    }[case]
    if case.startswith("corrupt"):
        p = _corrupt(tmp_path)
        args = ["bayes", str(p)] if case == "corrupt-bayes" else ["verify", str(tmp_path)]
    if case == "bad-recipe":
        (tmp_path / "r.toml").write_text('[recipe]\nname = "x"\nkapa = 3\n')
        args = ["generate", "--recipe", str(tmp_path / "r.toml"), "--out", str(tmp_path)]
    r = run(*args)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
