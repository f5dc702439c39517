"""Sorting functions of the standard: sort, argsort.

``sort`` is differentiable: its jvp gathers the tangent with the sorting
permutation, its vjp scatters the cotangent back through that permutation.
``argsort`` returns indices, which carry no gradient. Both batch by moving the
batch axis to the front and shifting ``axis``.
"""

from __future__ import annotations

import builtins
from typing import Any

from .._core.tensor import Tensor
from .._errors import DTypeError, ShapeError
from ._base import Primitive, as_tensor, bind, normalize_axis
from ._rules import batch_via_front

__all__ = ["sort", "argsort"]


def _shift(p: dict[str, Any]) -> dict[str, Any]:
    return dict(p, axis=p["axis"] + 1)


argsort_p = Primitive(
    "argsort",
    lambda xp, x, *, axis, descending, stable: xp.argsort(x, axis=axis, descending=descending, stable=stable),
    differentiable=False,
)
batch_via_front(argsort_p, _shift)

sort_p = Primitive(
    "sort",
    lambda xp, x, *, axis, descending, stable: xp.sort(x, axis=axis, descending=descending, stable=stable),
)


def _perm(x: Any, p: dict[str, Any]) -> Any:
    # The permutation that sorts x: out == take_along_axis(x, perm, axis). Ties may be ordered
    # differently from the backend's sort when stable=False; any valid permutation gives the
    # same values, so the gradient is the same up to how ties share it.
    return bind(argsort_p, (x,), p)


def _sort_jvp(ts: Any, out: Any, x: Any, **p: Any) -> Any:
    from .indexing import take_along_axis

    return take_along_axis(ts[0], _perm(x, p), axis=p["axis"])


def _scatter_along_axis(like: Any, perm: Any, g: Any, axis: int) -> Any:
    """``r`` of ``like``'s shape with ``r[..., perm[..., j], ...] = g[..., j, ...]`` along ``axis``."""
    from .creation import zeros_like
    from .indexing import _arange_like
    from .manipulation import reshape
    from .scatter import index_add

    nd = like.ndim
    key: list[Any] = []
    for d in range(nd):
        if d == axis:
            key.append(perm)
        else:
            shape = [1] * nd
            shape[d] = like.shape[d]
            key.append(reshape(_arange_like(like.shape[d], like), tuple(shape)))
    # NOTE: a scatter-add rather than an assignment: array_api_strict refuses integer-array
    # assignment, and perm is a permutation, so nothing collides.
    return index_add(zeros_like(like, dtype=g.dtype), tuple(key), g)


def _sort_vjp(g: Any, out: Any, x: Any, **p: Any) -> Any:
    return (lambda: _scatter_along_axis(x, _perm(x, p), g, p["axis"]),)


sort_p.jvp = _sort_jvp
sort_p.vjp = _sort_vjp
batch_via_front(sort_p, _shift)


def _prep(x: Any, axis: int, op: str) -> tuple[Tensor, int]:
    x = as_tensor(x, op)
    if x.dtype.kind == "c":
        raise DTypeError(
            f"{op}: complex arrays have no order; got dtype {x.dtype.name}. Sort real(x), imag(x) or abs(x) instead."
        )
    if x.ndim == 0:
        raise ShapeError(f"{op}: needs an array of at least one dimension; got a 0-d array. Reshape it to (1,).")
    return x, normalize_axis(axis, x.ndim, op)


def sort(x: Any, /, *, axis: int = -1, descending: builtins.bool = False, stable: builtins.bool = True) -> Tensor:
    """A sorted copy of ``x`` along ``axis`` (differentiable: gradients follow the elements).

    Args:
        x: a real-valued array of at least one dimension.
        axis: the axis to sort along.
        descending: sort from largest to smallest.
        stable: keep the relative order of equal elements.

    Returns:
        The sorted array, same shape and dtype as ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.sort(fl.asarray([3.0, 1.0, 2.0]), descending=True).tolist()
        [3.0, 2.0, 1.0]
    """
    x, ax = _prep(x, axis, "sort")
    return bind(sort_p, (x,), {"axis": ax, "descending": builtins.bool(descending), "stable": builtins.bool(stable)})


def argsort(x: Any, /, *, axis: int = -1, descending: builtins.bool = False, stable: builtins.bool = True) -> Tensor:
    """Indices that sort ``x`` along ``axis`` (int64; no gradient).

    Args:
        x: a real-valued array of at least one dimension.
        axis: the axis to sort along.
        descending: sort from largest to smallest.
        stable: keep the relative order of equal elements.

    Returns:
        An integer array of the shape of ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.argsort(fl.asarray([3.0, 1.0, 2.0])).tolist()
        [1, 2, 0]
    """
    x, ax = _prep(x, axis, "argsort")
    return bind(argsort_p, (x,), {"axis": ax, "descending": builtins.bool(descending), "stable": builtins.bool(stable)})
