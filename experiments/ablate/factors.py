"""What an ablation changes: its factor (an encoder's knob, a physical scale, the encoder, or the data's
geometry), the factor's levels, checked before any work, and a data level's recipe.

Levels are exact: a level names experiments and recipes as written (``Factor.label``), equal values
are one level, and an encoder's alias is its encoder, as on the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from synth import datasets as synth_datasets
from synth.errors import SynthError
from synth.params import Kind, Param, checked, instance

from ..models import encoders as registry
from ..models import scales
from ..search.space import space_params

DATA_FACTORS = ("tilt", "kappa_max", "n_bands", "centers", "n_train")
ALIASES = {"rotation": "tilt"}


@dataclass(frozen=True)
class Factor:
    """What changes: its name, kind ('encoder', 'hyper', 'physical' or 'data'), levels and reference."""

    name: str
    kind: str
    levels: tuple
    reference: object

    def label(self, level) -> str:
        """A level as it names experiments and recipes: exact, so two levels never share a name
        (``:g`` alone printed 30.0 and 30.0000001 alike, and their rows shared one experiment)."""
        if not isinstance(level, float):
            return str(level)
        short = f"{level:g}"
        return short if float(short) == level else repr(level)


def _factor_param(name: str, kind: str, encoder_names) -> dict:
    """{encoder or '': Param} declaring the factor's values (checked per encoder for hyper-parameters)."""
    if kind == "data":
        return {"": synth_datasets.RECIPE_PARAMS[name]}
    if kind == "encoder":
        return {"": Param("encoder", str, None, tuple(registry.available()))}
    if kind == "physical":
        return {e: Param(name, float, None, None) for e in encoder_names}
    return {e: space_params(e)[name] for e in encoder_names}


def _canonical_or_same(name):
    try:
        return registry.canonical_name(name) if isinstance(name, str) else name
    except SynthError:
        return name  # unknown: the level check below names it


def parse_factor(table, encoder_names) -> Factor:
    if not isinstance(table, dict):
        raise SynthError("[factor] must be a table with name, levels and (optionally) reference")
    unknown = set(table) - {"name", "levels", "reference"}
    if unknown:
        raise SynthError(f"[factor]: unknown key(s) {', '.join(sorted(unknown))}; valid: name, levels, reference")
    name = ALIASES.get(table.get("name"), table.get("name"))
    if not isinstance(name, str):
        raise SynthError("[factor] needs a name (an encoder hyper-parameter, a physical scale, encoder, or "
                         f"one of {', '.join(DATA_FACTORS)})")
    if name == "encoder":
        kind = "encoder"
    elif name in DATA_FACTORS:
        kind = "data"
    elif scales.is_physical(name):
        kind = "physical"
        length = scales.parse_physical(name)[0]
        lacking = [e for e in encoder_names if length not in scales.scale_params(e)]
        if lacking:
            raise SynthError(f"factor {name}: encoder {lacking[0]} has no {length} (encoders with one: "
                             f"{', '.join(e for e in registry.available() if scales.scale_params(e))})")
    else:
        known = set().union(*(space_params(e) for e in registry.available()))
        if name not in known:
            raise SynthError(f"unknown factor {name!r}: not a hyper-parameter of any encoder, a physical scale "
                             f"(min_wavelength_deg, ...), encoder, or a data factor ({', '.join(DATA_FACTORS)})")
        lacking = [e for e in encoder_names if name not in space_params(e)]
        if lacking:
            raise SynthError(f"factor {name}: encoder {lacking[0]} does not have it")
        kind = "hyper"
    levels = table.get("levels")
    if not isinstance(levels, list) or not levels:
        raise SynthError(f"[factor] {name}: levels must be a non-empty list")
    if kind == "encoder":  # aliases (sh, Sphere2Vec-sphereM+) as on the command line
        levels = [_canonical_or_same(v) for v in levels]
    checked = []
    for owner, param in _factor_param(name, kind, encoder_names).items():
        where = f"factor {name}" + (f" for {owner}" if owner else "")
        checked = [param.check(v, where) for v in levels]
    normal = registry.canonical_name if kind == "encoder" else (lambda v: v)
    checked = [normal(v) for v in checked]
    if kind == "physical":
        for v in checked:
            if v <= 0:
                raise SynthError(f"factor {name}: level {v!r} is not a positive length")
    if len(set(checked)) != len(checked):  # by value: 0 and -0 are one level
        raise SynthError(f"factor {name}: levels repeat a value: {levels}")
    reference = table.get("reference", levels[0])
    try:  # normalised as the levels are (1 -> 1.0 for a float factor, an alias -> its encoder)
        ref = normal(param.check(_canonical_or_same(reference) if kind == "encoder" else reference, f"factor {name}"))
    except SynthError:
        ref = None
    if ref is None or ref not in checked:
        raise SynthError(f"factor {name}: reference {reference!r} is not one of its levels {levels}")
    return Factor(name, kind, tuple(checked), ref)


def _level(value):
    import math
    import numbers

    if isinstance(value, str) and value.strip() or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return value
    raise TypeError


LEVEL = Kind("a level of the factor (a finite number, true/false or a name)", _level)


@checked(base=instance(synth_datasets.Recipe), factor=instance(Factor), level=LEVEL)
def derived_recipe(base: synth_datasets.Recipe, factor: Factor, level) -> synth_datasets.Recipe:
    """The recipe of ``base`` at a data level: named ``<base>+<factor>_<level>``, drawing the base's stream."""
    label = factor.label(level)
    return dataclasses.replace(base, name=f"{base.name}+{factor.name}_{label}", stream=base.stream or base.name,
                               description=f"{base.description}; {factor.name} = {label}", **{factor.name: level})
