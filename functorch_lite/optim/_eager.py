"""The eager fast path: an update computed on backend arrays when nothing is traced.

Every transformation is written on Tensors, so it differentiates (meta-learning
through an update), batches (vmap over optimizers) and stages (``fl.jit``). On
concrete Tensors the same arithmetic pays a dispatch per operation and a Tensor
per intermediate result. The common transformations therefore also carry an
*array function* with the same operations, in the same order and with the same
Python-float constants, on the backend arrays of namespace ``xp``: bit for bit
the Tensor path's results. A chain runs its array functions one after the other
on the arrays of one flatten; Tensors are built once, at the end.

The path is taken only when every gradient and parameter is a concrete Tensor
of float32 or float64 on one namespace, each gradient with its parameter's
dtype and shape. An array function meets the state: where a state entry is not
what it expects (a tracer, a Tensor of another dtype, a traced step count), it
raises ``Fallback`` and the update reruns on the Tensor path, which
computes it or raises the error that explains what is wrong. Nothing is mutated
before that point, so the rerun sees the inputs unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _dtypes as D
from .._backend import DTYPE_MAPS as _DTYPE_MAPS
from .._backend import FAST_NAMESPACES as _FAST_NAMESPACES
from .._core.tensor import Tensor, wrap

__all__ = ["Fallback", "ArrayFn", "enabled", "arrays_of", "array_fn", "state_array", "wrap_all"]

ArrayFn = Callable[[dict, Any, "dict | None", Any], "tuple[dict, Any]"]
"""``fn(grads, state, params, xp) -> (updates, state)`` on ``{path: backend array}`` dicts."""

_FLOATS = (D.float32, D.float64)  # dtypes whose Tensor arithmetic is the backend's, unchanged

enabled = True
"""Switch for tests: False sends every update down the Tensor path."""


class Fallback(Exception):  # noqa: N818 - a signal, not an error
    """An input the array path does not take: rerun the update on the Tensor path."""


def array_fn(update: Any) -> ArrayFn | None:
    """The array function of a transformation's ``update`` (None where it has none)."""
    return getattr(update, "_arrays", None)


def arrays_of(g: dict[str, Any], params: dict[str, Any] | None) -> tuple[dict, dict | None, Any] | None:
    """``(grad arrays, param arrays, xp)`` when the fast path applies to ``g`` and ``params``, else None.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.optim._eager import arrays_of
        >>> arrays_of({"w": fl.ones((2,))}, None)[0]["w"].shape
        (2,)
        >>> arrays_of({"w": fl.ones((2,), dtype=fl.int32)}, None) is None
        True
    """
    if not enabled or not g:
        return None
    xp = None
    natives: Any = None
    ga: dict[str, Any] = {}
    pa: dict[str, Any] | None = None if params is None else {}
    for k, t in g.items():
        if t.__class__ is not Tensor and not isinstance(t, Tensor):
            return None
        if t._t is not None:
            return None
        if xp is None:
            xp = t._xp
            natives = _DTYPE_MAPS[xp]  # native dtype -> DType (kept current by the backend)
        elif t._xp is not xp:
            return None
        a = t._a
        if natives.get(a.dtype) not in _FLOATS:
            return None
        if pa is not None:
            p = params.get(k)  # type: ignore[union-attr]
            if p is None or (p.__class__ is not Tensor and not isinstance(p, Tensor)) or p._t is not None:
                return None
            if p._xp is not xp:
                return None
            b = p._a
            if (b.dtype is not a.dtype and b.dtype != a.dtype) or b.shape != a.shape:  # (`is`: numpy's == is slow)
                return None
            pa[k] = b
        ga[k] = a
    return ga, pa, xp


def in_place_ok(xp: Any) -> bool:
    """True where an array function may overwrite the temporaries it made itself with the
    in-place operators (``t *= c``): numpy, whose in-place ufuncs round exactly as the
    out-of-place ones (other backends keep the out-of-place form)."""
    return xp in _FAST_NAMESPACES


def state_array(t: Any, xp: Any, like: Any) -> Any:
    """The array of state entry ``t``, a concrete Tensor of ``like``'s dtype and shape; else Fallback."""
    if isinstance(t, Tensor) and t._t is None and t._xp is xp:
        a = t._a
        if (a.dtype is like.dtype or a.dtype == like.dtype) and a.shape == like.shape:  # (`is`: numpy's == is slow)
            return a
    raise Fallback


def wrap_all(arrays: dict[str, Any], xp: Any) -> dict[str, Tensor]:
    """``{path: Tensor}`` around ``{path: backend array}``."""
    return {k: wrap(a, xp) for k, a in arrays.items()}
