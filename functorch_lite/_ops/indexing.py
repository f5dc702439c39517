"""Indexing: ``x[key]``, ``take`` and ``take_along_axis``, and the keys they share with ``scatter``.

A key is split into a static spec (ints, slices, None, Ellipsis, array slots)
and its arrays, which are positional arguments of the primitive so they can
be batched by vmap. Gradients of gathers are scatter-adds, so repeated
indices accumulate (``scatter.index_add_raw``). The writes (functional ``x[key] = v`` and
``index_add``) are in ``scatter``, which reads its keys with the helpers here.
"""

from __future__ import annotations

import builtins
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .._core import tensor as _tensor
from .._core.tensor import Tensor, backend_for
from .._errors import DataDependentShapeError, ShapeError
from ._base import Primitive, as_tensor, bind, normalize_axis
from ._rules import move_bdim_to_front

__all__ = ["getitem", "take", "take_along_axis"]

_new = object.__new__
_INT_NATIVES = _backend.INT_NATIVES
_FAST = _backend.FAST_NAMESPACES


class _Arr:
    """Placeholder for the i-th array of a key."""

    __slots__ = ("i", "is_bool", "ndim")

    def __init__(self, i: int, is_bool: builtins.bool, ndim: int) -> None:
        self.i = i
        self.is_bool = is_bool
        self.ndim = ndim

    def __repr__(self) -> str:
        return f"<array {self.i}>"

    def __eq__(self, o: object) -> builtins.bool:
        return isinstance(o, _Arr) and (o.i, o.is_bool, o.ndim) == (self.i, self.is_bool, self.ndim)

    def __hash__(self) -> int:
        return hash((self.i, self.is_bool, self.ndim))


def _split_key(key: Any, like: Tensor, op: str) -> tuple[tuple[Any, ...], list[Tensor]]:
    """Normalise a key into (spec, arrays)."""
    if not isinstance(key, tuple):
        key = (key,)
    spec: list[Any] = []
    arrays: list[Tensor] = []
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, slice):
            if isinstance(k, slice):
                k = slice(_int_or_none(k.start, op), _int_or_none(k.stop, op), _int_or_none(k.step, op))
            spec.append(k)
        elif isinstance(k, builtins.bool):
            t = as_tensor(k, op, like=None)
            spec.append(_Arr(len(arrays), True, 0))
            arrays.append(_on(t, like))
        elif isinstance(k, int):
            spec.append(k)
        elif isinstance(k, (Tensor, list)) or _backend.backend_of(k) is not None:
            t = as_tensor(k, op)
            dt = t.dtype
            if dt.kind not in "iub":
                raise TypeError(
                    f"{op}: index arrays must have an integer or bool dtype; got {dt.name}. Cast with astype."
                )
            if t.ndim == 0 and dt.kind != "b" and t._t is None:
                spec.append(int(t))
                continue
            spec.append(_Arr(len(arrays), dt.kind == "b", t.ndim))
            arrays.append(_on(t, like))
        else:
            raise IndexError(
                f"{op}: unsupported index {k!r} of type {type(k).__name__}; use ints, slices, None, "
                "Ellipsis, integer arrays or boolean arrays."
            )
    return tuple(spec), arrays


def _on(t: Tensor, like: Tensor) -> Tensor:
    if t._xp is not like._xp and t._t is None:
        b = backend_for(like._xp)
        return _wrap_foreign(t, b)
    return t


def _wrap_foreign(t: Tensor, b: Any) -> Tensor:
    wrap = _tensor.wrap

    src = backend_for(t._xp)
    return wrap(b.from_foreign(src.fix(t._a), src), b.xp)


def _int_or_none(v: Any, op: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, Tensor):
        return int(v)
    try:
        return int(v.__index__())
    except (AttributeError, TypeError):
        raise IndexError(f"{op}: slice bounds must be integers or None; got {v!r}.") from None


def _build(spec: tuple[Any, ...], arrays: Any) -> tuple[Any, ...]:
    key = tuple(arrays[s.i] if isinstance(s, _Arr) else s for s in spec)
    # a trailing ellipsis: array-api-strict refuses basic keys that do not cover every axis
    if any(s is Ellipsis or isinstance(s, _Arr) for s in spec):
        return key
    return key + (Ellipsis,)


