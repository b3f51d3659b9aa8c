"""Old import path of ``verifier.milp.encoding`` (the big-M encoding): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .milp import encoding as _module

sys.modules[__name__] = _module
