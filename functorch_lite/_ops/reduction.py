"""Statistical and utility reductions: sum, prod, max, min, mean, var, std, cumulative_*, all, any, diff."""

from __future__ import annotations

import builtins
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .._core import tensor as _tensor
from .._core.tensor import Tensor
from ._base import Primitive, as_tensor, bind, check_dtype, normalize_axes, normalize_axis
from ._rules import move_bdim_to_front

_new = object.__new__

__all__ = [
    "sum",
    "prod",
    "max",
    "min",
    "mean",
    "var",
    "std",
    "cumulative_sum",
    "cumulative_prod",
    "all",
    "any",
    "diff",
]


def _expand_to(g: Any, x_shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: builtins.bool) -> Any:
    """Broadcast a reduced cotangent ``g`` back to ``x_shape``."""
    reshape = _manipulation.reshape

    if not keepdims:
        axes = range(len(x_shape)) if axis is None else axis
        shape = [1 if i in axes else s for i, s in enumerate(x_shape)]
        g = reshape(g, tuple(shape))
    if g.shape == x_shape:
        return g
    # the shapes are known to broadcast: bind directly, without broadcast_to's checks
    return bind(_manipulation.broadcast_to_p, (g,), {"shape": tuple(x_shape)})


def _shift_axis(axis: tuple[int, ...] | None, nd: int) -> tuple[int, ...]:
    return tuple(range(1, nd + 1)) if axis is None else tuple(a + 1 for a in axis)


def _reduction_batch(prim: Primitive) -> Any:
    def rule(n: int, vals: Any, dims: Any, *, axis: Any, keepdims: builtins.bool, **p: Any) -> Any:
        x = move_bdim_to_front(vals[0], dims[0])
        return bind(prim, (x,), dict(p, axis=_shift_axis(axis, x.ndim - 1), keepdims=keepdims)), 0

    return rule


_FAST: dict[Any, Any] = {}  # namespace -> its fast reducers (or None)
_FLOATS = _backend.FLOAT_NATIVES


def _fast(xp: Any) -> Any:
    r = _FAST.get(xp, 0)
    if r == 0:
        r = _FAST[xp] = _backend.fast_reducers(xp)
    return r


def _xp_reduce(fname: str) -> Any:
    def impl(xp: Any, x: Any, *, axis: Any, keepdims: builtins.bool, dtype: Any = None) -> Any:
        if dtype is None and x.dtype in _FLOATS[xp]:
            fast = _FAST.get(xp, 0)
            if fast == 0:
                fast = _fast(xp)
            if fast is not None:
                return fast[fname](x, axis=axis, keepdims=keepdims)
        kw: dict[str, Any] = {"axis": axis, "keepdims": keepdims}
        if dtype is not None:
            backend_for = _tensor.backend_for

            kw["dtype"] = backend_for(xp).native(dtype)
        return getattr(xp, fname)(x, **kw)

    return impl


# -- sum ----------------------------------------------------------------------------------
sum_p = Primitive("sum", _xp_reduce("sum"))
sum_p.jvp = lambda ts, out, x, **p: bind(sum_p, (ts[0],), p)


def _unknown(shape: Any) -> builtins.bool:
    """A shape with an unknown size (dask gives nan after a boolean mask)."""
    return builtins.any(s != s for s in shape)


def _lazy(x: Any) -> builtins.bool:
    """A concrete dask-backed Tensor: broadcasting to its shape would make one chunk of it all."""
    return x.__class__ is Tensor and x._t is None and _backend.is_lazy(x._a)


def _sum_vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: builtins.bool, dtype: Any = None) -> Any:
    # Broadcast against x itself where its shape has unknown sizes (which cannot be broadcast to)
    # or x is lazy (dask): g + zeros_like(x) takes x's chunks, and dask fuses it into one task per chunk.
    if _unknown(x.shape) or _lazy(x):
        expand_dims = _manipulation.expand_dims
        zeros_like = _creation.zeros_like

        if not keepdims:
            for a in range(x.ndim) if axis is None else sorted(axis):
                g = expand_dims(g, axis=a)
        return (g + zeros_like(x),)
    return (_expand_to(g, x.shape, axis, keepdims),)


