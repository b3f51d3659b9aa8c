"""Mutations of a certificate document, for the checker's mutation tests and benchmark.

Each mutant changes one thing: a number (a multiplier, a slope, a split point, a box bound, a
spec row), the tree (a dropped subtree or closing, swapped children, a split moved to another
input or neuron) or the files' hashes. Many mutants are wrong certificates; some are still valid
(a split moved inside a box that bounds close anyway, a loosened multiplier): the caller checks
those another way.
"""

from __future__ import annotations

import base64
import copy

import numpy as np

KINDS = ("drop subtree", "drop closing", "swap children", "move split", "split other input or neuron",
         "scale multiplier", "zero multiplier", "other row", "change slopes", "change beta", "shrink box",
         "move box", "change spec row", "model hash", "spec hash")


def _nodes(doc: dict) -> list[dict]:
    out = []
    for case in doc.get("cases", []):
        for tree in case.get("trees", []):
            stack = [tree["root"]]
            while stack:
                n = stack.pop()
                out.append(n)
                stack.extend(n.get("children", []))
    return out


def mutate(doc: dict, kind: str, rng: np.random.Generator) -> dict | None:
    """One mutant of ``kind`` (None when the certificate has nothing to mutate that way)."""
    m = copy.deepcopy(doc)
    nodes = _nodes(m)
    inner = [n for n in nodes if "split" in n]
    closing = [(n, k) for n in nodes for k, ev in (n.get("close") or {}).items() if "lam" in ev]
    pick = lambda seq: seq[int(rng.integers(len(seq)))] if seq else None
    case = m["cases"][0] if m.get("cases") else None
    if kind == "drop subtree" and inner:
        pick(inner)["children"][int(rng.integers(2))] = {"bounds": False, "close": {}}
    elif kind == "drop closing" and closing:
        n, k = pick(closing)
        del n["close"][k]
    elif kind == "swap children" and inner:
        n = pick(inner)
        n["children"] = n["children"][::-1]
    elif kind == "move split" and inner:
        n = pick(inner)
        n["split"]["at"] = float(n["split"]["at"]) + float(rng.choice([-1, 1])) * 10.0 ** rng.uniform(-3, 0)
    elif kind == "split other input or neuron" and inner:
        s = pick(inner)["split"]
        if "input" in s:
            s["input"] = (s["input"] + 1) % len(case["lower"])
        else:
            s["neuron"][1] += 1
    elif kind in ("scale multiplier", "zero multiplier", "other row") and closing:
        n, k = pick(closing)
        lam = n["close"][k]["lam"]
        j = int(rng.integers(len(lam)))
        if kind == "scale multiplier":
            lam[j][1] *= float(rng.choice([0.5, 2.0, 1e-3]))
        elif kind == "zero multiplier":
            lam[j][1] = 0.0
        else:
            lam[j][0] += 1
    elif kind == "change slopes":
        evs = [ev for n in nodes for ev in (n.get("close") or {}).values() if ev.get("alpha")]
        if not evs:
            return None
        alpha = pick(evs)["alpha"]
        key = pick(sorted(alpha))
        v = np.frombuffer(base64.b64decode(alpha[key]["f64"]), "<f8").copy()
        v[:] = 1.0 - v  # the other end of the range
        alpha[key]["f64"] = base64.b64encode(v.astype("<f8").tobytes()).decode()
    elif kind == "change beta":
        evs = [ev for n in nodes for ev in (n.get("close") or {}).values() if ev.get("beta")]
        if not evs:
            return None
        beta = pick(evs)["beta"]
        pairs = beta[pick(sorted(beta))]
        if not pairs:
            return None
        pairs[int(rng.integers(len(pairs)))][1] = 0.0
    elif kind == "shrink box" and case:
        i = int(rng.integers(len(case["lower"])))
        case["lower"][i] += 0.25 * (case["upper"][i] - case["lower"][i])
        if case["upper"][i] == case["lower"][i]:
            return None
    elif kind == "move box" and case:
        i = int(rng.integers(len(case["lower"])))
        w = case["upper"][i] - case["lower"][i] or 1.0
        case["lower"][i] += 0.5 * w
        case["upper"][i] += 0.5 * w
    elif kind == "change spec row" and case and case["disjuncts"] and case["disjuncts"][0]:
        case["disjuncts"][0][0]["rhs"] += 0.5
    elif kind == "model hash":
        m["model"]["sha256"] = "0" * 64
    elif kind == "spec hash":
        m["spec"]["sha256"] = "f" * 64
    else:
        return None
    return m
