"""Write the example properties of the two non-chain networks into ``specs/`` (TOML + VNN-LIB).

Run from the repository root::

    python models/write_specs.py      # rewrites specs/conv_*.{toml,vnnlib} and specs/residual_*
    python models/check_specs.py      # re-establishes their verdicts independently

The image properties fix most of the 64 pixels (``lower == upper``) and perturb a few, so they are
long to write by hand; this script states each property once and writes both formats from it.
The verdicts (``expected:``) are claims that ``check_specs.py`` re-establishes; for a violated
property the recorded counterexample is replayed here through the ONNX file with zero
tolerance before it is written, together with the outputs onnxruntime gives there.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from check_specs import OnnxRunner, parse_toml, replay

ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = ROOT / "specs"
IMG = 8
BACKGROUND, BAR = 0.125, 0.75  # exact in float32: a fixed pixel's box holds a float32 point
CONV = "conv_maxpool_detector.onnx"
RESIDUAL = "residual_stopping_distance.onnx"
STOPPING_INPUTS = ("speed v = 5 + 35*X_0 m/s", "reaction time 0.5 + 1.5*X_1 s", "friction 0.3 + 0.6*X_2",
                   "road grade 0.05*X_3")


@dataclass
class Spec:
    """One property: input box, unsafe region (OR of ANDs of ``"a >= b"`` strings), comments."""

    name: str
    network: str
    expected: str
    title: str
    text: list[str]
    lower: np.ndarray
    upper: np.ndarray
    unsafe: list[list[str]]
    counterexample: np.ndarray | None = None
    image: bool = False


def fmt(v: float) -> str:
    """A short decimal that always has a dot (TOML float, VNN-LIB real)."""
    return repr(float(round(v, 6)))


def image(bar: str | None) -> np.ndarray:
    """A clean 8x8 image: background 0.125, a bar of 0.75 on row 3 (``"h"``) or column 4 (``"v"``)."""
    img = np.full((IMG, IMG), BACKGROUND)
    if bar == "h":
        img[3, :] = BAR
    elif bar == "v":
        img[:, 4] = BAR
    return img


def free(img: np.ndarray, pixels: dict[tuple[int, int], tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Flat bounds: every pixel fixed to ``img`` except ``pixels`` ((row, col) -> (lower, upper))."""
    lo, hi = img.copy(), img.copy()
    for (r, c), (a, b) in pixels.items():
        lo[r, c], hi[r, c] = a, b
    return lo.ravel(), hi.ravel()


def not_argmax(k: int, n: int = 3) -> list[list[str]]:
    """Unsafe region "class ``k`` is not the unique argmax": OR over i != k of ``yi >= yk``."""
    return [[f"y{i} >= y{k}"] for i in range(n) if i != k]


def conv_specs() -> list[Spec]:
    """Three holds and one violated property of the bar detector."""
    h, v, blank = image("h"), image("v"), image(None)
    five = {(3, 2): (0.625, 0.875), (3, 3): (0.625, 0.875), (3, 4): (0.625, 0.875), (2, 3): (0.0, 0.25),
            (4, 3): (0.0, 0.25)}
    dead = {(0, 0): (0.0, 1.0), (7, 1): (0.0, 1.0)}
    column = {(r, 5): (0.0, 1.0) for r in range(2, 6)}
    cex_img = blank.copy()
    cex_img[2:6, 5] = 0.875
    return [
        Spec("conv_hbar_robust_5_pixels", CONV, "holds", "A horizontal bar stays horizontal when 5 pixels move",
             ["Clean image: background 0.125, row 3 at 0.75 (a horizontal bar). Three bar pixels",
              "(row 3, columns 2-4) may take any value in [0.625, 0.875] and the two pixels above and",
              "below the bar's centre (rows 2 and 4, column 3) any value in [0, 0.25]; the other 59",
              "pixels are fixed (lower == upper). Unsafe: none or vertical scores at least as high as",
              "horizontal."],
             *free(h, five), not_argmax(1), image=True),
        Spec("conv_vbar_two_dead_pixels", CONV, "holds", "A vertical bar stays vertical with two dead pixels",
             ["Clean image: background 0.125, column 4 at 0.75 (a vertical bar). Two pixels far from the",
              "bar, (0, 0) and (7, 1), may take any value in [0, 1] (stuck dark or bright); the other 62",
              "are fixed. Unsafe: none or horizontal scores at least as high as vertical."],
             *free(v, dead), not_argmax(2), image=True),
        Spec("conv_hbar_robust_all_pixels", CONV, "holds", "A horizontal bar is robust to noise of 1/32 on every pixel",
             ["Clean image: background 0.125, row 3 at 0.75. Every pixel may move by up to 0.03125",
              "(L-infinity ball of radius 1/32, all 64 inputs free). Unsafe: none or vertical scores",
              "at least as high as horizontal."],
             h.ravel() - 0.03125, h.ravel() + 0.03125, not_argmax(1), image=True),
        Spec("conv_blank_four_free_pixels", CONV, "violated", "A blank image stays blank when 4 pixels of a column change (false claim)",
             ["Background-only image (all pixels 0.125); four pixels of column 5 (rows 2-5) may take",
              "any value in [0, 1]. Claim: the prediction stays none. This is false: lit up, the",
              "four pixels form a short vertical bar. Unsafe: horizontal or vertical scores at least",
              "as high as none."],
             *free(blank, column), [["y1 >= y0"], ["y2 >= y0"]], cex_img.ravel(), image=True),
    ]


