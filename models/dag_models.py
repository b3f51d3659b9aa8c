"""The two non-chain example networks of ``build_models.py``: a convolutional image classifier with
MaxPool, and a small residual regressor (deterministic, numpy only; no deep-learning framework).

``conv_maxpool_detector.onnx``
    Synthetic 8x8 grey images (a bright bar, horizontal or vertical, or none, on a noisy
    background) -> ``Conv`` 3x3 (4 channels, pads 1) -> ``Relu`` -> ``MaxPool`` 2x2 stride 2 ->
    ``Flatten`` -> ``Gemm`` 64 -> 16 -> ``Relu`` -> ``Gemm`` 16 -> 3. Input ``[1, 1, 8, 8]``.
``residual_stopping_distance.onnx``
    A car's stopping distance from speed, reaction time, road friction and slope:
    ``h = Relu(Gemm(x))``, ``h2 = Relu(Gemm(h))``, ``y = Gemm(Relu(Add(Gemm(h2), h)))``: the
    ``Add`` of two input-dependent tensors is a skip connection. Input ``[1, 4]``.

Both are trained with mini-batch AdamW (:func:`adam`) on gradients written out by hand: the
convolution as an im2col matrix product, the max-pool backward pass through the arg-max of
each window, the skip connection as the sum of the two paths' gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from build_models import Built, TrainConfig, batched_session, class_accuracy, finish_model, sha256, softmax_xent
from onnx import helper, numpy_helper

IMG = 8  # image side
CHANNELS = 4  # convolution output channels
HIDDEN = 16  # width of the dense hidden layer of the image net and of the residual net
BAR_CLASSES = ("none", "horizontal", "vertical")

# --------------------------------------------------------------------------------------------
# Optimiser
# --------------------------------------------------------------------------------------------


def adam(params: dict[str, np.ndarray], decay: set[str], n: int, cfg: TrainConfig,
         loss_grads: Callable[[np.ndarray], tuple[float, dict[str, np.ndarray]]]) -> list[float]:
    """Mini-batch AdamW with a cosine learning-rate decay over ``n`` samples; updates ``params``
    in place. ``loss_grads(batch_indices)`` returns the batch loss and the gradient of every
    parameter; weight decay applies to the names in ``decay``. Returns the mean loss per epoch."""
    rng = np.random.default_rng(cfg.seed)
    m = {k: np.zeros_like(p) for k, p in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    total = cfg.epochs * int(np.ceil(n / cfg.batch_size))
    step, history = 0, []
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        epoch_loss = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss, grads = loss_grads(idx)
            epoch_loss += loss * len(idx)
            step += 1
            lr = cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + np.cos(np.pi * step / total))
            for k, p in params.items():
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                if k in decay:
                    p -= lr * cfg.weight_decay * p
                p -= lr * (m[k] / (1 - 0.9**step)) / (np.sqrt(v[k] / (1 - 0.999**step)) + 1e-8)
        history.append(epoch_loss / n)
    return history


def f32(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32-rounded copies (what the ONNX file stores), kept as float64."""
    return {k: p.astype(np.float32).astype(np.float64) for k, p in params.items()}


def export_error(model: onnx.ModelProto, x: np.ndarray, ref: np.ndarray, path: Path) -> float:
    """Max |onnxruntime - numpy| over the rows of ``x`` (batched, and the first 20 one by one)."""
    got = batched_session(model).run(None, {"input": x.astype(np.float32)})[0]
    err = float(np.max(np.abs(got - ref)))
    single = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for row, want in zip(x[:20], ref[:20], strict=True):
        err = max(err, float(np.max(np.abs(single.run(None, {"input": row[None].astype(np.float32)})[0][0] - want))))
    if err > 1e-4:
        raise RuntimeError(f"{path.name}: onnxruntime differs from numpy by {err:g}")
    return err


# --------------------------------------------------------------------------------------------
# Convolutional bar detector
# --------------------------------------------------------------------------------------------


