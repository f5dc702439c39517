"""Fused per-parameter update math for the common optimizer rules, on backend arrays.

``scale_by_adam`` updates each parameter with a dozen elementwise operations; on small
parameters their dispatch costs more than the arithmetic. When the gradient and the
moments are concrete Tensors of one floating dtype on one backend, the same operations,
in the same order and with the same Python-float constants, run here as one non-
differentiable primitive on the arrays (so the results are bit for bit those of the
Tensor path). Anything traced (differentiating through an optimizer step, vmap over
optimizers) takes the Tensor path, which is differentiable.
"""

from __future__ import annotations

from typing import Any

from .._core.engine import Primitive, bind
from .._core.tensor import Tensor
from .._ops._rules import move_bdim_to_front

__all__ = ["adam_moments", "can_fuse"]


def _adam_impl(
    xp: Any,
    g: Any,
    m: Any,
    v: Any,
    *,
    c1: float,
    b2: float,
    c2: float,
    eps: float,
    bc2_sqrt: float,
    bc1: float,
    mul: float | None = None,
) -> Any:
    mk = m + (g - m) * c1
    vk = v * b2 + g * g * c2
    d = mk / (xp.sqrt(vk) / bc2_sqrt + eps)
    return mk, vk, d / bc1 if mul is None else d * mul


adam_p = Primitive("optim.adam_moments", _adam_impl, multiple_results=True, differentiable=False)


def _adam_batch(n: int, vals: Any, dims: Any, **params: Any) -> tuple[Any, tuple[int, int, int]]:
    front = [move_bdim_to_front(x, d, n) for x, d in zip(vals, dims, strict=True)]
    return bind(adam_p, tuple(front), params), (0, 0, 0)


adam_p.batch = _adam_batch


def can_fuse(g: Any, m: Any, v: Any) -> bool:
    """Whether ``g``, ``m``, ``v`` are concrete Tensors of one floating dtype on one backend.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.optim._fused import can_fuse
        >>> can_fuse(fl.ones((2,)), fl.zeros((2,)), fl.zeros((2,))), can_fuse(fl.ones((2,)), fl.zeros((2,)), 0.0)
        (True, False)
    """
    if not (isinstance(g, Tensor) and isinstance(m, Tensor) and isinstance(v, Tensor)):
        return False
    if g._t is not None or m._t is not None or v._t is not None:
        return False
    if not (g._xp is m._xp is v._xp):
        return False
    ga = g._a
    if not (ga.dtype == m._a.dtype == v._a.dtype and ga.shape == m._a.shape == v._a.shape):
        return False
    return g.dtype.kind == "f"


def adam_moments(
    g: Tensor,
    m: Tensor,
    v: Tensor,
    b1: float,
    b2: float,
    eps: float,
    bc2_sqrt: float,
    bc1: float,
    mul: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One Adam step's ``(m, v, direction)`` for one parameter (see ``scale_by_adam``).

    ``m + (g - m) * (1 - b1)``, ``v * b2 + g * g * (1 - b2)`` and
    ``m / (sqrt(v) / bc2_sqrt + eps) / bc1``, for inputs that `can_fuse` accepts; with ``mul``
    (a step size already divided by ``bc1``) the direction is ``m / (...) * mul`` instead.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.optim._fused import adam_moments
        >>> m, v, d = adam_moments(fl.asarray([2.0]), fl.zeros((1,)), fl.zeros((1,)), 0.9, 0.999, 1e-8, 0.001**0.5, 0.1)
        >>> round(float(d[0]), 5)
        1.0
    """
    params = {"c1": 1.0 - b1, "b2": b2, "c2": 1.0 - b2, "eps": eps, "bc2_sqrt": bc2_sqrt, "bc1": bc1}
    if mul is not None:
        params["mul"] = mul
    mk, vk, d = bind(adam_p, (g, m, v), params)
    return mk, vk, d
