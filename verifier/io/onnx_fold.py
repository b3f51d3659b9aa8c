"""Constant folding in the ONNX reader: operators whose inputs are all constants (shape arithmetic,
weight preprocessing) are evaluated at load time as onnxruntime folds them, with ``_fold_depth``
counting how far a folded float constant may be from onnxruntime's value."""

from __future__ import annotations

import numpy as np

from ..floatmodel import FOLD_SLACK
from .onnx_basis import _FLOAT_TYPES, _INT_TYPES, _NodeError
from .onnx_ops_index import pad_array, pad_params, slice_array, slice_params, split_arrays, split_sizes
from .onnx_ops_shape import (
    axes_of,
    flatten_shape,
    reshape_shape,
    squeeze_shape,
    transpose_perm,
    unsqueeze_shape,
)


def _cast_constant(a: np.ndarray, to: int | None) -> np.ndarray:
    """``Cast`` of a constant with onnxruntime's semantics: float types round to nearest (the value
    is kept as float64 but equals the cast one exactly), integer types truncate toward zero, bool is
    ``!= 0``. Values stay float64 / int64 inside the loader."""
    if to in _FLOAT_TYPES:
        name = _FLOAT_TYPES[to]
        if name == "bfloat16":
            raise _NodeError("Cast of a constant to bfloat16 is not supported (numpy has no bfloat16)")
        if a.dtype.kind == "f" and name != "float64":
            with np.errstate(over="ignore"):
                out = a.astype(name)
            if not np.all(np.isfinite(out)):
                raise _NodeError(f"Cast of a constant to {name} overflows")
            return out.astype(np.float64)
        return a.astype(np.float64)
    if to == 9:  # bool
        return (a != 0).astype(np.int64)
    if to in _INT_TYPES:
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)):
                raise _NodeError("Cast of a non-finite constant to an integer type")
            a = np.trunc(a)
        info = np.iinfo(_INT_TYPES[to])
        if np.any(a < info.min) or np.any(a > info.max):
            raise _NodeError(f"Cast of a constant to {_INT_TYPES[to]} is out of range")
        return a.astype(np.int64)
    raise _NodeError(f"Cast to type {to} is not supported")


def _fold_depth(op: str, vals: list, depths: list[int], attrs: dict) -> int:
    """How far a folded float constant may be from the value onnxruntime folds, in roundings (beyond
    FOLD_SLACK it is refused when used). Elementwise Add / Sub / Mul / Max / Min / Neg of exact
    operands are computed in the constants' own type, so they are exact (IEEE operations are
    correctly rounded); Div counts one rounding (onnxruntime might multiply by a reciprocal); a sum
    of inexact values, a product of constant matrices, or a cast (to an integer or narrower float
    type) of an inexact value is not a small relative rounding of it."""
    d = max(depths, default=0)
    if not any(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in vals):
        return d
    refused = FOLD_SLACK + 1
    if op == "Mul":
        return d + (1 if d else 0)
    if op == "Div":
        return d + 1
    if op in ("Add", "Sub"):
        return 0 if d == 0 else refused
    if op in ("MatMul", "Gemm", "Conv"):
        return refused
    if op == "Cast" and d > 0 and _FLOAT_TYPES.get(attrs.get("to")) != "float64":
        return refused
    return d


def _fold_elementwise(op: str, vals: list, dtype: str | None) -> np.ndarray:
    """Add / Sub / Mul / Div / Max / Min of constants: float arithmetic in ``dtype``, integer ``Div``
    truncating toward zero."""
    arrs = [np.asarray(x) for x in vals]
    if all(a.dtype.kind in "iub" for a in arrs):
        if op == "Div":
            a, b = arrs
            if np.any(b == 0):
                raise _NodeError("integer division by zero in a constant")
            q = np.abs(a) // np.abs(b)
            return np.where((a < 0) != (b < 0), -q, q).astype(np.int64)
    elif dtype in ("float32", "float16"):
        arrs = [a.astype(dtype) for a in arrs]
    fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
          "Max": np.maximum, "Min": np.minimum}[op]
    out = arrs[0]
    for other in arrs[1:]:
        out = fn(out, other)
    return out.astype(np.float64) if out.dtype.kind == "f" else out


