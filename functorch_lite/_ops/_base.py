"""Shared machinery of the ops layer: converting inputs, dtype rules, batching helpers."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .._core.engine import Primitive, bind, mixed_backends
from .._core.tensor import Tensor, backend_for, wrap
from .._errors import BackendError, DTypeError

__all__ = [
    "Tensor",
    "Primitive",
    "bind",
    "wrap",
    "asarray",
    "as_tensor",
    "default_float",
    "default_int",
    "set_default_dtype",
    "get_default_dtype",
    "dtype_of",
    "native_dtype",
    "backend_for",
    "scalar_types",
    "normalize_axis",
    "normalize_axes",
    "check_dtype",
]

scalar_types = (builtins.bool, int, float, complex)

_default_float = [D.float32]


_OK_OTHER = (Tensor,) + scalar_types


def _operand_ok(other: Any) -> bool:
    """Whether an operator may take ``other``: a Tensor, a Python scalar or a backend array."""
    if isinstance(other, _OK_OTHER):
        return True

    return _backend.backend_of(other) is not None


def default_float() -> D.DType:
    return _default_float[0]


def default_int() -> D.DType:
    return D.int64


def default_complex() -> D.DType:
    return D.complex64 if _default_float[0] is D.float32 else D.complex128


def set_default_dtype(dtype: D.DType) -> None:
    """Set the dtype of Python floats and float creation functions (float32 or float64).

    Example:
        >>> import functorch_lite as fl
        >>> fl.set_default_dtype(fl.float64); fl.asarray(1.0).dtype
        functorch_lite.float64
        >>> fl.set_default_dtype(fl.float32)
    """
    dt = check_dtype(dtype, "set_default_dtype")
    if dt.kind != "f":
        raise DTypeError(
            f"set_default_dtype: the default dtype must be a real floating dtype; got {dt.name}. "
            "Use fl.float32 or fl.float64."
        )
    _default_float[0] = dt


def get_default_dtype() -> D.DType:
    """The dtype Python floats and float creation functions get (float32 unless changed).

    Example:
        >>> import functorch_lite as fl
        >>> fl.get_default_dtype()
        functorch_lite.float32
    """
    return _default_float[0]


def check_dtype(dtype: Any, op: str) -> D.DType:
    """Turn a dtype argument (fl dtype, backend dtype, name) into a DType, or raise."""
    if dtype.__class__ is D.DType:
        return dtype
    if dtype is builtins.bool:
        return D.bool_
    if dtype is float:
        return _default_float[0]
    if dtype is int:
        return D.int64
    if dtype is complex:
        return default_complex()
    name = D._native_name(dtype)
    dt = D.by_name(name) if name else None
    if dt is None:
        raise DTypeError(
            f"{op}: {dtype!r} is not a dtype of the array API standard; use one of "
            "fl.bool, fl.int8..fl.int64, fl.uint8..fl.uint64, fl.float32, fl.float64, "
            "fl.complex64, fl.complex128."
        )
    return dt


def dtype_of(x: Any) -> D.DType:
    if isinstance(x, Tensor):
        return x.dtype
    if isinstance(x, builtins.bool):
        return D.bool_
    if isinstance(x, int):
        return D.int64
    if isinstance(x, float):
        return _default_float[0]
    if isinstance(x, complex):
        return default_complex()
    return as_tensor(x, "dtype").dtype


def native_dtype(xp: Any, dtype: D.DType | None) -> Any:
    return backend_for(xp).native(dtype)


def _infer_dtype(obj: Any) -> D.DType:
    kind = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, builtins.bool):
            pass
        elif isinstance(o, int):
            kind = max(kind, 1)
        elif isinstance(o, float):
            kind = max(kind, 2)
        elif isinstance(o, complex):
            kind = 3
        elif isinstance(o, Tensor):
            return D.float64  # placeholder, handled by stacking
        else:
            raise DTypeError(
                f"asarray: cannot make an array from an object of type {type(o).__name__} "
                f"({o!r}); pass numbers, nested lists of numbers, or arrays."
            )
    if kind == 0 and _all_bool(obj):
        return D.bool_
    return (D.int64, D.int64, _default_float[0], default_complex())[kind]


def _all_bool(obj: Any) -> bool:
    if isinstance(obj, (list, tuple)):
        return builtins.all(_all_bool(o) for o in obj)
    return isinstance(obj, builtins.bool)


def _contains_tensor(obj: Any) -> bool:
    if isinstance(obj, Tensor):
        return True
    if isinstance(obj, (list, tuple)):
        return builtins.any(_contains_tensor(o) for o in obj)
    return False


def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    device: Any = None,
    copy: builtins.bool | None = None,
) -> Tensor:
    """Convert ``obj`` (Tensor, any backend's array, Python scalar or nested list) to a Tensor.

    Arrays keep their backend and dtype; Python data goes to the default
    backend with float32 for floats (see ``set_default_dtype``) and int64 for ints.

    Example:
        >>> import functorch_lite as fl
        >>> fl.asarray([1.0, 2.0]).dtype
        functorch_lite.float32
    """
    dt = None if dtype is None else check_dtype(dtype, "asarray")
    if isinstance(obj, Tensor):
        t = obj
        if dt is not None and t.dtype is not dt:
            if copy is False:
                raise ValueError(
                    f"asarray: copy=False, but converting dtype {t.dtype.name} to {dt.name} needs a "
                    "copy; pass copy=None (copy only when needed) or cast with astype."
                )
            from .dtypes import astype

            t = astype(t, dt)  # a new array (and, under a transform, a differentiable cast)
        elif copy:
            if t._t is None:
                t = wrap(backend_for(t._xp).xp.asarray(t._a, copy=True), t._xp)
            else:  # a traced copy: a new Tensor, with the gradient flowing through as identity
                from .dtypes import astype

                t = astype(t, t.dtype, copy=True)
        if device is not None:
            if t._t is None:
                t = t.to_device(device)
            elif device != t.device:
                from .._errors import TransformError

                raise TransformError(
                    f"asarray: cannot move a traced Tensor to device {device!r} (it is on "
                    f"{t.device!r}) inside a transform; move the inputs before calling the transform."
                )
        return t
    b = _backend.backend_of(obj)
    if b is not None:
        a = b.fix(obj)
        if dt is not None or copy or device is not None:
            kwargs: dict[str, Any] = {}
            if dt is not None:
                kwargs["dtype"] = b.native(dt)
            if copy is not None:
                kwargs["copy"] = copy
            if device is not None:
                kwargs["device"] = device
            a = b.xp.asarray(a, **kwargs)
        b.dtype_of(a)  # raises for dtypes outside the standard
        return wrap(a, b.xp)
    if _contains_tensor(obj):
        from .manipulation import stack

        return stack([asarray(o, dtype=dt, device=device) for o in obj])
    b = _backend.current_default()
    if isinstance(obj, (builtins.bool, int, float, complex, list, tuple)):
        if dt is None:
            dt = _infer_dtype(obj)
        kwargs = {"dtype": b.native(dt)}
        if device is not None:
            kwargs["device"] = device
        try:
            a = b.xp.asarray(obj, **kwargs)
        except (ValueError, OverflowError, TypeError) as exc:
            raise DTypeError(
                f"asarray: cannot convert {_short(obj)} to {dt.name} on backend {b.name!r} "
                f"({exc}); check that the nested lists are rectangular and the values fit the dtype."
            ) from None
        return wrap(a, b.xp)
    if hasattr(obj, "__dlpack__"):
        return wrap(b.xp.from_dlpack(obj), b.xp)
    if hasattr(obj, "__array__") or hasattr(obj, "__array_interface__"):
        nb = _backend.numpy_backend
        a = nb.xp.asarray(obj)
        return asarray(wrap(nb.fix(a), nb.xp) if b is nb else wrap(b.from_numpy(a, device), b.xp), dtype=dt)
    raise BackendError(
        f"asarray: cannot make a Tensor from an object of type {type(obj).__name__}; pass a "
        "Tensor, an array of an array API library (numpy, cupy, torch, jax, dask, "
        "array_api_strict), a Python scalar or a nested list of numbers."
    )


def _short(obj: Any) -> str:
    r = repr(obj)
    return r if len(r) < 60 else r[:57] + "..."


def as_tensor(x: Any, op: str, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; Python scalars take ``like``'s backend."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, scalar_types):
        xp = like._xp
        if isinstance(x, builtins.bool):
            dt = D.bool_
        elif isinstance(x, int):
            ldt = like.dtype
            dt = ldt if ldt.kind in "iufc" else D.int64
        elif isinstance(x, float):
            ldt = like.dtype
            dt = ldt if ldt.kind in "fc" else _default_float[0]
        else:
            ldt = like.dtype
            dt = ldt if ldt.kind == "c" else (D.complex128 if ldt is D.float64 else default_complex())
        return wrap(xp.asarray(x, dtype=backend_for(xp).native(dt)), xp)
    try:
        return asarray(x)
    except (BackendError, DTypeError) as exc:
        raise type(exc)(f"{op}: {exc}") from None


def same_backend(op: str, *ts: Tensor) -> None:
    xp = None
    for t in ts:
        if xp is None:
            xp = t._xp
        elif t._xp is not xp and not _backend.mixable(xp, t._xp):  # (numpy meets dask: lifted by bind)
            raise mixed_backends(op, xp, t._xp)


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    if not isinstance(axis, int) or isinstance(axis, builtins.bool):
        raise TypeError(f"{op}: axis must be an int; got {axis!r}.")
    if axis < -ndim or axis >= max(ndim, 1) and not (ndim == 0 and axis in (0, -1)):
        from .._errors import ShapeError

        raise ShapeError(
            f"{op}: axis {axis} is out of range for an array of {ndim} dimension(s); "
            f"use an axis in [{-ndim}, {ndim - 1}]."
        )
    return axis % ndim if ndim else 0


def normalize_axes(axis: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """None, an int or a tuple of ints -> a sorted tuple of non-negative axes (None stays None)."""
    if axis is None:
        return None
    if axis.__class__ is int and -ndim <= axis < ndim:  # the common case: one valid axis
        return (axis % ndim,)
    if isinstance(axis, (tuple, list)):
        out = tuple(normalize_axis(a, ndim, op) for a in axis)
        if len(set(out)) != len(out):
            raise ValueError(f"{op}: repeated axis in {axis!r}; name each axis once.")
        return tuple(sorted(out))
    return (normalize_axis(axis, ndim, op),)


def unique_backend(args: Sequence[Any]) -> Any:
    xp = None
    for a in args:
        if isinstance(a, Tensor):
            if xp is None:
                xp = a._xp
    return xp
