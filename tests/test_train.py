import math

import numpy as np
import pytest
import torch
from torch import nn

from synth import SynthError, bayes, datasets
from experiments.models import encoders
from experiments.models.members import MemberRNG
from experiments.models.train import (TrainSettings, epoch_batches, presence_absence_loss, random_locations,
                               train_population)

SMALL = dict(frequency_num=4, min_radius=0.05, num_hidden_layers=1, hidden_dim=32, num_filts=16)


@pytest.fixture(scope="module")
def tiny():
    r = datasets.Recipe(name="tiny", n_classes=6, samples_per_class=60, kappa_max=8)
    return datasets.generate(r, 0)


def test_presence_absence_loss_by_hand():
    lp = torch.tensor([[[0.0, 2.0]]])  # one point, two classes, label 1
    ln = torch.tensor([[[-1.0, 0.5]]])
    s = torch.sigmoid
    ell = lambda t: -math.log(t + 1e-5)  # noqa: E731
    expected = (2 * ell(s(torch.tensor(2.0)).item()) + ell(1 - 0.5)
                + ell(1 - s(torch.tensor(-1.0)).item()) + ell(1 - s(torch.tensor(0.5)).item())) / 2
    got = presence_absence_loss(lp, ln, torch.tensor([[1]]), pos_weight=2.0)
    assert got.shape == (1,) and got.item() == pytest.approx(expected, rel=1e-6)


def test_random_negatives_cover_the_sphere_uniformly():
    from scipy import stats

    loc = random_locations(MemberRNG([3]), 20000)[0].numpy()
    assert stats.kstest(np.sin(np.deg2rad(loc[:, 1])), "uniform", args=(-1, 2)).pvalue > 1e-3
    assert loc[:, 0].min() >= -180 and loc[:, 0].max() < 180
    quad = random_locations(MemberRNG([3]), 1000, "public-code")[0].numpy()
    assert quad.min() >= 0 and quad[:, 0].max() <= 180 and quad[:, 1].max() <= 90


class PlainFFN(nn.Module):
    """The same network written with plain nn layers (h = 1: W -> k -> d -> C), weights copied."""

    def __init__(self, G, pop_net):
        super().__init__()
        self.G = G
        l1, l2 = pop_net.linears
        self.l1, self.l2 = nn.Linear(*l1.weight.shape[1:]), nn.Linear(*l2.weight.shape[1:])
        self.ln = nn.LayerNorm(l1.weight.shape[2])
        self.head = nn.Linear(*pop_net.head.weight.shape[1:], bias=False)
        with torch.no_grad():
            for plain, pop in ((self.l1, l1), (self.l2, l2)):
                plain.weight.copy_(pop.weight[0].T)
                plain.bias.copy_(pop.bias[0, 0])
            self.ln.weight.copy_(pop_net.norms[0].weight[0, 0])
            self.ln.bias.copy_(pop_net.norms[0].bias[0, 0])
            self.head.weight.copy_(pop_net.head.weight[0].T)

    def forward(self, x):
        g = self.G(x)
        h = torch.relu(self.l1(g))
        h = self.ln(h + g if h.shape == g.shape else h)  # the skip connection where widths match
        return self.head(torch.relu(self.l2(h)))


