"""Table 8 over dataset draws: the t interval over draws, verdicts, selection on the first draw, the
sweep's layout over draws, observation 3's interval, and the Bayes posterior map."""

import csv
import io
import json

import numpy as np
import pytest

from experiments.report import diagnostics, table8 as report, stats
from experiments.store import results
from synth import bayes, datasets

from test_report import BANDS
from test_search import TINY_SPACE
from helpers import experiments

# sphereM+ − best baseline per draw: draw 0 alone is a clear win (every seed near +2), but the
# draws disagree in sign, so over draws the difference is a tie.
DRAW_DELTAS = [2.0, -1.5, 0.5, -1.0, 0.3]
SEED_JITTER = [-0.1, 0.0, 0.1]


def _pairs(deltas, jitter, base=70.0):
    a = {(d, s): base + dd + j for d, dd in enumerate(deltas) for s, j in enumerate(jitter)}
    b = {(d, s): base for d in range(len(deltas)) for s in range(len(jitter))}
    return a, b


def _ci(a, b):
    return stats.difference(a, b).interval()


def test_a_tie_over_draws_although_one_draw_alone_says_win():
    a, b = _pairs(DRAW_DELTAS, SEED_JITTER)
    first = {k: v for k, v in a.items() if k[0] == 0}
    # one draw: its 3 seeds are the units, paired by seed: +1.9, +2.0, +2.1, so 2.0 ± t(0.975, 2) 0.1 / sqrt(3)
    ci_one = _ci(first, b)
    assert stats.verdict(ci_one) == "win" and ci_one == pytest.approx((2.0 - 4.3027 * 0.1 / 3 ** 0.5,
                                                                        2.0 + 4.3027 * 0.1 / 3 ** 0.5), abs=1e-3)
    # over draws the draws are the units (their seeds averaged first): the draws disagree in sign, a tie,
    # centred on the mean of the draws' differences (+0.06)
    est = stats.difference(a, b)
    assert (est.n, est.df, est.unit) == (5, 4.0, "draws") and est.value == pytest.approx(np.mean(DRAW_DELTAS))
    ci = est.interval()
    assert stats.verdict(ci) == "tie" and ci[0] < 0 < ci[1]


def test_the_interval_is_student_t_on_the_draws_differences():
    # differences 1, 2, 3 on three draws: mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.3027
    a = {(d, 0): 50.0 + v for d, v in enumerate((1.0, 2.0, 3.0))}
    b = {(d, 0): 50.0 for d in range(3)}
    est = stats.difference(a, b)
    assert (est.value, est.df) == (pytest.approx(2.0), 2.0) and est.se == pytest.approx(1 / 3 ** 0.5)
    assert est.interval() == pytest.approx((2 - 4.3027 / 3 ** 0.5, 2 + 4.3027 / 3 ** 0.5), abs=1e-4)
    # the mean of one encoder: the same t interval on its draw means
    m = stats.mean(a)
    assert m.value == pytest.approx(52.0) and m.interval() == pytest.approx((52 - 2.4842, 52 + 2.4842), abs=1e-3)


def test_unequal_seed_counts_other_seeds_and_one_draw():
    # draw 1 has one seed: each draw's seeds are averaged first, so the draw differences are 2 and 10
    a = {(0, 0): 1.0, (0, 1): 3.0, (1, 0): 10.0}
    b = {k: 0.0 for k in a}
    est = stats.difference(a, b)
    assert (est.value, est.se, est.df) == (pytest.approx(6.0), pytest.approx(4.0), 1.0)
    # the other side trained with other seeds (another machine): still paired by draw
    other = {(0, 7): 0.0, (1, 7): 0.0, (1, 8): 0.0}
    assert stats.difference(a, other).value == pytest.approx(6.0)
    # one draw: the seeds are the units, paired where both have them ...
    est = stats.difference({(0, 0): 1.0, (0, 1): 3.0}, {(0, 0): 0.0, (0, 1): 0.0})
    assert (est.value, est.se, est.df, est.unit) == (pytest.approx(2.0), pytest.approx(1.0), 1.0, "seeds of one draw")
    # ... and two independent samples (Welch) where the seeds differ: var 2/2 + 0.5/2, df (1.25^2)/(1 + 0.0625)
    est = stats.difference({(0, 0): 1.0, (0, 1): 3.0}, {(0, 5): 0.0, (0, 6): 1.0})
    assert est.value == pytest.approx(1.5) and est.se == pytest.approx(1.25 ** 0.5)
    assert est.df == pytest.approx(1.25 ** 2 / (1 + 0.0625))
    assert stats.difference({(0, 0): 1.0}, {(0, 0): 0.0}) is None
    assert stats.difference({(0, 0): 1.0}, {(1, 0): 0.0}) is None  # no common draw
    assert stats.verdict(None) == "—"


