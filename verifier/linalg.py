"""Weight matrices that may be dense (numpy) or sparse (``scipy.sparse`` CSR arrays).

Convolutions expanded to matrices are mostly zeros: a layer stores its weights sparse when that
saves memory (``as_weight``), and every consumer goes through these few helpers for what numpy
and scipy spell differently. Products ``dense @ W``, ``W @ dense``, ``z @ W.T`` give numpy arrays
for both kinds, so most code needs nothing from here.
"""

from __future__ import annotations

import numpy as np

#: store a weight matrix sparse when it has at least this many entries and at most this density
SPARSE_MIN_SIZE = 200_000
SPARSE_MAX_DENSITY = 0.25


def is_sparse(W) -> bool:
    return hasattr(W, "tocsr")


def as_weight(W):
    """``W`` as the layer stores it: a CSR array if large and sparse, else a dense float64 array."""
    if is_sparse(W):
        W = W.tocsr().astype(np.float64)
        if W.shape[0] * W.shape[1] < SPARSE_MIN_SIZE or W.nnz > SPARSE_MAX_DENSITY * W.shape[0] * W.shape[1]:
            return W.toarray()
        W.sum_duplicates()
        W.eliminate_zeros()
        return W
    W = np.asarray(W, dtype=np.float64)
    if W.ndim == 2 and W.size >= SPARSE_MIN_SIZE and np.count_nonzero(W) <= SPARSE_MAX_DENSITY * W.size:
        from scipy import sparse

        return sparse.csr_array(W)
    return W


def dense(W) -> np.ndarray:
    return W.toarray() if is_sparse(W) else np.asarray(W)


def pos(W):
    """Positive part ``max(W, 0)`` (same kind as ``W``)."""
    return W.maximum(0.0) if is_sparse(W) else np.maximum(W, 0.0)


def neg(W):
    """Negative part ``min(W, 0)`` (same kind as ``W``)."""
    return W.minimum(0.0) if is_sparse(W) else np.minimum(W, 0.0)


def absolute(W):
    return abs(W) if is_sparse(W) else np.abs(W)


def nnz_per_row(W) -> np.ndarray:
    if is_sparse(W):
        W = W.tocsr()
        W.eliminate_zeros()
        return np.diff(W.indptr)
    return np.count_nonzero(W, axis=1)


def col_max(W) -> np.ndarray:
    """Largest entry per column of a non-negative matrix (0 for an empty column)."""
    if is_sparse(W):
        return W.max(axis=0).toarray().ravel() if W.shape[0] else np.zeros(W.shape[1])
    return W.max(axis=0, initial=0.0)


def rows(W, idx) -> np.ndarray:
    """The rows ``idx`` of ``W`` as a dense array."""
    return W[idx].toarray() if is_sparse(W) else W[idx]


def scale_rows(W, s: np.ndarray):
    """``diag(s) @ W`` (same kind as ``W``)."""
    if is_sparse(W):
        from scipy import sparse

        return sparse.diags_array(s) @ W
    return s[:, None] * W


def columns(W, mask: np.ndarray):
    """The columns ``mask`` (boolean) of ``W`` (same kind as ``W``)."""
    return W[:, np.flatnonzero(mask)] if is_sparse(W) else W[:, mask]


def all_finite(W) -> bool:
    return bool(np.all(np.isfinite(W.data if is_sparse(W) else W)))
