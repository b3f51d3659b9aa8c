"""MILP / LP encodings of a network over a box (``model``: the solver-neutral CSR MILP and row
builder; ``encoding``: the big-M encoding; ``triangle``: the compact LP of input splitting) and the
solver back-ends (``solvers``). Depends on the core modules only (not on ``verifier.bounds``)."""
