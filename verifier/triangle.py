"""Old import path of ``verifier.milp.triangle`` (the compact triangle LP): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .milp import triangle as _module

sys.modules[__name__] = _module
