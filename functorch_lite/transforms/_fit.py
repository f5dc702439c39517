"""Fitting a tangent or cotangent to its primal: shape (broadcast / unbroadcast) and dtype, once, in the engine."""

from __future__ import annotations

from typing import Any

from .._core.tensor import Tensor, wrap
from .._ops import creation as _creation
from .._ops import dtypes as _ops_dtypes
from .._ops import elementwise as _elementwise
from .._ops import manipulation as _manipulation
from .._ops import reduction as _reduction

__all__ = ["fit_cotangent", "fit_tangent"]


def _unbroadcast(c: Tensor, shape: tuple[int, ...]) -> Tensor:
    reshape = _manipulation.reshape
    _sum = _reduction.sum

    cs = c.shape
    lead = len(cs) - len(shape)
    axes = list(range(lead))
    for i, s in enumerate(shape):
        if s == 1 and cs[lead + i] != 1:
            axes.append(lead + i)
    if axes:
        c = _sum(c, axis=tuple(axes), keepdims=False)
    if not _same_shape(c.shape, shape):
        c = reshape(c, shape)
    return c


def _same_shape(a: Any, b: Any) -> bool:
    """Shapes equal, counting two unknown (nan) sizes as equal: dask gives nan after a boolean
    mask, a new nan object per array, and nan != nan."""
    a, b = tuple(a), tuple(b)
    if a == b:
        return True
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def fit_cotangent(c: Any, like: Any) -> Any:
    """Make cotangent ``c`` match primal ``like`` in shape (sum broadcast axes) and dtype."""
    if not isinstance(c, Tensor):
        full_like = _creation.full_like

        return full_like(like, c)
    if c._t is None and like._t is None:
        ca, la = c._a, like._a
        if ca.shape == la.shape and ca.dtype is la.dtype:
            return c
    ls = like.shape
    if not _same_shape(c.shape, ls):
        c = _unbroadcast(c, ls)
    ldt = like.dtype
    if c.dtype is not ldt:
        c = _cast(c, ldt)
    return c


# (fit_cotangent's checks, written out again on purpose: fit_tangent runs once per op under jvp)
def fit_tangent(t: Any, out: Any) -> Any:
    """Make tangent ``t`` match output ``out`` in shape (broadcast) and dtype."""
    if not isinstance(t, Tensor):
        full_like = _creation.full_like

        return full_like(out, t)
    if t._t is None and out._t is None:
        ta, oa = t._a, out._a
        if ta.shape == oa.shape and ta.dtype is oa.dtype:
            return t
    os = out.shape
    if t.shape != os:
        broadcast_to = _manipulation.broadcast_to

        t = broadcast_to(t, os)
    odt = out.dtype
    if t.dtype is not odt:
        t = _cast(t, odt)
    return t


def _cast(t: Tensor, dtype: Any) -> Tensor:
    """``t`` in ``dtype``, its imaginary part dropped when ``dtype`` is not complex (what fit_cotangent
    and fit_tangent do on a dtype mismatch)."""
    astype = _ops_dtypes.astype

    if t.dtype.kind == "c" and dtype.kind != "c":
        real = _elementwise.real

        t = real(t)
    if t.dtype is not dtype:
        t = astype(t, dtype)
    return t


def _fit_raw(c: Any, pr: Any, xp: Any, fx: Any) -> Any:
    """Array-level ``fit_cotangent``: sum broadcast axes; other mismatches go through Tensors.
    (``xp``: the Tensor namespace; ``fx``: its fast stand-in, see _backend.FAST_NAMESPACES.)"""
    pa = pr._a
    shape = tuple(pa.shape)
    if c.dtype is not pa.dtype and c.dtype != pa.dtype:  # (`is` first: numpy's == is slow)
        return fit_cotangent(wrap(c, xp), pr)
    cs = c.shape
    lead = len(cs) - len(shape)
    axes = list(range(lead))
    for i, s in enumerate(shape):
        if s == 1 and cs[lead + i] != 1:
            axes.append(lead + i)
    if axes:
        c = fx.sum(c, axis=tuple(axes))
    cs = tuple(c.shape)
    if cs != shape and not _same_shape(cs, shape):
        c = fx.reshape(c, shape)
    return c
