"""ONNX operator handlers for the affine operators: MatMul, Gemm, Conv, ConvTranspose,
BatchNormalization, Add, Sub, Mul, Div, Neg. Each handler ``op_<Name>(cv, node, vals, attrs)`` gets
the graph converter ``cv`` (``io.onnx._GraphConverter``: ``cv.fold`` is the operator's constant fold
depth, added to its rounding count) and returns the result's ``_Var`` with its float error basis.
Rounding counts per output (``floatmodel``): a contraction counts its non-zero products, plus one
for a bias and one per scaling."""

from __future__ import annotations

import numpy as np

from ..floatmodel import gamma
from ..linalg import nnz_per_row
from .onnx_basis import _apply, _flat, _NodeError, _plus, _Var
from .onnx_maps import conv_map, conv_transpose_map, matmul_map
from .onnx_ops_shape import broadcast_to, transposed


def _elementwise_linear(a, b, kind: str, fold: int = 0) -> _Var:
    """``a + b`` / ``a - b`` where at least one side is input-dependent (both in the same space)."""
    if isinstance(a, _Var) and isinstance(b, _Var):
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = broadcast_to(a, shape), broadcast_to(b, shape)
        if kind == "sub":
            b = b.negated()
        return _sum_of_tensors(a, b)
    if isinstance(a, _Var):
        v, c, negate_v, sign_c = a, b, False, (1.0 if kind == "add" else -1.0)
    else:
        v, c, negate_v, sign_c = b, a, kind == "sub", 1.0
    shape = np.broadcast_shapes(v.shape, np.shape(c))
    v = broadcast_to(v, shape)
    w = v.negated() if negate_v else v
    # one rounding on |v| + |c|; onnxruntime may instead fold c into the bias of the contraction v
    # comes from (MatMul + Add -> Gemm), where it takes part in that contraction's additions
    MA, mb = v.mag
    return v.rounded(w.A, w.b + sign_c * _flat(c, shape), (v.E, v.e), (MA, mb), 1 + fold, const=c,
                     k_const=max(1, v.kmax + 1) + fold)


def _sum_of_tensors(a: _Var, b: _Var) -> _Var:
    """``a + b`` of two input-dependent tensors: one rounding on ``|a| + |b|``. onnxruntime may
    instead fuse the addition into the contraction one side comes from (a Conv with a Sum input,
    MatMul + Add -> Gemm with C), where the other side starts the accumulator and takes part in
    all of its additions: that side is also counted with the contraction's ``kmax + 1`` roundings."""
    (ma, va), (mb, vb) = a.mag, b.mag
    out = a.rounded(_plus(a.A, b.A), a.b + b.b, (_plus(a.E, b.E), _plus(a.e, b.e)), (_plus(ma, mb), va + vb), 1,
                    kmax=max(a.kmax, b.kmax))
    for side, other in ((a, (mb, vb)), (b, (ma, va))):
        if side.kmax > 0:
            g = gamma(side.kmax + 1, out.dtype)
            out.E, out.e = _plus(out.E, _apply(np.full(out.size, g), other[0])), out.e + g * other[1]
    return out


def op_Neg(cv, node, vals, attrs):
    return vals[0].negated()


def op_Add(cv, node, vals, attrs):
    return _elementwise_linear(vals[0], vals[1], "add", cv.fold)


def op_Sub(cv, node, vals, attrs):
    return _elementwise_linear(vals[0], vals[1], "sub", cv.fold)


def _scaled(v: _Var, c, k: int, reciprocal: bool = False) -> _Var:
    """``v * c`` (or ``v / c``) elementwise with broadcasting, ``k`` roundings per output."""
    shape = np.broadcast_shapes(v.shape, np.shape(c))
    v = broadcast_to(v, shape)
    s = _flat(c, shape)
    return v.linear(1.0 / s if reciprocal else s, shape, k)


