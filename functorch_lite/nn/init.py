"""Parameter initialisation with PyTorch's names and formulas (``torch.nn.init``).

Each ``*_`` function rebinds the given Tensor to new values (functional
mutation: the Tensor object is kept, its old array is never written) and
returns it. Random ones take an optional ``key`` (a ``fl.random`` key); with
none they draw one from the global generator (``fl.manual_seed``).
"""

from __future__ import annotations

import math
from typing import Any

from .._core.tensor import Tensor
from .._errors import ConfigError, ShapeError

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "trunc_normal_",
    "orthogonal_",
    "calculate_fan_in_and_fan_out",
]


# -- randomness through fl.random (imported lazily: it is built beside nn) ----------------------------
def _key(key: Any) -> Any:
    if key is not None:
        return key
    from .. import random as R

    return R.next_key()


def _uniform(
    key: Any, shape: tuple[int, ...], dtype: Any, low: float, high: float, like: Tensor | None = None
) -> Tensor:
    from .. import random as R

    u = R.uniform(_key(key), shape, dtype=dtype)
    return _on_backend(u * (high - low) + low, like)


def _normal(
    key: Any, shape: tuple[int, ...], dtype: Any, mean: float, std: float, like: Tensor | None = None
) -> Tensor:
    from .. import random as R

    z = R.normal(_key(key), shape, dtype=dtype)
    return _on_backend(z * std + mean, like)


def _on_backend(t: Tensor, like: Tensor | None) -> Tensor:
    if like is not None and t._xp is not like._xp:
        from .._namespace import to_backend

        t = to_backend(t, like.backend)
    return t


def _set(t: Tensor, value: Tensor, op: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"nn.init.{op}: expected a Tensor to fill; got {type(t).__name__}.")
    if t.is_tracer:
        from .._errors import TransformError

        raise TransformError(f"nn.init.{op}: cannot initialise a traced Tensor; initialise outside grad / vmap.")
    from .._ops.dtypes import astype

    if value.dtype is not t.dtype:
        value = astype(value, t.dtype)
    value = _on_backend(value, t)
    t._a, t._xp, t._t = value._a, value._xp, None
    return t


def _float_dtype(t: Tensor, op: str) -> Any:
    if t.dtype.kind not in "fc":
        raise ConfigError(f"nn.init.{op}: the Tensor must be floating; got dtype {t.dtype.name}.")
    return t.dtype


# -- fans and gains --------------------------------------------------------------------------
def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: dims 1 and 0 times the receptive field size.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.calculate_fan_in_and_fan_out(fl.zeros((4, 3, 5)))
        (15, 20)
    """
    shape = tensor.shape
    if len(shape) < 2:
        raise ShapeError(f"nn.init: fan in and fan out need a Tensor with at least 2 dimensions; got shape {shape}.")
    receptive = 1
    for s in shape[2:]:
        receptive *= s
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ConfigError(f"nn.init: mode must be 'fan_in' or 'fan_out'; got {mode!r}.")
    fi, fo = calculate_fan_in_and_fan_out(tensor)
    return fi if mode == "fan_in" else fo


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    Example:
        >>> from functorch_lite import nn
        >>> round(nn.init.calculate_gain("relu"), 4)
        1.4142
    """
    linear = (
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "sigmoid",
    )
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ConfigError(f"calculate_gain: negative_slope {param!r} is not a number.")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ConfigError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; use one of linear, conv*, sigmoid, "
        "tanh, relu, leaky_relu, selu."
    )


