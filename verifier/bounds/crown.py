"""Optimisable back-substitution bounds for batches of sub-problems (alpha / beta-CROWN, numpy only).

A *sub-problem* is the network over an input box with some neurons *split*: neuron ``i`` of layer
``j`` restricted to its active phase (``x_i >= 0``, ``split = +1``) or its inactive phase
(``x_i <= 0``, ``split = -1``). ``x`` is the pre-activation *as onnxruntime computes it*: the
rounding ``d_j`` (``|d_j| <= e_j``, ``floatmodel``) is part of it, exactly as in
``bounds.symbolic``, so a split is a split of the float network's behaviour and the two phases
cover every evaluation.

``bound`` computes, for a batch of ``B`` sub-problems and ``m`` objective rows, a lower bound of
``C @ y + C_in @ x_in + d`` over each sub-problem, by substituting per-neuron linear relaxations
backwards from the output to the input (as ``bounds.symbolic``), with

- per unstable free ReLU / LeakyReLU neuron an upper chord and a lower line ``a x`` whose slope
  ``a`` (``alpha``, one per sub-problem, row and neuron) may be anything in ``[slope of the
  negative side, 1]``: every such line lies below the activation on ``[l, u]``, so every alpha
  gives a sound bound;
- per neuron a Lagrange term ``beta`` for its bounds ``l <= x <= u`` (``bounds.multipliers``; a
  split is such a bound): sound for every ``beta``. On split neurons alone, of the split's sign, this
  is beta-CROWN; on every neuron, the Lagrangian dual of the LP over the triangle relaxation with
  every neuron's bounds as constraints (it also closes sub-problems whose splits contradict);
- Clip neurons with fixed lines (``activations.relaxation``); they are neither split nor optimised.

``bound`` also returns the gradient of the bound with respect to alpha and beta (written down
through the back-substitution: a reverse pass over the same per-layer coefficients), which
``optimise`` uses for projected gradient ascent (Adam). The pre-activation bounds ``l, u`` of the
neurons are those of the root problem (any sound bounds over a superset), tightened by the splits
(``l = max(l, 0)`` for an active split, ``u = min(u, 0)`` for an inactive one).

Sub-problems only narrow the root's region, so the root's rounding bounds ``e_j`` stay valid in
all of them. Every bound is padded outward like the symbolic ones (``layer_bounds.pad``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np

from ..activations import relaxation
from ..layer_bounds import PAD_ABS, PAD_REL, LayerBounds, check_box, rounding_errors
from ..network import Network
from .multipliers import bound_grad, bound_terms, project_beta

#: activation kinds whose neurons can be split and whose lower line is optimised
SPLITTABLE = ("relu", "leaky")
#: kinds the back-substitution here handles (the rest: not supported, the caller uses another method)
SUPPORTED = ("relu", "leaky", "clip")


class NotSupported(ValueError):
    """The network has a layer this module does not handle (e.g. max windows)."""


def supports(network: Network) -> bool:
    """Every activation is one this module bounds (ReLU, LeakyReLU, Clip)."""
    return all(layer.activation is None or layer.activation.kind in SUPPORTED for layer in network.layers)


def splits_every_layer(network: Network) -> bool:
    """Every activation is one whose neurons can be split (ReLU, LeakyReLU)."""
    return all(layer.activation is None or layer.activation.kind in SPLITTABLE for layer in network.layers)


@dataclass
class _LayerLines:
    """Root data of one activation layer: bounds, the chord of each unstable splittable neuron, the
    fixed lines of the others, and the slope range of the optimisable lower lines."""

    lower: np.ndarray
    upper: np.ndarray
    splittable: np.ndarray  # bool: unstable ReLU / LeakyReLU neurons (the ones that can be split)
    neg_slope: float  # slope of the negative side (0 for ReLU, alpha for LeakyReLU)
    a_lo: np.ndarray  # fixed lines (used for every neuron that is not splittable)
    c_lo: np.ndarray
    a_up: np.ndarray
    c_up: np.ndarray
    init_alpha: np.ndarray  # the adaptive CROWN choice for the splittable neurons


class Problem:
    """The network, the root box and the root bounds: what every sub-problem shares."""

    def __init__(self, network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray) -> None:
        if not supports(network):
            kinds = sorted({ly.activation.kind for ly in network.layers if ly.activation is not None} - set(SUPPORTED))
            raise NotSupported(f"optimised back-substitution does not handle activation kinds {kinds}")
        self.network = network
        self.lower, self.upper = check_box(lower, upper, network.n_inputs)
        self.bounds = bounds
        self.errors = rounding_errors(network, bounds, self.lower, self.upper)
        self.lines: dict[int, _LayerLines] = {}
        for j, layer in enumerate(network.layers):
            act = layer.activation
            if act is None:
                continue
            l, u = np.asarray(bounds.lower[j], float), np.asarray(bounds.upper[j], float)
            a_lo, c_lo, a_up, c_up = relaxation(act, l, u)
            splittable = ((l < 0) & (u > 0)) if act.kind in SPLITTABLE else np.zeros(l.size, bool)
            neg = act.alpha if act.kind == "leaky" else 0.0
            self.lines[j] = _LayerLines(l, u, splittable, neg, a_lo, c_lo, a_up, c_up,
                                        np.where(u > -l, 1.0, neg))
        self.act_layers = tuple(self.lines)
        self.split_layers = tuple(j for j in self.act_layers if network.layers[j].activation.kind in SPLITTABLE)
        self._float32: Problem | None = None

    def float32(self) -> Problem:
        """This problem with float32 weights and rounding bounds, for heuristics only (the branching
        choice): ``bound`` over it and a ``Batch.float32`` runs in float32, about twice as fast, and its
        results are *not* sound bounds. Itself when a layer's weights are not a dense array."""
        if self._float32 is None:
            net = self.network
            if not all(isinstance(ly.weight, np.ndarray) for ly in net.layers):
                self._float32 = self
            else:
                layers = []
                for ly in net.layers:  # copies whose arrays the layer's checks would turn back to float64
                    ly32 = copy.copy(ly)
                    object.__setattr__(ly32, "weight", ly.weight.astype(np.float32))
                    object.__setattr__(ly32, "bias", np.asarray(ly.bias, np.float32))
                    layers.append(ly32)
                p = copy.copy(self)
                p.network = replace(net, layers=tuple(layers))
                p.errors = [np.asarray(e, np.float32) for e in self.errors]
                p._float32 = p
                self._float32 = p
        return self._float32

    def unstable(self, j: int) -> np.ndarray:
        return self.lines[j].splittable

    def root(self) -> Batch:
        """The root problem as a batch of one."""
        n = self.network.n_inputs
        return Batch(self.lower.reshape(1, n).copy(), self.upper.reshape(1, n).copy(),
                     {j: np.zeros((1, v.lower.size), np.int8) for j, v in self.lines.items()},
                     {j: v.lower[None].copy() for j, v in self.lines.items()},
                     {j: v.upper[None].copy() for j, v in self.lines.items()})

    def init_alpha(self, batch: Batch, m: int, below: int | None = None) -> dict[int, np.ndarray]:
        """The adaptive CROWN lower slopes (1 where ``u > -l``, else the negative side's slope), for
        the layers below ``below`` (default: all)."""
        out = {}
        for j, v in self.lines.items():
            if below is not None and j >= below:
                continue
            a = np.where(batch.upper[j] > -batch.lower[j], 1.0, v.neg_slope)
            out[j] = np.repeat(a[:, None, :], m, axis=1)
        return out

    def zero_beta(self, batch: Batch, m: int) -> dict[int, np.ndarray]:
        return {j: np.zeros((batch.size, m, v.lower.size)) for j, v in self.lines.items()}


