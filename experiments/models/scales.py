"""Scales in one physical unit: a wavelength in degrees of arc (or km), converted to each encoder's
native hyper-parameter by one law per (encoder, parameter).

Encoders state their scales in different units (SPEC.md, "Scales in one physical unit"): grid and
theory read ``min_radius`` in degrees, the sphere* encoders in radians, rbf's ``kernel_size`` is a
Gaussian width in degrees and rff's a variance in normalised coordinates. A comparison across
encoders therefore declares scales as a physical length and lets each encoder convert it:

=====================  ==============  =============================================================
encoder                native          physical meaning (w in degrees of arc)
=====================  ==============  =============================================================
grid, theory           min_radius r    finest wavelength w = 2π·r (inputs in degrees)
                       max_radius R    coarsest wavelength = 2π·R
sphereC/C+/M/M+/DFS    min_radius r    w = 2π·r radians = 360·r degrees (inputs in radians)
                       max_radius R    coarsest wavelength = 360·R
rbf                    kernel_size σ   w = 2π·σ: σ in degrees, the Gaussian whose peak has the
                                       curvature of a cosine of wavelength w
rff                    kernel_size k   w = 2π·σ, σ = 90/√k degrees of latitude (k read as a variance,
                                       the default) or 90/k (``kernel_reading = "std"``); in longitude
                                       the kernel is twice as wide (rff normalises lon by 180, lat by 90)
=====================  ==============  =============================================================

Each law is ``degrees = factor · native ** power``, declared once in the encoder registry
(``EncoderSpec.scales``) and inverted here; km = degrees × ``KM_PER_DEGREE`` (mean Earth radius
6371.0088 km). Physical names carry their unit: ``min_wavelength_deg``, ``min_wavelength_km``,
``max_wavelength_deg``, ``max_wavelength_km``. A space or an ablation may use them wherever the
native parameter is accepted; stored configurations hold the native values, tables show both.
"""

from __future__ import annotations

import math
import re

from synth.errors import SynthError
from synth.params import TABLE, TEXT, checked, number, one_of, optional

from . import encoders

KM_PER_DEGREE = 6371.0088 * math.pi / 180.0  # ≈ 111.195 km per degree of arc
PHYSICAL = ("min_wavelength", "max_wavelength")
UNITS = {"deg": 1.0, "km": KM_PER_DEGREE}
_NAME = re.compile(r"^(min_wavelength|max_wavelength)_(deg|km)$")


def parse_physical(key: str):
    """'min_wavelength_km' -> ('min_wavelength', 'km'); None for a name that is not physical."""
    m = _NAME.match(str(key))
    return (m.group(1), m.group(2)) if m else None


def is_physical(key: str) -> bool:
    return parse_physical(key) is not None


@checked(encoder=TEXT)
def scale_params(encoder: str) -> dict:
    """{physical name: native name} of the scales an encoder declares (empty: it has no length scale)."""
    return {phys: native for native, (phys, _) in encoders.spec(encoder).scales.items()}


def _law(encoder: str, physical: str, hparams: dict | None):
    s = encoders.spec(encoder)
    for native, (phys, law) in s.scales.items():
        if phys == physical:
            factor, power = law(hparams or {}) if callable(law) else law
            return native, factor, power
    valid = ", ".join(f"{p}_deg" for p in scale_params(s.name)) or "none"
    raise SynthError(f"encoder {s.name} has no {physical} (physical scales it declares: {valid})")


@checked(encoder=TEXT, key=TEXT, value=number(), hparams=optional(TABLE))
def to_native(encoder: str, key: str, value: float, hparams: dict | None = None) -> tuple:
    """(native name, native value) of a physical ``key`` = ``value`` (e.g. 'min_wavelength_deg', 2.0)
    for one encoder; ``hparams`` gives the settings a law depends on (rff's ``kernel_reading``)."""
    parsed = parse_physical(key)
    if parsed is None:
        raise SynthError(f"{key!r} is not a physical scale; valid: {', '.join(p + '_' + u for p in PHYSICAL for u in UNITS)}")
    physical, unit = parsed
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SynthError(f"{key} = {value!r} is not valid: expected a positive length in {unit}")
    native, factor, power = _law(encoder, physical, hparams)
    degrees = float(value) / UNITS[unit]
    return native, (degrees / factor) ** (1.0 / power)


@checked(encoder=TEXT, native=TEXT, value=number(0, closed="neither"), unit=one_of("deg", "km"),
         hparams=optional(TABLE))
def to_physical(encoder: str, native: str, value: float, unit: str = "deg", hparams: dict | None = None) -> float:
    """The physical length (in ``unit``) of a native scale value; the inverse of ``to_native``."""
    s = encoders.spec(encoder)
    if native not in s.scales:
        raise SynthError(f"{native} of {s.name} is not a length scale")
    physical, law = s.scales[native]
    factor, power = law(hparams or {}) if callable(law) else law
    return factor * float(value) ** power * UNITS[unit]


@checked(encoder=TEXT, table=TABLE, where=TEXT)
def native_grid(encoder: str, table: dict, where: str) -> dict:
    """A space or ablation table with physical keys replaced by the encoder's native lists.

    A table that also sets the native parameter, or two units of one length, is refused; a law that
    depends on another setting (rff's kernel_reading) needs that setting to have one value."""
    out = {k: v for k, v in table.items() if not is_physical(k)}
    seen = {}
    for key, values in table.items():
        parsed = parse_physical(key)
        if parsed is None:
            continue
        physical = parsed[0]
        if physical in seen:
            raise SynthError(f"{where}: {seen[physical]} and {key} both set the {physical} of {encoder}")
        seen[physical] = key
        hp = {}
        for k, v in table.items():
            if not is_physical(k):
                vs = v if isinstance(v, list) else [v]
                if k == "kernel_reading" and len(set(vs)) > 1:
                    raise SynthError(f"{where}: {key} needs one kernel_reading for {encoder}, got {vs}")
                hp[k] = vs[0]
        native = _law(encoder, physical, hp)[0]
        if native in table:
            raise SynthError(f"{where}: {key} and {native} both set {native} of {encoder}")
        values = values if isinstance(values, list) else [values]
        out[native] = [to_native(encoder, key, v, hp)[1] for v in values]
    return out

