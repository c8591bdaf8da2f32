"""Networks after the position encoder, as stacks of M independent members.

Shapes: activations are (M, N, width). A weight is (M, in, out), so a layer is one batched
matmul (``torch.baddbmm``) for the whole population; a member's slice ``weight[m]`` is the
transpose of the equivalent ``nn.Linear.weight``.

- ``FFN``  — NN_ffn of Space2Vec/Sphere2Vec (SPEC.md section 4, encoders-spec section 3): blocks
  linear → activation → dropout → (+skip where widths match) → LayerNorm; the last block (k → d)
  has activation and dropout but no skip or LayerNorm; then a bias-free class layer.
- ``ResNet`` — Mac Aodha et al. (2019)'s network used by ``wrap``: linear + ReLU, residual blocks
  x + ReLU(W₂ Dropout(ReLU(W₁x))), then the bias-free class layer.
- ``Siren`` — SirenNet (Rußwurm et al. 2024) for spherical harmonics: sin(w₀(Wx + b)) layers,
  w₀ = 30 on the first, a linear last layer giving logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synth.errors import SynthError
from synth.params import Interval, Param

from .members import MemberRNG

ACTIVATIONS = {
    "relu": F.relu,
    "leakyrelu": lambda x: F.leaky_relu(x, 0.2),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "gelu": F.gelu,
}


# The networks' hyper-parameters, declared once (synth.params). Upper bounds keep a typo from
# asking for terabytes; they sit far above anything the paper searched.
_WIDTH = Interval(1, 65536)
_DROPOUT = Param("dropout", float, 0.5, Interval(0, 1, "left"), "member", help="dropout rate per member")
NETWORK_PARAMS = {
    "ffn": (Param("num_hidden_layers", int, 1, Interval(0, 64), help="h, hidden layers of width k"),
            Param("hidden_dim", int, 512, _WIDTH, help="k, width of the hidden layers"),
            Param("num_filts", int, 256, _WIDTH, help="d, width of the last layer before the classes"),
            _DROPOUT,
            Param("activation", str, "relu", tuple(ACTIVATIONS)),
            Param("use_layernorm", bool, True),
            Param("skip_connection", bool, True)),
    "resnet": (Param("num_filts", int, 256, _WIDTH), Param("num_res_blocks", int, 4, Interval(0, 64)), _DROPOUT),
    "siren": (Param("num_hidden_layers", int, 2, Interval(1, 64)), Param("hidden_dim", int, 256, _WIDTH),
              Param("dropout", float, 0.0, Interval(0, 1, "left"), "member"),
              Param("w0_initial", float, 30.0, Interval(0, None, "neither"))),
}


def activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise SynthError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}") from None


class StackedLinear(nn.Module):
    """M independent linear layers. ``init`` is 'xavier', 'torch' (nn.Linear's default) or a bound."""

    def __init__(self, rng: MemberRNG, fan_in: int, fan_out: int, bias: bool = True, init="torch"):
        super().__init__()
        M = len(rng)
        if init == "xavier":
            w_bound = math.sqrt(6.0 / (fan_in + fan_out))
        elif init == "torch":  # kaiming_uniform(a=√5) reduces to U(±1/√fan_in)
            w_bound = 1.0 / math.sqrt(fan_in)
        else:
            w_bound = float(init)
        self.weight = nn.Parameter(rng.uniform((fan_in, fan_out), -w_bound, w_bound))
        b_bound = 1.0 / math.sqrt(fan_in) if init != "siren" else w_bound
        self.bias = nn.Parameter(rng.uniform((1, fan_out), -b_bound, b_bound)) if bias else None
        self.n_members = M

    def forward(self, x):
        if x.shape[0] != self.n_members:
            x = x.expand(self.n_members, *x.shape[1:])
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


class StackedLayerNorm(nn.Module):
    def __init__(self, M: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(M, 1, width))
        self.bias = nn.Parameter(torch.zeros(M, 1, width))
        self.width = width

    def forward(self, x):
        # the per-member affine in one pass (bias + normalised x weight), not a multiply and an add
        return torch.addcmul(self.bias, F.layer_norm(x, (self.width,)), self.weight)


class StackedDropout(nn.Module):
    """Dropout with a per-member rate, masks drawn from each member's own generator."""

    def __init__(self, rng: MemberRNG, p):
        super().__init__()
        p = torch.as_tensor(p, dtype=torch.float32).reshape(-1)
        if torch.any((p < 0) | (p >= 1)):
            raise SynthError(f"dropout must be in [0, 1), got {p.tolist()}")
        self.register_buffer("p", p.expand(len(rng)).clone())
        # decided once on the host: testing p on the device in every forward would stall a GPU
        # (a device-to-host sync per step); members that leave a population keep it as it was
        self.drops = bool(torch.any(p > 0))
        self.rng = rng

    def forward(self, x):
        if not self.training or not self.drops:
            return x
        # One scaled mask (members.MemberRNG.dropout_mask): dropout is a single multiply forward and
        # backward. Built in float32 whatever x is, cast once.
        return x * self.rng.dropout_mask(x.shape[1:], self.p).to(x.dtype)


class FFN(nn.Module):
    def __init__(self, rng: MemberRNG, in_dim: int, num_classes: int, num_hidden_layers: int = 1,
                 hidden_dim: int = 512, num_filts: int = 256, dropout=0.5, activation_name: str = "relu",
                 use_layernorm: bool = True, skip_connection: bool = True):
        super().__init__()
        if num_hidden_layers < 0 or hidden_dim < 1 or num_filts < 1:
            raise SynthError("need num_hidden_layers >= 0, hidden_dim >= 1, num_filts >= 1")
        M = len(rng)
        widths = [in_dim] + [hidden_dim] * num_hidden_layers + [num_filts]
        self.act = activation(activation_name)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.skips = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            self.linears.append(StackedLinear(rng, a, b, init="xavier"))
            last = i == len(widths) - 2
            self.norms.append(StackedLayerNorm(M, b) if use_layernorm and not last else nn.Identity())
            self.skips.append(skip_connection and not last and a == b)
        self.dropout = StackedDropout(rng, dropout)
        self.head = StackedLinear(rng, num_filts, num_classes, bias=False, init="torch")

    def embed(self, x):
        for lin, norm, skip in zip(self.linears, self.norms, self.skips):
            y = self.dropout(self.act(lin(x)))
            x = norm(y + x if skip else y)
        return x

    def forward(self, x):
        return self.head(self.embed(x))


class ResNet(nn.Module):
    def __init__(self, rng: MemberRNG, in_dim: int, num_classes: int, num_filts: int = 256, num_res_blocks: int = 4,
                 dropout=0.5):
        super().__init__()
        self.first = StackedLinear(rng, in_dim, num_filts)
        self.blocks = nn.ModuleList(
            nn.ModuleList([StackedLinear(rng, num_filts, num_filts), StackedLinear(rng, num_filts, num_filts)])
            for _ in range(num_res_blocks))
        self.dropout = StackedDropout(rng, dropout)
        self.head = StackedLinear(rng, num_filts, num_classes, bias=False)

    def embed(self, x):
        x = F.relu(self.first(x))
        for w1, w2 in self.blocks:
            x = x + F.relu(w2(self.dropout(F.relu(w1(x)))))
        return x

    def forward(self, x):
        return self.head(self.embed(x))


class Siren(nn.Module):
    def __init__(self, rng: MemberRNG, in_dim: int, num_classes: int, num_hidden_layers: int = 2,
                 hidden_dim: int = 256, dropout=0.0, w0_initial: float = 30.0, w0: float = 1.0):
        super().__init__()
        self.layers = nn.ModuleList()
        self.w0s = []
        for i in range(max(1, num_hidden_layers)):
            fan_in = in_dim if i == 0 else hidden_dim
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / w0
            self.layers.append(StackedLinear(rng, fan_in, hidden_dim, init=bound))
            self.layers[-1].bias.data = rng.uniform((1, hidden_dim), -bound, bound)
            self.w0s.append(w0_initial if i == 0 else w0)
        self.dropout = StackedDropout(rng, dropout)
        self.head = StackedLinear(rng, hidden_dim, num_classes, init=math.sqrt(6.0 / hidden_dim))

    def embed(self, x):
        for lin, w in zip(self.layers, self.w0s):
            x = torch.sin(w * self.dropout(lin(x)))
        return x

    def forward(self, x):
        return self.head(self.embed(x))
