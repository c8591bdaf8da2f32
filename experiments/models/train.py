"""The population trainer: M configurations of one encoder trained at once as stacked weights.

Members share array shapes (encoder, S, h, k, ...) and may differ in learning rate, weight decay,
r_min / r_max, kernel size, dropout and seed. Each member has its own Adam state and step size,
its own dropout masks, batch order and random negative locations (``experiments.models.members``), and
its own early stopping; the loss is the sum of the members' losses, so no gradient crosses
members. Training follows SPEC.md section 5 (presence–absence loss, Adam, batch 1024,
lr × 0.98 per epoch, selection on validation Top-1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from synth.datasets import Dataset, original_frame
from synth.errors import SynthError
from synth.metrics import default_bands, true_class_ranks
from synth.params import CALLABLE, ROWS, TEXT, Interval, Kind, Param, checked, flag, instance, optional
from synth.sphere import band_index, validate_lonlat

from . import encoders
from .host_memory import keep_freed_memory
from .members import OPTIMIZER_KEYS, OPTIMIZER_PARAMS, MemberRNG, uniform_lonlat
from .optimiser import PopulationAdam  # (also re-exported: tests and users import it from here)

ORIGINAL_FRAME = "@original"  # band kinds of a tilted dataset measured in its frame before the tilt

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
    pruned_at: int | None = None  # the epoch at which the search stopped this member (no test score)
    val_curve: list = field(default_factory=list, repr=False)  # validation Top-1 (%) at each validated epoch


PHASES = ("batch", "forward", "loss", "backward", "optimiser", "validate")


def phase_label(name: str) -> str:
    """The name a phase's span has in ``torch.profiler``'s tables ("sphere_synth.forward", ...)."""
    return f"sphere_synth.{name}"


def phase(name: str):
    """A labelled span of a training step for ``torch.profiler``: its table then splits the
    trainer's time into PHASES (benchmarks/bench_floor.py prints them). About 6 us per span when no
    profiler runs: 0.2 % of a fair_quick step on one CPU thread."""
    return torch.profiler.record_function(phase_label(name))


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


# Logits per member scored at once: 8 MB of float32. The batch depends on the classes only, never on the
# population's size, so a member scores the same points in the same batches alone or among others.
SCORE_VALUES = 1 << 21


def score_batch(num_classes: int) -> int:
    """Points scored at once: 8192 up to 256 classes, fewer beyond (at least 256)."""
    return min(8192, max(256, SCORE_VALUES // max(1, int(num_classes))))


@torch.no_grad()
def predict_ranks(model, x, labels, batch=8192):
    """Rank of the true class (M, N) and whether every logit was finite (M,), for points x (N, 2),
    in eval mode, a batch of points at a time: memory O(M x batch x C), never the (M, N, C) logits
    (100 000 validation points x 1 000 classes x a population were gigabytes). Ranks are
    per row, so they equal the whole matrix's. The trainer passes ``score_batch(C)``."""
    was_training = model.training
    model.eval()
    ranks, finite = [], torch.ones(model.n_members, dtype=torch.bool, device=x.device)
    for i in range(0, x.shape[0], batch):
        logits = model(x[i:i + batch]).float()
        ranks.append(true_class_ranks(logits, labels[i:i + batch]))
        finite &= torch.isfinite(logits).flatten(1).all(1)
    model.train(was_training)
    return torch.cat(ranks, -1), finite


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


def _device_arg(value):
    if isinstance(value, torch.device) or isinstance(value, str) and value.strip():
        return value
    raise TypeError


DEVICE = Kind("a device name (auto, cpu, cuda, cuda:1) or a torch.device", _device_arg)


@checked(data=instance(Dataset), encoder=TEXT, configs=ROWS, settings=optional(instance(TrainSettings)),
         device=DEVICE, progress=optional(CALLABLE), return_model=flag(), on_epoch=optional(CALLABLE))
