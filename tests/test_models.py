"""The shipped example networks and properties stay consistent, and the scripts that establish
their verdicts independently of the verifier (``models/check_specs.py``, ``models/spec_bounds.py``)
stay correct: both formats of every property agree, recorded counterexamples replay with zero
tolerance, the generated specs and READMEs match the files, the own loader matches onnxruntime
on DAGs with Conv / MaxPool / skip connections, the own bounds are sound, and the hand-written
training gradients match finite differences. None of this uses the verifier.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.onnx_builders import GraphBuilder, save, tensor
from tests.helpers.paths import REPO

MODELS, SPECS = REPO / "models", REPO / "specs"
sys.path.insert(0, str(MODELS))
import build_models

sys.modules.setdefault("build_models", build_models)
import check_specs
import dag_models
import spec_bounds
import write_specs

STEMS = sorted({p.stem for p in SPECS.glob("*.vnnlib")} | {p.stem for p in SPECS.glob("*.toml")
                                                         if check_specs.is_property_file(p)})
ONNX_FILES = sorted(MODELS.glob("*.onnx"))


def read_pair(stem: str) -> tuple[check_specs.Property, check_specs.Property, Path]:
    meta = check_specs.read_comment_meta((SPECS / f"{stem}.toml").read_text(), "#")
    onnx_path = REPO / meta["network"]
    n_in, n_out = check_specs.network_dims(onnx_path)
    return (check_specs.parse_toml(SPECS / f"{stem}.toml", n_in, n_out),
            check_specs.parse_vnnlib(SPECS / f"{stem}.vnnlib", n_in, n_out), onnx_path)


def test_specs_cover_the_dag_networks():
    networks = {read_pair(s)[2].name: set() for s in STEMS}
    for s in STEMS:
        networks[read_pair(s)[2].name].add(read_pair(s)[0].expected)
    for name in ("conv_maxpool_detector.onnx", "residual_stopping_distance.onnx"):
        assert networks[name] == {"holds", "violated"}
    assert {p.name for p in ONNX_FILES} == set(networks)


@pytest.mark.parametrize("stem", STEMS)
def test_both_formats_state_the_same_property(stem):
    toml_prop, vnnlib_prop, onnx_path = read_pair(stem)
    assert onnx_path.is_file()
    assert toml_prop.key() == vnnlib_prop.key()
    assert toml_prop.network == vnnlib_prop.network and toml_prop.expected == vnnlib_prop.expected
    assert toml_prop.expected in ("holds", "violated")
    for lo, hi in toml_prop.boxes:  # every box holds a float32 point (fixed inputs exact in float32)
        assert np.all(lo <= hi)
        assert np.all(check_specs.float32_inside(lo, lo, hi).astype(np.float64) <= hi)


@pytest.mark.parametrize("stem", STEMS)
def test_recorded_counterexamples_replay(stem):
    toml_prop, vnnlib_prop, onnx_path = read_pair(stem)
    runner = check_specs.OnnxRunner(onnx_path)
    for prop in (toml_prop, vnnlib_prop):
        assert (prop.counterexample is not None) == (prop.expected == "violated")
        if prop.counterexample is not None:
            ok, margin, _ = check_specs.replay(prop, runner, prop.counterexample)
            assert ok and margin >= 0


def test_check_specs_establishes_every_verdict():
    proc = subprocess.run([sys.executable, str(MODELS / "check_specs.py"), "--samples", "50000"],
                          capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(STEMS)} properties checked, 0 with problems" in proc.stdout
    assert "PROBLEM" not in proc.stdout


def test_generated_specs_are_current(tmp_path):
    write_specs.main([str(tmp_path)])
    written = sorted(tmp_path.iterdir())
    assert len(written) == 16
    for path in written:
        assert path.read_text() == (SPECS / path.name).read_text(), f"{path.name}: rerun models/write_specs.py"


def test_models_readme_matches_the_files():
    text = (MODELS / "README.md").read_text()
    for path in ONNX_FILES:
        assert f"## `{path.name}`" in text
        assert hashlib.sha256(path.read_bytes()).hexdigest() in text, f"{path.name}: rerun build_models.py"


def test_specs_readme_lists_every_property_with_its_verdict():
    text = (SPECS / "README.md").read_text()
    suite = tomllib.loads((SPECS / "suite.toml").read_text())
    assert all((SPECS / c["spec"]).is_file() for c in suite["check"])
    for stem in STEMS:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{stem}` |")]
        assert len(rows) == 2, stem  # the property table and the results table
        expected = read_pair(stem)[0].expected
        assert rows[0].rstrip().endswith(f"| {expected} |") and f"| {expected} |" in rows[1]


@pytest.mark.parametrize("path", ONNX_FILES, ids=lambda p: p.name)
def test_own_loader_matches_onnxruntime(path):
    assert check_specs.check_network_loader(path, np.random.default_rng(1)) < 1e-4


def dag_model(tmp_path: Path) -> Path:
    """Conv (stride 2, uneven pads) -> Relu -> MaxPool 3x3 stride 2 pads 1 (short windows) ->
    Flatten -> Gemm -> LeakyRelu = h; Clip(Gemm(h)) + h (a skip connection) -> Relu -> Gemm."""
    g = GraphBuilder(seed=3)
    c = g.op("Conv", ["x", g.weight((3, 2, 3, 3), 0.5), g.const(g.randn((3,), 0.2))],
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1])
    p = g.op("MaxPool", [g.op("Relu", [c])], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    h = g.op("LeakyRelu", [g.gemm(g.op("Flatten", [p], axis=1), 12, 6)], alpha=0.2)
    lo, hi = g.const(np.array(-0.5)), g.const(np.array(0.7))
    s = g.op("Add", [g.op("Clip", [g.gemm(h, 6, 6), lo, hi]), h])
    g.gemm(g.op("Relu", [s]), 6, 2, out="y")
    return save(tmp_path, g.model([tensor("x", [1, 2, 7, 7])], [tensor("y", [1, 2])]))


def test_own_loader_handles_conv_maxpool_and_skip_dags(tmp_path):
    path = dag_model(tmp_path)
    graph = spec_bounds.load_graph(path)
    assert [n.op for n in graph.nodes] == ["affine", "act", "max", "affine", "act", "affine", "act", "add",
                                           "act", "affine"]
    assert graph.sizes[1] == 3 * 3 * 3 and graph.sizes[3] == 3 * 2 * 2  # conv 3x3x3, pool 3x2x2
    assert check_specs.check_network_loader(path, np.random.default_rng(0)) < 1e-5


def test_bounds_are_sound_on_dags(tmp_path):
    graph = spec_bounds.load_graph(dag_model(tmp_path))
    for seed in range(5):
        spec_bounds.self_test(graph, np.random.default_rng(seed), n_boxes=32)
    for onnx_path in ONNX_FILES:
        spec_bounds.self_test(spec_bounds.load_graph(onnx_path), np.random.default_rng(7), n_boxes=16)


def test_bounds_are_tight_on_tiny_boxes(tmp_path):
    """Sound and tight together: around a point the lower bound of a linear objective is (up to
    the box's tiny width) its value there, so a relaxation error cannot hide in loose bounds."""
    graph = spec_bounds.load_graph(dag_model(tmp_path))
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(200, graph.n_inputs))
    cy, cx = rng.normal(size=(2, graph.n_outputs)), rng.normal(size=(2, graph.n_inputs))
    lower = spec_bounds.linear_lower_bounds(graph, cy, cx, np.zeros(2), x - 1e-7, x + 1e-7)
    value = spec_bounds.forward(graph, x) @ cy.T + x @ cx.T
    assert np.all(lower <= value + 1e-9) and np.all(lower >= value - 1e-4)