def _fold_shape_op(op: str, v: list, attrs: dict) -> np.ndarray:
    """Reshape / Flatten / Squeeze / Unsqueeze / Transpose of a constant, with the handlers' shape logic."""
    if op == "Transpose":
        return np.transpose(v[0], transpose_perm(np.ndim(v[0]), attrs))
    shape = np.shape(v[0])
    if op == "Reshape":
        new = reshape_shape(shape, v[1], attrs)
    elif op == "Flatten":
        new = flatten_shape(shape, attrs)
    elif op == "Squeeze":
        new = squeeze_shape(shape, axes_of(v, attrs))
    else:
        new = unsqueeze_shape(shape, axes_of(v, attrs))
    return np.reshape(v[0], new)


def _fold_movement(op: str, v: list, attrs: dict, opset: int, n_outputs: int):
    """Slice / Pad / Split / Expand of a constant (exact: values are only moved); None for other ops."""
    a = np.asarray(v[0]) if v else None
    if op == "Slice":
        return slice_array(a, *slice_params(v, attrs, opset))
    if op == "Pad":
        per_axis, mode, value = pad_params(v, attrs, opset, a.ndim)
        return pad_array(a, per_axis, mode, value)
    if op == "Split":
        axis = int(attrs.get("axis", 0)) % a.ndim
        return split_arrays(a, axis, split_sizes(a.shape[axis], v, attrs, opset, n_outputs))
    if op == "Expand":
        shape = tuple(int(s) for s in np.asarray(v[1]).reshape(-1))
        return np.array(np.broadcast_to(a, np.broadcast_shapes(a.shape, shape)))
    if op == "ConstantOfShape":
        from onnx import numpy_helper

        value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
        fill = value.reshape(-1)[0]
        out = np.full(tuple(int(s) for s in np.asarray(a).reshape(-1)), fill, dtype=value.dtype)
        return out.astype(np.float64) if out.dtype.kind == "f" else out.astype(np.int64)
    return None


def _fold_constant(op: str, vals: list, attrs: dict, opset: int, dtype: str | None = None, n_outputs: int = 1):
    """Evaluate an operator whose inputs are all constants (shape arithmetic, weight preprocessing).

    Float arithmetic is done in ``dtype`` (the constants' own type, as onnxruntime folds it) and the
    result kept as float64; integer ``Div`` truncates toward zero, as onnxruntime does. Split
    gives a list of arrays."""
    v = vals
    moved = _fold_movement(op, v, attrs, opset, n_outputs)
    if moved is not None:
        return moved
    if op == "Cast":
        return _cast_constant(np.asarray(v[0]), attrs.get("to"))
    if op in ("Identity", "Dropout"):
        return v[0]
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        return _fold_elementwise(op, v, dtype)
    if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"):
        return _fold_shape_op(op, v, attrs)
    if op == "Neg":
        return -v[0]
    if op == "Relu":
        return np.maximum(v[0], 0)
    if op == "MatMul":
        return np.matmul(v[0], v[1])
    if op == "Gather":
        return np.take(v[0], np.asarray(v[1]).astype(np.int64), axis=int(attrs.get("axis", 0)))
    if op == "Concat":
        parts = [np.atleast_1d(x) for x in v if np.size(x) or np.ndim(x) > 1] or [np.atleast_1d(x) for x in v]
        return np.concatenate(parts, axis=int(attrs.get("axis", 0)))
    if op == "Shape":
        return np.array(np.shape(v[0]), dtype=np.int64)
    raise _NodeError(f"{op} on constant inputs only is not supported")
