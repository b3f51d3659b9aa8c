"""Old import path of ``verifier.milp.solvers.cbc`` (solving a MILP through PuLP): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .milp.solvers import cbc as _module

sys.modules[__name__] = _module