def residual_specs() -> list[Spec]:
    """Three holds and one violated property of the stopping-distance regressor."""
    full_lo, full_hi = np.array([0.0, 0.0, 0.0, -1.0]), np.array([1.0, 1.0, 1.0, 1.0])
    slow_hi = np.array([0.2, 1.0, 1.0, 1.0])
    fast_lo = np.array([0.8, 0.0, 0.0, -1.0])
    return [
        Spec("residual_slow_stops_within_80m", RESIDUAL, "holds", "At up to 12 m/s the estimated stopping distance is below 80 m",
             ["Speed at most 12 m/s (43 km/h, x0 in [0, 0.2]), any reaction time, friction and grade.",
              "The true distance is at most 53.4 m there. Unsafe: y0 >= 0.8 (80 m)."],
             full_lo, slow_hi, [["y0 >= 0.8"]]),
        Spec("residual_fast_needs_over_50m", RESIDUAL, "holds", "At 33 m/s or more the estimated stopping distance exceeds 50 m",
             ["Speed at least 33 m/s (119 km/h, x0 in [0.8, 1]), any reaction time, friction and",
              "grade. The true distance is at least 74.9 m there. Unsafe: y0 <= 0.5 (50 m)."],
             fast_lo, full_hi, [["y0 <= 0.5"]]),
        Spec("residual_distance_in_range", RESIDUAL, "holds", "The estimate stays between 0 and 450 m on the whole input box",
             ["Whole input box. The true distance lies in [3.8 m, 406 m]. Unsafe: y0 <= 0 OR",
              "y0 >= 4.5 (450 m)."],
             full_lo, full_hi, [["y0 <= 0.0"], ["y0 >= 4.5"]]),
        Spec("residual_fast_stops_within_150m", RESIDUAL, "violated", "At 33 m/s or more the car stops within 150 m (false claim)",
             ["Speed at least 33 m/s (x0 in [0.8, 1]), any reaction time, friction and grade. Claim:",
              "the estimated stopping distance stays below 150 m. This is false: on a wet downhill",
              "road with a slow driver it is about 300 m. Unsafe: y0 >= 1.5."],
             fast_lo, full_hi, [["y0 >= 1.5"]], np.array([0.95, 0.9, 0.1, -0.8])),
    ]


def header(spec: Spec, mark: str, y: np.ndarray | None) -> list[str]:
    """The comment header both formats share (``#`` or ``;``)."""
    lines = [f"Property: {spec.title}", f"network: models/{spec.network}", f"expected: {spec.expected}",
             *spec.text]
    if spec.counterexample is not None:
        var = "x" if mark == "#" else "X"
        lines += [f"counterexample: {var} = [{', '.join(fmt(v) for v in spec.counterexample)}]",
                  f"  (onnxruntime, float32, gives y = [{', '.join(f'{v:.6g}' for v in y)}])"]
    if spec.image:
        lines += ["Pixel (row r, column c) is input x[8*r + c] (the [1, 1, 8, 8] input, flattened)."]
    return [f"{mark} {s}".rstrip() for s in lines]


def toml_array(values: np.ndarray, image: bool) -> str:
    if not image:
        return "[" + ", ".join(fmt(v) for v in values) + "]"
    rows = [", ".join(fmt(v) for v in values[r * IMG:(r + 1) * IMG]) for r in range(IMG)]
    return "[\n" + "\n".join(f"    {row},  # row {r}" for r, row in enumerate(rows)) + "\n]"


