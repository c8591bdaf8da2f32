"""How often do verdicts lie? The false-verdict rate of the toolkit's verdict rule, by simulation and
by A/A runs, beside the rule it replaced (the two-level percentile bootstrap, kept here only for this
comparison).

Simulation: encoders with equal true Top-1, paired by dataset draw: each draw moves every encoder
alike (sd ``DRAW_SD``), each encoder's draw has its own effect (sd ``PAIR_SD``) and each training seed
its own noise (sd ``SEED_SD``). Any verdict but a tie is false. Layouts: draws x seeds (equal or
unequal seeds per draw, one draw with several seeds), against one baseline or against the best of 7.

A/A: the same encoder trained twice (another training seed: a stand-in for another machine) and
judged as a pair on every dataset: a database trained with ``SEEDS=1`` (``make reproduce``) or the
plugin copy ``benchmarks/aa_copy.py`` (sphereM+ under another name), against a shipped reference.

    python benchmarks/bench_verdicts.py                                  # the simulation, before and after
    python benchmarks/bench_verdicts.py --aa-db DB --plugin benchmarks/aa_copy.py --copy sphereM+copy=sphereM+
    python benchmarks/bench_verdicts.py --aa-db results/results.sqlite    # make reproduce SEEDS=1: every encoder

The A/A databases are made by (each resumable; the copy's search on draw 0 is shared by its repeats):

    python -m experiments sweep --plugin benchmarks/aa_copy.py --encoders sphereM+copy --reference fair_quick \
        --seeds 1 --db DB --executor local --resume          # then --seeds 2, ...
    make reproduce SEEDS=1 RESULTS=DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.report import stats  # noqa: E402

DRAW_SD, PAIR_SD, SEED_SD = 3.0, 0.3, 0.5  # points of Top-1; the pair noise of the layout is ~0.6


def simulate_values(rng, draws: int, seeds, encoders: int, pair_sd: float = PAIR_SD) -> list[dict]:
    """``encoders`` dicts {(draw, seed): Top-1}, all with the same true mean. ``seeds``: one number for
    every draw, or one per draw. ``pair_sd`` 0: equal on every draw too (the null of a one-draw verdict,
    which speaks for that draw only)."""
    per = [seeds] * draws if np.isscalar(seeds) else list(seeds)
    shared = rng.normal(0, DRAW_SD, draws)
    out = []
    for _ in range(encoders):
        own = rng.normal(0, pair_sd, draws)
        out.append({(d, s): 70.0 + shared[d] + own[d] + rng.normal(0, SEED_SD) for d in range(draws)
                    for s in range(per[d])})
    return out


def new_rule(target: dict, baselines: list) -> str:
    return stats.judge({i: stats.difference(target, b) for i, b in enumerate(baselines)}).verdict


def old_two_level_bootstrap(a: dict, b: dict, n: int = 2000, seed: int = 0):
    """Today's procedure before the change (experiments.report.stats.two_level_bootstrap, inflate=True), for the
    comparison only: draws resampled, then seeds within them, spread scaled by sqrt(m/(m-1))."""
    common = sorted(set(a) & set(b))
    draws = sorted({k[0] for k in common})
    per = [[k for k in common if k[0] == d] for d in draws]
    width = max(len(p) for p in per)
    A, B = np.full((len(draws), width), np.nan), np.full((len(draws), width), np.nan)
    for i, keys in enumerate(per):
        A[i, :len(keys)] = [a[k] for k in keys]
        B[i, :len(keys)] = [b[k] for k in keys]
    n_seeds = np.array([len(p) for p in per])
    rng = np.random.default_rng(seed)
    d_idx = rng.integers(0, len(draws), size=(n, len(draws))) if len(draws) > 1 else np.zeros((n, 1), int)
    s_idx = np.floor(rng.random((n, d_idx.shape[1], width)) * n_seeds[d_idx][..., None]).astype(int)
    used = np.arange(width)[None, None, :] < n_seeds[d_idx][..., None]

    def means(M):
        vals = np.where(used, M[d_idx[..., None], s_idx], 0.0)
        reps = (vals.sum(-1) / used.sum(-1)).mean(-1)
        m = len(draws) if len(draws) > 1 else int(n_seeds[0])
        point = float(np.mean(np.nanmean(M, 1)))
        return point + (reps - point) * np.sqrt(m / (m - 1))

    return means(A), means(B)


def old_rule(target: dict, baselines: list) -> str:
    """Today's: the best baseline picked on the test means, then the percentile interval of the bootstrap."""
    best = max(baselines, key=lambda b: np.mean(list(stats.draw_means(b).values())))
    ra, rb = old_two_level_bootstrap(target, best)
    d = ra - rb
    return stats.verdict((np.percentile(d, 2.5), np.percentile(d, 97.5)))


