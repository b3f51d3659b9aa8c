"""Old import path of ``verifier.milp.solvers.highs`` (HiGHS in-process LPs and MILPs): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .milp.solvers import highs as _module

sys.modules[__name__] = _module
