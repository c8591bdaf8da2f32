"""Models: the encoders (one registry), their encodings and networks, the members' random streams, the
population trainer, and the encoders' length scales in physical units. Imports nothing else of
``experiments``; a plugin needs only the names here (docs/plugins.md)."""

from .._faces import lazy

PUBLIC = {
    "EncoderSpec": "encoders", "register": "encoders", "spec": "encoders", "available": "encoders",
    "build": "encoders", "position_encoder": "encoders", "hyperparameters": "encoders", "load_plugin": "encoders",
    "PositionEncoder": "encodings", "TrainSettings": "train", "train_population": "train",
    "to_native": "scales", "to_physical": "scales", "scale_params": "scales", "native_grid": "scales",
    "KM_PER_DEGREE": "scales", "Param": "encoders", "Interval": "encoders",
}
__all__ = sorted(PUBLIC)
__getattr__, __dir__ = lazy(__name__, PUBLIC)