def _row(dataset, encoder, lr, draw, seed, val, test):
    cfg = {"lr": lr, "hidden_dim": 8}
    recipe = datasets.get_recipe(dataset).to_dict()
    return dict(experiment="fixture-00000000", dataset=dataset, recipe=results.canonical(recipe),
                recipe_hash=results.digest(recipe), data_seed=draw, encoder=encoder, config_hash=results.digest(cfg),
                config=results.canonical(cfg), train_seed=seed, settings_hash="s", settings="{}", stage="final",
                val_top1=val, val_top3=val, val_mrr=0.5, test_top1=test, test_top3=test, test_mrr=0.5, best_epoch=1,
                epochs_run=1, bands=BANDS, seconds=0.1, population=3, device="cpu")


def test_choice_is_made_on_the_first_draw_and_reported_over_all_draws():
    # lr 0.1 is best on draw 0's validation (80 vs 70) and was then trained on draws 1-2, where its
    # validation is lower (50). Pooling validation over draws would prefer lr 0.01 (70 > 60),
    # a configuration that exists on draw 0 only.
    rows = [_row("U1", "grid", 0.1, 0, s, 80, 60) for s in range(2)]
    rows += [_row("U1", "grid", 0.1, d, s, 50, 70 + d) for d in (1, 2) for s in range(2)]
    rows += [_row("U1", "grid", 0.01, 0, s, 70, 90) for s in range(2)]
    cell = report.choose(rows)[("U1", "grid")]
    assert cell.config["lr"] == 0.1
    assert cell.by_draw() == {0: 60.0, 1: 71.0, 2: 72.0}
    assert cell.mean == pytest.approx(np.mean([60, 71, 72])) and cell.std == pytest.approx(np.std([60, 71, 72], ddof=1))
    assert cell.optimistic == pytest.approx(90.0)  # the paper's reading, on the first draw


def _table(deltas):
    rows = []
    for d, dd in enumerate(deltas):
        for s, j in enumerate(SEED_JITTER):
            rows.append(_row("U1", "sphereM+", 0.1, d, s, 90, 70 + dd + j))
            rows.append(_row("U1", "grid", 0.1, d, s, 80, 70))
            rows.append(_row("S1.1", "sphereM+", 0.1, d, s, 90, 80 + j))
            rows.append(_row("S1.1", "grid", 0.1, d, s, 80, 70))
    cells = report.choose(rows)
    ceilings = {"U1": [{"top1": 75.0 + d} for d in range(len(deltas))], "S1.1": [{"top1": 85.0}] * len(deltas)}
    return report.build_table8(cells, ["U1", "S1.1"], ["grid", "sphereM+"], ceilings)


def test_verdict_column_in_every_table_and_the_summary(tmp_path):
    t = _table(DRAW_DELTAS)
    u1, s11 = t.rows
    assert (u1["verdict"], s11["verdict"]) == ("tie", "win")
    assert u1["bayes"] == pytest.approx(77.0) and u1["bayes_draws"] == [75.0, 76.0, 77.0, 78.0, 79.0]
    assert u1["gap"] == pytest.approx(77.0 - (70 + np.mean(DRAW_DELTAS)))
    md = report.to_markdown(report.table_records(t))
    assert "| verdict |" in md and "| tie |" in md and "| win |" in md and "77.0 ± 1.6" in md
    recs = list(csv.DictReader(io.StringIO(report.to_csv(t))))
    assert [r["verdict"] for r in recs] == ["tie", "win"]
    assert recs[0]["bayes_draws"] == "75.000;76.000;77.000;78.000;79.000" and recs[0]["n_draws"] == "5"
    assert float(recs[0]["ci_low"]) < 0 < float(recs[0]["ci_high"])
    assert "win on 1, tie on 1, loss on 0** of 2" in report.summary(t)
    draws = report.draw_records(t)
    assert [(r["dataset"], r["draw"], r["Δ"]) for r in draws[:2]] == [("U1", 0, "+2.0"), ("U1", 1, "-1.5")]
    report.write_tables(t, tmp_path)
    assert "| U1 | 4 | 79.0 |" in (tmp_path / "table8_draws.md").read_text()


