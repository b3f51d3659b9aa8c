"""The import direction of the package, read from the source with ``ast``.

app (cli, cli_batch, batch, suite, junit, procenv) -> verify -> search -> {milp, bounds} -> core;
io -> core; bounds and milp do not import each other; checker imports nothing else of verifier. Core: errors, floatmodel, activations,
network, spec, result, budget, layer_bounds. Re-export shims (old import paths) are exempt, and so
is a module-level ``__getattr__`` that resolves moved names lazily (``spec.make_spec``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "verifier"
APP = {"app", "cli", "cli_batch", "batch", "suite", "junit", "procenv"}
CORE = {"errors", "floatmodel", "linalg", "activations", "network", "spec", "result", "budget", "layer_bounds"}
SHIMS = {"onnx_loader", "oracle", "results", "encoding", "triangle", "lp", "solve", "relax", "falsify", "bab",
         "parallel", "tighten", "query"}
#: what each group may import (besides itself)
ALLOWED = {
    "core": {"core"},
    "io": {"core"},
    "bounds": {"core"},
    "milp": {"core"},
    "search": {"core", "io", "bounds", "milp", "procenv"},  # procenv: a leaf helper without verifier imports
    "verify": {"core", "io", "bounds", "milp", "search"},
    "init": {"core", "io", "bounds", "milp", "search", "verify"},
    "checker": set(),  # the independent certificate checker imports nothing else of verifier
}


def group(parts: tuple[str, ...]) -> str:
    top = parts[0]
    if top in ("__init__",) and len(parts) == 1:
        return "init"
    if top in CORE:
        return "core"
    if top in APP:
        return "app"
    if top in ("io", "bounds", "milp", "search", "verify", "checker"):
        return top
    if top in ("options", "certifying"):  # the settings of verify and its certificates, in their own modules
        return "verify"
    if top in SHIMS:
        return "shim"
    raise AssertionError(f"module verifier.{'.'.join(parts)} is in no layer: add it to this test")


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = rel.parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield path, parts


def imports_of(path: Path, parts: tuple[str, ...]):
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    base = [] if parts == ("__init__",) else (list(parts) if is_pkg else list(parts[:-1]))
    lazy = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
            for n in ast.walk(f)}
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "verifier":
                    target = node.module.split(".")[1:]
                else:
                    continue
            else:
                up = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = up + (node.module.split(".") if node.module else [])
            names = [a.name for a in node.names]
            if node.module is None:  # from . import x
                for n in names:
                    yield tuple(target + [n])
            else:
                yield tuple(target)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "verifier":
                    yield tuple(a.name.split(".")[1:])


def test_import_direction():
    bad = []
    for path, parts in modules():
        g = group(parts if parts != ("__init__",) else ("__init__",))
        if g in ("app", "shim"):
            continue
        for target in imports_of(path, parts):
            if not target:
                continue
            tg = group(target)
            if tg == g:
                continue
            if tg == "shim":
                bad.append(f"verifier.{'.'.join(parts)} imports the old path verifier.{'.'.join(target)}")
            elif tg != g and tg not in ALLOWED[g] and not (tg == "app" and target[0] in ALLOWED[g]):
                bad.append(f"verifier.{'.'.join(parts)} ({g}) imports verifier.{'.'.join(target)} ({tg})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph: dict[tuple, set] = {}
    names = {parts for _, parts in modules()}
    for path, parts in modules():
        if group(parts) == "shim":
            continue
        deps = set()
        for t in imports_of(path, parts):
            while t and t not in names:
                t = t[:-1]
            if t and t != parts and not (len(t) < len(parts) and parts[:len(t)] == t):
                deps.add(t)
        graph[parts] = deps
    state: dict[tuple, int] = {}

    def visit(n, stack):
        state[n] = 1
        for m in graph.get(n, ()):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(".".join(x) for x in stack + [n, m]))
            if m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])


def test_wheel_contains_every_subpackage(tmp_path):
    root = PKG.parent
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation",
                               "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=240,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot build the wheel here: {exc}")
    wheels = list(tmp_path.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.skip(f"cannot build the wheel here (offline?): {proc.stderr[-300:]}")
    files = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [str(p.relative_to(root)) for p in PKG.rglob("*.py") if str(p.relative_to(root)) not in files]
    assert not missing, missing


def test_packaging_finds_every_subpackage():
    """Without building a wheel: pyproject's package finder covers every directory of the package."""
    tomllib = pytest.importorskip("tomllib")
    from setuptools import find_packages

    root = PKG.parent
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(root), include=conf["include"]))
    dirs = {".".join(p.parent.relative_to(root).parts) for p in PKG.rglob("__init__.py")}
    assert dirs <= found, sorted(dirs - found)
