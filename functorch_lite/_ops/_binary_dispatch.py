"""How a binary elementwise function meets its operands before it binds its primitive.

The eager fast paths of the function form (``fl.add(x, y)``) and of the operator form
(``x + y``), which call the backend's function directly when both operands are concrete
arrays of one dtype or one is a Python number (or record straight onto a reverse-mode
trace); the operator form's ``NotImplemented`` for operands it does not know; and the
standard's rules for mixing Tensors, arrays and Python scalars (``prep_binary``), which the
general path applies.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from .. import _backend
from .. import _dtypes as D

# Native float/complex and bool dtypes per backend namespace (for the scalar fast path).
from .._backend import BOOL_NATIVES as _BOOLS_BY_XP
from .._backend import FLOAT_NATIVES as _FLOATS_BY_XP
from .._core.tensor import Tensor
from ._base import Primitive, _operand_ok, as_tensor, default_complex, default_float, scalar_types

_new = object.__new__
_NUMPY_XP = _backend.numpy_backend.xp


def _prep_scalar(t: Tensor, s: Any) -> tuple[Tensor, Any]:
    k = t.dtype.kind
    sc = s.__class__
    if sc is not float and sc is not int and sc is not builtins.bool and sc is not complex:
        s = complex(s) if isinstance(s, complex) else float(s) if isinstance(s, float) else int(s)  # numpy scalars
    if s.__class__ is builtins.bool:
        if k in "iu":
            s = int(s)
        elif k in "fc":
            s = float(s)
    elif isinstance(s, int):
        if k == "b":
            t = _ops_dtypes.astype(t, D.int64)
    elif isinstance(s, float):
        if k in "biu":
            t = _ops_dtypes.astype(t, default_float())
    elif isinstance(s, complex):
        if k != "c":
            t = _ops_dtypes.astype(t, D.complex128 if t.dtype is D.float64 else default_complex())
    return t, s


def prep_binary(op: str, x: Any, y: Any) -> tuple[Any, Any]:
    """Apply the standard's rules for mixing Tensors, arrays and Python scalars."""
    yc = y.__class__
    if (yc is float or yc is int) and x.__class__ is Tensor:
        k = x.dtype.kind
        if k in "fc" or (yc is int and k != "b"):
            return x, y
    xs = isinstance(x, scalar_types)
    ys = isinstance(y, scalar_types)
    if not xs and not isinstance(x, Tensor):
        x = as_tensor(x, op)
    if not ys and not isinstance(y, Tensor):
        y = as_tensor(y, op)
    if xs and ys:
        x = as_tensor(x, op)
        xs = False
    if ys:
        x, y = _prep_scalar(x, y)
    elif xs:
        y, x = _prep_scalar(y, x)
    else:
        dx, dy = x.dtype, y.dtype
        if dx is not dy:
            r = D.promote(dx, dy)
            # NOTE: numpy promotes a bool operand inside the ufunc exactly as the table does, so
            # the copy that astype would make is skipped there (masks multiply at full speed).
            native_bool = x._xp is _NUMPY_XP and y._xp is _NUMPY_XP
            if dx is not r and not (native_bool and dx.kind == "b"):
                x = _ops_dtypes.astype(x, r)
            if dy is not r and not (native_bool and dy.kind == "b"):
                y = _ops_dtypes.astype(y, r)
    return x, y


def _dunder_slow(slow: Callable[..., Any]) -> Callable[..., Any]:
    def f(x: Any, y: Any) -> Any:
        yc = y.__class__
        if not (yc is float or yc is int or yc is Tensor) and not _operand_ok(y):
            return NotImplemented
        return slow(x, y)

    return f


