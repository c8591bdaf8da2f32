"""Report: the statistics of every verdict, tables (md, CSV, LaTeX), Table 8 and its summary,
references (a shipped Table 8 to judge a new encoder against), diagnostics and figures, and
hyper-parameter importance. Imports ``models``, ``store`` and ``search``; the modules ``reference``
and ``importance`` are public as modules (``experiments.report.reference.load``)."""

from .._faces import lazy

PUBLIC = {
    **{n: "stats" for n in ("difference", "mean", "pool", "judge", "verdict", "detectable", "draws_needed",
                            "Estimate", "Judgement", "error_reduction", "er_trend")},
    "compare_tables": "tables", "read_table8_csv": "tables",
    "Table8": "table8", "build_table8": "table8", "main_report": "table8",
    "pooled": "summary", "pooled_section": "summary", "power_records": "summary",
}
__all__ = sorted(PUBLIC)
__getattr__, __dir__ = lazy(__name__, PUBLIC)