@dataclass
class Batch:
    """``B`` sub-problems: input boxes, splits (``+1`` active, ``-1`` inactive, ``0`` free) and the
    pre-activation bounds of every activation layer (the root's, narrowed by the splits and by any
    refinement; ``split`` applies a split to them)."""

    lo: np.ndarray  # (B, n_in)
    hi: np.ndarray
    splits: dict[int, np.ndarray]  # (B, n_j) int8
    lower: dict[int, np.ndarray]  # (B, n_j)
    upper: dict[int, np.ndarray]
    #: per layer (B, n_j): each sub-problem's own rounding bounds ``e_j`` (sub-problems that are
    #: separate boxes with their own bounds, ``boxes``); None: the root's (``Problem.errors``)
    errors: dict[int, np.ndarray] | None = None

    @property
    def size(self) -> int:
        return int(self.lo.shape[0])

    def take(self, idx) -> Batch:
        return Batch(self.lo[idx], self.hi[idx], {j: s[idx] for j, s in self.splits.items()},
                     {j: v[idx] for j, v in self.lower.items()}, {j: v[idx] for j, v in self.upper.items()},
                     None if self.errors is None else {j: e[idx] for j, e in self.errors.items()})

    @staticmethod
    def concat(parts: list[Batch]) -> Batch:
        keys = parts[0].splits.keys()
        if any(p.errors is not None for p in parts):
            raise ValueError("Batch.concat: batches with their own rounding bounds do not concatenate")
        return Batch(np.concatenate([p.lo for p in parts]), np.concatenate([p.hi for p in parts]),
                     {j: np.concatenate([p.splits[j] for p in parts]) for j in keys},
                     {j: np.concatenate([p.lower[j] for p in parts]) for j in keys},
                     {j: np.concatenate([p.upper[j] for p in parts]) for j in keys})

    def float32(self) -> Batch:
        """A float32 copy, for ``bound`` over ``Problem.float32`` (heuristics only: not sound)."""
        f = np.float32
        return Batch(self.lo.astype(f), self.hi.astype(f), self.splits, {j: v.astype(f) for j, v in self.lower.items()},
                     {j: v.astype(f) for j, v in self.upper.items()},
                     None if self.errors is None else {j: e.astype(f) for j, e in self.errors.items()})

    def empty(self) -> np.ndarray:
        """Per sub-problem: some neuron's bounds cross (``l > u``): no evaluation reaches it."""
        out = np.zeros(self.size, bool)
        for j in self.lower:
            out |= np.any(self.lower[j] > self.upper[j], axis=1)
        return out

    def split(self, b: int, j: int, i: int, phase: int) -> None:
        """Restrict neuron ``i`` of layer ``j`` of sub-problem ``b`` to ``phase`` (+1: ``x >= 0``)."""
        self.splits[j][b, i] = phase
        if phase > 0:
            self.lower[j][b, i] = max(self.lower[j][b, i], 0.0)
        else:
            self.upper[j][b, i] = min(self.upper[j][b, i], 0.0)


