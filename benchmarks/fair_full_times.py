"""Wall time per dataset of benchmarks/fair_full.sh, without its pauses.

fair_full.sh logs each dataset's start and end in DIR/log.txt and runs across sittings: a session's end
kills it, the next sitting starts the dataset again and the sweep resumes. A sitting that was killed
has no end line; it ends at the last result it stored. A sitting that stored nothing (the restart of a
finished dataset, a few seconds) is left out. Pauses (`fair_full.sh DIR pause|resume`, for a
benchmark or a CI run) are in DIR/pauses.log and are subtracted. Beside the wall time: the member-epochs
and the worker-hours (the populations' training time) the database holds for that dataset and phase.

    python benchmarks/fair_full_times.py DIR        # a markdown table, one row per (phase, dataset)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path


def read_log(path: Path) -> list[tuple[float, str, str, str]]:
    """(time, phase, dataset, 'start' | 'end') per line of log.txt; other lines are skipped."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] in ("cold", "transfer") and parts[3] in ("start", "end"):
            t = datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
            out.append((t, parts[1], parts[2], parts[3]))
    return out


def read_pauses(path: Path) -> list[tuple[float, float]]:
    """(paused, resumed) intervals; a pause never resumed lasts to the end of time."""
    spans, since = [], None
    for line in path.read_text().splitlines() if path.exists() else []:
        word, t = line.split()
        if word == "paused" and since is None:
            since = float(t)
        elif word == "resumed" and since is not None:
            spans.append((since, float(t)))
            since = None
    return spans + ([(since, float("inf"))] if since is not None else [])


def overlap(a: float, b: float, spans) -> float:
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans)


def phase_of(policy: str | None) -> str:
    return "transfer" if policy and "transfer_from" in json.loads(policy) else "cold"


def times(folder: Path) -> list[dict]:
    log, pauses = read_log(folder / "log.txt"), read_pauses(folder / "pauses.log")
    db = sqlite3.connect(f"file:{folder / 'fair_full.sqlite'}?mode=ro", uri=True)
    policies = dict(db.execute("SELECT substr(key, 8), value FROM meta WHERE key LIKE 'policy/%'"))
    stats = {}  # (phase, dataset) -> [member-epochs, worker-seconds, created times]
    for exp, ds, epochs, secs, created in db.execute(
            "SELECT experiment, dataset, epochs_run, seconds, created FROM runs"):
        s = stats.setdefault((phase_of(policies.get(exp)), ds), [0, 0.0, []])
        s[0] += epochs or 0
        s[1] += secs or 0.0
        s[2].append(created)
    rows = []
    for key in dict.fromkeys((p, d) for _, p, d, _ in log):
        events = [(t, what) for t, p, d, what in log if (p, d) == key]
        starts = [t for t, what in events if what == "start"]
        created = sorted(stats.get(key, [0, 0.0, []])[2])
        wall = paused = 0.0
        ended, sittings = False, 0
        for i, s in enumerate(starts):
            nxt = starts[i + 1] if i + 1 < len(starts) else float("inf")
            end = next((t for t, what in events if what == "end" and s <= t < nxt), None)
            stored = [c for c in created if s <= c < nxt]
            if end is None:  # killed (or still running): up to the last result it stored
                end = max(stored, default=s)
            else:
                ended = ended or nxt == float("inf")
            if not stored:  # a restart of a finished dataset (or killed before its first result): not its work
                continue
            sittings += 1
            wall += end - s - overlap(s, end, pauses)
            paused += overlap(s, end, pauses)
        epochs, secs, _ = stats.get(key, [0, 0.0, []])
        rows.append({"phase": key[0], "dataset": key[1], "wall (min)": f"{wall / 60:.1f}",
                     "sittings": sittings, "paused (min)": f"{paused / 60:.1f}",
                     "member-epochs": epochs, "worker-hours": f"{secs / 3600:.2f}",
                     "status": "done" if ended else "running or stopped", "_wall": wall})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="the folder fair_full.sh was given")
    a = p.parse_args(argv)
    if not (a.dir / "log.txt").is_file() or not (a.dir / "fair_full.sqlite").is_file():
        print(f"error: {a.dir} has no log.txt and fair_full.sqlite: not a fair_full.sh folder", file=sys.stderr)
        return 2
    rows = times(a.dir)
    from experiments.report.tables import to_markdown

    print(to_markdown([{k: v for k, v in r.items() if k != "_wall"} for r in rows]))
    done = [r for r in rows if r["status"] == "done"]
    for phase in ("cold", "transfer"):
        secs = [r["_wall"] for r in done if r["phase"] == phase]
        if secs:
            print(f"{phase}: {len(secs)} dataset(s) done, {sum(secs) / 3600:.2f} h in all, "
                  f"{sum(secs) / len(secs) / 60:.1f} min per dataset")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
