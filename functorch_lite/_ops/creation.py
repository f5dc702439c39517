"""Creation functions of the standard: arange, zeros, ones, full, eye, linspace, tril, triu, ..."""

from __future__ import annotations

import builtins
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .._core.tensor import Tensor, backend_for, wrap
from ._base import (
    Primitive,
    as_tensor,
    asarray,
    bind,
    check_dtype,
    default_complex,
    default_float,
)
from ._rules import move_bdim_to_front

_new = object.__new__
_FAST = _backend.FAST_NAMESPACES
__all__ = [
    "arange",
    "asarray",
    "empty",
    "empty_like",
    "eye",
    "from_dlpack",
    "full",
    "full_like",
    "linspace",
    "meshgrid",
    "ones",
    "ones_like",
    "tril",
    "triu",
    "zeros",
    "zeros_like",
    "asarray_like",
]


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    out = tuple(int(s) for s in shape)
    for s in out:
        if s < 0:
            raise ValueError(f"shape: sizes must be non-negative; got {tuple(shape)}.")
    return out


def _make(fname: str, shape: Any, dtype: Any, device: Any, *args: Any) -> Tensor:
    b = _backend.current_default()
    dt = default_float() if dtype is None else check_dtype(dtype, fname)
    kw: dict[str, Any] = {"dtype": b.native(dt)}
    if device is not None:
        kw["device"] = device
    return wrap(getattr(b.xp, fname)(_shape(shape), *args, **kw), b.xp)


