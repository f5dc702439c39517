"""Modules meet the transforms: ``functional_call``, ``nn.value_and_grad``, ``stack_module_state``.

The model's registered Tensors are swapped for the given ones while it runs and
restored afterwards, even on error, so no tracer stays in a module. Buffers a
layer replaces while running (BatchNorm's running statistics) are collected
before the restore: ``functional_call_with_state`` returns them and
``nn.value_and_grad`` writes their concrete values back after its transform.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core.tensor import Tensor
from .._errors import StateDictError, TransformError
from . import _version as _M
from ._module import Module

__all__ = [
    "functional_call",
    "functional_call_with_state",
    "value_and_grad",
    "stack_module_state",
]

_Slot = tuple[Module, str, str]  # owner, "_parameters" | "_buffers", local name


class _Swap:
    """Put ``values`` (dotted name -> Tensor) into ``model``; restore every slot on exit.

    The model's flattened layout (slots, ties) is cached between calls while its structure
    is unchanged (``Module._layout``). While the values are in, the structure version is a
    fresh token, so a layout looked up inside (a nested transform of the same model) is
    rebuilt from the swapped-in values; on exit the version is restored when nothing
    structural happened in between.
    """

    __slots__ = ("model", "lay", "slots", "values", "plan", "vals", "states", "saved", "token")

    def __init__(self, model: Module, values: Mapping[str, Any], what: str) -> None:
        self.model = model
        lay = model._layout()
        names = tuple(values)
        plan = lay.plans.get(names)
        if plan is None:
            unknown = [k for k in values if k not in lay.slots]
            if unknown:
                raise StateDictError(
                    f"{what}: {type(model).__name__} has no parameter or buffer named "
                    f"{', '.join(repr(k) for k in unknown)}; names are those of named_parameters() and "
                    "named_buffers()."
                )
            plan = lay.plan(names)
        self.lay = lay
        self.slots = lay.slots
        self.values = values
        self.plan = plan
        # the original value of every slot (each module once), and each Tensor's payload then
        self.vals = vals = [reg[local] for reg, local in lay.snap]
        self.states = [(v._a, v._xp, v._t) if isinstance(v, Tensor) else None for v in vals]

    def __enter__(self) -> _Swap:
        values = self.values
        setitem = dict.__setitem__  # (not a structural change: see the class docstring)
        for reg, local, name in self.plan:
            setitem(reg, local, values[name])
        self.saved = _M._VERSION[0]
        self.token = _M._VERSION[0] = next(_M._TOKENS)
        _M._SWAPPED[0] += 1
        return self

    def buffers(self) -> dict[str, Any]:
        """Every buffer's current value by dotted name (after the call ran)."""
        return {name: reg[local] for name, reg, local, _ in self.lay.buffer_slots if reg[local] is not None}

    def changed_buffers(self) -> dict[str, Any]:
        """Buffers the call replaced, by dotted name."""
        out = {}
        vals = self.vals
        for name, reg, local, i in self.lay.buffer_slots:
            cur = reg[local]
            if name in self.values:
                if cur is not self._given_value(reg, local):
                    out[name] = cur
            elif cur is not vals[i]:
                out[name] = cur
        return out

    def _given_value(self, reg: dict[str, Any], local: str) -> Any:
        for r, lo, name in self.plan:
            if r is reg and lo == local:
                return self.values[name]
        return None

    def __exit__(self, *exc: Any) -> None:
        setitem = dict.__setitem__
        for (reg, local), v, st in zip(self.lay.snap, self.vals, self.states, strict=True):
            setitem(reg, local, v)
            if st is not None and st[2] is None and v._t is not None:
                # the model mutated one of its own Tensors in place with a traced value
                # (``self.buf += traced``): keep the concrete part, never the tracer
                c = _concrete_or_none(v)
                a, xp = (c._a, c._xp) if c is not None else (st[0], st[1])
                v._a, v._xp, v._t = a, xp, None
        _M._SWAPPED[0] -= 1
        if _M._VERSION[0] == self.token:
            _M._VERSION[0] = self.saved


def _merge(params_and_buffers: Any) -> dict[str, Any]:
    if isinstance(params_and_buffers, Mapping):
        return dict(params_and_buffers)
    if isinstance(params_and_buffers, (tuple, list)):
        out: dict[str, Any] = {}
        for d in params_and_buffers:
            if not isinstance(d, Mapping):
                raise TypeError(f"functional_call: expected dicts of name -> Tensor; got {type(d).__name__}.")
            dup = set(out) & set(d)
            if dup:
                raise StateDictError(f"functional_call: names given twice: {', '.join(sorted(dup))}.")
            out.update(d)
        return out
    raise TypeError(
        "functional_call: params_and_buffers must be a dict of name -> Tensor or a tuple of such dicts; "
        f"got {type(params_and_buffers).__name__}."
    )


def functional_call_with_state(
    model: Module, params_and_buffers: Any, *args: Any, **kwargs: Any
) -> tuple[Any, dict[str, Any]]:
    """Run ``model(*args, **kwargs)`` with the given Tensors; return ``(output, buffers)``.

    ``buffers`` holds every buffer's value after the call (BatchNorm's updated
    running statistics in training): the explicit new state for pure code. The
    model itself is left exactly as it was.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> bn = nn.BatchNorm1d(2)
        >>> out, bufs = nn.functional_call_with_state(bn, {}, fl.asarray([[0.0, 1.0], [2.0, 3.0]]))
        >>> bufs["running_mean"].tolist(), bn.running_mean.tolist()
        ([0.10000000149011612, 0.20000000298023224], [0.0, 0.0])
    """
    values = _merge(params_and_buffers)
    with _Swap(model, values, "functional_call") as sw:
        out = model(*args, **kwargs)
        bufs = sw.buffers()
    return out, bufs


