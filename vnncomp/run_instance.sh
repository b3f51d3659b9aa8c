#!/usr/bin/env bash
# VNN-COMP run script: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
#
# Writes RESULTS_FILE in the competition format: "sat" and the witness ((X_0 v) ... (Y_0 v) ...),
# "unsat", "unknown", "timeout", or "error" if the tool failed. It always writes one of these and
# returns before TIMEOUT seconds: the verifier gets TIMEOUT minus a margin, and a hard kill (of the
# verifier and its CBC subprocesses, by GNU timeout's process group) comes shortly before TIMEOUT.
# $VERIFIER_PYTHON selects the Python (default python3); the repository is put on PYTHONPATH.
set -uo pipefail

if [ "$#" -ne 6 ] || [ "$1" != "v1" ]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
CATEGORY="$2" ONNX="$3" VNNLIB="$4" RESULTS="$5" TIMEOUT="$6"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VERIFIER_PYTHON:-python3}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# budget: verifier time limit (start-up excluded) and the hard kill, both with margins
read -r BUDGET HARD < <(awk -v t="$TIMEOUT" 'BEGIN {
    if (t + 0 <= 0) { print "-", "-"; exit }
    margin = (t * 0.05 > 2) ? t * 0.05 : 2;           # for start-up, result writing, CBC overshoot
    budget = t - margin - 1; if (budget < 0.5) budget = 0.5;
    hard = t - 0.5 * margin; if (hard < budget + 0.2) hard = budget + 0.2;
    printf "%.2f %.2f\n", budget, hard }')
if [ "$BUDGET" = "-" ]; then
    echo "error: bad TIMEOUT '$TIMEOUT'" >&2
    echo "error" > "$RESULTS"
    exit 1
fi

echo "running $CATEGORY: $ONNX $VNNLIB (timeout $TIMEOUT s, verifier budget $BUDGET s, hard limit $HARD s)"
TMP="$RESULTS.tmp.$$"
rm -f "$RESULTS" "$TMP"
timeout --signal=TERM --kill-after=0.3 "$HARD" \
    "$PY" -m verifier.cli verify "$ONNX" "$VNNLIB" --timeout "$BUDGET" --vnncomp-out "$TMP" --quiet
rc=$?

# a complete file: unsat / unknown / timeout, or sat with its witness closed by ")"
if [ -s "$TMP" ] && { [ "$(head -n 1 "$TMP")" != "sat" ] || tail -n 1 "$TMP" | grep -q ')[[:space:]]*$'; }; then
    mv -f "$TMP" "$RESULTS"
else
    rm -f "$TMP"
    case "$rc" in
        124|137) echo "timeout" > "$RESULTS" ;;       # killed by the hard limit
        3) echo "unknown" > "$RESULTS" ;;
        *) echo "error" > "$RESULTS" ;;                # bad input (2), internal error (4), crash (signal)
    esac
    echo "verifier exit code $rc, no result file: wrote $(cat "$RESULTS")" >&2
fi
echo "result: $(head -n 1 "$RESULTS")"
exit 0