def false_rate(rule, draws: int, seeds, baselines: int = 1, sims: int = 4000, seed: int = 0,
               pair_sd: float | None = None) -> float:
    """The share of ``sims`` simulated null comparisons that ``rule`` does not call a tie. With one draw the
    null is "equal on this draw" (``pair_sd`` 0) unless ``pair_sd`` says otherwise."""
    rng = np.random.default_rng(seed)
    pair_sd = (0.0 if draws == 1 else PAIR_SD) if pair_sd is None else pair_sd
    wrong = 0
    for _ in range(sims):
        target, *others = simulate_values(rng, draws, seeds, 1 + baselines, pair_sd)
        wrong += rule(target, others) != "tie"
    return wrong / sims


def pooled_false_rate(datasets: int = 20, draws: int = 5, baselines: int = 7, sims: int = 1000, seed: int = 0) -> float:
    """The pooled answer over ``datasets`` (stats.pool per baseline, then stats.judge) under the null."""
    rng = np.random.default_rng(seed)
    wrong = 0
    for _ in range(sims):
        per = [simulate_values(rng, draws, 1, 1 + baselines) for _ in range(datasets)]
        pooled = {j: stats.pool([stats.difference(v[0], v[1 + j]) for v in per]) for j in range(baselines)}
        wrong += stats.judge(pooled).verdict != "tie"
    return wrong / sims


LAYOUTS = [(3, 1), (5, 1), (10, 1), (3, 2), (5, 2), (10, 2), (5, (1, 3, 2, 1, 2)), (1, 5)]


def simulation_table(sims: int) -> str:
    lines = [f"False-verdict rate under the null ({sims} simulations per cell; binomial sd at 5 %: "
             f"{100 * np.sqrt(0.05 * 0.95 / sims):.1f} points). Draw sd {DRAW_SD}, encoder-by-draw sd {PAIR_SD}, "
             f"seed sd {SEED_SD}.", "",
             "| draws x seeds | baselines | before (bootstrap percentile, best on test) | now (stats.judge) |",
             "|---|---|---|---|"]
    for draws, seeds in LAYOUTS:
        for k in (1, 7):
            if draws == 1 and k == 7:
                continue
            old = false_rate(old_rule, draws, seeds, k, sims)
            new = false_rate(new_rule, draws, seeds, k, sims)
            lay = f"{draws} x {seeds if np.isscalar(seeds) else '/'.join(map(str, seeds))}"
            lines.append(f"| {lay} | {k} | {100 * old:.1f} % | {100 * new:.1f} % |")
    lines += ["", f"One draw x 5 seeds read as a statement about the recipe (encoders equal on average over "
              f"draws, but each draw favours one by sd {PAIR_SD}): "
              f"{100 * false_rate(new_rule, 1, 5, 1, sims, pair_sd=PAIR_SD):.1f} % now — a one-draw verdict is about "
              "that draw.", "",
              f"Pooled over 20 datasets x 5 draws against 7 baselines: {100 * pooled_false_rate(sims=sims // 4):.1f} % "
              f"({sims // 4} simulations)."]
    return "\n".join(lines) + "\n"


