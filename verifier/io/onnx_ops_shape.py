"""ONNX operator handlers for the operators that move values without rounding them (Reshape,
Flatten, Squeeze, Unsqueeze, Transpose, Identity, Dropout, Shape), Cast, and Constant; and the shape
logic they share with constant folding (``io.onnx_fold``): the target shape of Reshape / Flatten /
Squeeze / Unsqueeze and the permutation of Transpose. Data movement on an input-dependent tensor
is a row selection (``_Var.take``) computed by applying the operator to the tensor of element
indices (``moved``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..floatmodel import LARGEST, UNIT_ROUNDOFF
from .onnx_basis import _FLOAT_TYPES, _INT_TYPES, _NodeError, _Var


# ------------------------------------------------------------------------- shape logic
def _resolve_reshape(shape: tuple[int, ...], target: list[int], allowzero: int) -> tuple[int, ...]:
    total = int(np.prod(shape))
    out = []
    for i, s in enumerate(target):
        if s == 0 and not allowzero:
            if i >= len(shape):
                raise _NodeError(f"Reshape: 0 at axis {i} has no matching input axis")
            out.append(shape[i])
        else:
            out.append(s)
    if out.count(-1) > 1:
        raise _NodeError("Reshape: more than one -1 in the target shape")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known == 0 or total % known:
            raise _NodeError(f"Reshape: cannot reshape {list(shape)} to {target}")
        out[out.index(-1)] = total // known
    if int(np.prod(out)) != total:
        raise _NodeError(f"Reshape: cannot reshape {list(shape)} to {target}")
    return tuple(out)


def reshape_shape(shape: tuple[int, ...], target, attrs: dict) -> tuple[int, ...]:
    """The shape ``Reshape`` gives a tensor of ``shape`` for the constant ``target``."""
    return _resolve_reshape(tuple(shape), [int(s) for s in np.asarray(target).ravel()], int(attrs.get("allowzero", 0)))


def flatten_shape(shape: tuple[int, ...], attrs: dict) -> tuple[int, int]:
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += len(shape)
    return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))


def axes_of(vals, attrs) -> list[int] | None:
    """Squeeze / Unsqueeze axes: the ``axes`` attribute (opset < 13) or the second input."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(vals) > 1 and vals[1] is not None:
        if isinstance(vals[1], _Var):
            raise _NodeError("axes must be a constant")
        return [int(a) for a in np.asarray(vals[1]).ravel()]
    return None


