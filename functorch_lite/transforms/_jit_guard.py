"""What a ``jit`` cache entry is keyed on and what it must recheck before it is reused.

The signature of a call's input leaves (the cache key's leaves, and the words a retrace
warning uses for what changed), and the guards of a traced program: the Tensors a function
reads from its closure and globals, which the trace baked in as constants, and the names
holding them, whose rebinding must trace again.
"""

from __future__ import annotations

import functools
from typing import Any

from .._core.tensor import Tensor, backend_for
from .._errors import TransformError
from ._jit_state import _is_module

_SINGLE_DEVICE = ("numpy", "array_api_strict")


# ---------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------
_MULTI_DEVICE: dict[Any, bool] = {}


def _multi_device(xp: Any) -> bool:
    m = _MULTI_DEVICE.get(xp)
    if m is None:
        m = _MULTI_DEVICE[xp] = backend_for(xp).name not in _SINGLE_DEVICE
    return m


def _signature(leaves: list[Any]) -> tuple[tuple[Any, ...], bool]:
    """The signature of the input leaves, and whether any is a tracer of an outer transform."""
    sig: list[Any] = []
    traced = False
    for x in leaves:
        c = x.__class__
        if c is float or c is int or c is complex:
            sig.append(c)
            continue
        if isinstance(x, Tensor):
            xp = x._xp
            if x._t is None:
                a = x._a
                if _multi_device(xp):
                    sig.append((xp, tuple(a.shape), a.dtype, str(backend_for(xp).device(a))))
                else:
                    sig.append((xp, a.shape, a.dtype))
            else:
                traced = True
                sig.append(("traced", xp, x.shape, x.dtype))
            continue
        sig.append(_other_sig(x))
    return tuple(sig), traced


def _other_sig(x: Any) -> Any:
    if x.__class__ is bool:
        return ("static", x)
    from .._backend import backend_of

    if backend_of(x) is not None:
        return ("array", tuple(x.shape), str(x.dtype))
    try:
        hash(x)
    except TypeError:
        raise TransformError(
            f"jit: an argument leaf of type {type(x).__name__} is neither an array nor a number, so it is "
            "treated as static and must be hashable; it is not. Mark its argument with static_argnums "
            "(and make it hashable), or pass arrays."
        ) from None
    return ("static", x)


def _diff(a: Any, b: Any) -> str:
    if a[0] != b[0]:
        return "the pytree structure of its arguments"
    if a[1] != b[1]:
        return "a static argument's value"
    for i, (x, y) in enumerate(zip(a[2], b[2], strict=False)):
        if x != y:
            return f"input leaf {i} ({_sig_str(x)} -> {_sig_str(y)})"
    return "its signature"


def _sig_str(s: Any) -> str:
    if isinstance(s, tuple) and len(s) >= 3 and s[0] != "static":
        return f"shape {s[1]} dtype {s[2]}"
    return repr(s)


# ---------------------------------------------------------------------------------------
# Guards: captured Tensors and the names holding them
# ---------------------------------------------------------------------------------------
def _closure_tensors(f: Any, depth: int = 3) -> list[Tensor]:
    """The Tensors a function reads from its closure and globals (through modules, containers and
    the closures of the functions it calls, a few levels deep): what a trace bakes in as constants."""
    found: list[Tensor] = []
    seen: set[int] = set()

    def visit(v: Any, d: int) -> None:
        if id(v) in seen or d < 0:
            return
        seen.add(id(v))
        if isinstance(v, Tensor):
            found.append(v)
        elif _is_module(v):
            for _, mod in v.named_modules():
                for reg in (mod._parameters, mod._buffers):
                    for t in reg.values():
                        if isinstance(t, Tensor):
                            found.append(t)
        elif isinstance(v, dict):
            for x in list(v.values())[:256]:
                visit(x, d - 1)
        elif isinstance(v, (list, tuple)):
            for x in v[:256]:
                visit(x, d - 1)
        elif isinstance(v, functools.partial):
            visit(v.func, d - 1)
            visit(v.args, d - 1)
        elif callable(v) and hasattr(v, "__code__"):
            for cell in getattr(v, "__closure__", None) or ():
                try:
                    visit(cell.cell_contents, d - 1)
                except ValueError:  # an empty cell
                    pass
            g = getattr(v, "__globals__", {})
            for name in v.__code__.co_names:
                x = g.get(name)
                if x is not None and not isinstance(x, type) and not hasattr(x, "__file__"):
                    visit(x, d - 1)
        elif hasattr(v, "__self__") and hasattr(v, "__func__"):  # a bound method
            visit(v.__self__, d - 1)
            visit(v.__func__, d - 1)

    visit(f, depth)
    return found


def _name_guards(f: Any, owned: set[int]) -> list[tuple[Any, Any, Any]]:
    """(cell or globals dict, name, Tensor) for each Tensor ``f`` reads by name: rebinding the
    name (``w = w - lr * g`` on a global) must retrace, as the program holds the old value."""
    out: list[tuple[Any, Any, Any]] = []
    code = getattr(f, "__code__", None)
    if code is None:
        return out
    for cell in getattr(f, "__closure__", None) or ():
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        if isinstance(v, Tensor) and id(v) not in owned:
            out.append((cell, None, v))
    g = getattr(f, "__globals__", {})
    for name in code.co_names:
        v = g.get(name)
        if isinstance(v, Tensor) and id(v) not in owned:
            out.append((g, name, v))
    return out


def _lookup(where: Any, name: Any) -> Any:
    if name is None:
        try:
            return where.cell_contents
        except ValueError:
            return None
    return where.get(name)
