"""The Tensor operators: ``x + y``, ``2 - x``, ``x += y``, ``x == y``, ``-x``, ``~x``, ...

Each operator calls its elementwise function (the reflected form with the operands swapped);
an in-place operator rebinds its Tensor to the result (functional mutation), except that a
float numpy array only that Tensor holds is written into by the ufunc itself.
"""

from __future__ import annotations

from typing import Any

from .. import _backend
from .._backend import BOOL_NATIVES as _BOOLS_BY_XP
from .._backend import FLOAT_NATIVES as _FLOATS_BY_XP
from .._core.tensor import Tensor
from .._errors import ShapeError
from ._base import _operand_ok

_new = object.__new__
_NUMPY_XP = _backend.numpy_backend.xp
_NP_FLOATS = _FLOATS_BY_XP[_NUMPY_XP]
_IN_PLACE = ("add", "subtract", "multiply", "divide")  # x op= y may write into x's own array

_ops_table = {
    "add": ("__add__", "__radd__", "__iadd__", "+"),
    "subtract": ("__sub__", "__rsub__", "__isub__", "-"),
    "multiply": ("__mul__", "__rmul__", "__imul__", "*"),
    "divide": ("__truediv__", "__rtruediv__", "__itruediv__", "/"),
    "floor_divide": ("__floordiv__", "__rfloordiv__", "__ifloordiv__", "//"),
    "remainder": ("__mod__", "__rmod__", "__imod__", "%"),
    "pow": ("__pow__", "__rpow__", "__ipow__", "**"),
    "bitwise_and": ("__and__", "__rand__", "__iand__", "&"),
    "bitwise_or": ("__or__", "__ror__", "__ior__", "|"),
    "bitwise_xor": ("__xor__", "__rxor__", "__ixor__", "^"),
    "bitwise_left_shift": ("__lshift__", "__rlshift__", "__ilshift__", "<<"),
    "bitwise_right_shift": ("__rshift__", "__rrshift__", "__irshift__", ">>"),
    "equal": ("__eq__", None, None, "=="),
    "not_equal": ("__ne__", None, None, "!="),
    "less": ("__lt__", None, None, "<"),
    "less_equal": ("__le__", None, None, "<="),
    "greater": ("__gt__", None, None, ">"),
    "greater_equal": ("__ge__", None, None, ">="),
}

_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _symbol(op: str) -> str:
    for _f, _r, i, sym in _ops_table.values():
        if i == op:
            return sym
    return "@" if op == "__imatmul__" else op


def rebind(t: Tensor, r: Tensor, op: str) -> Tensor:
    """Make Tensor ``t`` hold ``r``'s value (functional mutation)."""
    if r.shape != t.shape:
        raise ShapeError(
            f"{op}: an in-place operation cannot change the shape of its target; target shape "
            f"{t.shape}, result shape {r.shape}. Use the out-of-place form (x = x {_symbol(op)} y)."
        )
    if r.dtype is not t.dtype:
        if _KIND_RANK[r.dtype.kind] > _KIND_RANK[t.dtype.kind]:
            # numpy ("same_kind" casting) and torch refuse this: the cast would silently drop the
            # fraction / imaginary part (and, inside grad or jvp, the derivative)
            from .._errors import DTypeError

            raise DTypeError(
                f"{op}: the result has dtype {r.dtype.name}, which cannot be stored back into a "
                f"Tensor of dtype {t.dtype.name} without losing values. Use the out-of-place form "
                f"(x = x {_symbol(op)} y), or cast the target first "
                f"(x = fl.astype(x, fl.{r.dtype.name}))."
            )
        astype = _ops_dtypes.astype

        r = astype(r, t.dtype)
    t._a = r._a
    t._xp = r._xp
    t._t = r._t
    return t


def attach_operators(g: dict[str, Any], dunders: dict[str, Any]) -> None:
    """Set the operators of ``Tensor`` from the functions in ``g`` and their operator forms."""
    for fname, (fwd, rev, inplace, _sym) in _ops_table.items():
        fn = g[fname]
        prim = fn.prim
        dunders[fname].__name__ = fwd

        setattr(Tensor, fwd, dunders[fname])
        if rev is None:
            continue

        def reverse(
            self: Tensor,
            other: Any,
            _fn: Any = fn,
            _p: Any = prim,
            _n: str = fname,
            _np: Any = getattr(_NUMPY_XP, fname),
        ) -> Any:
            oc = other.__class__
            if oc is float or oc is int:
                p = self._t
                if p is None:
                    xp = self._xp
                    a = self._a
                    if oc is int or a.dtype in _FLOATS_BY_XP[xp]:
                        if not (oc is int and a.dtype in _BOOLS_BY_XP[xp]):
                            t = _new(Tensor)
                            t._a = _np(other, a) if xp is _NUMPY_XP else getattr(xp, _n)(other, a)
                            t._xp = xp
                            t._t = None
                            return t
                else:
                    tr = p.trace
                    if tr.record1 is not None and tr.alive and self.__class__ is Tensor:  # reverse mode
                        r = tr.record1(_p, p, self, other, _np if self._xp is _NUMPY_XP else None, True)
                        if r is not None:
                            return r
            if not _operand_ok(other):
                return NotImplemented
            return _fn(other, self)

        reverse.__name__ = rev
        setattr(Tensor, rev, reverse)

        def inplace_op(
            self: Tensor,
            other: Any,
            _fn: Any = fn,
            _name: Any = inplace,
            _np: Any = getattr(_NUMPY_XP, fname) if fname in _IN_PLACE else None,
        ) -> Any:
            if _np is not None and self._t is None and self._xp is _NUMPY_XP and self._a.dtype in _NP_FLOATS:
                # a float array only self holds: the ufunc writes into it (no copy; see _backend)
                oc = other.__class__
                if oc is float or oc is int:
                    if _backend.ufunc_in_place(self, _np, other):
                        return self
                elif oc is Tensor and other._t is None and other._xp is _NUMPY_XP and other._a.dtype is self._a.dtype:
                    if _backend.ufunc_in_place(self, _np, other._a):
                        return self
            if not _operand_ok(other):
                return NotImplemented
            return rebind(self, _fn(self, other), _name)

        inplace_op.__name__ = inplace  # type: ignore[assignment]
        setattr(Tensor, inplace, inplace_op)  # type: ignore[arg-type]

    def __neg__(self: Tensor) -> Tensor:
        return g["negative"](self)

    def __pos__(self: Tensor) -> Tensor:
        return g["positive"](self)

    def __abs__(self: Tensor) -> Tensor:
        return g["abs"](self)

    def __invert__(self: Tensor) -> Tensor:
        return g["bitwise_invert"](self)

    Tensor.__neg__ = __neg__  # type: ignore[method-assign]
    Tensor.__pos__ = __pos__  # type: ignore[method-assign]
    Tensor.__abs__ = __abs__  # type: ignore[method-assign]
    Tensor.__invert__ = __invert__  # type: ignore[method-assign]
    Tensor.__hash__ = object.__hash__  # type: ignore[assignment, method-assign]


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import dtypes as _ops_dtypes  # noqa: E402
