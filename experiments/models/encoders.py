"""Every location encoder of the Sphere2Vec paper and of TorchSpatial, from one registry.

    >>> from experiments.models import encoders
    >>> encoders.available()
    >>> G = encoders.position_encoder("sphereM+", frequency_num=32, min_radius=1e-3)
    >>> G(lonlat_deg).shape            # (N, 2) -> (N, 256) = (N, G.out_dim)
    >>> model = encoders.build("sphereM+", num_classes=50, hidden_dim=1024)
    >>> model(lonlat_deg).shape        # (N, 50) logits

A model is e(x) = NN(G(x)): a position encoder G (degrees in, features out; SPEC.md section 4
and ../shared/reference/encoders-spec.md give the formulas, units and test vectors) and a network
(``experiments.models.networks``). Hyper-parameter names follow TorchSpatial: ``frequency_num`` (S),
``min_radius`` (r_min), ``max_radius`` (r_max), ``num_hidden_layers`` (h), ``hidden_dim`` (k),
``dropout``, ``activation``.

**Batched configurations.** Value-only hyper-parameters (``min_radius``, ``max_radius``,
``kernel_size``, ``dropout``, ``seed``) may be given as lists of length M; the module then holds M
members and returns (M, N, D) from G and (M, N, C) from a model, for input of shape (N, 2)
(shared by all members) or (M, N, 2) (one set of points per member). With scalars only, G maps
(..., 2) to (..., D). There is no Python loop over members in any forward pass.

**Published quirks kept on purpose** (SPEC.md section 4): multi-scale terms with frequency ≠ 1 are
not single-valued on the sphere (λ = −180° and +180° differ, a pole gets a longitude-dependent
code). ``antimeridian_continuous`` and ``pole_single_valued`` in each encoder's spec record this.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from synth.errors import SynthError
from synth.params import PATH, TEXT, Interval, Param, checked, flag, instance, integer, optional

from .members import OPTIMIZER_KEYS, SEED, MemberRNG, broadcast_members
from .networks import FFN, NETWORK_PARAMS, ResNet, Siren

from .encodings import (RBF, RFF, XYZ, MultiScale, NeRF, PositionEncoder, SphericalHarmonics, Tile, Wrap,  # noqa: F401
                        check_lonlat, scale_frequencies)  # (check_lonlat, scale_frequencies: re-exported)


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder: its names, its position encoder and its declared hyper-parameters."""

    name: str
    aliases: tuple
    make: Callable  # (M, batched, rng, hparams) -> PositionEncoder
    params: tuple  # of synth.params.Param: the position encoder's hyper-parameters
    network: str  # the default network: "ffn", "resnet" or "siren"
    antimeridian_continuous: bool
    pole_single_valued: bool
    dim: str
    description: str
    networks: tuple = field(default=())  # other networks it may use (hyper-parameter ``network``)
    # {native parameter: (physical name, law)}: the parameters that are lengths, with
    # degrees = factor * native ** power, law = (factor, power) or a function of the hyper-parameters
    # returning it; experiments.models.scales converts (SPEC.md, "Scales in one physical unit")
    scales: dict = field(default_factory=dict)

    @property
    def position_defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


def _scales(frequency_num: int, min_radius: float, max_radius: float, max_frequency_num: int = 1024):
    return (Param("frequency_num", int, frequency_num, Interval(1, max_frequency_num), help="S, number of scales"),
            Param("min_radius", float, min_radius, Interval(0, None, "neither"), "member", help="r_min"),
            Param("max_radius", float, max_radius, Interval(0, None, "neither"), "member", help="r_max"))


# Default scales: grid and theory work in degrees (r_max = 360), the sphere encoders in radians
# (r_max = 1); SPEC.md section 4.
_DEGREE_SCALES = _scales(32, 0.01, 360.0)
_SPHERE_SCALES = _scales(32, 0.001, 1.0)
_KERNEL = Param("kernel_size", float, 1.0, Interval(0, None, "neither"), "member")


# Wavelength laws (degrees of arc per native unit; see experiments.models.scales for the table)
_DEGREE_LAW = {"min_radius": ("min_wavelength", (2 * math.pi, 1.0)),
               "max_radius": ("max_wavelength", (2 * math.pi, 1.0))}  # inputs in degrees: period 2π·r degrees
