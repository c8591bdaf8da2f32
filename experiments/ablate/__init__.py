"""Ablate: controlled ablations — one factor of an encoder or of the data's geometry changed, every
level shown, the rest held — and their report. Imports every layer below."""

from .._faces import lazy

PUBLIC = {
    "Ablation": "ablation", "derived_recipe": "ablation",
    **{n: "report" for n in ("write_report", "records", "pooled_records", "band_records", "bayes_by_level",
                             "levels_figure", "bands_figure")},
}
__all__ = sorted(PUBLIC)
__getattr__, __dir__ = lazy(__name__, PUBLIC)
