"""sphere-synth: synthetic von Mises-Fisher datasets on the sphere (Sphere2Vec, Appendix 9.15)."""

__version__ = "0.1.0"

from .errors import SynthError  # noqa: E402,F401
