#!/usr/bin/env bash
# The full fair search behind the reference Table 8: hours of compute, resumable.
#
#   setsid benchmarks/fair_full.sh DIR &     # DIR: outside the repository; holds data/ and fair_full.sqlite
#   benchmarks/fair_full.sh DIR pause|resume # hold it (SIGSTOP) while a benchmark or a CI run needs the cores
#   benchmarks/fair_full.sh DIR names        # the cold and the transfer experiments' names (for the reports)
#
# Pauses are logged in DIR/pauses.log, so that benchmarks/fair_full_times.py can give each dataset's wall
# time without them. Run under setsid: pause and resume signal the script's whole process group.
# Run it again after any stop (a session's end, Ctrl-C, a reboot): every sweep resumes where it
# stopped and nothing finished is trained again.
#  1. cold: the `fair` space as it ships (100 TPE trials per encoder, halving, 3 racing finalists) on
#     the three development datasets, one at a time: the yardstick and the transfer's sources;
#  2. transfer: all 20 datasets with 12 trials per encoder, the best 3 configurations of each cold
#     source dataset first (the target itself never a source: U1, S2.3 and S4.4 are leave-one-out),
#     one dataset at a time, the three development datasets first (so that the measurement of what
#     transfer costs against the cold search comes before the other 17). docs/search.md, "Transfer
#     between searches".
# Every sweep: the 8 Table-8 encoders, draws 0-4 x training seed 0 (Table 8's protocol), two local
# workers here (one per core). Each dataset's start and end go to DIR/log.txt with the time.
set -euo pipefail
DIR=${1:?usage: benchmarks/fair_full.sh DIR [pause|resume|names] (DIR: a folder outside the repository)}
case ${2:-run} in
    pause)  kill -STOP -- "-$(cat "$DIR/pgid")"; echo "paused $(date +%s)" >> "$DIR/pauses.log"; exit 0;;
    resume) kill -CONT -- "-$(cat "$DIR/pgid")"; echo "resumed $(date +%s)" >> "$DIR/pauses.log"; exit 0;;
    run|names) ;;
    *) echo "usage: benchmarks/fair_full.sh DIR [pause|resume|names]" >&2; exit 2;;
esac
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DB="$DIR/fair_full.sqlite"
COLD=(U1 S2.3 S4.4)
COMMON=(--space fair --encoders table8 --seeds 0 --data-seeds 0-4 --data "$DIR/data" --executor local
        --db "$DB" --resume --no-progress)
TRANSFER=(--trials 12 --transfer-datasets "$(IFS=,; echo "${COLD[*]}")" --transfer-top 3)  # and --transfer-from COLD
# An experiment's name is a hash of its protocol; the dry run prints it (the one place it is derived).
experiment() { $PY -m experiments sweep --datasets U1 "${COMMON[@]}" "$@" --dry-run | grep -o 'experiment fair-[0-9a-f]*' | head -1 | cut -d' ' -f2; }
if [ "${2:-run}" = names ]; then
    cold=$(experiment); transfer=$(experiment "${TRANSFER[@]}" --transfer-from "$cold")
    echo "$cold $transfer"; exit 0
fi
mkdir -p "$DIR"
ps -o pgid= $$ | tr -d ' ' > "$DIR/pgid"
[ -f "$DIR/data/manifest.json" ] || $PY -m synth generate --all --seed 0-4 --out "$DIR/data"
log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$DIR/log.txt"; }
for ds in "${COLD[@]}"; do
    log "cold $ds start"
    $PY -m experiments sweep --datasets "$ds" "${COMMON[@]}"
    log "cold $ds end"
done
cold=$(experiment)
others=$($PY -m synth list | cut -d' ' -f1 | grep -vxF -e U1 -e S2.3 -e S4.4)
for ds in "${COLD[@]}" $others; do
    log "transfer $ds start (from $cold)"
    $PY -m experiments sweep --datasets "$ds" "${COMMON[@]}" "${TRANSFER[@]}" --transfer-from "$cold"
    log "transfer $ds end"
done
log "all done: python -m experiments report --db $DB --experiment <transfer experiment>"
