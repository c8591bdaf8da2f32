"""What transfer between searches costs and saves: a transfer search against the cold one.

For every (dataset, encoder) searched by both experiments of one database: the search's
member-epochs and compute seconds in each, whether they chose the same configuration (validation
Top-1 on the first draw, as the report chooses), and the regret of the transfer's choice: the cold
choice's mean test Top-1 over draws minus the transfer choice's (positive: transfer chose worse).
Both experiments train their chosen configuration on every draw, so both means are measured.

    python benchmarks/bench_transfer.py --db DIR/fair_full.sqlite --cold fair-6e548079 --transfer fair-xxxxxxxx
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from experiments.store.results import ResultsStore
from experiments.search.selection import choose


def compare(store, cold: str, transfer: str) -> list[dict]:
    out = []
    chosen = {exp: choose(store.rows(exp, "final")) for exp in (cold, transfer)}
    search = {exp: store.rows(exp, "search") for exp in (cold, transfer)}
    for key in sorted(set(chosen[cold]) & set(chosen[transfer])):
        c, t = chosen[cold][key], chosen[transfer][key]
        cost = {exp: [r for r in search[exp] if (r["dataset"], r["encoder"]) == key] for exp in (cold, transfer)}
        out.append({"dataset": key[0], "encoder": key[1],
                    "cold_me": sum(r["epochs_run"] for r in cost[cold]),
                    "transfer_me": sum(r["epochs_run"] for r in cost[transfer]),
                    "cold_s": sum(r["seconds"] or 0 for r in cost[cold]),
                    "transfer_s": sum(r["seconds"] or 0 for r in cost[transfer]),
                    "same": json.dumps(c.config, sort_keys=True) == json.dumps(t.config, sort_keys=True),
                    "regret": c.mean - t.mean, "draws": min(len(c.by_draw()), len(t.by_draw()))})
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--cold", required=True, help="the cold search's experiment")
    p.add_argument("--transfer", required=True, help="the transfer search's experiment")
    a = p.parse_args(argv)
    with ResultsStore(a.db, readonly=True) as store:
        recs = compare(store, a.cold, a.transfer)
    if not recs:
        raise SystemExit("error: no (dataset, encoder) has final results in both experiments")
    print("| dataset | encoder | member-epochs cold | transfer | share | same choice | regret (test Top-1, points) |")
    print("|---|---|---|---|---|---|---|")
    for r in recs:
        print(f"| {r['dataset']} | {r['encoder']} | {r['cold_me']} | {r['transfer_me']} | "
              f"{r['transfer_me'] / max(1, r['cold_me']):.0%} | {'yes' if r['same'] else 'no'} | {r['regret']:+.2f} |")
    regret = np.array([r["regret"] for r in recs])
    me = sum(r["transfer_me"] for r in recs) / max(1, sum(r["cold_me"] for r in recs))
    s = sum(r["transfer_s"] for r in recs) / max(1e-9, sum(r["cold_s"] for r in recs))
    print(f"cells {len(recs)}: member-epochs {me:.0%} of cold, compute seconds {s:.0%}; same choice in "
          f"{sum(r['same'] for r in recs)}; regret mean {regret.mean():+.2f}, max {regret.max():+.2f}, "
          f"cells above 1 point {int((regret > 1).sum())}")


if __name__ == "__main__":
    main()
