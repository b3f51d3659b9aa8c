"""Build, train and export the project's example networks (deterministic, numpy only).

Run from the repository root::

    python models/build_models.py            # writes models/*.onnx and models/README.md
    python models/build_models.py --save-data  # also writes models/data/<name>.npz

Three small fully-connected networks are trained with plain numpy (mini-batch Adam) on
synthetic data that this script generates itself from fixed seeds, then exported with
``onnx.helper`` (opset 13, float32 weights, input ``[1, n]``, output ``[1, m]``):

``collision_advisory.onnx``
    ReLU, 5 -> 20 -> 20 -> 5, exported as ``Gemm`` (``transB=1``) + ``Relu``.
    Toy collision-avoidance advisories; the advisory is the **argmax** of the 5 scores.
``leaky_classifier.onnx``
    LeakyReLU (alpha 0.1), 2 -> 12 -> 12 -> 3, exported as ``MatMul`` + ``Add`` + ``LeakyRelu``.
``clipped_regressor.onnx``
    Clipped ReLU ``Clip(0, 1)``, 2 -> 12 -> 12 -> 2, exported as ``Gemm`` (``transB=0``) + ``Clip``
    (opset 13: min and max are scalar initializer inputs).

The three graphs deliberately use the three common ways of writing an affine layer in ONNX, so
that a loader is exercised on all of them. Two more networks are not chains of dense layers
(``dag_models.py``, trained the same way):

``conv_maxpool_detector.onnx``
    8x8 grey images -> ``Conv`` 3x3 (4 channels) -> ``Relu`` -> ``MaxPool`` 2x2 -> ``Flatten``
    -> ``Gemm`` 64 -> 16 -> ``Relu`` -> ``Gemm`` 16 -> 3: horizontal bar / vertical bar / none.
``residual_stopping_distance.onnx``
    ReLU, 4 -> 16 -> 16 -> 16 with a skip connection (``Add`` of two input-dependent tensors)
    -> 1: a car's stopping distance.

Every exported file is replayed in onnxruntime and compared with the numpy forward pass before
it is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

MODELS_DIR = Path(__file__).resolve().parent
OPSET = 13
IR_VERSION = 8
LEAKY_ALPHA = 0.1

# --------------------------------------------------------------------------------------------
# Network representation, forward / backward pass
# --------------------------------------------------------------------------------------------


@dataclass
class MLP:
    """A fully-connected network: ``z_{k+1} = act(W_k z_k + b_k)``; no activation on the last layer.

    ``weights[k]`` has shape ``(n_out, n_in)``; ``activation`` is ``"relu"``, ``"leaky"`` or
    ``"clip"`` (``min(max(x, 0), 1)``) and applies to every hidden layer.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str

    @property
    def sizes(self) -> list[int]:
        """Layer widths from input to output, e.g. ``[5, 20, 20, 5]``."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def as_float32(self) -> MLP:
        """A copy with float32-rounded parameters (what the ONNX file stores), kept as float64."""
        return MLP(
            [w.astype(np.float32).astype(np.float64) for w in self.weights],
            [b.astype(np.float32).astype(np.float64) for b in self.biases],
            self.activation,
        )


def init_mlp(sizes: list[int], activation: str, rng: np.random.Generator,
             hidden_bias: float = 0.0) -> MLP:
    """He-initialised weights; hidden biases set to ``hidden_bias`` (output biases to zero)."""
    weights, biases = [], []
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        weights.append(rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in)))
        last = k == len(sizes) - 2
        biases.append(np.full(n_out, 0.0 if last else hidden_bias))
    return MLP(weights, biases, activation)


def activate(kind: str, z: np.ndarray) -> np.ndarray:
    """Apply the hidden activation ``kind`` elementwise."""
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "leaky":
        return np.where(z >= 0.0, z, LEAKY_ALPHA * z)
    if kind == "clip":
        return np.clip(z, 0.0, 1.0)
    raise ValueError(f"unknown activation {kind!r}")


def activate_grad(kind: str, z: np.ndarray) -> np.ndarray:
    """Derivative of the activation at pre-activation ``z`` (a subgradient at the kinks)."""
    if kind == "relu":
        return (z > 0.0).astype(z.dtype)
    if kind == "leaky":
        return np.where(z > 0.0, 1.0, LEAKY_ALPHA)
    if kind == "clip":
        return ((z > 0.0) & (z < 1.0)).astype(z.dtype)
    raise ValueError(f"unknown activation {kind!r}")


def forward(net: MLP, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Batch forward pass; returns the output and, for backprop, every layer's input and pre-activation."""
    inputs, pre = [], []
    z = x
    n_layers = len(net.weights)
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        inputs.append(z)
        s = z @ w.T + b
        pre.append(s)
        z = s if k == n_layers - 1 else activate(net.activation, s)
    return z, inputs, pre


