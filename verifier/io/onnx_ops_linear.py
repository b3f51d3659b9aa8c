"""ONNX operator handlers for the affine operators: MatMul, Gemm, Conv, BatchNormalization, Add,
Sub, Mul, Div, Neg. Each handler ``op_<Name>(cv, node, vals, attrs)`` gets the graph converter
``cv`` (``io.onnx._GraphConverter``: ``cv.fold`` is the operator's constant fold depth, added to its
rounding count) and returns the result's basis tensor with its float error basis."""

from __future__ import annotations

import numpy as np

from .onnx_basis import _broadcast, _const_row, _conv2d, _matmul_basis, _nnz, _NodeError, _Var


def _elementwise_linear(a, b, kind: str, fold: int = 0) -> _Var:
    """``a + b`` / ``a - b`` where at least one side is input-dependent (both in the same space)."""
    if isinstance(a, _Var) and isinstance(b, _Var):
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = _broadcast(a, shape), _broadcast(b, shape)
        return a.rounded(a.T + b.T if kind == "add" else a.T - b.T, a.err + b.err, a.mag + b.mag, 1,
                         kmax=max(a.kmax, b.kmax))
    if isinstance(a, _Var):
        v, c, sign_v, sign_c = a, b, 1.0, (1.0 if kind == "add" else -1.0)
    else:
        v, c, sign_v, sign_c = b, a, (1.0 if kind == "add" else -1.0), 1.0
    v = _broadcast(v, np.broadcast_shapes(v.shape, np.shape(c)))
    T = sign_v * v.T
    T[-1] = T[-1] + sign_c * c
    # one rounding on |v| + |c|; onnxruntime may instead fold c into the bias of the contraction v
    # comes from (MatMul + Add -> Gemm), where it takes part in that contraction's additions
    return v.rounded(T, v.err, v.mag, 1 + fold, const=_const_row(v.T.shape, c), k_const=max(1, v.kmax + 1) + fold)


def op_Neg(cv, node, vals, attrs):
    return vals[0].exact(np.negative)


def op_Add(cv, node, vals, attrs):
    return _elementwise_linear(vals[0], vals[1], "add", cv.fold)


def op_Sub(cv, node, vals, attrs):
    return _elementwise_linear(vals[0], vals[1], "sub", cv.fold)


def op_Mul(cv, node, vals, attrs):
    a, b = vals
    if isinstance(a, _Var) and isinstance(b, _Var):
        raise _NodeError("product of two input-dependent tensors is not piecewise-linear")
    v, c = (a, b) if isinstance(a, _Var) else (b, a)
    v = _broadcast(v, np.broadcast_shapes(v.shape, np.shape(c)))
    return v.rounded(v.T * c, v.err * np.abs(c), v.mag * np.abs(c), 1 + cv.fold)


def op_Div(cv, node, vals, attrs):
    a, b = vals
    if isinstance(b, _Var):
        raise _NodeError("division by an input-dependent tensor is not piecewise-linear")
    if np.any(b == 0):
        raise _NodeError("division by a constant that contains zero")
    a = _broadcast(a, np.broadcast_shapes(a.shape, np.shape(b)))
    # two roundings: onnxruntime may compute x * fl(1 / c) instead of x / c (fused into MatMul)
    return a.rounded(a.T / b, a.err / np.abs(b), a.mag / np.abs(b), 2 + cv.fold)


def op_MatMul(cv, node, vals, attrs):
    """ONNX (numpy) MatMul semantics with one constant side: 1-D operands are promoted and the
    promoted axis dropped again, batch axes broadcast; the basis axis stays first."""
    a, b = vals
    if isinstance(a, _Var) and isinstance(b, _Var):
        raise _NodeError("MatMul of two input-dependent tensors is not supported (one side must be a constant)")
    v, W, left = (a, b, True) if isinstance(a, _Var) else (b, a, False)
    absW = np.abs(W)
    # non-zero products per output: the same contraction of an all-ones input with W != 0
    k = _matmul_basis(np.ones((1,) + v.shape), (W != 0).astype(np.float64), left)[0]
    return v.rounded(_matmul_basis(v.T, W, left), _matmul_basis(v.err, absW, left),
                     _matmul_basis(v.mag, absW, left), k + cv.fold, kmax=int(np.max(k, initial=0)))


