"""The floating-point error model: what onnxruntime may compute instead of the real-arithmetic network.

A proof must hold for the network *as onnxruntime runs it* (CPU execution provider, float32
kernels, default graph optimisations), not only in real arithmetic. Each ONNX operator that
rounds gets an error bound in the standard model of floating-point arithmetic (Higham, *Accuracy
and Stability of Numerical Algorithms*, ch. 3): a sum of ``k`` terms (products ``w_i z_i`` and
constants) computed in any order, with or without fused multiply-add, satisfies

    |fl(s) - s| <= gamma_k * sum_i |w_i| |z_i| + k * eta,   gamma_k = k u / (1 - k u),

with ``u`` the unit roundoff of the type it is computed in (float32: ``2^-24``) and ``eta`` the
underflow unit (float32 with denormals kept, onnxruntime's default: ``2^-149``).

``k`` counts the non-zero terms only: a zero weight gives an exact zero product, and adding an
exact zero does not round (with or without FMA), so a sparse row rounds like a short one.

Fusion and constant folding: onnxruntime's optimiser fuses operators (BatchNormalization, Mul /
Div / Add by constants into Conv, MatMul, Gemm), so the weights it multiplies with can be rounded
products of the stored ones. Each such fold is a relative rounding of a weight by ``u``, on a term
whose magnitude the unfused bound of the folded operator already multiplies by its own ``gamma``
(its ``k >= 1`` rounding steps are counted on the same magnitudes), so the bound of the unfused
chain covers the fused evaluation too. A constant added after a contraction (``MatMul`` then
``Add``, a BatchNormalization shift after a ``Conv``) may be folded into the contraction's bias,
where it takes part in all of its additions: such constants are counted with the contraction's
``k + 1`` roundings (the loader's ``kmax``), not one. Constants that the *model* computes from other constants
(a constant subgraph that onnxruntime folds in float32) carry their number of roundings (the
loader's fold depth), which is added to ``k`` of the operator that uses them; a constant whose
folding is not a small relative rounding (a sum of rounded values, a product of constant
matrices) is refused. ReLU, Max / Min and Clip are exact; LeakyReLU's ``alpha * x`` rounds once
(``Activation.rel_error``).

Errors compose along a layer: an operator applied to a float input that is itself within ``E``
of its real value propagates ``|A| E`` and adds its own rounding. The loader tracks this per
tensor as a non-negative "error basis" over the layer's inputs (``floatmodel.round_step``), so
that every layer carries ``err_weight`` / ``err_bias`` with
``|x_hat - x| <= err_weight @ m + err_bias`` whenever the layer's float input satisfies ``|z_hat| <= m``.
Bound methods evaluate this with the magnitudes of their own sound bounds, layer by layer.
"""

from __future__ import annotations

import numpy as np

#: unit roundoff (round to nearest) and underflow unit (half the smallest subnormal, rounded up
#: to the subnormal itself for margin) of each floating-point type onnxruntime may compute in
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
UNDERFLOW = {"float64": 2.0 ** -1074, "float32": 2.0 ** -149, "float16": 2.0 ** -24, "bfloat16": 2.0 ** -133}
#: largest finite value per type (a value beyond it would round to infinity)
LARGEST = {"float64": float(np.finfo(np.float64).max), "float32": float(np.finfo(np.float32).max),
           "float16": 65504.0, "bfloat16": 3.3895313892515355e38}
#: the most roundings a folded constant may carry before the loader refuses it (see above)
FOLD_SLACK = 3


def gamma(k: int | np.ndarray, dtype: str = "float32") -> np.ndarray | float:
    """``gamma_k = k u / (1 - k u)`` for ``k`` rounding steps in ``dtype``."""
    u = UNIT_ROUNDOFF[dtype]
    ku = np.asarray(k, dtype=np.float64) * u
    if np.any(ku >= 0.5):
        raise ValueError(f"{dtype} error model breaks down for sums of {int(np.max(k))} terms")
    return ku / (1.0 - ku)


def dot_error(weight: np.ndarray, bias: np.ndarray, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Error basis of one ``Gemm`` ``W z + b`` in ``dtype``: ``(gamma_k |W|, gamma_k |b| + k eta)``
    per row, ``k`` = the row's non-zero weights plus one for a non-zero bias."""
    from .linalg import absolute, nnz_per_row, scale_rows

    k = nnz_per_row(weight) + (bias != 0)
    g = gamma(k, dtype)
    return scale_rows(absolute(weight), g), g * np.abs(bias) + k * UNDERFLOW[dtype]


def round_step(prop: np.ndarray, local: np.ndarray, k: int | np.ndarray, dtype: str) -> np.ndarray:
    """Error basis after one rounding operator.

    ``prop``: the input's error carried through the operator (``|A| R``); ``local``: the magnitude
    basis of the terms the operator sums (``|A| (|T| + R) + |c|``); ``k``: terms per output (a scalar
    or an array broadcastable to the tensor's shape). The last basis row is the constant part,
    which also receives the underflow term ``k * eta``.
    """
    out = prop + gamma(k, dtype) * local
    out[-1] = out[-1] + np.asarray(k, dtype=np.float64) * UNDERFLOW[dtype]
    return out
