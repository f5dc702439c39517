"""``functorch_lite.nn.functional``: PyTorch's functional layer API, built from primitives.

Example:
    >>> import functorch_lite as fl
    >>> from functorch_lite.nn import functional as F
    >>> F.relu(fl.asarray([-1.0, 1.0])).tolist()
    [0.0, 1.0]
"""

from __future__ import annotations

from . import _activations, _attention, _basic, _conv, _losses, _pool, _positional, _recurrent, _upsample
from ._activations import *  # noqa: F403
from ._attention import *  # noqa: F403
from ._basic import *  # noqa: F403
from ._conv import *  # noqa: F403
from ._losses import *  # noqa: F403
from ._pool import *  # noqa: F403
from ._positional import *  # noqa: F403
from ._recurrent import *  # noqa: F403
from ._upsample import *  # noqa: F403

__all__ = [
    *_activations.__all__,
    *_basic.__all__,
    *_losses.__all__,
    *_conv.__all__,
    *_pool.__all__,
    *_recurrent.__all__,
    *_attention.__all__,
    *_upsample.__all__,
    *_positional.__all__,
]