def backward(net: MLP, grad_out: np.ndarray, inputs: list[np.ndarray],
             pre: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Gradients of the loss w.r.t. every weight and bias, given ``d loss / d output``."""
    grads_w: list[np.ndarray] = [np.empty(0)] * len(net.weights)
    grads_b: list[np.ndarray] = [np.empty(0)] * len(net.weights)
    g = grad_out
    for k in range(len(net.weights) - 1, -1, -1):
        if k < len(net.weights) - 1:
            g = g * activate_grad(net.activation, pre[k])
        grads_w[k] = g.T @ inputs[k]
        grads_b[k] = g.sum(axis=0)
        g = g @ net.weights[k]
    return grads_w, grads_b


def softmax_xent(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient w.r.t. the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.mean(np.log(p[np.arange(n), labels] + 1e-12))
    grad = p
    grad[np.arange(n), labels] -= 1.0
    return float(loss), grad / n


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error (averaged over samples and outputs) and its gradient."""
    diff = pred - target
    return float(np.mean(diff**2)), 2.0 * diff / diff.size


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train` (Adam with a cosine learning-rate decay)."""

    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    lr_final: float = 1e-4
    weight_decay: float = 1e-4
    seed: int = 0


def train(net: MLP, x: np.ndarray, y: np.ndarray, loss_name: str, cfg: TrainConfig) -> list[float]:
    """Train ``net`` in place with mini-batch Adam; returns the mean training loss of each epoch.

    ``loss_name`` is ``"xent"`` (``y`` holds integer class labels) or ``"mse"`` (``y`` holds
    regression targets). Weight decay is decoupled (AdamW) and applies to weights only.
    """
    loss_fn = softmax_xent if loss_name == "xent" else mse
    rng = np.random.default_rng(cfg.seed)
    params = net.weights + net.biases
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = x.shape[0]
    steps_per_epoch = int(np.ceil(n / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    step = 0
    history = []
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        epoch_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            out, inputs, pre = forward(net, x[idx])
            loss, grad_out = loss_fn(out, y[idx])
            epoch_loss += loss * len(idx)
            gw, gb = backward(net, grad_out, inputs, pre)
            grads = gw + gb
            step += 1
            lr = cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + np.cos(np.pi * step / total_steps))
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                m_hat = m[i] / (1 - beta1**step)
                v_hat = v[i] / (1 - beta2**step)
                if i < len(net.weights):
                    p -= lr * cfg.weight_decay * p
                p -= lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append(epoch_loss / n)
    return history


# --------------------------------------------------------------------------------------------
# Synthetic tasks
# --------------------------------------------------------------------------------------------

ADVISORIES = ("COC", "WL", "WR", "SL", "SR")


def collision_rule(x: np.ndarray) -> np.ndarray:
    """Hand-written advisory rule that labels the collision-avoidance data.

    Inputs (columns): ``d`` distance to intruder in [0, 1] (1 = far), ``b`` bearing of the
    intruder in [-1, 1] (times 180 degrees; positive = intruder on our left), ``h`` relative
    heading of the intruder in [-1, 1] (times 180 degrees), ``vo`` own speed and ``vi`` intruder
    speed in [0, 1].

    - the effective range is ``r = d - 0.1 * (vo + vi)`` (faster aircraft = less time);
    - clear of conflict (0) if ``r >= 0.5`` or the intruder is behind us (``|b| > 0.75``);
    - otherwise a strong advisory if ``r < 0.25``, else a weak one;
    - turn right if ``b + 0.3 * h > 0`` (intruder on / heading to our left), else left.

    Returns labels 0..4 = COC, WL, WR, SL, SR.
    """
    d, b, h, vo, vi = x.T
    r = d - 0.1 * (vo + vi)
    clear = (r >= 0.5) | (np.abs(b) > 0.75)
    strong = r < 0.25
    right = b + 0.3 * h > 0.0
    label = np.where(strong, np.where(right, 4, 3), np.where(right, 2, 1))
    return np.where(clear, 0, label).astype(np.int64)


def collision_inputs(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform samples of the collision task's input box ``[0,1] x [-1,1]^2 x [0,1]^2``."""
    lo = np.array([0.0, -1.0, -1.0, 0.0, 0.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    return lo + (hi - lo) * rng.random((n, 5))


def leaky_rule(x: np.ndarray) -> np.ndarray:
    """Labels of the LeakyReLU task on ``[-1, 1]^2``.

    Class 0 inside the disc of radius 0.5 around the origin; outside it class 1 where
    ``x0 + x1 >= 0`` and class 2 where ``x0 + x1 < 0``.
    """
    inside = np.hypot(x[:, 0], x[:, 1]) < 0.5
    upper = x[:, 0] + x[:, 1] >= 0.0
    return np.where(inside, 0, np.where(upper, 1, 2)).astype(np.int64)


def clipped_targets(x: np.ndarray) -> np.ndarray:
    """Regression targets of the clipped-ReLU task on ``[0, 1]^2``: ``(x0 * x1, |x0 - x1|)``."""
    return np.stack([x[:, 0] * x[:, 1], np.abs(x[:, 0] - x[:, 1])], axis=1)


# --------------------------------------------------------------------------------------------
# ONNX export and replay
# --------------------------------------------------------------------------------------------


def export_onnx(net: MLP, path: Path, style: str, doc: str) -> onnx.ModelProto:
    """Write ``net`` as an ONNX file (opset 13, float32, input ``[1, n]``, output ``[1, m]``).

    ``style`` chooses how affine layers are written: ``"gemm_t"`` (``Gemm`` with ``transB=1``,
    weight stored ``(out, in)``), ``"gemm"`` (``Gemm``, weight stored ``(in, out)``) or
    ``"matmul_add"`` (``MatMul`` with an ``(in, out)`` weight, then ``Add``).
    """
    nodes, inits = [], []
    cur = "input"
    n_layers = len(net.weights)
    if net.activation == "clip":
        inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "clip_min"))
        inits.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), "clip_max"))
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        last = k == n_layers - 1
        w_name, b_name = f"layer{k}.weight", f"layer{k}.bias"
        out = "output" if last else f"layer{k}.pre"
        b32 = b.astype(np.float32)
        if style == "gemm_t":
            inits += [numpy_helper.from_array(w.astype(np.float32), w_name),
                      numpy_helper.from_array(b32, b_name)]
            nodes.append(helper.make_node("Gemm", [cur, w_name, b_name], [out],
                                          name=f"layer{k}.gemm", transB=1))
        elif style == "gemm":
            inits += [numpy_helper.from_array(np.ascontiguousarray(w.T.astype(np.float32)), w_name),
                      numpy_helper.from_array(b32, b_name)]
            nodes.append(helper.make_node("Gemm", [cur, w_name, b_name], [out], name=f"layer{k}.gemm"))
        elif style == "matmul_add":
            inits += [numpy_helper.from_array(np.ascontiguousarray(w.T.astype(np.float32)), w_name),
                      numpy_helper.from_array(b32, b_name)]
            nodes.append(helper.make_node("MatMul", [cur, w_name], [f"layer{k}.mm"],
                                          name=f"layer{k}.matmul"))
            nodes.append(helper.make_node("Add", [f"layer{k}.mm", b_name], [out], name=f"layer{k}.add"))
        else:
            raise ValueError(f"unknown style {style!r}")
        if last:
            break
        act_out = f"layer{k}.act"
        if net.activation == "relu":
            nodes.append(helper.make_node("Relu", [out], [act_out], name=f"layer{k}.relu"))
        elif net.activation == "leaky":
            nodes.append(helper.make_node("LeakyRelu", [out], [act_out], name=f"layer{k}.leakyrelu",
                                          alpha=LEAKY_ALPHA))
        else:
            nodes.append(helper.make_node("Clip", [out, "clip_min", "clip_max"], [act_out],
                                          name=f"layer{k}.clip"))
        cur = act_out
    sizes = net.sizes
    return finish_model(nodes, inits, path.stem, [1, sizes[0]], sizes[-1], doc, path)


def finish_model(nodes: list, inits: list, name: str, in_shape: list[int], n_out: int, doc: str,
                 path: Path) -> onnx.ModelProto:
    """Wrap nodes and initializers into a checked opset-13 model (input ``input`` of ``in_shape``,
    output ``output`` of ``[1, n_out]``) and write it to ``path``."""
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_out])], initializer=inits)
    model = helper.make_model(graph, producer_name="models/build_models.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())
    return model


def batched_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An onnxruntime session on a copy of ``model`` whose batch dimension is symbolic.

    The shipped files have a fixed ``[1, n]`` input; relaxing dimension 0 in memory lets us run
    many points in one call with exactly the same float32 kernels.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in (m.graph.input[0], m.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_onnx_file(path: Path, x: np.ndarray) -> np.ndarray:
    """Run the file itself (fixed ``[1, n]`` input) on each row of ``x``; float32 outputs."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = [sess.run(None, {"input": row[None, :].astype(np.float32)})[0][0] for row in x]
    return np.array(rows)


def check_export(path: Path, model: onnx.ModelProto, net: MLP, x: np.ndarray) -> float:
    """Max |onnxruntime - numpy| over ``x`` (batched) and a few rows through the file itself."""
    ref, _, _ = forward(net.as_float32(), x.astype(np.float32).astype(np.float64))
    got = batched_session(model).run(None, {"input": x.astype(np.float32)})[0]
    err = float(np.max(np.abs(got - ref)))
    single = run_onnx_file(path, x[:20])
    err = max(err, float(np.max(np.abs(single - ref[:20]))))
    if err > 1e-4:
        raise RuntimeError(f"{path.name}: onnxruntime differs from numpy by {err:g}")
    return err


# --------------------------------------------------------------------------------------------
# The three networks
# --------------------------------------------------------------------------------------------


@dataclass
class Built:
    """What :func:`main` reports and writes into the README for one network."""

    name: str
    summary: str
    inputs: list[tuple[str, str, str]]  # (name, meaning, range)
    outputs: list[tuple[str, str]]  # (name, meaning)
    architecture: str
    onnx_ops: str
    metrics: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    sha256: str = ""
    data: dict[str, np.ndarray] = field(default_factory=dict)


def build_collision(out_dir: Path) -> Built:
    """Train and export ``collision_advisory.onnx`` (ReLU, 5 -> 20 -> 20 -> 5, argmax advisory)."""
    rng = np.random.default_rng(20240601)
    x_train = collision_inputs(16000, rng)
    x_test = collision_inputs(8000, rng)
    y_train, y_test = collision_rule(x_train), collision_rule(x_test)
    net = init_mlp([5, 20, 20, 5], "relu", rng, hidden_bias=0.01)
    hist = train(net, x_train, y_train, "xent",
                 TrainConfig(epochs=60, batch_size=128, lr=3e-3, weight_decay=1e-4, seed=1))
    doc = ("Toy collision-avoidance advisory network (ReLU 5-20-20-5). Inputs: distance [0,1], "
           "bearing [-1,1], relative heading [-1,1], own speed [0,1], intruder speed [0,1]. "
           "Outputs: scores of COC, WL, WR, SL, SR; the advisory is the argmax.")
    path = out_dir / "collision_advisory.onnx"
    model = export_onnx(net, path, "gemm_t", doc)
    err = check_export(path, model, net, x_test[:2000])
    acc_train, acc_test = class_accuracy(model, x_train, y_train), class_accuracy(model, x_test, y_test)
    counts = np.bincount(y_train, minlength=5) / len(y_train)
    return Built(
        name="collision_advisory",
        summary="Toy collision-avoidance advisory (ReLU). The advisory is the **argmax** of the "
                "five output scores (higher score = preferred advisory).",
        inputs=[("x0", "distance to the intruder (0 = collision, 1 = far)", "[0, 1]"),
                ("x1", "bearing of the intruder, times 180 deg (positive = on our left)", "[-1, 1]"),
                ("x2", "relative heading of the intruder, times 180 deg", "[-1, 1]"),
                ("x3", "own speed (normalised)", "[0, 1]"),
                ("x4", "intruder speed (normalised)", "[0, 1]")],
        outputs=[("y0", "COC, clear of conflict"), ("y1", "WL, weak left"), ("y2", "WR, weak right"),
                 ("y3", "SL, strong left"), ("y4", "SR, strong right")],
        architecture="5 -> 20 -> 20 -> 5, ReLU (40 hidden neurons)",
        onnx_ops="Gemm (transB=1), Relu",
        metrics={"train accuracy": f"{acc_train:.2%}", "test accuracy": f"{acc_test:.2%}",
                 "final train loss (cross-entropy)": f"{hist[-1]:.4f}",
                 "label frequencies COC/WL/WR/SL/SR": " / ".join(f"{c:.1%}" for c in counts),
                 "max |onnxruntime - numpy|": f"{err:.1e}"},
        notes="Labels come from a hand-written rule (`collision_rule` in the script): effective range "
              "`r = x0 - 0.1*(x3 + x4)`; clear of conflict if `r >= 0.5` or the intruder is behind "
              "(`|x1| > 0.75`); otherwise strong if `r < 0.25`, else weak; turn right if "
              "`x1 + 0.3*x2 > 0` (intruder on or heading to our left), else left. "
              "Training data: 16000 uniform samples of the input box; test data: 8000 more.",
        sha256=sha256(path),
        data={"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
    )


def build_leaky(out_dir: Path) -> Built:
    """Train and export ``leaky_classifier.onnx`` (LeakyReLU 0.1, 2 -> 12 -> 12 -> 3)."""
    rng = np.random.default_rng(20240602)
    lo, hi = -1.0, 1.0
    x_train = lo + (hi - lo) * rng.random((6000, 2))
    x_test = lo + (hi - lo) * rng.random((4000, 2))
    y_train, y_test = leaky_rule(x_train), leaky_rule(x_test)
    net = init_mlp([2, 12, 12, 3], "leaky", rng, hidden_bias=0.0)
    hist = train(net, x_train, y_train, "xent",
                 TrainConfig(epochs=150, batch_size=64, lr=5e-3, weight_decay=1e-4, seed=2))
    doc = ("LeakyReLU(alpha=0.1) classifier 2-12-12-3 on [-1,1]^2: class 0 inside the disc of radius "
           "0.5, class 1 outside with x0+x1>=0, class 2 outside with x0+x1<0. Prediction = argmax.")
    path = out_dir / "leaky_classifier.onnx"
    model = export_onnx(net, path, "matmul_add", doc)
    err = check_export(path, model, net, x_test[:2000])
    acc_train, acc_test = class_accuracy(model, x_train, y_train), class_accuracy(model, x_test, y_test)
    return Built(
        name="leaky_classifier",
        summary="Synthetic 3-class classifier with LeakyReLU activations (alpha = 0.1). The predicted "
                "class is the **argmax** of the three outputs.",
        inputs=[("x0", "first coordinate", "[-1, 1]"), ("x1", "second coordinate", "[-1, 1]")],
        outputs=[("y0", "class 0: inside the disc of radius 0.5 around the origin"),
                 ("y1", "class 1: outside the disc and x0 + x1 >= 0"),
                 ("y2", "class 2: outside the disc and x0 + x1 < 0")],
        architecture="2 -> 12 -> 12 -> 3, LeakyReLU alpha 0.1 (24 hidden neurons)",
        onnx_ops="MatMul + Add, LeakyRelu (alpha=0.1)",
        metrics={"train accuracy": f"{acc_train:.2%}", "test accuracy": f"{acc_test:.2%}",
                 "final train loss (cross-entropy)": f"{hist[-1]:.4f}",
                 "max |onnxruntime - numpy|": f"{err:.1e}"},
        notes="Training data: 6000 uniform samples of [-1, 1]^2; test data: 4000 more.",
        sha256=sha256(path),
        data={"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
    )


def build_clipped(out_dir: Path) -> Built:
    """Train and export ``clipped_regressor.onnx`` (Clip(0, 1), 2 -> 12 -> 12 -> 2)."""
    rng = np.random.default_rng(20240603)
    x_train = rng.random((4000, 2))
    x_test = rng.random((4000, 2))
    y_train, y_test = clipped_targets(x_train), clipped_targets(x_test)
    net = init_mlp([2, 12, 12, 2], "clip", rng, hidden_bias=0.3)
    hist = train(net, x_train, y_train, "mse",
                 TrainConfig(epochs=250, batch_size=64, lr=5e-3, weight_decay=1e-5, seed=3))
    doc = ("Clipped-ReLU (Clip(0,1)) regressor 2-12-12-2 on [0,1]^2: y0 ~ x0*x1, y1 ~ |x0 - x1|.")
    path = out_dir / "clipped_regressor.onnx"
    model = export_onnx(net, path, "gemm", doc)
    err = check_export(path, model, net, x_test[:2000])
    pred = batched_session(model).run(None, {"input": x_test.astype(np.float32)})[0]
    abs_err = np.abs(pred - y_test)
    rmse = np.sqrt(np.mean((pred - y_test) ** 2, axis=0))
    return Built(
        name="clipped_regressor",
        summary="Synthetic 2-output regression with clipped-ReLU activations `min(max(x, 0), 1)` "
                "(ONNX `Clip` with min 0 and max 1).",
        inputs=[("x0", "first factor", "[0, 1]"), ("x1", "second factor", "[0, 1]")],
        outputs=[("y0", "estimate of x0 * x1"), ("y1", "estimate of abs(x0 - x1)")],
        architecture="2 -> 12 -> 12 -> 2, Clip(0, 1) (24 hidden neurons)",
        onnx_ops="Gemm (transB=0, weight stored (in, out)), Clip (min/max as scalar initializer inputs)",
        metrics={"final train loss (MSE)": f"{hist[-1]:.2e}",
                 "test RMSE y0 / y1": f"{rmse[0]:.4f} / {rmse[1]:.4f}",
                 "test max abs error y0 / y1": f"{abs_err[:, 0].max():.4f} / {abs_err[:, 1].max():.4f}",
                 "max |onnxruntime - numpy|": f"{err:.1e}"},
        notes="Training data: 4000 uniform samples of [0, 1]^2; test data: 4000 more.",
        sha256=sha256(path),
        data={"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
    )


def class_accuracy(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose argmax output (float32, onnxruntime) equals the label."""
    out = batched_session(model).run(None, {"input": x.astype(np.float32)})[0]
    return float(np.mean(np.argmax(out, axis=1) == y))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (lets a rebuild be compared with the shipped file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# README and entry point
# --------------------------------------------------------------------------------------------


def render_readme(built: list[Built]) -> str:
    """The text of ``models/README.md``."""
    lines = [
        "# Example networks",
        "",
        "Small networks shipped with the verifier as examples and test inputs. All of them are",
        "generated by `build_models.py` (this file is written by it too): synthetic training data",
        "from fixed numpy seeds, training with plain numpy (mini-batch Adam, cosine learning-rate",
        "decay, decoupled weight decay), export with `onnx.helper`.",
        "",
        "Common format: ONNX opset 13 (IR version 8), float32 weights, one input named `input` of",
        "shape `[1, n]` (`[1, 1, 8, 8]` for the image network), one output named `output` of shape",
        "`[1, m]`. The first three are chains of fully-connected layers with one elementwise",
        "activation kind each; the last two are a convolution + max-pool stack and a residual",
        "network (`dag_models.py`). Specs index a multi-dimensional input flattened in C order",
        "(`x[8*r + c]` is pixel (r, c)).",
        "",
        "Rebuild (from the repository root, about 20 s on one CPU core):",
        "",
        "```sh",
        "python models/build_models.py              # rewrites models/*.onnx and this README",
        "python models/build_models.py --save-data  # also writes the training data to models/data/",
        "python models/write_specs.py               # rewrites the specs of the last two networks",
        "python models/check_specs.py               # re-establishes the verdicts of specs/*",
        "```",
        "",
        "The committed `.onnx` files are the reference. numpy's float arithmetic can differ in the",
        "last bits between CPUs / BLAS builds, so a rebuild elsewhere may give slightly different",
        "weights (compare the SHA-256 below); rerun `check_specs.py` after any rebuild.",
        "",
    ]
    for b in built:
        lines += [f"## `{b.name}.onnx`", "", b.summary, "", "| input | meaning | range |",
                  "| --- | --- | --- |"]
        lines += [f"| `{n}` | {m} | {r} |" for n, m, r in b.inputs]
        lines += ["", "| output | meaning |", "| --- | --- |"]
        lines += [f"| `{n}` | {m} |" for n, m in b.outputs]
        lines += ["", f"- architecture: {b.architecture}", f"- ONNX operators: {b.onnx_ops}"]
        lines += [f"- {k}: {v}" for k, v in b.metrics.items()]
        lines += [f"- SHA-256: `{b.sha256}`", "", b.notes, ""]
    lines += ["Properties of these networks (holds / violated) are in `../specs/`; see",
              "`../specs/README.md`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build all five networks, write the README, optionally save the training data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=MODELS_DIR,
                        help="where to write the .onnx files and README.md (default: models/)")
    parser.add_argument("--save-data", action="store_true",
                        help="also write each network's training and test data to OUT_DIR/data/NAME.npz")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sys.modules.setdefault("build_models", sys.modules[__name__])  # dag_models imports from here
    import dag_models

    built = []
    for builder in (build_collision, build_leaky, build_clipped, dag_models.build_conv,
                    dag_models.build_residual):
        t0 = time.perf_counter()
        b = builder(args.out_dir)
        built.append(b)
        metrics = ", ".join(f"{k} {v}" for k, v in b.metrics.items())
        print(f"{b.name}.onnx: {b.architecture}; {metrics} ({time.perf_counter() - t0:.1f} s)")
        if args.save_data:
            data_dir = args.out_dir / "data"
            data_dir.mkdir(exist_ok=True)
            np.savez_compressed(data_dir / f"{b.name}.npz",
                                **{k: (v.astype(np.float32) if v.dtype.kind == "f" else v)
                                   for k, v in b.data.items()})
    (args.out_dir / "README.md").write_text(render_readme(built))
    print(f"wrote {args.out_dir / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