def _expand_ellipsis(spec: tuple[Any, ...], ndim: int, op: str) -> tuple[Any, ...]:
    used = 0
    n_ell = 0
    for s in spec:
        if s is Ellipsis:
            n_ell += 1
        elif s is None:
            pass
        elif isinstance(s, _Arr) and s.is_bool:
            used += s.ndim
        else:
            used += 1
    if n_ell > 1:
        raise IndexError(f"{op}: an index can only have a single ellipsis ('...').")
    if used > ndim:
        raise IndexError(f"{op}: too many indices for an array of {ndim} dimension(s): the key uses {used}.")
    out: list[Any] = []
    for s in spec:
        if s is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
        else:
            out.append(s)
    if not n_ell:
        out.extend([slice(None)] * (ndim - used))
    return tuple(out)


def _check_ints(spec: tuple[Any, ...], shape: tuple[int, ...], op: str) -> None:
    dim = 0
    for s in _expand_ellipsis(spec, len(shape), op):
        if s is None:
            continue
        if isinstance(s, int):
            n = shape[dim]
            if not -n <= s < n:
                raise IndexError(
                    f"{op}: index {s} is out of bounds for axis {dim} of size {n}; use an index in [{-n}, {n - 1}]."
                )
        dim += s.ndim if isinstance(s, _Arr) and s.is_bool else 1


# ----------------------------------------------------------------------------------
# Batching of keys
# ----------------------------------------------------------------------------------
def _has_advanced(spec: tuple[Any, ...]) -> builtins.bool:
    return builtins.any(isinstance(s, _Arr) for s in spec)


def _batched_key(
    n: int, x_nd: int, spec: tuple[Any, ...], idx: list[Any], idims: list[Any]
) -> tuple[tuple[Any, ...], list[Any], tuple[int, ...] | None]:
    """A key for the batched array (batch axis first) and the permutation that restores
    the per-example layout of the result (None when no permutation is needed)."""
    reshape = _manipulation.reshape

    full = _expand_ellipsis(spec, x_nd, "getitem")
    if not _has_advanced(full):
        return (slice(None),) + full, list(idx), None
    if builtins.any(s.is_bool for s in full if isinstance(s, _Arr)):
        if builtins.any(d is not None for d in idims) or builtins.sum(isinstance(s, _Arr) for s in full) > 1:
            raise DataDependentShapeError(
                "getitem: a boolean mask index has a value-dependent shape and cannot be batched "
                "under vmap. Use where(mask, x, 0) or take with integer indices instead."
            )
        return (slice(None),) + full, list(idx), None
    # Rank of the broadcast advanced-index shape (per example).
    rank = 0
    for s in full:
        if isinstance(s, _Arr):
            rank = builtins.max(rank, s.ndim)
    new_idx: list[Any] = []
    for s, (a, d) in zip(
        [s for s in full if isinstance(s, _Arr)],
        [(idx[s.i], idims[s.i]) for s in full if isinstance(s, _Arr)],
        strict=True,
    ):
        if d is not None:
            a = move_bdim_to_front(a, d)
            r = a.ndim - 1
            if r < rank:
                sh = a.shape
                a = reshape(a, (sh[0],) + (1,) * (rank - r) + sh[1:])
        new_idx.append((s.i, a))
    like = next(a for _, a in new_idx)
    ar = reshape(_arange_like(n, like), (n,) + (1,) * rank)
    arrays = [None] * (len(idx) + 1)
    for i, a in new_idx:
        arrays[i] = a
    arrays[len(idx)] = ar  # type: ignore[call-overload]
    # Record the batched arrays' real ranks, so a further vmap level aligns them correctly.
    key = (_Arr(len(idx), False, rank + 1),) + tuple(
        _Arr(s.i, s.is_bool, arrays[s.i].ndim) if isinstance(s, _Arr) else s for s in full
    )
    # Per-example layout: are the advanced items (arrays and ints) contiguous?
    adv_pos = [i for i, s in enumerate(full) if isinstance(s, (_Arr, int))]
    contiguous = adv_pos == list(range(adv_pos[0], adv_pos[-1] + 1))
    perm = None
    if contiguous and adv_pos[0] > 0:
        k = builtins.sum(1 for s in full[: adv_pos[0]] if not isinstance(s, (_Arr, int)))
        # batched result: (n, *A[rank], *before[k], *after); per example: (*before, *A, *after)
        if k:
            perm = (0,) + tuple(range(1 + rank, 1 + rank + k)) + tuple(range(1, 1 + rank))
    return key, arrays, perm