def boxes(network: Network, bounds: list[LayerBounds], lo: np.ndarray, hi: np.ndarray) -> tuple[Problem, Batch]:
    """Separate boxes ``[lo[b], hi[b]]`` with their own bounds ``bounds[b]`` (their rounding bounds
    included) as one batch of unsplit sub-problems, to optimise their slopes together. The problem
    is the first box's; only the batch's own bounds, boxes and rounding bounds enter ``bound``.
    Several boxes need every activation splittable (ReLU, LeakyReLU): the fixed lines of the others
    (Clip) are the problem's, from the first box's bounds, and need not hold on the other boxes."""
    if len(bounds) > 1 and not splits_every_layer(network):
        raise NotSupported("separate boxes in one batch: the fixed lines of a Clip layer are the first box's")
    prob = Problem(network, bounds[0], lo[0], hi[0])
    errs = [rounding_errors(network, b, lo[k], hi[k]) for k, b in enumerate(bounds)]
    keys = prob.act_layers
    batch = Batch(np.array(lo, float), np.array(hi, float),
                  {j: np.zeros((len(bounds), prob.lines[j].lower.size), np.int8) for j in keys},
                  {j: np.stack([np.asarray(b.lower[j], float) for b in bounds]) for j in keys},
                  {j: np.stack([np.asarray(b.upper[j], float) for b in bounds]) for j in keys},
                  {j: np.stack([np.asarray(e[j], float) for e in errs]) for j in range(len(network.layers))})
    return prob, batch


