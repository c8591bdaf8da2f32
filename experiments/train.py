"""The population trainer: M configurations of one encoder trained at once as stacked weights.

Members share array shapes (encoder, S, h, k, ...) and may differ in learning rate, weight decay,
r_min / r_max, kernel size, dropout and seed. Each member has its own Adam state and step size,
its own dropout masks, batch order and random negative locations (``experiments.members``), and
its own early stopping; the loss is the sum of the members' losses, so no gradient crosses
members. Training follows SPEC.md section 5 (presence–absence loss, Adam, batch 1024,
lr × 0.98 per epoch, selection on validation Top-1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from synth.datasets import Dataset
from synth.errors import SynthError
from synth.metrics import default_bands, true_class_ranks
from synth.params import Interval, Param
from synth.sphere import band_index, validate_lonlat

from . import encoders
from .members import OPTIMIZER_KEYS, OPTIMIZER_PARAMS, MemberRNG, uniform_lonlat

# Every training setting, declared once: TrainSettings, the [settings] table of a space and the
# CLI's overrides are all checked here.
SETTINGS_PARAMS = {p.name: p for p in (
    Param("epochs", int, 100, Interval(1, 100000), "setting"),
    Param("batch_size", int, 1024, Interval(1, 1 << 20), "setting"),
    Param("lr_decay", float, 0.98, Interval(0, 1, "right"), "setting", help="lr x lr_decay per epoch"),
    Param("loss", str, "presence-absence", ("presence-absence", "softmax"), "setting"),
    Param("pos_weight", float, None, Interval(0, None, "neither"), "setting", optional=True,
          help="beta of the presence-absence loss; none = number of classes"),
    Param("negatives", str, "uniform", ("uniform", "public-code"), "setting",
          help="random negatives: uniform on the sphere, or the released code's quadrant"),
    Param("select", str, "best-val", ("best-val", "last"), "setting"),
    Param("patience", int, 30, Interval(1, 100000), "setting", optional=True,
          help="epochs without a better validation Top-1 before a member stops; none = never"),
    Param("eval_every", int, 1, Interval(1, 100000), "setting", help="validate every this many epochs (<= epochs)"),
    Param("amp", str, "none", ("none", "tf32", "bf16"), "setting", help="reduced precision, GPU only"),
)}


@dataclass
class TrainSettings:
    """How every member is trained. ``select="last"`` and ``negatives="public-code"`` reproduce the
    released Sphere2Vec code; the defaults follow the paper's text (SPEC.md section 5)."""

    epochs: int = 100
    batch_size: int = 1024
    lr_decay: float = 0.98
    loss: str = "presence-absence"  # or "softmax"
    pos_weight: float | None = None  # β; None = number of classes
    negatives: str = "uniform"  # or "public-code" (lon 0–180°E, lat 0–90°N: the released code's bug)
    select: str = "best-val"  # or "last"
    patience: int | None = 30  # epochs without a better validation Top-1 before a member stops
    eval_every: int = 1
    amp: str = "none"  # "none", "tf32" or "bf16" (GPU only)

    def __post_init__(self):
        for name, param in SETTINGS_PARAMS.items():
            object.__setattr__(self, name, param.check(getattr(self, name), "training settings"))
        if self.select == "best-val" and self.eval_every > self.epochs:
            # no validation would ever run, and "best" would be the untrained weights
            raise SynthError(f"training settings: eval_every = {self.eval_every} is more than epochs = {self.epochs}; "
                             "no epoch would be validated")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MemberResult:
    config: dict
    val: dict
    test: dict
    best_epoch: int
    epochs_run: int
    loss_curve: list = field(repr=False)
    bands: dict = field(repr=False)
    diverged: bool = False  # non-finite logits on validation or test: scores are worst-rank, never selected


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SynthError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if dev.type not in ("cpu", "cuda"):
        raise SynthError(f"device {device!r} is not supported; use auto, cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SynthError("device cuda was asked for but torch sees no CUDA GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SynthError(f"device {device} does not exist: torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    return dev


def presence_absence_loss(logits_pos, logits_neg, labels, pos_weight: float):
    """Per-member loss (M,) of Mac Aodha et al.'s presence–absence objective (paper Eq. 8).

    ℓ(t) = −log(t + 1e-5); positives weighted by β at their own class, every other class at the
    point and every class at the random location count as absences; averaged over B·C.
    """
    p = torch.sigmoid(logits_pos)
    q = torch.sigmoid(logits_neg)
    absent = -torch.log(1.0 - p + 1e-5)
    true_p = p.gather(-1, labels[..., None])
    present = -pos_weight * torch.log(true_p + 1e-5)
    absent_true = absent.gather(-1, labels[..., None])
    B, C = logits_pos.shape[-2], logits_pos.shape[-1]
    per_point = absent.sum(-1, keepdim=True) - absent_true + present
    return (per_point.sum((-1, -2)) + (-torch.log(1.0 - q + 1e-5)).sum((-1, -2))) / (B * C)


def softmax_loss(logits_pos, labels):
    lp = torch.log_softmax(logits_pos, -1)
    return -lp.gather(-1, labels[..., None]).mean((-1, -2))


def random_locations(rng: MemberRNG, n: int, kind: str = "uniform"):
    """(M, n, 2) random (lon, lat) degrees per member: area-uniform, or the released code's quadrant."""
    if kind == "public-code":
        u = rng.rand((n, 2), dtype=torch.float64)
        return torch.stack([180.0 * u[..., 0], 90.0 * u[..., 1]], -1)
    return uniform_lonlat(rng, n)


def epoch_batches(rng: MemberRNG, n_train: int, batch_size: int):
    """Per-member shuffled index batches (M, b) covering every training point once."""
    perm = rng.permutation(n_train)
    for i in range(0, n_train, batch_size):
        yield perm[:, i:i + batch_size]


class PopulationAdam:
    """Adam (torch.optim.Adam's update, L2 weight decay) with a learning rate per member."""

    def __init__(self, params, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.base_lr = lr
        self.lr = lr.clone()
        self.wd = weight_decay
        self.b1, self.b2 = betas
        self.eps = eps
        self.step_count = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        self.step_count += 1
        bc1 = 1 - self.b1 ** self.step_count
        bc2_sqrt = math.sqrt(1 - self.b2 ** self.step_count)
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            if torch.any(self.wd != 0):
                g = g + self.wd.view(shape) * p
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom * (bc1 / self.lr.view(shape)), value=-1.0)

    def zero_grad(self):
        for p in self.params:
            p.grad = None


@torch.no_grad()
def predict_logits(model, x, batch=8192):
    """Logits (M, N, C) of every member for points x (N, 2), in eval mode, a batch at a time."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch]) for i in range(0, x.shape[0], batch)], 1)
    model.train(was_training)
    return out.float()


def _metrics(ranks) -> dict:
    r = ranks.double()
    return {"top1": (100 * (r <= 1).double().mean(-1)).tolist(), "top3": (100 * (r <= 3).double().mean(-1)).tolist(),
            "mrr": (1.0 / r).mean(-1).tolist()}


def evaluate_logits(logits, labels) -> dict:
    """Top-1, Top-3, MRR and ``diverged`` per member from logits (M, N, C) and labels (N,).

    Ranks follow synth.metrics (ties and non-finite logits count against the true class); a
    member with any non-finite logit is marked diverged."""
    out = _metrics(true_class_ranks(logits, labels))
    out["diverged"] = (~torch.isfinite(logits).flatten(1).all(1)).tolist()
    return out


def _band_metrics(ranks, lat, kind):
    edges = default_bands(kind)
    idx = torch.as_tensor(band_index(lat, edges), device=ranks.device)
    out = {"edges": edges.tolist(), "n": [], "top1": [], "mrr": []}
    r = ranks.double()
    for b in range(len(edges) - 1):
        sel = idx == b
        n = int(sel.sum())
        out["n"].append(n)
        out["top1"].append((100 * (r[:, sel] <= 1).double().mean(-1)).tolist() if n else [float("nan")] * len(r))
        out["mrr"].append((1.0 / r[:, sel]).mean(-1).tolist() if n else [float("nan")] * len(r))
    return out


def _split_configs(configs: list[dict]) -> tuple[dict, dict]:
    keys = set(configs[0])
    for c in configs:
        if set(c) != keys:
            raise SynthError("all members of a population must name the same hyper-parameters")
    stacked = {k: [c[k] for c in configs] for k in keys}
    opt = {k: stacked.pop(k) for k in OPTIMIZER_KEYS if k in stacked}
    return stacked, opt


def train_population(data: Dataset, encoder: str, configs: list[dict], settings: TrainSettings | None = None,
                     device="auto", progress=None, return_model: bool = False):
    """Train one member per config (each a dict of encoder/network hyper-parameters plus ``lr``,
    optional ``weight_decay`` and ``seed``); returns their validation and test results (and the
    trained population model, with the selected weights, if ``return_model``)."""
    settings = settings or TrainSettings()
    if not configs:
        raise SynthError("a population needs at least one configuration")
    dev = resolve_device(device) if isinstance(device, str) else device
    encoder = encoders.canonical_name(encoder)
    hp, opt = _split_configs([dict(c) for c in configs])
    M = len(configs)
    optimizer = {p.name: [p.check(v, f"{encoder} optimiser") for v in opt.get(p.name, [p.default] * M)]
                 for p in OPTIMIZER_PARAMS}
    lr = torch.tensor(optimizer["lr"], dtype=torch.float32, device=dev)
    wd = torch.tensor(optimizer["weight_decay"], dtype=torch.float32, device=dev)
    seeds = hp.pop("seed", [0] * M)
    arrays = {s: data.split(s) for s in ("train", "val", "test")}
    for s, (ll, _) in arrays.items():
        if len(ll) == 0:
            raise SynthError(f"dataset {data.name}: the {s} split is empty; nothing to train on or score")
        validate_lonlat(ll, name=f"{data.name} {s} coordinates")
    C = data.recipe.n_classes
    if encoder == "rbf" and "anchor_points" not in hp:
        hp["anchor_points"] = arrays["train"][0]
    rng = MemberRNG(seeds, dev)
    model = encoders.build(encoder, C, rng=rng, seed=list(seeds), **hp).to(dev)
    model.position_encoder.check_inputs = False  # validated once above

    t = {s: (torch.as_tensor(ll, dtype=torch.float64, device=dev), torch.as_tensor(y, dtype=torch.int64, device=dev))
         for s, (ll, y) in arrays.items()}
    x_train, y_train = t["train"]
    beta = float(settings.pos_weight or C)
    adam = PopulationAdam(model.parameters(), lr, wd)
    best_top1 = torch.full((M,), -1.0, device=dev)
    best_epoch = torch.zeros(M, dtype=torch.int64, device=dev)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    active = torch.ones(M, dtype=torch.bool, device=dev)
    curves = []
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if settings.amp == "bf16" and dev.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    if settings.amp == "tf32" and dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    epochs_run = 0
    for epoch in range(settings.epochs):
        adam.lr = adam.base_lr * (settings.lr_decay ** epoch) * active
        epoch_loss = torch.zeros(M, device=dev)
        n_batches = 0
        for idx in epoch_batches(rng, len(x_train), settings.batch_size):
            x, y = x_train[idx], y_train[idx]
            b = idx.shape[1]
            with autocast:
                if settings.loss == "presence-absence":
                    neg = random_locations(rng, b, settings.negatives)
                    logits = model(torch.cat([x, neg], 1)).float()
                    loss = presence_absence_loss(logits[:, :b], logits[:, b:], y, beta)
                else:
                    loss = softmax_loss(model(x).float(), y)
            adam.zero_grad()
            loss.sum().backward()
            adam.step()
            epoch_loss += loss.detach()
            n_batches += 1
        curves.append((epoch_loss / n_batches).tolist())
        epochs_run = epoch + 1
        if progress is not None:
            progress(epoch + 1, settings.epochs)
        if settings.select == "best-val" and (epoch + 1) % settings.eval_every == 0:
            top1 = (true_class_ranks(predict_logits(model, t["val"][0]), t["val"][1]) <= 1).double().mean(-1).float()
            better = (top1 > best_top1) & active
            if better.any():
                best_top1 = torch.where(better, top1, best_top1)
                best_epoch = torch.where(better, torch.full_like(best_epoch, epoch + 1), best_epoch)
                for k, v in model.state_dict().items():
                    if v.dim() and v.shape[0] == M:
                        best_state[k][better] = v.detach()[better]
            if settings.patience is not None:
                active &= (epoch + 1 - best_epoch) < settings.patience
                if not active.any():
                    break
    if settings.select == "best-val":
        model.load_state_dict(best_state)
    else:
        best_epoch[:] = epochs_run
    results = {}
    ranks = {}
    diverged = [False] * M
    for s in ("val", "test"):
        logits = predict_logits(model, t[s][0])
        ranks[s] = true_class_ranks(logits, t[s][1])
        results[s] = evaluate_logits(logits, t[s][1])
        diverged = [a or b for a, b in zip(diverged, results[s].pop("diverged"))]
    lat = arrays["test"][0][:, 1]
    bands = {kind: _band_metrics(ranks["test"], lat, kind) for kind in ("equal-angle", "equal-area")}
    out = []
    for m in range(M):
        cfg = dict(configs[m])
        out.append(MemberResult(
            config=cfg,
            val={k: v[m] for k, v in results["val"].items()},
            test={k: v[m] for k, v in results["test"].items()},
            best_epoch=int(best_epoch[m]), epochs_run=epochs_run, diverged=diverged[m],
            loss_curve=[c[m] for c in curves],
            bands={kind: {"edges": b["edges"], "n": b["n"], "top1": [x[m] for x in b["top1"]],
                          "mrr": [x[m] for x in b["mrr"]]} for kind, b in bands.items()}))
    if return_model:
        model.eval()
        return out, model
    return out
