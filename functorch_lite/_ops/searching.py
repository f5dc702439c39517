"""Searching functions of the standard: where, argmax, argmin, nonzero, searchsorted, count_nonzero."""

from __future__ import annotations

import builtins
from typing import Any

from .. import _dtypes as _dtypes
from .._core.tensor import Tensor
from .._errors import DataDependentShapeError
from ._base import Primitive, as_tensor, bind, normalize_axis, scalar_types
from ._rules import move_bdim_to_front

__all__ = ["where", "argmax", "argmin", "nonzero", "searchsorted", "count_nonzero"]


where_p = Primitive("where", lambda xp, c, x, y: xp.where(c, x, y))


def _where_jvp(ts: Any, out: Any, c: Any, x: Any, y: Any) -> Any:
    _, tx, ty = ts
    if tx is None and ty is None:
        return None
    zeros_like = _creation.zeros_like

    if tx is None:
        tx = zeros_like(out)
    if ty is None:
        ty = zeros_like(out)
    return where(c, tx, ty)


where_p.jvp = _where_jvp
where_p.vjp = lambda g, out, c, x, y: (None, lambda: where(c, g, 0.0), lambda: where(c, 0.0, g))


def _where_batch(n: int, vals: Any, dims: Any) -> Any:
    elementwise_batch = _elementwise.elementwise_batch

    return bind(where_p, elementwise_batch(n, vals, dims)[0], {}), 0


where_p.batch = _where_batch


def where(condition: Any, x1: Any, x2: Any, /) -> Tensor:
    """Elements of ``x1`` where ``condition`` is True, else of ``x2`` (broadcasting).

    Example:
        >>> import functorch_lite as fl
        >>> fl.where(fl.asarray([True, False]), 1.0, 2.0).tolist()
        [1.0, 2.0]
    """
    prep_binary = _elementwise.prep_binary

    c = as_tensor(condition, "where")
    if c.dtype.kind != "b":
        astype = _ops_dtypes.astype
        D = _dtypes

        c = astype(c, D.bool_)
    if isinstance(x1, scalar_types) and isinstance(x2, scalar_types):
        x1 = as_tensor(x1, "where", like=None)
    x1, x2 = prep_binary("where", x1, x2)
    if isinstance(x1, scalar_types):
        x1 = as_tensor(x1, "where", like=x2)
    if isinstance(x2, scalar_types):
        x2 = as_tensor(x2, "where", like=x1)
    return bind(where_p, (c, x1, x2), {})


def _arg_reduce(name: str) -> Any:
    prim = Primitive(
        name,
        lambda xp, x, *, axis, keepdims, _n=name: getattr(xp, _n)(x, axis=axis, keepdims=keepdims),
        differentiable=False,
    )

    def batch(n: int, vals: Any, dims: Any, *, axis: Any, keepdims: builtins.bool) -> Any:
        reshape = _manipulation.reshape

        x = move_bdim_to_front(vals[0], dims[0])
        if axis is None:
            r = bind(prim, (reshape(x, (n, -1)),), {"axis": 1, "keepdims": False})
            if keepdims:
                r = reshape(r, (n,) + (1,) * (x.ndim - 1))
            return r, 0
        return bind(prim, (x,), {"axis": axis + 1, "keepdims": keepdims}), 0

    prim.batch = batch

    def op(x: Any, /, *, axis: int | None = None, keepdims: builtins.bool = False) -> Tensor:
        x = as_tensor(x, name)
        ax = None if axis is None else normalize_axis(axis, x.ndim, name)
        if x.size == 0:
            raise ValueError(f"{name}: attempt to take the {name} of an empty array.")
        return bind(prim, (x,), {"axis": ax, "keepdims": keepdims})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        f"Index of the {'largest' if name == 'argmax' else 'smallest'} element along ``axis`` "
        f"(of the flattened array when None).\n\nExample:\n    >>> import functorch_lite as fl\n"
        f"    >>> int(fl.{name}(fl.asarray([1.0, 3.0, 2.0])))\n    {1 if name == 'argmax' else 0}\n"
    )
    return op


argmax = _arg_reduce("argmax")
argmin = _arg_reduce("argmin")


nonzero_p = Primitive("nonzero", lambda xp, x: tuple(xp.nonzero(x)), multiple_results=True, differentiable=False)