def op_Mul(cv, node, vals, attrs):
    a, b = vals
    if isinstance(a, _Var) and isinstance(b, _Var):
        raise _NodeError("product of two input-dependent tensors is not piecewise-linear")
    v, c = (a, b) if isinstance(a, _Var) else (b, a)
    return _scaled(v, c, 1 + cv.fold)


def op_Div(cv, node, vals, attrs):
    a, b = vals
    if isinstance(b, _Var):
        raise _NodeError("division by an input-dependent tensor is not piecewise-linear")
    if np.any(np.asarray(b) == 0):
        raise _NodeError("division by a constant that contains zero")
    # two roundings: onnxruntime may compute x * fl(1 / c) instead of x / c (fused into MatMul)
    return _scaled(a, b, 2 + cv.fold, reciprocal=True)


def _contraction(cv, v: _Var, M, shape, extra: int, c=None) -> _Var:
    """A contraction ``M x (+ c)``: the non-zero products per output plus ``extra`` roundings."""
    k = nnz_per_row(M).reshape(shape) + extra + cv.fold
    return cv.compose_or_split(v, M).linear(M, shape, k, c, kmax=int(np.max(k, initial=0)))


def op_MatMul(cv, node, vals, attrs):
    """ONNX (numpy) MatMul semantics with one constant side: 1-D operands are promoted and the
    promoted axis dropped again, batch axes broadcast."""
    a, b = vals
    if isinstance(a, _Var) and isinstance(b, _Var):
        raise _NodeError("MatMul of two input-dependent tensors is not supported (one side must be a constant)")
    v, W, left = (a, b, True) if isinstance(a, _Var) else (b, a, False)
    M, shape = matmul_map(v.shape, np.asarray(W, dtype=np.float64), left)
    return _contraction(cv, v, M, shape, 0)


def op_Gemm(cv, node, vals, attrs):
    a, b = vals[0], vals[1]
    c = vals[2] if len(vals) > 2 else None
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if isinstance(c, _Var):
        raise _NodeError("Gemm with an input-dependent C is not supported")
    if isinstance(a, _Var) and isinstance(b, _Var):
        raise _NodeError("Gemm of two input-dependent tensors is not supported")
    ta, tb = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    left = isinstance(a, _Var)
    v, W = (a, b) if left else (b, a)
    if len(v.shape) != 2 or np.ndim(W) != 2:
        raise _NodeError(f"Gemm expects 2-D inputs, got shape {list(v.shape)}")
    if ta if left else tb:
        v = transposed(v, [1, 0])
    W = np.asarray(W, dtype=np.float64)
    M, shape = matmul_map(v.shape, W.T if (tb if left else ta) else W, left, scale=alpha)
    if c is not None:
        if np.broadcast_shapes(shape, np.shape(c)) != shape:
            raise _NodeError(f"Gemm: C of shape {list(np.shape(c))} does not broadcast to {list(shape)}")
        c = beta * np.asarray(c, dtype=np.float64)
    # the non-zero products, the bias, and the scaling by alpha (beta * C is a folded constant)
    extra = (0 if c is None else 1) + (alpha != 1.0) + (0 if c is None or beta == 1.0 else 1)
    return _contraction(cv, v, M, shape, extra, c)


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
    # onnxruntime computes (x - mean) / sqrt(var + eps) * scale + bias, or a fused form of it:
    # at most six roundings on |factor| (|x| + |mean|) + |bias| (counted as eight for margin); fused
    # into a Conv, the shift joins the Conv's bias and its kmax additions (plus four roundings)
    shift_mag = (np.abs(mean * scale / np.sqrt(var + eps)) + np.abs(bias)).reshape(cshape)
    return x.linear(_flat(factor, x.shape), x.shape, 8 + cv.fold, shift, local_c=False, const=shift_mag,
                    k_const=max(8, x.kmax + 5) + cv.fold)


