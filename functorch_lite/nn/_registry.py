"""A module's registries (``_parameters``, ``_buffers``, ``_modules``): dicts whose writes are
structural changes (they move the structure version of ``nn/_version.py``)."""

from __future__ import annotations

from typing import Any

from ._parameter import Parameter
from ._version import structure_changed

__all__: list[str] = []


class _Registry(dict):  # type: ignore[type-arg]
    """A module's ``_parameters`` or ``_modules`` dict: every write is a structural change."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        structure_changed()

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        structure_changed()

    def pop(self, *args: Any) -> Any:
        structure_changed()
        return dict.pop(self, *args)

    def popitem(self) -> Any:
        structure_changed()
        return dict.popitem(self)

    def clear(self) -> None:
        structure_changed()
        dict.clear(self)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        structure_changed()
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        structure_changed()
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        structure_changed()
        return dict.__ior__(self, other)


class _BufferRegistry(_Registry):
    """A module's ``_buffers``: new or removed names are structural; a new value for a buffer
    (BatchNorm's running statistics, every step) is not, unless a Parameter is involved (a tie)."""

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        old = dict.get(self, key, _MISSING)
        dict.__setitem__(self, key, value)
        if old is _MISSING or isinstance(value, Parameter) or isinstance(old, Parameter):
            structure_changed()


_MISSING = object()


def _registries(d: dict[str, Any]) -> None:
    """Make the registries in a module's ``__dict__`` version-tracking ones (after unpickling)."""
    for k, cls in (("_parameters", _Registry), ("_buffers", _BufferRegistry), ("_modules", _Registry)):
        v = d.get(k)
        if v is not None and type(v) is not cls:
            d[k] = cls(v)
