"""Bounds of the float32 network over a region, by back-substitution, in either arithmetic.

The network as onnxruntime runs it: ``x_k = W_k z_k + b_k + d_k`` with ``z_0`` the input and
``z_{k+1} = act(x_k) + delta_k``, where ``|d_k| <= gamma_n (|W_k| m_k + |b_k|) + n eta`` for
``|z_k| <= m_k`` (float32 sums of ``n`` terms in any order, FMA or not) and ``delta`` is
LeakyReLU's rounding of ``alpha x`` (``u |alpha x| + eta``; ReLU is exact). Bounds are bounds of
the float values ``x_k``; the relaxation lines of an activation are valid on ``[l, u]``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .arith import Exact, Fast, Right, down, g64, up
from .model import Layer, Model

U32, ETA32 = 2.0 ** -24, 2.0 ** -149
FLT32_SAFE = float(np.finfo(np.float32).max) / 1.001


class CannotBound(Exception):
    """The checker's float32 model does not cover this region (an overflow is possible)."""


class Net:
    """The model with what every bound needs per layer, for one arithmetic."""

    def __init__(self, model: Model, exact: bool) -> None:
        self.model, self.exact = model, exact
        self.layers = model.layers
        self.Lin = Exact if exact else Fast
        self.W = [Right(np.column_stack([layer.weight, layer.bias]), False) if exact else layer.weight
                  for layer in self.layers]  # exact: [W | b], split once for the exact products
        self.b = [None if exact else layer.bias for layer in self.layers]
        self.absW = [np.abs(layer.weight) for layer in self.layers]
        self.gam = [up(layer.terms * U32 / (1.0 - layer.terms * U32)) for layer in self.layers]
        self.act_layer = model.activation_layers  # a -> k