# -- fills ---------------------------------------------------------------------------------
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, *, key: Any = None) -> Tensor:
    """Fill with U(a, b).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> w = nn.init.uniform_(fl.zeros((100,)), -1.0, 1.0, key=fl.random.key(0))
        >>> bool(fl.all(fl.abs(w) <= 1.0))
        True
    """
    dt = _float_dtype(tensor, "uniform_")
    return _set(tensor, _uniform(key, tensor.shape, dt, a, b, tensor), "uniform_")


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, *, key: Any = None) -> Tensor:
    """Fill with N(mean, std²).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.normal_(fl.zeros((2, 3)), key=fl.random.key(0)).shape
        (2, 3)
    """
    dt = _float_dtype(tensor, "normal_")
    return _set(tensor, _normal(key, tensor.shape, dt, mean, std, tensor), "normal_")


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.constant_(fl.zeros((2,)), 0.5).tolist()
        [0.5, 0.5]
    """
    from .._ops.creation import full_like

    return _set(tensor, full_like(tensor.concrete(), val), "constant_")


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.zeros_(fl.ones((2,))).tolist()
        [0.0, 0.0]
    """
    return constant_(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.ones_(fl.zeros((2,))).tolist()
        [1.0, 1.0]
    """
    return constant_(tensor, 1)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-d Tensor with the identity matrix.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.eye_(fl.zeros((2, 3))).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.ndim != 2:
        raise ShapeError(f"nn.init.eye_: only 2-d Tensors; got shape {tensor.shape}.")
    from .._ops.creation import eye

    n, m = tensor.shape
    with _backend_of(tensor):
        e = eye(n, m, dtype=tensor.dtype)
    return _set(tensor, e, "eye_")


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-d conv weight with the Dirac delta (identity convolution).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.dirac_(fl.zeros((2, 2, 3))).sum().item()
        2.0
    """
    from .._ops.creation import zeros
    from .._ops.scatter import setitem

    nd = tensor.ndim
    if nd not in (3, 4, 5):
        raise ShapeError(f"nn.init.dirac_: only 3-, 4- or 5-d Tensors; got shape {tensor.shape}.")
    shape = tensor.shape
    if shape[0] % groups:
        raise ConfigError(f"nn.init.dirac_: dim 0 ({shape[0]}) must be divisible by groups ({groups}).")
    out_per = shape[0] // groups
    with _backend_of(tensor):
        w = zeros(shape, dtype=tensor.dtype)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(out_per, shape[1])):
            w = setitem(w, (g * out_per + d, d) + centre, 1.0)
    return _set(tensor, w, "dirac_")


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, *, key: Any = None) -> Tensor:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.xavier_uniform_(fl.zeros((3, 5)), key=fl.random.key(0)).shape
        (3, 5)
    """
    fi, fo = calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(tensor, -a, a, key=key)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, *, key: Any = None) -> Tensor:
    """Glorot normal: N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out)).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.xavier_normal_(fl.zeros((3, 5)), key=fl.random.key(0)).shape
        (3, 5)
    """
    fi, fo = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fi + fo)), key=key)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *, key: Any = None
) -> Tensor:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan).

    ``kaiming_uniform_(w, a=math.sqrt(5))`` is PyTorch's default for Linear and Conv weights.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.kaiming_uniform_(fl.zeros((3, 5)), key=fl.random.key(0)).shape
        (3, 5)
    """
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, key=key)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *, key: Any = None
) -> Tensor:
    """He normal: N(0, std²) with std = gain / sqrt(fan).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.init.kaiming_normal_(fl.zeros((3, 5)), key=fl.random.key(0)).shape
        (3, 5)
    """
    fan = _fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), key=key)


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, *, key: Any = None
) -> Tensor:
    """N(mean, std²) truncated to [a, b] (resampling the values outside).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> w = nn.init.trunc_normal_(fl.zeros((1000,)), std=1.0, a=-1.0, b=1.0, key=fl.random.key(0))
        >>> bool(fl.all(fl.abs(w) <= 1.0))
        True
    """
    from .._ops.elementwise import logical_and, maximum, minimum
    from .._ops.reduction import all as _all
    from .._ops.searching import where

    if not a < b:
        raise ConfigError(f"nn.init.trunc_normal_: need a < b; got a={a}, b={b}.")
    dt = _float_dtype(tensor, "trunc_normal_")
    from .. import random as R

    k = _key(key)
    k, sub = R.split(k)
    x = _normal(sub, tensor.shape, dt, mean, std, tensor)
    for _ in range(200):
        ok = logical_and(x >= a, x <= b)
        if bool(_all(ok)):
            break
        k, sub = R.split(k)
        x = where(ok, x, _normal(sub, tensor.shape, dt, mean, std, tensor))
    else:  # pragma: no cover - only for intervals far in a tail
        x = minimum(maximum(x, a), b)
    return _set(tensor, x, "trunc_normal_")


def orthogonal_(tensor: Tensor, gain: float = 1.0, *, key: Any = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a normal sample, times ``gain``.

    Tensors with more than 2 dimensions are flattened to (shape[0], rest).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> w = nn.init.orthogonal_(fl.zeros((3, 3), dtype=fl.float64), key=fl.random.key(0))
        >>> bool(fl.all(fl.abs(w @ w.T - fl.eye(3, dtype=fl.float64)) < 1e-9))
        True
    """
    from .._ops.manipulation import reshape

    if tensor.ndim < 2:
        raise ShapeError(f"nn.init.orthogonal_: only Tensors with 2 or more dimensions; got shape {tensor.shape}.")
    dt = _float_dtype(tensor, "orthogonal_")
    rows = tensor.shape[0]
    cols = tensor.size // rows if rows else 0
    if rows == 0 or cols == 0:
        return tensor
    flat = _normal(key, (rows, cols), dt, 0.0, 1.0, tensor)
    if rows < cols:
        flat = flat.T
    q = _orthonormal_columns(flat)
    if rows < cols:
        q = q.T
    return _set(tensor, reshape(q * gain, tensor.shape), "orthogonal_")


def _orthonormal_columns(a: Tensor) -> Tensor:
    """Q of the reduced QR decomposition of tall ``a``, signs fixed so diag(R) > 0 (as PyTorch)."""
    from .. import linalg
    from .._ops.elementwise import sign
    from .._ops.searching import where

    q, r = linalg.qr(a)
    d = sign(linalg.diagonal(r))
    return q * where(d == 0, 1.0, d)


class _backend_of:
    """Context: make new Tensors on the backend of ``t``."""

    def __init__(self, t: Tensor) -> None:
        self.name = t.backend
        self.cm: Any = None

    def __enter__(self) -> None:
        from .._backend import default_backend

        self.cm = default_backend(self.name)
        self.cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.cm.__exit__(*exc)
