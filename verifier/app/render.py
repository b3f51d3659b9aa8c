"""What the commands print: a verify result for humans, the batch progress line and summary table."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import click
import numpy as np

from ..results import HOLDS, UNKNOWN, VIOLATED, Result
from .tasks import Outcome

RED, GREEN, YELLOW, BOLD, RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[0m"


def _fmt_vec(v: np.ndarray, limit: int = 12) -> str:
    vals = [f"{float(x):.9g}" for x in v[:limit]]
    more = f", ... ({v.size} values)" if v.size > limit else ""
    return "[" + ", ".join(vals) + more + "]"


def print_result(result: Result, model: str, spec: str, quiet: bool) -> None:
    head = {"holds": "HOLDS", "violated": "VIOLATED", "unknown": "UNKNOWN"}[result.status]
    click.echo(f"{head}: {Path(spec).name} on {Path(model).name}" +
               (f" ({result.reason})" if result.reason else ""))
    if result.counterexample is not None:
        click.echo(f"  counterexample input : {_fmt_vec(result.counterexample.input)}")
        click.echo(f"  onnxruntime output   : {_fmt_vec(result.counterexample.output)}")
    if quiet:
        return
    s = result.stats
    parts = [f"time {result.time_s:.2f} s"]
    if s.unstable_used is not None:
        parts.append(f"unstable neurons {sum(s.unstable_used)} with {s.bounds_method} bounds "
                     f"(interval: {sum(s.unstable_interval or [])})")
    if s.disjunct_outcomes is not None:
        d = s.disjunct_outcomes
        parts.append(f"disjuncts: {d.proved_by_bounds} proved by bounds, {d.proved_by_lp} by LP, "
                     f"{d.proved_by_milp} by MILP, {d.proved_by_split} by neuron splitting, {d.undecided} undecided")
    if s.strategy == "neuron-split" and s.bab:
        b = s.bab
        parts.append(f"neuron splitting: {b.get('explored', 0)} sub-problems bounded, {b.get('splits', 0)} splits, "
                     f"depth {b.get('max_depth', 0)}, {b.get('leaves', 0)} exact leaves")
    if s.milp is not None:
        m = s.milp
        parts.append(f"largest MILP {m['variables']} vars / {m['binaries']} binaries / {m['constraints']} "
                     f"constraints, solver {s.solved_by or s.solver}")
    for p in parts:
        click.echo(f"  {p}")


class StatusLine:
    """One self-overwriting progress line on stderr (only used when stderr is a terminal)."""

    def __init__(self) -> None:
        self.width = 0

    def __call__(self, text: str) -> None:
        text = text[:150]
        sys.stderr.write("\r" + text.ljust(self.width))
        sys.stderr.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def paint(text: str, color: str, stream: TextIO) -> str:
    return f"{color}{text}{RESET}" if stream.isatty() and "NO_COLOR" not in os.environ else text


def vec(values: Sequence[float] | None, limit: int = 12) -> str:
    if values is None:
        return "[]"
    shown = ", ".join(f"{float(v):.9g}" for v in values[:limit])
    return f"[{shown}{f', ... ({len(values)} values)' if len(values) > limit else ''}]"


class Progress:
    """Progress on stderr: a redrawn status line on a terminal, else one line per finished instance."""

    def __init__(self, total: int, preset: Sequence[Outcome] = (), stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = total
        self.counts = {HOLDS: 0, VIOLATED: 0, UNKNOWN: 0, "wrong": 0}
        self.done = 0
        self.t0 = time.monotonic()
        self.last_draw = 0.0
        for o in preset:
            self._count(o)
        if preset:
            self._line(f"resumed: {len(preset)} of {total} instances already in the results file")

    def _count(self, o: Outcome) -> None:
        self.done += 1
        self.counts[o.status] += 1
        self.counts["wrong"] += o.wrong

    def update(self, o: Outcome) -> None:
        self._count(o)
        if o.wrong:
            self._line(paint(f"!!! CONTRADICTION: {o.task.label}: result {o.status}, expected {o.task.expected}",
                              RED + BOLD, self.stream))
        if self.tty:
            self._draw()
            return
        width = len(str(self.total))
        reason = f"  ({o.reason})" if o.reason else ""
        self._line(f"[{self.done:>{width}}/{self.total}] {o.status:<8} {o.time_s:8.2f} s  {o.task.label}{reason}")

    def tick(self) -> None:
        if self.tty and time.monotonic() - self.last_draw >= 0.5:
            self._draw()

    def _text(self) -> str:
        c = self.counts
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        wrong = f"  wrong {c['wrong']}" if c["wrong"] else ""
        return (f"[{bar}] {self.done}/{self.total}  holds {c[HOLDS]}  violated {c[VIOLATED]}  unknown {c[UNKNOWN]}"
                f"{wrong}  {time.monotonic() - self.t0:.0f} s")

    def _draw(self) -> None:
        cols = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + self._text()[: max(10, cols - 1)] + "\x1b[K")
        self.stream.flush()
        self.last_draw = time.monotonic()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.tty and self.done < self.total:
            self._draw()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self._text() + "\n")
            self.stream.flush()


def print_summary(rows: list[dict]) -> None:
    head = ("benchmark", "instances", "holds", "violated", "unknown", "timeouts", "wrong", "median_s", "total_s")
    cells = [[str(r[h]) if not isinstance(r[h], float) else f"{r[h]:.2f}" for h in head] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    click.echo(fmt.format(*head))
    for c in cells:
        click.echo(fmt.format(*c))


# --------------------------------------------------------------------------------- bounds
def print_bounds(box: int, b, labels: list[str], unstable: int | None) -> None:
    """``verifier bounds``' table for one box: per row the bounds, and for method exact the gap
    left and the replayed witness values (the lowest / highest value found)."""
    click.echo(f"box {box}: method {b.method}, {b.time_s:.3f} s, {unstable} unstable neurons"
               + (f", gap {b.gap:g}, {b.engine}" if b.witness_lower is not None else ""))
    if b.witness_lower is None:
        click.echo(f"  {'quantity':<20} {'lower':>16} {'upper':>16}  exact")
        for name, lo, hi, e in zip(labels, b.lower, b.upper, b.exact):
            click.echo(f"  {name:<20} {lo:>16.8g} {hi:>16.8g}  {'yes' if e else 'no'}")
        return
    click.echo(f"  {'quantity':<20} {'lower':>14} {'min found':>14} {'max found':>14} {'upper':>14} "
               f"{'gap left':>10}  exact")
    for r, name in enumerate(labels):
        vl, vu = b.value_lower[r], b.value_upper[r]
        left = max(vl - b.lower[r], b.upper[r] - vu)
        click.echo(f"  {name:<20} {b.lower[r]:>14.8g} {_num(vl):>14} {_num(vu):>14} {b.upper[r]:>14.8g} "
                   f"{_num(left, '.2e'):>10}  {'yes' if b.exact[r] else 'no'}")


def _num(v: float, fmt: str = ".8g") -> str:
    return "-" if not np.isfinite(v) else format(float(v), fmt)


# --------------------------------------------------------------------------------- info
def _tensor_name(t: int) -> str:
    return "input" if t == 0 else f"layer {t - 1}"


def _layer_entry(net, k: int) -> dict:
    """``verifier info``'s description of layer ``k``: what it reads, its shapes, its activation
    and the ONNX operators composed into it (when the network comes from the loader)."""
    from ..linalg import is_sparse

    layer = net.layers[k]
    shapes = net.meta.get("tensor_shapes") or ()
    info = (net.meta.get("layer_info") or ())[k] if k < len(net.meta.get("layer_info") or ()) else {}
    act = layer.activation
    reads = [{"tensor": t, "name": _tensor_name(t), "size": net.tensor_size(t),
              "shape": list(shapes[t]) if t < len(shapes) else [net.tensor_size(t)]} for t in net.sources(k)]
    out_shape = info.get("out_shape", info.get("shape", net.output_shape if act is None else (layer.n_post,)))
    entry = {"index": k, "inputs": layer.n_in, "outputs": layer.n_out, "outputs_after_activation": layer.n_post,
             "reads": reads, "pre_activation_shape": list(info.get("shape", (layer.n_out,))),
             "output_shape": list(out_shape), "activation": act.describe() if act else "none (output)",
             "activation_kind": act.kind if act else None,
             "weights": {"nonzeros": int(layer.weight.nnz if is_sparse(layer.weight) else np.count_nonzero(layer.weight)),
                         "sparse": is_sparse(layer.weight)},
             "onnx_ops": list(info.get("ops", ()))}
    if act is not None and act.kind == "max":
        entry["windows"] = {"count": int(act.groups.shape[0]), "max_size": int(act.groups.shape[1])}
    return entry


def info_summary(net, model: str, load_s: float) -> dict:
    """What ``verifier info`` reports about a loaded network (its ``--json`` object)."""
    return {"model": model, "input_shape": list(net.input_shape), "output_shape": list(net.output_shape),
            "inputs": net.n_inputs, "outputs": net.n_outputs, "dag": not net.is_chain,
            "layers": [_layer_entry(net, k) for k in range(len(net.layers))],
            "parameters": net.n_parameters, "neurons": net.n_neurons, "opset": net.meta.get("opset"),
            "load_s": round(load_s, 4)}


def _op_types(labels) -> str:
    """``Conv 'a', Conv 'b', Add 'c'`` -> ``Conv x2, Add`` (the operators behind a layer)."""
    types = [str(label) if str(label).startswith("(") else str(label).split(" ", 1)[0] for label in labels]
    runs: list[list] = []
    for t in types:
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    return ", ".join(t if n == 1 else f"{t} x{n}" for t, n in runs)


def print_info(summary: dict) -> None:
    s = summary
    click.echo(f"model        {s['model']}")
    click.echo(f"input shape  {s['input_shape']}  ({s['inputs']} values)")
    click.echo(f"output shape {s['output_shape']}  ({s['outputs']} values)")
    click.echo(f"opset        {s['opset']}")
    kind = "a DAG: layers read the input or earlier layers' outputs" if s["dag"] else "a chain"
    click.echo(f"layers       {len(s['layers'])} ({kind})")
    click.echo(f"  {'#':>3}  {'reads':<22} {'in':>6} -> {'pre':<6} {'output shape':<18} {'activation':<34} onnx")
    for e in s["layers"]:
        reads = ", ".join(r["name"] for r in e["reads"])
        click.echo(f"  {e['index']:>3}  {reads:<22} {e['inputs']:>6} -> {e['outputs']:<6} "
                   f"{e['output_shape']!s:<18} {e['activation']:<34} {_op_types(e['onnx_ops'])}".rstrip())
    click.echo(f"parameters   {s['parameters']}")
    click.echo(f"neurons      {s['neurons']} (with an activation)")


def certificate_line(info: dict | None) -> str:
    """One line on the certificate of a run (``stats["certificate"]``): where it went, or why there is none."""
    if not info:
        return "certificate: none written"
    if info.get("written"):
        return (f"certificate ({info.get('verdict')}) written to {info['path']}: {info.get('nodes', 0)} nodes, "
                f"{info.get('leaves', 0)} leaves, {info.get('bytes', 0)} bytes, {info.get('certify_s', 0):.2f} s")
    return f"certificate: none written ({info.get('reason') or 'no reason given'})"