sum_p.vjp = _sum_vjp


def _sum_avjp(xp: Any, g: Any, o: Any, ps: Any, par: Any, p: Any) -> Any:
    a = ps[0]._a
    shape = tuple(a.shape)
    # (numpy's fast namespace: sizes are known and nothing is lazy, so the checks are skipped)
    if xp.__class__ is not _NUMPY_FAST_CLS and (_unknown(shape) or _backend.is_lazy(a)):
        return None  # (the Tensor-level rule broadcasts against x)
    axis = p["axis"]
    if axis is not None and not p["keepdims"]:  # (a full reduction's 0-d g broadcasts as it is)
        g = xp.reshape(g, tuple([1 if i in axis else s for i, s in enumerate(shape)]))
    return (g if tuple(g.shape) == shape else xp.broadcast_to(g, shape),)


_NUMPY_FAST_CLS = _backend._NumpyFast


sum_p.avjp = _sum_avjp
sum_p.batch = _reduction_batch(sum_p)


def _eager_reduce(prim: Primitive, x: Tensor, axis: Any, keepdims: builtins.bool) -> Any:
    """The eager fast path of a reduction of a concrete floating Tensor; None to decline."""
    a = x._a
    xp = x._xp
    if a.dtype not in _FLOATS[xp] or (prim is not sum_p and a.size == 0):
        return None
    ax = None if axis is None else normalize_axes(axis, a.ndim, prim.name)
    t = _new(Tensor)
    t._a = prim.impl(xp, a, axis=ax, keepdims=keepdims)
    t._xp = xp
    t._t = None
    return t


def _record_reduce(prim: Primitive, x: Tensor, axis: Any, keepdims: builtins.bool, has_dtype: builtins.bool) -> Any:
    """Reverse mode's fast path for a reduction of a (floating) tracer; None to decline."""
    p = x._t
    tr = p.trace
    if tr.record1 is None or not tr.alive or p.primal._t is not None:
        return None
    a = p.primal._a
    if a.size == 0:
        return None
    ax = None if axis is None else normalize_axes(axis, a.ndim, prim.name)
    params = {"axis": ax, "keepdims": keepdims, "dtype": None} if has_dtype else {"axis": ax, "keepdims": keepdims}
    return tr.recordp(prim, p, params)


def _reduce_args(x: Any, axis: Any, op: str) -> tuple[Tensor, tuple[int, ...] | None]:
    x = as_tensor(x, op)
    return x, normalize_axes(axis, x.ndim, op)


def _accumulator(x: Tensor, dtype: Any, op: str) -> tuple[Tensor, Any]:
    """The input and result dtype of a sum or product (plain or cumulative): integers narrower
    than 64 bits and bools accumulate in int64 (uint64 for unsigned), the default integer dtypes;
    bools are cast first (some backends, array_api_strict, refuse to reduce them)."""
    dt = None if dtype is None else check_dtype(dtype, op)
    if dt is None:
        k = x.dtype
        if k.kind == "b" or (k.kind in "iu" and k.bits < 64):
            dt = D.int64 if k.kind in "ib" else D.uint64
    if x.dtype.kind == "b":
        x = _ops_dtypes.astype(x, dt if dt is not None and dt.kind != "b" else D.int64)
    return x, dt


def sum(
    x: Any, /, *, axis: int | tuple[int, ...] | None = None, dtype: Any = None, keepdims: builtins.bool = False
) -> Tensor:
    """Sum of elements along ``axis`` (all axes when None).

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.sum(fl.asarray([1.0, 2.0, 3.0])))
        6.0
    """
    if dtype is None and x.__class__ is Tensor:
        r = _eager_reduce(sum_p, x, axis, keepdims) if x._t is None else _record_reduce(sum_p, x, axis, keepdims, True)
        if r is not None:
            return r
    x, ax = _reduce_args(x, axis, "sum")
    x, dt = _accumulator(x, dtype, "sum")
    return bind(sum_p, (x,), {"axis": ax, "keepdims": keepdims, "dtype": dt})


