"""The basis tensors of the ONNX reader (see ``io.onnx``) and the matrix helpers its operator
handlers share.

A tensor that depends on the network input is a ``_Var``: its values, flattened in row-major
order, are ``A @ z + b`` with ``z`` the concatenated tensors of its *space* (the network tensors
it is an affine function of: the network input and activation outputs, ``((tensor id, size),
...)`` sorted by id). ``A`` has one row per element and one column per variable; it is a dense
array or a ``scipy.sparse`` CSR array, whichever ``linalg.as_weight`` picks for the result of
each operator (sparse when large and sparse), so a convolution after an activation costs its
kernel-size non-zeros per output, not inputs x outputs. Every operator is a map on the flattened
tensor axis: a matrix ``M`` (``A <- M A``, ``b <- M b + c``: MatMul, Gemm, Conv, pooling, sums), a
per-element scaling (Mul / Div by constants, BatchNormalization) or a row selection (Reshape,
Transpose, Slice, Pad, Concat, Split, broadcasting: ``take``), so consecutive affine operators
compose into one affine layer.

``E`` / ``e`` (same layout, non-negative, ``None`` = zero) are the floating-point *error basis*:
with the layer's float inputs bounded by ``|z| <= m``, the value onnxruntime computes lies within
``E @ m + e`` of the real value (see ``floatmodel``). Two tensors over different spaces (a
residual ``Add``, a ``Concat`` of branches) are first embedded into the union of their spaces
(``align``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from ..floatmodel import UNDERFLOW, gamma
from ..linalg import SPARSE_MAX_DENSITY, SPARSE_MIN_SIZE, absolute, as_weight, dense, is_sparse

_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
_INT_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 12: "uint32",
              13: "uint64"}


class _NodeError(Exception):
    """Raised inside operator handlers; turned into a ModelError that names the node."""


# ------------------------------------------------------------------------ matrix helpers
def _norm(X):
    """``linalg.as_weight`` without its copy for a float64 CSR array (every operator's result
    passes here: dense when small or dense, CSR when large and sparse)."""
    if is_sparse(X) and X.format == "csr" and X.dtype == np.float64:
        size = X.shape[0] * X.shape[1]
        if size < SPARSE_MIN_SIZE or X.nnz > SPARSE_MAX_DENSITY * size:
            return X.toarray()
        return X
    return as_weight(X)


def _scale_rows(X, s: np.ndarray):
    """``diag(s) @ X`` for a dense or CSR ``X`` (CSR: the stored values scaled in place of a product)."""
    if not is_sparse(X):
        return s[:, None] * X
    X = X.tocsr()
    return sparse.csr_array((X.data * np.repeat(s, np.diff(X.indptr)), X.indices, X.indptr), shape=X.shape)


def _col_max_abs(X) -> np.ndarray:
    """Largest ``|entry|`` per column (0 for an empty column)."""
    if X is None:
        return 0.0
    if not is_sparse(X):
        return np.abs(X).max(axis=0, initial=0.0)
    X = X.tocsr()
    out = np.zeros(X.shape[1])
    np.maximum.at(out, X.indices, np.abs(X.data))
    return out


def _is_identity(X) -> bool:
    """Whether ``X`` is the identity matrix (a tensor right after an activation)."""
    n = X.shape[0]
    if X.shape[1] != n:
        return False
    if not is_sparse(X):
        return n <= 512 and np.array_equal(X, np.eye(n))
    X = X.tocsr()
    return (X.nnz == n and np.array_equal(X.indptr, np.arange(n + 1)) and np.array_equal(X.indices, np.arange(n))
            and bool(np.all(X.data == 1.0)))


def _apply(M, X):
    """``M @ X`` for ``M`` a matrix (dense or sparse) or a 1-D per-row scale, ``X`` a matrix, a
    vector or None (zero)."""
    if X is None:
        return None
    if isinstance(M, np.ndarray) and M.ndim == 1:
        return M * X if isinstance(X, np.ndarray) and X.ndim == 1 else _norm(_scale_rows(X, M))
    out = M @ X
    return np.asarray(out) if np.ndim(out) == 1 else _norm(out)


def _plus(X, Y):
    """``X + Y`` for matrices or vectors, None meaning zero."""
    if X is None:
        return Y
    if Y is None:
        return X
    if is_sparse(X) and is_sparse(Y):
        return _norm(X + Y)
    return _norm(dense(X) + dense(Y)) if np.ndim(X) == 2 else X + Y


def _select(X, idx: np.ndarray):
    """Rows ``idx`` of ``X`` (matrix or vector), zero rows where ``idx < 0``."""
    if X is None:
        return None
    valid = idx >= 0
    n_rows = X.shape[0]
    if valid.all():
        if idx.size == n_rows and np.array_equal(idx, np.arange(n_rows)):
            return X
        return X[idx] if np.ndim(X) == 1 else _norm(X[idx])
    if np.ndim(X) == 1:
        out = np.zeros(idx.size)
        out[valid] = X[idx[valid]]
        return out
    if is_sparse(X):
        S = sparse.csr_array((np.ones(int(valid.sum())), (np.flatnonzero(valid), idx[valid])), shape=(idx.size, n_rows))
        return _norm(S @ X)
    out = np.zeros((idx.size, X.shape[1]))
    out[valid] = X[idx[valid]]
    return _norm(out)


def _stack(parts):
    """Matrices (or None = zero, given as its row count) stacked vertically."""
    if all(isinstance(p, int) for p in parts):
        return None
    width = next(p.shape[1] for p in parts if not isinstance(p, int))
    mats = [sparse.csr_array((p, width)) if isinstance(p, int) else p for p in parts]
    if any(is_sparse(m) for m in mats):
        return _norm(sparse.vstack([sparse.csr_array(m) if not is_sparse(m) else m for m in mats], format="csr"))
    return _norm(np.vstack(mats))


def _embed_cols(X, cols: np.ndarray, width: int):
    """``X`` with its columns moved to positions ``cols`` of a matrix ``width`` wide (zeros elsewhere)."""
    if X is None:
        return None
    if is_sparse(X):
        X = X.tocsr()
        return _norm(sparse.csr_array((X.data, cols[X.indices], X.indptr), shape=(X.shape[0], width)))
    out = np.zeros((X.shape[0], width))
    out[:, cols] = X
    return _norm(out)


def _flat(c, shape) -> np.ndarray:
    """A constant (scalar or array broadcastable to ``shape``) as a flat float64 vector."""
    return np.broadcast_to(np.asarray(c, dtype=np.float64), tuple(shape)).reshape(-1)


def identity(n: int):
    """The identity over ``n`` variables, as ``as_weight`` stores it."""
    return _norm(sparse.eye_array(n, format="csr"))


# ---------------------------------------------------------------------------- the tensor
@dataclass
class _Var:
    """A tensor that depends on the input: ``A @ z + b`` over variable space ``space``.

    ``ovf`` and ``guards`` collect, over everything computed on the way to this tensor since the
    last activations, the overflow guard (``(vec, const)``: every intermediate is at most
    ``vec . m + const`` times its type's largest value) and the float16 per-element guards
    (``((G, g), limit)``: ``G @ m + g <= limit``). ``E`` / ``e`` are the error basis (module
    docstring), ``dtype`` the floating-point type the tensor is computed in, ``ops`` the ONNX
    operators (labels) composed into it since the last activations.
    """

    A: object
    b: np.ndarray
    shape: tuple[int, ...]
    space: tuple[tuple[int, int], ...]
    E: object = None
    e: np.ndarray | None = None
    dtype: str = "float32"
    #: terms of the last contraction (MatMul / Gemm / Conv) this tensor comes from in its layer:
    #: onnxruntime may fold later constant additions into that contraction's bias, where they
    #: take part in its ``kmax`` additions (0: none since the layer began or since a cast)
    kmax: int = 0
    ovf: tuple[np.ndarray, float] | None = None
    guards: tuple = ()
    ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)

    @property
    def size(self) -> int:
        return int(self.A.shape[0])

    @property
    def n_vars(self) -> int:
        return int(self.A.shape[1])

    @property
    def mag(self):
        """Magnitude basis ``(MA, mb)``: ``|value| <= MA @ m + mb`` for the float value."""
        return _plus(absolute(self.A), self.E), _plus(np.abs(self.b), self.e)

    def reshaped(self, shape) -> _Var:
        return replace(self, shape=tuple(shape))

    def take(self, idx: np.ndarray, shape, fill=0.0) -> _Var:
        """The element ``idx[j]`` of this tensor at every position ``j`` of a tensor of ``shape``
        (``idx`` flat, ``-1`` = the constant ``fill``): data movement, which rounds nothing."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        b = _select(self.b, idx)
        if np.any(idx < 0):
            b = np.where(idx < 0, _flat(fill, idx.shape), b)
        return replace(self, A=_select(self.A, idx), b=b, E=_select(self.E, idx), e=_select(self.e, idx),
                       shape=tuple(shape))

    def negated(self) -> _Var:
        return replace(self, A=_norm(-self.A), b=-self.b)

    def embed(self, space) -> _Var:
        """The same tensor over a larger ``space`` (zero columns for the new variables)."""
        space = tuple(space)
        if space == self.space:
            return self
        cols, width = _embedding(self.space, space), _space_size(space)
        return replace(self, A=_embed_cols(self.A, cols, width), E=_embed_cols(self.E, cols, width),
                       space=space, **_embedded_history(self, cols, width))

    def linear(self, M, shape, k, c=None, *, local_c: bool = True, kmax: int | None = None,
               const=None, k_const: int = 0) -> _Var:
        """The result of a rounding operator ``y = M x + c`` (``M`` a matrix or a per-element scale,
        ``c`` a constant broadcast to ``shape``): ``k`` rounding steps per output on the magnitudes
        ``|M| |x| (+ |c| if local_c)``, see ``rounded``. On a tensor that is the identity over its
        variables (right after an activation) the map is the result, with no product."""
        absM = np.abs(M) if isinstance(M, np.ndarray) else absolute(M)
        if self.E is None and M.ndim == 2 and _is_identity(self.A):
            A, prop_A, local_A = _norm(M), None, _norm(absM)
        else:
            A, prop_A = _apply(M, self.A), _apply(absM, self.E)
            local_A = _plus(_apply(absM, absolute(self.A)), prop_A)  # |M| (|A| + E)
        b = _apply(M, self.b)
        mb = np.abs(self.b) if self.e is None else np.abs(self.b) + self.e
        local_b = _apply(absM, mb)
        if c is not None:
            cf = _flat(c, shape)
            b = b + cf
            if local_c:
                local_b = local_b + np.abs(cf)
        return self.rounded(A, b, (prop_A, _apply(absM, self.e)), (local_A, local_b), k,
                            shape=shape, kmax=kmax, const=const, k_const=k_const)

    def rounded(self, A, b, prop, local, k, *, shape=None, dtype: str | None = None, kmax: int | None = None,
                const=None, k_const: int = 0) -> _Var:
        """The result ``A @ z + b`` of a rounding operator (the model of ``floatmodel.round_step``).

        ``prop``: the input's error carried through the operator (``(|M| E, |M| e)``); ``local``:
        the magnitudes of the terms it sums; ``k``: rounding steps per output (scalar or
        broadcastable to ``shape``), which also count ``k`` underflow units. ``const`` (broadcast to
        ``shape``) are constant terms that onnxruntime may fold into an earlier contraction's bias:
        they are counted with ``k_const`` roundings. ``kmax`` is the result's contraction length
        (default: this tensor's).
        """
        shape = self.shape if shape is None else tuple(shape)
        dtype = dtype or self.dtype
        kf = _flat(k, shape)
        g = gamma(kf, dtype)
        E = _plus(prop[0], _apply(g, local[0]))
        e = _plus(prop[1], g * local[1] + kf * UNDERFLOW[dtype])
        if const is not None:
            e = e + gamma(k_const, dtype) * np.abs(_flat(const, shape))
        return replace(self, A=A, b=np.asarray(b, dtype=np.float64), E=E, e=e, shape=shape, dtype=dtype,
                       kmax=self.kmax if kmax is None else int(kmax))


def _space_size(space) -> int:
    return int(sum(n for _, n in space))


def _embedding(space, target) -> np.ndarray:
    """Column index in ``target`` of every variable of ``space`` (``space`` must be part of ``target``)."""
    offsets, pos = {}, 0
    for t, n in target:
        offsets[t] = pos
        pos += n
    return np.concatenate([np.arange(offsets[t], offsets[t] + n) for t, n in space]) if space else np.zeros(0, int)


def _embedded_history(v: _Var, cols: np.ndarray, width: int) -> dict:
    """``v``'s overflow and float16 guards over a larger space (columns ``cols`` of ``width``)."""
    ovf = None
    if v.ovf is not None:
        vec = np.zeros(width)
        vec[cols] = v.ovf[0]
        ovf = (vec, v.ovf[1])
    guards = tuple(((_embed_cols(G, cols, width), g), limit) for (G, g), limit in v.guards)
    return {"ovf": ovf, "guards": guards}


def stacked(parts, shape=(-1,)) -> _Var:
    """Tensors (``_Var`` over one space) and constants laid end to end as one flat tensor (the
    operand of Concat, of a max over several tensors); constants become rows with no variable."""
    ref = next(p for p in parts if isinstance(p, _Var))
    rows = [p if isinstance(p, _Var) else None for p in parts]
    sizes = [r.size if r is not None else int(np.size(p)) for r, p in zip(rows, parts)]
    A = _stack([r.A if r is not None else n for r, n in zip(rows, sizes)])
    E = _stack([r.E if r is not None and r.E is not None else n for r, n in zip(rows, sizes)])
    b = np.concatenate([r.b if r is not None else np.asarray(p, dtype=np.float64).reshape(-1) for r, p in zip(rows, parts)])
    has_e = any(r is not None and r.e is not None for r in rows)
    e = np.concatenate([r.e if r is not None and r.e is not None else np.zeros(n) for r, n in zip(rows, sizes)]) \
        if has_e else None
    total = int(sum(sizes))
    return _Var(A, b, (total,) if shape == (-1,) else shape, ref.space, E, e, ref.dtype,
                max(r.kmax for r in rows if r is not None), ops=())


def align(*vals):
    """The input-dependent values among ``vals`` embedded into the union of their spaces (constants
    unchanged)."""
    spaces = {pair for v in vals if isinstance(v, _Var) for pair in v.space}
    target = tuple(sorted(spaces))
    return [v.embed(target) if isinstance(v, _Var) else v for v in vals]


def merge_history(result: _Var, inputs, label: str) -> None:
    """Give ``result`` the overflow and float16 guards and the operator list of the input-dependent
    ``inputs`` over spaces within ``result``'s (an operator's result carries everything computed
    before it), and add ``label`` to its operators. An activation's output starts a fresh space
    and a fresh history: no input is within it, nothing is added."""
    ovf, guards, ops = result.ovf, list(result.guards), list(result.ops)
    within = [v for v in inputs if isinstance(v, _Var) and v is not result and set(v.space) <= set(result.space)]
    if not within:
        return
    for v in within:
        if v.space != result.space:
            cols = _embedding(v.space, result.space)
            v = replace(v, **_embedded_history(v, cols, _space_size(result.space)))
        if v.ovf is not None:
            ovf = v.ovf if ovf is None else (np.maximum(ovf[0], v.ovf[0]), max(ovf[1], v.ovf[1]))
        guards.extend(g for g in v.guards if not any(g is h for h in guards))
        ops.extend(o for o in v.ops if o not in ops)
    result.ovf, result.guards, result.ops = ovf, tuple(guards), tuple(ops) + (label,)


#: a contraction composed onto a sparse tensor costs ``sum_k (non-zeros of column k of M) x
#: (non-zeros of row k of A)`` products; beyond both limits the loader breaks the layer instead
COMPOSE_MIN_PRODUCTS = 5e7
COMPOSE_MAX_RATIO = 16.0


def composition_costly(M, A) -> bool:
    """Whether ``M @ A`` (a contraction on a tensor of sparse ``A``) costs far more products than
    ``M`` and ``A`` have non-zeros (a convolution on a convolution: the receptive fields multiply)."""
    if not is_sparse(A) or (isinstance(M, np.ndarray) and M.ndim == 1):
        return False
    if is_sparse(M):
        M = M.tocsr()
        col_nnz, nnz_m = np.bincount(M.indices, minlength=M.shape[1]), M.nnz
    else:
        col_nnz = np.count_nonzero(M, axis=0)
        nnz_m = int(col_nnz.sum())
    products = float(col_nnz @ np.diff(A.tocsr().indptr))
    return products > COMPOSE_MIN_PRODUCTS and products > COMPOSE_MAX_RATIO * (nnz_m + A.nnz)


def identity_var(n: int, shape, space, dtype: str) -> _Var:
    """The identity over ``n`` fresh variables (the network input, an activation's outputs)."""
    return _Var(identity(n), np.zeros(n), tuple(shape), tuple(space), None, None, dtype)


def note_magnitude(v: _Var, largest: float) -> None:
    """Fold ``v``'s magnitude into its overflow guard: the largest element's coefficients (a sound
    upper bound for non-negative input magnitudes), over its type's max ``largest``."""
    mb = np.abs(v.b) if v.e is None else np.abs(v.b) + v.e
    # max_i (|A| + E)_ij <= max_i |A_ij| + max_i E_ij: an upper bound, as the guard needs
    vec, const = (_col_max_abs(v.A) + _col_max_abs(v.E)) / largest, float(np.max(mb, initial=0.0)) / largest
    if v.ovf is not None:
        vec, const = np.maximum(vec, v.ovf[0]), max(const, v.ovf[1])
    v.ovf = (np.asarray(vec, dtype=np.float64).reshape(-1), const)