_SPHERE_LAW = {"min_radius": ("min_wavelength", (360.0, 1.0)),
               "max_radius": ("max_wavelength", (360.0, 1.0))}  # inputs in radians: period 2π·r rad = 360·r°
_RBF_LAW = {"kernel_size": ("min_wavelength", (2 * math.pi, 1.0))}  # σ in degrees, w = 2πσ


def _rff_law(hp):
    """σ_lat = 90/√k (k a variance) or 90/k (a standard deviation) degrees of latitude, w = 2πσ."""
    return (2 * math.pi * 90.0, -0.5 if hp.get("kernel_reading", "variance") == "variance" else -1.0)


def _multi(kind):
    return lambda M, b, rng, hp: MultiScale(kind, M, b, hp["frequency_num"], hp["min_radius"], hp["max_radius"])


_SPECS = [
    EncoderSpec("xyz", ("cartesian3d",), lambda M, b, rng, hp: XYZ(M, b), (), "ffn", True, True, "3",
                "3-D unit vector (x, y, z)"),
    EncoderSpec("wrap", ("geo_net",), lambda M, b, rng, hp: Wrap(M, b), (), "resnet", True, False, "4",
                "sin/cos of lon/180·π and lat/90·π, Mac Aodha et al.'s residual network"),
    EncoderSpec("wrap_ffn", ("wrap+ffn", "geo_net_fft"), lambda M, b, rng, hp: Wrap(M, b), (), "ffn", True, False,
                "4", "wrap's features with NN_ffn"),
    EncoderSpec("tile_ffn", ("tile",), lambda M, b, rng, hp: Tile(M, b, rng, hp["cell_size"], hp["embed_dim"]),
                (Param("cell_size", float, 5.0, Interval(0, 180, "right"), help="cell side in degrees"),
                 Param("embed_dim", int, 64, Interval(1, 65536))), "ffn", False, False, "embed_dim",
                "learned embedding of an equal-angle lat/lon cell"),
    EncoderSpec("rbf", (), lambda M, b, rng, hp: RBF(M, b, rng, hp["num_anchors"], hp["kernel_size"],
                                                     hp["anchor_points"], hp["distance"]),
                (Param("num_anchors", int, 200, Interval(1, 100000)), _KERNEL,
                 Param("distance", str, "euclidean", ("euclidean", "great_circle"))), "ffn",
                False, False, "num_anchors",
                "Gaussian kernels at anchors drawn from the training points, in degrees "
                "(distance='great_circle': continuous, one code per pole)", scales=_RBF_LAW),
    EncoderSpec("rff", (), lambda M, b, rng, hp: RFF(M, b, rng, hp["frequency_num"], hp["kernel_size"],
                                                     hp["kernel_reading"]),
                (Param("frequency_num", int, 64, Interval(1, 65536), help="D, number of features"), _KERNEL,
                 Param("kernel_reading", str, "variance", ("variance", "std"))), "ffn", False, False,
                "frequency_num", "random Fourier features of (lon/180, lat/90)",
                scales={"kernel_size": ("min_wavelength", _rff_law)}),
    EncoderSpec("grid", ("Space2Vec-grid", "gridcell"), _multi("grid"),
                _DEGREE_SCALES, "ffn", False, False, "4S",
                "Space2Vec grid: multi-scale sin/cos of lon and lat in degrees", scales=_DEGREE_LAW),
    EncoderSpec("theory", ("Space2Vec-theory",), _multi("theory"),
                _DEGREE_SCALES, "ffn", False, False, "6S",
                "Space2Vec theory: three directions 120° apart, degrees", scales=_DEGREE_LAW),
    EncoderSpec("nerf", ("NeRF",), lambda M, b, rng, hp: NeRF(M, b, hp["frequency_num"]),
                (Param("frequency_num", int, 16, Interval(1, 60), help="L, number of octaves"),),
                "ffn", True, True, "6S", "NeRF positional encoding of the 3-D point"),
    EncoderSpec("sphereC", ("Sphere2Vec-sphereC", "sphere"), _multi("sphereC"),
                _SPHERE_SCALES, "ffn", False, False, "3S",
                "Sphere2Vec sphereC", scales=_SPHERE_LAW),
    EncoderSpec("sphereC+", ("Sphere2Vec-sphereC+", "spheregrid", "sphereCplus"), _multi("sphereC+"),
                _SPHERE_SCALES, "ffn", False, False, "6S",
                "Sphere2Vec sphereC+ (sphereC and grid terms)", scales=_SPHERE_LAW),
    EncoderSpec("sphereM", ("Sphere2Vec-sphereM", "spheremixscale"), _multi("sphereM"),
                _SPHERE_SCALES, "ffn", False, False, "5S",
                "Sphere2Vec sphereM (multi-scale mixed with single-scale)", scales=_SPHERE_LAW),
    EncoderSpec("sphereM+", ("Sphere2Vec-sphereM+", "spheregridmixscale", "sphereMplus"), _multi("sphereM+"),
                _SPHERE_SCALES, "ffn", False, False, "8S",
                "Sphere2Vec sphereM+ (the paper's Table 8 model)", scales=_SPHERE_LAW),
    EncoderSpec("sphereDFS", ("Sphere2Vec-dfs", "dfs", "dft"), _multi("sphereDFS"),
                _scales(8, 0.001, 1.0, max_frequency_num=64), "ffn", False, False, "4S²+4S",
                "Sphere2Vec double Fourier sphere: all cross-scale products", scales=_SPHERE_LAW),
    EncoderSpec("spherical_harmonics", ("sphericalharmonics", "Siren(SH)", "sh"),
                lambda M, b, rng, hp: SphericalHarmonics(M, b, hp["legendre_polys"]),
                (Param("legendre_polys", int, 20, Interval(1, 100), help="L, degrees 0..L-1"),),
                "siren", True, True, "L²", "real spherical harmonics of degree < L, SirenNet by default",
                networks=("ffn",)),
]
_REGISTRY = {s.name: s for s in _SPECS}
_ALIASES = {a.lower(): s.name for s in _SPECS for a in (s.name,) + s.aliases}
_BUILTIN_NAMES = frozenset(_ALIASES)
TABLE8 = ("xyz", "wrap", "wrap_ffn", "rff", "rbf", "grid", "theory", "sphereM+")

