"""Activation functions (``torch.nn.functional`` names and arguments), in stable forms.

Every function is composed from primitives, so it differentiates and batches.
``erf`` is the one new primitive (for the exact GELU): the array API standard
has no erf, and composing a series gives the wrong derivative at its seams.
"""

from __future__ import annotations

import math
from typing import Any

import functorch_lite as fl

from ..._core.engine import Primitive, bind
from ..._core.tensor import Tensor
from ..._errors import ConfigError
from ..._ops.elementwise import relu as _relu

__all__ = [
    "erf",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "softplus",
    "softsign",
    "sigmoid",
    "log_sigmoid",
    "logsigmoid",
    "hardtanh",
    "hardswish",
    "hardsigmoid",
    "tanh",
    "tanhshrink",
    "softmax",
    "softmin",
    "log_softmax",
    "logsumexp",
    "glu",
    "prelu",
]

_SQRT_PI = math.sqrt(math.pi)


# ------------------------------------------------------------------------------------------------
# erf: a primitive (impl from array-API functions; exact derivative 2/sqrt(pi) exp(-x^2))
# ------------------------------------------------------------------------------------------------
def _erf_impl(xp: Any, x: Any) -> Any:
    # |x| < 2.5: erf(z) = 2/sqrt(pi) e^{-z^2} sum 2^n z^{2n+1} / (2n+1)!!  (positive terms, no cancellation)
    # |x| >= 2.5: erfc(z) by its continued fraction; both to ~1 ulp in float64.
    small_n, cf_k = (40, 40) if x.dtype == xp.float64 else (24, 16)
    ax = xp.abs(x)
    cut = xp.asarray(2.5, dtype=x.dtype)
    z = xp.minimum(ax, cut)
    z2 = 2.0 * z * z
    acc = xp.ones_like(z)
    for n in range(small_n, 0, -1):
        acc = 1.0 + acc * z2 / (2 * n + 1)
    small = (2.0 / _SQRT_PI) * xp.exp(-z * z) * z * acc
    w = xp.maximum(ax, cut)
    f = w
    for k in range(cf_k, 0, -1):
        f = w + (k / 2.0) / f
    large = 1.0 - xp.exp(-w * w) / (_SQRT_PI * f)
    r = xp.where(ax < cut, small, large)
    return xp.where(x < 0, -r, r)


erf_p = Primitive("erf", _erf_impl)


def _erf_deriv(x: Tensor) -> Tensor:
    return (2.0 / _SQRT_PI) * fl.exp(-(x * x))


erf_p.jvp = lambda ts, out, x: ts[0] * _erf_deriv(x)
erf_p.vjp = lambda g, out, x: (g * _erf_deriv(x),)


def _erf_batch(n: int, vals: Any, dims: Any) -> Any:
    return bind(erf_p, (vals[0],), {}), dims[0]


erf_p.batch = _erf_batch


def erf(input: Tensor) -> Tensor:
    """The error function, elementwise (to about one ulp).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> round(F.erf(fl.asarray(1.0, dtype=fl.float64)).item(), 10)
        0.8427007929
    """
    x = _t(input)
    if x.dtype.kind != "f":
        raise ConfigError(f"erf: input must be real floating; got dtype {x.dtype.name}.")
    return bind(erf_p, (x,), {})