def bar_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic images ``(n, 1, 8, 8)`` in [0, 1] and labels 0 none / 1 horizontal / 2 vertical.

    Background pixels are uniform in [0, 0.3]. A bar is 4 to 8 consecutive pixels of one row
    (horizontal) or one column (vertical), each pixel uniform in [0.6, 1]; classes are balanced.
    """
    x = rng.uniform(0.0, 0.3, size=(n, IMG, IMG))
    y = rng.integers(0, 3, size=n)
    length = rng.integers(4, IMG + 1, size=n)
    line = rng.integers(0, IMG, size=n)
    start = np.array([rng.integers(0, IMG - k + 1) for k in length])
    bright = rng.uniform(0.6, 1.0, size=(n, IMG))
    for i in np.flatnonzero(y > 0):
        seg = slice(start[i], start[i] + length[i])
        if y[i] == 1:
            x[i, line[i], seg] = bright[i, :length[i]]
        else:
            x[i, seg, line[i]] = bright[i, :length[i]]
    return x[:, None], y.astype(np.int64)


def im2col(x: np.ndarray) -> np.ndarray:
    """Patches of a 3x3 convolution with zero padding 1: ``(N, C, H, W) -> (N, H*W, C*9)``,
    columns ordered (channel, kernel row, kernel column) like a ``(C_out, C, 3, 3)`` weight."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, di:di + h, dj:dj + w] for di in range(3) for dj in range(3)], axis=2)
    return cols.reshape(n, c * 9, h * w).transpose(0, 2, 1)


