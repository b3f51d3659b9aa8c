"""Proof certificates written by ``verify`` (``Options.certificate`` / ``--certificate``): holds (input
splitting and neuron splitting, ReLU and LeakyReLU), violated, unknown, unions of boxes, fixed
inputs, gzip; the trees cover their boxes and close every disjunct on every path, and every
node's evidence gives the bound it claims when recomputed; refusals (networks and specs built in
memory)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from click.testing import CliRunner

from tests.helpers.certificates import (
    closed_on,
    cons_of,
    layer_of,
    leaf_path,
    paths,
    replay_input_node,
    replay_neuron_leaf,
    walk,
)
from tests.helpers.checks import ort_eval
from tests.helpers.milp_checks import extreme
from tests.helpers.networks import ACT_BY_NAME, network_to_onnx, random_network
from verifier import load_model, load_spec, make_spec
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.errors import VerifierError
from verifier.io.certificate import decode_array, read
from verifier.milp.encoding import encode
from verifier.verify import Options, verify

ACTS = ["relu", "leaky0.1"]
C = np.array([1.0, -1.0])  # the property is about y0 - y1


def _model(tmp_path: Path, act: str, widths: tuple[int, ...], seed: int = 0) -> Path:
    return network_to_onnx(random_network(seed, ACT_BY_NAME[act], widths), ACT_BY_NAME[act], tmp_path / "m.onnx")


def _threshold(model: Path, lo: np.ndarray, hi: np.ndarray, frac: float) -> float:
    """A bound of ``y0 - y1`` on the box: ``frac`` of the way from the true maximum (MILP) to the
    symbolic upper bound (a property that holds, but not by the bounds of the box alone)."""
    net = load_model(model)
    b = symbolic_bounds(net, lo, hi)
    top, _ = extreme(net, encode(net, b, lo, hi), C, maximize=True)
    _, up = linear_bounds(net, b, lo, hi, C[None])
    return float(top + frac * (up[0] - top))


def _spec(tmp_path: Path, boxes: list[tuple[np.ndarray, np.ndarray]], unsafe: list[str],
          name: str = "s.toml") -> Path:
    text = "".join(f"[[input.boxes]]\nlower = {[float(v) for v in lo]}\nupper = {[float(v) for v in hi]}\n\n"
                   for lo, hi in boxes)
    text += "".join(f'[[unsafe]]\nall = ["{u}"]\n\n' for u in unsafe)
    path = tmp_path / name
    path.write_text(text)
    return path


def _check_tree_structure(cert: dict, network, n_samples: int = 400) -> None:
    """Every tree closes each of its disjuncts on every path; the trees list every disjunct; sampled
    inputs of each box reach a leaf whose path closes every disjunct; every closing is recomputed."""
    rng = np.random.default_rng(0)
    layers = layer_of(network)
    for case in cert["cases"]:
        listed = sorted(j for t in case["trees"] for j in t["disjuncts"])
        assert listed == list(range(len(case["disjuncts"])))
        lo, hi = np.array(case["lower"]), np.array(case["upper"])
        X = rng.uniform(lo, hi, (n_samples, lo.size))
        for tree in case["trees"]:
            want = set(tree["disjuncts"])
            for path in paths(tree["root"]):
                assert want <= closed_on(path)
            for node, path in walk(tree["root"]):
                for j, ev in node.get("close", {}).items():
                    assert int(j) in want
                    neuron = any("neuron" in n["split"] for n, _ in path[:-1])
                    replay = replay_neuron_leaf if neuron or "alpha" in ev or "empty" in ev else replay_input_node
                    assert replay(network, case, path, int(j)) > 0
            pres = network.pre_activations(X)
            for x, pre in zip(X, zip(*pres)):
                assert want <= closed_on(leaf_path(tree["root"], x, list(pre), layers))


def _evidence(cert: dict):
    for case in cert["cases"]:
        for tree in case["trees"]:
            for path in paths(tree["root"]):
                node = path[-1][0]
                for ev in node.get("close", {}).values():
                    yield path, ev


@pytest.mark.parametrize("act", ACTS)
def test_input_split_holds_certificate(tmp_path, act):
    model = _model(tmp_path, act, (3, 16, 16, 2))
    lo, hi = -0.5 * np.ones(3), 0.5 * np.ones(3)
    spec = _spec(tmp_path, [(lo, hi)], [f"y0 - y1 >= {_threshold(model, lo, hi, 0.1)!r}"])
    res = verify(str(model), str(spec), options=Options(timeout=60, certificate=str(tmp_path / "p.json")))
    assert res.status == "holds" and res.stats.strategy == "input-split"
    info = res.stats["certificate"]
    assert info["written"] and info["nodes"] > 3 and info["leaves"] > 1 and info["bytes"] > 0
    cert = json.loads((tmp_path / "p.json").read_text())  # .json: not compressed
    assert cert["format"] == "relu-verifier-certificate" and cert["version"] == 1 and cert["verdict"] == "holds"
    assert cert["model"] == {"file": "m.onnx", "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    assert cert["spec"] == {"file": "s.toml", "sha256": hashlib.sha256(spec.read_bytes()).hexdigest()}
    assert cert["onnxruntime"] == onnxruntime.__version__
    assert cert["operators"] == sorted({"Gemm", ACT_BY_NAME[act].onnx_op})
    assert cert["relaxation"] == "crown-1" and cert["float_model"]["dtype"] == "float32"
    case = cert["cases"][0]
    assert case["lower"] == list(lo) and case["upper"] == list(hi)
    assert cons_of(case["disjuncts"][0], 3, 2) == load_spec(spec).bind(3, 2).cases[0].unsafe[0]  # rows as parsed
    _check_tree_structure(cert, load_model(model))
    splits = [p[k][0]["split"] for p in paths(case["trees"][0]["root"]) for k in range(len(p) - 1)]
    assert splits and all("input" in s for s in splits)


@pytest.mark.parametrize("act", ACTS)
def test_neuron_split_holds_certificate(tmp_path, act):
    model = _model(tmp_path, act, (14, 16, 16, 2))
    lo, hi = -0.5 * np.ones(14), 0.5 * np.ones(14)
    spec = _spec(tmp_path, [(lo, hi)], [f"y0 - y1 >= {_threshold(model, lo, hi, 0.1)!r}"])
    res = verify(str(model), str(spec), options=Options(timeout=60, certificate=str(tmp_path / "p.json.gz")))
    assert res.status == "holds" and res.stats.strategy == "neuron-split"
    assert res.stats["certificate"]["written"] and res.stats["certificate"]["leaves"] > 4
    data = (tmp_path / "p.json.gz").read_bytes()
    assert data[:2] == b"\x1f\x8b"
    cert = json.loads(gzip.decompress(data))
    assert cert == read(tmp_path / "p.json.gz")
    net = load_model(model)
    _check_tree_structure(cert, net)
    neg = 0.0 if act == "relu" else net.layers[0].activation.alpha
    n_leaves = 0
    for path, ev in _evidence(cert):
        if ev.get("empty"):
            continue
        n_leaves += 1
        split_at = {}
        for node, k in path[:-1]:
            a, i = node["split"]["neuron"]
            split_at.setdefault(str(a), set()).add(i)
        assert sorted(ev["alpha"]) == ["0", "1"]
        for a, arr in ev["alpha"].items():
            alpha = decode_array(arr)
            assert alpha.size == 16 and np.all((alpha >= neg) & (alpha <= 1.0))
        for a, pairs in ev.get("beta", {}).items():
            assert all(v >= 0 for _, v in pairs) and {i for i, _ in pairs} <= split_at[a]
    assert n_leaves > 4


def test_violated_certificate_has_the_replayed_counterexample(tmp_path):
    model = _model(tmp_path, "relu", (3, 16, 16, 2))
    lo, hi = -0.5 * np.ones(3), 0.5 * np.ones(3)
    t = _threshold(model, lo, hi, -0.3)  # below the maximum: a counterexample exists
    spec = _spec(tmp_path, [(lo, hi), (lo + 0.1, hi)], [f"y0 - y1 >= {t!r}"])
    res = verify(str(model), str(spec), options=Options(timeout=60, certificate=str(tmp_path / "p.json.gz")))
    assert res.status == "violated" and res.stats["certificate"]["written"]
    cert = read(tmp_path / "p.json.gz")
    assert cert["verdict"] == "violated" and len(cert["cases"]) == 2
    assert all(c["trees"] == [] for c in cert["cases"])
    cex = cert["counterexample"]
    assert cex["case"] == res.counterexample.case_index
    x, y = np.array(cex["x"]), np.array(cex["y"])
    case = cert["cases"][cex["case"]]
    assert np.all(np.array(case["lower"]) <= x) and np.all(x <= np.array(case["upper"]))
    assert np.array_equal(y, ort_eval(model, x[None])[0])
    assert y[0] - y[1] >= t


def test_union_of_boxes_certificate_keeps_the_spec_order(tmp_path):
    model = _model(tmp_path, "leaky0.1", (3, 16, 16, 2))
    boxes = [(-0.5 * np.ones(3), np.zeros(3)), (np.zeros(3), 0.5 * np.ones(3))]
    t = max(_threshold(model, lo, hi, 0.15) for lo, hi in boxes)
    spec = _spec(tmp_path, boxes, [f"y0 - y1 >= {t!r}", "y1 >= 100"])
    res = verify(str(model), str(spec), options=Options(timeout=60, certificate=str(tmp_path / "p.json")))
    assert res.status == "holds"
    cert = read(tmp_path / "p.json")
    assert [(c["lower"], c["upper"]) for c in cert["cases"]] == [(list(lo), list(hi)) for lo, hi in boxes]
    assert all(len(c["disjuncts"]) == 2 for c in cert["cases"])
    _check_tree_structure(cert, load_model(model))


@pytest.mark.parametrize("widths", [(3, 16, 16, 2), (14, 16, 16, 2)], ids=["input-split", "neuron-split"])
def test_fixed_inputs_map_back_to_the_model_inputs(tmp_path, widths):
    """Input 1 fixed (lower == upper): the search runs over the free inputs, the certificate speaks
    of the model's inputs (full box, split indices, rows) and its evidence holds on the full network."""
    model = _model(tmp_path, "relu", widths)
    n = widths[0]
    lo, hi = -0.5 * np.ones(n), 0.5 * np.ones(n)
    lo[1] = hi[1] = 0.25
    spec = _spec(tmp_path, [(lo, hi)], [f"y0 - y1 >= {_threshold(model, lo, hi, 0.1)!r}"])
    res = verify(str(model), str(spec), options=Options(timeout=60, certificate=str(tmp_path / "p.json")))
    assert res.status == "holds" and res.stats.fixed_inputs == {0: 1}
    cert = read(tmp_path / "p.json")
    case = cert["cases"][0]
    assert case["lower"][1] == case["upper"][1] == 0.25 and len(case["lower"]) == n
    inputs = {p[k][0]["split"].get("input") for t in case["trees"] for p in paths(t["root"]) for k in range(len(p) - 1)}
    assert 1 not in inputs
    if n == 3:
        assert inputs <= {0, 2} and inputs
    _check_tree_structure(cert, load_model(model))