def functional_call(model: Module, params_and_buffers: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``model(*args, **kwargs)`` with parameters/buffers replaced by the given Tensors (by dotted name).

    Names not given keep the model's own Tensors; tied parameters follow their
    tie. Everything is restored afterwards, even on error. A buffer the model
    replaces during the call (a running statistic of a buffer not given here)
    keeps its new value when it is concrete, as PyTorch's in-place update
    would; a traced new value is dropped (use [`functional_call_with_state`][functorch_lite.nn.functional_call_with_state]).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> lin = nn.Linear(2, 1)
        >>> p = {"weight": fl.ones((1, 2)), "bias": fl.zeros((1,))}
        >>> nn.functional_call(lin, p, fl.asarray([[1.0, 2.0]])).tolist()
        [[3.0]]
    """
    values = _merge(params_and_buffers)
    sw = _Swap(model, values, "functional_call")
    with sw:
        out = model(*args, **kwargs)
        changed = {k: v for k, v in sw.changed_buffers().items() if k not in values}
    for name, v in changed.items():
        if isinstance(v, Tensor) and v._t is None:
            owner, kind, local = sw.slots[name]
            owner.__dict__[kind][local] = v
    return out


def _concrete_or_none(v: Any) -> Any:
    if not isinstance(v, Tensor) or v._t is None:
        return v
    try:
        c = v.concrete()
    except Exception:  # a vmap tracer has no single value
        return None
    return c


def value_and_grad(model: Module, fn: Callable[..., Any]) -> Callable[..., Any]:
    """MLX-style: a function ``(*args, **kwargs) -> (value, grads)`` differentiating ``fn`` w.r.t. the model.

    ``fn`` calls ``model`` itself (closing over it) and returns a scalar loss,
    or a tuple whose first element is the loss (the whole tuple is returned as
    ``value``). ``grads`` is a dict keyed like ``named_parameters()``, trainable
    parameters only. Buffers replaced during the call (BatchNorm running
    statistics) are written back into the model as concrete values afterwards.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> model = nn.Linear(3, 1)
        >>> loss_and_grad = nn.value_and_grad(model, lambda x: fl.mean(model(x) ** 2))
        >>> loss, grads = loss_and_grad(fl.ones((4, 3)))
        >>> sorted(grads), grads["weight"].shape
        (['bias', 'weight'], (1, 3))
    """
    from ..transforms import value_and_grad as _vg

    if not isinstance(model, Module):
        raise TypeError(f"nn.value_and_grad: the first argument must be a Module; got {type(model).__name__}.")
    if not callable(fn):
        raise TypeError(f"nn.value_and_grad: fn must be callable; got {type(fn).__name__}.")

    def inner(p: dict[str, Any], args: Any, kwargs: Any, holder: dict[str, Any]) -> Any:
        with _Swap(model, p, "nn.value_and_grad") as sw:
            out = fn(*args, **kwargs)
            bufs = sw.changed_buffers()
            holder["slots"] = sw.slots
        if isinstance(out, (tuple, list)) and len(out) >= 1:
            return out[0], (type(out), tuple(out[1:]), bufs)
        return out, ((None, (), bufs) if bufs else None)  # (None: nothing for grad to strip)

    vg = _vg(inner, has_aux=True)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        holder: dict[str, Any] = {}
        (loss, aux), grads = vg(model._layout().trainable, args, kwargs, holder)
        kind, rest, bufs = (None, (), None) if aux is None else aux
        if bufs:
            slots = holder.get("slots", {})
            for name, v in bufs.items():
                c = _concrete_or_none(v)
                if c is None and v is not None:
                    continue
                owner, kind_, local = slots[name]
                owner.__dict__[kind_][local] = c
        value = loss if kind is None else kind((loss, *rest)) if kind in (tuple, list) else (loss, *rest)
        return value, grads

    return wrapped


def stack_module_state(models: Sequence[Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Stack the parameters and buffers of same-architecture models along a new leading axis.

    For ensembling with ``vmap`` over [`functional_call`][functorch_lite.nn.functional_call] (torch.func's recipe).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> models = [nn.Linear(3, 2) for _ in range(4)]
        >>> params, buffers = nn.stack_module_state(models)
        >>> base = models[0]
        >>> out = fl.vmap(lambda p, x: nn.functional_call(base, p, x), in_axes=(0, None))(params, fl.ones((5, 3)))
        >>> out.shape
        (4, 5, 2)
    """
    from .._ops.manipulation import stack

    models = list(models)
    if not models:
        raise TransformError("stack_module_state: needs at least one model.")
    names = [n for n, _ in models[0].named_parameters()]
    bnames = [n for n, _ in models[0].named_buffers()]
    for m in models[1:]:
        if [n for n, _ in m.named_parameters()] != names or [n for n, _ in m.named_buffers()] != bnames:
            raise TransformError(
                "stack_module_state: the models must share one architecture (same parameter and buffer names)."
            )
    params = {n: stack([dict(m.named_parameters())[n] for m in models], axis=0) for n in names}
    buffers = {n: stack([dict(m.named_buffers())[n] for m in models], axis=0) for n in bnames}
    return params, buffers
