"""Containers: ``Sequential``, ``ModuleList`` and ``ModuleDict`` (children keyed "0", "1", ... or by name)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._errors import ConfigError
from ._module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _check_module(m: Any, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where}: expected a Module; got {type(m).__name__}.")
    return m


class _IndexedMixin:
    """Shared list behaviour of Sequential and ModuleList (children keyed by position)."""

    _modules: dict[str, Module | None]

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if not isinstance(idx, int):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices; got {type(idx).__name__}.")
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for {n} modules.")
        return idx % n

    def _renumber(self, mods: list[Module]) -> None:
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))  # type: ignore[arg-type]

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[self._index(idx)]
        self._renumber(mods)  # type: ignore[arg-type]

    def __setitem__(self, idx: int, module: Module) -> None:
        self._modules[str(self._index(idx))] = _check_module(module, f"{type(self).__name__}[{idx}] =")

    def append(self, module: Module) -> Any:
        """Add ``module`` at the end; return self."""
        self._modules[str(len(self._modules))] = _check_module(module, f"{type(self).__name__}.append")
        return self

    def extend(self, modules: Iterable[Module]) -> Any:
        """Append every module of ``modules``; return self."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index``."""
        mods = list(self._modules.values())
        mods.insert(index, _check_module(module, f"{type(self).__name__}.insert"))
        self._renumber(mods)  # type: ignore[arg-type]

    def pop(self, index: int = -1) -> Module:
        """Remove and return the module at ``index``."""
        m = self[index]  # type: ignore[index]
        del self[index]
        return m


class Sequential(_IndexedMixin, Module):
    """Modules applied one after another; built from modules or an OrderedDict of named ones.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> model(fl.ones((3, 4))).shape
        (3, 2)
        >>> [n for n, _ in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *args: Any) -> None:
        Module.__init__(self)
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, m in args[0].items():
                self.register_module(str(name), _check_module(m, "Sequential"))
        else:
            for i, m in enumerate(args):
                self.register_module(str(i), _check_module(m, "Sequential"))

    def __getitem__(self, idx: int | slice | str) -> Any:
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        if isinstance(idx, str):
            return self._modules[idx]
        return list(self._modules.values())[self._index(idx)]

    def forward(self, input: Any) -> Any:
        for m in self._modules.values():
            if m is not None:
                input = m(input)
        return input


class ModuleList(_IndexedMixin, Module):
    """A list of modules, registered as children ``"0"``, ``"1"``, ...

    Example:
        >>> from functorch_lite import nn
        >>> layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        >>> len(layers), [n for n, _ in layers.named_parameters()][:2]
        (3, ['0.weight', '0.bias'])
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        Module.__init__(self)
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])  # type: ignore[arg-type]
        return list(self._modules.values())[self._index(idx)]

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward(); iterate over it and call its modules.")


class ModuleDict(Module):
    """A dict of modules keyed by name (insertion order kept).

    Example:
        >>> from functorch_lite import nn
        >>> heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "reg": nn.Linear(4, 1)})
        >>> list(heads.keys()), heads["reg"].out_features
        (['cls', 'reg'], 1)
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        Module.__init__(self)
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        m = self._modules.get(key)
        if m is None:
            raise KeyError(f"ModuleDict has no module {key!r}; keys are {list(self._modules)}.")
        return m

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise ConfigError(f"ModuleDict: keys must be non-empty strings without '.'; got {key!r}.")
        self.register_module(key, _check_module(module, f"ModuleDict[{key!r}] ="))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        """The keys, in insertion order."""
        return self._modules.keys()

    def values(self) -> Any:
        """The modules, in insertion order."""
        return self._modules.values()

    def items(self) -> Any:
        """(key, module) pairs, in insertion order."""
        return self._modules.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace modules from a mapping or (key, module) pairs."""
        items = modules.items() if isinstance(modules, Mapping) else modules
        for k, m in items:
            self[k] = m

    def pop(self, key: str) -> Module:
        """Remove and return the module under ``key``."""
        m = self[key]
        del self._modules[key]
        return m

    def clear(self) -> None:
        """Remove every module."""
        self._modules.clear()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(); index it and call its modules.")
