"""Old import path of ``verifier.result`` (the verdict types): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from . import result as _module

sys.modules[__name__] = _module
