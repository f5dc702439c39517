"""``vmap``: in/out axes over pytrees, chunking, and the batch trace's entry and exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .. import _dtypes as _dtypes
from .._core import tree_util as tu
from .._core.engine import new_trace
from .._errors import BatchAxisError, TransformError
from .._ops import _base as _base
from .._ops import indexing as _indexing
from .._ops import manipulation as _manipulation
from . import _ad as _ad
from ._batch import BatchTrace
from ._grad import _argname, _stack_str, _to_leaf


# --------------------------------------------------------------------------------------
# vmap
# --------------------------------------------------------------------------------------
def _flat_axes(axes: Any, tree: Any, what: str, argnames: str) -> list[Any]:
    try:
        return tu.broadcast_prefix(axes, tree)
    except ValueError as exc:
        raise BatchAxisError(
            f"vmap: {what}={axes!r} does not match the structure of the {argnames} "
            f"{tu.tree_structure(tree)}: {exc}. Give one entry per argument (or an int / None for all)."
        ) from None


def vmap(
    f: Callable[..., Any],
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_size: int | None = None,
    chunk_size: int | None = None,
    randomness: str = "error",
) -> Callable[..., Any]:
    """Vectorise ``f`` over a batch axis of its inputs (no Python loop over the batch).

    Args:
        f: the function to vectorise.
        in_axes: int, None, or a pytree prefix of the positional arguments (None: unmapped).
        out_axes: int, None or a pytree prefix of the outputs.
        axis_size: the batch size, needed only when no input is mapped.
        chunk_size: process the batch in chunks of this size, bounding memory.
        randomness: "error", "same" or "different": what random ops inside mean.

    Example:
        >>> import functorch_lite as fl
        >>> fl.vmap(lambda r: r.sum())(fl.ones((3, 4))).tolist()
        [4.0, 4.0, 4.0]
    """
    if randomness not in ("error", "same", "different"):
        raise TransformError(f"vmap: randomness must be 'error', 'same' or 'different'; got {randomness!r}.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise TransformError(f"vmap: chunk_size must be a positive int or None; got {chunk_size!r}.")

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        in_ax = in_axes
        if isinstance(in_ax, list):
            in_ax = tuple(in_ax)
        if isinstance(in_ax, tuple) and len(in_ax) != len(args):
            raise BatchAxisError(
                f"vmap: in_axes has {len(in_ax)} entries but the function was called with "
                f"{len(args)} positional argument(s); give one entry per argument."
            )
        leaves, tree = tu.tree_flatten(args)
        axes = _flat_axes(in_ax if isinstance(in_ax, tuple) else (in_ax,) * len(args), args, "in_axes", "arguments")
        paths = tu.path_names(args)
        tleaves: list[Any] = []
        sizes: dict[str, int] = {}
        norm_axes: list[Any] = []
        for path, x, ax in zip(paths, leaves, axes, strict=True):
            if ax is None:
                tleaves.append(x)
                norm_axes.append(None)
                continue
            t = _to_leaf(x, "vmap")
            if not isinstance(ax, int):
                raise BatchAxisError(
                    f"vmap: in_axes entries must be ints or None; got {ax!r} for argument {_argname(path)}."
                )
            nd = t.ndim
            if not -nd <= ax < nd:
                raise BatchAxisError(
                    f"vmap: in_axes={ax} for argument {_argname(path)} of shape {t.shape} is out of range; "
                    f"use an axis in [{-nd}, {nd - 1}] or None to leave it unmapped."
                )
            ax %= nd
            sizes[_argname(path)] = t.shape[ax]
            tleaves.append(t)
            norm_axes.append(ax)
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{k} has size {v}" for k, v in sizes.items())
            raise BatchAxisError(
                f"vmap: the mapped axes of the arguments disagree in size: {detail}{_stack_str()}. "
                "Every mapped input needs the same batch size."
            )
        if sizes:
            n = next(iter(sizes.values()))
            if axis_size is not None and axis_size != n:
                raise BatchAxisError(f"vmap: axis_size={axis_size} but the mapped inputs have size {n}.")
        elif axis_size is not None:
            n = axis_size
        else:
            raise BatchAxisError(
                "vmap: no argument is mapped (all in_axes are None) and axis_size is not given; "
                "map at least one input or pass axis_size."
            )
        if chunk_size is not None and n > chunk_size:
            return _chunked(f, tleaves, norm_axes, tree, kwargs, n, chunk_size, out_axes, randomness)
        return _vmap_once(f, tleaves, norm_axes, tree, kwargs, n, out_axes, randomness)

    return wrapped


def _vmap_once(
    f: Callable[..., Any],
    leaves: list[Any],
    axes: list[Any],
    tree: Any,
    kwargs: dict[str, Any],
    n: int,
    out_axes: Any,
    randomness: str,
    index_offset: int = 0,
) -> Any:
    with new_trace(BatchTrace, axis_size=n, randomness=randomness, index_offset=index_offset) as tr:
        tracers = [x if ax is None else tr.tracer(x, ax) for x, ax in zip(leaves, axes, strict=True)]
        out = f(*tu.tree_unflatten(tree, tracers), **kwargs)
        o_leaves, o_tree = tu.tree_flatten(out)
        oax = out_axes
        if isinstance(oax, list):
            oax = tuple(oax)
        o_axes = _flat_axes(oax, out, "out_axes", "outputs")
        res = []
        for o, ax in zip(o_leaves, o_axes, strict=True):
            res.append(_unbatch(o, ax, tr, n))
    return tu.tree_unflatten(o_tree, res)


def _unbatch(o: Any, ax: Any, tr: Any, n: int) -> Any:
    broadcast_to = _manipulation.broadcast_to
    expand_dims = _manipulation.expand_dims
    moveaxis = _manipulation.moveaxis

    o = _to_leaf(o, "vmap")
    p = o._t
    batched = p is not None and p.trace is tr
    if ax is None:
        if batched:
            raise BatchAxisError(
                "vmap: an output with out_axes=None varies over the batch; return it with an "
                "integer out_axes, or make it independent of the mapped inputs."
            )
        return o
    if batched:
        val, d = p.val, p.bdim
    else:
        val = broadcast_to(expand_dims(o, axis=0), (n,) + o.shape)
        d = 0
    nd = val.ndim
    if not -nd <= ax < nd:
        raise BatchAxisError(f"vmap: out_axes={ax} is out of range for an output of {nd} dimension(s).")
    ax %= nd
    return val if ax == d else moveaxis(val, d, ax)


def _chunked(
    f: Callable[..., Any],
    leaves: list[Any],
    axes: list[Any],
    tree: Any,
    kwargs: dict[str, Any],
    n: int,
    chunk: int,
    out_axes: Any,
    randomness: str,
) -> Any:
    getitem = _indexing.getitem
    concat = _manipulation.concat

    outs = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        part = [
            x if ax is None else getitem(x, (slice(None),) * ax + (slice(start, stop),))
            for x, ax in zip(leaves, axes, strict=True)
        ]
        outs.append(_vmap_once(f, part, axes, tree, kwargs, stop - start, out_axes, randomness, start))
    o_leaves0, o_tree = tu.tree_flatten(outs[0])
    o_axes = _flat_axes(out_axes if not isinstance(out_axes, list) else tuple(out_axes), outs[0], "out_axes", "outputs")
    per = [tu.tree_leaves(o) for o in outs]
    res = []
    for i, ax in enumerate(o_axes):
        if ax is None:
            res.append(per[0][i])
        else:
            nd = per[0][i].ndim
            res.append(concat([p[i] for p in per], axis=ax % nd))
    return tu.tree_unflatten(o_tree, res)