def train_population(data: Dataset, encoder: str, configs: list[dict], settings: TrainSettings | None = None,
                     device="auto", progress=None, return_model: bool = False, on_epoch=None):
    """Train one member per config (each a dict of encoder/network hyper-parameters plus ``lr``,
    optional ``weight_decay`` and ``seed``); returns their validation and test results (and the
    trained population model, with the selected weights, if ``return_model``).

    ``on_epoch(epoch, members, val_top1)``, if given, is called after every validated epoch with
    the original indices of the members still training and their validation Top-1 (%); it returns
    the members to prune. A pruned member, like one stopped by ``patience``, leaves the population
    at once (its weights, Adam state and random stream are dropped, so it costs no more compute);
    the others continue exactly as they would have without it."""
    settings = settings or TrainSettings()
    device = resolve_device(device) if isinstance(device, str) else device
    tf32 = torch.backends.cuda.matmul.allow_tf32
    if settings.amp == "tf32" and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # a process-wide switch: put back when this call returns
    try:
        return _train_population(data, encoder, configs, settings, device, progress, return_model, on_epoch)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _check_labels(data: Dataset) -> None:
    """Every split's labels in 0..C-1 (a file is checked on load; an in-memory dataset here)."""
    C = data.recipe.n_classes
    for split in ("train", "val", "test"):
        labels = data.split(split)[1]
        if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= C):
            raise SynthError(f"dataset {data.name}: {split} labels must be integers in 0..{C - 1} "
                             f"(the recipe's {C} classes)")