def zeros(shape: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    """An array of zeros (float32 unless ``dtype`` says otherwise).

    Example:
        >>> import functorch_lite as fl
        >>> fl.zeros((2, 3)).shape
        (2, 3)
    """
    return _make("zeros", shape, dtype, device)


def ones(shape: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    """An array of ones.

    Example:
        >>> import functorch_lite as fl
        >>> fl.ones(3).tolist()
        [1.0, 1.0, 1.0]
    """
    return _make("ones", shape, dtype, device)


def empty(shape: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    """An uninitialised array.

    Example:
        >>> import functorch_lite as fl
        >>> fl.empty((2,)).shape
        (2,)
    """
    return _make("empty", shape, dtype, device)


def _fill_dtype(fill_value: Any) -> D.DType:
    if isinstance(fill_value, builtins.bool):
        return D.bool_
    if isinstance(fill_value, int):
        return D.int64
    if isinstance(fill_value, float):
        return default_float()
    if isinstance(fill_value, complex):
        return default_complex()
    if isinstance(fill_value, Tensor):
        return fill_value.dtype
    raise TypeError(f"full: fill_value must be a Python scalar; got {type(fill_value).__name__}.")


def full(shape: Any, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    """An array filled with ``fill_value``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.full((2,), 7).tolist()
        [7, 7]
    """
    dt = _fill_dtype(fill_value) if dtype is None else check_dtype(dtype, "full")
    if isinstance(fill_value, Tensor):
        if fill_value.is_tracer:  # a traced fill: broadcast it (differentiable, batchable)
            broadcast_to = _manipulation.broadcast_to

            return broadcast_to(asarray(fill_value, dtype=dt), _shape(shape))
        fill_value = fill_value.item()  # (dt is the Tensor's dtype, as under a transform)
    b = _backend.current_default()
    kw: dict[str, Any] = {"dtype": b.native(dt)}
    if device is not None:
        kw["device"] = device
    return wrap(b.xp.full(_shape(shape), fill_value, **kw), b.xp)


def _like(fname: str, x: Any, dtype: Any, device: Any, *args: Any) -> Tensor:
    if not args and dtype is None and device is None and x.__class__ is Tensor and x._t is None:
        xp = x._xp  # the backend's own *_like keeps dtype and device
        t = _new(Tensor)
        t._a = getattr(_FAST.get(xp, xp), fname + "_like")(x._a, *args)
        t._xp = xp
        t._t = None
        return t
    x = as_tensor(x, fname)
    xp = x._xp
    dt = x.dtype if dtype is None else check_dtype(dtype, fname)
    kw: dict[str, Any] = {"dtype": backend_for(xp).native(dt)}
    if device is not None:
        kw["device"] = device
    elif x._t is None:
        try:
            kw["device"] = backend_for(xp).device(x._a)
        except Exception:
            pass
    return wrap(getattr(xp, fname)(x.shape, *args, **kw), xp)


def zeros_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Tensor:
    """Zeros with the shape, dtype and backend of ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.zeros_like(fl.ones((2,))).tolist()
        [0.0, 0.0]
    """
    return _like("zeros", x, dtype, device)


def ones_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Tensor:
    """Ones with the shape, dtype and backend of ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.ones_like(fl.zeros((2,))).tolist()
        [1.0, 1.0]
    """
    return _like("ones", x, dtype, device)


def empty_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Tensor:
    """An uninitialised array with the shape, dtype and backend of ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.empty_like(fl.zeros((2,))).shape
        (2,)
    """
    return _like("empty", x, dtype, device)


def full_like(x: Any, /, fill_value: Any, *, dtype: Any = None, device: Any = None) -> Tensor:
    """An array like ``x`` filled with ``fill_value``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.full_like(fl.zeros((2,)), 3.0).tolist()
        [3.0, 3.0]
    """
    if isinstance(fill_value, Tensor):
        if fill_value.is_tracer:  # a traced fill: broadcast it (differentiable, batchable)
            broadcast_to = _manipulation.broadcast_to

            x = as_tensor(x, "full_like")
            dt = x.dtype if dtype is None else check_dtype(dtype, "full_like")
            return broadcast_to(asarray(fill_value, dtype=dt), x.shape)
        fill_value = fill_value.item()
    return _like("full", x, dtype, device, fill_value)


def arange(
    start: int | float,
    /,
    stop: int | float | None = None,
    step: int | float = 1,
    *,
    dtype: Any = None,
    device: Any = None,
) -> Tensor:
    """Evenly spaced values in ``[start, stop)``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.arange(4).tolist()
        [0, 1, 2, 3]
    """
    b = _backend.current_default()
    if dtype is None:
        is_float = builtins.any(isinstance(v, float) for v in (start, stop, step))
        dt = default_float() if is_float else D.int64
    else:
        dt = check_dtype(dtype, "arange")
    kw: dict[str, Any] = {"dtype": b.native(dt)}
    if device is not None:
        kw["device"] = device
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero.")
    return wrap(b.xp.arange(start, stop, step, **kw), b.xp)


def linspace(
    start: int | float | complex,
    stop: int | float | complex,
    /,
    num: int,
    *,
    dtype: Any = None,
    device: Any = None,
    endpoint: builtins.bool = True,
) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.linspace(0.0, 1.0, 3).tolist()
        [0.0, 0.5, 1.0]
    """
    b = _backend.current_default()
    if dtype is None:
        dt = default_complex() if isinstance(start, complex) or isinstance(stop, complex) else default_float()
    else:
        dt = check_dtype(dtype, "linspace")
    if isinstance(start, Tensor) or isinstance(stop, Tensor):
        if (isinstance(start, Tensor) and start.is_tracer) or (isinstance(stop, Tensor) and stop.is_tracer):
            return _linspace_traced(start, stop, num, dt, endpoint)
        start = start.item() if isinstance(start, Tensor) else start
        stop = stop.item() if isinstance(stop, Tensor) else stop
    kw: dict[str, Any] = {"dtype": b.native(dt), "endpoint": endpoint}
    if device is not None:
        kw["device"] = device
    return wrap(b.xp.linspace(start, stop, num, **kw), b.xp)


def _linspace_traced(start: Any, stop: Any, num: int, dt: D.DType, endpoint: builtins.bool) -> Tensor:
    """linspace with traced ends: ``start + (stop - start) * i / div``, differentiable in both."""
    ref = start if isinstance(start, Tensor) and start.is_tracer else stop
    a = asarray(start, dtype=dt) if isinstance(start, Tensor) else start
    z = asarray(stop, dtype=dt) if isinstance(stop, Tensor) else stop
    div = (num - 1) if endpoint else num
    frac = asarray_like([i / div if div > 0 else 0.0 for i in range(num)], ref, dtype=dt)
    out = a + (z - a) * frac
    if endpoint and num > 1:  # the last value is stop exactly, as the backends' linspace gives it
        out[num - 1] = z
    return out


def eye(n_rows: int, n_cols: int | None = None, /, *, k: int = 0, dtype: Any = None, device: Any = None) -> Tensor:
    """A 2-d array with ones on the ``k``-th diagonal.

    Example:
        >>> import functorch_lite as fl
        >>> fl.eye(2).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    b = _backend.current_default()
    dt = default_float() if dtype is None else check_dtype(dtype, "eye")
    kw: dict[str, Any] = {"dtype": b.native(dt), "k": k}
    if device is not None:
        kw["device"] = device
    return wrap(b.xp.eye(n_rows, n_cols, **kw), b.xp)


def from_dlpack(x: Any, /, *, device: Any = None, copy: builtins.bool | None = None) -> Tensor:
    """A Tensor sharing memory with a DLPack-capable array (on the default backend).

    Example:
        >>> import functorch_lite as fl
        >>> fl.from_dlpack(fl.ones((2,))).shape
        (2,)
    """
    b = _backend.current_default()
    if isinstance(x, Tensor) and x.is_tracer and x._xp is b.xp:
        # a traced Tensor of this backend: the same values, still differentiable / batched
        return asarray(x, device=device, copy=True if copy else None)
    src = x._array("from_dlpack") if isinstance(x, Tensor) else x
    if b.narrowed:  # jax without x64 would narrow a float64 source to float32 silently
        sb = backend_for(x._xp) if isinstance(x, Tensor) else _backend.backend_of(src)
        sdt = None if sb is None else sb.from_native.get(src.dtype)
        if sdt is not None:
            b.check_not_narrowed(sdt)
    kw: dict[str, Any] = {}
    if device is not None:
        kw["device"] = device
    if copy is not None:
        kw["copy"] = copy
    try:
        a = b.xp.from_dlpack(src, **kw)
    except TypeError:
        a = b.xp.from_dlpack(src)
    return wrap(b.fix(a), b.xp)


def meshgrid(*arrays: Any, indexing: str = "xy") -> list[Tensor]:
    """Coordinate matrices from 1-d coordinate vectors (composite of reshape and broadcast).

    Example:
        >>> import functorch_lite as fl
        >>> [a.shape for a in fl.meshgrid(fl.arange(3), fl.arange(2))]
        [(2, 3), (2, 3)]
    """
    broadcast_to = _manipulation.broadcast_to
    reshape = _manipulation.reshape

    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij'; got {indexing!r}.")
    ts = [as_tensor(a, "meshgrid") for a in arrays]
    n = len(ts)
    sizes = [t.shape[0] if t.ndim else 1 for t in ts]
    if indexing == "xy" and n >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    out = []
    for i, t in enumerate(ts):
        pos = i
        if indexing == "xy" and n >= 2 and i < 2:
            pos = 1 - i
        shape = [1] * n
        shape[pos] = sizes[pos]
        out.append(broadcast_to(reshape(t, tuple(shape)), tuple(sizes)))
    return out


def _tri(name: str) -> Any:
    prim = Primitive(name, lambda xp, x, *, k, _n=name: getattr(xp, _n)(x, k=k))
    prim.jvp = lambda ts, out, x, **p: bind(prim, (ts[0],), p)
    prim.vjp = lambda g, out, x, **p: (bind(prim, (g,), p),)
    prim.batch = lambda n, vals, dims, **p: (bind(prim, (move_bdim_to_front(vals[0], dims[0]),), p), 0)

    def op(x: Any, /, *, k: int = 0) -> Tensor:
        x = as_tensor(x, name)
        if x.ndim < 2:
            raise ValueError(f"{name}: needs at least 2 dimensions; got shape {x.shape}.")
        return bind(prim, (x,), {"k": int(k)})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (
        f"The {'lower' if name == 'tril' else 'upper'} triangle of the last two axes (others zeroed).\n\n"
        f"Example:\n    >>> import functorch_lite as fl\n    >>> fl.{name}(fl.ones((2, 2))).tolist()\n"
        f"    {[[1.0, 0.0], [1.0, 1.0]] if name == 'tril' else [[1.0, 1.0], [0.0, 1.0]]}\n"
    )
    return op


tril = _tri("tril")
triu = _tri("triu")


def asarray_like(data: Any, like: Tensor, *, int_dtype: builtins.bool = False, dtype: Any = None) -> Tensor:
    """Python data as a concrete Tensor on ``like``'s backend."""
    xp = like._xp
    b = backend_for(xp)
    if dtype is None:
        dtype = D.int64 if int_dtype else like.dtype
    return wrap(xp.asarray(data, dtype=b.native(dtype)), xp)


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import manipulation as _manipulation  # noqa: E402
