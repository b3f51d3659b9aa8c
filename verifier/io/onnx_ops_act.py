"""ONNX operator handlers for the activations: Relu, LeakyRelu, Clip, Max / Min with a constant
(a clip) and Max / Min of several input-dependent tensors (a max activation over windows of one
element per operand). Each closes the current affine layer through ``cv.activation`` (``io.onnx._GraphConverter``)."""

from __future__ import annotations

import numpy as np

from ..floatmodel import UNDERFLOW, UNIT_ROUNDOFF
from ..network import Activation
from .onnx_basis import _NodeError, _Var, stacked
from .onnx_ops_shape import broadcast_to


def op_Relu(cv, node, vals, attrs):
    return cv.activation(vals[0], Activation("relu"))


def op_LeakyRelu(cv, node, vals, attrs):
    alpha = float(attrs.get("alpha", 0.01))
    if alpha == 0.0:
        return cv.activation(vals[0], Activation("relu"))
    if alpha == 1.0:
        return vals[0]
    if not 0.0 < alpha < 1.0:
        raise _NodeError(f"LeakyRelu alpha={alpha:g} is not supported (0 <= alpha <= 1 is)")
    return cv.activation(vals[0], Activation("leaky", alpha=alpha, rel_error=UNIT_ROUNDOFF[vals[0].dtype],
                                                abs_error=UNDERFLOW[vals[0].dtype]))


def op_Clip(cv, node, vals, attrs):
    x = vals[0]
    if cv.opset < 11:
        lo = attrs.get("min", -np.inf)
        hi = attrs.get("max", np.inf)
    else:
        lo = vals[1] if len(vals) > 1 and vals[1] is not None else -np.inf
        hi = vals[2] if len(vals) > 2 and vals[2] is not None else np.inf
        if isinstance(lo, _Var) or isinstance(hi, _Var):
            raise _NodeError("Clip bounds must be constants")
    return _clip(cv, x, np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))


def _minmax(vals):
    """``(x, c)`` for a Max / Min of one tensor and one constant, None if several operands depend
    on the input (a max activation then, ``_max_of``)."""
    if len(vals) == 1:
        return vals[0], None
    if sum(isinstance(v, _Var) for v in vals) > 1 or len(vals) > 2:
        return None
    a, b = vals
    return (a, np.asarray(b, dtype=np.float64)) if isinstance(a, _Var) else (b, np.asarray(a, dtype=np.float64))


def _max_of(cv, vals, negate: bool):
    """``max`` (``min`` if ``negate``: ``-max(-a, -b)``) of several operands broadcast to one shape:
    a max activation over windows of one element of each operand."""
    shape = np.broadcast_shapes(*[v.shape if isinstance(v, _Var) else np.shape(v) for v in vals])
    parts = []
    for v in vals:
        if isinstance(v, _Var):
            v = broadcast_to(v, shape)
            parts.append(v.negated() if negate else v)
        else:
            c = np.broadcast_to(np.asarray(v, dtype=np.float64), shape).reshape(-1)
            parts.append(-c if negate else c)
    n = int(np.prod(shape))
    groups = np.arange(len(parts))[None, :] * n + np.arange(n)[:, None]
    out = cv.activation(stacked(parts), Activation("max", groups=groups), shape)
    return out.negated() if negate else out


def op_Max(cv, node, vals, attrs):
    pair = _minmax(vals)
    if pair is None:
        return _max_of(cv, vals, negate=False)
    x, c = pair
    return x if c is None else _clip(cv, x, c, np.asarray(np.inf))


def op_Min(cv, node, vals, attrs):
    pair = _minmax(vals)
    if pair is None:
        return _max_of(cv, vals, negate=True)
    x, c = pair
    return x if c is None else _clip(cv, x, np.asarray(-np.inf), c)


def _clip(cv, x: _Var, lo: np.ndarray, hi: np.ndarray) -> _Var:
    shape = np.broadcast_shapes(x.shape, lo.shape, hi.shape)
    x = broadcast_to(x, shape)
    n = int(np.prod(shape))
    lo_v = np.broadcast_to(lo, shape).reshape(n).astype(np.float64)
    hi_v = np.broadcast_to(hi, shape).reshape(n).astype(np.float64)
    if np.any(np.isnan(lo_v)) or np.any(np.isnan(hi_v)):
        raise _NodeError("clip bound is NaN")
    if np.any(lo_v > hi_v):
        raise _NodeError("clip lower bound exceeds its upper bound")
    if np.all(np.isneginf(lo_v)) and np.all(np.isposinf(hi_v)):
        return x
    if np.all(lo_v == 0.0) and np.all(np.isposinf(hi_v)):
        return cv.activation(x, Activation("relu"))
    return cv.activation(x, Activation("clip", lo=lo_v, hi=hi_v))


HANDLERS = {"Relu": op_Relu, "LeakyRelu": op_LeakyRelu, "Clip": op_Clip, "Max": op_Max, "Min": op_Min}