def _default_xp() -> Any:
    return _backend.current_default().xp


def _arange_like(n: int, like: Tensor) -> Tensor:
    wrap = _tensor.wrap

    xp = like._xp
    return wrap(xp.arange(n, dtype=backend_for(xp).native(D.int64)), xp)


def _apply_perm(r: Any, perm: tuple[int, ...] | None) -> Any:
    if perm is None:
        return r
    permute_dims = _manipulation.permute_dims

    full = perm + tuple(range(len(perm), r.ndim))
    return permute_dims(r, full)


def _inverse(perm: tuple[int, ...], nd: int) -> tuple[int, ...]:
    full = perm + tuple(range(len(perm), nd))
    inv = [0] * nd
    for i, a in enumerate(full):
        inv[a] = i
    return tuple(inv)


# ----------------------------------------------------------------------------------
# getitem
# ----------------------------------------------------------------------------------
def _getitem_impl(xp: Any, x: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    key = _build(spec, idx)
    try:
        return x[key]
    except IndexError:  # a backend that only takes the standard's keys (array-api-strict)
        return x[_standard_key(xp, tuple(x.shape), key)]


def _standard_key(xp: Any, shape: tuple[int, ...], key: tuple[Any, ...]) -> tuple[Any, ...]:
    """An equivalent key that every array API backend accepts.

    Basic keys get every axis named; keys with integer arrays become integer arrays only
    (slices turned into broadcast aranges, None into size-1 axes, concrete masks into their
    coordinates), laid out as NumPy lays out mixed advanced indexing.
    """
    items: list[Any] = []
    for k in key:
        if k is Ellipsis:
            n = len(shape) - builtins.sum(
                (k2.ndim if _is_arr(k2) and k2.dtype == xp.bool else 1)
                for k2 in key
                if k2 is not None and k2 is not Ellipsis
            )
            items.extend([slice(None)] * n)
        elif _is_arr(k) and k.dtype == xp.bool:
            items.extend(xp.nonzero(k))
        else:
            items.append(k)
    items.extend([slice(None)] * (len(shape) - builtins.sum(1 for k in items if k is not None)))
    if not builtins.any(_is_arr(k) for k in items):
        return tuple(items)
    broadcast_shapes = _manipulation.broadcast_shapes

    adv = [i for i, k in enumerate(items) if _is_arr(k) or isinstance(k, int)]
    contiguous = adv == list(range(adv[0], adv[-1] + 1))
    a_shape = broadcast_shapes(*(tuple(items[i].shape) if _is_arr(items[i]) else () for i in adv))
    layout: list[Any] = ["adv"] if not contiguous else []  # "adv", or the item index of a slice / None
    for i in range(len(items)):
        if i not in adv:
            layout.append(i)
        elif contiguous and i == adv[0]:
            layout.append("adv")
    rank = len(layout) - 1 + len(a_shape)
    a_pos = layout.index("adv")
    out = []
    dim = 0
    for i, k in enumerate(items):
        if k is None:
            continue
        if i in adv:
            a = xp.broadcast_to(xp.asarray(k % shape[dim]) if isinstance(k, int) else k, a_shape)
            out.append(xp.reshape(a, (1,) * a_pos + a_shape + (1,) * (rank - a_pos - len(a_shape))))
        else:
            r = xp.arange(*k.indices(shape[dim]), dtype=xp.int64)
            p = layout.index(i)
            p = p if p < a_pos else p - 1 + len(a_shape)
            out.append(xp.reshape(r, (1,) * p + (r.shape[0],) + (1,) * (rank - p - 1)))
        dim += 1
    return tuple(out)


def _basic_setitem(xp: Any, b: Any, x: Any, key: tuple[Any, ...], v: Any) -> Any:
    """``x[key] = v`` for a basic key, without the None entries some backends refuse in setitem."""
    if None not in key:
        return b.setitem(x, key, v)
    key2 = tuple(k for k in key if k is not None)
    target = x[key2].shape
    v = xp.asarray(v, dtype=x.dtype) if not _is_arr(v) else v
    v = xp.reshape(xp.broadcast_to(v, x[key].shape), target)
    return b.setitem(x, key2, v)


def _is_arr(k: Any) -> builtins.bool:
    return hasattr(k, "shape") and hasattr(k, "dtype")


getitem_p = Primitive("getitem", _getitem_impl)
getitem_p.jvp = lambda ts, out, x, *idx, spec: bind(getitem_p, (ts[0],) + idx, {"spec": spec})


def _getitem_vjp(g: Any, out: Any, x: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    zeros_like = _creation.zeros_like

    return (lambda: _scatter.index_add_raw(zeros_like(x), g, idx, spec),)


getitem_p.vjp = _getitem_vjp


def _getitem_batch(n: int, vals: Any, dims: Any, *, spec: tuple[Any, ...]) -> Any:
    x, *idx = vals
    xd, *idims = dims
    if xd is None and builtins.all(d is None for d in idims):
        return bind(getitem_p, vals, {"spec": spec}), None
    x = move_bdim_to_front(x, xd, n)
    key, arrays, perm = _batched_key(n, x.ndim - 1, spec, list(idx), list(idims))
    r = bind(getitem_p, (x, *arrays), {"spec": key})
    return _apply_perm(r, perm), 0


getitem_p.batch = _getitem_batch


def _simple_key(key: Any) -> builtins.bool:
    kc = key.__class__
    if kc is int or kc is slice:
        return True
    if kc is tuple:
        for k in key:
            c = k.__class__
            if not (c is int or c is slice or k is None or k is Ellipsis):
                return False
        return True
    return key is None or key is Ellipsis


def getitem(x: Any, key: Any) -> Tensor:
    """``x[key]`` with the standard's indexing (ints, slices, None, Ellipsis, integer and bool arrays).

    Example:
        >>> import functorch_lite as fl
        >>> fl.getitem(fl.arange(5), slice(1, 3)).tolist()
        [1, 2]
    """
    x = as_tensor(x, "getitem")
    if x._t is None and _simple_key(key):
        try:
            _check_ints(_split_key(key, x, "getitem")[0], x.shape, "getitem")
            xp = x._xp
            t = _new(Tensor)
            # A trailing ellipsis: array_api_strict refuses keys that name fewer axes than ndim.
            k = key if key.__class__ is tuple else (key,)
            t._a = x._a[k + (...,) if ... not in k else k]
            t._xp = xp
            t._t = None
            return t
        except IndexError:
            raise
    spec, arrays = _split_key(key, x, "getitem")
    _check_ints(spec, x.shape, "getitem")
    return bind(getitem_p, (x, *arrays), {"spec": spec})


def _tensor_getitem(self: Tensor, key: Any) -> Tensor:
    if self._t is None and _simple_key(key):
        kc = key.__class__
        a = self._a
        if kc is int:
            n = a.shape[0] if a.ndim else None
            if n is None or not -n <= key < n:
                return getitem(self, key)
        elif kc is tuple and backend_for(self._xp).checks_bounds:
            # ints, slices, None and one ellipsis: basic indexing, the same in numpy and the
            # standard once an ellipsis closes the key; out-of-bounds ints raise IndexError,
            # and the general path then words the error
            k = key if Ellipsis in key else key + (Ellipsis,)
            try:
                r = a[k]
            except IndexError:
                return getitem(self, key)
            t = _new(Tensor)
            t._a = r
            t._xp = self._xp
            t._t = None
            return t
        elif kc is not slice:
            return getitem(self, key)
        t = _new(Tensor)
        t._a = a[key] if a.ndim == 1 and kc is slice else a[key, ...]  # (key, ...): strict needs every axis
        t._xp = self._xp
        t._t = None
        return t
    return getitem(self, key)


# ----------------------------------------------------------------------------------
# take / take_along_axis (composites of getitem)
# ----------------------------------------------------------------------------------
def take(x: Any, indices: Any, /, *, axis: int | None = None) -> Tensor:
    """Elements of ``x`` at integer ``indices`` along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.take(fl.asarray([10, 20, 30]), fl.asarray([2, 0])).tolist()
        [30, 10]
    """
    reshape = _manipulation.reshape

    if (
        x.__class__ is Tensor
        and indices.__class__ is Tensor
        and x._t is None
        and indices._t is None
        and x._xp is indices._xp
        and axis is not None
    ):  # concrete operands: the backend's own take (no differentiation, no batching)
        a, ia = x._a, indices._a
        xp = x._xp
        nd = a.ndim
        if ia.ndim == 1 and -nd <= axis < nd and ia.dtype in _INT_NATIVES.get(xp, ()):
            t = _new(Tensor)
            fx: Any = _FAST.get(xp, xp)  # (numpy: the array's own take, without np.take's wrapper)
            if backend_for(xp).checks_bounds:
                try:
                    t._a = fx.take(a, ia, axis=axis % nd)
                except IndexError:
                    _check_bounds(indices, a.shape[axis], "take")  # raises, naming the index
                    raise
            else:
                if ia.shape[0]:
                    _check_bounds(indices, a.shape[axis], "take")
                t._a = fx.take(a, ia, axis=axis % nd)
            t._xp = xp
            t._t = None
            return t
    x = as_tensor(x, "take")
    i = as_tensor(indices, "take", like=x)
    if i.dtype.kind not in "iu":
        raise TypeError(f"take: indices must have an integer dtype; got {i.dtype.name}.")
    if axis is None:
        if x.ndim != 1:
            x = reshape(x, (-1,))
        axis = 0
    ax = normalize_axis(axis, x.ndim, "take")
    _check_bounds(i, x.shape[ax], "take")
    return getitem(x, (slice(None),) * ax + (i,))


def _check_bounds(i: Tensor, n: int, op: str) -> None:
    if i._t is None and i.size:
        lo, hi = _backend.index_range(i._xp, i._a)
        if lo < -n or hi >= n:
            raise IndexError(
                f"{op}: index {hi if hi >= n else lo} is out of bounds for an axis of size {n}; "
                f"indices must lie in [{-n}, {n - 1}]."
            )


def take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Tensor:
    """Pick values of ``x`` along ``axis`` with ``indices`` of the same rank (broadcasting elsewhere).

    Example:
        >>> import functorch_lite as fl
        >>> x = fl.asarray([[10, 20], [30, 40]])
        >>> fl.take_along_axis(x, fl.asarray([[1], [0]]), axis=1).tolist()
        [[20], [30]]
    """
    broadcast_shapes = _manipulation.broadcast_shapes
    reshape = _manipulation.reshape

    x = as_tensor(x, "take_along_axis")
    i = as_tensor(indices, "take_along_axis", like=x)
    if i.ndim != x.ndim:
        raise ShapeError(f"take_along_axis: indices need as many dimensions as x ({x.ndim}); got shape {i.shape}.")
    ax = normalize_axis(axis, x.ndim, "take_along_axis")
    _check_bounds(i, x.shape[ax], "take_along_axis")
    nd = x.ndim
    xs = list(x.shape)
    is_ = list(i.shape)
    xs[ax] = 1
    is_[ax] = 1
    bshape = broadcast_shapes(tuple(xs), tuple(is_))
    key: list[Any] = []
    for d in range(nd):
        if d == ax:
            key.append(i)
        else:
            shape = [1] * nd
            shape[d] = bshape[d]
            key.append(reshape(_arange_like(bshape[d], x), tuple(shape)))
    return getitem(x, tuple(key))


Tensor.__getitem__ = _tensor_getitem  # type: ignore[method-assign]


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import creation as _creation  # noqa: E402
from . import manipulation as _manipulation  # noqa: E402
from . import scatter as _scatter  # noqa: E402
