"""The state ``jit`` threads through a program: modules, class optimizers, the global generator.

Modules and optimizers listed in ``jit(inputs=, outputs=)`` get a handler that reads their
state before a call (extra program inputs), saves and restores it around a trace, and writes
the program's extra outputs back after each call: a module's parameters and buffers in place,
by registry slot; an optimizer's state pytree and its static flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core.tensor import Tensor
from .._errors import TransformError


def _is_module(obj: Any) -> bool:
    return hasattr(obj, "named_modules") and hasattr(obj, "_parameters")


def _is_optimizer(obj: Any) -> bool:
    return hasattr(obj, "_tx") and hasattr(obj, "_state") and hasattr(obj, "_known")


class _ModuleState:
    """A module's parameters and buffers, by registry slot; read, swapped and written in place."""

    def __init__(self, m: Any) -> None:
        self.slots: list[tuple[dict[str, Any], str]] = []
        self.modules = [mod for _, mod in m.named_modules()]
        for mod in self.modules:
            for reg in (mod._parameters, mod._buffers):
                for local, t in reg.items():
                    if isinstance(t, Tensor):
                        self.slots.append((reg, local))

    def read(self) -> list[Any]:
        return [reg[local] for reg, local in self.slots]

    def key(self) -> Any:
        """What else a module's forward depends on: train/eval mode and which parameters are frozen."""
        return (
            tuple(getattr(m, "training", None) for m in self.modules),
            tuple(getattr(reg[local], "requires_grad", None) for reg, local in self.slots),
        )

    def save(self) -> Any:
        objs = self.read()
        return objs, [(t._a, t._xp, t._t) for t in objs]

    def restore(self, saved: Any) -> None:
        objs, payloads = saved
        setitem = dict.__setitem__  # (not a structural change of the module)
        for (reg, local), t, (a, xp, tt) in zip(self.slots, objs, payloads, strict=True):
            setitem(reg, local, t)
            t._a, t._xp, t._t = a, xp, tt

    def write(self, values: Sequence[Any]) -> None:
        setitem = dict.__setitem__
        for (reg, local), v in zip(self.slots, values, strict=True):
            t = reg[local]
            if t is v:
                continue
            if isinstance(t, Tensor) and tuple(t.shape) == tuple(v.shape) and t.dtype is v.dtype:
                t._a, t._xp, t._t = v._a, v._xp, v._t  # in place: the module keeps its Parameter objects
            else:
                setitem(reg, local, v)


class _OptimizerState:
    def __init__(self, opt: Any) -> None:
        self.opt = opt

    def key(self) -> Any:
        return None

    def read(self) -> Any:
        return self.opt._state

    def save(self) -> Any:
        o = self.opt
        return o._state, o._known, o._verify_pending

    def restore(self, saved: Any) -> None:
        o = self.opt
        o._state, o._known, o._verify_pending = saved

    def statics(self) -> Any:
        return self.opt._known, self.opt._verify_pending

    def write(self, state: Any, statics: Any) -> None:
        o = self.opt
        o._state = state
        o._known, o._verify_pending = statics


def _state_handlers(objs: Sequence[Any]) -> list[Any]:
    seen: set[int] = set()
    out: list[Any] = []
    for o in objs:
        if id(o) in seen:
            continue
        seen.add(id(o))
        if _is_module(o):
            out.append(_ModuleState(o))
        elif _is_optimizer(o):
            out.append(_OptimizerState(o))
        else:
            raise TransformError(
                f"jit(inputs=/outputs=): each entry must be an nn.Module or a class optimizer (optim.Adam, ...); "
                f"got {type(o).__name__}. Pass other state as arguments and return it."
            )
    return out


_GEN: list[Any] = [None]


def _gen() -> Any:
    from .. import random as _random

    return _random._GLOBAL
