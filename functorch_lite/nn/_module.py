"""``Module``: PyTorch's class API, as pytrees that go through grad and vmap.

A Module registers parameters, buffers and child modules by attribute
assignment (``nn/_registry.py``). It flattens as a pytree whose children are
its *trainable* parameters and its child modules (``nn/_pytree.py``), keyed
by attribute name, so key paths are the dotted names ``layers.0.weight``;
frozen parameters, buffers and every other attribute travel as static data.
``fl.grad(loss)(model, x)`` therefore differentiates the trainable parameters
only and returns a Module of the same structure holding gradients, with
``None`` for frozen parameters and buffers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from .._core.tensor import Tensor
from .._errors import ConfigError, TransformError
from ._layout import _Layout
from ._parameter import Parameter, is_parameter
from ._pytree import _init_subclass
from ._registry import _BufferRegistry, _registries, _Registry
from ._version import _SWAPPED, _VERSION, structure_changed

__all__ = ["Module", "Parameter", "is_parameter"]

_SPECIAL = ("_parameters", "_buffers", "_modules", "_frozen", "_non_persistent", "training")
# (registry, what it is, the fix) for a non-Tensor assigned to a registered Tensor slot
_TENSOR_SLOTS = (
    ("_parameters", "a parameter", " Delete it first (del module.{name})."),
    ("_buffers", "a buffer", ""),
)


class Module:
    """Base class of every layer: parameters, buffers and child modules by attribute assignment.

    Subclasses call ``super().__init__()`` first and define ``forward``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> class Affine(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = nn.Parameter(fl.ones((3,)))
        ...         self.register_buffer("count", fl.zeros(()))
        ...     def forward(self, x):
        ...         return x * self.w
        >>> m = Affine()
        >>> [n for n, _ in m.named_parameters()], [n for n, _ in m.named_buffers()]
        (['w'], ['count'])
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _init_subclass(cls)

    _parameters: dict[str, Tensor | None]
    _buffers: dict[str, Tensor | None]
    _modules: dict[str, Module | None]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", _Registry())
        object.__setattr__(self, "_buffers", _BufferRegistry())
        object.__setattr__(self, "_modules", _Registry())
        object.__setattr__(self, "_frozen", set())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------------------------
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise ConfigError(
                f"{type(self).__name__}: cannot assign {what} before Module.__init__() ran; call "
                "super().__init__() first in your __init__."
            )

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self._forget(name)
            d["_parameters"][name] = value
            if not value.requires_grad:
                d["_frozen"].add(name)
                structure_changed()
            return
        if isinstance(value, Module):
            self._check_init("modules")
            self._forget(name)
            d["_modules"][name] = value
            return
        for kind, what, fix in _TENSOR_SLOTS:
            reg = d.get(kind)
            if reg is not None and name in reg:
                if value is not None and not isinstance(value, Tensor):
                    raise TypeError(
                        f"{type(self).__name__}.{name} is {what}; it can hold a Tensor or None, "
                        f"not {type(value).__name__}.{fix.format(name=name)}"
                    )
                reg[name] = value
                return
        mods = d.get("_modules")
        if mods is not None and name in mods:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a child module; it can hold a Module or None, "
                    f"not {type(value).__name__}."
                )
            mods[name] = None
            return
        object.__setattr__(self, name, value)
        if name in _SPECIAL:
            if name in ("_parameters", "_buffers", "_modules"):
                _registries(d)
            structure_changed()

    def _forget(self, name: str) -> None:
        d = self.__dict__
        d.pop(name, None)
        for k in ("_parameters", "_buffers", "_modules"):
            d[k].pop(name, None)
        d["_frozen"].discard(name)
        d["_non_persistent"].discard(name)
        structure_changed()

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        reg = d.get("_parameters")
        if reg is not None and name in reg:  # (the common case first: a layer reading its weights)
            return reg[name]
        for k in ("_buffers", "_modules"):
            reg = d.get(k)
            if reg is not None and name in reg:
                return reg[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for k in ("_parameters", "_buffers", "_modules"):
            if name in d.get(k, ()):
                del d[k][name]
                d["_frozen"].discard(name)
                d["_non_persistent"].discard(name)
                structure_changed()
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Register ``param`` (a Tensor or None) as parameter ``name``.

        Example:
            >>> from functorch_lite import nn
            >>> m = nn.Module()
            >>> m.register_parameter("bias", None)
            >>> m.bias is None
            True
        """
        self._check_init("parameters")
        _check_name(name, self, "register_parameter")
        if param is not None and not isinstance(param, Tensor):
            raise TypeError(f"register_parameter: {name!r} must be a Tensor or None; got {type(param).__name__}.")
        if param is not None and not isinstance(param, Parameter):
            param = Parameter(param)
        self._forget(name)
        self._parameters[name] = param
        if isinstance(param, Parameter) and not param.requires_grad:
            self._frozen.add(name)
            structure_changed()

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a buffer: state that is not trained (running statistics, masks).

        Non-persistent buffers are left out of [`state_dict`][functorch_lite.nn.Module.state_dict].

        Example:
            >>> import functorch_lite as fl
            >>> from functorch_lite import nn
            >>> m = nn.Module()
            >>> m.register_buffer("steps", fl.zeros(()), persistent=False)
            >>> list(m.state_dict())
            []
        """
        self._check_init("buffers")
        _check_name(name, self, "register_buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None; got {type(tensor).__name__}.")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def register_module(self, name: str, module: Module | None) -> None:
        """Register a child module (same as attribute assignment).

        Example:
            >>> from functorch_lite import nn
            >>> m = nn.Module()
            >>> m.register_module("act", nn.ReLU())
            >>> [n for n, _ in m.named_children()]
            ['act']
        """
        self._check_init("modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"register_module: {name!r} must be a Module or None; got {type(module).__name__}.")
        self._forget(name)
        self._modules[name] = module

    add_module = register_module

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` (``""`` is self).

        Example:
            >>> from functorch_lite import nn
            >>> nn.Sequential(nn.Sequential(nn.Linear(2, 3))).get_submodule("0.0").out_features
            3
        """
        mod = self
        if not target:
            return mod
        for part in target.split("."):
            nxt = mod._modules.get(part)
            if nxt is None:
                raise AttributeError(
                    f"get_submodule: {type(mod).__name__} has no submodule {part!r} (path {target!r})."
                )
            mod = nxt
        return mod

    # -- calling ----------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward(); subclasses must.")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- iteration ----------------------------------------------------------------------------------
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self and every descendant, self first (``""``).

        Example:
            >>> from functorch_lite import nn
            >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
            >>> [n for n, _ in m.named_modules()]
            ['', '0', '1']
        """
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, mod in self._modules.items():
            if mod is None:
                continue
            sub = f"{prefix}.{name}" if prefix else name
            yield from mod.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """Self and every descendant module.

        Example:
            >>> from functorch_lite import nn
            >>> [type(m).__name__ for m in nn.Sequential(nn.ReLU()).modules()]
            ['Sequential', 'ReLU']
        """
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct child."""
        seen: set[int] = set()
        for name, mod in self._modules.items():
            if mod is not None and id(mod) not in seen:
                seen.add(id(mod))
                yield name, mod

    def children(self) -> Iterator[Module]:
        """The direct child modules.

        Example:
            >>> from functorch_lite import nn
            >>> len(list(nn.Sequential(nn.ReLU(), nn.Tanh()).children()))
            2
        """
        for _, m in self.named_children():
            yield m

    def _named_members(
        self, kind: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any, Module, str]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, mod in mods:
            for name, v in getattr(mod, kind).items():
                if v is None:
                    continue
                if remove_duplicate:
                    if id(v) in seen:
                        continue
                    seen.add(id(v))
                yield (f"{mprefix}.{name}" if mprefix else name), v, mod, name

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter) pairs; a tied parameter is listed once, under its first name.

        Example:
            >>> from functorch_lite import nn
            >>> [n for n, _ in nn.Sequential(nn.Linear(2, 3)).named_parameters()]
            ['0.weight', '0.bias']
        """
        for name, v, _, _ in self._named_members("_parameters", prefix, recurse, remove_duplicate):
            yield name, v

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every parameter (tied ones once).

        Example:
            >>> from functorch_lite import nn
            >>> [p.shape for p in nn.Linear(2, 3).parameters()]
            [(3, 2), (3,)]
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs.

        Example:
            >>> from functorch_lite import nn
            >>> [n for n, _ in nn.Sequential(nn.BatchNorm1d(2)).named_buffers()]
            ['0.running_mean', '0.running_var', '0.num_batches_tracked']
        """
        for name, v, _, _ in self._named_members("_buffers", prefix, recurse, remove_duplicate):
            yield name, v

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer.

        Example:
            >>> from functorch_lite import nn
            >>> len(list(nn.BatchNorm1d(2).buffers()))
            3
        """
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _slots(self, kind: str = "_parameters") -> Iterator[tuple[str, Module, str]]:
        """(dotted name, owner, local name) for every registered slot, duplicates included."""
        for mprefix, mod in self.named_modules(remove_duplicate=False):
            for name in getattr(mod, kind):
                yield (f"{mprefix}.{name}" if mprefix else name), mod, name

    def _layout(self) -> _Layout:
        """This tree flattened once, cached until the next structural change (see ``_VERSION``)."""
        lay = self.__dict__.get("_fl_flat")
        if lay is None or lay.version != _VERSION[0] or lay.root_id != id(self):
            lay = _Layout(self)
            if not _SWAPPED[0]:  # (inside nn.functional_call & co. the slots hold other values)
                self.__dict__["_fl_flat"] = lay
        return lay

    def _flat_parameters(self) -> dict[str, Tensor]:
        """``dict(named_parameters())``, cached while the structure is unchanged: do not mutate it.

        (The class optimizers call this, duck-typed, to match gradients with parameters.)
        """
        return self._layout().params

    # -- freezing ------------------------------------------------------------------------------------
    def _is_frozen(self, name: str) -> bool:
        if name in self._frozen:
            return True
        p = self._parameters.get(name)
        return isinstance(p, Parameter) and not p.requires_grad

    def named_trainable_parameters(self) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter) pairs of the parameters that are not frozen.

        Example:
            >>> from functorch_lite import nn
            >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
            >>> _ = m[0].freeze()
            >>> [n for n, _ in m.named_trainable_parameters()]
            ['1.weight', '1.bias']
        """
        for name, v, mod, local in self._named_members("_parameters", "", True, True):
            if not mod._is_frozen(local):
                yield name, v

    def trainable_parameters(self) -> dict[str, Tensor]:
        """A dict ``{dotted name: parameter}`` of the parameters that are not frozen.

        Example:
            >>> from functorch_lite import nn
            >>> m = nn.Linear(2, 3)
            >>> _ = m.freeze(keys=["bias"])
            >>> list(m.trainable_parameters())
            ['weight']
        """
        return dict(self.named_trainable_parameters())

    def freeze(self, recurse: bool = True, keys: str | list[str] | None = None) -> Module:
        """Freeze parameters (all, or the local names in ``keys``): no gradient, not trained.

        Example:
            >>> from functorch_lite import nn
            >>> len(nn.Linear(2, 3).freeze().trainable_parameters())
            0
        """
        return self._set_frozen(True, recurse, keys)

    def unfreeze(self, recurse: bool = True, keys: str | list[str] | None = None) -> Module:
        """Undo [`freeze`][functorch_lite.nn.Module.freeze] (all parameters, or the local names in ``keys``).

        Example:
            >>> from functorch_lite import nn
            >>> len(nn.Linear(2, 2).freeze().unfreeze(keys="bias").trainable_parameters())
            1
        """
        return self._set_frozen(False, recurse, keys)

    def _set_frozen(self, frozen: bool, recurse: bool, keys: str | list[str] | None) -> Module:
        if isinstance(keys, str):
            keys = [keys]
        mods = self.modules() if recurse else [self]
        for mod in mods:
            for name, p in mod._parameters.items():
                if keys is not None and name not in keys:
                    continue
                if frozen:
                    mod._frozen.add(name)
                else:
                    mod._frozen.discard(name)
                    if isinstance(p, Parameter):
                        p.requires_grad = True
        structure_changed()
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """PyTorch's spelling of [`freeze`][functorch_lite.nn.Module.freeze] / [`unfreeze`][functorch_lite.nn.Module.unfreeze]."""
        return self.unfreeze() if requires_grad else self.freeze()

    # -- modes and traversal ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout active, BatchNorm uses batch statistics) on self and children.

        Example:
            >>> from functorch_lite import nn
            >>> nn.Sequential(nn.Dropout()).eval().train()[0].training
            True
        """
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Set evaluation mode: ``train(False)``.

        Example:
            >>> from functorch_lite import nn
            >>> nn.Sequential(nn.Dropout()).eval()[0].training
            False
        """
        return self.train(False)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every child (recursively) then on self; return self.

        Example:
            >>> from functorch_lite import nn
            >>> names = []
            >>> _ = nn.Sequential(nn.ReLU()).apply(lambda m: names.append(type(m).__name__))
            >>> names
            ['ReLU', 'Sequential']
        """
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalar parameters (tied ones once).

        Example:
            >>> from functorch_lite import nn
            >>> nn.Linear(3, 2).num_parameters()
            8
        """
        items = self.named_trainable_parameters() if trainable_only else self.named_parameters()
        return sum(p.size for _, p in items)

    def to_backend(self, name: str, device: Any = None) -> Module:
        """Move every parameter and buffer to backend ``name`` in place (Tensor objects kept).

        Example:
            >>> from functorch_lite import nn
            >>> nn.Linear(2, 2).to_backend("numpy").weight.backend
            'numpy'
        """
        from .._namespace import to_backend

        done: set[int] = set()
        for kind in ("_parameters", "_buffers"):
            for _, mod, local in self._slots(kind):
                t = getattr(mod, kind)[local]
                if t is None or id(t) in done:
                    continue
                done.add(id(t))
                if t.is_tracer:
                    raise TransformError(
                        f"to_backend: {type(mod).__name__}.{local} holds a traced Tensor; move the "
                        "module outside grad / vmap."
                    )
                moved = to_backend(t, name, device)
                t._a, t._xp = moved._a, moved._xp
        return self

    def astype(self, dtype: Any) -> Module:
        """Cast every floating parameter and buffer to ``dtype`` in place.

        Example:
            >>> import functorch_lite as fl
            >>> from functorch_lite import nn
            >>> nn.Linear(2, 2).astype(fl.float64).weight.dtype
            functorch_lite.float64
        """
        from .._ops.dtypes import astype

        done: set[int] = set()
        for kind in ("_parameters", "_buffers"):
            for _, mod, local in self._slots(kind):
                t = getattr(mod, kind)[local]
                if t is None or id(t) in done or t.dtype.kind not in "fc":
                    continue
                done.add(id(t))
                c = astype(t, dtype)
                t._a, t._xp, t._t = c._a, c._xp, c._t
        return self

    def zero_grad(self) -> None:
        """No-op: gradients here are returned values, never stored on parameters."""

    # -- state dicts (implemented in _state) --------------------------------------------------------
    def state_dict(self, prefix: str = "", keep_vars: bool = True) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, in PyTorch's order and layouts.

        Example:
            >>> from functorch_lite import nn
            >>> list(nn.Linear(2, 3).state_dict())
            ['weight', 'bias']
        """
        from ._state import state_dict

        return state_dict(self, prefix)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load tensors by dotted name; all problems are reported at once and nothing changes then.

        Returns ``(missing_keys, unexpected_keys)`` as a named tuple (both empty when strict).

        Example:
            >>> from functorch_lite import nn
            >>> a, b = nn.Linear(2, 3), nn.Linear(2, 3)
            >>> b.load_state_dict(a.state_dict())
            _IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        """
        from ._state import load_state_dict

        return load_state_dict(self, state_dict, strict=strict)

    # -- printing ----------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The settings printed inside ``Layer(...)``; layers override it."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, mod in self._modules.items():
            r = repr(mod).replace("\n", "\n  ")
            lines.append(f"({name}): {r}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    # -- copying --------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_fl_flat", None)  # a cache of this very object's tree: never copied
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.pop("_fl_flat", None)
        _registries(self.__dict__)
        structure_changed()


def _check_name(name: Any, mod: Module, what: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise ConfigError(f"{what}: the name must be a non-empty string without '.'; got {name!r}.")
    if name in mod.__dict__ and name not in _SPECIAL:
        raise ConfigError(f"{what}: {type(mod).__name__} already has a plain attribute {name!r}; pick another name.")


_init_subclass(Module)