def act_bounds(layer: Layer, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the (real) activation outputs for pre-activations in ``[lo, hi]``, rounded outward."""
    if layer.act == "relu":
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)
    if layer.act == "leaky":
        a = layer.slope
        return (np.where(lo >= 0, lo, down(a * lo)),
                np.where(hi >= 0, hi, np.nextafter(a * hi, np.inf)))
    return lo, hi


def act_error(layer: Layer, lo: np.ndarray) -> np.ndarray:
    """Bound on the rounding of the activation's output (LeakyReLU's product only)."""
    if layer.act != "leaky":
        return np.zeros(lo.shape)
    return up(np.where(lo < 0, U32 * layer.slope * np.abs(lo) + ETA32, 0.0))


def rounding(net: Net, k: int, zmag: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """``e_k``: the float32 error of layer ``k`` for float inputs ``|z| <= zmag``, ``eps`` off the real ones."""
    layer = net.layers[k]
    aW = net.absW[k]
    return up(net.gam[k] * (aW @ zmag + np.abs(layer.bias)) + layer.terms * ETA32 + aW @ eps)


def lines(layer: Layer, lo: np.ndarray, hi: np.ndarray, alpha: np.ndarray | None = None):
    """Valid lower / upper lines ``(lo_s, lo_t, up_s, up_t)`` of the activation on ``[lo, hi]``.

    Unstable neurons: the lower line ``alpha x`` (default 1 if hi > -lo else the negative slope),
    the upper line the chord's slope with an intercept rounded up so that it lies above both ends
    (enough: ReLU and LeakyReLU with slope < 1 are convex).
    """
    n = lo.size
    if layer.act is None:
        one, zero = np.ones(n), np.zeros(n)
        return one, zero, one, zero
    a = layer.slope
    neg = np.full(n, a)
    s = np.where(lo >= 0, 1.0, neg)  # stable pieces (hi <= 0: the negative slope)
    lo_s, up_s = s.copy(), s.copy()
    lo_t, up_t = np.zeros(n), np.zeros(n)
    unst = (lo < 0) & (hi > 0)
    if unst.any():
        l, h = lo[unst], hi[unst]
        default = np.where(h > -l, 1.0, a)
        lo_s[unst] = default if alpha is None else alpha[unst]
        chord = (h - a * l) / (h - l)
        t1 = a * l - chord * l  # the line through (l, a l)
        t2 = h - chord * h  # ... and through (h, h)
        mag = np.abs(a * l) + np.abs(chord * l) + np.abs(h) + np.abs(chord * h)
        up_s[unst] = chord
        up_t[unst] = np.nextafter(np.maximum(t1, t2) + up(4 * 2.0 ** -53 * mag), np.inf)
    return lo_s, lo_t, up_s, up_t


def backsub(net: Net, k: int, L: np.ndarray, c: np.ndarray, s: np.ndarray | None, box, bounds, errs,
            alphas: dict | None = None, betas: dict | None = None, memo: dict | None = None):
    """``L @ x_k + c`` (rows) rewritten as a linear form over the input that bounds it from below.

    ``bounds``: (lower, upper) per layer; ``errs``: e_k per layer; ``alphas`` / ``betas``: per layer
    index, lower slopes and ``beta * sign`` vectors. ``memo``: a dict kept across calls with the
    same ``box`` and ``bounds`` (it keeps the default lines and magnitudes of each layer).
    """
    lo_b, hi_b = bounds
    memo = {} if memo is None else memo
    lin = net.Lin(L, c, s)
    for j in range(k, -1, -1):
        if j < k:
            layer = net.layers[j]
            if layer.act is not None:
                alpha = None if alphas is None else alphas.get(j)
                if alpha is None:
                    if ("lines", j) not in memo:
                        memo["lines", j] = lines(layer, lo_b[j], hi_b[j])
                    ls = memo["lines", j]
                else:
                    ls = lines(layer, lo_b[j], hi_b[j], alpha)
                if ("xmag", j) not in memo:
                    memo["xmag", j] = np.maximum(np.abs(lo_b[j]), np.abs(hi_b[j]))
                lin.act(*ls, memo["xmag", j], None if betas is None else betas.get(j))
        if ("zmag", j) not in memo:
            zl, zu = (box[0], box[1]) if j == 0 else _post(net, j - 1, lo_b, hi_b)
            memo["zmag", j] = np.maximum(np.abs(zl), np.abs(zu)) + _eps(net, j, lo_b)
        lin.affine(net.W[j], net.b[j], errs[j], memo["zmag", j])
    return lin


def _post(net: Net, j: int, lo_b, hi_b):
    return act_bounds(net.layers[j], lo_b[j], hi_b[j])


def _eps(net: Net, j: int, lo_b) -> np.ndarray:
    return np.zeros(net.layers[j].weight.shape[1]) if j == 0 else act_error(net.layers[j - 1], lo_b[j - 1])


def node_bounds(net: Net, lo: np.ndarray, hi: np.ndarray, clamps: dict[int, list]) -> tuple[list, list, list]:
    """Pre-activation bounds of every layer over the box and the splits ``clamps`` (layer ->
    [(neuron, side, at)]): interval arithmetic, then back-substitution of every neuron that
    interval arithmetic leaves unstable (all neurons of affine-only layers after the first)."""
    los, his, errs = [], [], []
    memo: dict = {}  # the lines and magnitudes of the layers bounded so far (``backsub``)
    zl, zu, eps = lo, hi, np.zeros(lo.size)
    for k, layer in enumerate(net.layers):
        zmag = np.maximum(np.abs(zl), np.abs(zu)) + eps
        e = rounding(net, k, zmag, eps)
        errs.append(e)
        Wp, Wn = np.maximum(layer.weight, 0.0), np.minimum(layer.weight, 0.0)
        n = layer.weight.shape[1] * 2 + 2
        mag = net.absW[k] @ zmag + np.abs(layer.bias) + e
        if not np.all(mag < FLT32_SAFE):  # every partial sum stays below this: no overflow to inf
            raise CannotBound(f"layer {k}: a float32 partial sum may reach {float(np.max(mag)):.3g}, beyond the "
                              "float32 range (onnxruntime could compute inf)")
        slack = up(g64(n) * mag)
        l = down(Wp @ zl + Wn @ zu + layer.bias - e - slack)
        u = np.nextafter(Wp @ zu + Wn @ zl + layer.bias + e + slack, np.inf)
        if k > 0:
            idx = np.flatnonzero((l < 0) & (u > 0)) if layer.act is not None else np.arange(l.size)
            if idx.size:
                m = idx.size
                E = np.zeros((2 * m, l.size))
                E[np.arange(m), idx] = 1.0
                E[m + np.arange(m), idx] = -1.0
                low = backsub(net, k, E, np.zeros(2 * m), None, (lo, hi), (los, his), errs, memo=memo).minimum(lo, hi)
                l[idx] = np.maximum(l[idx], low[:m])
                u[idx] = np.minimum(u[idx], -low[m:])
        for i, side, at in clamps.get(k, ()):
            if side:
                l[i] = max(l[i], at)
            else:
                u[i] = min(u[i], at)
        los.append(l)
        his.append(u)
        zl, zu = act_bounds(layer, l, u)
        eps = act_error(layer, l)
    return los, his, errs


def objective_lower(net: Net, box, bnds, cy: list[Fraction], cx: list[Fraction], const: Fraction,
                    alphas: dict | None, betas: dict | None) -> tuple[bool, float]:
    """Is ``cy . y + cx . x + const > 0`` on the region?  ``(proved, lower bound as a float)``.

    Tries interval arithmetic on the output bounds (exact rationals) and back-substitution with the
    given slopes and multipliers; the better of the two counts.
    """
    lo, hi = box
    bounds, errs = (bnds[0], bnds[1]), bnds[2]
    K = len(net.layers) - 1
    ylo, yhi = bounds[0][K], bounds[1][K]
    ny = {i: c for i, c in enumerate(cy) if c != 0}  # the non-zero coefficients (rows are sparse)
    nx = {i: c for i, c in enumerate(cx) if c != 0}
    iv = const + sum((c * Fraction(float(ylo[i])) if c > 0 else c * Fraction(float(yhi[i]))) for i, c in ny.items())
    iv += sum((c * Fraction(float(lo[i])) if c > 0 else c * Fraction(float(hi[i]))) for i, c in nx.items())
    if iv > 0:
        return True, float(iv)
    # scale by the odd part of the common denominator: dyadic coefficients, exact in both arithmetics
    D = 1
    for v in (*ny.values(), *nx.values(), const):
        q = v.denominator
        D = math.lcm(D, q >> ((q & -q).bit_length() - 1))
    sy = {i: v * D for i, v in ny.items()}
    sx = {i: v * D for i, v in nx.items()}
    betas = {j: v * float(D) for j, v in (betas or {}).items()}  # any beta >= 0 is valid: rounding is harmless
    L0, Cx = np.zeros((1, len(cy))), np.zeros((1, len(cx)))
    for i, v in sy.items():
        L0[0, i] = float(v)
    for i, v in sx.items():
        Cx[0, i] = float(v)
    ymag = np.maximum(np.abs(ylo), np.abs(yhi))
    xmag = np.maximum(np.abs(lo), np.abs(hi))
    s = up(np.array([sum(float(abs(v - Fraction(float(v)))) * ymag[i] for i, v in sy.items())
                     + sum(float(abs(v - Fraction(float(v)))) * xmag[i] for i, v in sx.items())]))
    lin = backsub(net, K, L0, np.zeros(1), s, box, bounds, errs, alphas, betas)
    if sx:
        lin.add_input(Cx, np.maximum(np.abs(lo), np.abs(hi)))
    low = lin.minimum_exact(lo, hi)[0] if net.exact else Fraction(float(lin.minimum(lo, hi)[0]))
    total = low + const * D
    return total > 0, float(total / D)
