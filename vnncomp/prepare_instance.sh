#!/usr/bin/env bash
# VNN-COMP prepare script: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Does not analyse the instance: checks that both files exist and that the verifier imports.
# Exit 0 when the instance can be run, 1 otherwise.
set -uo pipefail

if [ "$#" -ne 4 ] || [ "$1" != "v1" ]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
CATEGORY="$2" ONNX="$3" VNNLIB="$4"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VERIFIER_PYTHON:-python3}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

echo "preparing $CATEGORY: $ONNX $VNNLIB"
for f in "$ONNX" "$VNNLIB"; do
    if [ ! -f "$f" ]; then
        echo "error: file not found: $f" >&2
        exit 1
    fi
done
if ! "$PY" -c "import verifier.cli" ; then
    echo "error: cannot import the verifier with $PY (run vnncomp/install_tool.sh v1)" >&2
    exit 1
fi
exit 0
