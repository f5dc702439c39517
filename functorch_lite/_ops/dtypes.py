"""Data type functions of the standard: astype, can_cast, finfo, iinfo, isdtype."""

from __future__ import annotations

import builtins
import dataclasses
from typing import Any

from .. import _dtypes as D
from .._core.tensor import Tensor
from .._errors import DTypeError
from ._base import Primitive, as_tensor, backend_for, bind, check_dtype

__all__ = ["astype", "can_cast", "finfo", "iinfo", "isdtype"]

_new = object.__new__


def _astype_impl(xp: Any, x: Any, *, dtype: D.DType, copy: builtins.bool = True) -> Any:
    nat = backend_for(xp).native(dtype)
    return xp.astype(x, nat, copy=copy)


astype_p = Primitive("astype", _astype_impl)


def _astype_jvp(ts: Any, out: Any, x: Any, *, dtype: D.DType, copy: builtins.bool = True) -> Any:
    if dtype.kind not in "fc":
        return None  # integer / bool results carry no tangent
    return astype(ts[0], dtype)


def _astype_vjp(g: Any, out: Any, x: Any, *, dtype: D.DType, copy: builtins.bool = True) -> Any:
    src = x.dtype
    if src.kind not in "fc":
        return (None,)
    if src.kind == "f" and dtype.kind == "c":
        real = _elementwise.real

        g = real(g)
    return (astype(g, src),)


astype_p.jvp = _astype_jvp
astype_p.vjp = _astype_vjp
astype_p.batch = lambda n, vals, dims, **p: (bind(astype_p, vals, p), dims[0])


def astype(x: Any, dtype: Any, /, *, copy: builtins.bool = True, device: Any = None) -> Tensor:
    """Cast ``x`` to ``dtype``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.astype(fl.asarray([1.5]), fl.int32).dtype
        functorch_lite.int32
    """
    x = as_tensor(x, "astype")
    dt = check_dtype(dtype, "astype")
    if x.dtype is dt and not copy:
        return x
    r = bind(astype_p, (x,), {"dtype": dt, "copy": copy})
    if device is not None:
        r = r.to_device(device)
    return r


def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Whether ``from_`` (a dtype or array) casts to ``to`` under the promotion rules.

    Example:
        >>> import functorch_lite as fl
        >>> fl.can_cast(fl.int8, fl.int32), fl.can_cast(fl.float64, fl.float32)
        (True, False)
    """
    f = from_.dtype if isinstance(from_, Tensor) else check_dtype(from_, "can_cast")
    t = check_dtype(to, "can_cast")
    if f is t:
        return True
    try:
        return (
            D.promote(f, t) is t and not (f.kind in "iu" and t.kind in "fc") and not (f.kind == "c" and t.kind != "c")
        )
    except KeyError:
        return False


@dataclasses.dataclass(frozen=True)
class finfo_object:
    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: D.DType


@dataclasses.dataclass(frozen=True)
class iinfo_object:
    bits: int
    max: int
    min: int
    dtype: D.DType


_FINFO = {
    D.float32: (32, 1.1920928955078125e-07, 3.4028234663852886e38, 1.1754943508222875e-38),
    D.float64: (64, 2.220446049250313e-16, 1.7976931348623157e308, 2.2250738585072014e-308),
}


def finfo(type: Any, /) -> finfo_object:
    """Machine limits of a floating dtype (fields are Python floats).

    Example:
        >>> import functorch_lite as fl
        >>> fl.finfo(fl.float32).bits
        32
    """
    dt = type.dtype if isinstance(type, Tensor) else check_dtype(type, "finfo")
    real = {D.complex64: D.float32, D.complex128: D.float64}.get(dt, dt)
    if real not in _FINFO:
        raise DTypeError(f"finfo: needs a floating dtype; got {dt.name}. Use iinfo for integers.")
    bits, eps, mx, tiny = _FINFO[real]
    # The standard: a complex dtype reports its real-valued floating-point counterpart.
    return finfo_object(bits, eps, mx, -mx, tiny, real)


def iinfo(type: Any, /) -> iinfo_object:
    """Machine limits of an integer dtype.

    Example:
        >>> import functorch_lite as fl
        >>> fl.iinfo(fl.int8).max
        127
    """
    dt = type.dtype if isinstance(type, Tensor) else check_dtype(type, "iinfo")
    if dt.kind not in "iu":
        raise DTypeError(f"iinfo: needs an integer dtype; got {dt.name}. Use finfo for floats.")
    if dt.kind == "u":
        return iinfo_object(dt.bits, 2**dt.bits - 1, 0, dt)
    return iinfo_object(dt.bits, 2 ** (dt.bits - 1) - 1, -(2 ** (dt.bits - 1)), dt)


_KINDS = {
    "bool": "b",
    "signed integer": "i",
    "unsigned integer": "u",
    "integral": "iu",
    "real floating": "f",
    "complex floating": "c",
    "numeric": "iufc",
}


def isdtype(dtype: Any, kind: Any) -> builtins.bool:
    """Whether ``dtype`` is of ``kind`` (a dtype, a kind name, or a tuple of them).

    Example:
        >>> import functorch_lite as fl
        >>> fl.isdtype(fl.float32, "real floating")
        True
    """
    dt = check_dtype(dtype, "isdtype")
    if isinstance(kind, tuple):
        return builtins.any(isdtype(dt, k) for k in kind)
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"isdtype: unknown kind {kind!r}; use one of {', '.join(_KINDS)}.")
        return dt.kind in _KINDS[kind]
    return dt is check_dtype(kind, "isdtype")


astype_p.residuals = (False, False)  # the rules read dtypes only


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import elementwise as _elementwise  # noqa: E402