def _make_fast_binary(name: str, slow: Callable[..., Any], prim: Primitive) -> Any:
    floats_by_xp, bools_by_xp = _FLOATS_BY_XP, _BOOLS_BY_XP
    npxp = _NUMPY_XP
    np_fn = getattr(npxp, name)  # numpy's own ufunc: no per-call lookup on the default backend
    np_floats, np_bools = floats_by_xp[npxp], bools_by_xp[npxp]

    def op(x: Any, y: Any, /) -> Any:
        if x.__class__ is not Tensor:
            return slow(x, y)
        yc = y.__class__
        p = x._t
        if p is None:
            xp = x._xp
            if yc is float:
                a = x._a
                if xp is npxp:
                    if a.dtype in np_floats:
                        # the Tensor is built inline, unrolled on purpose: a helper call would slow the eager hot path
                        t = _new(Tensor)
                        t._a = np_fn(a, y)
                        t._xp = xp
                        t._t = None
                        return t
                elif a.dtype in floats_by_xp[xp]:
                    t = _new(Tensor)
                    t._a = getattr(xp, name)(a, y)
                    t._xp = xp
                    t._t = None
                    return t
            elif yc is Tensor:
                q = y._t
                if q is None:
                    if y._xp is xp and x._a.dtype is y._a.dtype:
                        # the Tensor is built inline, unrolled on purpose: a helper call would slow the eager hot path
                        t = _new(Tensor)
                        try:
                            t._a = np_fn(x._a, y._a) if xp is npxp else getattr(xp, name)(x._a, y._a)
                        except ValueError:  # shapes that do not broadcast: the slow path names them
                            return slow(x, y)
                        t._xp = xp
                        t._t = None
                        return t
                else:
                    tr = q.trace
                    if tr.record1 is not None and tr.alive:  # reverse mode: record directly
                        r = tr.record2(prim, x, y, False, np_fn if xp is npxp else None)
                        if r is not None:
                            return r
            elif yc is int and x._a.dtype not in (np_bools if xp is npxp else bools_by_xp[xp]):
                # the Tensor is built inline, unrolled on purpose: a helper call would slow the eager hot path
                t = _new(Tensor)
                t._a = np_fn(x._a, y) if xp is npxp else getattr(xp, name)(x._a, y)
                t._xp = xp
                t._t = None
                return t
        else:
            tr = p.trace
            if tr.record1 is not None and tr.alive:  # reverse mode: record directly
                if yc is float or yc is int:
                    r = tr.record1(prim, p, x, y, np_fn if x._xp is npxp else None)
                elif yc is Tensor:
                    r = tr.record2(prim, x, y, False, np_fn if x._xp is npxp else None)
                else:
                    r = None
                if r is not None:
                    return r
        return slow(x, y)

    return op


def _scalar_first(name: str, general: Callable[..., Any], prim: Primitive | None = None) -> Any:
    """The operator form: ``self`` is a Tensor (or subclass), so the most common cases on numpy,
    a concrete float array with a Python float or with an array of its dtype, are tested first
    with the fewest steps."""
    npxp = _NUMPY_XP
    np_fn = getattr(npxp, name)
    np_floats = _FLOATS_BY_XP[npxp]

    def op(x: Tensor, y: Any, /) -> Any:
        if x._t is None and x._xp is npxp:
            yc = y.__class__
            if yc is float:
                a = x._a
                if a.dtype in np_floats:
                    # the Tensor is built inline, unrolled on purpose: a helper call would slow the eager hot path
                    t = _new(Tensor)
                    t._a = np_fn(a, y)
                    t._xp = npxp
                    t._t = None
                    return t
            elif yc is Tensor and y._t is None and y._xp is npxp:
                a = x._a
                b = y._a
                if a.dtype is b.dtype:
                    try:
                        r = np_fn(a, b)
                    except ValueError:  # shapes that do not broadcast: the general path names them
                        return general(x, y)
                    t = _new(Tensor)
                    t._a = r
                    t._xp = npxp
                    t._t = None
                    return t
        elif prim is not None and x.__class__ is Tensor:  # a tracer: reverse mode records directly
            p = x._t
            if p is not None:
                tr = p.trace
                if tr.record1 is not None and tr.alive:
                    yc = y.__class__
                    fn = np_fn if x._xp is npxp else None
                    if yc is float or yc is int:
                        r = tr.record1(prim, p, x, y, fn)
                    elif yc is Tensor:
                        r = tr.record2(prim, x, y, False, fn)
                    else:
                        r = None
                    if r is not None:
                        return r
        return general(x, y)

    return op


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import dtypes as _ops_dtypes  # noqa: E402