def _train_population(data, encoder, configs, settings, dev, progress, return_model, on_epoch):
    if not configs:
        raise SynthError("a population needs at least one configuration")
    _check_labels(data)
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
    # latitude bands in the frame the encoder sees; a tilted dataset also in its frame before the tilt
    # (the same test points in the same bands at every tilt: a paired comparison of where accuracy moves)
    frames = {"": arrays["test"][0][:, 1]}
    if data.recipe.tilt != 0:
        frames[ORIGINAL_FRAME] = original_frame(data.recipe, arrays["test"][0])[:, 1]
    if encoder == "rbf" and "anchor_points" not in hp:
        hp["anchor_points"] = arrays["train"][0]
    if dev.type == "cpu":
        keep_freed_memory()  # step n+1 reuses step n's pages (host_memory says why)
    rng = MemberRNG(seeds, dev)
    model = encoders.build(encoder, C, rng=rng, seed=list(seeds), **hp).to(dev)
    model.position_encoder.check_inputs = False  # validated once above
    stacked = _stacked(model)  # the state entries stacked per member: fixed while members leave

    t = {s: (torch.as_tensor(ll, dtype=torch.float64, device=dev), torch.as_tensor(y, dtype=torch.int64, device=dev))
         for s, (ll, y) in arrays.items()}
    x_train, y_train = t["train"]
    beta = float(settings.pos_weight or C)
    adam = PopulationAdam(model.parameters(), lr, wd, decay=any(v != 0 for v in optimizer["weight_decay"]))
    ids = list(range(M))  # the original index of each member still in the population
    best_top1 = torch.full((M,), -1.0, device=dev)
    best_epoch = torch.zeros(M, dtype=torch.int64, device=dev)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    curves = [[] for _ in range(M)]
    val_curves = [[] for _ in range(M)]
    epochs_run = [0] * M
    out: list = [None] * M
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if settings.amp == "bf16" and dev.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    validate = settings.select == "best-val" or on_epoch is not None
    for epoch in range(settings.epochs):
        adam.lr = adam.base_lr * (settings.lr_decay ** epoch)
        epoch_loss = torch.zeros(len(ids), device=dev)
        n_batches = 0
        for idx in epoch_batches(rng, len(x_train), settings.batch_size):
            with phase("batch"):
                x, y = x_train[idx], y_train[idx]
                b = idx.shape[1]
                if settings.loss == "presence-absence":
                    x = torch.cat([x, random_locations(rng, b, settings.negatives)], 1)
            with autocast, phase("forward"):
                logits = model(x).float()
            with phase("loss"):
                loss = (presence_absence_loss(logits[:, :b], logits[:, b:], y, beta)
                        if settings.loss == "presence-absence" else softmax_loss(logits, y))
            with phase("backward"):
                adam.zero_grad()
                loss.sum().backward()
            with phase("optimiser"):
                adam.step()
            epoch_loss += loss.detach()
            n_batches += 1
        for i, m in enumerate(ids):
            curves[m].append(float(epoch_loss[i] / n_batches))
            epochs_run[m] = epoch + 1
        if progress is not None:
            progress(epoch + 1, settings.epochs)
        if not validate or (epoch + 1) % settings.eval_every:
            continue
        with phase("validate"):
            top1 = (predict_ranks(model, *t["val"], batch=score_batch(C))[0] <= 1).double().mean(-1).float()
        top1 = 100.0 * top1
        for i, m in enumerate(ids):
            val_curves[m].append(float(top1[i]))
        leaving = {}  # position in the population -> "pruned" or "stopped"
        if on_epoch is not None:
            for m in on_epoch(epoch + 1, list(ids), top1.tolist()) or ():
                leaving[ids.index(m)] = "pruned"
        if settings.select == "best-val":
            better = top1 > best_top1
            if better.any():
                best_top1 = torch.where(better, top1, best_top1)
                best_epoch = torch.where(better, torch.full_like(best_epoch, epoch + 1), best_epoch)
                for k, v in model.state_dict().items():
                    if k in stacked:
                        best_state[k][better] = v.detach()[better]
            if settings.patience is not None:
                for i in range(len(ids)):
                    if i not in leaving and epoch + 1 - int(best_epoch[i]) >= settings.patience:
                        leaving[i] = "stopped"
        if not leaving:
            continue
        for i, why in leaving.items():
            if why == "pruned":
                out[ids[i]] = "pruned"
        keep = [i for i in range(len(ids)) if i not in leaving]
        if not keep:  # everyone leaves: the stopped ones are scored below with the population itself
            break
        stopped = [i for i, why in leaving.items() if why == "stopped"]
        if stopped:  # finished members: score their selected weights now, then they leave
            sub = _subset(model, stopped)
            sub.load_state_dict(_select(best_state, model, stopped))
            for j, r in enumerate(_score(sub, t, arrays, frames, C)):
                out[ids[stopped[j]]] = dict(r, best_epoch=int(best_epoch[stopped[j]]))
        best_state = _select(best_state, model, keep)
        best_top1, best_epoch = best_top1[keep], best_epoch[keep]
        _compact_(model, rng, adam, keep)
        ids = [ids[i] for i in keep]
    if settings.select == "best-val":
        model.load_state_dict(best_state)
    else:
        best_epoch = torch.tensor([epochs_run[m] for m in ids], dtype=torch.int64)
    if any(out[m] is None for m in ids):
        for j, r in enumerate(_score(model, t, arrays, frames, C)):
            if out[ids[j]] is None:
                out[ids[j]] = r
    final_best = {m: int(best_epoch[i]) for i, m in enumerate(ids)}
    results = []
    for m in range(M):
        r = out[m]
        pruned = r == "pruned"
        if pruned:  # no test score; its best validation so far
            r = {"val": {"top1": max(val_curves[m]), "top3": None, "mrr": None},
                 "test": {"top1": None, "top3": None, "mrr": None}, "bands": {}, "diverged": False}
            best = settings.eval_every * (1 + val_curves[m].index(max(val_curves[m])))
        elif m in final_best:  # trained to the end (or with the last members)
            best = final_best[m]
        else:  # stopped by patience, scored when it left
            best = r["best_epoch"]
        results.append(MemberResult(config=dict(configs[m]), val=r["val"], test=r["test"], best_epoch=int(best),
                                    epochs_run=epochs_run[m], loss_curve=curves[m], bands=r["bands"],
                                    diverged=r["diverged"], pruned_at=epochs_run[m] if pruned else None,
                                    val_curve=val_curves[m]))
    if return_model:
        if len(ids) != M:  # members that left early are no longer in the model
            raise SynthError("return_model needs every member to train to the end (no pruning or early stopping)")
        model.eval()
        return results, model
    return results