def to_toml(spec: Spec, y: np.ndarray | None) -> str:
    lines = header(spec, "#", y) + [f'description = "{spec.title}"', "", "[input]",
                                    f"lower = {toml_array(spec.lower, spec.image)}",
                                    f"upper = {toml_array(spec.upper, spec.image)}"]
    for block in spec.unsafe:
        lines += ["", "[[unsafe]]", "all = [" + ", ".join(f'"{c}"' for c in block) + "]"]
    return "\n".join(lines) + "\n"


def vnnlib_constraint(text: str) -> str:
    """``"y0 >= y1"`` -> ``(>= Y_0 Y_1)``; ``"y0 <= 0.5"`` -> ``(<= Y_0 0.5)``."""
    a, op, b = text.split()

    def term(t: str) -> str:
        return re.sub(r"^([xy])(\d+)$", lambda m: f"{m.group(1).upper()}_{m.group(2)}", t)

    return f"({op} {term(a)} {term(b)})"


def input_runs(spec: Spec) -> list[tuple[int, int, str]]:
    """Consecutive inputs that share one comment: (first, last, text). For images a run is a
    stretch of one row with equal bounds; otherwise every input is its own run."""
    if not spec.image:
        return [(i, i, f"Input {i}: {STOPPING_INPUTS[i]}, in [{fmt(lo)}, {fmt(hi)}]")
                for i, (lo, hi) in enumerate(zip(spec.lower, spec.upper, strict=True))]
    runs: list[tuple[int, int, str]] = []
    for i, (lo, hi) in enumerate(zip(spec.lower, spec.upper, strict=True)):
        what = f"fixed at {fmt(lo)}" if lo == hi else f"free in [{fmt(lo)}, {fmt(hi)}]"
        if runs and i % IMG and runs[-1][2] == what:
            runs[-1] = (runs[-1][0], i, what)
        else:
            runs.append((i, i, what))
    out = []
    for first, last, what in runs:
        r, c0, c1 = first // IMG, first % IMG, last % IMG
        where = (f"Input {first}: pixel ({r}, {c0})" if first == last
                 else f"Inputs {first}-{last}: row {r}, columns {c0}-{c1}")
        out.append((first, last, f"{where}, {what}"))
    return out


def to_vnnlib(spec: Spec, y: np.ndarray | None, n_out: int) -> str:
    n = len(spec.lower)
    lines = header(spec, ";", y) + [""] + [f"(declare-const X_{i} Real)" for i in range(n)] + [""]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for first, last, text in input_runs(spec):
        lines += ["", f"; {text}"]
        for i in range(first, last + 1):
            lines += [f"(assert (<= X_{i} {fmt(spec.upper[i])}))", f"(assert (>= X_{i} {fmt(spec.lower[i])}))"]
    lines += ["", "; Unsafe region (output constraints):"]
    if len(spec.unsafe) == 1:
        lines += [f"(assert {vnnlib_constraint(c)})" for c in spec.unsafe[0]]
    else:
        lines += ["(assert (or"]
        lines += ["    (and " + " ".join(vnnlib_constraint(c) for c in block) + ")" for block in spec.unsafe]
        lines += ["))"]
    return "\n".join(lines) + "\n"


def write(spec: Spec, out_dir: Path) -> None:
    """Write ``NAME.toml`` and ``NAME.vnnlib``; a counterexample must replay before it is written."""
    runner = OnnxRunner(ROOT / "models" / spec.network)
    y = None
    if spec.counterexample is not None:
        y = runner.run_file(spec.counterexample)
    toml_path = out_dir / f"{spec.name}.toml"
    toml_path.write_text(to_toml(spec, y))
    if spec.counterexample is not None:
        prop = parse_toml(toml_path, len(spec.lower), len(y))
        if not replay(prop, runner, spec.counterexample)[0]:
            toml_path.unlink()
            raise RuntimeError(f"{spec.name}: the recorded counterexample does not replay")
    n_out = len(runner(spec.lower[None])[0])
    (out_dir / f"{spec.name}.vnnlib").write_text(to_vnnlib(spec, y, n_out))


def main(argv: list[str] | None = None) -> int:
    out_dir = Path(argv[0]) if argv else SPECS_DIR
    for spec in conv_specs() + residual_specs():
        write(spec, out_dir)
        print(f"wrote {spec.name}.toml and .vnnlib ({spec.expected})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