# -- prod -----------------------------------------------------------------------------------
prod_p = Primitive("prod", _xp_reduce("prod"))


def _merge_reduced_last(x: Any, axis: tuple[int, ...] | None) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    """Move the reduced axes of x last and merge them; returns (y, perm, kept shape)."""
    permute_dims = _manipulation.permute_dims
    reshape = _manipulation.reshape

    nd = x.ndim
    axes = tuple(range(nd)) if axis is None else axis
    kept = tuple(i for i in range(nd) if i not in axes)
    perm = kept + tuple(axes)
    y = permute_dims(x, perm) if perm != tuple(range(nd)) else x
    kshape = tuple(x.shape[i] for i in kept)
    return reshape(y, kshape + (-1,)), perm, kshape


def _prod_others(x: Any, axis: tuple[int, ...] | None) -> Any:
    """For each element, the product of the other elements in its reduction group (zero-safe)."""
    ones_like = _creation.ones_like
    getitem = _indexing.getitem
    concat = _manipulation.concat
    flip = _manipulation.flip
    permute_dims = _manipulation.permute_dims
    reshape = _manipulation.reshape

    y, perm, kshape = _merge_reduced_last(x, axis)
    one = ones_like(getitem(y, (..., slice(0, 1))))
    left = concat([one, getitem(cumulative_prod(y, axis=-1), (..., slice(None, -1)))], axis=-1)
    ry = flip(y, axis=-1)
    right = flip(concat([one, getitem(cumulative_prod(ry, axis=-1), (..., slice(None, -1)))], axis=-1), axis=-1)
    others = left * right
    others = reshape(others, kshape + tuple(x.shape[i] for i in perm[len(kshape) :]))
    inv = [0] * len(perm)
    for i, a in enumerate(perm):
        inv[a] = i
    return permute_dims(others, tuple(inv)) if tuple(inv) != tuple(range(len(inv))) else others


def _prod_jvp(ts: Any, out: Any, x: Any, *, axis: Any, keepdims: builtins.bool, dtype: Any = None) -> Any:
    return sum(ts[0] * _prod_others(x, axis), axis=axis, keepdims=keepdims)


def _prod_vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: builtins.bool, dtype: Any = None) -> Any:
    return (lambda: _expand_to(g, x.shape, axis, keepdims) * _prod_others(x, axis),)


prod_p.jvp = _prod_jvp
prod_p.vjp = _prod_vjp
prod_p.batch = _reduction_batch(prod_p)


def prod(
    x: Any, /, *, axis: int | tuple[int, ...] | None = None, dtype: Any = None, keepdims: builtins.bool = False
) -> Tensor:
    """Product of elements along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.prod(fl.asarray([2.0, 3.0])))
        6.0
    """
    x, ax = _reduce_args(x, axis, "prod")
    x, dt = _accumulator(x, dtype, "prod")
    return bind(prod_p, (x,), {"axis": ax, "keepdims": keepdims, "dtype": dt})