def squeeze_shape(shape: tuple[int, ...], axes: list[int] | None) -> tuple[int, ...]:
    shape = list(shape)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    axes = sorted(a % len(shape) for a in axes)
    for a in axes:
        if shape[a] != 1:
            raise _NodeError(f"cannot squeeze axis {a} of size {shape[a]}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def unsqueeze_shape(shape: tuple[int, ...], axes: list[int] | None) -> tuple[int, ...]:
    if axes is None:
        raise _NodeError("Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    new = list(shape)
    for a in sorted(a % rank for a in axes):
        new.insert(a, 1)
    return tuple(new)


def transpose_perm(rank: int, attrs: dict) -> list[int]:
    perm = attrs.get("perm")
    return list(range(rank))[::-1] if perm is None else [int(p) for p in perm]


# ------------------------------------------------------------------ data movement on _Var
def moved(v: _Var, fn, fill=0.0) -> _Var:
    """``v`` moved as ``fn`` moves the elements of an array of ``v``'s shape (``fn`` maps the array
    of element indices to the indices of the result, -1 for the constant ``fill``)."""
    idx = np.asarray(fn(np.arange(v.size).reshape(v.shape)))
    return v.take(idx.reshape(-1), idx.shape, fill)


def broadcast_to(v: _Var, shape) -> _Var:
    """``v`` broadcast to ``shape`` (numpy rules: leading axes of size 1 are added first)."""
    shape = tuple(shape)
    if v.shape == shape:
        return v
    return moved(v, lambda i: np.broadcast_to(i.reshape((1,) * (len(shape) - len(v.shape)) + v.shape), shape))


def transposed(v: _Var, perm) -> _Var:
    return moved(v, lambda i: np.transpose(i, perm))


# ---------------------------------------------------------------------------- handlers
def _reshaped(x: _Var, new: tuple[int, ...]) -> _Var:
    return x.reshaped(new)


def op_Constant(cv, node, vals, attrs):
    from onnx import numpy_helper

    if "value" in attrs:
        arr = numpy_helper.to_array(attrs["value"])
        if arr.dtype.kind == "f":
            cv.cdtype[node.output[0]] = str(arr.dtype)
    elif "value_float" in attrs:
        arr = np.array(attrs["value_float"])
    elif "value_floats" in attrs:
        arr = np.array(attrs["value_floats"])
    elif "value_int" in attrs:
        arr = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        arr = np.array(attrs["value_ints"], dtype=np.int64)
    else:
        raise _NodeError("only value / value_float(s) / value_int(s) constants are supported")
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise _NodeError("constant contains NaN or infinite values")
    return arr


def op_Identity(cv, node, vals, attrs):
    return vals[0]


def op_Dropout(cv, node, vals, attrs):
    training = vals[2] if len(vals) > 2 else None
    if isinstance(training, _Var) or (training is not None and bool(np.any(np.asarray(training)))):
        raise _NodeError("Dropout with a training_mode input that is not the constant false is not supported "
                         "(export the model in inference mode)")
    return vals[0]


def op_Cast(cv, node, vals, attrs):
    """A cast to a wider float type is exact; to a narrower one it rounds once (relative ``u`` of the
    target type, plus its underflow unit); to an integer type it is refused (not piecewise linear)."""
    to = attrs.get("to")
    v = vals[0]
    if to not in _FLOAT_TYPES:
        name = _INT_TYPES.get(to, f"type {to}")
        raise _NodeError(f"Cast of an input-dependent tensor to {name} is not supported (it changes values "
                         "in a way that is not piecewise linear); only casts between float types are")
    target = _FLOAT_TYPES[to]
    if UNIT_ROUNDOFF[target] <= UNIT_ROUNDOFF[v.dtype] and LARGEST[target] >= LARGEST[v.dtype]:
        return replace(v, dtype=target)  # widening: exact
    MA, mb = v.mag
    return v.rounded(v.A, v.b, (v.E, v.e), (MA, mb), 1, dtype=target, kmax=0)


def op_Flatten(cv, node, vals, attrs):
    return _reshaped(vals[0], flatten_shape(vals[0].shape, attrs))


def op_Reshape(cv, node, vals, attrs):
    x, shape = vals[0], vals[1]
    if isinstance(shape, _Var):
        raise _NodeError("the target shape must be a constant")
    return _reshaped(x, reshape_shape(x.shape, shape, attrs))


def op_Squeeze(cv, node, vals, attrs):
    return _reshaped(vals[0], squeeze_shape(vals[0].shape, axes_of(vals, attrs)))


def op_Unsqueeze(cv, node, vals, attrs):
    return _reshaped(vals[0], unsqueeze_shape(vals[0].shape, axes_of(vals, attrs)))


def op_Transpose(cv, node, vals, attrs):
    return transposed(vals[0], transpose_perm(len(vals[0].shape), attrs))


def op_Shape(cv, node, vals, attrs):
    shape = np.array(vals[0].shape, dtype=np.int64)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    return shape[start:end]


HANDLERS = {"Constant": op_Constant, "Identity": op_Identity, "Dropout": op_Dropout, "Cast": op_Cast,
            "Flatten": op_Flatten, "Reshape": op_Reshape, "Squeeze": op_Squeeze, "Unsqueeze": op_Unsqueeze,
            "Transpose": op_Transpose, "Shape": op_Shape}


def op_ConstantOfShape(cv, node, vals, attrs):
    raise _NodeError("ConstantOfShape of an input-dependent shape is not supported")


HANDLERS["ConstantOfShape"] = op_ConstantOfShape