def test_population_of_one_reproduces_plain_torch_training(tiny):
    hp = dict(SMALL, dropout=0.0)
    settings = TrainSettings(epochs=6, batch_size=64, select="last", patience=None)
    res = train_population(tiny, "sphereM+", [dict(hp, lr=0.01, seed=5)], settings, device="cpu")[0]

    # the reference: plain modules, torch.optim.Adam, the same batches and negatives
    rng = MemberRNG([5])
    pop = encoders.build("sphereM+", 6, rng=rng, seed=[5], **hp)
    plain = PlainFFN(encoders.position_encoder("sphereM+", **{k: hp[k] for k in ("frequency_num", "min_radius")}),
                     pop.network)
    opt = torch.optim.Adam(plain.parameters(), lr=0.01)
    x_train = torch.tensor(tiny["train_lonlat"])
    y_train = torch.tensor(tiny["train_label"])
    curve = []
    for epoch in range(settings.epochs):
        for g in opt.param_groups:
            g["lr"] = 0.01 * 0.98 ** epoch
        total, n = 0.0, 0
        for idx in epoch_batches(rng, len(x_train), 64):
            x, y = x_train[idx[0]], y_train[idx[0]]
            neg = random_locations(rng, len(y))[0]
            logits = plain(torch.cat([x, neg]))
            loss = presence_absence_loss(logits[None, :len(y)], logits[None, len(y):], y[None], 6.0)[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        curve.append(total / n)
    assert np.allclose(res.loss_curve, curve, atol=1e-5, rtol=0)
    assert curve[-1] < curve[0]


def test_members_never_influence_each_other(tiny):
    settings = TrainSettings(epochs=4, batch_size=64, patience=None)
    a = dict(SMALL, dropout=0.5, lr=0.01, seed=1)
    b = dict(SMALL, dropout=0.2, lr=0.001, min_radius=0.2, seed=2)
    c = dict(SMALL, dropout=0.5, lr=0.05, min_radius=0.01, seed=9)
    ab = train_population(tiny, "sphereM+", [a, b], settings, device="cpu")
    ca = train_population(tiny, "sphereM+", [c, a], settings, device="cpu")
    assert ab[0].loss_curve == ca[1].loss_curve
    assert ab[0].val == ca[1].val and ab[0].test == ca[1].test
    assert ab[1].loss_curve != ab[0].loss_curve


def test_identical_members_and_repeated_runs_give_identical_results(tiny):
    settings = TrainSettings(epochs=3, batch_size=64)
    cfg = dict(SMALL, dropout=0.5, lr=0.01, seed=4)
    twin = train_population(tiny, "grid", [cfg, cfg], settings, device="cpu")
    again = train_population(tiny, "grid", [cfg], settings, device="cpu")
    assert twin[0].loss_curve == twin[1].loss_curve == again[0].loss_curve
    assert twin[0].test == again[0].test


def test_early_stopping_keeps_the_best_validation_weights(tiny):
    settings = TrainSettings(epochs=40, batch_size=64, patience=5)
    res = train_population(tiny, "xyz", [dict(hidden_dim=32, num_filts=16, lr=0.05, seed=0)], settings, device="cpu")[0]
    assert 1 <= res.best_epoch <= res.epochs_run
    assert res.epochs_run < 40 or res.best_epoch > 35  # stopped early unless it kept improving
    bands = res.bands["equal-angle"]
    assert sum(bands["n"]) == len(tiny["test_label"]) and len(bands["edges"]) == 19


def test_bad_configurations_are_refused(tiny):
    with pytest.raises(SynthError, match="same for every member"):
        train_population(tiny, "grid", [dict(SMALL, lr=0.1), dict(SMALL, hidden_dim=64, lr=0.1)], device="cpu")
    with pytest.raises(SynthError, match="lr = -1.0"):
        train_population(tiny, "grid", [dict(SMALL, lr=-1.0)], device="cpu")
    with pytest.raises(SynthError, match="unknown encoder"):
        train_population(tiny, "gird", [dict(lr=0.1)], device="cpu")
    with pytest.raises(SynthError, match="epochs"):
        TrainSettings(epochs=0)


def test_sphereM_plus_on_U3_reaches_the_bayes_ceiling():
    # The sanity bar: sphereM+ at the paper's best settings (S = 32, h = 1, k = 1024,
    # dropout 0.5; r_min = 0.01 and lr = 0.001 found best here) within 3 points of Bayes on U3.
    ds = datasets.generate("U3", 0)
    ceiling = bayes.evaluate(ds, "test")["top1"]
    cfg = dict(frequency_num=32, min_radius=0.01, num_hidden_layers=1, hidden_dim=1024, dropout=0.5, lr=0.001, seed=0)
    res = train_population(ds, "sphereM+", [cfg], TrainSettings(epochs=60, patience=20), device="cpu")[0]
    assert res.test["top1"] >= ceiling - 3.0, (res.test["top1"], ceiling)


@pytest.mark.parametrize("mode", ["generators", "counter"])
def test_member_streams_depend_only_on_their_own_seed(mode):
    # "counter" is the GPU back-end; it runs on the CPU too, so both are checked here.
    a = MemberRNG([7, 8, 9], mode=mode)
    b = MemberRNG([9, 1], mode=mode)
    ua, ub = a.rand((1000,)), b.rand((1000,))
    assert torch.equal(ua[2], ub[0]) and not torch.equal(ua[0], ua[1])
    assert ua.min() >= 0 and ua.max() < 1 and abs(float(ua.mean()) - 0.5) < 0.05
    pa, pb = a.permutation(50), b.permutation(50)
    assert torch.equal(pa[2], pb[0]) and torch.equal(pa[0].sort().values, torch.arange(50))
    n = a.normal((20000,))
    assert abs(float(n.mean())) < 0.05 and abs(float(n.std()) - 1) < 0.05


@pytest.mark.parametrize("mode", ["generators", "counter"])
def test_dropout_masks_drop_each_members_rate_and_keep_the_mean(mode):
    # 3 x 400 000 draws per member: a rate's standard error is at most 7.9e-4, so 0.004 is 5 of them;
    # the rate is counted in 65536ths, so p = 0.1 drops 6554 / 65536 and scales by 65536 / 58982
    p = torch.tensor([0.0, 0.1, 0.5, 0.9])
    rng = MemberRNG([3, 4, 5, 6], mode=mode)
    masks = torch.cat([rng.dropout_mask((1000, 400), p) for _ in range(3)], 1)
    rate = (masks == 0).double().mean((1, 2))
    assert torch.allclose(rate, p.double(), atol=0.004) and rate[0] == 0
    dropped = torch.tensor([0, 6554, 32768, 58982])
    assert torch.equal(masks.amax((1, 2)), (65536 / (65536 - dropped)).float())
    assert set(masks[1].unique().tolist()) == {0.0, float(torch.tensor(65536 / 58982).float())}
    assert torch.allclose(masks.double().mean((1, 2)), torch.ones(4, dtype=torch.float64), atol=0.02)
    # a member's masks come from its own stream: the same seed alone gives the same masks
    alone = MemberRNG([5], mode=mode).dropout_mask((1000, 400), p[2:3])
    assert torch.equal(alone[0], masks[2, :1000])
    # neighbouring elements are not tied to each other (four masks share one 64-bit number)
    m = masks[2].flatten() > 0
    assert abs(float((m[:-1] & m[1:]).double().mean()) - 0.25) < 0.004


def test_population_trains_with_the_counter_streams_too(tiny, monkeypatch):
    import experiments.models.train as T

    monkeypatch.setattr(T, "MemberRNG", lambda seeds, dev: MemberRNG(seeds, dev, mode="counter"))
    cfg = dict(SMALL, dropout=0.5, lr=0.01, seed=3)
    twin = train_population(tiny, "sphereM+", [cfg, cfg, dict(cfg, seed=4)], TrainSettings(epochs=3, batch_size=64),
                            device="cpu")
    assert twin[0].loss_curve == twin[1].loss_curve != twin[2].loss_curve
    assert twin[0].loss_curve[-1] < twin[0].loss_curve[0]


def test_a_population_may_name_its_network():
    """Found while ablating spherical harmonics: a population whose configurations name their (shared)
    network passed the network as a list of per-member values and was refused."""
    from synth.datasets import generate
    from experiments.models.train import TrainSettings, train_population
    ds = generate("U1", 0)
    configs = [{"network": "ffn", "legendre_polys": 4, "hidden_dim": 8, "num_filts": 8, "lr": lr} for lr in (0.01, 0.02)]
    out = train_population(ds, "spherical_harmonics", configs, TrainSettings(epochs=1), device="cpu")
    assert len(out) == 2


def test_ranks_are_scored_a_batch_of_points_at_a_time_with_the_whole_matrix_ranks():
    """Validation and test scoring built the (members, points, classes) logits at once
    (100 000 points x 1 000 classes x a population: gigabytes). predict_ranks never passes more than
    a batch of points through the model, and gives exactly the ranks and divergence of the whole."""
    from experiments.models.train import predict_logits, predict_ranks
    from synth.metrics import true_class_ranks

    model = encoders.build("xyz", 300, seed=[0, 1], hidden_dim=32, num_hidden_layers=1)
    rng = np.random.default_rng(0)
    x = torch.tensor(np.c_[rng.uniform(-180, 180, 5000), rng.uniform(-90, 90, 5000)])
    y = torch.as_tensor(rng.integers(0, 300, 5000))
    whole = predict_logits(model, x, batch=x.shape[0])
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-2]))
    ranks, finite = predict_ranks(model, x, y, batch=512)
    assert max(seen) == 512 and sum(seen) == 5000
    assert torch.equal(ranks, true_class_ranks(whole, y)) and finite.tolist() == [True, True]
    with torch.no_grad():  # a NaN weight in member 1 only: that member is marked, not the other
        next(p for p in model.parameters() if p.dim() > 1 and p.shape[0] == 2)[1].fill_(float("nan"))
    assert predict_ranks(model, x, y, batch=512)[1].tolist() == [True, False]