def test_observation_3_interval_over_draws():
    n_mu = [5, 10, 25, 50]
    # ER falls (the reduction grows) with N_mu, far beyond the replicates' noise: rho = +1, interval [1, 1]
    boot = [np.full(500, er) + np.random.default_rng(i).normal(0, 0.1, 500) for i, er in enumerate([-2, -5, -9, -14])]
    rho, ci = stats.er_trend(n_mu, [-2, -5, -9, -14], boot)
    assert rho == pytest.approx(1.0) and ci == (1.0, 1.0)
    # the same point estimates with replicates that overlap: the trend is not shown
    boot = [np.full(500, er) + np.random.default_rng(i).normal(0, 10, 500) for i, er in enumerate([-2, -5, -9, -14])]
    rho, ci = stats.er_trend(n_mu, [-2, -5, -9, -14], boot)
    assert rho == pytest.approx(1.0) and ci[0] < 0 < ci[1]
    assert stats.er_trend(n_mu, [-2, -5, -9, -14], [None] * 4) == (pytest.approx(1.0), None)


def test_bayes_posterior_sums_to_one_and_ranks_like_the_scores():
    ds = datasets.generate("S4.4", 0)  # kappa up to 128^2: scores span thousands of nats
    lonlat = np.concatenate([ds.split("test")[0], [[0.0, 90.0], [180.0, -90.0], [0.0, 0.0]]])
    p = bayes.posterior(lonlat, ds["centers_lonlat"], ds["kappa"])
    assert p.shape == (len(lonlat), len(ds["kappa"])) and np.isfinite(p).all() and (p >= 0).all()
    assert np.allclose(p.sum(1), 1.0, atol=1e-12)
    scores = bayes.log_posterior_scores(lonlat, ds["centers_lonlat"], ds["kappa"])
    assert (p.argmax(1) == scores.argmax(1)).all()
    # a model's estimate on the map sums to one as well, for either loss, and keeps its ranking
    logits = np.random.default_rng(0).normal(0, 5, (100, 7))
    for loss in ("presence-absence", "softmax"):
        q = diagnostics.class_probabilities(logits, loss)
        assert np.allclose(q.sum(1), 1.0) and (q.argmax(1) == logits.argmax(1)).all()