def op_Gemm(cv, node, vals, attrs):
    a, b = vals[0], vals[1]
    c = vals[2] if len(vals) > 2 else None
    alpha = float(attrs.get("alpha", 1.0))
    beta = float(attrs.get("beta", 1.0))
    if isinstance(c, _Var):
        raise _NodeError("Gemm with an input-dependent C is not supported")
    if isinstance(a, _Var) and isinstance(b, _Var):
        raise _NodeError("Gemm of two input-dependent tensors is not supported")

    def t(x, flag):
        if not flag:
            return x
        return x.transpose(0, 2, 1) if isinstance(x, np.ndarray) and x.ndim == 3 else x.T

    v = a if isinstance(a, _Var) else b
    if v.T.ndim != 3:
        raise _NodeError(f"Gemm expects a 2-D input, got shape {list(v.shape)}")
    if isinstance(a, _Var):
        def mm(X, B):
            return alpha * np.matmul(X.transpose(0, 2, 1) if attrs.get("transA", 0) else X,
                                     t(B, attrs.get("transB", 0)))
        W = b
        k = _nnz(t(b, attrs.get("transB", 0)), 0)  # per output column
    else:
        def mm(X, A):
            return alpha * np.matmul(t(A, attrs.get("transA", 0)), X.transpose(0, 2, 1) if attrs.get("transB", 0) else X)
        W = a
        k = _nnz(t(a, attrs.get("transA", 0)), 1)  # per output row
    sign = -1.0 if alpha < 0 else 1.0  # mm scales by alpha; the error terms need |alpha|
    T, prop, local = mm(v.T, W), sign * mm(v.err, np.abs(W)), sign * mm(v.mag, np.abs(W))
    if c is not None:
        full = (T.shape[0],) + np.broadcast_shapes(T.shape[1:], c.shape)
        T, prop, local = (np.array(np.broadcast_to(x, full)) for x in (T, prop, local))
        T[-1] = T[-1] + beta * c
        local[-1] = local[-1] + np.abs(beta * c)
    # the non-zero products, the bias, and the scaling by alpha (beta * C is a folded constant)
    k = k + (0 if c is None else 1) + (alpha != 1.0) + (0 if c is None or beta == 1.0 else 1) + cv.fold
    return v.rounded(T, prop, local, k, kmax=int(np.max(k, initial=0)))


def op_BatchNormalization(cv, node, vals, attrs):
    x, scale, bias, mean, var = vals[:5]
    if attrs.get("training_mode", 0):
        raise _NodeError("training_mode=1 is not supported (export the model in inference mode)")
    if any(isinstance(v, _Var) for v in (scale, bias, mean, var)):
        raise _NodeError("BatchNormalization parameters must be constants")
    eps = float(attrs.get("epsilon", 1e-5))
    if len(x.shape) < 2:
        raise _NodeError("BatchNormalization expects an input with a channel axis (axis 1)")
    cshape = (-1,) + (1,) * (len(x.shape) - 2)
    factor = (scale / np.sqrt(var + eps)).reshape(cshape)
    shift = (bias - mean * scale / np.sqrt(var + eps)).reshape(cshape)
    T = x.T * factor
    T = np.array(np.broadcast_to(T, T.shape))
    T[-1] = T[-1] + shift
    # onnxruntime computes (x - mean) / sqrt(var + eps) * scale + bias, or a fused form of it:
    # at most six roundings on |factor| (|x| + |mean|) + |bias| (counted as eight for margin); fused
    # into a Conv, the shift joins the Conv's bias and its kmax additions (plus four roundings)
    shift_mag = _const_row(T.shape, (np.abs(mean * scale / np.sqrt(var + eps)) + np.abs(bias)).reshape(cshape))
    return x.rounded(T, x.err * np.abs(factor), x.mag * np.abs(factor), 8 + cv.fold, const=shift_mag,
                     k_const=max(8, x.kmax + 5) + cv.fold)


def op_Conv(cv, node, vals, attrs):
    x, w = vals[0], vals[1]
    b = vals[2] if len(vals) > 2 else None
    if isinstance(w, _Var) or isinstance(b, _Var):
        raise _NodeError("Conv weights and bias must be constants")
    if len(x.shape) != 4 or w.ndim != 4:
        raise _NodeError(f"only 2-D convolutions on [1, C, H, W] inputs are supported (input shape {list(x.shape)})")
    group = int(attrs.get("group", 1))
    strides = list(attrs.get("strides", [1, 1]))
    dil = list(attrs.get("dilations", [1, 1]))
    kh, kw = w.shape[2], w.shape[3]
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    H, W = x.shape[2], x.shape[3]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in ((H, kh, strides[0], dil[0]), (W, kw, strides[1], dil[1])):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    k = x.T.shape[0]

    def conv(X, weights):  # (k, C, H, W): the batch axis (size 1) is dropped
        return _conv2d(X.reshape((k,) + x.shape[1:]), weights, strides, pads, dil, group)[:, None]

    out, prop, local = conv(x.T, w), conv(x.err, np.abs(w)), conv(x.mag, np.abs(w))
    if b is not None:
        out[-1] += b.reshape(1, -1, 1, 1)
        local[-1] += np.abs(b).reshape(1, -1, 1, 1)
    k = _nnz(w.reshape(w.shape[0], -1), 1).reshape(1, -1, 1, 1) + (b is not None) + cv.fold
    return x.rounded(out, prop, local, k, kmax=int(np.max(k, initial=0)))


HANDLERS = {"Neg": op_Neg, "Add": op_Add, "Sub": op_Sub, "Mul": op_Mul, "Div": op_Div, "MatMul": op_MatMul,
            "Gemm": op_Gemm, "BatchNormalization": op_BatchNormalization, "Conv": op_Conv}
