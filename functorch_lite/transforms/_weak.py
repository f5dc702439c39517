"""Weak values: equations whose inputs are all Python scalars compute on Python scalars again.

Python ``int`` and ``float`` inputs of a program are *weak*: they stay Python scalars at run
time, so ``x * lr`` keeps ``x``'s dtype exactly as in eager code, and an op on weak values only
gives a weak value again (``weak_eval``, used by staging, ``eval_program`` and the replay).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from .._core.engine import Primitive
from .._core.tensor import backend_for

__all__ = ["PY_OPS", "weak_eval"]


# Operators on Python numbers: a weak-only equation of one of these computes exactly what the
# eager code computed (the operator on Python numbers; ``0.9 ** t``, ``count + 1``).
PY_OPS: dict[str, Callable[..., Any]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "pow": operator.pow,
    "floor_divide": operator.floordiv,
    "remainder": operator.mod,
    "negative": operator.neg,
    "positive": operator.pos,
    "abs": operator.abs,
    "equal": operator.eq,
    "not_equal": operator.ne,
    "less": operator.lt,
    "less_equal": operator.le,
    "greater": operator.gt,
    "greater_equal": operator.ge,
}


def weak_eval(prim: Primitive, xp: Any, vals: Sequence[Any], params: dict[str, Any]) -> Any:
    """``prim`` on Python scalars only: a Python operator where there is one, else computed on
    0-d backend arrays; the result is a Python scalar again."""
    op = PY_OPS.get(prim.name)
    if op is not None and not params:
        try:
            return op(*vals)
        except (ZeroDivisionError, OverflowError, ValueError):
            pass  # (the backend's answer: inf / nan, as an array op gives)
    if prim.name == "astype" and len(vals) == 1:
        k = params["dtype"].kind
        v = vals[0]
        return float(v) if k == "f" else int(v) if k in "iu" else complex(v) if k == "c" else bool(v)
    b = backend_for(xp)
    bxp = b.xp
    arrs = []
    for v in vals:
        if isinstance(v, bool):
            arrs.append(bxp.asarray(v))
        elif isinstance(v, int):
            arrs.append(bxp.asarray(v, dtype=b.native(_int64())))
        elif isinstance(v, float):
            arrs.append(bxp.asarray(v, dtype=b.native(_widest_float(b))))
        elif isinstance(v, complex):
            arrs.append(bxp.asarray(v))
        else:
            arrs.append(v)
    out = prim.impl(xp, *arrs, **params)
    if prim.multiple_results:
        return tuple(_to_py(o) for o in out)
    return _to_py(out)


def _int64() -> Any:
    from .. import _dtypes as D

    return D.int64


def _widest_float(b: Any) -> Any:
    from .. import _dtypes as D

    try:
        b.native(D.float64)
        return D.float64
    except Exception:
        return D.float32


def _to_py(o: Any) -> Any:
    if getattr(o, "ndim", 1) != 0 and getattr(o, "shape", None) != ():
        return o
    k = str(o.dtype)
    if "bool" in k:
        return bool(o)
    if "complex" in k:
        return complex(o)
    if "float" in k:
        return float(o)
    return int(o)