def aa_table(cells_a: dict, cells_b: dict, pairs: dict) -> tuple[str, dict]:
    """A/A: per (dataset, encoder pair), the new and the old verdict of a − b, from the chosen
    configurations ({(dataset, encoder): selection.Cell}). ``pairs`` maps an encoder of ``cells_a`` to its
    twin in ``cells_b``. Returns the markdown and {rule: (false verdicts, verdicts)}."""
    lines = ["| dataset | encoder | A − B [95 % CI] now | now | before |", "|---|---|---|---|---|"]
    count = {"now": [0, 0], "before": [0, 0]}
    for (d, ea), ca in sorted(cells_a.items()):
        cb = cells_b.get((d, pairs.get(ea)))
        if cb is None:
            continue
        a, b = dict(zip(ca.keys, ca.test)), dict(zip(cb.keys, cb.test))
        j = stats.judge({pairs[ea]: stats.difference(a, b)})
        # today's rule paired (draw, seed) keys: with other seeds nothing pairs, so the draws' means are
        # paired for it (the most it could do)
        ra, rb = old_two_level_bootstrap({(k, 0): v for k, v in stats.draw_means(a).items()},
                                         {(k, 0): v for k, v in stats.draw_means(b).items()})
        old = stats.verdict((np.percentile(ra - rb, 2.5), np.percentile(ra - rb, 97.5)))
        for rule, v in (("now", j.verdict), ("before", old)):
            count[rule][0] += v not in ("tie", "—")
            count[rule][1] += v != "—"
        lines.append(f"| {d} | {ea} | {j.delta:+.2f} [{j.low:+.2f}, {j.high:+.2f}] | {j.verdict} | {old} |")
    lines += ["", "False verdicts (anything but a tie): " + "; ".join(
        f"{rule} {f} of {n} ({100 * f / max(n, 1):.1f} %)" for rule, (f, n) in count.items())]
    return "\n".join(lines) + "\n", {k: tuple(v) for k, v in count.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=4000)
    p.add_argument("--aa-db", type=Path, help="a database trained with another training seed (SEEDS=1, or the copy)")
    p.add_argument("--experiment", help="the experiment in --aa-db (default: the reference's)")
    p.add_argument("--reference", default="fair_quick", help="the shipped reference the A/A pairs with")
    p.add_argument("--copy", action="append", default=[], metavar="MINE=THEIRS",
                   help="an encoder of --aa-db and its twin in the reference (default: every encoder of both)")
    p.add_argument("--plugin", action="append", default=[], help="a plugin file that registers --aa-db's encoder")
    a = p.parse_args(argv)
    if a.aa_db is None:
        print(simulation_table(a.sims))
        return 0
    from experiments.models import encoders
    from experiments.report import reference
    from experiments.store.results import ResultsStore
    from experiments.search.selection import choose

    for f in a.plugin:
        encoders.load_plugin(f)
    ref = reference.load(a.reference)
    with ResultsStore(a.aa_db, readonly=True) as store:
        rows = store.rows(a.experiment or ref["experiment"], "final")
    cells_b = choose(reference.final_rows(ref, ref["experiment"]))
    total = {"now": [0, 0], "before": [0, 0]}
    for seed in sorted({r["train_seed"] for r in rows}):  # each training seed is one repeat, chosen on its own
        cells_a = choose([r for r in rows if r["train_seed"] == seed])
        pairs = dict(c.split("=", 1) for c in a.copy) or {e: e for _, e in cells_a if e in ref["encoders"]}
        text, count = aa_table(cells_a, cells_b, pairs)
        print(f"A/A, training seed {seed} of {a.aa_db} against reference {ref['name']} "
              f"({', '.join(f'{x} vs {y}' for x, y in pairs.items())})\n\n{text}")
        for rule, (f, n) in count.items():
            total[rule][0] += f
            total[rule][1] += n
    print("All repeats, false verdicts: " + "; ".join(f"{rule} {f} of {n} ({100 * f / max(n, 1):.1f} %)"
                                                       for rule, (f, n) in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
