"""Manipulation functions of the standard: reshape, broadcast, permute, concat, stack, ..."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from .._core.tensor import Tensor
from .._errors import ShapeError
from ._base import Primitive, as_tensor, bind, normalize_axis, same_backend
from ._rules import move_bdim_to_front

__all__ = [
    "reshape",
    "broadcast_to",
    "broadcast_arrays",
    "broadcast_shapes",
    "expand_dims",
    "squeeze",
    "permute_dims",
    "moveaxis",
    "flip",
    "roll",
    "concat",
    "stack",
    "unstack",
    "tile",
    "repeat",
    "matrix_transpose",
]

_new = object.__new__


def _size(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _resolve_shape(shape: Sequence[int], size: int, op: str, src: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"{op}: at most one -1 in the new shape; got {shape}.")
    if -1 in shape:
        rest = _size([s for s in shape if s != -1])
        if rest == 0 or size % rest:
            raise ShapeError(f"{op}: cannot reshape an array of shape {src} (size {size}) into {shape}.")
        shape = tuple(size // rest if s == -1 else s for s in shape)
    if _size(shape) != size:
        raise ShapeError(
            f"{op}: cannot reshape an array of shape {src} (size {size}) into shape {shape} "
            f"(size {_size(shape)}); the sizes must agree."
        )
    return shape


# -- reshape ----------------------------------------------------------------------
reshape_p = Primitive(
    "reshape",
    lambda xp, x, *, shape, copy=None: xp.reshape(x, shape) if copy is None else xp.reshape(x, shape, copy=copy),
)
reshape_p.jvp = lambda ts, out, x, **p: reshape(ts[0], p["shape"])
reshape_p.vjp = lambda g, out, x, **p: (reshape(g, x.shape),)
reshape_p.avjp = lambda xp, g, o, ps, par, p: (xp.reshape(g, tuple(ps[0]._a.shape)),)


def _reshape_batch(n: int, vals: Any, dims: Any, *, shape: tuple[int, ...], copy: Any = None) -> Any:
    x = move_bdim_to_front(vals[0], dims[0])
    return bind(reshape_p, (x,), {"shape": (x.shape[0],) + shape, "copy": copy}), 0


reshape_p.batch = _reshape_batch


def reshape(x: Any, /, shape: Sequence[int], *, copy: builtins.bool | None = None) -> Tensor:
    """Give ``x`` a new shape with the same number of elements (one -1 is inferred).

    Example:
        >>> import functorch_lite as fl
        >>> fl.reshape(fl.arange(6), (2, -1)).shape
        (2, 3)
    """
    if x.__class__ is Tensor and x._t is None and copy is None:
        xp = x._xp
        try:
            t = _new(Tensor)
            t._a = xp.reshape(x._a, tuple(shape))
            t._xp = xp
            t._t = None
            return t
        except Exception:
            pass
    x = as_tensor(x, "reshape")
    if isinstance(shape, int):
        shape = (shape,)
    src = x.shape
    shape = _resolve_shape(shape, _size(src), "reshape", src)
    if shape == src and copy is None:
        return x
    return bind(reshape_p, (x,), {"shape": shape, "copy": copy})


# -- broadcasting ---------------------------------------------------------------------
def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """The shape that arrays of the given shapes broadcast to.

    Example:
        >>> import functorch_lite as fl
        >>> fl.broadcast_shapes((3, 1), (4,))
        (3, 4)
    """
    n = max((len(s) for s in shapes), default=0)
    out = [1] * n
    for s in shapes:
        for i, d in enumerate(s):
            j = n - len(s) + i
            o = out[j]
            if d == o or d == 1:
                continue
            if o == 1:
                out[j] = d
            else:
                raise ShapeError(
                    f"broadcast: shapes {' and '.join(str(tuple(x)) for x in shapes)} do not "
                    f"broadcast (axis {j - n}: {o} vs {d}); each axis must match or be 1."
                )
    return tuple(out)


broadcast_to_p = Primitive("broadcast_to", lambda xp, x, *, shape: xp.broadcast_to(x, shape))
broadcast_to_p.jvp = lambda ts, out, x, **p: broadcast_to(ts[0], p["shape"])
broadcast_to_p.vjp = lambda g, out, x, **p: (g,)  # the engine sums the broadcast axes away
broadcast_to_p.avjp = lambda xp, g, o, ps, par, p: (g,)


def _broadcast_to_batch(n: int, vals: Any, dims: Any, *, shape: tuple[int, ...]) -> Any:
    x = move_bdim_to_front(vals[0], dims[0])
    r = x.ndim - 1
    if r < len(shape):
        s = x.shape
        x = reshape(x, (s[0],) + (1,) * (len(shape) - r) + s[1:])
    return bind(broadcast_to_p, (x,), {"shape": (x.shape[0],) + tuple(shape)}), 0


broadcast_to_p.batch = _broadcast_to_batch


def broadcast_to(x: Any, /, shape: Sequence[int]) -> Tensor:
    """Broadcast ``x`` to ``shape``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.broadcast_to(fl.asarray([1.0, 2.0]), (3, 2)).shape
        (3, 2)
    """
    x = as_tensor(x, "broadcast_to")
    shape = tuple(int(s) for s in shape)
    src = x.shape
    if src == shape:
        return x
    if len(shape) < len(src) or broadcast_shapes(src, shape) != shape:
        raise ShapeError(
            f"broadcast_to: cannot broadcast an array of shape {src} to shape {shape}; "
            "each axis must match or be 1, and the target needs at least as many axes."
        )
    return bind(broadcast_to_p, (x,), {"shape": shape})


def broadcast_arrays(*arrays: Any) -> list[Tensor]:
    """Broadcast arrays against each other.

    Example:
        >>> import functorch_lite as fl
        >>> [a.shape for a in fl.broadcast_arrays(fl.ones((3, 1)), fl.ones((4,)))]
        [(3, 4), (3, 4)]
    """
    ts = [as_tensor(a, "broadcast_arrays") for a in arrays]
    shape = broadcast_shapes(*(t.shape for t in ts))
    return [broadcast_to(t, shape) for t in ts]


# -- axes -------------------------------------------------------------------------------
permute_dims_p = Primitive("permute_dims", lambda xp, x, *, axes: xp.permute_dims(x, axes))
permute_dims_p.jvp = lambda ts, out, x, **p: permute_dims(ts[0], p["axes"])


def _inv(axes: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return tuple(inv)


permute_dims_p.vjp = lambda g, out, x, **p: (permute_dims(g, _inv(p["axes"])),)
permute_dims_p.avjp = lambda xp, g, o, ps, par, p: (xp.permute_dims(g, _inv(p["axes"])),)
permute_dims_p.batch = lambda n, vals, dims, *, axes: (
    bind(permute_dims_p, (move_bdim_to_front(vals[0], dims[0]),), {"axes": (0,) + tuple(a + 1 for a in axes)}),
    0,
)


def permute_dims(x: Any, /, axes: Sequence[int]) -> Tensor:
    """Permute the axes of ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.permute_dims(fl.ones((2, 3, 4)), (2, 0, 1)).shape
        (4, 2, 3)
    """
    x = as_tensor(x, "permute_dims")
    nd = x.ndim
    axes = tuple(normalize_axis(a, nd, "permute_dims") for a in axes)
    if sorted(axes) != list(range(nd)):
        raise ShapeError(f"permute_dims: axes must be a permutation of range({nd}); got {axes}.")
    if axes == tuple(range(nd)):
        return x
    return bind(permute_dims_p, (x,), {"axes": axes})


def moveaxis(x: Any, source: int | Sequence[int], destination: int | Sequence[int], /) -> Tensor:
    """Move axes of ``x`` to new positions.

    Example:
        >>> import functorch_lite as fl
        >>> fl.moveaxis(fl.ones((2, 3, 4)), 0, -1).shape
        (3, 4, 2)
    """
    x = as_tensor(x, "moveaxis")
    nd = x.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ShapeError(f"moveaxis: source {source} and destination {destination} need the same length.")
    src = [normalize_axis(a, nd, "moveaxis") for a in src]
    dst = [normalize_axis(a, nd, "moveaxis") for a in dst]
    order = [a for a in range(nd) if a not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return permute_dims(x, tuple(order))


def matrix_transpose(x: Any, /) -> Tensor:
    """Swap the last two axes.

    Example:
        >>> import functorch_lite as fl
        >>> fl.matrix_transpose(fl.ones((2, 3))).shape
        (3, 2)
    """
    x = as_tensor(x, "matrix_transpose")
    if x.ndim < 2:
        raise ShapeError(f"matrix_transpose: needs at least 2 dimensions; got shape {x.shape}.")
    nd = x.ndim
    return permute_dims(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def expand_dims(x: Any, /, axis: int = 0) -> Tensor:
    """Insert an axis of size one at ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.expand_dims(fl.ones((3,)), axis=0).shape
        (1, 3)
    """
    x = as_tensor(x, "expand_dims")
    if isinstance(axis, (tuple, list)):
        nd = x.ndim + len(axis)
        axes = sorted(normalize_axis(a, nd, "expand_dims") for a in axis)
        shape = list(x.shape)
        for a in axes:
            shape.insert(a, 1)
        return reshape(x, tuple(shape))
    nd = x.ndim + 1
    if not -nd <= axis < nd:
        raise IndexError(f"expand_dims: axis {axis} is out of range for a result of {nd} dimensions.")
    a = axis % nd
    shape = x.shape
    return reshape(x, shape[:a] + (1,) + shape[a:])


def squeeze(x: Any, /, axis: int | tuple[int, ...]) -> Tensor:
    """Remove axes of size one.

    Example:
        >>> import functorch_lite as fl
        >>> fl.squeeze(fl.ones((1, 3)), axis=0).shape
        (3,)
    """
    x = as_tensor(x, "squeeze")
    shape = x.shape
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(normalize_axis(a, len(shape), "squeeze") for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"squeeze: repeated axis in {axis!r}.")
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {shape[a]}, not 1; only axes of size one can be removed.")
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes))


# -- flip / roll --------------------------------------------------------------------------
flip_p = Primitive("flip", lambda xp, x, *, axis: xp.flip(x, axis=axis))
flip_p.jvp = lambda ts, out, x, **p: bind(flip_p, (ts[0],), p)
flip_p.vjp = lambda g, out, x, **p: (bind(flip_p, (g,), p),)
flip_p.batch = lambda n, vals, dims, *, axis: (
    bind(flip_p, (move_bdim_to_front(vals[0], dims[0]),), {"axis": tuple(a + 1 for a in axis)}),
    0,
)


def flip(x: Any, /, *, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """Reverse the order of elements along ``axis`` (all axes by default).

    Example:
        >>> import functorch_lite as fl
        >>> fl.flip(fl.asarray([1, 2, 3])).tolist()
        [3, 2, 1]
    """
    x = as_tensor(x, "flip")
    nd = x.ndim
    if axis is None:
        axes = tuple(range(nd))
    elif isinstance(axis, int):
        axes = (normalize_axis(axis, nd, "flip"),)
    else:
        axes = tuple(normalize_axis(a, nd, "flip") for a in axis)
    if not axes:
        return x
    return bind(flip_p, (x,), {"axis": axes})


roll_p = Primitive("roll", lambda xp, x, *, shift, axis: xp.roll(x, shift, axis=axis))
roll_p.jvp = lambda ts, out, x, **p: bind(roll_p, (ts[0],), p)
roll_p.vjp = lambda g, out, x, *, shift, axis: (bind(roll_p, (g,), {"shift": tuple(-s for s in shift), "axis": axis}),)


def _roll_batch(n: int, vals: Any, dims: Any, *, shift: Any, axis: Any) -> Any:
    x = move_bdim_to_front(vals[0], dims[0])
    if axis is None:  # roll of the flattened array: flatten all but the batch axis
        s = x.shape
        r = bind(roll_p, (reshape(x, (s[0], -1)),), {"shift": shift, "axis": (1,)})
        return reshape(r, s), 0
    return bind(roll_p, (x,), {"shift": shift, "axis": tuple(a + 1 for a in axis)}), 0


roll_p.batch = _roll_batch


def roll(x: Any, /, shift: int | tuple[int, ...], *, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """Roll elements along ``axis`` (the flattened array when None).

    Example:
        >>> import functorch_lite as fl
        >>> fl.roll(fl.asarray([1, 2, 3]), 1).tolist()
        [3, 1, 2]
    """
    x = as_tensor(x, "roll")
    if axis is None:
        if not isinstance(shift, int):
            shift = builtins.sum(shift)
        return bind(roll_p, (x,), {"shift": (int(shift),), "axis": None})
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: shift {shift} and axis {axis} need the same length.")
    axes = tuple(normalize_axis(a, x.ndim, "roll") for a in axes)
    return bind(roll_p, (x,), {"shift": tuple(int(s) for s in shifts), "axis": axes})


# -- concat / stack -----------------------------------------------------------------------
def _concat_impl(xp: Any, *xs: Any, axis: Any) -> Any:
    return xp.concat(list(xs), axis=axis)


concat_p = Primitive("concat", _concat_impl)
concat_p.jvp = lambda ts, out, *xs, axis: concat(
    [t if t is not None else _zeros_like(x) for t, x in zip(ts, xs, strict=True)], axis=axis
)


def _zeros_like(x: Any) -> Any:
    zeros_like = _creation.zeros_like

    return zeros_like(x)


def _concat_vjp(g: Any, out: Any, *xs: Any, axis: Any) -> Any:
    getitem = _indexing.getitem

    if axis is None:
        g = reshape(g, (-1,))
        ax = 0
    else:
        ax = axis
    res = []
    start = 0
    for x in xs:
        n = x.shape[ax] if axis is not None else x.size
        key = (slice(None),) * ax + (slice(start, start + n),)
        res.append(
            (lambda k=key, xs_=x: reshape(getitem(g, k), xs_.shape)) if axis is None else (lambda k=key: getitem(g, k))  # type: ignore[misc]
        )
        start += n
    return tuple(res)


concat_p.vjp = _concat_vjp


def _concat_batch(n: int, vals: Any, dims: Any, *, axis: Any) -> Any:
    xs = [move_bdim_to_front(v, d, n) for v, d in zip(vals, dims, strict=True)]
    if axis is None:
        xs = [reshape(x, (n, -1)) for x in xs]
        return bind(concat_p, xs, {"axis": 1}), 0
    return bind(concat_p, xs, {"axis": axis + 1}), 0


concat_p.batch = _concat_batch


def concat(arrays: Sequence[Any], /, *, axis: int | None = 0) -> Tensor:
    """Join arrays along an existing axis (the flattened arrays when ``axis`` is None).

    Example:
        >>> import functorch_lite as fl
        >>> fl.concat([fl.ones((2, 3)), fl.zeros((1, 3))]).shape
        (3, 3)
    """
    result_type = _elementwise.result_type
    astype = _ops_dtypes.astype

    ts = [as_tensor(a, "concat") for a in arrays]
    if not ts:
        raise ValueError("concat: needs at least one array.")
    same_backend("concat", *ts)
    dt = result_type(*ts)
    ts = [t if t.dtype is dt else astype(t, dt) for t in ts]
    if axis is None:
        return bind(concat_p, ts, {"axis": None})
    nd = ts[0].ndim
    if nd == 0:
        raise ShapeError("concat: zero-dimensional arrays cannot be concatenated; use stack.")
    ax = normalize_axis(axis, nd, "concat")
    for t in ts[1:]:
        s0, s = ts[0].shape, t.shape
        if len(s) != nd or builtins.any(a != b for i, (a, b) in enumerate(zip(s0, s, strict=True)) if i != ax):
            raise ShapeError(
                f"concat: shapes {s0} and {s} differ outside axis {ax}; all but the concatenation axis must match."
            )
    if len(ts) == 1:
        return ts[0]
    return bind(concat_p, ts, {"axis": ax})


def stack(arrays: Sequence[Any], /, *, axis: int = 0) -> Tensor:
    """Join arrays along a new axis.

    Example:
        >>> import functorch_lite as fl
        >>> fl.stack([fl.ones((3,)), fl.zeros((3,))], axis=1).shape
        (3, 2)
    """
    ts = [as_tensor(a, "stack") for a in arrays]
    if not ts:
        raise ValueError("stack: needs at least one array.")
    s0 = ts[0].shape
    for t in ts[1:]:
        if t.shape != s0:
            raise ShapeError(f"stack: all arrays need one shape; got {s0} and {t.shape}.")
    ax = axis % (len(s0) + 1) if -(len(s0) + 1) <= axis <= len(s0) else None
    if ax is None:
        raise IndexError(f"stack: axis {axis} is out of range for a result of {len(s0) + 1} dimensions.")
    return concat([expand_dims(t, axis=ax) for t in ts], axis=ax)


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Tensor, ...]:
    """Split ``x`` into a tuple of arrays along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> len(fl.unstack(fl.ones((3, 2))))
        3
    """
    getitem = _indexing.getitem

    x = as_tensor(x, "unstack")
    ax = normalize_axis(axis, x.ndim, "unstack")
    return tuple(getitem(x, (slice(None),) * ax + (i,)) for i in range(x.shape[ax]))


def tile(x: Any, repetitions: Sequence[int], /) -> Tensor:
    """Repeat the whole of ``x`` along each axis (composite: broadcast and reshape).

    Example:
        >>> import functorch_lite as fl
        >>> fl.tile(fl.asarray([1, 2]), (2,)).tolist()
        [1, 2, 1, 2]
    """
    x = as_tensor(x, "tile")
    reps = tuple(int(r) for r in repetitions)
    nd = max(x.ndim, len(reps))
    reps = (1,) * (nd - len(reps)) + reps
    shape = (1,) * (nd - x.ndim) + x.shape
    x = reshape(x, shape)
    # interleave: (r0, s0, r1, s1, ...) then merge pairs
    y = reshape(x, tuple(v for s in shape for v in (1, s)))
    y = broadcast_to(y, tuple(v for r, s in zip(reps, shape, strict=True) for v in (r, s)))
    return reshape(y, tuple(r * s for r, s in zip(reps, shape, strict=True)))


def repeat(x: Any, repeats: int | Any, /, *, axis: int | None = None) -> Tensor:
    """Repeat each element of ``x`` ``repeats`` times along ``axis`` (flattened when None).

    Example:
        >>> import functorch_lite as fl
        >>> fl.repeat(fl.asarray([1, 2]), 2).tolist()
        [1, 1, 2, 2]
    """
    take = _indexing.take

    x = as_tensor(x, "repeat")
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    ax = normalize_axis(axis, x.ndim, "repeat")
    n = x.shape[ax]
    if isinstance(repeats, int):
        shape = x.shape
        y = expand_dims(x, axis=ax + 1)
        y = broadcast_to(y, shape[: ax + 1] + (repeats,) + shape[ax + 1 :])
        return reshape(y, shape[:ax] + (n * repeats,) + shape[ax + 1 :])
    # NOTE: data-dependent repeats: build the gather index on the host (shapes depend on values)
    r = as_tensor(repeats, "repeat")
    counts = [int(v) for v in r.tolist()]
    if len(counts) == 1:  # a single count broadcasts along the axis
        counts = counts * n
    if len(counts) != n:
        raise ShapeError(f"repeat: repeats has {len(counts)} entries for an axis of size {n}.")
    idx = [i for i, c in enumerate(counts) for _ in range(c)]
    asarray_like = _creation.asarray_like

    return take(x, asarray_like(idx, x, int_dtype=True), axis=ax)


for _p in (reshape_p, broadcast_to_p, permute_dims_p, flip_p, roll_p, concat_p):
    _p.residuals = (False, False)  # the rules read shapes only


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import creation as _creation  # noqa: E402
from . import dtypes as _ops_dtypes  # noqa: E402
from . import elementwise as _elementwise  # noqa: E402
from . import indexing as _indexing  # noqa: E402