# ----------------------------------------------------------------------------- your own encoders
# A plugin is a Python file (``--plugin my_encoder.py``) or an installed package's entry point in the
# group ``sphere_synth.encoders`` that calls ``register(EncoderSpec(...))`` with its hyper-parameters
# declared as ``synth.params.Param`` (docs/plugins.md has a worked example). Plugin files are also
# listed in the environment variable SPHERE_SYNTH_PLUGINS, so worker processes and SLURM jobs, which
# inherit the environment, load them too.
PLUGIN_ENV = "SPHERE_SYNTH_PLUGINS"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+.\-]*")
RESERVED_NAMES = ("all", "table8")  # keywords of --encoders
ENTRY_POINT_GROUP = "sphere_synth.encoders"
_plugins_state = {"loaded": False, "files": set()}


@checked(encoder=instance(EncoderSpec))
def register(encoder: EncoderSpec) -> EncoderSpec:
    """Add an encoder to the registry; a name or alias that shadows a built-in (or another plugin's) is refused."""
    if not isinstance(encoder, EncoderSpec):
        raise SynthError(f"register() takes an experiments.models.encoders.EncoderSpec, got {type(encoder).__name__}")
    if not isinstance(encoder.aliases, (tuple, list)):
        raise SynthError(f"encoder {encoder.name!r}: aliases must be a tuple of names")
    for n in (encoder.name,) + tuple(encoder.aliases):
        # a name is one word of the encoder lists (--encoders a,b) and never a list's keyword
        if not isinstance(n, str) or not _NAME.fullmatch(n) or n.lower() in RESERVED_NAMES:
            raise SynthError(f"encoder name {n!r} is not valid: a letter, then letters, digits, '_', '+', '-' "
                             f"or '.', and not {' or '.join(repr(r) for r in RESERVED_NAMES)}")
        if n.lower() in _BUILTIN_NAMES:
            raise SynthError(f"encoder name {n!r} shadows a built-in encoder; choose another name")
        if n.lower() in _ALIASES and _REGISTRY[_ALIASES[n.lower()]] is not encoder:
            raise SynthError(f"encoder name {n!r} is already registered (by another plugin)")
    if not all(isinstance(p, Param) for p in encoder.params):
        raise SynthError(f"encoder {encoder.name}: declare every hyper-parameter as a synth.params.Param")
    taken = {"seed", *OPTIMIZER_KEYS, *(q.name for ps in NETWORK_PARAMS.values() for q in ps)}
    for p in encoder.params:
        if p.name in taken:  # it would silently merge with the optimiser's, the network's or the seed
            raise SynthError(f"encoder {encoder.name}: hyper-parameter {p.name!r} is the optimiser's, the "
                             "network's or the training seed's; choose another name")
        if p.default is not None:
            try:
                p.check(p.default, f"encoder {encoder.name}")
            except SynthError as e:
                raise SynthError(f"{e} (its own default)") from None
    if encoder.network not in NETWORK_PARAMS or any(n not in NETWORK_PARAMS for n in encoder.networks):
        raise SynthError(f"encoder {encoder.name}: network must be one of {', '.join(NETWORK_PARAMS)}")
    global VECTOR_KEYS
    _REGISTRY[encoder.name] = encoder
    _ALIASES.update({a.lower(): encoder.name for a in (encoder.name,) + tuple(encoder.aliases)})
    VECTOR_KEYS = member_keys()
    return encoder