def max_only_graph() -> spec_bounds.Graph:
    """``y = (max(x0, x1, x2), max(x2, x3))``: nothing else to hide a wrong max relaxation."""
    node = spec_bounds.Node("max", (0,), groups=np.array([[0, 1, 2], [2, 3, 3]]))
    return spec_bounds.Graph([node], (4,), [4, 2])


def test_bound_self_test_catches_an_unsound_max_relaxation(monkeypatch):
    graph = max_only_graph()
    spec_bounds.self_test(graph, np.random.default_rng(0))  # the real relaxation passes

    def as_if_single(coef, groups, lo, hi):  # unsound: every window treated as its arg-max candidate
        istar = groups[np.arange(len(groups))[None, :], lo[:, groups].argmax(axis=-1)]
        out = np.zeros((*coef.shape[:2], lo.shape[1]))
        for j in range(len(groups)):
            out[np.arange(len(lo)), :, istar[:, j]] += coef[:, :, j]
        return out, np.zeros(coef.shape[:2])

    monkeypatch.setattr(spec_bounds, "max_back", as_if_single)
    with pytest.raises(AssertionError, match="self-test failed"):
        spec_bounds.self_test(graph, np.random.default_rng(0))


def test_proof_of_a_few_free_pixels_bounds_one_box():
    """59-62 of the 64 pixels are fixed: the proof works on the free ones (one box, no split)."""
    graph = spec_bounds.load_graph(MODELS / "conv_maxpool_detector.onnx")
    for stem in ("conv_vbar_two_dead_pixels", "conv_hbar_robust_5_pixels"):
        prop = read_pair(stem)[0]
        lo, hi = prop.boxes[0]
        assert 2 <= np.sum(hi > lo) <= 5
        proved, leaves, bounded, certified = check_specs.bound_proof(prop, graph)
        assert proved and (leaves, bounded) == (1, 1) and certified > 1.0


