"""State dicts and safetensors checkpoints (``nn.save`` / ``nn.load``); nothing is ever unpickled."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from .. import _backend
from .._core.tensor import Tensor
from .._errors import CheckpointError, StateDictError
from .._files import write_atomic
from ._module import Module

__all__ = ["state_dict", "load_state_dict", "save", "load", "IncompatibleKeys"]

_META_ALIASES = "functorch_lite.aliases"
_META_ORDER = "functorch_lite.order"
_META_USER = "functorch_lite.metadata"


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(..., strict=False)`` could not match.

    Example:
        >>> from functorch_lite import nn
        >>> nn.Linear(2, 2).load_state_dict({}, strict=False).missing_keys
        ['weight', 'bias']
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


IncompatibleKeys.__name__ = "_IncompatibleKeys"  # PyTorch's repr


def _alias(t: Tensor) -> Tensor:
    n = object.__new__(Tensor)
    n._a, n._xp, n._t = t._a, t._xp, t._t
    return n


def _entries(module: Module, prefix: str = "") -> list[tuple[str, Module, str, str]]:
    """(key, owner, kind, local name) in PyTorch's state-dict order: own params, own buffers, children."""
    out: list[tuple[str, Module, str, str]] = []

    def visit(m: Module, pre: str) -> None:
        for name, p in m._parameters.items():
            if p is not None:
                out.append((pre + name, m, "_parameters", name))
        for name, b in m._buffers.items():
            if b is not None and name not in m._non_persistent:
                out.append((pre + name, m, "_buffers", name))
        for name, c in m._modules.items():
            if c is not None:
                visit(c, f"{pre}{name}.")

    visit(module, prefix)
    return out


def state_dict(module: Module, prefix: str = "") -> OrderedDict[str, Tensor]:
    """Parameters and persistent buffers by dotted name (tied weights under each of their names).

    The values are new Tensor objects sharing the arrays: later training rebinds
    the module's Tensors, not these.

    Example:
        >>> from functorch_lite import nn
        >>> list(nn.state_dict(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))))[:3]
        ['0.weight', '0.bias', '1.weight']
    """
    return OrderedDict((k, _alias(getattr(m, kind)[local])) for k, m, kind, local in _entries(module, prefix))


def _as_tensor(v: Any) -> Tensor:
    if isinstance(v, Tensor):
        return v
    from .._ops._base import asarray

    return asarray(v)