# -- max / min ---------------------------------------------------------------------------------
def _extreme(name: str) -> Any:
    prim = Primitive(name, _xp_reduce(name))

    def vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: builtins.bool, dtype: Any = None) -> Any:
        def ct() -> Any:
            astype = _ops_dtypes.astype
            equal = _elementwise.equal

            # NOTE: ties share the gradient evenly (as JAX does).
            o = _expand_to(out, x.shape, axis, keepdims)
            mask = astype(equal(x, o), x.dtype)
            cnt = _expand_to(sum(mask, axis=axis, keepdims=keepdims), x.shape, axis, keepdims)
            return _expand_to(g, x.shape, axis, keepdims) * mask / cnt

        return (ct,)

    def jvp(ts: Any, out: Any, x: Any, *, axis: Any, keepdims: builtins.bool, dtype: Any = None) -> Any:
        astype = _ops_dtypes.astype
        equal = _elementwise.equal

        o = _expand_to(out, x.shape, axis, keepdims)
        mask = astype(equal(x, o), x.dtype)
        return sum(ts[0] * mask, axis=axis, keepdims=keepdims) / sum(mask, axis=axis, keepdims=keepdims)

    prim.vjp = vjp
    prim.jvp = jvp
    prim.batch = _reduction_batch(prim)

    def op(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False) -> Tensor:
        if x.__class__ is Tensor:
            r = (
                _eager_reduce(prim, x, axis, keepdims)
                if x._t is None
                else _record_reduce(prim, x, axis, keepdims, False)
            )
            if r is not None:
                return r
        x, ax = _reduce_args(x, axis, name)
        if x.size == 0 and _count(x, ax) == 0:  # an empty reduced group has no extremum
            raise ValueError(
                f"{name}: a reduction over zero elements has no {name}imum (shape {x.shape}, axis "
                f"{axis}); pass a non-empty array or reduce over a non-empty axis."
            )
        return bind(prim, (x,), {"axis": ax, "keepdims": keepdims})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        f"{'Largest' if name == 'max' else 'Smallest'} element along ``axis``.\n\nExample:\n"
        f"    >>> import functorch_lite as fl\n    >>> float(fl.{name}(fl.asarray([1.0, 3.0])))\n"
        f"    {3.0 if name == 'max' else 1.0}\n"
    )
    return op


max = _extreme("max")
min = _extreme("min")


# -- mean / var / std (composites) --------------------------------------------------------------
def _count(x: Tensor, axis: tuple[int, ...] | None) -> int:
    n = 1
    for i, s in enumerate(x.shape):
        if axis is None or i in axis:
            n *= s
    return n


def _lazy_count(x: Tensor, axis: tuple[int, ...] | None, keepdims: builtins.bool) -> Tensor:
    """The number of elements a reduction of ``x`` sums, counted in the graph: for sizes that are
    unknown until computed (dask's nan after a boolean mask). A constant: counted on the concrete
    value behind a tracer (the backend's own ones_like keeps the unknown chunks), in int64 (exact),
    then cast to x's dtype."""
    ones = _ops_dtypes.astype(_creation.ones_like(x.concrete() if x.__class__ is Tensor else x), D.int64)
    n = bind(sum_p, (ones,), {"axis": axis, "keepdims": keepdims, "dtype": None})
    return _ops_dtypes.astype(n, x.dtype)


def mean(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False) -> Tensor:
    """Arithmetic mean along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.mean(fl.asarray([1.0, 2.0, 3.0])))
        2.0
    """
    if x.__class__ is Tensor and not _unknown(x.shape):
        if x._t is None:
            r = _eager_reduce(sum_p, x, axis, keepdims)
            if r is not None and x._a.size:
                return r / float(_count(x, None if axis is None else normalize_axes(axis, x.ndim, "mean")))
        else:
            r = _record_reduce(sum_p, x, axis, keepdims, True)
            if r is not None:
                return r / float(_count(r._t.primals[0], r._t.params["axis"]))
    x, ax = _reduce_args(x, axis, "mean")
    if x.dtype.kind not in "fc":
        raise TypeError(f"mean: needs a floating-point array; got dtype {x.dtype.name}. Cast it with astype first.")
    n = _count(x, ax)
    s = bind(sum_p, (x,), {"axis": ax, "keepdims": keepdims, "dtype": None})
    if n != n:  # a size unknown until computed (nan): count the elements in the graph, lazily
        return s / _lazy_count(x, ax, keepdims)
    return s / float(n) if n else s * float("nan")


