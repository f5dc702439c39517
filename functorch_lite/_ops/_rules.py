"""Rule helpers shared by the op modules (batching moves, linear-op shortcuts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core.engine import Primitive, bind

__all__ = ["def_linear", "move_bdim_to_front", "batch_via_front"]


def def_linear(prim: Primitive, transpose: Callable[..., Any]) -> None:
    """Rules of an op that is linear in its single array argument.

    jvp applies the op itself to the tangent; ``transpose(g, x, **params)``
    gives the cotangent of ``x``.
    """
    prim.jvp = lambda ts, out, x, **p: bind(prim, (ts[0],), p)
    prim.vjp = lambda g, out, x, **p: (transpose(g, x, **p),)


def move_bdim_to_front(x: Any, d: int | None, size: int | None = None) -> Any:
    """``x`` with its batch axis first; an unbatched ``x`` is broadcast when ``size`` is given."""
    broadcast_to = _manipulation.broadcast_to
    expand_dims = _manipulation.expand_dims
    moveaxis = _manipulation.moveaxis

    if d is None:
        if size is None:
            return x
        x = expand_dims(x, axis=0)
        return broadcast_to(x, (size,) + tuple(x.shape[1:]))
    if d == 0:
        return x
    return moveaxis(x, d, 0)


def batch_via_front(prim: Primitive, shift: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Batch rule for single-array ops: move the batch axis to 0 and shift axis params."""

    def rule(n: int, vals: Any, dims: Any, **p: Any) -> tuple[Any, int]:
        x = move_bdim_to_front(vals[0], dims[0])
        return bind(prim, (x,) + tuple(vals[1:]), shift(p)), 0

    prim.batch = rule


# Sibling ops modules, imported last as module objects and read at call time (see _ops/__init__.py).
from . import manipulation as _manipulation  # noqa: E402
