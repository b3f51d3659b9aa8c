"""The linear maps of the ONNX operators on flattened tensors, built as sparse matrices from
index arithmetic (no dense inputs x outputs array is ever formed): MatMul / Gemm with batch
broadcasting, N-D Conv and ConvTranspose (groups, strides, pads, dilations), pooling windows, and
reductions over axes. Row ``r`` of a map is output element ``r`` (row-major), column ``c`` input
element ``c``; zero weights are left out, so a row's non-zeros are its terms.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..linalg import as_weight
from .onnx_basis import _NodeError


def _coo(rows, cols, vals, shape):
    keep = vals != 0
    return as_weight(sparse.csr_array((vals[keep], (rows[keep], cols[keep])), shape=shape))


def _csr_sorted(rows, cols, vals, shape):
    """The sparse map of entries given in non-decreasing row order (built directly, no sort)."""
    keep = vals != 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
    return as_weight(sparse.csr_array((vals, cols, indptr), shape=shape))


# ------------------------------------------------------------------------------- MatMul
def matmul_map(vshape: tuple[int, ...], W: np.ndarray, var_left: bool, scale: float = 1.0):
    """``x @ W`` (``var_left``) or ``W @ x`` for a tensor ``x`` of shape ``vshape`` with numpy /
    ONNX MatMul semantics (1-D sides promoted and the promoted axis removed, batch axes
    broadcast): ``(M, out_shape)`` with ``M`` of shape (out size, x size), entries ``scale * W``."""
    if len(vshape) == 0 or W.ndim == 0:
        raise _NodeError("MatMul needs operands of rank 1 or more")
    v2 = vshape if len(vshape) >= 2 else ((1,) + vshape if var_left else vshape + (1,))
    W2 = W if W.ndim >= 2 else (W[:, None] if var_left else W[None, :])
    (a, la), (lw, m) = v2[-2:], W2.shape[-2:]
    if (la if var_left else a) != (lw if var_left else m):
        raise _NodeError(f"MatMul: shapes {list(vshape)} and {list(W.shape)} do not match")
    batch = np.broadcast_shapes(v2[:-2], W2.shape[:-2])
    idx = np.broadcast_to(np.arange(int(np.prod(vshape))).reshape(v2), batch + v2[-2:])
    Wb = np.broadcast_to(W2, batch + W2.shape[-2:])
    nb = len(batch)
    if var_left:  # out[.., i, j] = sum_l x[.., i, l] W[.., l, j]
        out2 = batch + (a, m)
        rows = np.arange(int(np.prod(out2))).reshape(out2)[..., :, None, :]
        cols, vals = idx[..., :, :, None], Wb[..., None, :, :]
    else:  # out[.., i, j] = sum_l W[.., i, l] x[.., l, j]
        out2 = batch + (lw, la)
        rows = np.arange(int(np.prod(out2))).reshape(out2)[..., :, None, :]
        cols, vals = idx[..., None, :, :], Wb[..., :, :, None]
    full = np.broadcast_shapes(rows.shape, cols.shape, vals.shape)
    r, c, w = (np.broadcast_to(x, full).reshape(-1) for x in (rows, cols, vals))
    M = _coo(r, c, scale * w.astype(np.float64), (int(np.prod(out2)), int(np.prod(vshape))))
    drop = set()  # the promoted axes of 1-D operands
    if len(vshape) == 1:
        drop.add(nb if var_left else nb + 1)
    if W.ndim == 1:
        drop.add(nb + 1 if var_left else nb)
    return M, tuple(d for i, d in enumerate(out2) if i not in drop)


# --------------------------------------------------------------------------------- Conv
def _spatial_table(size: int, k: int, s: int, pb: int, d: int, n_out: int):
    """Input position of every (output position, kernel offset) along one axis, -1 outside."""
    pos = np.arange(n_out)[:, None] * s - pb + np.arange(k)[None, :] * d
    return np.where((pos >= 0) & (pos < size), pos, -1)


def _combine(tables, sizes):
    """Per-axis tables (n_out_d, k_d) -> flat spatial index (prod n_out, prod k), -1 outside."""
    flat = np.zeros((1, 1), dtype=np.int64)
    for t, size in zip(tables, sizes):
        o, k = t.shape
        nf = flat[:, None, :, None] * size + t[None, :, None, :]
        bad = (flat[:, None, :, None] < 0) | (t[None, :, None, :] < 0)
        flat = np.where(bad, -1, nf).reshape(flat.shape[0] * o, flat.shape[1] * k)
    return flat


def conv_out_size(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil: bool = False) -> int:
    span = size + pb + pe - d * (k - 1) - 1
    return (-(-span // s) if ceil else span // s) + 1


def conv_map(in_shape, w: np.ndarray, strides, pads, dil, group: int):
    """Cross-correlation of a (1, C, *S) tensor with weights (M, C/group, *K), ONNX Conv
    semantics (``pads`` = begins then ends): ``(M_map, out_shape)``."""
    C, S = in_shape[1], tuple(in_shape[2:])
    Mo, Cg, K = w.shape[0], w.shape[1], tuple(w.shape[2:])
    nd = len(S)
    if C != Cg * group or Mo % group:
        raise _NodeError(f"Conv: {C} input channels do not match weights {list(w.shape)} with group={group}")
    O = tuple(conv_out_size(S[i], K[i], strides[i], pads[i], pads[nd + i], dil[i]) for i in range(nd))
    if min(O, default=1) <= 0:
        raise _NodeError("Conv: output would be empty")
    sp = _combine([_spatial_table(S[i], K[i], strides[i], pads[i], dil[i], O[i]) for i in range(nd)], S)
    P, Q, nS = sp.shape[0], sp.shape[1], int(np.prod(S))
    # entries in the order (out channel, out position, in channel, kernel offset): rows sorted
    m = np.arange(Mo)[:, None, None, None]
    cg = np.arange(Cg)[None, None, :, None]
    chan = (m // (Mo // group)) * Cg + cg
    rows = m * P + np.arange(P)[None, :, None, None]
    spb = sp[None, :, None, :]
    cols = np.where(spb < 0, -1, chan * nS + spb)
    vals = w.reshape(Mo, 1, Cg, Q)
    full = (Mo, P, Cg, Q)
    r, c, v = (np.broadcast_to(x, full).reshape(-1) for x in (rows, cols, vals))
    v = np.where(c < 0, 0.0, v)
    return _csr_sorted(r, np.maximum(c, 0), v.astype(np.float64), (Mo * P, C * nS)), (1, Mo) + O


def conv_transpose_map(in_shape, w: np.ndarray, strides, pads, dil, group: int, out_spatial):
    """Transposed convolution of a (1, C, *S) tensor with weights (C, M/group, *K) onto an output
    of spatial shape ``out_spatial`` (ONNX ConvTranspose: input position i, kernel offset j feed
    output position ``i * s + j * d - pad_begin``): ``(M_map, out_shape)``."""
    C, S = in_shape[1], tuple(in_shape[2:])
    if w.shape[0] != C or C % group:
        raise _NodeError(f"ConvTranspose: {C} input channels do not match weights {list(w.shape)} with group={group}")
    Mg, K, nd = w.shape[1], tuple(w.shape[2:]), len(S)
    O = tuple(int(o) for o in out_spatial)
    tables = []
    for i in range(nd):  # output position of every (input position, kernel offset)
        pos = np.arange(S[i])[:, None] * strides[i] - pads[i] + np.arange(K[i])[None, :] * dil[i]
        tables.append(np.where((pos >= 0) & (pos < O[i]), pos, -1))
    sp = _combine(tables, O)  # (prod S, prod K) -> flat output spatial index
    P, Q, nO = sp.shape[0], sp.shape[1], int(np.prod(O))
    c = np.arange(C)[:, None, None, None]
    mg = np.arange(Mg)[None, :, None, None]
    out_chan = (c // (C // group)) * Mg + mg
    cols = c * P + np.arange(P)[None, None, :, None]
    rows = np.where(sp[None, None] < 0, -1, out_chan * nO + sp[None, None])
    vals = w.reshape(C, Mg, 1, Q)
    full = (C, Mg, P, Q)
    r, cc, v = (np.broadcast_to(x, full).reshape(-1) for x in (rows, cols, vals))
    v = np.where(r < 0, 0.0, v)
    return _coo(np.maximum(r, 0), cc, v.astype(np.float64), (group * Mg * nO, C * P)), (1, group * Mg) + O


# ------------------------------------------------------------------------------ pooling
def pool_windows(in_shape, kernel, strides, pads, dil, ceil_mode: bool):
    """The windows of a pooling over the spatial axes of a (N, C, *S) tensor: ``(idx, inside,
    out_shape)``, ``idx`` (n_out, prod K) the flat input element of each window slot (-1 outside
    the input), ``inside`` whether the slot lies within the padded input (pads count for
    AveragePool with count_include_pad; slots past the padded end, which ceil_mode may create,
    never count)."""
    lead, S = tuple(in_shape[:2]), tuple(in_shape[2:])
    nd = len(S)
    if len(kernel) != nd:
        raise _NodeError(f"kernel_shape {list(kernel)} does not match the {nd} spatial axes of {list(in_shape)}")
    O = []
    for i in range(nd):
        o = conv_out_size(S[i], kernel[i], strides[i], pads[i], pads[nd + i], dil[i], ceil_mode)
        if ceil_mode and (o - 1) * strides[i] >= S[i] + pads[i]:
            o -= 1  # the last window would start in the end padding
        O.append(o)
    if min(O, default=1) <= 0:
        raise _NodeError("pooling output would be empty")
    tables, inside = [], []
    for i in range(nd):
        pos = np.arange(O[i])[:, None] * strides[i] - pads[i] + np.arange(kernel[i])[None, :] * dil[i]
        tables.append(np.where((pos >= 0) & (pos < S[i]), pos, -1))
        inside.append(np.where(pos < S[i] + pads[nd + i], 0, -1))
    sp = _combine(tables, S)
    ins = _combine(inside, [1] * nd) >= 0
    n_lead, nS = int(np.prod(lead)), int(np.prod(S))
    base = (np.arange(n_lead) * nS)[:, None, None]
    idx = np.where(sp[None] < 0, -1, base + sp[None]).reshape(n_lead * sp.shape[0], sp.shape[1])
    ins = np.broadcast_to(ins[None], (n_lead,) + ins.shape).reshape(idx.shape)
    return idx, ins, lead + tuple(O)


def ceil_windows_dropped(in_shape, kernel, strides, pads, dil) -> bool:
    """Whether ceil_mode drops a last window that would start in the end padding (onnxruntime
    does, ONNX shape inference does not: the shapes it infers after such a pooling are wrong)."""
    S, nd = in_shape[2:], len(in_shape) - 2
    return any((conv_out_size(S[i], kernel[i], strides[i], pads[i], pads[nd + i], dil[i], True) - 1) * strides[i]
               >= S[i] + pads[i] for i in range(nd))


def window_map(idx: np.ndarray, weights: np.ndarray, n_in: int):
    """The sparse map whose row ``r`` has ``weights[r]`` at the valid slots of window ``idx[r]``."""
    rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
    valid = idx >= 0
    vals = np.broadcast_to(np.asarray(weights, dtype=np.float64).reshape(-1, 1), idx.shape)
    return _csr_sorted(rows[valid], idx[valid], vals[valid], (idx.shape[0], n_in))


def compact_windows(idx: np.ndarray) -> np.ndarray:
    """Windows with their valid slots first and -1 after (the layout of a max activation's groups),
    the trailing all -1 columns dropped; every window must keep one slot."""
    if np.any(np.all(idx < 0, axis=1)):
        raise _NodeError("a pooling window lies entirely in the padding")
    order = np.argsort(idx < 0, axis=1, kind="stable")
    out = np.take_along_axis(idx, order, axis=1)
    width = int(np.max(np.sum(out >= 0, axis=1)))
    return out[:, :width]


def reduce_windows(shape, axes):
    """Windows of a reduction over ``axes`` of a tensor of ``shape``: ``(idx, kept_shape)`` with
    ``idx`` (n_out, n_reduced) (keepdims layout: reduced axes of size 1 in ``kept_shape``)."""
    shape = tuple(shape)
    axes = sorted({a % len(shape) for a in axes}) if shape else []
    kept = tuple(1 if i in axes else s for i, s in enumerate(shape))
    full = np.arange(int(np.prod(shape))).reshape(shape)
    order = [i for i in range(len(shape)) if i not in axes] + list(axes)
    moved = np.transpose(full, order)
    n_red = int(np.prod([shape[a] for a in axes]))
    return moved.reshape(-1, n_red), kept
