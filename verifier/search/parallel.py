"""Spread the open sub-boxes of one branch and bound over worker processes (``--jobs N``).

Workers are started with the ``spawn`` method (no inherited solver or BLAS state). The set-up is
explicit, through the pool's initializer (:func:`_init`), which receives everything a worker needs:

- the thread-pinning environment values (:func:`verifier.procenv.single_thread_values`), applied
  to the *child's* ``os.environ`` first (the parent's environment is never written): libraries the
  worker loads afterwards (onnxruntime, CBC processes it starts) see one thread. numpy itself is
  already imported when any initializer runs (the spawn bootstrap imports this package to unpickle
  it); its BLAS only sees the small per-box matrix products of the bounds;
- the ``Network`` itself (picklable dataclasses; its ``meta`` without the model bytes) and, when
  the replay oracle is onnxruntime, the ONNX model's bytes, read once in the parent
  (``OnnxOracle.model_bytes``): a worker builds its onnxruntime session from them and never opens
  or re-parses the ONNX file. For a network built in memory it replays in the float32 forward pass.

Each worker keeps its state in one :class:`WorkerState` object, built by the initializer and held
in the module-level ``_STATE``, which is only ever set in a worker process (the parent's stays None:
the parent has no mutable module state). onnxruntime runs single-threaded, CBC with ``threads 1``.
Each task is one open box, searched to the end by the same ``input_split`` as the sequential code.
The first counterexample stops everyone.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass, replace

from ..io.replay import ONNX_BYTES, NetworkOracle, OnnxOracle
from ..network import Network
from ..procenv import apply_environment, single_thread_values
from ..spec import Case, Constraints
from .fixed_inputs import FixedInputs
from .input_split import BabOutcome, BabSettings, BabStats, BabStatus, Box, input_split


@dataclass
class WorkerState:
    """What one worker process holds for the whole pool: the network and its replay oracle."""

    network: Network
    oracle: OnnxOracle | NetworkOracle


#: the worker's state; set by :func:`_init` in worker processes only (never in the parent)
_STATE: WorkerState | None = None


def _init(env: dict[str, str], network: Network, model_bytes: bytes | None, fixed: FixedInputs | None = None) -> None:
    """Pool initializer, run in each child: pin threads, then build the oracle from the bytes.
    With ``fixed``, the worker searches the network over the free inputs and replays the full input."""
    global _STATE
    if mp.parent_process() is None:  # a worker set-up must never run in (and change) the parent
        raise RuntimeError("verifier.search.parallel._init runs in worker processes only")
    apply_environment(env)
    oracle = OnnxOracle(network, model_bytes) if model_bytes is not None else NetworkOracle(network)
    if fixed is not None:
        network, oracle = fixed.network(network), fixed.oracle(oracle)
    _STATE = WorkerState(network, oracle)


def _task(args) -> BabOutcome:
    case, disjuncts, settings, wall_deadline, case_index, box = args
    state = _STATE
    assert state is not None, "worker not initialised"
    deadline = None if wall_deadline is None else time.perf_counter() + (wall_deadline - time.time())
    return input_split(state.network, case, disjuncts, state.oracle, settings, deadline, case_index, boxes=[box])


def worker_payload(network: Network, oracle: OnnxOracle | NetworkOracle) -> tuple[Network, bytes | None]:
    """What the workers receive: the network (without the model bytes in its ``meta``, sent once
    beside it) and the ONNX model's bytes when the oracle is onnxruntime (None otherwise)."""
    model_bytes = oracle.model_bytes if isinstance(oracle, OnnxOracle) else None
    if ONNX_BYTES in network.meta:
        network = replace(network, meta={k: v for k, v in network.meta.items() if k != ONNX_BYTES})
    return network, model_bytes


