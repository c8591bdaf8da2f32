"""Which hyper-parameter matters: parameter importances from an adaptive search's stored trials.

Per (dataset, encoder) the search's trials (stage ``search``, the first draw) become an in-memory
Optuna study, and ``optuna.importance.get_param_importances`` with the **PED-ANOVA** evaluator
(``PedAnovaImportanceEvaluator``) says how much each hyper-parameter matters for reaching the best
trials (its top quantile, 10 % by default). We use PED-ANOVA because it needs no scikit-learn and is
built for this question; Optuna documents fANOVA, its default, as biased on trials sampled by TPE
(which concentrates them where it believes the optimum is), and our searches are TPE's.

**Equal fidelity.** ASHA stops most trials after a few epochs, so a trial's stored validation score
depends on how long it ran. Every trial is scored at the same budget instead: its best validation
Top-1 within the first ``e`` epochs (its ``val_curve``), with ``e`` the longest budget that at least
``min_trials`` trials reached. The table says which ``e`` and how many trials.

The figure is ``optuna.visualization.matplotlib.plot_param_importances`` of the same study.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from synth.errors import SynthError
from synth.params import NAMES, PATH, ROWS, TEXT, Kind, checked, instance, integer, optional
from synth.fileio import atomic_write_bytes
from synth.plot import save_figure

from ..store.results import ResultsStore, choose_experiment
from .tables import to_csv_bytes, to_markdown

TARGET_QUANTILE = 0.1


def _optuna_study(value):
    if type(value).__module__.split(".")[0] != "optuna" or not hasattr(value, "trials"):
        raise TypeError
    return value


OPTUNA_STUDY = Kind("an optuna Study (study_of)", _optuna_study)


@checked(rows=ROWS, min_trials=integer(2, 10**6))
def trial_scores(rows: list[dict], min_trials: int = 20) -> tuple[int, list]:
    """(budget e in epochs, [(config, best validation Top-1 within e epochs)]) of one cell's trials.

    Trials of several search seeds are averaged per configuration; e is the longest budget reached by
    at least ``min_trials`` trials (all of them if fewer exist)."""
    by_config: dict = {}
    for r in rows:
        curve = json.loads(r["val_curve"]) if r.get("val_curve") else []
        curve = [v for v in curve if v is not None and math.isfinite(v)]
        if curve:
            by_config.setdefault(r["config_hash"], (json.loads(r["config"]), []))[1].append(curve)
    if not by_config:
        return 0, []
    reached = sorted((min(len(c) for c in curves) for _, curves in by_config.values()), reverse=True)
    e = reached[min(min_trials, len(reached)) - 1]
    scores = [(config, float(np.mean([max(c[:e]) for c in curves]))) for config, curves in by_config.values()
              if min(len(c) for c in curves) >= e]
    return e, scores


def _distribution(values):
    import optuna

    vals = sorted(set(values), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, bool) or isinstance(v, str) for v in vals):
        return optuna.distributions.CategoricalDistribution(vals)
    if all(isinstance(v, int) for v in vals):
        return optuna.distributions.IntDistribution(min(vals), max(vals), log=min(vals) > 0 and max(vals) / min(vals) >= 10)
    lo, hi = float(min(vals)), float(max(vals))
    return optuna.distributions.FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 10)


@checked(scores=instance(list))
def study_of(scores: list):
    """An in-memory Optuna study (maximise validation Top-1) holding one finished trial per score;
    hyper-parameters with one value in every trial are left out (nothing to attribute)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    keys = sorted({k for c, _ in scores for k in c})
    varied = [k for k in keys if len({json.dumps(c.get(k)) for c, _ in scores}) > 1]
    dists = {k: _distribution([c[k] for c, _ in scores if k in c]) for k in varied}
    study = optuna.create_study(direction="maximize", storage=optuna.storages.InMemoryStorage())
    for config, value in scores:
        params = {k: (float(config[k]) if isinstance(dists[k], optuna.distributions.FloatDistribution) else config[k])
                  for k in varied if k in config}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=value))
    return study


@checked(study=OPTUNA_STUDY)
def importances(study) -> dict:
    """{parameter: importance} by PED-ANOVA (sums to 1 over the parameters that vary)."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return dict(get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(
            target_quantile=TARGET_QUANTILE), normalize=True))


def figure(study, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=TARGET_QUANTILE))
    fig = ax.figure
    ax.set_title("", loc="left")  # Optuna puts "Hyperparameter Importances" there
    ax.set_title(title, fontsize=9)
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    fig.set_size_inches(6.4, 3.6)
    fig.tight_layout()
    return fig


@checked(db=PATH, out=PATH, figures=optional(PATH), experiment=optional(TEXT), datasets=optional(NAMES),
         encoders=optional(NAMES), min_trials=integer(2, 10**6))
def report(db, out, figures=None, experiment=None, datasets=None, encoders=None, min_trials: int = 20) -> list[Path]:
    """The importance table (md, csv) of every (dataset, encoder) of an adaptive search, and a figure each."""
    import matplotlib.pyplot as plt

    db = Path(db)
    if not db.exists():
        raise SynthError(f"{db} does not exist")
    with ResultsStore(db, readonly=True) as store:
        exp = choose_experiment(store, experiment)
        rows = store.rows(exp, "search")
    if not rows:
        raise SynthError(f"experiment {exp} in {db} has no search trials (an exhaustive sweep has nothing to attribute; "
                         "run an adaptive search: sweep --sampler tpe --trials N)")
    first = min(r["data_seed"] for r in rows)
    cells: dict = {}
    for r in rows:
        if r["data_seed"] == first and (datasets is None or r["dataset"] in datasets) and (
                encoders is None or r["encoder"] in encoders):
            cells.setdefault((r["dataset"], r["encoder"]), []).append(r)
    if not cells:
        raise SynthError(f"no search trials of the datasets and encoders asked for in experiment {exp}")
    recs, written = [], []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for (d, e), cell_rows in sorted(cells.items()):
        budget, scores = trial_scores(cell_rows, min_trials)
        if len(scores) < 2:
            continue
        study = study_of(scores)
        imp = importances(study)
        ranked = sorted(imp.items(), key=lambda kv: -kv[1])
        recs.append({"dataset": d, "encoder": e, "trials": len(scores), "epochs scored": budget,
                     "ranking": " > ".join(k for k, _ in ranked),
                     **{k: f"{v:.2f}" for k, v in ranked}})
        if figures is not None:
            fig = figure(study, f"{e} on {d} ({exp})\nPED-ANOVA, top {TARGET_QUANTILE:.0%} of {len(scores)} trials, "
                                f"each scored at {budget} epochs")
            written += save_figure(fig, Path(figures) / f"importance_{d}_{e}".replace(".", "-"))
            plt.close(fig)
    if not recs:
        raise SynthError(f"experiment {exp}: no cell has two or more scored trials")
    cols = ["dataset", "encoder", "trials", "epochs scored", "ranking"]
    params = sorted({k for r in recs for k in r} - set(cols))
    table = [{**{c: r[c] for c in cols}, **{p: r.get(p, "") for p in params}} for r in recs]
    head = (f"Parameter importances (PED-ANOVA, top {TARGET_QUANTILE:.0%} of trials) of experiment {exp}: each trial "
            "scored by its best validation Top-1 within the same number of epochs\n\n")
    atomic_write_bytes(out / "importance.md", (head + to_markdown(table)).encode())
    atomic_write_bytes(out / "importance.csv", to_csv_bytes(table))
    return [out / "importance.md", out / "importance.csv"] + written