def _data_dependent_batch(name: str, alt: str) -> Any:
    def rule(n: int, vals: Any, dims: Any, **p: Any) -> Any:
        raise DataDependentShapeError(
            f"{name}: its output shape depends on the values, which cannot be batched under vmap. Use {alt} instead."
        )

    return rule


nonzero_p.batch = _data_dependent_batch("nonzero", "where(cond, x, y) or a boolean mask multiplied in")


def nonzero(x: Any, /) -> tuple[Tensor, ...]:
    """Indices of the non-zero elements, one index array per axis.

    Example:
        >>> import functorch_lite as fl
        >>> fl.nonzero(fl.asarray([0, 3, 0, 4]))[0].tolist()
        [1, 3]
    """
    x = as_tensor(x, "nonzero")
    if x.ndim == 0:
        raise ValueError("nonzero: zero-dimensional arrays are not allowed; reshape to (1,) first.")
    return bind(nonzero_p, (x,), {})


searchsorted_p = Primitive(
    "searchsorted",
    lambda xp, x1, x2, *, side, sorter=None: xp.searchsorted(x1, x2, side=side),
    differentiable=False,
)


def _searchsorted_batch(n: int, vals: Any, dims: Any, *, side: str, sorter: Any = None) -> Any:
    # Per example, the insertion index of v is the number of elements of the sorted row that are
    # < v (side="left") or <= v (side="right"): one broadcast comparison and a sum, no loop.
    # x1 (n, m) -> (n, 1, ..., 1, m); x2 (n, *vs) -> (n, *vs, 1); compare, sum the last axis.
    # NOTE: this costs O(n * |v| * m) memory instead of a binary search's O(n * |v|).
    D = _dtypes
    astype = _ops_dtypes.astype
    less = _elementwise.less
    less_equal = _elementwise.less_equal
    expand_dims = _manipulation.expand_dims
    reshape = _manipulation.reshape
    _sum = _reduction.sum

    x1 = move_bdim_to_front(vals[0], dims[0])
    x2 = move_bdim_to_front(vals[1], dims[1])
    if dims[1] is None:  # an unbatched x2 broadcasts against the batched rows
        x2 = expand_dims(x2, axis=0)
    vrank = x2.ndim - 1
    rows = reshape(x1, (n if dims[0] is not None else 1,) + (1,) * vrank + (x1.shape[-1],))
    below = (less if side == "left" else less_equal)(rows, expand_dims(x2, axis=-1))
    return _sum(astype(below, D.int64), axis=-1), 0


searchsorted_p.batch = _searchsorted_batch


def searchsorted(x1: Any, x2: Any, /, *, side: str = "left", sorter: Any = None) -> Tensor:
    """Indices at which to insert ``x2`` into the sorted 1-d ``x1`` to keep it sorted.

    Example:
        >>> import functorch_lite as fl
        >>> fl.searchsorted(fl.asarray([1.0, 2.0, 3.0]), fl.asarray([2.5])).tolist()
        [2]
    """
    take = _indexing.take

    a = as_tensor(x1, "searchsorted")
    v = as_tensor(x2, "searchsorted", like=a)
    if a.ndim != 1:
        raise ValueError(f"searchsorted: x1 must be 1-dimensional; got shape {a.shape}.")
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right'; got {side!r}.")
    if sorter is not None:
        a = take(a, as_tensor(sorter, "searchsorted"), axis=0)
    if v.dtype is not a.dtype:
        result_type = _elementwise.result_type
        astype = _ops_dtypes.astype

        dt = result_type(a, v)
        a, v = astype(a, dt), astype(v, dt)
    return bind(searchsorted_p, (a, v), {"side": side})


def count_nonzero(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False) -> Tensor:
    """Number of non-zero elements along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> int(fl.count_nonzero(fl.asarray([0, 1, 2])))
        2
    """
    D = _dtypes
    astype = _ops_dtypes.astype
    not_equal = _elementwise.not_equal
    _sum = _reduction.sum

    x = as_tensor(x, "count_nonzero")
    return _sum(astype(not_equal(x, 0), D.int64), axis=axis, keepdims=keepdims)


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import creation as _creation  # noqa: E402
from . import dtypes as _ops_dtypes  # noqa: E402
from . import elementwise as _elementwise  # noqa: E402
from . import indexing as _indexing  # noqa: E402
from . import manipulation as _manipulation  # noqa: E402
from . import reduction as _reduction  # noqa: E402
