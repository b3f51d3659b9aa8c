"""ONNX operator handlers that select, cut and join tensors without rounding them: Concat, Split,
Slice, Pad, Gather. The index logic (``slice_array``, ``pad_array``, ``split_arrays``) works on any
numpy array: on a constant it folds the operator (``io.onnx_fold``), on the array of element
indices of an input-dependent tensor it gives the row selection of the result (``moved``).

Operands that changed between opsets are read both ways: Slice's starts / ends / axes / steps
(attributes before opset 10, inputs after), Pad's pads and value (attributes before 11, inputs
after; axes from 18), Split's split (attribute before 13, input after; ``num_outputs`` from 18)."""

from __future__ import annotations

import numpy as np

from .onnx_basis import _NodeError, _Var, stacked
from .onnx_ops_shape import broadcast_to, moved


def _ints(x, what: str) -> list[int] | None:
    if x is None:
        return None
    if isinstance(x, _Var):
        raise _NodeError(f"{what} must be a constant")
    return [int(a) for a in np.asarray(x).reshape(-1)]


def _input(vals, i: int):
    return vals[i] if len(vals) > i else None


# -------------------------------------------------------------------------------- Slice
def slice_params(vals, attrs, opset: int):
    """(starts, ends, axes, steps) of a Slice node, from its attributes (opset < 10) or inputs."""
    if opset < 10:
        starts, ends = list(attrs.get("starts", [])), list(attrs.get("ends", []))
        axes, steps = attrs.get("axes"), None
    else:
        starts, ends = _ints(_input(vals, 1), "starts"), _ints(_input(vals, 2), "ends")
        axes, steps = _ints(_input(vals, 3), "axes"), _ints(_input(vals, 4), "steps")
    if starts is None or ends is None or len(starts) != len(ends):
        raise _NodeError("Slice needs starts and ends of equal length")
    axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if len(axes) != len(starts) or len(steps) != len(starts):
        raise _NodeError("Slice: starts, ends, axes and steps differ in length")
    return [int(s) for s in starts], [int(e) for e in ends], axes, steps


def slice_array(arr: np.ndarray, starts, ends, axes, steps) -> np.ndarray:
    """ONNX Slice: negative starts / ends count from the end, then they are clamped to the axis
    ([0, dim] for positive steps, [0, dim - 1] and [-1, dim - 1] for negative ones)."""
    rank = arr.ndim
    if len({a % rank for a in axes}) != len(axes):
        raise _NodeError("Slice: an axis is listed twice")
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise _NodeError("Slice: step 0")
        axis %= rank
        dim = arr.shape[axis]
        start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        arr = np.take(arr, np.arange(start, end, step, dtype=np.int64), axis=axis)
    return arr


def op_Slice(cv, node, vals, attrs):
    params = slice_params(vals, attrs, cv.opset)
    return moved(vals[0], lambda i: slice_array(i, *params))


# ---------------------------------------------------------------------------------- Pad
def pad_params(vals, attrs, opset: int, rank: int):
    """(pads per axis as (begin, end) pairs, mode, constant value) of a Pad node."""
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if opset < 11:
        pads, value, axes = list(attrs.get("pads", attrs.get("paddings", []))), float(attrs.get("value", 0.0)), None
    else:
        pads = _ints(_input(vals, 1), "pads")
        c = _input(vals, 2)
        if isinstance(c, _Var):
            raise _NodeError("the constant_value must be a constant")
        value = 0.0 if c is None or np.size(c) == 0 else float(np.asarray(c).reshape(-1)[0])
        axes = _ints(_input(vals, 3), "axes")
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if pads is None or len(pads) != 2 * len(axes):
        raise _NodeError(f"Pad: {0 if pads is None else len(pads)} pads for {len(axes)} axes")
    per_axis = [(0, 0)] * rank
    for j, a in enumerate(axes):
        per_axis[a] = (int(pads[j]), int(pads[len(axes) + j]))
    return per_axis, mode, value


def pad_array(arr: np.ndarray, per_axis, mode: str, value) -> np.ndarray:
    """ONNX Pad: negative pads crop; ``constant`` fills ``value``; ``reflect`` / ``edge`` / ``wrap``
    are numpy's modes of the same names."""
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise _NodeError(f"Pad mode '{mode}' is not supported (constant, reflect, edge and wrap are)")
    if any(p < 0 for pair in per_axis for p in pair):
        if mode != "constant":
            raise _NodeError(f"Pad with negative pads in mode '{mode}' is not supported")
        arr = arr[tuple(slice(-min(b, 0), arr.shape[i] - (-min(e, 0))) for i, (b, e) in enumerate(per_axis))]
        per_axis = [(max(b, 0), max(e, 0)) for b, e in per_axis]
    if mode == "constant":
        return np.pad(arr, per_axis, mode="constant", constant_values=value)
    if mode == "reflect" and any(max(b, e) >= d and (b or e) for (b, e), d in zip(per_axis, arr.shape)):
        raise _NodeError("Pad mode 'reflect' needs pads smaller than the axis")
    return np.pad(arr, per_axis, mode=mode)


