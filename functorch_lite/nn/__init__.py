"""functorch_lite.nn: a PyTorch-style Module API built on the transforms.

Modules are pytrees (``fl.grad(loss)(model, x)`` returns a Module of
gradients), ``nn.value_and_grad`` is MLX's, and checkpoints are safetensors.

Example:
    >>> import functorch_lite as fl
    >>> from functorch_lite import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> loss_fn = lambda x, y: nn.functional.cross_entropy(model(x), y)
    >>> loss, grads = nn.value_and_grad(model, loss_fn)(fl.ones((2, 4)), fl.asarray([0, 2]))
    >>> list(grads)
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

from . import functional, init
from ._containers import ModuleDict, ModuleList, Sequential
from ._module import Module, Parameter, is_parameter
from ._state import IncompatibleKeys, load, load_state_dict, save, state_dict
from ._transforms import functional_call, functional_call_with_state, stack_module_state, value_and_grad
from .layers import activation as _activation
from .layers import attention as _attention
from .layers import basic as _basic
from .layers import conv as _conv
from .layers import loss as _loss
from .layers import norm as _norm
from .layers import pool as _pool
from .layers import recurrent as _recurrent
from .layers import transformer as _transformer
from .layers.activation import *  # noqa: F403
from .layers.attention import *  # noqa: F403
from .layers.basic import *  # noqa: F403
from .layers.conv import *  # noqa: F403
from .layers.loss import *  # noqa: F403
from .layers.norm import *  # noqa: F403
from .layers.pool import *  # noqa: F403
from .layers.recurrent import *  # noqa: F403
from .layers.transformer import *  # noqa: F403

__all__ = [
    "functional",
    "init",
    "Module",
    "Parameter",
    "is_parameter",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "state_dict",
    "load_state_dict",
    "IncompatibleKeys",
    "save",
    "load",
    "functional_call",
    "functional_call_with_state",
    "value_and_grad",
    "stack_module_state",
    *_activation.__all__,
    *[n for n in _basic.__all__ if n != "split_key"],
    *_norm.__all__,
    *_conv.__all__,
    *_pool.__all__,
    *_recurrent.__all__,
    *_attention.__all__,
    *_transformer.__all__,
    *_loss.__all__,
]