def load_state_dict(module: Module, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
    """Copy tensors into ``module`` by dotted name, after checking everything first.

    Missing or unexpected keys (when ``strict``) and shape mismatches (always)
    raise [`StateDictError`][functorch_lite.StateDictError] listing every problem; the module is then
    unchanged. Values are cast to each target's dtype and moved to its backend;
    the module's Tensor objects are kept (rebound to the new values).

    Example:
        >>> from functorch_lite import nn
        >>> nn.load_state_dict(nn.Linear(2, 2), {"weight": nn.Linear(2, 2).weight}, strict=False)
        _IncompatibleKeys(missing_keys=['bias'], unexpected_keys=[])
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"load_state_dict: expected a mapping of name -> Tensor; got {type(state_dict).__name__}.")
    entries = _entries(module)
    expected = {k: (m, kind, local) for k, m, kind, local in entries}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = []
    new_values: list[tuple[Tensor, Tensor]] = []
    bad_values = []
    for k, (m, kind, local) in expected.items():
        if k not in state_dict:
            continue
        target = getattr(m, kind)[local]
        try:
            v = _as_tensor(state_dict[k])
        except Exception as exc:  # noqa: BLE001 - reported with the others
            bad_values.append(f"{k} ({type(state_dict[k]).__name__}: {exc})")
            continue
        if tuple(v.shape) != tuple(target.shape):
            mismatched.append(f"{k}: checkpoint shape {tuple(v.shape)}, model shape {tuple(target.shape)}")
            continue
        new_values.append((target, v))
    problems = []
    if strict and missing:
        problems.append("missing keys: " + ", ".join(missing))
    if strict and unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if bad_values:
        problems.append("values that are not arrays: " + ", ".join(bad_values))
    if problems:
        raise StateDictError(
            f"load_state_dict into {type(module).__name__}: " + ". ".join(problems) + ". The model was not changed. "
            "Rename or drop keys to match model.state_dict(), or pass strict=False to allow missing/unexpected keys."
        )
    from .._namespace import to_backend
    from .._ops.dtypes import astype

    converted = []
    for target, v in new_values:
        if v.is_tracer:
            raise StateDictError("load_state_dict: a value is a traced Tensor; load checkpoints outside grad / vmap.")
        if v._xp is not target._xp:
            v = to_backend(v, target.backend)
        if v.dtype is not target.dtype:
            v = astype(v, target.dtype)
        converted.append((target, v))
    for target, v in converted:
        target._a, target._xp, target._t = v._a, v._xp, None
    return IncompatibleKeys(missing if not strict else [], unexpected if not strict else [])


# ------------------------------------------------------------------------------------------------
# safetensors files
# ------------------------------------------------------------------------------------------------
def save(
    obj: Module | Mapping[str, Any], path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write a model's state dict (or a dict of Tensors) to a safetensors file, atomically.

    Tensors that share memory (tied weights) are written once; their other names
    are recorded in the file's metadata and restored by [`load`][functorch_lite.nn.load]. Extra
    ``metadata`` (JSON-serialisable) is stored too.

    Example:
        >>> import os, tempfile
        >>> from functorch_lite import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> nn.save(nn.Linear(2, 3), path)
        >>> sorted(nn.load(path))
        ['bias', 'weight']
    """
    from safetensors.numpy import save_file

    sd = obj.state_dict() if isinstance(obj, Module) else obj
    if not isinstance(sd, Mapping):
        raise TypeError(f"nn.save: expected a Module or a mapping of name -> Tensor; got {type(obj).__name__}.")
    arrays: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    first: dict[Any, str] = {}
    for name, v in sd.items():
        if not isinstance(name, str):
            raise CheckpointError(f"nn.save: keys must be strings; got {name!r}.")
        t = _as_tensor(v)
        if t.is_tracer:
            raise CheckpointError(f"nn.save: {name!r} is a traced Tensor; save outside grad / vmap.")
        if t.dtype.kind == "c":
            raise CheckpointError(f"nn.save: {name!r} is complex ({t.dtype.name}); safetensors has no complex dtypes.")
        key = _backend.host_array_key(t)
        if key in first:
            aliases[name] = first[key]
            continue
        first[key] = name
        arrays[name] = _backend.tensor_to_host(t)
    meta = {_META_ORDER: json.dumps(list(sd.keys()))}
    if aliases:
        meta[_META_ALIASES] = json.dumps(aliases)
    if metadata is not None:
        try:
            meta[_META_USER] = json.dumps(dict(metadata))
        except TypeError as exc:
            raise CheckpointError(f"nn.save: metadata must be JSON-serialisable ({exc}).") from None
    write_atomic(path, lambda tmp: save_file(arrays, tmp, metadata=meta))


def load(path: str | os.PathLike[str], backend: str | None = None, *, with_metadata: bool = False) -> Any:
    """Read a safetensors file into an ordered dict of Tensors on the default backend (or ``backend``).

    Tied names recorded by [`save`][functorch_lite.nn.save] come back as the same Tensor. With
    ``with_metadata=True`` returns ``(state_dict, metadata)``.

    Example:
        >>> import os, tempfile
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "t.safetensors")
        >>> nn.save({"x": fl.ones((2,))}, path, metadata={"epoch": 3})
        >>> sd, meta = nn.load(path, with_metadata=True)
        >>> sd["x"].tolist(), meta
        ([1.0, 1.0], {'epoch': 3})
    """
    from safetensors import safe_open
    from safetensors.numpy import load_file

    p = os.fspath(path)
    if not os.path.exists(p):
        raise CheckpointError(f"nn.load: no file at {p!r}.")
    try:
        raw = load_file(p)
        with safe_open(p, framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        raise CheckpointError(f"nn.load: {p!r} is not a readable safetensors file ({exc}).") from None
    tensors = {k: _backend.host_to_tensor(a, backend) for k, a in raw.items()}
    aliases = json.loads(meta.get(_META_ALIASES, "{}"))
    order = json.loads(meta.get(_META_ORDER, "null")) or sorted(set(tensors) | set(aliases))
    out: OrderedDict[str, Tensor] = OrderedDict()
    for name in order:
        if name in tensors:
            out[name] = tensors[name]
        elif name in aliases and aliases[name] in tensors:
            out[name] = tensors[aliases[name]]
    for name in tensors:  # anything not listed in the order
        out.setdefault(name, tensors[name])
    if with_metadata:
        user = json.loads(meta.get(_META_USER, "{}"))
        return out, user
    return out
