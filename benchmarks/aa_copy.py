"""The A/A plugin of benchmarks/bench_verdicts.py: the built-in sphereM+ registered again, unchanged, under
another name ("sphereM+copy"). Trained with another training seed it is another draw of sphereM+'s
training noise, so every verdict against sphereM+ other than a tie is a false one.

A space's per-encoder entries name their encoder: fair_quick's `[encoders."sphereM+"]` sets
frequency_num = 16, which a copy under another name would not get (it would train with the spec's
default, 32: another encoder). The copy's default is therefore the value the space gives sphereM+.
"""

import dataclasses

from experiments.models.encoders import register, spec

_original = spec("sphereM+")
register(dataclasses.replace(
    _original, name="sphereM+copy", aliases=(),
    params=tuple(dataclasses.replace(p, default=16) if p.name == "frequency_num" else p for p in _original.params),
    description="sphereM+ registered again under another name (an A/A control)"))
