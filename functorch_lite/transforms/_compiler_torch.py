"""The ``"torch.compile"`` compiler (torch, opt-in): the replay compiled by ``torch.compile``.

torch is imported lazily, inside the functions that lower to it.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

from .._core.engine import PRIMITIVES
from .._core.tensor import backend_for
from ._compiler_native import _guarded, _native, _weak_only
from ._program import Eqn, Program, Var
from ._replay import _bound, compile_replay

_TORCH_OPS = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "greater": operator.gt,
    "less": operator.lt,
    "greater_equal": operator.ge,
    "less_equal": operator.le,
    "equal": operator.eq,
    "not_equal": operator.ne,
}


def _torch_override(e: Eqn) -> Callable[..., Any] | None:
    """Weak-scalar equations as calls, not the replay's inline ``try`` (whose exception table
    dynamo cannot rewrite on Python 3.11); binary ops whose operands already share a dtype as
    torch's own operators (array_api_compat's promotion wrappers break dynamo's graph, and with
    one dtype there is nothing for them to fix)."""
    if _weak_only(e):
        return _bound(e)  # type: ignore[no-any-return]
    name = e.prim.name
    if PRIMITIVES.get(name) is not e.prim:
        return None
    if len(e.inputs) == 1 and isinstance(e.inputs[0], Var) and e.inputs[0].weak is None:
        return _torch_unary(e)
    if e.params or len(e.inputs) != 2:
        return None
    arrays = [i for i in e.inputs if isinstance(i, Var) and i.weak is None]
    if not arrays or any(a.dtype is not arrays[0].dtype for a in arrays):
        return None
    if len(arrays) == 1 and (name not in _TORCH_OPS or e.outputs[0].dtype is not arrays[0].dtype):
        return None  # (a Python scalar operand: only where the result keeps the array's dtype)
    if name in _TORCH_OPS:
        return _TORCH_OPS[name]
    if name in ("maximum", "minimum") and len(arrays) == 2:
        import torch

        return getattr(torch, name)  # type: ignore[no-any-return]
    return None


_TORCH_REDUCE = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def _torch_unary(e: Eqn) -> Callable[..., Any] | None:
    """relu, and floating reductions over given axes, as torch's own functions."""
    import torch

    x, name, params = e.inputs[0], e.prim.name, e.params
    if name == "astype" and set(params) <= {"dtype", "copy"}:
        nat = backend_for(x.xp).native(params["dtype"])
        return functools.partial(torch.Tensor.to, dtype=nat, copy=params.get("copy", True) is not False)
    if name == "permute_dims" and set(params) == {"axes"}:
        return functools.partial(torch.permute, dims=tuple(params["axes"]))
    if name == "reshape" and set(params) <= {"shape", "copy"} and params.get("copy") is None:
        return functools.partial(torch.reshape, shape=tuple(params["shape"]))
    if x.dtype.kind != "f" or e.outputs[0].dtype is not x.dtype:
        return None
    if name == "relu" and not params:
        return torch.relu  # type: ignore[no-any-return]
    if name in _TORCH_REDUCE and set(params) <= {"axis", "keepdims", "dtype"} and params.get("dtype") is None:
        axis = params.get("axis")
        dim = tuple(range(len(x.shape))) if axis is None else axis
        if isinstance(dim, int):
            dim = (dim,)
        fn = getattr(torch, _TORCH_REDUCE[name])
        return functools.partial(fn, dim=tuple(dim), keepdim=bool(params.get("keepdims", False)))
    return None


def _torch_compile(p: Program, explicit: bool) -> Callable[..., list[Any]]:
    import torch

    run, tf = _native(p, lambda q: compile_replay(q, override=_torch_override), torch.compile)
    return _guarded(p, "torch.compile", run, explicit, tf)
