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
from ._module import Module

__all__ = [
    "functional_call",
    "functional_call_with_state",
    "value_and_grad",
    "stack_module_state",
]

_Slot = tuple[Module, str, str]  # owner, "_parameters" | "_buffers", local name


class _Swap:
    """Put ``values`` (dotted name -> Tensor) into ``model``; restore every slot on exit."""

    def __init__(self, model: Module, values: Mapping[str, Any], what: str) -> None:
        self.model = model
        slots: dict[str, _Slot] = {}
        by_obj: dict[int, list[_Slot]] = {}
        self.snapshot: list[tuple[Module, str, str, Any]] = []
        self.concrete: dict[int, tuple[Any, Any]] = {}
        seen: set[int] = set()
        for prefix, owner in model.named_modules(remove_duplicate=False):  # one pass over the tree
            first = id(owner) not in seen
            seen.add(id(owner))
            for kind in ("_parameters", "_buffers"):
                reg = owner.__dict__[kind]
                for local, v in reg.items():
                    slot = (owner, kind, local)
                    slots.setdefault(f"{prefix}.{local}" if prefix else local, slot)
                    if not first:
                        continue
                    self.snapshot.append((owner, kind, local, v))
                    if isinstance(v, Tensor) and v._t is None:
                        self.concrete[id(v)] = (v._a, v._xp)
                    if v is not None:
                        by_obj.setdefault(id(v), []).append(slot)
        unknown = [k for k in values if k not in slots]
        if unknown:
            raise StateDictError(
                f"{what}: {type(model).__name__} has no parameter or buffer named "
                f"{', '.join(repr(k) for k in unknown)}; names are those of named_parameters() and named_buffers()."
            )
        self.slots = slots
        self.plan: list[tuple[_Slot, Any]] = []
        for name, v in values.items():
            owner, kind, local = slots[name]
            orig = getattr(owner, kind)[local]
            targets = by_obj.get(id(orig), [(owner, kind, local)]) if orig is not None else [(owner, kind, local)]
            for slot in targets:  # tied weights: every slot holding the same Tensor gets the value
                self.plan.append((slot, v))
        self.given = set(values)

    def __enter__(self) -> _Swap:
        for (owner, kind, local), v in self.plan:
            getattr(owner, kind)[local] = v
        return self

    def buffers(self) -> dict[str, Any]:
        """Every buffer's current value by dotted name (after the call ran)."""
        return {
            name: getattr(owner, kind)[local]
            for name, (owner, kind, local) in self.slots.items()
            if kind == "_buffers" and getattr(owner, kind)[local] is not None
        }

    def changed_buffers(self) -> dict[str, Any]:
        """Buffers the call replaced, by dotted name."""
        orig = {(id(o), k, n): v for o, k, n, v in self.snapshot}
        out = {}
        for name, (owner, kind, local) in self.slots.items():
            if kind != "_buffers":
                continue
            cur = getattr(owner, kind)[local]
            if name in self.given:
                if cur is not self._given_value(name):
                    out[name] = cur
            elif cur is not orig.get((id(owner), kind, local)):
                out[name] = cur
        return out

    def _given_value(self, name: str) -> Any:
        for (owner, kind, local), v in self.plan:
            if self.slots[name] == (owner, kind, local):
                return v
        return None

    def __exit__(self, *exc: Any) -> None:
        for owner, kind, local, v in self.snapshot:
            getattr(owner, kind)[local] = v
            if isinstance(v, Tensor) and v._t is not None and id(v) in self.concrete:
                # the model mutated one of its own Tensors in place with a traced value
                # (``self.buf += traced``): keep the concrete part, never the tracer
                c = _concrete_or_none(v)
                a, xp = (c._a, c._xp) if c is not None else self.concrete[id(v)]
                v._a, v._xp, v._t = a, xp, None


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
    would; a traced new value is dropped (use :func:`functional_call_with_state`).

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
            getattr(owner, kind)[local] = v
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

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        params = dict(model.named_trainable_parameters())
        holder: dict[str, Any] = {}

        def inner(p: dict[str, Any]) -> Any:
            with _Swap(model, p, "nn.value_and_grad") as sw:
                out = fn(*args, **kwargs)
                bufs = sw.changed_buffers()
                holder["slots"] = sw.slots
            if isinstance(out, (tuple, list)) and len(out) >= 1:
                return out[0], (type(out), tuple(out[1:]), bufs)
            return out, (None, (), bufs)

        (loss, (kind, rest, bufs)), grads = _vg(inner, has_aux=True)(params)
        slots = holder.get("slots", {})
        for name, v in bufs.items():
            c = _concrete_or_none(v)
            if c is None and v is not None:
                continue
            owner, kind_, local = slots[name]
            getattr(owner, kind_)[local] = c
        value = loss if kind is None else kind((loss, *rest)) if kind in (tuple, list) else (loss, *rest)
        return value, grads

    return wrapped


def stack_module_state(models: Sequence[Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Stack the parameters and buffers of same-architecture models along a new leading axis.

    For ensembling with ``vmap`` over :func:`functional_call` (torch.func's recipe).

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
