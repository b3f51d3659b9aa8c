"""Old import path of ``verifier.io.replay`` (onnxruntime replay): this name is the same module object, so
attribute access and monkeypatching reach the real module."""

import sys

from .io import replay as _module

sys.modules[__name__] = _module
