"""A fuzz pass over the ablation file and the plugin interface: random, mostly wrong inputs
through the command line, counting how each ends. Not a test (random cases; run it by hand):

    python tests/fuzz_inputs.py [--cases 300] [--seed 0]

A case *behaves* when the command exits 0, or exits 2 with exactly one ``error:`` line; anything else
(a traceback, another status, several lines) is printed. Every call runs in this process
(``experiments.cli.main``), as the test helpers do."""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import tempfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "examples" / "my_encoder.py"
FACTORS = ["tilt", "rotation", "kappa_max", "n_bands", "centers", "n_train", "lr", "dropout", "hidden_dim",
           "min_wavelength_deg", "max_wavelength_km", "encoder", "frequency_num", "wingspan", "", 3, None]
VALUES = [0, -0.0, 30.0, 30.0000001, 180, -180, 1e300, float("nan"), "x", True, [], 0.01, 0.0100000001, 1, 5, 16,
          -2.0, "sh", "xyz", "sphereM+", "nosuch", "uniform", "stratified", 2**40]
TOPS = [('datasets', ['["U1"]', '["U9"]', '"U1,S2.3"', '[]', '3']), ('encoders', ['["xyz"]', '["grid"]', '"all"',
        '["ring"]', '[1]']), ('seeds', ['"0"', '"0-1"', '"-1"', '[0]']), ('data_seeds', ['"0"', '"0-2"', '"x"']),
        ('space', ['"smoke"', '"nope"', '3'])]
HOLD = ['', '[hold]\nmode = "retune"', '[hold]\nmode = "sometimes"', '[hold]\nvalues = { lr = 0.1 }',
        '[hold]\nvalues = { kernel_size = 2.0 }', '[hold]\nvalues = { min_wavelength_deg = -1.0 }', '[hold]\nx = 1']
PLUGIN_EDITS = [
    ('name="ring"', lambda r: f'name={r.choice(["a,b", "", "table8", "all", "ring2", "r ing", "9ring"])!r}'),
    ('aliases=()', lambda r: "aliases=" + r.choice(["('all',)", "('grid',)", "'x'", "(3,)", "()"])),
    ('Param("frequency_num", int, 4,', lambda r: f'Param({r.choice(["lr", "seed", "hidden_dim", "k", "dropout"])!r}, int, 4,'),
    ('Interval(1, 32)', lambda r: r.choice(["Interval(5, 32)", "Interval(1, 2)", "None", "Interval(1, 32)"])),
    ('        self.out_dim = 2 * self.K + 2', lambda r: "        self.out_dim = " + r.choice(["0", "8.0", "None", "2 * self.K + 3", "2 * self.K + 2"])),
    ("        return torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)",
     lambda r: "        return " + r.choice(["None", "lat_terms", "lat_terms.numpy()", "lat_terms * float('nan')",
                                             "torch.cat([lat_terms, lon_terms.expand(lat_terms.shape[0], -1, -1)], -1)"])),
    ('import torch', lambda r: r.choice(["import torch", "import torch\nimport sys\nsys.exit(0)",
                                         "import torch\nraise KeyError('k')", "import torch\nexit(3)"])),
]


def run(args) -> tuple[int, str]:
    from experiments.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0
        except BaseException as e:  # noqa: BLE001 - what the fuzz pass is looking for
            return -1, f"{type(e).__name__}: {e}"
    return code, err.getvalue()


def behaves(code, err) -> bool:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    return code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("error:"))


def ablation_case(r: random.Random, folder: Path) -> list:
    top = "\n".join(f"{k} = {r.choice(v)}" for k, v in TOPS if r.random() < 0.6)
    factor = r.choice(FACTORS)
    levels = [r.choice(VALUES) for _ in range(r.randint(0, 3))]
    lv = ", ".join(repr(v).replace("'", '"').replace("nan", "nan").replace("True", "true") for v in levels)
    body = f'{top}\n[factor]\nname = {factor!r}\nlevels = [{lv}]\n'.replace("'", '"') + r.choice(HOLD) + "\n"
    if r.random() < 0.05:
        body = "\xff" + body
    p = folder / f"a{r.randrange(10**9)}.toml"
    p.write_bytes(body.encode("utf-8", "surrogateescape") if "\xff" not in body else b"\xff" + body[1:].encode())
    return ["ablate", p, "--dry-run", "--device", "cpu", "--db", folder / "a.db"]


def plugin_case(r: random.Random, folder: Path) -> list:
    text = PLUGIN.read_text()
    for old, new in r.sample(PLUGIN_EDITS, r.randint(1, 3)):
        text = text.replace(old, new(r))
    p = folder / f"p{r.randrange(10**9)}.py"
    p.write_text(text)
    space = folder / "s.toml"
    space.write_text("[settings]\nepochs = 1\n[grid]\nlr = [0.01]\nhidden_dim = [16]\nnum_filts = [8]\n")
    if r.random() < 0.5:
        return ["encoders", "--plugin", p]
    return ["sweep", "--plugin", p, "--space", space, "--datasets", "U1", "--encoders", "ring", "--seeds", "0",
            "--device", "cpu", "--dry-run", "--db", folder / "s.db"]


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--cases", type=int, default=300)
    a.add_argument("--seed", type=int, default=0)
    o = a.parse_args()
    r = random.Random(o.seed)
    bad = {"ablation": 0, "plugin": 0}
    n = {"ablation": 0, "plugin": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(o.cases):
            kind = "ablation" if i % 2 == 0 else "plugin"
            args = (ablation_case if kind == "ablation" else plugin_case)(r, Path(tmp))
            from experiments.models import encoders
            encoders._plugins_state["files"].clear()  # each plugin case loads its own file
            gone = [k for k in encoders._REGISTRY if not encoders.is_builtin(k)]
            for name in gone:
                encoders._REGISTRY.pop(name)
            for alias in [a for a, name in encoders._ALIASES.items() if name in gone]:
                encoders._ALIASES.pop(alias)
            code, err = run(args)
            n[kind] += 1
            if not behaves(code, err):
                bad[kind] += 1
                print(f"--- {kind} case {i}: status {code}\n{err.strip()[-600:]}\n{Path(args[1] if kind == 'ablation' else args[2]).read_text(errors='replace')[:400]}")
    for k in n:
        print(f"{k}: {n[k]} cases, {n[k] - bad[k]} behave, {bad[k]} do not")


if __name__ == "__main__":
    main()
