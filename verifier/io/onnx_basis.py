"""The basis tensors of the ONNX reader (see ``io.onnx``) and the numeric helpers its operator
handlers share: a tensor that depends on the network input is a ``_Var`` (basis tensor ``T`` of
shape ``(n_vars + 1, *shape)`` plus its float error basis ``R``); ``_matmul_basis``, ``_conv2d`` and
``_broadcast`` apply ONNX semantics to such tensors with the basis axis kept first.

The variables of a basis tensor are its *space*: the network tensors it is an affine function of
(the network input and activation outputs, ``((tensor id, size), ...)`` sorted by id). Two
tensors over different spaces (a residual ``Add``, a ``Concat`` of branches) are first embedded
into the union of their spaces (``align``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..floatmodel import gamma, round_step

_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
_INT_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 12: "uint32",
              13: "uint64"}


@dataclass
class _Var:
    """A tensor that depends on the input: basis tensor ``T`` over variable space ``space``.

    ``ovf`` and ``guards`` collect, over everything computed on the way to this tensor since the
    last activations, the overflow guard (``(vec, const)``: every intermediate is at most
    ``vec . m + const`` times its type's largest value) and the float16 per-element guards.

    ``R`` (same shape, non-negative, None = zero) is its floating-point *error basis*: with the
    layer's float inputs bounded by ``|z| <= m``, the value onnxruntime computes lies within
    ``R[:-1] . m + R[-1]`` of the real value ``T[:-1] . z + T[-1]`` (see ``floatmodel``).
    ``dtype`` is the floating-point type the tensor is computed in.
    """

    T: np.ndarray
    space: tuple[tuple[int, int], ...]
    R: np.ndarray | None = None
    dtype: str = "float32"
    #: terms of the last contraction (MatMul / Gemm / Conv) this tensor comes from in its layer:
    #: onnxruntime may fold later constant additions into that contraction's bias, where they
    #: take part in its ``kmax`` additions (0: none since the layer began or since a cast)
    kmax: int = 0
    ovf: tuple[np.ndarray, float] | None = None
    guards: tuple = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.T.shape[1:])

    @property
    def err(self) -> np.ndarray:
        return np.zeros(self.T.shape) if self.R is None else self.R

    @property
    def mag(self) -> np.ndarray:
        """Magnitude basis: ``|value| <= mag[:-1] . m + mag[-1]`` for the float value."""
        return np.abs(self.T) + self.err

    def exact(self, fn) -> _Var:
        """Apply an operator that rounds nothing (reshape, transpose, negation) to ``T`` and ``R``."""
        return _Var(fn(self.T), self.space, None if self.R is None else np.abs(fn(self.R)), self.dtype, self.kmax,
                    self.ovf, self.guards)

    def embed(self, space) -> _Var:
        """The same tensor over a larger ``space`` (zero rows for the new variables)."""
        space = tuple(space)
        if space == self.space:
            return self
        rows = _embedding(self.space, space)
        ovf = None
        if self.ovf is not None:
            vec = np.zeros(_space_size(space))
            vec[rows] = self.ovf[0]
            ovf = (vec, self.ovf[1])
        guards = tuple((_embed_rows(G, rows, space), limit) for G, limit in self.guards)
        R = None if self.R is None else _embed_rows(self.R, rows, space)
        return _Var(_embed_rows(self.T, rows, space), space, R, self.dtype, self.kmax, ovf, guards)

    def rounded(self, T: np.ndarray, prop: np.ndarray, local: np.ndarray, k, dtype: str | None = None,
                kmax: int | None = None, const: np.ndarray | None = None, k_const: int = 0) -> _Var:
        """The result ``T`` of a rounding operator (see ``floatmodel.round_step``).

        ``const`` (a basis tensor with only its constant row set) are constant terms that onnxruntime
        may fold into an earlier contraction's bias: they are counted with ``k_const`` roundings.
        ``kmax`` is the result's contraction length (default: this tensor's).
        """
        dtype = dtype or self.dtype
        R = round_step(prop, local, k, dtype)
        if const is not None:
            R = R + gamma(k_const, dtype) * const
        return _Var(T, self.space, R, dtype, self.kmax if kmax is None else int(kmax), self.ovf, self.guards)


def _space_size(space) -> int:
    return int(sum(n for _, n in space))


def _embedding(space, target) -> np.ndarray:
    """Row index in ``target`` of every variable of ``space`` (``space`` must be part of ``target``)."""
    offsets, pos = {}, 0
    for t, n in target:
        offsets[t] = pos
        pos += n
    return np.concatenate([np.arange(offsets[t], offsets[t] + n) for t, n in space]) if space else np.zeros(0, int)


def _embed_rows(A: np.ndarray, rows: np.ndarray, target) -> np.ndarray:
    out = np.zeros((_space_size(target) + 1,) + A.shape[1:])
    out[rows] = A[:-1]
    out[-1] = A[-1]
    return out


def align(*vals):
    """The input-dependent values among ``vals`` embedded into the union of their spaces (constants
    unchanged)."""
    spaces = {pair for v in vals if isinstance(v, _Var) for pair in v.space}
    target = tuple(sorted(spaces))
    return [v.embed(target) if isinstance(v, _Var) else v for v in vals]


def merge_history(result: _Var, inputs) -> None:
    """Give ``result`` the overflow and float16 guards of the input-dependent ``inputs`` (which must
    be over spaces within ``result``'s): an operator's result carries everything computed before it."""
    ovf, guards = result.ovf, list(result.guards)
    for v in inputs:
        if not isinstance(v, _Var) or v is result or not set(v.space) <= set(result.space):
            continue  # an activation's output starts a fresh space, and a fresh history
        v = v.embed(result.space) if v.space != result.space else v
        if v.ovf is not None:
            ovf = v.ovf if ovf is None else (np.maximum(ovf[0], v.ovf[0]), max(ovf[1], v.ovf[1]))
        guards.extend(g for g in v.guards if not any(g is h for h in guards))
    result.ovf = ovf
    result.guards = tuple(guards)


def _nnz(W: np.ndarray, axis: int) -> np.ndarray:
    """Non-zero terms per output of a contraction over ``axis`` (kept as a size-1 axis)."""
    return np.count_nonzero(W, axis=axis, keepdims=True)


def _const_row(shape_k: tuple[int, ...], c) -> np.ndarray:
    """A basis tensor that is zero except for the constant row, which holds ``|c|`` broadcast."""
    out = np.zeros(shape_k)
    out[-1] = np.abs(np.broadcast_to(c, shape_k[1:]))
    return out


class _NodeError(Exception):
    """Raised inside operator handlers; turned into a ModelError that names the node."""


def _identity_basis(n: int, shape: tuple[int, ...]) -> np.ndarray:
    T = np.zeros((n + 1, n))
    T[:n] = np.eye(n)
    return T.reshape((n + 1,) + tuple(shape))


def _affine_of(v: _Var) -> tuple[np.ndarray, np.ndarray]:
    k = v.T.shape[0]
    flat = v.T.reshape(k, -1)
    return np.ascontiguousarray(flat[:-1].T), flat[-1].copy()


def _broadcast(v: _Var, shape: tuple[int, ...]) -> _Var:
    """``v`` broadcast to ``shape`` (numpy rules: leading axes of size 1 are added first)."""
    shape = tuple(shape)
    if v.shape == shape:
        return v
    def grow(T):
        T = T.reshape((T.shape[0],) + (1,) * (len(shape) - len(v.shape)) + v.shape)
        return np.array(np.broadcast_to(T, (T.shape[0],) + shape))

    return v.exact(grow)


def _matmul_basis(T: np.ndarray, W: np.ndarray, var_left: bool) -> np.ndarray:
    """``var @ W`` (``var_left``) or ``W @ var`` for a basis tensor ``T`` (basis axis first) with
    numpy / ONNX MatMul semantics: a 1-D side is promoted to a matrix and the promoted axis
    removed from the result; batch axes broadcast against each other, never against the basis."""
    k, vs = T.shape[0], T.shape[1:]
    if len(vs) == 0 or W.ndim == 0:
        raise _NodeError("MatMul needs operands of rank 1 or more")
    v2 = vs if len(vs) >= 2 else ((1,) + vs if var_left else vs + (1,))
    W2 = W if W.ndim >= 2 else (W[:, None] if var_left else W[None, :])
    nb = max(len(v2), W2.ndim) - 2
    Tv = T.reshape((k,) + (1,) * (nb - (len(v2) - 2)) + v2)
    Wb = W2.reshape((1,) * (nb - (W2.ndim - 2) + 1) + W2.shape)
    out = np.matmul(Tv, Wb) if var_left else np.matmul(Wb, Tv)
    if len(vs) == 1:
        out = out.squeeze(-2 if var_left else -1)
    if W.ndim == 1:
        out = out.squeeze(-1 if var_left else -2)
    return out


def _conv2d(x: np.ndarray, w: np.ndarray, strides, pads, dil, group: int) -> np.ndarray:
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (M, C/group, kh, kw), ONNX semantics."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    if c != cg * group or m % group:
        raise _NodeError(f"Conv: {c} input channels do not match weights {list(w.shape)} with group={group}")
    sh, sw = strides
    dh, dw = dil
    pt, pl, pb, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise _NodeError("Conv: output would be empty")
    mg = m // group
    out = np.zeros((n, m, ho, wo))
    for gi in range(group):
        xs = xp[:, gi * cg:(gi + 1) * cg]
        ws = w[gi * mg:(gi + 1) * mg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                out[:, gi * mg:(gi + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j], optimize=True)
    return out