def is_builtin(name: str) -> bool:
    return str(name).lower() in _BUILTIN_NAMES


@checked(path=PATH)
def load_plugin(path) -> list[str]:
    """Import a plugin file; returns the names it registered. One line if the file does not exist,
    fails to import, registers nothing or shadows a built-in."""
    import importlib.util
    import os
    from pathlib import Path

    _load_plugins()
    p = Path(path).resolve()
    if not p.is_file():
        raise SynthError(f"plugin {path}: no such file")
    if str(p) in _plugins_state["files"]:
        return []
    before = set(_REGISTRY)
    module_spec = importlib.util.spec_from_file_location(f"sphere_synth_plugin_{abs(hash(str(p)))}", p)
    if module_spec is None or module_spec.loader is None:
        raise SynthError(f"plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SynthError as e:
        raise SynthError(f"plugin {path}: {e}") from None
    except (Exception, SystemExit) as e:  # a plugin's own error, or its exit(), in one line: it is the user's code
        what = f"called exit({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
        raise SynthError(f"plugin {path} failed to import: {what}") from None
    new = [n for n in _REGISTRY if n not in before]
    if not new:
        raise SynthError(f"plugin {path} registered no encoder: call experiments.models.encoders.register(EncoderSpec(...))")
    _plugins_state["files"].add(str(p))
    listed = [x for x in os.environ.get(PLUGIN_ENV, "").split(os.pathsep) if x]
    if str(p) not in listed:
        os.environ[PLUGIN_ENV] = os.pathsep.join(listed + [str(p)])
    return new


def _load_plugins() -> None:
    """Once per process: the plugin files of SPHERE_SYNTH_PLUGINS and the installed entry points."""
    if _plugins_state["loaded"]:
        return
    _plugins_state["loaded"] = True
    import os
    from importlib.metadata import entry_points

    for f in [x for x in os.environ.get(PLUGIN_ENV, "").split(os.pathsep) if x]:
        load_plugin(f)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        before = set(_REGISTRY)
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except SynthError as e:
            raise SynthError(f"entry point {ep.name} ({ENTRY_POINT_GROUP}): {e}") from None
        except (Exception, SystemExit) as e:
            what = f"called exit({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
            raise SynthError(f"entry point {ep.name} ({ENTRY_POINT_GROUP}) failed: {what}") from None
        if set(_REGISTRY) == before:
            raise SynthError(f"entry point {ep.name} ({ENTRY_POINT_GROUP}) registered no encoder")


def available() -> list[str]:
    _load_plugins()
    return list(_REGISTRY)


def canonical_name(name: str) -> str:
    _load_plugins()
    try:
        return _ALIASES[str(name).lower()]
    except KeyError:
        raise SynthError(f"unknown encoder {name!r}; valid: {', '.join(_REGISTRY)}") from None


def parse_names(text: str) -> list[str]:
    """'sphereM+,grid', 'table8' (the paper's 8) or 'all' -> canonical encoder names."""
    if text == "all":
        return available()
    if text == "table8":
        return list(TABLE8)
    names = [canonical_name(t.strip()) for t in text.split(",") if t.strip()]
    if not names:
        raise SynthError(f"no encoder named in {text!r}")
    return names


@checked(name=TEXT)
def spec(name: str) -> EncoderSpec:
    return _REGISTRY[canonical_name(name)]


def network_param(name: str) -> Param:
    """The ``network`` choice, declared only for encoders that can use more than one network."""
    s = spec(name)
    return Param("network", str, s.network, (s.network,) + s.networks, help="network after the encoder")


@checked(name=TEXT, network=optional(TEXT), with_network=flag())
def hyperparameters(name: str, network: str | None = None, with_network: bool = True) -> dict:
    """{name: Param} of every hyper-parameter an encoder takes with the given network (default: its
    own): the position encoder's, the network's (and the ``network`` choice) and the member seed."""
    s = spec(name)
    net = network_param(s.name).check(network or s.network, s.name) if s.networks else s.network
    if net != s.network and not s.networks:
        raise SynthError(f"encoder {s.name} supports network {s.network} only, got {network!r}")
    params = {p.name: p for p in s.params}
    if with_network:
        params.update({p.name: p for p in NETWORK_PARAMS[net]})
        if s.networks:
            params["network"] = network_param(s.name)
    params["seed"] = SEED
    return params


def member_keys() -> tuple:
    """Hyper-parameters that may differ between members of one population (declared role 'member')."""
    keys = {p.name for s in _REGISTRY.values() for p in s.params if p.role == "member"}
    keys |= {p.name for ps in NETWORK_PARAMS.values() for p in ps if p.role == "member"}
    return tuple(sorted(keys | {SEED.name}))


VECTOR_KEYS = member_keys()  # updated by register()


def _check(param: Param, value, owner: str):
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [param.check(v, owner) for v in value]
    return param.check(value, owner)


def _split_hparams(name: str, hparams: dict, with_network: bool):
    s = spec(name)
    network = hparams.pop("network", None) or s.network
    if isinstance(network, (list, tuple)):  # a population's members, which share their network (a shape key)
        if len(set(network)) != 1:
            raise SynthError(f"{s.name}: the members of one population must share their network, got {list(network)}")
        network = network[0]
    params = hyperparameters(s.name, network, with_network)
    params.pop("network", None)
    anchor_points = hparams.pop("anchor_points", None)  # internal: rbf anchors from the training points
    owner = s.name if network == s.network else f"{s.name} with network {network}"
    unknown = sorted(set(hparams) - set(params))
    if unknown:
        raise SynthError(f"unknown hyper-parameter(s) {', '.join(unknown)} for {owner}; "
                         f"valid: {', '.join(sorted(params))}")
    merged = {k: p.default for k, p in params.items()}
    merged.update({k: _check(params[k], v, owner) for k, v in hparams.items()})
    M, batched, values = broadcast_members(merged, VECTOR_KEYS)
    if s.name == "rbf":
        values["anchor_points"] = anchor_points
    return s, network, M, batched, values


@checked(name=TEXT, rng=optional(instance(MemberRNG)))
def position_encoder(name: str, rng: MemberRNG | None = None, **hparams) -> PositionEncoder:
    """The position encoder G alone (an ``nn.Module`` with ``out_dim``)."""
    s, _, M, batched, hp = _split_hparams(name, dict(hparams), with_network=False)
    rng = rng or MemberRNG(hp["seed"])
    return s.make(M, batched, rng, hp)


def check_plugin(name: str, space=None) -> None:
    """A plugin encoder's contract, checked once on three points before any training, built with the
    first configuration ``space`` gives it: its constructor runs, it is a ``PositionEncoder`` with an
    integer ``out_dim``, and ``features`` returns a finite torch tensor of shape (1 or M, N, out_dim).
    Built-in encoders are tested (and their grids are not expanded here)."""
    s = spec(name)
    if is_builtin(s.name):
        return
    where = f"plugin encoder {s.name}"
    configs = space.configs(s.name) if space is not None else []
    own = {k: v for k, v in (configs[0] if configs else {}).items() if k in {p.name for p in s.params}}
    try:
        G = position_encoder(s.name, **own)
    except SynthError as e:
        raise SynthError(f"{where}: {e}") from None
    except Exception as e:  # the plugin's own code
        raise SynthError(f"{where}: its make()/constructor raised {type(e).__name__}: {e}") from None
    if not isinstance(G, PositionEncoder):
        raise SynthError(f"{where}: make() must return an experiments.models.encodings.PositionEncoder, got "
                         f"{type(G).__name__}")
    dim = getattr(G, "out_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise SynthError(f"{where}: out_dim must be a positive integer, got {dim!r}")
    pts = torch.tensor([[0.0, 0.0], [120.0, 45.0], [-60.0, -80.0]], dtype=torch.float64)[None]
    try:
        f = G.features(pts[..., 0:1], pts[..., 1:2])
    except Exception as e:
        raise SynthError(f"{where}: features() raised {type(e).__name__}: {e}") from None
    if not isinstance(f, torch.Tensor):
        raise SynthError(f"{where}: features() returned {type(f).__name__}, expected a torch tensor of shape "
                         f"(1 or M, N, out_dim = {dim})")
    if f.dim() != 3 or f.shape[0] not in (1, G.n_members) or f.shape[1] != 3 or f.shape[2] != dim:
        raise SynthError(f"{where}: features() of 3 points returned shape {tuple(f.shape)}, expected "
                         f"(1 or {G.n_members}, 3, {dim}) (out_dim = {dim})")
    if not torch.isfinite(f).all():
        raise SynthError(f"{where}: features() returned NaN or infinite values on ordinary points")


class LocationModel(nn.Module):
    """G followed by the network and class layer; forward returns logits."""

    def __init__(self, encoder: PositionEncoder, network: nn.Module, name: str, hparams: dict):
        super().__init__()
        self.position_encoder = encoder
        self.network = network
        self.name = name
        self.hparams = hparams

    @property
    def n_members(self) -> int:
        return self.position_encoder.n_members

    def forward(self, lonlat):
        feats = self.position_encoder(lonlat)
        if self.position_encoder.batched:
            return self.network(feats)
        lead = feats.shape[:-1]
        return self.network(feats.reshape(1, -1, feats.shape[-1])).reshape(*lead, -1)


@checked(name=TEXT, num_classes=integer(1, 10**6), rng=optional(instance(MemberRNG)))
def build(name: str, num_classes: int, rng: MemberRNG | None = None, **hparams) -> LocationModel:
    """The full location model (G + network + class layer, logits out)."""
    if int(num_classes) < 1:
        raise SynthError(f"num_classes must be >= 1, got {num_classes}")
    s, network, M, batched, hp = _split_hparams(name, dict(hparams), with_network=True)
    rng = rng or MemberRNG(hp["seed"])
    if len(rng) != M:
        raise SynthError(f"the random streams are for {len(rng)} members but the hyper-parameters describe {M}")
    G = s.make(M, batched, rng, hp)
    if network == "ffn":
        net = FFN(rng, G.out_dim, num_classes, hp["num_hidden_layers"], hp["hidden_dim"], hp["num_filts"],
                  hp["dropout"], hp["activation"], hp["use_layernorm"], hp["skip_connection"])
    elif network == "resnet":
        net = ResNet(rng, G.out_dim, num_classes, hp["num_filts"], hp["num_res_blocks"], hp["dropout"])
    else:
        net = Siren(rng, G.out_dim, num_classes, hp["num_hidden_layers"], hp["hidden_dim"], hp["dropout"],
                    hp["w0_initial"])
    return LocationModel(G, net, s.name, hp)