def conv_forward(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Logits of the bar detector for images ``x`` and the intermediate values backprop needs."""
    n = len(x)
    cols = im2col(x)
    conv = cols @ p["conv.w"].reshape(CHANNELS, -1).T + p["conv.b"]  # (N, 64, C)
    act = np.maximum(conv, 0.0).transpose(0, 2, 1).reshape(n, CHANNELS, IMG // 2, 2, IMG // 2, 2)
    windows = act.transpose(0, 1, 2, 4, 3, 5).reshape(n, CHANNELS, IMG // 2, IMG // 2, 4)
    arg = windows.argmax(axis=-1)
    pooled = np.take_along_axis(windows, arg[..., None], axis=-1)[..., 0]
    flat = pooled.reshape(n, -1)  # ONNX Flatten order (C, H, W)
    pre = flat @ p["fc.w"].T + p["fc.b"]
    hid = np.maximum(pre, 0.0)
    out = hid @ p["out.w"].T + p["out.b"]
    return out, {"cols": cols, "conv": conv, "arg": arg, "flat": flat, "pre": pre, "hid": hid}


def conv_backward(p: dict[str, np.ndarray], g_out: np.ndarray, c: dict) -> dict[str, np.ndarray]:
    """Gradients of every parameter from ``d loss / d logits``: the max-pool passes each window's
    gradient to its arg-max, the convolution's weight gradient is ``g^T cols``."""
    n = len(g_out)
    grads = {"out.w": g_out.T @ c["hid"], "out.b": g_out.sum(axis=0)}
    g_pre = (g_out @ p["out.w"]) * (c["pre"] > 0)
    grads["fc.w"], grads["fc.b"] = g_pre.T @ c["flat"], g_pre.sum(axis=0)
    g_pool = (g_pre @ p["fc.w"]).reshape(n, CHANNELS, IMG // 2, IMG // 2, 1)
    g_win = np.zeros((n, CHANNELS, IMG // 2, IMG // 2, 4))
    np.put_along_axis(g_win, c["arg"][..., None], g_pool, axis=-1)
    g_act = g_win.reshape(n, CHANNELS, IMG // 2, IMG // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    g_conv = g_act.reshape(n, CHANNELS, IMG * IMG).transpose(0, 2, 1) * (c["conv"] > 0)
    grads["conv.w"] = np.einsum("npc,npk->ck", g_conv, c["cols"]).reshape(p["conv.w"].shape)
    grads["conv.b"] = g_conv.sum(axis=(0, 1))
    return grads


def export_conv(p: dict[str, np.ndarray], path: Path, doc: str) -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Relu -> Gemm, input ``[1, 1, 8, 8]``."""
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in p.items()]
    nodes = [
        helper.make_node("Conv", ["input", "conv.w", "conv.b"], ["conv"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv"], ["conv.relu"], name="conv.relu"),
        helper.make_node("MaxPool", ["conv.relu"], ["pool"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["fc"], name="fc.gemm", transB=1),
        helper.make_node("Relu", ["fc"], ["fc.relu"], name="fc.relu"),
        helper.make_node("Gemm", ["fc.relu", "out.w", "out.b"], ["output"], name="out.gemm", transB=1),
    ]
    return finish_model(nodes, inits, path.stem, [1, 1, IMG, IMG], 3, doc, path)


def build_conv(out_dir: Path) -> Built:
    """Train and export ``conv_maxpool_detector.onnx``."""
    rng = np.random.default_rng(20240604)
    x_train, y_train = bar_images(6000, rng)
    x_test, y_test = bar_images(3000, rng)
    p = {"conv.w": rng.normal(0, np.sqrt(2 / 9), (CHANNELS, 1, 3, 3)), "conv.b": np.full(CHANNELS, 0.01),
         "fc.w": rng.normal(0, np.sqrt(2 / 64), (HIDDEN, CHANNELS * 16)), "fc.b": np.full(HIDDEN, 0.01),
         "out.w": rng.normal(0, np.sqrt(2 / HIDDEN), (3, HIDDEN)), "out.b": np.zeros(3)}

    def loss_grads(idx: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        out, cache = conv_forward(p, x_train[idx])
        loss, g = softmax_xent(out, y_train[idx])
        return loss, conv_backward(p, g, cache)

    hist = adam(p, {"conv.w", "fc.w", "out.w"}, len(x_train),
                TrainConfig(epochs=30, batch_size=64, lr=5e-3, weight_decay=1e-4, seed=4), loss_grads)
    doc = ("Bar detector on 8x8 grey images (pixels in [0,1]): Conv 3x3 (4 channels, pads 1), Relu, "
           "MaxPool 2x2 stride 2, Flatten, Gemm 64-16, Relu, Gemm 16-3. Outputs: scores of none, "
           "horizontal bar, vertical bar; the prediction is the argmax. Input pixel (r, c) is x[r*8+c].")
    path = out_dir / "conv_maxpool_detector.onnx"
    model = export_conv(p, path, doc)
    err = export_error(model, x_test[:2000], conv_forward(f32(p), x_test[:2000].astype(np.float32))[0], path)
    n_params = sum(v.size for v in p.values())
    return Built(
        name="conv_maxpool_detector",
        summary="Synthetic 8x8 grey-image classifier with a convolution and a max-pool: is there a "
                "bright **horizontal** bar, a **vertical** bar, or **none**? The prediction is the "
                "**argmax** of the three outputs.",
        inputs=[("x[8*r + c]", ("grey value of pixel (row r, column c), r, c = 0..7 (the input tensor "
                                "is `[1, 1, 8, 8]`; specs index it flattened row by row)"), "[0, 1]")],
        outputs=[("y0", "none: background noise only"), ("y1", "horizontal bar"), ("y2", "vertical bar")],
        architecture=f"[1, 1, 8, 8] -> Conv 3x3 x {CHANNELS} (pads 1) [{CHANNELS}, 8, 8] -> Relu -> "
                     f"MaxPool 2x2 stride 2 [{CHANNELS}, 4, 4] -> Flatten 64 -> {HIDDEN} -> Relu -> 3 "
                     f"({CHANNELS * 64} + {HIDDEN} ReLU neurons, {CHANNELS * 16} max-pool windows of 4; "
                     f"{n_params} parameters)",
        onnx_ops="Conv (kernel 3x3, pads 1, strides 1), Relu, MaxPool (kernel 2x2, strides 2), "
                 "Flatten, Gemm (transB=1)",
        metrics={"train accuracy": f"{class_accuracy(model, x_train, y_train):.2%}",
                 "test accuracy": f"{class_accuracy(model, x_test, y_test):.2%}",
                 "final train loss (cross-entropy)": f"{hist[-1]:.4f}",
                 "max |onnxruntime - numpy|": f"{err:.1e}"},
        notes="Images come from `bar_images` in `dag_models.py`: background pixels uniform in "
              "[0, 0.3]; a bar is 4 to 8 consecutive pixels of one row or column, each uniform in "
              "[0.6, 1]; the three classes are equally likely. Training data: 6000 images; test "
              "data: 3000 more. Training: numpy, the convolution as an im2col product, the max-pool "
              "backward pass through each window's arg-max.",
        sha256=sha256(path),
        data={"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
    )


# --------------------------------------------------------------------------------------------
# Residual stopping-distance regressor
# --------------------------------------------------------------------------------------------

G = 9.81  # m/s^2


def stopping_distance(x: np.ndarray) -> np.ndarray:
    """Stopping distance in units of 100 m for normalised inputs ``x`` (rows).

    ``x0`` in [0, 1]: speed ``v = 5 + 35 x0`` m/s; ``x1`` in [0, 1]: reaction time
    ``t = 0.5 + 1.5 x1`` s; ``x2`` in [0, 1]: tyre-road friction ``mu = 0.3 + 0.6 x2`` (wet to
    dry); ``x3`` in [-1, 1]: road grade ``g = 0.05 x3`` (downhill to uphill). Distance =
    reaction distance ``v t`` + braking distance ``v^2 / (2 G (mu + g))``.
    """
    v = 5 + 35 * x[:, 0]
    t = 0.5 + 1.5 * x[:, 1]
    mu = 0.3 + 0.6 * x[:, 2]
    grade = 0.05 * x[:, 3]
    return ((v * t + v**2 / (2 * G * (mu + grade))) / 100.0)[:, None]


def stopping_inputs(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform samples of the input box ``[0, 1]^3 x [-1, 1]``."""
    return rng.random((n, 4)) * np.array([1, 1, 1, 2]) - np.array([0, 0, 0, 1])


def residual_forward(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, dict]:
    """``h = relu(W1 x + b1)``, ``h2 = relu(W2 h + b2)``, ``s = W3 h2 + b3 + h``, ``y = W4 relu(s) + b4``."""
    pre1 = x @ p["l1.w"].T + p["l1.b"]
    h = np.maximum(pre1, 0.0)
    pre2 = h @ p["l2.w"].T + p["l2.b"]
    h2 = np.maximum(pre2, 0.0)
    s = h2 @ p["l3.w"].T + p["l3.b"] + h
    r = np.maximum(s, 0.0)
    y = r @ p["l4.w"].T + p["l4.b"]
    return y, {"x": x, "pre1": pre1, "h": h, "pre2": pre2, "h2": h2, "s": s, "r": r}


def residual_backward(p: dict[str, np.ndarray], g_y: np.ndarray, c: dict) -> dict[str, np.ndarray]:
    """Gradients of every parameter; ``h`` collects the gradient of both of its consumers
    (the second layer and the skip connection)."""
    g_s = (g_y @ p["l4.w"]) * (c["s"] > 0)
    g_pre2 = (g_s @ p["l3.w"]) * (c["pre2"] > 0)
    g_pre1 = (g_s + g_pre2 @ p["l2.w"]) * (c["pre1"] > 0)
    grads = {}
    for name, g, z in (("l4", g_y, c["r"]), ("l3", g_s, c["h2"]), ("l2", g_pre2, c["h"]), ("l1", g_pre1, c["x"])):
        grads[f"{name}.w"], grads[f"{name}.b"] = g.T @ z, g.sum(axis=0)
    return grads


def export_residual(p: dict[str, np.ndarray], path: Path, doc: str) -> onnx.ModelProto:
    """Gemm/Relu twice, then ``Add(Gemm(h2), h)``, Relu, Gemm; input ``[1, 4]``."""
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in p.items()]

    def gemm(src: str, layer: str, out: str) -> onnx.NodeProto:
        return helper.make_node("Gemm", [src, f"{layer}.w", f"{layer}.b"], [out], name=f"{layer}.gemm", transB=1)

    nodes = [gemm("input", "l1", "l1"), helper.make_node("Relu", ["l1"], ["h"], name="l1.relu"),
             gemm("h", "l2", "l2"), helper.make_node("Relu", ["l2"], ["h2"], name="l2.relu"),
             gemm("h2", "l3", "l3"), helper.make_node("Add", ["l3", "h"], ["skip"], name="skip.add"),
             helper.make_node("Relu", ["skip"], ["r"], name="skip.relu"), gemm("r", "l4", "output")]
    return finish_model(nodes, inits, path.stem, [1, 4], 1, doc, path)


def build_residual(out_dir: Path) -> Built:
    """Train and export ``residual_stopping_distance.onnx``."""
    rng = np.random.default_rng(20240605)
    x_train, x_test = stopping_inputs(12000, rng), stopping_inputs(6000, rng)
    y_train, y_test = stopping_distance(x_train), stopping_distance(x_test)
    p = {}
    for name, (n_in, n_out) in {"l1": (4, HIDDEN), "l2": (HIDDEN, HIDDEN), "l3": (HIDDEN, HIDDEN),
                                "l4": (HIDDEN, 1)}.items():
        p[f"{name}.w"] = rng.normal(0, np.sqrt(2 / n_in) * (0.5 if name == "l3" else 1.0), (n_out, n_in))
        p[f"{name}.b"] = np.full(n_out, 0.0 if name == "l4" else 0.05)

    def loss_grads(idx: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        out, cache = residual_forward(p, x_train[idx])
        diff = out - y_train[idx]
        return float(np.mean(diff**2)), residual_backward(p, 2 * diff / diff.size, cache)

    hist = adam(p, {"l1.w", "l2.w", "l3.w", "l4.w"}, len(x_train),
                TrainConfig(epochs=120, batch_size=64, lr=5e-3, weight_decay=1e-5, seed=5), loss_grads)
    doc = ("Residual ReLU regressor of a car's stopping distance (units of 100 m). Inputs: speed "
           "5+35*x0 m/s, reaction time 0.5+1.5*x1 s, friction 0.3+0.6*x2, grade 0.05*x3 (x3 in [-1,1]). "
           "h=Relu(Gemm(x)), h2=Relu(Gemm(h)), y=Gemm(Relu(Add(Gemm(h2), h))).")
    path = out_dir / "residual_stopping_distance.onnx"
    model = export_residual(p, path, doc)
    err = export_error(model, x_test[:2000], residual_forward(f32(p), x_test[:2000].astype(np.float32))[0], path)
    pred = batched_session(model).run(None, {"input": x_test.astype(np.float32)})[0]
    abs_err = np.abs(pred - y_test)
    n_params = sum(v.size for v in p.values())
    return Built(
        name="residual_stopping_distance",
        summary="A car's stopping distance (reaction distance + braking distance, in units of "
                "**100 m**) estimated by a small residual network: an affine map of the second hidden "
                "layer `h2` is added to the first hidden layer `h` (a skip connection) before the "
                "last ReLU.",
        inputs=[("x0", "speed: v = 5 + 35 * x0 m/s (18 to 144 km/h)", "[0, 1]"),
                ("x1", "driver's reaction time: 0.5 + 1.5 * x1 s", "[0, 1]"),
                ("x2", "tyre-road friction coefficient: 0.3 + 0.6 * x2 (wet to dry)", "[0, 1]"),
                ("x3", "road grade: 0.05 * x3 (-5 % downhill to +5 % uphill)", "[-1, 1]")],
        outputs=[("y0", "stopping distance / 100 m")],
        architecture=f"4 -> {HIDDEN} (h) -> {HIDDEN} (h2) -> {HIDDEN} + h (skip) -> 1, ReLU "
                     f"({3 * HIDDEN} ReLU neurons, {n_params} parameters)",
        onnx_ops="Gemm (transB=1), Relu, Add of two input-dependent tensors",
        metrics={"final train loss (MSE)": f"{hist[-1]:.2e}",
                 "test RMSE": f"{np.sqrt(np.mean((pred - y_test) ** 2)):.4f} (x 100 m)",
                 "test max abs error": f"{abs_err.max():.4f} (x 100 m)",
                 "target range on the test data": f"{y_test.min():.3f} .. {y_test.max():.3f} (x 100 m)",
                 "max |onnxruntime - numpy|": f"{err:.1e}"},
        notes="Targets come from `stopping_distance` in `dag_models.py`: `d = v t + v^2 / (2 g "
              "(mu + grade))` with g = 9.81 m/s^2, divided by 100 m. Training data: 12000 uniform "
              "samples of the input box; test data: 6000 more.",
        sha256=sha256(path),
        data={"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
    )