def test_unknown_writes_no_certificate_and_says_why(tmp_path):
    model = _model(tmp_path, "relu", (3, 16, 16, 2))
    spec = _spec(tmp_path, [(-np.ones(3), np.ones(3))], ["y0 >= 1000"])
    out = tmp_path / "p.json"
    res = verify(str(model), str(spec), options=Options(timeout=1e-6, certificate=str(out)))
    assert res.status == "unknown"
    assert not out.exists()
    info = res.stats["certificate"]
    assert info["written"] is False and "unknown" in info["reason"]


def test_cli_reports_the_certificate_on_stderr(tmp_path):
    from verifier.cli import main

    model = _model(tmp_path, "relu", (3, 16, 16, 2))
    spec = _spec(tmp_path, [(-0.5 * np.ones(3), 0.5 * np.ones(3))], ["y0 - y1 >= 1000"])
    out = tmp_path / "p.json.gz"
    res = CliRunner().invoke(main, ["verify", str(model), str(spec), "--certificate", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert f"certificate (holds) written to {out}" in res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["stats"]["certificate"]["written"]
    res = CliRunner().invoke(main, ["verify", str(model), str(spec), "--certificate", str(out), "--timeout", "1e-6"])
    assert res.exit_code == 3
    assert "certificate: none written (the verdict is unknown" in res.stderr


def test_networks_and_specs_built_in_memory_are_refused(tmp_path):
    net = random_network(0, ACT_BY_NAME["relu"], (3, 8, 2))
    spec = make_spec(-np.ones(3), np.ones(3), [["y0 >= 100"]])
    with pytest.raises(VerifierError, match="built in memory, there is no file to hash"):
        verify(net, spec, options=Options(certificate=str(tmp_path / "p.json")))
    model = network_to_onnx(net, ACT_BY_NAME["relu"], tmp_path / "m.onnx")
    with pytest.raises(VerifierError, match="spec as a file"):
        verify(str(model), spec, options=Options(certificate=str(tmp_path / "p.json")))
    spec_file = _spec(tmp_path, [(-np.ones(3), np.ones(3))], ["y0 >= 100"])
    with pytest.raises(VerifierError, match="cannot write the certificate"):
        verify(str(model), str(spec_file), options=Options(certificate=str(tmp_path / "nowhere" / "p.json")))
    # a network and a spec loaded from their files are fine
    res = verify(load_model(model), load_spec(spec_file), options=Options(certificate=str(tmp_path / "p.json")))
    assert res.stats["certificate"]["written"] == (res.status in ("holds", "violated"))


def test_when_bounds_alone_cannot_finish_the_normal_strategy_decides(tmp_path, monkeypatch):
    from verifier.search import certify

    monkeypatch.setattr(certify, "MAX_DEPTH", 1)
    model = _model(tmp_path, "relu", (3, 16, 16, 2))
    lo, hi = -0.5 * np.ones(3), 0.5 * np.ones(3)
    spec = _spec(tmp_path, [(lo, hi)], [f"y0 - y1 >= {_threshold(model, lo, hi, 0.1)!r}"])
    out = tmp_path / "p.json"
    res = verify(str(model), str(spec), options=Options(timeout=60, certificate=str(out)))
    assert res.status == "holds" and not out.exists()
    assert "certifying search could not prove it" in res.stats["certificate"]["reason"]
    assert "depth limit 1" in res.stats["certificate"]["reason"]


def test_a_model_or_spec_file_changed_during_the_run_gives_no_certificate(tmp_path):
    from verifier.certifying import Certifier
    from verifier.result import Result

    model = _model(tmp_path, "relu", (3, 8, 2))
    spec = _spec(tmp_path, [(-np.ones(3), np.ones(3))], ["y0 >= 1000"])
    cert = Certifier.open(tmp_path / "p.json", str(model), str(spec))
    network_to_onnx(random_network(1, ACT_BY_NAME["relu"], (3, 8, 2)), ACT_BY_NAME["relu"], model)  # replaced
    cert.bind(load_model(model))
    assert "not the one in the file hashed" in cert.failure
    cert = Certifier.open(tmp_path / "p.json", str(model), str(spec))
    cert.bind(load_model(model))
    assert cert.active
    spec.write_text(spec.read_text() + "\n# edited\n")
    info = cert.finish(Result("holds"), load_spec(spec))
    assert not info["written"] and info["reason"] == "the spec file changed during the run"