def op_Pad(cv, node, vals, attrs):
    v = vals[0]
    per_axis, mode, value = pad_params(vals, attrs, cv.opset, len(v.shape))
    return moved(v, lambda i: pad_array(i, per_axis, mode, -1), fill=value)


# -------------------------------------------------------------------------------- Split
def split_sizes(dim: int, vals, attrs, opset: int, n_outputs: int) -> list[int]:
    split = attrs.get("split") if opset < 13 else _ints(_input(vals, 1), "split")
    if split is not None and len(split):
        split = [int(s) for s in split]
        if sum(split) != dim or len(split) != n_outputs:
            raise _NodeError(f"Split sizes {split} do not split an axis of {dim} into {n_outputs} outputs")
        return split
    n = int(attrs.get("num_outputs", n_outputs))
    if n != n_outputs:
        raise _NodeError(f"Split: num_outputs={n} but the node has {n_outputs} outputs")
    if "num_outputs" in attrs:  # opset 18: chunks of ceil(dim / n), the last one smaller
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
        if min(sizes) <= 0:
            raise _NodeError(f"Split: cannot split {dim} into {n} chunks")
        return sizes
    if dim % n:
        raise _NodeError(f"Split: axis of {dim} does not split evenly into {n} outputs")
    return [dim // n] * n


def split_arrays(arr: np.ndarray, axis: int, sizes) -> list[np.ndarray]:
    return np.split(arr, np.cumsum(sizes)[:-1], axis=axis)


def op_Split(cv, node, vals, attrs):
    v = vals[0]
    axis = int(attrs.get("axis", 0)) % len(v.shape)
    sizes = split_sizes(v.shape[axis], vals, attrs, cv.opset, len(node.output))
    idx = split_arrays(np.arange(v.size).reshape(v.shape), axis, sizes)
    return [v.take(i.reshape(-1), i.shape) for i in idx]


# ------------------------------------------------------------------------ Concat, Gather
def op_Concat(cv, node, vals, attrs):
    """Concatenation of tensors and constants: the operands laid end to end (``stacked``), then
    each operand's block of indices placed along ``axis``."""
    rank = max(len(v.shape) if isinstance(v, _Var) else np.ndim(v) for v in vals)
    axis = int(attrs["axis"]) % rank if "axis" in attrs else None
    if axis is None:
        raise _NodeError("Concat needs an axis")
    parts, blocks, offset = [], [], 0
    for v in vals:
        shape = v.shape if isinstance(v, _Var) else np.shape(v)
        if len(shape) != rank:
            raise _NodeError(f"Concat of tensors of different ranks ({[list(np.shape(p)) for p in parts]})")
        n = int(np.prod(shape))
        blocks.append(offset + np.arange(n).reshape(shape))
        parts.append(v if isinstance(v, _Var) else np.asarray(v, dtype=np.float64).reshape(-1))
        offset += n
    idx = np.concatenate(blocks, axis=axis)
    return stacked(parts).take(idx.reshape(-1), idx.shape)


def op_Gather(cv, node, vals, attrs):
    v, indices = vals[0], vals[1]
    if isinstance(indices, _Var):
        raise _NodeError("Gather indices must be constants")
    axis = int(attrs.get("axis", 0)) % len(v.shape)
    ind = np.asarray(indices, dtype=np.int64)
    dim = v.shape[axis]
    if np.any(ind < -dim) or np.any(ind >= dim):
        raise _NodeError(f"Gather index out of range for an axis of {dim}")
    return moved(v, lambda i: np.take(i, np.where(ind < 0, ind + dim, ind), axis=axis))


def op_Expand(cv, node, vals, attrs):
    shape = _ints(vals[1], "the shape of Expand")
    v = vals[0]
    return broadcast_to(v, np.broadcast_shapes(v.shape, tuple(shape)))


HANDLERS = {"Slice": op_Slice, "Pad": op_Pad, "Split": op_Split, "Concat": op_Concat, "Gather": op_Gather,
            "Expand": op_Expand}
