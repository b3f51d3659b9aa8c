"""ONNX pooling and reduction handlers: AveragePool, GlobalAveragePool, ReduceMean, ReduceSum
(linear maps with their rounding counts) and MaxPool, GlobalMaxPool (a ``max`` activation over
windows, which closes the current affine layer through ``cv.activation``).

Float error model: a window sum of ``k`` terms rounds at most ``k - 1`` times; a mean divides it
once more, or multiplies by a rounded reciprocal (two roundings): ``k + 1`` roundings per output
on the magnitudes ``sum |x_i| / count`` for AveragePool / ReduceMean, ``k`` for ReduceSum. Max is
exact. Padding never wins a MaxPool: pad slots are left out of the windows."""

from __future__ import annotations

import numpy as np

from ..network import Activation
from .onnx_basis import _NodeError, _Var
from .onnx_maps import ceil_windows_dropped, compact_windows, pool_windows, reduce_windows, window_map
from .onnx_ops_linear import _conv_attrs


def _pool_attrs(attrs, x: _Var, nd: int, dilations: bool):
    """kernel, strides, pads (begins then ends, auto_pad resolved as for Conv), dilations, ceil_mode."""
    kernel = [int(k) for k in attrs.get("kernel_shape", [])]
    if len(kernel) != nd:
        raise _NodeError(f"kernel_shape {kernel} does not match the {nd} spatial axes")
    if not dilations and any(int(d) != 1 for d in attrs.get("dilations", [])):
        raise _NodeError("AveragePool dilations are not supported")
    strides, dil, pads = _conv_attrs(attrs if dilations else {k: v for k, v in attrs.items() if k != "dilations"},
                                     nd, x.shape[2:], kernel)
    return kernel, strides, pads, dil, bool(attrs.get("ceil_mode", 0))


def _windows(cv, x: _Var, kernel, strides, pads, dil, ceil: bool):
    """``pool_windows``; where ceil_mode drops a window, ONNX shape inference is no longer a
    cross-check (it keeps the window that onnxruntime drops): the load-time comparison with
    onnxruntime remains."""
    if ceil and ceil_windows_dropped(x.shape, kernel, strides, pads, dil):
        cv.distrust_inference()
    return pool_windows(x.shape, kernel, strides, pads, dil, ceil)


def _spatial(x: _Var, op: str) -> int:
    if len(x.shape) < 3:
        raise _NodeError(f"{op} expects an [N, C, ...] input with spatial axes (input shape {list(x.shape)})")
    return len(x.shape) - 2


def _mean_of_windows(cv, x: _Var, idx: np.ndarray, counts: np.ndarray, out_shape) -> _Var:
    """The window sums of ``x`` over ``idx`` (-1 = left out) divided by ``counts``."""
    terms = np.sum(idx >= 0, axis=1)
    M = window_map(idx, 1.0 / counts, x.size)
    return cv.compose_or_split(x, M).linear(M, out_shape, (terms + 1 + cv.fold).reshape(out_shape))


def op_AveragePool(cv, node, vals, attrs):
    x = vals[0]
    nd = _spatial(x, "AveragePool")
    kernel, strides, pads, dil, ceil = _pool_attrs(attrs, x, nd, dilations=False)
    idx, inside, out_shape = _windows(cv, x, kernel, strides, pads, dil, ceil)
    if attrs.get("count_include_pad", 0):
        counts = np.sum(inside, axis=1)  # the pads count, the slots past the padded end do not
    else:
        counts = np.sum(idx >= 0, axis=1)
    if np.any(np.sum(idx >= 0, axis=1) == 0):
        raise _NodeError("an AveragePool window lies entirely in the padding")
    return _mean_of_windows(cv, x, idx, counts, out_shape)


def op_GlobalAveragePool(cv, node, vals, attrs):
    x = vals[0]
    nd = _spatial(x, "GlobalAveragePool")
    idx, kept = reduce_windows(x.shape, range(2, 2 + nd))
    return _mean_of_windows(cv, x, idx, np.full(idx.shape[0], idx.shape[1]), kept)


def _reduce_axes(vals, attrs, opset: int, op: str, input_from: int):
    """The axes of a Reduce* node (attribute before ``input_from``, input from it), None = all,
    [] = none (noop_with_empty_axes)."""
    if opset < input_from:
        axes = attrs.get("axes")
    else:
        a = vals[1] if len(vals) > 1 else None
        if isinstance(a, _Var):
            raise _NodeError(f"{op} axes must be constants")
        axes = None if a is None else [int(i) for i in np.asarray(a).reshape(-1)]
    if axes is not None and len(axes) == 0:
        axes = None
    if axes is None and attrs.get("noop_with_empty_axes", 0):
        return []
    return axes


def _reduce(cv, vals, attrs, op: str, input_from: int, mean: bool):
    x = vals[0]
    axes = _reduce_axes(vals, attrs, cv.opset, op, input_from)
    if axes == []:
        return x
    rank = len(x.shape)
    reduced = set(range(rank)) if axes is None else {a % rank for a in axes} if rank else set()
    idx, kept = reduce_windows(x.shape, sorted(reduced))
    shape = kept if attrs.get("keepdims", 1) else tuple(s for i, s in enumerate(x.shape) if i not in reduced)
    n = idx.shape[1]
    if mean:
        return _mean_of_windows(cv, x, idx, np.full(idx.shape[0], n), shape)
    M = window_map(idx, np.ones(idx.shape[0]), x.size)
    return cv.compose_or_split(x, M).linear(M, shape, n + cv.fold)


def op_ReduceMean(cv, node, vals, attrs):
    return _reduce(cv, vals, attrs, "ReduceMean", 18, mean=True)


def op_ReduceSum(cv, node, vals, attrs):
    return _reduce(cv, vals, attrs, "ReduceSum", 13, mean=False)


def _max_windows(cv, node, x: _Var, idx: np.ndarray, out_shape):
    """``max`` over the windows ``idx`` of ``x``: a max activation (windows of one slot are a
    selection and close no layer)."""
    if len(node.output) > 1 and node.output[1] and cv.consumed(node.output[1]):
        raise _NodeError("the Indices output of MaxPool is not supported")
    groups = compact_windows(idx)
    if groups.shape[1] == 1:
        return x.take(groups[:, 0], out_shape)
    used = np.unique(groups[groups >= 0])
    if used.size < x.size:  # elements no window reads (strides past the kernel): no pre-activation
        x = x.take(used, (used.size,))
        groups = np.where(groups >= 0, np.searchsorted(used, np.maximum(groups, 0)), -1)
    return cv.activation(x, Activation("max", groups=groups), out_shape)


def op_MaxPool(cv, node, vals, attrs):
    x = vals[0]
    nd = _spatial(x, "MaxPool")
    kernel, strides, pads, dil, ceil = _pool_attrs(attrs, x, nd, dilations=True)
    idx, _inside, out_shape = _windows(cv, x, kernel, strides, pads, dil, ceil)
    return _max_windows(cv, node, x, idx, out_shape)


def op_GlobalMaxPool(cv, node, vals, attrs):
    x = vals[0]
    nd = _spatial(x, "GlobalMaxPool")
    idx, kept = reduce_windows(x.shape, range(2, 2 + nd))
    return _max_windows(cv, node, x, idx, kept)


HANDLERS = {"AveragePool": op_AveragePool, "GlobalAveragePool": op_GlobalAveragePool, "ReduceMean": op_ReduceMean,
            "ReduceSum": op_ReduceSum, "MaxPool": op_MaxPool, "GlobalMaxPool": op_GlobalMaxPool}
