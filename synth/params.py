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


# ----------------------------------------------------------------------------- the public API's arguments
# Every public function and method (docs/api.md) declares what its arguments are with ``@checked``, as
# scikit-learn's ``validate_params`` does: one place, one message form ("<function>: <argument> = <value>
# is not valid: expected ..."), checked before the body runs, so a wrong type is a SynthError and never
# a TypeError, AttributeError or IndexError from deep inside, nor a silently wrong result.
@dataclass(frozen=True)
class Kind:
    """A constraint that is not a number in a range: ``test(value)`` returns the value (normalised) or
    raises ValueError/TypeError; ``what`` says what is expected."""

    what: str
    test: object
    optional: bool = False

    def check(self, value, name: str, owner: str):
        if value is None and self.optional:
            return None
        try:
            return self.test(value)
        except (ValueError, TypeError, AttributeError, OverflowError):
            raise SynthError(f"{owner}: {name} = {_short(value)} is not valid: expected {self.what}"
                             + (" (or None)" if self.optional else "")) from None


def _short(value) -> str:
    text = repr(value) if not hasattr(value, "shape") else f"an array of shape {tuple(value.shape)}"
    return text if len(text) <= 60 else text[:57] + "..."


def integer(lo=None, hi=None, optional: bool = False) -> Param:
    return Param("", int, None, Interval(lo, hi), "setting", optional)


def number(lo=None, hi=None, closed: str = "both", optional: bool = False) -> Param:
    return Param("", float, None, Interval(lo, hi, closed), "setting", optional)


def one_of(*choices, optional: bool = False) -> Param:
    return Param("", str, None, tuple(choices), "setting", optional)


def flag() -> Param:
    return Param("", bool, None, None, "setting")


def _instance(types):
    def test(value):
        if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
            raise TypeError
        return value
    return test


def instance(*types, what: str | None = None, optional: bool = False) -> Kind:
    """An instance of one of ``types``."""
    return Kind(what or " or ".join(f"a {t.__name__}" for t in types), _instance(types), optional)


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise TypeError
    return value


def _path(value):
    import os

    if isinstance(value, str) and not value.strip() or not isinstance(value, (str, os.PathLike)):
        raise TypeError
    return value


def _names(value):
    """A comma-separated string or a list/tuple of distinct non-empty strings -> a list."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise TypeError
    if len(set(items)) != len(items):
        raise ValueError
    return value if isinstance(value, str) else list(items)


def _table(value):
    if not isinstance(value, dict):
        raise TypeError
    return value


def _rows(value):
    if not isinstance(value, (list, tuple)) or not all(isinstance(r, dict) for r in value):
        raise TypeError
    return list(value)


def _array(nonnegative: bool = False, last: int | None = None, ndim: int | None = None, finite: bool = True):
    """Numbers as a NumPy array, a torch tensor or a (nested) list; values finite (and >= 0). A
    tensor on the meta device has no values to check (GPU code is tested there)."""
    def test(value):
        import numbers

        if value is None or isinstance(value, (str, bytes, bool, dict)) or type(value).__name__ == "bool_":
            raise TypeError
        if type(value).__module__.startswith("torch"):
            import torch

            if not isinstance(value, torch.Tensor) or value.dtype == torch.bool or value.is_complex():
                raise TypeError
            if value.device.type == "meta":
                return value
            values = value.detach()
        else:
            if isinstance(value, numbers.Number) and not isinstance(value, numbers.Real):
                raise TypeError
            import numpy as np

            values = np.asarray(value, dtype=np.float64)
        if last is not None and (values.ndim == 0 or values.shape[-1] != last):
            raise ValueError
        if ndim is not None and values.ndim != ndim:
            raise ValueError
        if finite and (not bool((values == values).all()) or not bool((abs(values) < float("inf")).all())):
            raise ValueError
        if nonnegative and bool((values < 0).any()):
            raise ValueError
        return value
    return test


def _ints(value):
    """Distinct non-negative integers (seeds): a list, tuple or range -> a list."""
    if not isinstance(value, (list, tuple, range)) or not value:
        raise TypeError
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in value):
        raise TypeError
    if len(set(value)) != len(value):
        raise ValueError
    return list(value)


def _callable(value):
    if not callable(value):
        raise TypeError
    return value


ARRAY = Kind("finite numbers (a NumPy array, a torch tensor or a list)", _array())
LONLAT = Kind("finite (lon, lat) pairs in degrees, shape (..., 2)", _array(last=2))
XYZ = Kind("finite unit vectors, shape (..., 3)", _array(last=3))
VECTOR = Kind("a 1-D array of finite numbers", _array(ndim=1))
SERIES = Kind("a 1-D array of numbers (NaN where a value is undefined)", _array(ndim=1, finite=False))
NONNEGATIVE = Kind("finite numbers >= 0 (a NumPy array, a torch tensor or a list)", _array(True))
INTS = Kind("a non-empty list of distinct integers in [0, 2^32)", _ints)
CALLABLE = Kind("a function", _callable)
TEXT = Kind("a non-empty string", _text)
PATH = Kind("a path (a non-empty str or os.PathLike)", _path)
NAMES = Kind("a comma-separated string or a list of distinct non-empty names", _names)
TABLE = Kind("a dict", _table)
ROWS = Kind("a list of row dicts", _rows)


def optional(rule):
    """The same constraint, or None."""
    import dataclasses

    return dataclasses.replace(rule, optional=True)


def checked(**constraints):
    """Declare the constraints of a public function's arguments (a ``Param`` from ``integer``,
    ``number``, ``one_of``, ``flag``, or a ``Kind``); they are checked on every call, before the body,
    and a call that does not fit the signature is a SynthError too."""
    import dataclasses
    import functools
    import inspect

    def wrap(fn):
        signature = inspect.signature(fn)
        unknown = set(constraints) - set(signature.parameters)
        assert not unknown, f"{fn.__qualname__}: no argument(s) {unknown}"
        owner = fn.__qualname__.replace(".__init__", "")
        # each Param named after its argument once, here, not on every call
        rules = {name: dataclasses.replace(rule, name=name) if isinstance(rule, Param) else rule
                 for name, rule in constraints.items()}

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as e:
                raise SynthError(f"{owner}: {e}") from None
            for name, rule in rules.items():
                if name in bound.arguments:
                    value = bound.arguments[name]
                    bound.arguments[name] = (rule.check(value, owner) if isinstance(rule, Param)
                                             else rule.check(value, name, owner))
            return fn(*bound.args, **bound.kwargs)

        call.constraints = constraints
        return call
    return wrap