def var(
    x: Any,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: int | float = 0.0,
    keepdims: builtins.bool = False,
) -> Tensor:
    """Variance along ``axis`` with ``correction`` degrees of freedom removed.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.var(fl.asarray([1.0, 3.0])))
        1.0
    """
    _abs = _elementwise.abs
    real = _elementwise.real

    x, ax = _reduce_args(x, axis, "var")
    if x.dtype.kind not in "fc":
        raise TypeError(f"var: needs a floating-point array; got dtype {x.dtype.name}. Cast it with astype first.")
    n = _count(x, ax)
    m = mean(x, axis=ax, keepdims=True)
    d = x - m
    sq = d * d if x.dtype.kind == "f" else real(_abs(d)) ** 2
    s = bind(sum_p, (sq,), {"axis": ax, "keepdims": keepdims, "dtype": None})
    return s / float(builtins.max(n - correction, 0)) if n - correction > 0 else s * float("nan")


def std(
    x: Any,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: int | float = 0.0,
    keepdims: builtins.bool = False,
) -> Tensor:
    """Standard deviation along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> float(fl.std(fl.asarray([1.0, 3.0])))
        1.0
    """
    sqrt = _elementwise.sqrt

    return sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


# -- cumulative ------------------------------------------------------------------------------------
def _cum_impl(fname: str) -> Any:
    def impl(xp: Any, x: Any, *, axis: int, dtype: Any = None, include_initial: builtins.bool = False) -> Any:
        kw: dict[str, Any] = {"axis": axis, "include_initial": include_initial}
        if dtype is not None:
            backend_for = _tensor.backend_for

            kw["dtype"] = backend_for(xp).native(dtype)
        return getattr(xp, fname)(x, **kw)

    return impl


cumulative_sum_p = Primitive("cumulative_sum", _cum_impl("cumulative_sum"))
cumulative_sum_p.jvp = lambda ts, out, x, **p: bind(cumulative_sum_p, (ts[0],), p)


def _cumsum_vjp(
    g: Any, out: Any, x: Any, *, axis: int, dtype: Any = None, include_initial: builtins.bool = False
) -> Any:
    getitem = _indexing.getitem
    flip = _manipulation.flip

    if include_initial:
        g = getitem(g, (slice(None),) * axis + (slice(1, None),))
    r = flip(cumulative_sum(flip(g, axis=axis), axis=axis), axis=axis)
    return (r,)


cumulative_sum_p.vjp = _cumsum_vjp


def _cum_batch(prim: Primitive) -> Any:
    def rule(n: int, vals: Any, dims: Any, *, axis: int, **p: Any) -> Any:
        x = move_bdim_to_front(vals[0], dims[0])
        return bind(prim, (x,), dict(p, axis=axis + 1)), 0

    return rule


cumulative_sum_p.batch = _cum_batch(cumulative_sum_p)


def _cum_args(x: Any, axis: Any, op: str) -> tuple[Tensor, int]:
    x = as_tensor(x, op)
    if axis is None:
        if x.ndim > 1:
            raise ValueError(f"{op}: axis is required for arrays of more than one dimension; got shape {x.shape}.")
        axis = 0
    if x.ndim == 0:
        reshape = _manipulation.reshape

        x = reshape(x, (1,))
    return x, normalize_axis(axis, x.ndim, op)


def cumulative_sum(
    x: Any, /, *, axis: int | None = None, dtype: Any = None, include_initial: builtins.bool = False
) -> Tensor:
    """Cumulative sum along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.cumulative_sum(fl.asarray([1, 2, 3])).tolist()
        [1, 3, 6]
    """
    x, ax = _cum_args(x, axis, "cumulative_sum")
    x, dt = _accumulator(x, dtype, "cumulative_sum")
    return bind(cumulative_sum_p, (x,), {"axis": ax, "dtype": dt, "include_initial": include_initial})


cumulative_prod_p = Primitive("cumulative_prod", _cum_impl("cumulative_prod"))


def _cumprod_vjp(
    g: Any, out: Any, x: Any, *, axis: int, dtype: Any = None, include_initial: builtins.bool = False
) -> Any:
    getitem = _indexing.getitem
    flip = _manipulation.flip

    if include_initial:
        g = getitem(g, (slice(None),) * axis + (slice(1, None),))
        out = getitem(out, (slice(None),) * axis + (slice(1, None),))
    # NOTE: d out_k / d x_i = out_k / x_i for k >= i; not defined where x_i == 0.
    r = flip(cumulative_sum(flip(g * out, axis=axis), axis=axis), axis=axis) / x
    return (r,)


