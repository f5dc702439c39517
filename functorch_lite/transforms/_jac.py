"""Jacobians and Hessians: ``jacrev``, ``jacfwd``, ``hessian`` (rows in chunks of ``chunk_size``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from .. import _dtypes as _dtypes
from .._core import tensor as _tensor
from .._core import tree_util as tu
from .._core.tensor import Tensor
from .._errors import TransformError
from .._ops import _base as _base
from .._ops import dtypes as _ops_dtypes
from .._ops import indexing as _indexing
from .._ops import manipulation as _manipulation
from . import _ad as _ad
from ._grad import _argnums, _is_float, _size, _to_leaf, vjp
from ._jvp import jvp
from ._vmap import vmap

# --------------------------------------------------------------------------------------
# Jacobians
# --------------------------------------------------------------------------------------


def _check_chunk_size(chunk_size: Any, what: str) -> None:
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1):
        raise TransformError(f"{what}: chunk_size must be a positive int or None; got {chunk_size!r}.")


def jacrev(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Jacobian of ``f`` by reverse mode (one vjp per output element, vectorised by vmap).

    The result has shape ``out.shape + in.shape`` per (output leaf, input leaf).

    Example:
        >>> import functorch_lite as fl
        >>> fl.jacrev(lambda x: x * 2.0)(fl.ones((2,))).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    _check_chunk_size(chunk_size, "jacrev")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        astype = _ops_dtypes.astype
        getitem = _indexing.getitem
        reshape = _manipulation.reshape

        nums = _argnums(argnums, len(args), "jacrev")
        diff = [args[i] for i in nums]

        def g(*d: Any) -> Any:
            full = list(args)
            for i, v in zip(nums, d, strict=True):
                full[i] = v
            return f(*full, **kwargs)

        res = vjp(g, *diff, has_aux=has_aux)
        out, f_vjp = res[0], res[1]
        o_leaves, o_tree = tu.tree_flatten(out)
        o_leaves = [_to_leaf(o, "jacrev") for o in o_leaves]
        sizes = [_size(o.shape) for o in o_leaves]
        total = sum(sizes)
        like = o_leaves[0]
        basis = astype(_eye_like(total, like), like.dtype)
        cts = []
        start = 0
        for o, s in zip(o_leaves, sizes, strict=True):
            cols = getitem(basis, (slice(None), slice(start, start + s)))
            cts.append(reshape(astype(cols, o.dtype), (total,) + o.shape))
            start += s
        ct_tree = tu.tree_unflatten(o_tree, cts)
        rows = vmap(lambda c: f_vjp(c), chunk_size=chunk_size)(ct_tree)
        # rows: tuple over diff args of pytrees with leading axis total
        in_leaves, in_tree = tu.tree_flatten(tuple(rows))
        per_out = []
        start = 0
        for o, s in zip(o_leaves, sizes, strict=True):
            leaves_k = [
                reshape(getitem(x, (slice(start, start + s),)), o.shape + tuple(x.shape[1:])) for x in in_leaves
            ]
            sub = tu.tree_unflatten(in_tree, leaves_k)
            per_out.append(sub[0] if isinstance(argnums, int) else tuple(sub))
            start += s
        jac = tu.tree_unflatten(o_tree, per_out)
        if has_aux:
            return jac, res[2]
        return jac

    return wrapped


def _eye_like(n: int, like: Tensor) -> Tensor:
    wrap = _tensor.wrap
    backend_for = _base.backend_for

    xp = like._xp
    b = backend_for(xp)
    dt = like.dtype if like.dtype.kind in "fc" else None
    D = _dtypes

    return wrap(xp.eye(n, dtype=b.native(dt or D.float32)), xp)


def jacfwd(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Jacobian of ``f`` by forward mode (one jvp per input element, vectorised by vmap).

    Example:
        >>> import functorch_lite as fl
        >>> fl.jacfwd(lambda x: x * 2.0)(fl.ones((2,))).tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    _check_chunk_size(chunk_size, "jacfwd")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        astype = _ops_dtypes.astype
        getitem = _indexing.getitem
        reshape = _manipulation.reshape

        nums = _argnums(argnums, len(args), "jacfwd")
        diff = tuple(args[i] for i in nums)
        d_leaves, d_tree = tu.tree_flatten(diff)
        d_leaves = [_to_leaf(x, "jacfwd") for x in d_leaves]
        for x in d_leaves:
            if not _is_float(x):
                raise TransformError(f"jacfwd: inputs to differentiate must be floating; got dtype {x.dtype.name}.")
        sizes = [_size(x.shape) for x in d_leaves]
        total = sum(sizes)
        basis = _eye_like(total, d_leaves[0])
        # tangent for leaf k, per basis column j: column j of the identity restricted to leaf k
        tans = []
        start = 0
        for x, s in zip(d_leaves, sizes, strict=True):
            cols = getitem(basis, (slice(None), slice(start, start + s)))  # (total, s)
            tans.append(reshape(astype(cols, x.dtype), (total,) + x.shape))
            start += s

        def push(*t_leaves: Any) -> Any:
            def g(*d: Any) -> Any:
                full = list(args)
                for i, v in zip(nums, d, strict=True):
                    full[i] = v
                return f(*full, **kwargs)

            res = jvp(g, diff, tu.tree_unflatten(d_tree, list(t_leaves)), has_aux=has_aux)
            return res[1] if not has_aux else (res[1], res[2])

        res = vmap(push, out_axes=-1, chunk_size=chunk_size)(*tans) if not has_aux else None
        if has_aux:
            res_t = vmap(lambda *t: push(*t)[0], out_axes=-1, chunk_size=chunk_size)(*tans)
            aux = push(*[getitem(t, 0) for t in tans])[1]
        else:
            res_t = res
        o_leaves, o_tree = tu.tree_flatten(res_t)
        per_out = []
        for o in o_leaves:
            oshape = o.shape[:-1]
            parts = []
            start = 0
            for x, s in zip(d_leaves, sizes, strict=True):
                piece = getitem(o, (..., slice(start, start + s)))
                parts.append(reshape(piece, oshape + x.shape))
                start += s
            sub = tu.tree_unflatten(d_tree, parts)
            per_out.append(sub[0] if isinstance(argnums, int) else tuple(sub))
        jac = tu.tree_unflatten(o_tree, per_out)
        if has_aux:
            return jac, aux
        return jac

    return wrapped


def hessian(
    f: Callable[..., Any],
    argnums: int | Sequence[int] = 0,
    has_aux: bool = False,
    chunk_size: int | None = None,
) -> Callable[..., Any]:
    """Hessian of scalar ``f``: ``jacfwd(jacrev(f))``.

    ``chunk_size`` bounds memory as on ``jacrev`` / ``jacfwd``: both the reverse pass (one
    vjp per gradient entry) and the forward pass over it (one jvp per input entry) run in
    chunks of that many basis vectors.

    Example:
        >>> import functorch_lite as fl
        >>> fl.hessian(lambda x: (x ** 3).sum())(fl.asarray([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
        >>> fl.hessian(lambda x: (x ** 3).sum(), chunk_size=1)(fl.asarray([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
    """
    _check_chunk_size(chunk_size, "hessian")
    inner = jacrev(f, argnums, has_aux=has_aux, chunk_size=chunk_size)
    return jacfwd(inner, argnums, has_aux=has_aux, chunk_size=chunk_size)