def test_map_pixels_cover_the_disc_at_pixel_resolution():
    import cartopy.crs as ccrs

    proj = ccrs.Orthographic(central_longitude=150.0, central_latitude=0.0)
    n = 200
    extent, lonlat, inside = diagnostics.orthographic_pixels(proj, n)
    assert inside.mean() == pytest.approx(np.pi / 4, abs=0.01)  # a disc in its square
    assert np.all(np.abs(lonlat[inside, 1]) <= 90) and np.all(np.abs(lonlat[inside, 0]) <= 180)
    centre = lonlat.reshape(n, n, 2)[n // 2, n // 2]
    assert abs(centre[0] - 150.0) < 1.0 and abs(centre[1]) < 1.0
    # neighbouring pixels at the centre are a fraction of a degree apart: no blocks at this scale
    step = np.abs(lonlat.reshape(n, n, 2)[n // 2, n // 2 + 1] - centre)
    assert 0 < step[0] < 180 / n * 1.1


def _sweep(tmp_path, *extra):
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)  # grid: 2 learning rates x 2 min_radius
    r = experiments("sweep", "--space", space, "--datasets", "U1", "--encoders", "grid", "--seeds", "0-1",
                    "--data-seeds", "0-2", "--db", tmp_path / "r.sqlite", "--no-progress", *extra)
    assert r.returncode == 0, r.stderr
    with results.ResultsStore(tmp_path / "r.sqlite", readonly=True) as store:
        return r.stdout, store.rows(None, "final")


@pytest.mark.parametrize("search", [(), ("--sampler", "grid", "--finalists", "1")], ids=["exhaustive", "adaptive"])
def test_sweep_searches_the_first_draw_and_trains_the_choice_on_the_others(tmp_path, search):
    out, rows = _sweep(tmp_path, *search)
    first = [r for r in rows if r["data_seed"] == 0]
    others = [r for r in rows if r["data_seed"] != 0]
    chosen = report.choose(first)[("U1", "grid")].config
    assert len({r["config_hash"] for r in first}) == (4 if not search else 1)
    assert sorted((r["data_seed"], r["train_seed"]) for r in others) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(json.loads(r["config"]) == chosen for r in others)
    assert "other draws: the configuration chosen on draw 0" in out
    # the report chooses the same configuration and reports it over the three draws
    cell = report.choose(rows)[("U1", "grid")]
    assert cell.config == chosen and sorted(cell.by_draw()) == [0, 1, 2]
    # resuming trains and writes nothing
    out2, rows2 = _sweep(tmp_path, *search, "--resume")
    assert len(rows2) == len(rows) and "nothing to do: every run is stored" in out2


def test_compare_two_tables_counts_agreeing_verdicts(tmp_path):
    for name, deltas in (("a", DRAW_DELTAS), ("b", [2.0, 1.5, 1.0, 2.5, 1.8])):  # b: U1 becomes a win
        (tmp_path / name).mkdir()
        report.write_tables(_table(deltas), tmp_path / name)
    r = experiments("compare", tmp_path / "a" / "table8.csv", tmp_path / "b" / "table8.csv")
    assert r.returncode == 0, r.stderr
    assert "| U1 | tie | win |" in r.stdout and "| S1.1 | win | win |" in r.stdout
    assert "Verdicts agree on 1 of 2 datasets." in r.stdout
    # sphereM+ on U1 moved by mean(b) - mean(a); the other three cells did not move
    moved = abs(np.mean([2.0, 1.5, 1.0, 2.5, 1.8]) - np.mean(DRAW_DELTAS))
    assert f"max {moved:.2f}" in r.stdout
    assert "predate" not in r.stdout
    bad = experiments("compare", tmp_path / "a" / "table8.md", tmp_path / "b" / "table8.csv")
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    # a table written before the verdict rule of docs/statistics.md (no detectable columns) is named as such
    rows = list(csv.DictReader(open(tmp_path / "a" / "table8.csv")))
    old = tmp_path / "old.csv"
    with open(old, "w", newline="") as f:
        w = csv.DictWriter(f, [k for k in rows[0] if k not in ("se", "df", "detectable_win", "detectable_loss")],
                           extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    r = experiments("compare", old, tmp_path / "b" / "table8.csv")
    assert r.returncode == 0 and f"Note: {old} predate(s) the verdict rule" in r.stdout


def test_report_on_a_subset_of_training_seeds(tmp_path):
    rows = []
    for d in range(3):
        for s in range(2):
            for enc, t in (("sphereM+", 80.0 + s), ("grid", 70.0)):
                rows.append(_row("U1", enc, 0.1, d, s, 90, t))
    db = tmp_path / "r.sqlite"
    with results.ResultsStore(db) as store:
        store.write_population(rows)
    for seeds, n, mean in ((None, 6, 80.5), ("1", 3, 81.0)):
        out = tmp_path / f"out{seeds}"
        r = experiments("report", "--db", db, "--out", out, "--no-figures", "--encoders", "grid,sphereM+",
                        *([] if seeds is None else ["--seeds", seeds]))
        assert r.returncode == 0, r.stderr
        rec = next(csv.DictReader(open(out / "table8.csv")))
        assert int(rec["sphereM+_n"]) == n and float(rec["sphereM+_mean"]) == pytest.approx(mean)
        assert f"Runs: {n * 2} stored on cpu, over " in (out / "summary.md").read_text()  # the run time
    r = experiments("report", "--db", db, "--out", tmp_path / "x", "--no-figures", "--seeds", "5")
    assert r.returncode == 2 and "for training seeds 5" in r.stderr


def test_band_counts_count_each_draw_once():
    # BANDS has one test point per band; 3 draws x 2 seeds: each draw's points count once (3), as
    # the Bayes ceilings of the 3 draws do, while all 6 runs weigh in the band's Top-1
    rows = [_row("U1", "grid", 0.1, d, s, 80, 70) for d in range(3) for s in range(2)]
    cells = report.choose(rows)
    bayes_bands = [{"n": 1, "top1": 90.0, "mrr": 0.9}] * 18
    ceilings = {"U1": [{"top1": 90.0, "bands_equal-angle": bayes_bands}] * 3}
    bt = report.band_table(cells, ["U1"], ["grid"], ceilings)
    assert len(bt) == 18 and all(r["grid_n"] == 3 and r["bayes_n"] == 3 for r in bt)
    assert all(r["grid_top1"] == pytest.approx(50.0) for r in bt)


def test_joint_deviations_have_the_draws_covariance_and_t_tails():
    """From a (draws, k) array: deviations of the k column means, multivariate t with draws − 1 df and scale
    the sample covariance / draws (so their covariance is that scale x 4/2 for 5 draws, a t's df/(df − 2)),
    and their tails t's (5 draws: the 97.5 % quantile is 2.776 se, not 1.96); within 5 % and 2 % at
    n = 200 000 (seed 0)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 3)) + np.array([0.0, 5.0, 9.0])
    dev = stats.joint_deviations(X, n=200_000)
    S = np.cov(X.T) / 5
    assert np.allclose(np.cov(dev), S * 4 / 2, rtol=0.05)
    z = dev[0] / np.sqrt(S[0, 0])
    assert abs(np.percentile(z, 97.5) / 2.776 - 1) < 0.02
    assert stats.joint_deviations(X[:1]) is None


def test_spread_if_equal_is_zero_for_shared_noise_and_the_range_of_normals_for_independent_noise():
    """Equal true values plus noise: identical noise gives spread 0; independent N(0, 1) noise over k = 8
    (around unequal point estimates) gives the expected range of 8 normals, 2.847 (tabulated), within 0.03 at n = 200 000 (seed 0)."""
    rng = np.random.default_rng(0)
    point = np.arange(8.0)  # unequal point estimates: only the deviations from them count
    shared = np.tile(rng.normal(size=200_000), (8, 1))
    assert np.allclose(stats.spread_if_equal(shared + point[:, None], point), 0.0)
    independent = rng.normal(size=(8, 200_000)) + point[:, None]
    assert abs(stats.spread_if_equal(independent, point).mean() - 2.847) < 0.03


def test_the_maps_show_the_encoder_the_report_compares_not_only_sphereM(monkeypatch):
    # a report against a reference compares your encoder (--target): the ΔRR map must be yours
    # against grid, and your encoder's predicted maps must sit beside grid, wrap and sphereM+
    from types import SimpleNamespace

    monkeypatch.setattr(diagnostics, "MAP_PIXELS", 40)  # the panels' content, not their resolution
    recipe = datasets.Recipe(name="tiny", n_classes=6, samples_per_class=60, kappa_max=8, centers="stratified",
                             n_bands=2).to_dict()
    cells = {("tiny", e): SimpleNamespace(config={}, settings={"epochs": 2}, recipe=recipe)
             for e in ("grid", "wrap", "sphereM+", "xyz")}
    figs = dict(diagnostics.model_maps(cells, "tiny", "cpu", target="xyz"))
    assert "where xyz beats grid" in figs["delta_map"].axes[0].get_title()
    panels = [a.get_title().split("\n")[0] for a in figs["predicted_maps"].axes if a.get_title()]
    assert panels == ["Bayes posterior (true mixture)", "grid", "wrap", "sphereM+", "xyz"] * 2
