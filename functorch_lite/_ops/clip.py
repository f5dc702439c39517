"""``clip`` of the standard (2023.12): clamp each element of ``x`` to ``[min, max]``.

A primitive whose impl is the backend's ``clip``. The result keeps the dtype
of ``x`` (bounds are cast to it) and may broadcast to the shape of array
bounds. Gradients: ``x`` gets the cotangent where the result equals ``x``
(inside the closed interval, as in PyTorch), an array bound where the result
took that bound's value.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from .. import _dtypes as D
from .._core.tensor import Tensor
from .._errors import DTypeError
from ._base import Primitive, as_tensor, bind

__all__ = ["clip"]


def _clip_impl(xp: Any, x: Any, lo: Any, hi: Any) -> Any:
    return xp.clip(x, lo, hi)


clip_p = Primitive("clip", _clip_impl)


def _masks(out: Any, x: Any, lo: Any, hi: Any) -> tuple[Any, Any, Any]:
    """Where the result is ``x``, ``lo`` and ``hi`` (disjoint; ties go to x, then lo)."""
    from .elementwise import equal, logical_and, logical_not

    mx = equal(out, x)
    mlo = mhi = None
    if lo is not None:
        mlo = logical_and(equal(out, lo), logical_not(mx))
    if hi is not None:
        taken = mx if mlo is None else mx | mlo
        mhi = logical_and(equal(out, hi), logical_not(taken))
    return mx, mlo, mhi


def _clip_jvp(ts: Any, out: Any, x: Any, lo: Any, hi: Any) -> Any:
    from .searching import where

    masks = _masks(out, x, lo, hi)
    r = None
    for t, m in zip(ts, masks, strict=True):
        if t is None or m is None:
            continue
        u = where(m, t, 0.0)
        r = u if r is None else r + u
    return r


def _clip_vjp(g: Any, out: Any, x: Any, lo: Any, hi: Any) -> Any:
    from .searching import where

    masks = []  # type: ignore[var-annotated]

    def mask(i: int) -> Any:
        if not masks:
            masks.extend(_masks(out, x, lo, hi))
        return masks[i]

    return (
        lambda: where(mask(0), g, 0.0),
        None if not isinstance(lo, Tensor) else (lambda: where(mask(1), g, 0.0)),
        None if not isinstance(hi, Tensor) else (lambda: where(mask(2), g, 0.0)),
    )


def _clip_batch(n: int, vals: Any, dims: Any) -> Any:
    from .elementwise import elementwise_batch

    return bind(clip_p, tuple(elementwise_batch(n, vals, dims)[0]), {}), 0


clip_p.jvp = _clip_jvp
clip_p.vjp = _clip_vjp
clip_p.batch = _clip_batch


def _bound(b: Any, x: Tensor, which: str) -> Any:
    """A bound as None or a Tensor of x's dtype (Python scalars outside x's range become None
    or the range's end; a float bound of an integer x is rounded inwards)."""
    from .dtypes import astype, iinfo

    if b is None:
        return None
    kind = x.dtype.kind
    if isinstance(b, (builtins.bool, int, float)) and not isinstance(b, builtins.bool):
        if kind in "iu":
            if isinstance(b, float):
                if math.isnan(b) or (math.isinf(b) and (b > 0) == (which == "min")):
                    raise DTypeError(
                        f"clip: {which}={b!r} cannot bound an integer array of dtype {x.dtype.name}; "
                        "pass a finite bound, or None for no bound."
                    )
                if math.isinf(b):
                    return None
                b = math.ceil(b) if which == "min" else math.floor(b)
            info = iinfo(x.dtype)
            if which == "min" and b <= info.min or which == "max" and b >= info.max:
                return None
            b = builtins.min(builtins.max(b, info.min), info.max)
        return as_tensor(b, "clip", like=x)
    if isinstance(b, builtins.bool) or isinstance(b, complex):
        raise DTypeError(f"clip: {which} must be a real number, a real array or None; got {b!r}.")
    t = as_tensor(b, "clip")
    bk = t.dtype.kind
    if bk not in "iuf" or (kind == "f") != (bk == "f"):
        raise DTypeError(
            f"clip: {which} has dtype {t.dtype.name} but x has dtype {x.dtype.name}; give the bound "
            f"the kind of x (cast it with astype(bound, {x.dtype.name}))."
        )
    if t.dtype is not x.dtype:
        t = astype(t, x.dtype)
    return t


def clip(x: Any, /, min: Any = None, max: Any = None) -> Tensor:
    """Clamp each element of ``x`` to ``[min, max]`` (either bound may be None).

    Args:
        x: a real-valued array.
        min: lower bound: a Python number, an array broadcastable with ``x``, or None.
        max: upper bound: a Python number, an array broadcastable with ``x``, or None.

    Returns:
        The clamped array, with the dtype of ``x`` (and the broadcast shape of all three).
        It is differentiable in ``x`` (gradient 1 inside the interval, 0 outside) and in
        array bounds (gradient 1 where the bound was taken).

    Example:
        >>> import functorch_lite as fl
        >>> fl.clip(fl.asarray([-2.0, 0.5, 3.0]), 0.0, 1.0).tolist()
        [0.0, 0.5, 1.0]
    """
    x = as_tensor(x, "clip")
    if x.dtype.kind not in "iuf":
        raise DTypeError(
            f"clip: x must have a real-valued dtype; got {x.dtype.name}. "
            + (
                "Cast booleans with astype(x, int64) first."
                if x.dtype is D.bool_
                else "Clip real(x) and imag(x) separately."
            )
        )
    lo = _bound(min, x, "min")
    hi = _bound(max, x, "max")
    if lo is None and hi is None:
        return x
    return bind(clip_p, (x, lo, hi), {})