def _stacked(model) -> set:
    """Names of the state entries stacked per member (leading dimension = population size)."""
    M = model.n_members
    return {k for k, v in model.state_dict().items() if v.dim() and v.shape[0] == M} if M > 1 else \
        {k for k, v in model.state_dict().items() if v.dim() and k not in _SHARED}


_SHARED = {"position_encoder.freq"}  # the only state that is not per member (NeRF's octaves, shape (1, L))


def _select(state: dict, model, idx) -> dict:
    """The state of the members at positions ``idx``; shared entries as they are."""
    stacked = _stacked(model)
    index = torch.as_tensor(idx, device=next(iter(state.values())).device)
    return {k: (v[index].clone() if k in stacked else v) for k, v in state.items()}


def _compact_(model, rng: MemberRNG, adam: "PopulationAdam", keep) -> None:
    """Members not in ``keep`` leave the population: their weights, Adam state, learning rates and
    random streams are dropped, so they cost nothing from now on. The others go on bit for bit as
    they would have (members never influence each other; tests/test_train.py)."""
    index = torch.as_tensor(keep, device=adam.lr.device)
    replaced = _slice_members_(model, keep)
    for i, p in enumerate(adam.params):
        if id(p) in replaced:
            adam.params[i] = replaced[id(p)]
            adam.m[i] = adam.m[i][index]
            adam.v[i] = adam.v[i][index]
    adam.base_lr, adam.lr, adam.wd = adam.base_lr[index], adam.lr[index], adam.wd[index]
    rng.keep_(keep)


def _subset(model, idx):
    """A copy of the population holding only the members at positions ``idx`` (for scoring)."""
    import copy

    sub = copy.deepcopy(model)
    _slice_members_(sub, idx)
    return sub


def _slice_members_(model, idx) -> dict:
    """Keep the members at positions ``idx`` in every stacked parameter and buffer, in place.

    Parameters are replaced by new ones (autograd remembers a leaf's shape); returns
    {id(old parameter): new parameter} so that an optimiser can follow."""
    stacked = _stacked(model)
    index = torch.as_tensor(idx, device=next(model.parameters()).device)
    replaced = {}
    with torch.no_grad():
        for module_name, module in model.named_modules():
            prefix = module_name + "." if module_name else ""
            for name, p in list(module._parameters.items()):
                if p is not None and prefix + name in stacked:
                    new = torch.nn.Parameter(p.detach()[index].clone(), requires_grad=p.requires_grad)
                    module._parameters[name] = new
                    replaced[id(p)] = new
            for name, b in list(module._buffers.items()):
                if b is not None and prefix + name in stacked:
                    module._buffers[name] = b[index].clone()
    for module in model.modules():
        if "n_members" in vars(module):  # an attribute, not LocationModel's property
            module.n_members = len(idx)
    return replaced


def _score(model, t: dict, arrays: dict, frames: dict, C: int) -> list[dict]:
    """Validation and test metrics, per-band test results and ``diverged``, per member."""
    results, ranks, diverged = {}, {}, None
    for s in ("val", "test"):
        ranks[s], finite = predict_ranks(model, *t[s], batch=score_batch(C))
        results[s] = _metrics(ranks[s])
        d = (~finite).tolist()
        diverged = d if diverged is None else [a or b for a, b in zip(diverged, d)]
    bands = {kind + suffix: _band_metrics(ranks["test"], lat, kind)
             for suffix, lat in frames.items() for kind in ("equal-angle", "equal-area")}
    return [{"val": {k: v[m] for k, v in results["val"].items()},
             "test": {k: v[m] for k, v in results["test"].items()},
             "bands": {kind: {"edges": b["edges"], "n": b["n"], "top1": [x[m] for x in b["top1"]],
                              "mrr": [x[m] for x in b["mrr"]]} for kind, b in bands.items()},
             "diverged": diverged[m]} for m in range(len(diverged))]
