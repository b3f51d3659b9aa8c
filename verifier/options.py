"""``Options``: the settings of one verification run (no global state: pass this around).

Kept apart from ``verify`` so that the orchestration module stays about the pipeline; ``verify``
re-exports it (``from verifier.verify import Options`` keeps working).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .milp.solvers import Solver
from .network import Network
from .search.disjunct import MARGIN_ABS, MARGIN_REL


@dataclass(frozen=True)
class Options:
    """Settings of one run (no global state: pass this around)."""

    timeout: float | None = None
    solver: str | Solver = "cbc"  # a name ("cbc" / "highs") or a ``milp.solvers.Solver`` object
    bounds: str = "symbolic"  # "interval" or "symbolic" pre-activation bounds for the encoding
    margin_abs: float = MARGIN_ABS  # tau = margin_abs + margin_rel * (largest |neuron bound|)
    margin_rel: float = MARGIN_REL
    falsify: bool = True
    seed: int = 0
    #: "auto" | "milp" (one MILP per disjunct) | "input-split" | "neuron-split" (branch and bound)
    strategy: str = "auto"
    input_split_max_inputs: int = 12  # auto: input splitting for networks with at most this many inputs
    jobs: int = 1  # processes per instance: branch-and-bound workers, or CBC solves side by side
    parallel_after: int = 300  # sub-boxes explored in-process before the rest goes to the workers
    fold_fixed_inputs: bool = True  # inputs with lower == upper become constants (``search.fixed_inputs``)
    #: ``time.perf_counter()`` (``budget.clock``) at which the instance started (e.g. before the caller loaded the
    #: model): the timeout counts from there. None: from the ``verify`` call (which loads a model
    #: given as a path inside its budget)
    started: float | None = None
    progress: Callable[[str], None] | None = field(default=None, compare=False)  # status-line sink
    #: JSON-lines file to which neuron splitting appends the best bound over time of each disjunct
    trace: str | None = None
    #: write a proof certificate to this file (gzip-compressed when it ends in ``.gz``): the proof trees
    #: of a *holds*, the counterexample of a *violated*, nothing for *unknown* (``stats["certificate"]``
    #: says which, and why). The model and spec must be files (their bytes are hashed).
    certificate: str | None = None

    def choose_strategy(self, network: Network) -> str:
        """Input splitting pays off when few inputs span the box (ACAS Xu: 5); otherwise neuron
        splitting where every activation can be split (ReLU / LeakyReLU), else MILP (Clip, max
        windows: their bounds are handled but their neurons are not split)."""
        if self.strategy != "auto":
            return self.strategy
        if network.n_inputs <= self.input_split_max_inputs:
            return "input-split"
        from .bounds.crown import splits_every_layer

        return "neuron-split" if splits_every_layer(network) else "milp"
