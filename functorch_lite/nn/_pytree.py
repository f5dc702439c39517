"""Modules as pytrees: a Module flattens to its trainable parameters and child modules.

The children are keyed by attribute name (so key paths are the dotted names ``layers.0.weight``);
frozen parameters, buffers and every other attribute travel as static data (``_Static``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import tree_util as tu
from .._core.tensor import Tensor
from ._parameter import Parameter
from ._registry import _BufferRegistry, _Registry

if TYPE_CHECKING:
    from ._module import Module

__all__: list[str] = []

_NOT_STATIC = ("_parameters", "_buffers", "_modules", "_frozen", "_non_persistent", "_fl_flat")


class _Static:
    """A Module's static pytree data. Equality looks at structure (names), not values."""

    __slots__ = ("cls", "keys", "attrs", "params", "buffers", "modules", "frozen", "nonpersistent", "sig")

    def __init__(self, m: Module, keys: tuple[str, ...]) -> None:
        d = m.__dict__
        self.cls = type(m)
        self.keys = keys
        self.attrs = {k: v for k, v in d.items() if k not in _NOT_STATIC}
        self.params = dict(d["_parameters"])
        self.buffers = dict(d["_buffers"])
        self.modules = tuple(d["_modules"])
        self.frozen = frozenset(d["_frozen"])
        self.nonpersistent = frozenset(d["_non_persistent"])
        # Structure only: names, not values (a gradient Module, whose frozen parameters and
        # buffers are None, matches its model, so tree_map(f, model, grads) works).
        self.sig = (
            self.cls,
            keys,
            self.modules,
            tuple(self.params),
            tuple(self.buffers),
            self.frozen,
            d.get("training", True),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static) and self.sig == other.sig

    def __hash__(self) -> int:
        return hash((self.cls, self.keys, self.modules))

    def __repr__(self) -> str:
        return f"{self.cls.__name__}{list(self.keys)}"


def _flatten(m: Module) -> tuple[list[Any], _Static, tuple[str, ...]]:
    keys: list[str] = []
    children: list[Any] = []
    for name, p in m._parameters.items():
        if p is not None and not m._is_frozen(name):
            keys.append(name)
            children.append(p)
    for name, c in m._modules.items():
        if c is not None:
            keys.append(name)
            children.append(c)
    k = tuple(keys)
    return children, _Static(m, k), k


def _unflatten(aux: _Static, children: Any) -> Module:
    cot = _in_cotangent()
    m = aux.cls.__new__(aux.cls)
    d = m.__dict__
    d.update(aux.attrs)
    vals = dict(zip(aux.keys, children, strict=True))
    params = {}
    for n, p in aux.params.items():
        if n in vals:
            params[n] = vals[n]
        else:
            params[n] = None if cot else _alias(p)
    d["_parameters"] = _Registry(params)
    d["_buffers"] = _BufferRegistry({n: (None if cot else _alias(b)) for n, b in aux.buffers.items()})
    d["_modules"] = _Registry({n: vals.get(n) for n in aux.modules})
    d["_frozen"] = set(aux.frozen)
    d["_non_persistent"] = set(aux.nonpersistent)
    return m


def _alias(t: Any) -> Any:
    """A new Tensor object with the same value: in-place rebinding in a rebuilt Module stays there."""
    if not isinstance(t, Tensor):
        return t
    n = object.__new__(type(t))
    n._a, n._xp, n._t = t._a, t._xp, t._t
    if isinstance(t, Parameter):
        n._requires_grad = t._requires_grad  # a new object: no structural change
    return n


def _in_cotangent() -> bool:
    fn = getattr(tu, "in_cotangent_unflatten", None)
    return bool(fn()) if fn is not None else False


def _register(cls: type) -> None:
    tu.register_pytree_node(cls, _flatten, _unflatten)


_registered: set[type] = set()


def _init_subclass(cls: type, **kwargs: Any) -> None:
    if cls not in _registered:
        _registered.add(cls)
        _register(cls)
