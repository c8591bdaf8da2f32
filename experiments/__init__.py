"""sphere-synth experiments: location encoders, the population trainer, search and reports.

The layers, each a package that imports only from those before it (docs/architecture.md):
``models`` (encoders, networks, the trainer) and ``store`` (the results store, executors), then
``search`` (spaces, plans, the cell search, Study), ``report`` (statistics, Table 8, references,
diagnostics), ``ablate`` (controlled ablations), and ``cli`` on top.
"""

import sys
from pathlib import Path

from synth import __version__  # noqa: F401  (one version for the whole toolkit)

from ._faces import MovedModules

PACKAGE_DIR = Path(__file__).resolve().parent  # the shipped spaces, references, ablations and paper table live here

# the flat module names before the layer packages: still importable, with a FutureWarning
MOVED = {
    "encodings": "models.encodings", "harmonics": "models.harmonics", "members": "models.members",
    "networks": "models.networks", "encoders": "models.encoders", "train": "models.train", "scales": "models.scales",
    "results": "store.results", "executors": "store.executors",
    "space": "search.space", "pruners": "search.pruners", "plan": "search.plan", "populations": "search.populations",
    "race": "search.race", "transfer": "search.transfer", "selection": "search.selection", "study": "search.study",
    "stats": "report.stats", "tables": "report.tables", "summary": "report.summary", "reference": "report.reference",
    "diagnostics": "report.diagnostics", "importance": "report.importance",
    "factors": "ablate.factors", "ablation": "ablate.ablation", "ablation_report": "ablate.report",
}
if not any(isinstance(f, MovedModules) for f in sys.meta_path):
    sys.meta_path.append(MovedModules(__name__, MOVED))
