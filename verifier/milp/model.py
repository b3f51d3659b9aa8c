"""The solver-neutral MILP (variable bounds, integrality, sparse CSR rows) and its row builders."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EncodingError
from ..layer_bounds import LayerBounds
from ..network import Network


@dataclass
class MILP:
    """``lb <= v <= ub``, ``v[is_int]`` integer, rows ``A v (<= or ==) rhs`` in CSR form."""

    lb: np.ndarray
    ub: np.ndarray
    is_int: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    rhs: np.ndarray
    is_eq: np.ndarray
    input_vars: np.ndarray  # indices of the network inputs
    #: the output layer's input (its source tensors gathered): (var index or -1, constant value) per entry
    last_hidden: tuple[np.ndarray, np.ndarray]
    objective: dict[int, float] = field(default_factory=dict)
    #: float rounding bound of each network output (the rows of ``output_rows`` are widened by it)
    output_error: np.ndarray | None = None

    @property
    def n_vars(self) -> int:
        return int(self.lb.size)

    @property
    def n_binaries(self) -> int:
        return int(np.count_nonzero(self.is_int))

    @property
    def n_constraints(self) -> int:
        return int(self.rhs.size)

    def size(self) -> dict:
        return {"variables": self.n_vars, "binaries": self.n_binaries, "constraints": self.n_constraints,
                "nonzeros": int(self.data.size)}

    def with_rows(self, rows: list[tuple[np.ndarray, np.ndarray, float]]) -> MILP:
        """A copy with extra ``<=`` rows, each ``(indices, values, rhs)``."""
        b = _RowBuilder()
        for idx, val, r in rows:
            b.add_row(idx, val, r, False)
        indptr, indices, data, rhs, is_eq = b.finish()
        return MILP(self.lb, self.ub, self.is_int,
                    np.concatenate([self.indptr, indptr[1:] + self.indptr[-1]]),
                    np.concatenate([self.indices, indices]), np.concatenate([self.data, data]),
                    np.concatenate([self.rhs, rhs]), np.concatenate([self.is_eq, is_eq]),
                    self.input_vars, self.last_hidden, dict(self.objective), self.output_error)


def with_margin(milp: MILP, rows: list[tuple[np.ndarray, np.ndarray, float]], t_lower: float,
                t_upper: float) -> tuple[MILP, int]:
    """Add a variable ``t`` and rows ``row_r - t <= rhs_r``: minimising ``t`` gives the smallest
    achievable worst-row violation of the conjunction (``t > 0`` everywhere = the conjunction is empty).

    Returns the new MILP and the index of ``t``; ``t`` is boxed by ``[t_lower, t_upper]`` (callers
    take these from sound bounds of the rows, so the box never cuts off a feasible point).
    """
    t = milp.n_vars
    ext = [(np.append(idx, t), np.append(val, -1.0), r) for idx, val, r in rows]
    grown = MILP(np.append(milp.lb, t_lower), np.append(milp.ub, t_upper), np.append(milp.is_int, False),
                 milp.indptr, milp.indices, milp.data, milp.rhs, milp.is_eq, milp.input_vars, milp.last_hidden,
                 output_error=milp.output_error)
    return grown.with_rows(ext), t


class _RowBuilder:
    """Collects sparse rows block by block: a ``(rows, width)`` matrix over some variables per row
    (``add_block``, for the activations' few-variable rows) or triplets (``add_coo``, for rows
    taken from a sparse weight structure)."""

    def __init__(self) -> None:
        self.lens: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.rhs: list[np.ndarray] = []
        self.eq: list[np.ndarray] = []

    def add_block(self, cols: np.ndarray, coef: np.ndarray, rhs: np.ndarray, eq: bool) -> None:
        """Rows ``coef[r] @ v[cols[r]] <= / == rhs[r]``; ``cols``/``coef`` are (rows, width) arrays.

        Zero coefficients are dropped so the rows stay sparse.
        """
        if coef.shape[0] == 0:
            return
        mask = coef != 0.0
        self.lens.append(mask.sum(axis=1))
        self.cols.append(cols[mask])
        self.vals.append(coef[mask])
        self.rhs.append(np.asarray(rhs, dtype=np.float64))
        self.eq.append(np.full(coef.shape[0], eq))

    def add_coo(self, n_rows: int, r: np.ndarray, c: np.ndarray, v: np.ndarray, rhs: np.ndarray, eq: bool) -> None:
        """Rows ``sum_{(r, c, v)} v * var[c] <= / == rhs[r]`` given as triplets (row ``r`` local to the
        block, ``0 <= r < n_rows``). Duplicate ``(r, c)`` entries are summed, zeros dropped: the
        rows keep only the structural non-zeros (a convolution row has its kernel's entries)."""
        if n_rows == 0:
            return
        from scipy import sparse

        r, c = np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64)
        n_cols = int(c.max()) + 1 if c.size else 1
        A = sparse.csr_array((np.asarray(v, dtype=np.float64), (r, c)), shape=(n_rows, n_cols))
        A.sum_duplicates()
        A.eliminate_zeros()
        self.lens.append(np.diff(A.indptr))
        self.cols.append(A.indices.astype(np.int64))
        self.vals.append(A.data)
        self.rhs.append(np.asarray(rhs, dtype=np.float64).reshape(n_rows))
        self.eq.append(np.full(n_rows, eq))

    def add_row(self, cols, coef, rhs: float, eq: bool) -> None:
        cols = np.asarray(cols, dtype=np.int64)[None, :]
        self.add_block(cols, np.asarray(coef, dtype=np.float64)[None, :], np.array([rhs]), eq)

    def finish(self):
        if not self.lens:
            z = np.zeros(0)
            return np.zeros(1, np.int64), z.astype(np.int64), z, z, z.astype(bool)
        lens = np.concatenate(self.lens)
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return (indptr, np.concatenate(self.cols).astype(np.int64), np.concatenate(self.vals),
                np.concatenate(self.rhs), np.concatenate(self.eq))


class _Vars:
    def __init__(self) -> None:
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.is_int: list[np.ndarray] = []
        self.n = 0

    def new(self, lb, ub, integer: bool = False) -> np.ndarray:
        lb = np.asarray(lb, dtype=np.float64).ravel()
        ub = np.asarray(ub, dtype=np.float64).ravel()
        idx = np.arange(self.n, self.n + lb.size)
        self.n += lb.size
        self.lb.append(lb)
        self.ub.append(ub)
        self.is_int.append(np.full(lb.size, integer))
        return idx


def check_layer_bounds(network: Network, bounds: LayerBounds) -> None:
    if len(bounds.lower) != len(network.layers):
        raise EncodingError(f"bounds cover {len(bounds.lower)} layers, the network has {len(network.layers)}")
    for k, (lo, hi) in enumerate(zip(bounds.lower, bounds.upper)):
        if lo.shape != (network.layers[k].n_out,) or hi.shape != lo.shape:
            raise EncodingError(f"bounds of layer {k} have the wrong shape")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise EncodingError(f"bounds of layer {k} are not finite: no sound big-M exists")
        if np.any(lo > hi):
            raise EncodingError(f"bounds of layer {k} are empty (lower > upper)")