def _cumprod_jvp(
    ts: Any, out: Any, x: Any, *, axis: int, dtype: Any = None, include_initial: builtins.bool = False
) -> Any:
    o = out
    if include_initial:
        getitem = _indexing.getitem

        o = getitem(out, (slice(None),) * axis + (slice(1, None),))
    r = o * cumulative_sum(ts[0] / x, axis=axis)
    if include_initial:
        zeros_like = _creation.zeros_like
        getitem = _indexing.getitem
        concat = _manipulation.concat

        z = zeros_like(getitem(r, (slice(None),) * axis + (slice(0, 1),)))
        r = concat([z, r], axis=axis)
    return r


cumulative_prod_p.vjp = _cumprod_vjp
cumulative_prod_p.jvp = _cumprod_jvp
cumulative_prod_p.batch = _cum_batch(cumulative_prod_p)


def cumulative_prod(
    x: Any, /, *, axis: int | None = None, dtype: Any = None, include_initial: builtins.bool = False
) -> Tensor:
    """Cumulative product along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.cumulative_prod(fl.asarray([1, 2, 3])).tolist()
        [1, 2, 6]
    """
    x, ax = _cum_args(x, axis, "cumulative_prod")
    x, dt = _accumulator(x, dtype, "cumulative_prod")
    return bind(cumulative_prod_p, (x,), {"axis": ax, "dtype": dt, "include_initial": include_initial})


# -- all / any / diff -------------------------------------------------------------------------------
def _logical(name: str) -> Any:
    prim = Primitive(
        name,
        lambda xp, x, *, axis, keepdims, _n=name: getattr(xp, _n)(x, axis=axis, keepdims=keepdims),
        differentiable=False,
    )
    prim.batch = _reduction_batch(prim)

    def op(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: builtins.bool = False) -> Tensor:
        x, ax = _reduce_args(x, axis, name)
        return bind(prim, (x,), {"axis": ax, "keepdims": keepdims})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        f"Test whether {'all' if name == 'all' else 'any'} elements along ``axis`` are true.\n\n"
        f"Example:\n    >>> import functorch_lite as fl\n    >>> bool(fl.{name}(fl.asarray([True, False])))\n"
        f"    {name == 'any'}\n"
    )
    return op


all = _logical("all")
any = _logical("any")


def diff(x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None, append: Any = None) -> Tensor:
    """The ``n``-th discrete difference along ``axis`` (composite of slicing).

    Example:
        >>> import functorch_lite as fl
        >>> fl.diff(fl.asarray([1, 4, 9])).tolist()
        [3, 5]
    """
    getitem = _indexing.getitem
    concat = _manipulation.concat

    x = as_tensor(x, "diff")
    ax = normalize_axis(axis, x.ndim, "diff")
    if n < 0:
        raise ValueError(f"diff: n must be non-negative; got {n}.")
    parts = []
    if prepend is not None:
        parts.append(as_tensor(prepend, "diff", like=x))
    parts.append(x)
    if append is not None:
        parts.append(as_tensor(append, "diff", like=x))
    if len(parts) > 1:
        x = concat(parts, axis=ax)
    pre = (slice(None),) * ax
    for _ in range(n):
        x = getitem(x, pre + (slice(1, None),)) - getitem(x, pre + (slice(None, -1),))
    return x


sum_p.residuals = (False, False)  # the rules read shapes only
cumulative_sum_p.residuals = (False, False)


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import creation as _creation  # noqa: E402
from . import dtypes as _ops_dtypes  # noqa: E402
from . import elementwise as _elementwise  # noqa: E402
from . import indexing as _indexing  # noqa: E402
from . import manipulation as _manipulation  # noqa: E402
