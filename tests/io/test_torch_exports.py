"""Models exported by PyTorch's two exporters (TorchScript, opsets 11 and 17; dynamo, opset 18)
load and agree with onnxruntime. The files are built by ``tests/fixtures/build_torch_exports.py``
(in an environment with torch; the tests only need the checked-in files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.ort_compare import assert_loads_like_onnxruntime

EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "torch_exports"
MODELS = ("conv_maxpool", "residual_bn", "avgpools", "conv1d", "branches")
TAGS = ("ts11", "ts17", "dynamo18")


def test_every_export_is_checked_in():
    assert sorted(p.name for p in EXPORTS.glob("*.onnx")) == sorted(f"{m}_{t}.onnx" for m in MODELS for t in TAGS)


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("name", MODELS)
def test_export_loads_like_onnxruntime(name, tag):
    net = assert_loads_like_onnxruntime(EXPORTS / f"{name}_{tag}.onnx", n=20, low=0.0, high=1.0)
    kinds = [layer.activation.kind for layer in net.layers if layer.activation is not None]
    assert ("max" in kinds) == (name in ("conv_maxpool", "conv1d"))  # MaxPool: a max activation
    assert net.is_chain == (name in ("conv_maxpool", "conv1d", "avgpools"))  # skip connection, branches: a DAG