def numeric_grad(f, p: dict[str, np.ndarray], name: str, idx: tuple, eps: float = 1e-6) -> float:
    old = p[name][idx]
    p[name][idx] = old + eps
    up = f()
    p[name][idx] = old - eps
    down = f()
    p[name][idx] = old
    return (up - down) / (2 * eps)


@pytest.mark.parametrize("which", ["conv", "residual"])
def test_training_gradients_match_finite_differences(which):
    rng = np.random.default_rng(0)
    if which == "conv":
        x, _ = dag_models.bar_images(5, rng)
        p = {"conv.w": rng.normal(0, 0.5, (dag_models.CHANNELS, 1, 3, 3)), "conv.b": rng.normal(0, 0.1, dag_models.CHANNELS),
             "fc.w": rng.normal(0, 0.3, (dag_models.HIDDEN, dag_models.CHANNELS * 16)),
             "fc.b": rng.normal(0, 0.1, dag_models.HIDDEN),
             "out.w": rng.normal(0, 0.3, (3, dag_models.HIDDEN)), "out.b": rng.normal(0, 0.1, 3)}
        fwd, bwd = dag_models.conv_forward, dag_models.conv_backward
    else:
        x = dag_models.stopping_inputs(7, rng)
        sizes = {"l1": (4, 16), "l2": (16, 16), "l3": (16, 16), "l4": (16, 1)}
        p = {}
        for k, (n_in, n_out) in sizes.items():
            p[f"{k}.w"], p[f"{k}.b"] = rng.normal(0, 0.5, (n_out, n_in)), rng.normal(0, 0.1, n_out)
        fwd, bwd = dag_models.residual_forward, dag_models.residual_backward
    out, cache = fwd(p, x)
    weights = rng.normal(size=out.shape)  # loss = sum(weights * out)
    grads = bwd(p, weights, cache)
    for name, value in p.items():
        for _ in range(3):
            idx = tuple(int(rng.integers(0, d)) for d in value.shape)
            num = numeric_grad(lambda: float(np.sum(weights * fwd(p, x)[0])), p, name, idx)
            assert grads[name][idx] == pytest.approx(num, rel=1e-4, abs=1e-6), (name, idx)


def test_conv_images_have_the_documented_classes():
    x, y = dag_models.bar_images(300, np.random.default_rng(1))
    bright = x[:, 0] >= 0.6
    rows, cols = bright.sum(axis=2).max(axis=1), bright.sum(axis=1).max(axis=1)
    assert np.all(bright.sum(axis=(1, 2))[y == 0] == 0)
    assert np.all(rows[y == 1] >= 4) and np.all(cols[y == 2] >= 4)
    assert set(np.unique(y)) == {0, 1, 2}
    assert re.search(r"bar_images", (MODELS / "README.md").read_text())