# ------------------------------------------------------------------------------------------------
def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else fl.asarray(x)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as in PyTorch.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.relu(fl.asarray([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    return _relu(input if input.__class__ is Tensor else _t(input))  # a primitive: one compare in its vjp


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """Clamp to [min_val, max_val]; gradient 1 strictly inside, 0 elsewhere (PyTorch's).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.hardtanh(fl.asarray([-2.0, 0.5, 3.0])).tolist()
        [-1.0, 0.5, 1.0]
    """
    if min_val > max_val:
        raise ConfigError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val}).")
    x = _t(input)
    inside = fl.logical_and(x > min_val, x < max_val)
    return fl.where(inside, x, fl.where(x <= min_val, min_val, max_val))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.relu6(fl.asarray([-1.0, 7.0])).tolist()
        [0.0, 6.0]
    """
    return hardtanh(input, 0.0, 6.0)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, negative_slope * x otherwise.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.leaky_relu(fl.asarray([-1.0, 2.0]), 0.1).tolist()
        [-0.10000000149011612, 2.0]
    """
    x = _t(input)
    return fl.where(x > 0, x, x * negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.elu(fl.asarray([0.0, 1.0])).tolist()
        [0.0, 1.0]
    """
    x = _t(input)
    neg = fl.where(x > 0, 0.0, x)  # NOTE: keeps exp finite (and its gradient) for large x
    return fl.where(x > 0, x, alpha * fl.expm1(neg))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> round(F.selu(fl.asarray(1.0)).item(), 4)
        1.0507
    """
    return _SELU_SCALE * elu(input, _SELU_ALPHA)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha * (exp(x / alpha) - 1) otherwise.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.celu(fl.asarray([2.0])).tolist()
        [2.0]
    """
    if alpha == 0:
        raise ConfigError("celu: alpha must not be 0 (it divides the input).")
    x = _t(input)
    neg = fl.where(x > 0, 0.0, x)
    return fl.where(x > 0, x, alpha * fl.expm1(neg / alpha))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (``approximate="none"``, with erf) or its tanh approximation (``"tanh"``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> round(F.gelu(fl.asarray(1.0)).item(), 4), round(F.gelu(fl.asarray(1.0), approximate="tanh").item(), 4)
        (0.8413, 0.8412)
    """
    x = _t(input)
    if approximate == "none":
        return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1.0 + fl.tanh(inner))
    raise ConfigError(f"gelu: approximate must be 'none' or 'tanh'; got {approximate!r}.")


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow (finite values and gradients at ±1e4).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.sigmoid(fl.asarray([0.0, 1e4, -1e4])).tolist()
        [0.5, 1.0, 0.0]
    """
    x = _t(input)
    pos = x >= 0
    e = fl.exp(fl.where(pos, -x, x))  # NOTE: exp of -|x| (never overflows); where keeps d/dx right at 0
    return fl.where(pos, 1.0 / (1.0 + e), e / (1.0 + e))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (swish).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.silu(fl.asarray([0.0])).tolist()
        [0.0]
    """
    x = _t(input)
    return x * sigmoid(x)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x where beta * x > threshold (PyTorch's).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.softplus(fl.asarray([0.0, 1e4, -1e4])).tolist()
        [0.6931471824645996, 10000.0, 0.0]
    """
    x = _t(input)
    bx = x * beta if beta != 1 else x
    soft = fl.logaddexp(fl.zeros_like(bx), bx)
    if beta != 1:
        soft = soft / beta
    return fl.where(bx > threshold, x, soft)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> round(F.mish(fl.asarray(1.0)).item(), 4)
        0.8651
    """
    x = _t(input)
    return x * fl.tanh(softplus(x))


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.softsign(fl.asarray([1.0])).tolist()
        [0.5]
    """
    x = _t(input)
    return x / (1.0 + fl.abs(x))


def log_sigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.log_sigmoid(fl.asarray([-1e4])).tolist()
        [-10000.0]
    """
    x = _t(input)
    return -fl.logaddexp(fl.zeros_like(x), -x)


logsigmoid = log_sigmoid


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.hardsigmoid(fl.asarray([-4.0, 0.0, 4.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    x = _t(input)
    inside = fl.logical_and(x > -3.0, x < 3.0)
    return fl.where(inside, x / 6.0 + 0.5, fl.where(x <= -3.0, 0.0, 1.0))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.hardswish(fl.asarray([-4.0, 4.0])).tolist()
        [-0.0, 4.0]
    """
    x = _t(input)
    inside = fl.logical_and(x > -3.0, x < 3.0)
    return fl.where(inside, x * (x + 3.0) / 6.0, fl.where(x <= -3.0, 0.0 * x, x))


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.tanh(fl.asarray([0.0])).tolist()
        [0.0]
    """
    return fl.tanh(_t(input))


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.tanhshrink(fl.asarray([0.0])).tolist()
        [0.0]
    """
    x = _t(input)
    return x - fl.tanh(x)


def _softmax_dim(ndim: int, dim: int | None, name: str) -> int:
    if dim is None:
        # PyTorch's legacy choice when dim is omitted
        return 0 if ndim in (0, 1, 3) else 1
    if not isinstance(dim, int) or not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ConfigError(f"{name}: dim={dim!r} is out of range for an input with {ndim} dimension(s).")
    return dim % max(ndim, 1)


def _maybe_cast(x: Tensor, dtype: Any) -> Tensor:
    if dtype is not None and x.dtype is not dtype:
        return fl.astype(x, dtype)
    return x


def logsumexp(input: Tensor, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) along ``dim``, by max subtraction (finite for any finite input).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.logsumexp(fl.asarray([1e4, 1e4]), dim=0).item()
        10000.693359375
    """
    x = _t(input)
    if x.ndim == 0:
        return x
    m = fl.stop_gradient(fl.max(x, axis=dim, keepdims=True))
    m = fl.where(fl.isfinite(m), m, 0.0)
    s = fl.log(fl.sum(fl.exp(x - m), axis=dim, keepdims=True)) + m
    if not keepdim:
        s = fl.squeeze(s, axis=tuple(range(x.ndim)) if dim is None else dim)
    return s


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along ``dim`` (max subtraction: finite at ±1e4).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.log_softmax(fl.asarray([0.0, 1e4]), dim=0).tolist()
        [-10000.0, 0.0]
    """
    x = _maybe_cast(_t(input), dtype)
    if x.ndim == 0:
        return x - x
    d = _softmax_dim(x.ndim, dim, "log_softmax")
    return x - logsumexp(x, dim=d, keepdim=True)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, with max subtraction.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.softmax(fl.asarray([0.0, 0.0]), dim=0).tolist()
        [0.5, 0.5]
    """
    x = _maybe_cast(_t(input), dtype)
    if x.ndim == 0:
        return fl.ones_like(x)
    d = _softmax_dim(x.ndim, dim, "softmax")
    m = fl.stop_gradient(fl.max(x, axis=d, keepdims=True))
    m = fl.where(fl.isfinite(m), m, 0.0)
    e = fl.exp(x - m)
    return e / fl.sum(e, axis=d, keepdims=True)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """softmax(-x).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.softmin(fl.asarray([0.0, 0.0]), dim=0).tolist()
        [0.5, 0.5]
    """
    return softmax(-_t(input), dim, dtype=dtype)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b) where a, b are the two halves of ``input`` along ``dim``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.glu(fl.asarray([[1.0, 2.0, 0.0, 0.0]])).tolist()
        [[0.5, 1.0]]
    """
    x = _t(input)
    if x.ndim == 0:
        raise ConfigError("glu: needs at least one dimension to halve; got a 0-d input.")
    d = dim % x.ndim
    n = x.shape[d]
    if n % 2:
        raise ConfigError(f"glu: the size of dim {dim} must be even (it is halved); got {n}.")
    h = n // 2
    a = x[(slice(None),) * d + (slice(0, h),)]
    b = x[(slice(None),) * d + (slice(h, n),)]
    return a * sigmoid(b)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x for x > 0, weight * x otherwise; a multi-element weight applies per channel (dim 1).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.prelu(fl.asarray([-2.0, 2.0]), fl.asarray([0.25])).tolist()
        [-0.5, 2.0]
    """
    x = _t(input)
    w = _t(weight)
    if w.size > 1:
        if x.ndim < 2 and x.ndim != 1:
            raise ConfigError(
                f"prelu: a weight of {w.size} elements needs an input with a channel dim; got shape {x.shape}."
            )
        c = x.shape[1] if x.ndim >= 2 else x.shape[0]
        if w.size != c:
            raise ConfigError(f"prelu: weight has {w.size} elements but the input has {c} channels (dim 1).")
        if x.ndim >= 2:
            w = fl.reshape(w, (c,) + (1,) * (x.ndim - 2))
    elif w.ndim:
        w = fl.reshape(w, ())
    return fl.where(x > 0, x, w * x)
