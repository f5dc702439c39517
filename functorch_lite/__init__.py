"""functorch_lite: composable grad and vmap over any array API backend, with a PyTorch-style nn.

Example:
    >>> import functorch_lite as fl
    >>> x = fl.asarray([[1.0, 2.0], [3.0, 4.0]])
    >>> fl.grad(lambda w: fl.sum(fl.tanh(x @ w)))(fl.ones((2,))).shape
    (2,)
"""

from __future__ import annotations

import builtins as _builtins

from . import _dtypes
from ._backend import (
    available_backends,
    default_backend,
    default_backend_name,
    set_default_backend,
)
from ._core import tree_util
from ._core.tensor import Tensor
from ._dtypes import (
    DType,
    complex64,
    complex128,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._namespace import *  # noqa: F403
from ._namespace import __all__ as _namespace_all
from .transforms import *  # noqa: F403
from .transforms import __all__ as _transforms_all
from . import random
from .random import manual_seed
from . import data, optim  # noqa: E402  (optim and data sit above the transforms)
from . import fft, linalg  # noqa: E402  (the array API extensions: fl.linalg, fl.fft)
from . import testing  # noqa: E402  (fl.testing.check_grads)
from . import dask  # noqa: E402  (fl.dask: cluster training; imports dask only when its functions run)
from . import export  # noqa: E402  (fl.export.save / fl.export.load: saved programs)
from . import onnx  # noqa: E402  (fl.onnx.export: ONNX models; needs the onnx extra only when called)

bool = _dtypes.bool_  # noqa: A001  (the standard's name for the bool dtype)

__version__ = "0.1.0"
__array_api_version__ = "2024.12"

__all__ = [
    "Tensor",
    "DType",
    "tree_util",
    "available_backends",
    "default_backend",
    "default_backend_name",
    "set_default_backend",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "__array_api_version__",
    "random",
    "manual_seed",
    *_errors_all,
    *_namespace_all,
    *_transforms_all,
]

del _builtins