def run_boxes(network: Network, oracle: OnnxOracle | NetworkOracle, case: Case, disjuncts: list[Constraints],
              boxes: list[Box], jobs: int, settings: BabSettings, wall_deadline: float | None,
              case_index: int = 0, fixed: FixedInputs | None = None) -> BabOutcome:
    """Search ``boxes`` with ``jobs`` processes; holds only if every box holds.

    ``oracle`` is the parent's replay oracle: the workers replay the same way (onnxruntime on its
    model bytes, or the network's float32 forward pass). With ``fixed``, ``network`` and ``oracle``
    are over the whole input while ``case``, ``disjuncts`` and ``boxes`` are over the free inputs:
    each worker folds the fixed inputs itself (``FixedInputs.network``), so only one network travels."""
    ctx = mp.get_context("spawn")
    stats = BabStats()
    reasons: list[str] = []
    shipped, model_bytes = worker_payload(network, oracle)
    with ctx.Pool(jobs, initializer=_init, initargs=(single_thread_values(), shipped, model_bytes, fixed)) as pool:
        tasks = [(case, disjuncts, settings, wall_deadline, case_index, b) for b in boxes]
        for out in pool.imap_unordered(_task, tasks):
            stats.merge(out.stats)
            if out.status == BabStatus.VIOLATED:
                pool.terminate()
                return BabOutcome(BabStatus.VIOLATED, out.counterexample, None, stats)
            if out.status != "holds":  # anything but an explicit proof leaves the answer open
                reasons.append(out.reason or "undecided sub-box")
                if out.reason and out.reason.startswith("timeout"):
                    pool.terminate()
                    return BabOutcome(BabStatus.UNKNOWN, None, out.reason, stats)
    if reasons or stats.undecided:
        return BabOutcome(BabStatus.UNKNOWN, None, "; ".join(dict.fromkeys(reasons)) or "undecided sub-boxes", stats)
    return BabOutcome(BabStatus.HOLDS, None, None, stats)


def _disjunct_task(args):
    """One worker's share of a case's disjuncts, searched by neuron splitting (``prove_case``)."""
    from .branch_bound import Settings
    from .neuron_split import prove_case

    bounds, case, todo, wall_deadline, case_index, n_workers = args
    state = _STATE
    assert state is not None, "worker not initialised"
    from ..budget import Deadline

    deadline = Deadline.never() if wall_deadline is None else Deadline.after(max(0.0, wall_deadline - time.time()))
    settings = Settings()  # the workers share the memory limit
    return prove_case(state.network, bounds, case, todo, state.oracle, deadline, case_index,
                      settings=Settings(max_memory_mb=settings.max_memory_mb / n_workers))


def run_disjuncts(network: Network, oracle: OnnxOracle | NetworkOracle, bounds, case: Case, todo: list[int],
                  jobs: int, wall_deadline: float | None, case_index: int = 0, fixed: FixedInputs | None = None):
    """Neuron splitting on the disjuncts ``todo`` of ``case`` with ``jobs`` processes (``--jobs N``):
    each worker takes every ``jobs``-th disjunct and runs ``neuron_split.prove_case`` on them with
    the whole remaining time; the first counterexample stops everyone. Returns one merged
    ``CaseOutcome``. ``network`` / ``oracle`` / ``fixed`` as in ``run_boxes`` (``bounds`` and
    ``case`` are over the free inputs)."""
    from .neuron_split import CaseOutcome

    ctx = mp.get_context("spawn")
    shipped, model_bytes = worker_payload(network, oracle)
    groups = [todo[k::jobs] for k in range(jobs) if todo[k::jobs]]
    merged = CaseOutcome()
    t0 = time.perf_counter()
    with ctx.Pool(len(groups), initializer=_init, initargs=(single_thread_values(), shipped, model_bytes, fixed)) as pool:
        for out in pool.imap_unordered(_disjunct_task, [(bounds, case, g, wall_deadline, case_index, len(groups))
                                                         for g in groups]):
            merged.proved += out.proved
            merged.open_reasons += out.open_reasons
            merged.timed_out |= out.timed_out
            merged.to_milp += out.to_milp
            merged.stats.update(out.stats)
            if out.counterexample is not None:
                merged.counterexample = out.counterexample
                pool.terminate()
                break
    merged.time_s = time.perf_counter() - t0
    return merged
