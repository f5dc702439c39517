"""``functorch_lite.nn.functional``: PyTorch's functional layer API, built from primitives.

Example:
    >>> import functorch_lite as fl
    >>> from functorch_lite.nn import functional as F
    >>> F.relu(fl.asarray([-1.0, 1.0])).tolist()
    [0.0, 1.0]
"""

from __future__ import annotations

import importlib as _importlib
import importlib.util as _util

from . import _activations, _basic, _losses
from ._activations import *  # noqa: F403
from ._basic import *  # noqa: F403
from ._losses import *  # noqa: F403

__all__ = [*_activations.__all__, *_basic.__all__, *_losses.__all__]

# Conv, pooling, recurrent, attention and upsampling ops live in sibling modules;
# each is re-exported when present.
for _name in ("_conv", "_pool", "_recurrent", "_attention", "_upsample"):
    if _util.find_spec(f"{__name__}.{_name}") is None:
        continue
    _mod = _importlib.import_module(f"{__name__}.{_name}")
    for _sym in getattr(_mod, "__all__", ()):
        globals()[_sym] = getattr(_mod, _sym)
        if _sym not in __all__:
            __all__.append(_sym)
del _name
