"""Honest selection from stored rows: for each (dataset, encoder), the configuration with the best
mean *validation* Top-1 on the selection draw, and that configuration's rows on every draw.

Tables (``report``), the other-draws stage (``study``) and figures (``diagnostics``) all choose
through ``choose``; no other module decides which configuration a cell reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from synth.errors import SynthError
from synth.params import ROWS, checked




def draw_means(values: dict) -> dict:
    """{draw: mean over its training seeds} of {(draw, seed): Top-1}: seeds are averaged within a
    draw, by the selection rule here and by every interval of the report (experiments.report.stats)."""
    out: dict = {}
    for (draw, _), v in values.items():
        out.setdefault(draw, []).append(float(v))
    return {d: float(np.mean(v)) for d, v in sorted(out.items())}

@dataclass
class Cell:
    """The chosen configuration of one encoder on one dataset."""

    config: dict
    test: list  # test Top-1 per (data seed, training seed), aligned with ``keys``
    keys: list
    val_mean: float
    optimistic: float  # best mean test Top-1 over all configurations (the paper's reading)
    n_configs: int
    mrr: list = field(default_factory=list)
    bands: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # the TrainSettings the sweep used
    recipe: dict = field(default_factory=dict)  # the dataset recipe the rows were trained on
    n_diverged: int = 0  # configurations left out because a member diverged (on the selection draw)
    n_diverged_rows: int = 0  # rows of the chosen configuration that diverged (on another draw)
    above_bayes: bool = False  # mean test Top-1 above the Bayes ceiling by more than its sampling error

    def values(self) -> dict:
        """{(data seed, training seed): test Top-1}."""
        return dict(zip(self.keys, self.test))

    def by_draw(self) -> dict:
        """{data seed: mean test Top-1 over its training seeds}."""
        return draw_means(self.values())

    @property
    def mean(self) -> float:
        """Mean over draws of each draw's mean over seeds (each draw weighs the same)."""
        return float(np.mean(list(self.by_draw().values())))

    @property
    def std(self) -> float:
        """Standard deviation between draws; with one draw, between training seeds."""
        draws = self.by_draw()
        if len(draws) > 1:
            return float(np.std(list(draws.values()), ddof=1))
        return float(np.std(self.test, ddof=1)) if len(self.test) > 1 else 0.0


def selection_draw(rows: list[dict]) -> int:
    """The draw (data seed) configurations are chosen on: the smallest one. The sweep trains the
    whole search there and only the chosen configuration on the other draws."""
    return min(r["data_seed"] for r in rows)


@checked(rows=ROWS)
def choose(rows: list[dict]) -> dict:
    """{(dataset, encoder): Cell} with the configuration chosen on validation of the selection draw;
    the Cell holds that configuration's rows on every draw.

    ``rows`` must come from one experiment and stage: rows of several training settings for one
    (dataset, encoder) are refused rather than pooled. Configurations with a diverged member on the
    selection draw are left out (counted in ``Cell.n_diverged``); if every one diverged, the cell is
    missing. Only configurations trained on the most seeds of the selection draw compete: a mean
    over fewer seeds is noisier (so more often the maximum by luck), and a finalist that the race
    stopped early (adaptive.race_survivors) has fewer seeds by design."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["encoder"]), {}).setdefault(r["config_hash"], []).append(r)
    out = {}
    for key, by_config in groups.items():
        settings = {r["settings_hash"] for rs in by_config.values() for r in rs}
        if len(settings) > 1:
            raise SynthError(f"{key[1]} on {key[0]}: rows of {len(settings)} different training settings; "
                             "report one experiment at a time (--experiment)")
        for h, rs in by_config.items():
            seen = [(r["data_seed"], r["train_seed"]) for r in rs]
            if len(seen) != len(set(seen)):
                raise SynthError(f"{key[1]} on {key[0]}: configuration {h} has duplicate rows for one seed")

        draw = selection_draw([r for rs in by_config.values() for r in rs])
        on_draw = {h: [r for r in rs if r["data_seed"] == draw] for h, rs in by_config.items()}
        on_draw = {h: rs for h, rs in on_draw.items() if rs}
        most = max(len(rs) for rs in on_draw.values())
        on_draw = {h: rs for h, rs in on_draw.items() if len(rs) == most}

        def val(rs):
            return float(np.mean([r["val_top1"] for r in rs]))

        # a diverged member, or a validation score that is not a number, leaves its configuration out
        healthy = {h: rs for h, rs in on_draw.items()
                   if not any(r.get("diverged") for r in rs) and np.isfinite(val(rs))}
        if not healthy:
            continue
        best_hash = max(sorted(healthy), key=lambda h: val(healthy[h]))
        rs = sorted(by_config[best_hash], key=lambda r: (r["data_seed"], r["train_seed"]))
        out[key] = Cell(config=json.loads(rs[0]["config"]), test=[r["test_top1"] for r in rs],
                        keys=[(r["data_seed"], r["train_seed"]) for r in rs], val_mean=val(healthy[best_hash]),
                        optimistic=max(float(np.mean([r["test_top1"] for r in g])) for g in healthy.values()),
                        n_configs=len(by_config), mrr=[r["test_mrr"] for r in rs],
                        bands=[json.loads(r["bands"]) for r in rs], settings=json.loads(rs[0]["settings"]),
                        recipe=json.loads(rs[0]["recipe"]) if rs[0].get("recipe") else {},
                        n_diverged=len(on_draw) - len(healthy),
                        n_diverged_rows=sum(bool(r.get("diverged")) for r in rs))
    return out