@dataclass
class BoundResult:
    """Per sub-problem and row: the lower bound, the input coefficients of its linear function
    (their sign says which box vertex minimises it), and (optionally) the gradients."""

    lower: np.ndarray  # (B, m)
    coef_in: np.ndarray  # (B, m, n_inputs)
    post_coef: dict[int, np.ndarray]  # layer j -> (B, m, n_j): coefficient on the layer's output
    grad_alpha: dict[int, np.ndarray] | None = None
    grad_beta: dict[int, np.ndarray] | None = None

    def vertex(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """(B, m, n): the box vertex where each row's linear lower bound is smallest."""
        return np.where(self.coef_in >= 0, lo[:, None, :], hi[:, None, :])


def _slopes(prob: Problem, j: int, batch: Batch, alpha: np.ndarray):
    """Lower and upper slopes and offsets of layer ``j`` per (sub-problem, row, neuron), from the
    sub-problems' own bounds: a chord over ``[l, u]`` above, ``alpha x`` below where unstable."""
    v = prob.lines[j]
    if j not in prob.split_layers:  # fixed lines (Clip)
        free = np.zeros(batch.lower[j].shape, bool)
        return free, np.broadcast_to(v.a_lo, alpha.shape), v.a_up[None, None], v.c_up[None, None], v.c_lo
    l, u, neg = batch.lower[j], batch.upper[j], v.neg_slope
    free = (l < 0) & (u > 0)
    width = np.where(free, u - l, 1.0)
    s = np.where(free, (u - neg * l) / width, np.where(l >= 0, 1.0, neg).astype(l.dtype))
    c_up = np.where(free, (neg - s) * l, 0.0)
    a_lo = np.where(free[:, None, :], alpha, s[:, None, :])
    return free, a_lo, s[:, None, :], c_up[:, None, :], None


def bound(prob: Problem, batch: Batch, C: np.ndarray, d: np.ndarray, C_in: np.ndarray | None,
          alpha: dict[int, np.ndarray], beta: dict[int, np.ndarray] | None, grad: bool = False,
          k: int | None = None) -> BoundResult:
    """Lower bounds of ``C @ x_k + C_in @ x_in + d`` over the sub-problems of ``batch``: ``x_k`` is
    layer ``k``'s pre-activation (default: the output layer); ``C`` is (m, n_k) or per sub-problem
    (B, m, n_k); ``alpha[j]`` / ``beta[j]`` (B, m, n_j) for the layers below ``k`` (only entries of
    unstable / split neurons matter)."""
    net = prob.network
    B = batch.size
    dt = batch.lo.dtype  # float64; float32 for a ``Batch.float32`` (heuristics only)
    C = np.asarray(C, dt)
    m = C.shape[-2]
    K = len(net.layers) - 1 if k is None else k
    pending: dict[int, np.ndarray] = {}
    lam: dict[int, np.ndarray] = {}
    post: dict[int, np.ndarray] = {}
    saved: dict[int, tuple] = {}
    const = np.broadcast_to(np.asarray(d, dt), (B, m)).copy()
    mag = np.abs(const)
    for j in range(K, -1, -1):
        layer = net.layers[j]
        if j == K:
            L = np.broadcast_to(C, (B, m, C.shape[-1])).copy()
        else:
            A = pending.pop(j + 1, None)
            if A is None:
                continue
            post[j] = A
            free, a_lo, a_up, c_up, c_lo = _slopes(prob, j, batch, alpha[j])
            posA = A > 0
            L = np.where(posA, A * a_lo, A * a_up)
            t = np.where(posA, 0.0, A * c_up)
            if c_lo is not None:
                t = t + np.where(posA, A * c_lo, 0.0)
            const += t.sum(-1)
            mag += np.abs(t).sum(-1)
            if beta is not None:
                z, tz = bound_terms(batch.lower[j], batch.upper[j], beta[j])
                L = L - z
                const += tz.sum(-1)
                mag += np.abs(tz).sum(-1)
            saved[j] = (free, a_lo, a_up, c_up, c_lo, posA)
        lam[j] = L
        absL = np.abs(L)
        if batch.errors is None:
            e = prob.errors[j]
            const += L @ layer.bias - absL @ e
            mag += absL @ (np.abs(layer.bias) + e)
        else:
            e = batch.errors[j][:, None, :]
            const += L @ layer.bias - (absL * e).sum(-1)
            mag += absL @ np.abs(layer.bias) + (absL * e).sum(-1)
        M = (L.reshape(B * m, -1) @ layer.weight).reshape(B, m, -1)
        for t_id, block in net.split(j, M):
            pending[t_id] = block if t_id not in pending else pending[t_id] + block
    A_in = pending.pop(0, np.zeros((B, m, net.n_inputs), dt))
    if C_in is not None:
        A_in = A_in + np.asarray(C_in, dt)[None]
    lo3, hi3 = batch.lo[:, None, :], batch.hi[:, None, :]
    low = const + np.where(A_in > 0, A_in * lo3, A_in * hi3).sum(-1)
    mag += (np.abs(A_in) * np.maximum(np.abs(lo3), np.abs(hi3))).sum(-1)
    low = low - (PAD_ABS + PAD_REL * np.maximum(np.abs(low), mag))
    res = BoundResult(low, A_in, post)
    if grad:
        res.grad_alpha, res.grad_beta = _reverse(prob, batch, lam, post, saved, A_in, lo3, hi3, beta)
    return res


def _reverse(prob: Problem, batch: Batch, lam, post, saved, A_in, lo3, hi3, beta):
    """Gradients of the bound over alpha and beta: the adjoint of ``bound``'s backward pass, run
    forwards (a layer's coefficient depends on the coefficients of the layers after it)."""
    net = prob.network
    g_post: dict[int, np.ndarray] = {0: np.where(A_in > 0, lo3, hi3)}  # d bound / d (coefficient on tensor t)
    g_alpha, g_beta = {}, {}
    with_beta = beta is not None
    for j, layer in enumerate(net.layers):
        if j not in lam:
            continue
        L = lam[j]
        parts = [g_post.get(t) for t in net.sources(j)]
        if any(p is None for p in parts):
            shape = L.shape[:2]
            parts = [np.zeros(shape + (net.tensor_size(t),)) if p is None else p for t, p in zip(net.sources(j), parts)]
        G_in = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        B, m = L.shape[:2]
        G = (G_in.reshape(B * m, -1) @ layer.weight.T).reshape(B, m, -1)
        e = prob.errors[j] if batch.errors is None else batch.errors[j][:, None, :]
        G = G + layer.bias - np.sign(L) * e
        if j in saved:
            free, a_lo, a_up, c_up, c_lo, posA = saved[j]
            g_alpha[j] = np.where(posA & free[:, None, :], G * post[j], 0.0)  # d lambda / d alpha = A there
            gp = np.where(posA, G * a_lo, G * a_up + c_up)
            if c_lo is not None:
                gp = gp + np.where(posA, c_lo, 0.0)
            g_post[j + 1] = gp
            if with_beta:
                g_beta[j] = bound_grad(batch.lower[j], batch.upper[j], beta[j], G)
    return g_alpha, g_beta


def _beta_scale(batch: Batch, beta: dict[int, np.ndarray], res: BoundResult) -> dict[int, np.ndarray]:
    """Per multiplier of every neuron's bounds, the scale of its steps: 1 on split neurons
    (beta-CROWN's), elsewhere the size of the row's coefficient on the neuron's output (a multiplier
    much larger than that overshoots: the coefficients then change sign and the relaxation with them)."""
    out = {}
    for j, b in beta.items():
        coef = np.minimum(np.abs(res.post_coef[j]), 1.0) if j in res.post_coef else 1.0
        scale = np.where(batch.splits[j][:, None, :] != 0, 1.0, coef)
        out[j] = scale.astype(b.dtype, copy=False)  # float32 steps stay float32
    return out


@dataclass
class Optimised:
    """The best bound found per (sub-problem, row) and the parameters that gave it."""

    lower: np.ndarray
    alpha: dict[int, np.ndarray]
    beta: dict[int, np.ndarray]
    result: BoundResult  # of the last evaluation (coefficients for branching and attack points)


def optimise(prob: Problem, batch: Batch, C, d, C_in, alpha, beta, iters: int = 20, lr: float = 0.1,
             target: float | None = None, use_beta: bool = True, lr_beta: float | None = None,
             k: int | None = None, multipliers: str = "bounds") -> Optimised:
    """Projected gradient ascent (Adam) on every (sub-problem, row) bound over alpha (in
    ``[negative slope, 1]``) and beta (the bound multipliers of every neuron, or with
    ``multipliers="splits"`` of the split neurons only, of the split's sign: ``project_beta``).
    Keeps per (sub-problem, row) the best bound and its parameters. ``target``: stop once every
    sub-problem has some row above it (proved). ``k``: the rows are over layer ``k``'s
    pre-activation (``bound``; ``alpha`` / ``beta`` then only for the layers below it)."""
    alpha = {j: a.copy() for j, a in alpha.items()}
    beta = {j: b.copy() for j, b in project_beta(batch.splits, beta, multipliers).items()} if use_beta else None
    lo_a = {j: prob.lines[j].neg_slope for j in alpha}
    best_alpha = {j: a.copy() for j, a in alpha.items()}
    best_beta = {j: b.copy() for j, b in beta.items()} if use_beta else {}
    mom = {("a", j): np.zeros_like(a) for j, a in alpha.items()}
    sq = {("a", j): np.zeros_like(a) for j, a in alpha.items()}
    if use_beta:
        mom.update({("b", j): np.zeros_like(b) for j, b in beta.items()})
        sq.update({("b", j): np.zeros_like(b) for j, b in beta.items()})
    best = None
    res = None
    for it in range(max(1, iters)):
        res = bound(prob, batch, C, d, C_in, alpha, beta, grad=iters > 1, k=k)
        if best is None:
            best = res.lower.copy()
            improved = np.ones(best.shape, bool)
        else:
            improved = res.lower > best
            best = np.where(improved, res.lower, best)
        for j in alpha:
            best_alpha[j] = np.where(improved[..., None], alpha[j], best_alpha[j])
            if use_beta:
                best_beta[j] = np.where(improved[..., None], beta[j], best_beta[j])
        if iters <= 1 or it == iters - 1:
            break
        if target is not None and np.all(best.max(axis=1) > target):
            break
        if use_beta and it == 0 and multipliers == "bounds":  # split multipliers take plain steps
            zscale = _beta_scale(batch, beta, res)
        params = [("a", j, alpha, res.grad_alpha[j]) for j in alpha]
        if use_beta:
            params += [("b", j, beta, res.grad_beta[j]) for j in beta]
        for key, j, store, g in params:
            m1 = mom[(key, j)] = 0.9 * mom[(key, j)] + 0.1 * g
            v2 = sq[(key, j)] = 0.999 * sq[(key, j)] + 0.001 * g * g
            rate = lr if key == "a" or lr_beta is None else lr_beta
            step = rate * (m1 / (1 - 0.9 ** (it + 1))) / (np.sqrt(v2 / (1 - 0.999 ** (it + 1))) + 1e-8)
            if key == "b" and multipliers == "bounds":
                step = step * zscale[j]
            new = store[j] + step  # ascent: the bound is maximised
            store[j] = np.clip(new, lo_a[j], 1.0) if key == "a" else new
        if use_beta and multipliers != "bounds":
            beta = project_beta(batch.splits, beta, multipliers)
    return Optimised(best, best_alpha, best_beta if use_beta else {}, res)


#: the last gradient steps of ``optimise_float32`` run in float64 (float32 cannot resolve the last
#: 1e-5 of a bound: near a proof's threshold its steps are noise)
F64_TAIL = 3


def optimise_float32(prob: Problem, batch: Batch, C, d, C_in, alpha, beta, iters: int = 20, **kw) -> Optimised:
    """``optimise`` with its first gradient steps in float32 (``Problem.float32``, about twice as fast)
    and the last ``F64_TAIL`` in float64 from the best parameters found: the float64 steps alone give
    the bounds, so they are as sound as ``bound``'s (any alpha in range, any beta). Plain ``optimise``
    where float32 does not apply or there are too few steps to share."""
    fast = prob.float32()
    if fast is prob or iters <= F64_TAIL + 1:
        return optimise(prob, batch, C, d, C_in, alpha, beta, iters=iters, **kw)
    f = np.float32
    use_beta = kw.get("use_beta", True)
    o = optimise(fast, batch.float32(), np.asarray(C, f), np.asarray(d, f), None if C_in is None else np.asarray(C_in, f),
                 {j: a.astype(f) for j, a in alpha.items()},
                 {j: b.astype(f) for j, b in beta.items()} if use_beta else beta, iters=iters - F64_TAIL,
                 **dict(kw, target=None))
    a64 = {j: np.clip(a.astype(np.float64), prob.lines[j].neg_slope, 1.0) for j, a in o.alpha.items()}
    b64 = {j: b.astype(np.float64) for j, b in o.beta.items()} if use_beta else beta
    return optimise(prob, batch, C, d, C_in, a64, b64, iters=F64_TAIL, **kw)


def refine(prob: Problem, batch: Batch, max_rows: int | None = None, first: bool = False) -> int:
    """Tighten, in place, the bounds of unstable neurons of every splittable layer after the first
    (``first``: that one too, for sub-problems with smaller input boxes) by back-substitution over
    each sub-problem (its splits make earlier neurons linear, so later bounds shrink). Layers are
    done in order: each uses the bounds just refined below it.
    ``max_rows``: per sub-problem and layer, at most this many neurons, those whose relaxation is
    widest (``-l u / (u - l)``, the chord's height). Returns the number of (sub-problem, neuron)
    bounds refined."""
    done = 0
    B = batch.size
    for k in prob.split_layers[0 if first else 1:]:
        l, u = batch.lower[k], batch.upper[k]
        unst = (l < 0) & (u > 0)
        if not unst.any():
            continue
        height = np.where(unst, -l * u / np.where(unst, u - l, 1.0), -1.0)
        r = int(unst.sum(axis=1).max()) if max_rows is None else min(max_rows, int(unst.sum(axis=1).max()))
        idx = np.argsort(-height, axis=1)[:, :r]  # (B, r): padded with stable neurons where fewer
        C = np.zeros((B, 2 * r, l.shape[1]))
        rows = np.arange(r)
        bi = np.arange(B)[:, None]
        C[bi, rows[None, :], idx] = 1.0
        C[bi, r + rows[None, :], idx] = -1.0
        alpha = prob.init_alpha(batch, 2 * r, below=k)
        res = bound(prob, batch, C, np.zeros(2 * r), None, alpha, None, k=k)
        lo_new, hi_new = res.lower[:, :r], -res.lower[:, r:]
        np.put_along_axis(l, idx, np.maximum(np.take_along_axis(l, idx, 1), lo_new), 1)
        np.put_along_axis(u, idx, np.minimum(np.take_along_axis(u, idx, 1), hi_new), 1)
        done += int(np.take_along_axis(unst, idx, 1).sum())
    return done
