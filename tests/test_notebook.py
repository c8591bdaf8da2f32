import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "polar_distortion.ipynb"


def test_polar_distortion_notebook_runs_top_to_bottom(monkeypatch, tmp_path):
    # the kernel must be this interpreter (the project's venv), whatever PATH says
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let the kernel use its inline backend
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # two maps, the distortion figure, the per-band figure
    text = "".join(o.get("text", "") for o in outputs)
    assert "Bayes-optimal test Top-1" in text and "grid" in text and "sphereM+" in text


ABLATION = Path(__file__).parent.parent / "notebooks" / "ablation.ipynb"


def test_ablation_notebook_runs_top_to_bottom(monkeypatch, tmp_path):
    """A tiny ablation from Python: its plan, its table with verdicts, both figures."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(ABLATION, as_version=4)
    for c in nb.cells:  # run fresh: the committed outputs are for readers
        if c.cell_type == "code":
            c.outputs = []
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 2
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "member-epochs (a plain sweep of the same 6 configuration(s)" in text
    assert "| S2.3 | sphereM+ | 4 |" in text and "reference" in text and "min_radius = 0.01111" in text
