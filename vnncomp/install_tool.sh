#!/usr/bin/env bash
# VNN-COMP install script: install_tool.sh v1
# Installs this repository (and its dependencies: numpy, onnx, onnxruntime, PuLP with CBC, click)
# with pip into the Python given by $VERIFIER_PYTHON (default: python3).
set -euo pipefail

if [ "$#" -ne 1 ] || [ "$1" != "v1" ]; then
    echo "usage: $0 v1" >&2
    exit 1
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VERIFIER_PYTHON:-python3}"

"$PY" -m pip install --upgrade pip
"$PY" -m pip install "$REPO"
"$PY" -m verifier.cli --version
