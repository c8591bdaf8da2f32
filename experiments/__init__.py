"""sphere-synth experiments: location encoders, the population trainer, search and reports."""

from pathlib import Path

from synth import __version__  # noqa: F401  (one version for the whole toolkit)

PACKAGE_DIR = Path(__file__).resolve().parent  # the shipped spaces, references, ablations and paper table live here

# While the modules move into their layer folders (one git mv commit with no edits), they keep their
# flat names: the layer folders are searched as part of this package.
__path__ += [str(PACKAGE_DIR / layer) for layer in ("models", "store", "search", "report", "ablate")]
