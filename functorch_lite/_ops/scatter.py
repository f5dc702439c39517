"""Writes: functional ``x[key] = v`` (``setitem``, also ``Tensor.__setitem__``) and scatter-add (``index_add``).

Keys are split and batched by the helpers of ``indexing``; the value is broadcast to the
indexed shape. ``x[key] = v`` on a concrete Tensor that nothing else sees writes in place
(``_backend.setitem_in_place``); otherwise it rebinds the Tensor to a new value, so it works
under every transform. The gradient of ``index_add`` is a gather; duplicate integer indices
of ``setitem`` keep one of the written values, as the backends do.
"""

from __future__ import annotations

import builtins
from typing import Any

from .. import _backend
from .._core.tensor import Tensor, backend_for
from .._errors import DataDependentShapeError
from ._base import Primitive, as_tensor, bind
from ._rules import move_bdim_to_front
from .indexing import (
    _Arr,
    _basic_setitem,
    _batched_key,
    _build,
    _check_ints,
    _expand_ellipsis,
    _has_advanced,
    _inverse,
    _is_arr,
    _split_key,
    _standard_key,
    getitem_p,
)

__all__ = ["setitem", "index_add"]


def _setitem_impl(xp: Any, x: Any, v: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    b = backend_for(xp)
    key = _build(spec, idx)
    try:
        return b.setitem(x, key, v)
    except IndexError:  # a backend without integer-array __setitem__ (array-api-strict)
        key = _standard_key(xp, tuple(x.shape), key)
        if not builtins.any(_is_arr(k) for k in key):
            return _basic_setitem(xp, b, x, key, v)
        return _scatter_set(xp, b, x, key, v)


def _scatter_set(xp: Any, b: Any, x: Any, key: tuple[Any, ...], v: Any) -> Any:
    """``x[key] = v`` for an integer-array key with scatter-adds only (standard-only backends).

    NOTE: the standard leaves repeated indices unspecified; here a repeated position gets the
    mean of its values (the value itself when they agree, as with a broadcast scalar).
    """
    cnt = _backend.scatter_add(b, xp.zeros(x.shape, dtype=xp.int64), key, xp.asarray(1, dtype=xp.int64))
    work = x if xp.isdtype(x.dtype, ("real floating", "complex floating", "integral")) else xp.astype(x, xp.int64)
    vv = xp.asarray(v, dtype=work.dtype) if not _is_arr(v) else xp.astype(v, work.dtype)
    total = _backend.scatter_add(b, xp.zeros(x.shape, dtype=work.dtype), key, vv)
    safe = xp.where(cnt > 0, cnt, xp.ones_like(cnt))
    if xp.isdtype(work.dtype, "integral"):
        mean = total // xp.astype(safe, work.dtype)
    else:
        mean = total / xp.astype(safe, work.dtype)
    return xp.where(cnt > 0, xp.astype(mean, x.dtype), x)


setitem_p = Primitive("setitem", _setitem_impl)


def _setitem_jvp(ts: Any, out: Any, x: Any, v: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    zeros_like = _creation.zeros_like

    tx, tv = ts[0], ts[1]
    if tx is None:
        tx = zeros_like(out)
    if tv is None:
        tv = 0.0
    return bind(setitem_p, (tx, tv) + idx, {"spec": spec})


def _setitem_vjp(g: Any, out: Any, x: Any, v: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    return (
        lambda: bind(setitem_p, (g, 0.0) + idx, {"spec": spec}),
        lambda: bind(getitem_p, (g,) + idx, {"spec": spec}),
    )


setitem_p.jvp = _setitem_jvp
setitem_p.vjp = _setitem_vjp


def _scatter_batch(prim: Primitive) -> Any:
    def rule(n: int, vals: Any, dims: Any, *, spec: tuple[Any, ...]) -> Any:
        broadcast_to = _manipulation.broadcast_to
        permute_dims = _manipulation.permute_dims

        x, v, *idx = vals
        xd, vd, *idims = dims
        x = move_bdim_to_front(x, xd, n)
        key, arrays, perm = _batched_key(n, x.ndim - 1, spec, list(idx), list(idims))
        # Target shape per example, then in the batched key's layout.
        target = _result_shape(x.shape[1:], spec, idx, idims)
        if isinstance(v, Tensor):
            if vd is None:
                v = broadcast_to(v, target)
                v = broadcast_to(v, (n,) + target)
            else:
                v = move_bdim_to_front(v, vd)
                vs = v.shape[1:]
                if len(vs) < len(target):
                    reshape = _manipulation.reshape

                    v = reshape(v, (n,) + (1,) * (len(target) - len(vs)) + vs)
                v = broadcast_to(v, (n,) + target)
            if perm is not None:
                v = permute_dims(v, _inverse(perm, v.ndim))
        return bind(prim, (x, v, *arrays), {"spec": key}), 0

    return rule


def _result_shape(shape: tuple[int, ...], spec: tuple[Any, ...], idx: Any, idims: Any) -> tuple[int, ...]:
    broadcast_shapes = _manipulation.broadcast_shapes

    full = _expand_ellipsis(spec, len(shape), "setitem")
    has_adv = _has_advanced(full)
    adv_shapes = []
    before: list[int] = []
    after: list[int] = []
    adv_seen = False
    dim = 0
    positions = []
    for i, s in enumerate(full):
        if s is None:
            (after if adv_seen else before).append(1)
            continue
        if isinstance(s, _Arr):
            a = idx[s.i]
            sh = a.shape
            if idims[s.i] is not None:
                sh = sh[: idims[s.i]] + sh[idims[s.i] + 1 :]
            if s.is_bool:
                if idims[s.i] is not None:
                    raise DataDependentShapeError(
                        "setitem: a batched boolean mask index cannot be batched under vmap; use where(mask, v, x)."
                    )
                # An unbatched concrete mask selects a known number of elements along its axes.
                _sum = _reduction.sum

                sh = (int(_sum(a)),)
            adv_shapes.append(tuple(sh))
            adv_seen = True
            positions.append(i)
            dim += s.ndim if s.is_bool else 1
        elif isinstance(s, int):
            if has_adv:
                adv_shapes.append(())
                adv_seen = True
                positions.append(i)
            dim += 1
        else:
            n = len(range(*s.indices(shape[dim])))
            (after if adv_seen else before).append(n)
            dim += 1
    if not has_adv:
        return tuple(before)
    A = broadcast_shapes(*adv_shapes)
    contiguous = positions == list(range(positions[0], positions[-1] + 1))
    if contiguous:
        return tuple(before) + A + tuple(after)
    return A + tuple(before) + tuple(after)


setitem_p.batch = _scatter_batch(setitem_p)


def _index_add_impl(xp: Any, x: Any, v: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    key = _build(spec, idx)
    b = backend_for(xp)
    if not idx:
        try:
            return b.setitem(x, key, x[key] + v)
        except IndexError:
            key = _standard_key(xp, tuple(x.shape), key)
            return _basic_setitem(xp, b, x, key, x[key] + v)
    try:
        return _backend.scatter_add(b, x, key, v)
    except IndexError:  # mixed integer-array keys on a standard-only backend
        return _backend.scatter_add(b, x, _standard_key(xp, tuple(x.shape), key), v)


index_add_p = Primitive("index_add", _index_add_impl)


def _index_add_jvp(ts: Any, out: Any, x: Any, v: Any, *idx: Any, spec: tuple[Any, ...]) -> Any:
    zeros_like = _creation.zeros_like

    tx, tv = ts[0], ts[1]
    if tv is None:
        return tx
    if tx is None:
        tx = zeros_like(out)
    return bind(index_add_p, (tx, tv) + idx, {"spec": spec})


index_add_p.jvp = _index_add_jvp
index_add_p.vjp = lambda g, out, x, v, *idx, spec: (g, lambda: bind(getitem_p, (g,) + idx, {"spec": spec}))
index_add_p.batch = _scatter_batch(index_add_p)


def index_add_raw(x: Tensor, v: Any, idx: Any, spec: tuple[Any, ...]) -> Tensor:
    if v.dtype is not x.dtype:
        astype = _ops_dtypes.astype

        v = astype(v, x.dtype)
    return bind(index_add_p, (x, v) + tuple(idx), {"spec": spec})


def _prep_value(x: Tensor, value: Any, op: str) -> Any:
    if isinstance(value, (builtins.bool, int, float, complex)):
        return as_tensor(value, op, like=x)
    v = as_tensor(value, op)
    if v.dtype is not x.dtype:
        astype = _ops_dtypes.astype

        v = astype(v, x.dtype)
    return v


def setitem(x: Any, key: Any, value: Any) -> Tensor:
    """A copy of ``x`` with ``x[key] = value`` (differentiable; ``x`` itself is unchanged).

    Example:
        >>> import functorch_lite as fl
        >>> fl.setitem(fl.zeros((3,)), 1, 5.0).tolist()
        [0.0, 5.0, 0.0]
    """
    x = as_tensor(x, "setitem")
    spec, arrays = _split_key(key, x, "setitem")
    _check_ints(spec, x.shape, "setitem")
    v = _prep_value(x, value, "setitem")
    return bind(setitem_p, (x, v, *arrays), {"spec": spec})


def index_add(x: Any, key: Any, value: Any) -> Tensor:
    """A copy of ``x`` with ``value`` added at ``key``; repeated indices accumulate.

    Example:
        >>> import functorch_lite as fl
        >>> fl.index_add(fl.zeros((3,)), fl.asarray([0, 0, 2]), 1.0).tolist()
        [2.0, 0.0, 1.0]
    """
    x = as_tensor(x, "index_add")
    spec, arrays = _split_key(key, x, "index_add")
    _check_ints(spec, x.shape, "index_add")
    v = _prep_value(x, value, "index_add")
    return bind(index_add_p, (x, v, *arrays), {"spec": spec})


def _tensor_setitem(self: Tensor, key: Any, value: Any) -> None:
    if self._t is None:
        spec, arrays = _split_key(key, self, "setitem")
        _check_ints(spec, self.shape, "setitem")
        v = _prep_value(self, value, "setitem")
        if v._t is None and v._xp is self._xp and all(a._t is None for a in arrays):
            # nothing else sees self's array: write into it instead of copying it (_backend)
            if _backend.setitem_in_place(self, _build(spec, [a._a for a in arrays]), v._a):
                return
        r = bind(setitem_p, (self, v, *arrays), {"spec": spec})
    else:
        r = setitem(self, key, value)  # functional: self is rebound to the new value
    self._a = r._a
    self._xp = r._xp
    self._t = r._t


Tensor.__setitem__ = _tensor_setitem  # type: ignore[method-assign]


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import creation as _creation  # noqa: E402
from . import dtypes as _ops_dtypes  # noqa: E402
from . import manipulation as _manipulation  # noqa: E402
from . import reduction as _reduction  # noqa: E402
