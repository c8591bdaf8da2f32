"""sphere-synth experiments: location encoders, the population trainer, search and reports."""

from synth import __version__  # noqa: F401  (one version for the whole toolkit)
