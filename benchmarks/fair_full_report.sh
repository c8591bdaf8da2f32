#!/usr/bin/env bash
# Everything docs/table8.md and docs/search.md quote from benchmarks/fair_full.sh's run,
# from its database; trains nothing. Safe to run while fair_full.sh is still running: the tables
# then cover what has finished ("not finished" where a cell has not).
#
#   benchmarks/fair_full_report.sh DIR [OUT]       # OUT: default results/fair_full
#
# OUT/transfer/      report of the transfer search (Table 8 with the full fair search; figures)
# OUT/cold/          report of the cold search on the three development datasets
# OUT/compare.md     cold against transfer, Table 8 verdicts side by side on those three
# OUT/bench_transfer.md   what transfer cost: member-epochs, same choice, regret, per cell
# OUT/handicaps.md   the fair_quick default against the full search on every dataset (bench_fair.py)
# OUT/times.md       wall time per dataset without pauses (fair_full_times.py)
# and, with --reference (only once all 20 datasets have finished), experiments/references/fair_full.json.
set -euo pipefail
DIR=${1:?usage: benchmarks/fair_full_report.sh DIR [OUT] [--reference]}
OUT=${2:-results/fair_full}
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DB="$DIR/fair_full.sqlite"
names=$(benchmarks/fair_full.sh "$DIR" names)  # an assignment, so that set -e stops on its failure
read -r cold transfer <<< "$names"
echo "cold search: $cold; transfer search: $transfer"
mkdir -p "$OUT"
"$PY" -m experiments report --db "$DB" --experiment "$cold" --datasets U1,S2.3,S4.4 --out "$OUT/cold" --no-figures
"$PY" benchmarks/fair_full_times.py "$DIR" > "$OUT/times.md"
started=$("$PY" -c "import sys; from experiments.results import ResultsStore as S; s = S(sys.argv[1], readonly=True); \
print(int(sys.argv[2] in s.experiments()))" "$DB" "$transfer")
if [ "$started" = 0 ]; then echo "the transfer search has not stored anything yet: wrote $OUT/cold and $OUT/times.md"; exit 0; fi
"$PY" -m experiments report --db "$DB" --experiment "$transfer" --out "$OUT/transfer" --figures "$OUT/transfer/figures"
"$PY" -m experiments compare "$OUT/cold/table8.csv" "$OUT/transfer/table8.csv" > "$OUT/compare.md"
"$PY" benchmarks/bench_transfer.py --db "$DB" --cold "$cold" --transfer "$transfer" > "$OUT/bench_transfer.md"
if [ "${3:-}" = --reference ]; then
    "$PY" -m experiments reference --db "$DB" --experiment "$transfer" --name fair_full \
        --out experiments/references/fair_full.json --force
    full=(--full-reference fair_full)
else
    full=(--full-db "$DB" --full-experiment "$transfer")
fi
"$PY" benchmarks/bench_fair.py --default-reference fair_quick "${full[@]}" --datasets all --no-run > "$OUT/handicaps.md"
echo "wrote $OUT"
