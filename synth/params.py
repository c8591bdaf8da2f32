"""Declared parameters: one declaration per hyper-parameter, setting or recipe field.

A ``Param`` says what a value *is* — name, type, default, valid range or choices, and its role —
and ``Param.check`` is the only place a value is checked. Python calls, TOML spaces and recipes,
the CLI, the population packer, the trainer, the dry run and ``python -m experiments encoders``
all read the same declarations (scikit-learn's ``_parameter_constraints`` is the model).

Roles: ``shape`` changes array shapes (members of one population must agree on it), ``member``
may differ per member of a population (stacked as a vector), ``optimizer`` is per member and
read by the optimiser, ``setting`` is a training setting, ``recipe`` a dataset recipe field.

Checks are strict on purpose: ``2.7`` is not an int, ``"8"`` is not a number, ``"false"`` is not
a boolean, and NaN or infinity is never a valid float — each of those was once accepted and
silently meant something else.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import SynthError

ROLES = ("shape", "member", "optimizer", "setting", "recipe")
_TYPE_WORDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Interval:
    """A range of numbers; ``closed`` is 'both', 'left', 'right' or 'neither'."""

    lo: float | None = None
    hi: float | None = None
    closed: str = "both"

    def __contains__(self, x) -> bool:
        if self.lo is not None and (x < self.lo or (x == self.lo and self.closed in ("right", "neither"))):
            return False
        if self.hi is not None and (x > self.hi or (x == self.hi and self.closed in ("left", "neither"))):
            return False
        return True

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.lo is not None else "("
        right = "]" if self.closed in ("both", "right") and self.hi is not None else ")"
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{left}{lo}, {hi}{right}"


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # int, float, bool or str
    default: object
    valid: object = None  # an Interval, a tuple of choices, or None
    role: str = "shape"
    optional: bool = False  # None is accepted (it means "off" or "automatic"; see help)
    help: str = ""

    def __post_init__(self):
        assert self.role in ROLES, self.role
        assert self.type in _TYPE_WORDS, self.type

    def expects(self) -> str:
        if isinstance(self.valid, tuple):
            text = "one of " + ", ".join(repr(c) for c in self.valid)
        elif isinstance(self.valid, Interval):
            text = f"{_TYPE_WORDS[self.type]} in {self.valid}"
        else:
            text = _TYPE_WORDS[self.type]
        return text + (" (or none)" if self.optional else "")

    def check(self, value, owner: str = ""):
        """Return ``value`` normalised to the declared type, or raise a one-line SynthError."""
        if value is None and self.optional:
            return None
        ok, v = _coerce(self.type, value)
        if ok and isinstance(self.valid, tuple):
            ok = v in self.valid
        elif ok and isinstance(self.valid, Interval):
            ok = v in self.valid
        if not ok:
            where = f"{owner}: " if owner else ""
            raise SynthError(f"{where}{self.name} = {value!r} is not valid: expected {self.expects()}")
        return v


def _coerce(kind, value):
    if kind is bool:
        return (isinstance(value, bool) or type(value).__name__ == "bool_"), bool(value) if _is_bool(value) else None
    if _is_bool(value):  # True is an int in Python; never a number here
        return False, None
    if kind is int:
        return isinstance(value, numbers.Integral), int(value) if isinstance(value, numbers.Integral) else None
    if kind is float:
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            return True, float(value)
        return False, None
    return isinstance(value, str), value


def _is_bool(value) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def check_values(params: dict, values: dict, owner: str) -> dict:
    """Check a dict of values against ``{name: Param}``; unknown names are one-line errors."""
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise SynthError(f"{owner}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(params))}")
    return {k: params[k].check(v, owner) for k, v in values.items()}


def table(params) -> list[str]:
    """One line per parameter: name, role, default and valid values (for ``encoders --params``)."""
    return [f"    {p.name:18s} {p.role:9s} default {p.default!r:10s} {p.expects()}" for p in params]