def _conv_attrs(attrs, nd: int, spatial, kernel, transpose: bool = False, out_spatial=None):
    """strides, dilations and pads (begins then ends) of a Conv / ConvTranspose, auto_pad resolved."""
    strides = [int(s) for s in attrs.get("strides", [1] * nd)]
    dil = [int(d) for d in attrs.get("dilations", [1] * nd)]
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * nd))]
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER") or (transpose and out_spatial is not None):
        begins, ends = [], []
        for i in range(nd):
            span = (kernel[i] - 1) * dil[i] + 1
            if transpose:
                out = out_spatial[i] if out_spatial is not None else spatial[i] * strides[i]
                total = strides[i] * (spatial[i] - 1) + _output_padding(attrs, nd)[i] + span - out
            else:
                total = max(0, (-(-spatial[i] // strides[i]) - 1) * strides[i] + span - spatial[i])
            small, big = total // 2, total - total // 2
            upper = auto_pad == "SAME_UPPER"  # NOTSET with output_shape: the larger half first, as onnxruntime
            begins.append(small if upper else big)
            ends.append(big if upper else small)
        pads = begins + ends
    if len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd:
        raise _NodeError(f"strides / dilations / pads do not match the {nd} spatial axes")
    return strides, dil, pads


def _output_padding(attrs, nd: int) -> list[int]:
    return [int(p) for p in attrs.get("output_padding", [0] * nd)]


def _conv_operands(vals, op: str):
    x, w = vals[0], vals[1]
    b = vals[2] if len(vals) > 2 else None
    if isinstance(w, _Var) or isinstance(b, _Var):
        raise _NodeError(f"{op} weights and bias must be constants")
    if len(x.shape) < 3 or x.shape[0] != 1 or np.ndim(w) != len(x.shape):
        raise _NodeError(f"{op} expects a [1, C, ...] input and weights of the same rank (input shape {list(x.shape)}, "
                         f"weights {list(np.shape(w))})")
    return x, np.asarray(w, dtype=np.float64), b


def op_Conv(cv, node, vals, attrs):
    x, w, b = _conv_operands(vals, "Conv")
    nd = len(x.shape) - 2
    strides, dil, pads = _conv_attrs(attrs, nd, x.shape[2:], w.shape[2:])
    M, shape = conv_map(x.shape, w, strides, pads, dil, int(attrs.get("group", 1)))
    # per output channel: its non-zero weights (a border output has fewer terms: counted as all)
    k = np.count_nonzero(w.reshape(w.shape[0], -1), axis=1).reshape((1, -1) + (1,) * nd) + (b is not None) + cv.fold
    c = None if b is None else np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return cv.compose_or_split(x, M).linear(M, shape, k, c, kmax=int(np.max(k, initial=0)))


def op_ConvTranspose(cv, node, vals, attrs):
    x, w, b = _conv_operands(vals, "ConvTranspose")
    nd, group = len(x.shape) - 2, int(attrs.get("group", 1))
    S, K = x.shape[2:], w.shape[2:]
    out_spatial = attrs.get("output_shape")
    if out_spatial is not None:
        out_spatial = [int(o) for o in out_spatial][-nd:]
    strides, dil, pads = _conv_attrs(attrs, nd, S, K, transpose=True, out_spatial=out_spatial)
    if out_spatial is None:
        out_spatial = [strides[i] * (S[i] - 1) + _output_padding(attrs, nd)[i] + (K[i] - 1) * dil[i] + 1
                       - pads[i] - pads[nd + i] for i in range(nd)]
    M, shape = conv_transpose_map(x.shape, w, strides, pads, dil, group, out_spatial)
    c = None if b is None else np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return _contraction(cv, x, M, shape, int(b is not None), c)


HANDLERS = {"Neg": op_Neg, "Add": op_Add, "Sub": op_Sub, "Mul": op_Mul, "Div": op_Div, "MatMul": op_MatMul,
            "Gemm": op_Gemm, "BatchNormalization": op_BatchNormalization, "Conv": op_Conv,
            "ConvTranspose": op_ConvTranspose}
