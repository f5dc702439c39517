"""Reverse mode: the tape of nodes that a VJP trace records (rules run later, outside this trace,
on the primal values) and the pruning of residuals no rule will read.

Forward mode lives in ``_forward_mode``, the tracers' payloads in ``_payloads``, the shape and
dtype fitting in ``_fit`` and the backward pass in ``_backward``; their names are re-exported here.
"""

from __future__ import annotations

from typing import Any

from .. import _backend
from .._core.engine import Primitive, Trace, bind, eager
from .._core.tensor import Tensor, make_tracer
from ._backward import _acc as _acc
from ._backward import as_cotangent as as_cotangent
from ._backward import backward
from ._fit import fit_cotangent, fit_tangent
from ._forward_mode import JVPTrace, forward_replay
from ._payloads import JVPPayload as JVPPayload
from ._payloads import Node, VJPPayload
from ._payloads import PrimalPayload as PrimalPayload

__all__ = ["JVPTrace", "VJPTrace", "Node", "fit_cotangent", "fit_tangent", "backward", "forward_replay"]

_new = object.__new__


def _alias(t: Any) -> Any:
    if t.__class__ is Tensor or isinstance(t, Tensor):
        n = _new(Tensor)
        n._a = t._a
        n._xp = t._xp
        n._t = t._t
        return n
    return t


_EMPTY: dict[str, Any] = {}
_KEEP_ALL = (True, True)
_PRUNE_MIN = 1 << 16  # smaller residuals (< 256 KiB in float32) are not worth the Python work of dropping them


class VJPTrace(Trace):
    __slots__ = ("tape", "prunable")
    kind_name = "grad"
    float_only = True

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.tape: list[Node] = []
        self.prunable: list[Node] = []  # nodes that may hold residuals worth dropping (see prune)

    def new_input(self, x: Tensor) -> Tensor:
        node = _new(Node)
        node.trace = self
        node.primal = node.out = x
        node.idx = -1
        node.prim = node.params = None
        node.parents = node.primals = ()
        node.ct = node.tan = None
        node.multi = node.raw = False
        t = _new(Tensor)
        t._a = None
        t._xp = x._xp
        t._t = node
        return t

    def process(self, prim: Primitive, args: Any, params: dict[str, Any]) -> Any:
        primals: list[Any] = []
        parents: list[Any] = []
        lower = False
        for a in args:
            ac = a.__class__
            if ac is float or ac is int:
                primals.append(a)
                parents.append(None)
                continue
            if isinstance(a, Tensor):
                p = a._t
                if p is not None:
                    if p.trace is self:
                        pr = p.primal
                        primals.append(pr)
                        parents.append(p)
                        if pr._t is not None:
                            lower = True
                        continue
                    lower = True
                n = _new(Tensor)  # an alias: later rebinding of the caller's Tensor must not change residuals
                n._a = a._a
                n._xp = a._xp
                n._t = a._t
                a = n
            primals.append(a)
            parents.append(None)
        out = bind(prim, primals, params) if lower else eager(prim, primals, params)
        if not prim.differentiable:
            return out
        if prim.vjp is None:
            raise NotImplementedError(f"{prim.name}: no vjp rule; reverse-mode differentiation of it is not supported.")
        if prim.name == "astype" and params["dtype"].kind not in "fc":
            return out
        if prim.multiple_results:
            node = Node(self, prim, params, parents, primals, out, True)
            self.tape.append(node)
            node.ct = [None] * len(out)
            return tuple(
                make_tracer(VJPPayload(self, o, node, i), o._xp) if o.dtype.kind in "fc" else o
                for i, o in enumerate(out)
            )
        node = Node(self, prim, params, parents, primals, out, False, not lower)
        self.tape.append(node)
        if prim.residuals != _KEEP_ALL:
            self.prunable.append(node)
        t = _new(Tensor)
        t._a = None
        t._xp = out._xp
        t._t = node
        return t

    def _push(
        self, prim: Primitive, params: Any, parents: tuple[Any, ...], primals: tuple[Any, ...], out: Tensor
    ) -> Tensor:
        """Append a node whose residuals are concrete (the fast paths below); its output tracer."""
        node = _new(Node)
        node.trace = self
        node.primal = node.out = out
        node.prim = prim
        node.params = params
        node.parents = parents
        node.primals = primals
        node.ct = None  # (idx and tan are read only on multi-output nodes and by linearize's replay)
        node.multi = False
        node.raw = True
        self.tape.append(node)
        if prim.residuals != _KEEP_ALL:
            n = out._a.size  # (a method on torch tensors, nan on dask arrays of unknown size)
            if n >= _PRUNE_MIN if n.__class__ is int else _prod(out._a.shape) >= _PRUNE_MIN:
                self.prunable.append(node)
        t = _new(Tensor)
        t._a = None
        t._xp = out._xp
        t._t = node
        return t

    def record1(self, prim: Primitive, p: Any, x: Tensor, y: Any, fn: Any = None, rev: bool = False) -> Any:
        """Fast path of ``process`` for elementwise ops: one tracer of this trace whose primal is
        concrete, and at most one Python scalar ``y`` (the first operand when ``rev``); ``fn`` is
        the backend function when the caller resolved it (else ``prim.impl`` runs). Returns None
        to decline."""
        pr = p.primal
        if pr._t is not None or not prim.differentiable or prim.multiple_results:
            return None
        xp = pr._xp
        out = _new(Tensor)
        out._xp = xp
        out._t = None
        a = pr._a
        if y is None:
            out._a = fn(a) if fn is not None else prim.impl(xp, a)
            parents: tuple[Any, ...] = (p,)
            primals: tuple[Any, ...] = (pr,)
        elif rev:
            out._a = fn(y, a) if fn is not None else prim.impl(xp, y, a)
            parents = (None, p)
            primals = (y, pr)
        else:
            out._a = fn(a, y) if fn is not None else prim.impl(xp, a, y)
            parents = (p, None)
            primals = (pr, y)
        node = _new(Node)  # (the hottest path: _push inlined on purpose, no Python call per recorded op)
        node.trace = self
        node.primal = node.out = out
        node.prim = prim
        node.params = _EMPTY
        node.parents = parents
        node.primals = primals
        node.ct = None
        node.multi = False
        node.raw = True
        self.tape.append(node)
        if prim.residuals != _KEEP_ALL:
            n = out._a.size
            if n >= _PRUNE_MIN if n.__class__ is int else _prod(out._a.shape) >= _PRUNE_MIN:
                self.prunable.append(node)
        t = _new(Tensor)
        t._a = None
        t._xp = xp
        t._t = node
        return t

    def recordp(self, prim: Primitive, p: Any, params: dict[str, Any]) -> Any:
        """Fast path of ``process`` for a one-input primitive with params on one tracer of this
        trace whose primal is concrete. Returns None to decline."""
        pr = p.primal
        if pr._t is not None or not prim.differentiable:
            return None
        xp = pr._xp
        out = _new(Tensor)
        out._a = oa = prim.impl(xp, pr._a, **params)
        out._xp = xp
        out._t = None
        node = _new(Node)  # (_push, inlined on purpose: no Python call per recorded op)
        node.trace = self
        node.primal = node.out = out
        node.prim = prim
        node.params = params
        node.parents = (p,)
        node.primals = (pr,)
        node.ct = None
        node.multi = False
        node.raw = True
        self.tape.append(node)
        if prim.residuals != _KEEP_ALL:
            n = oa.size  # (a method on torch tensors, nan on dask arrays of unknown size)
            if n >= _PRUNE_MIN if n.__class__ is int else _prod(oa.shape) >= _PRUNE_MIN:
                self.prunable.append(node)
        t = _new(Tensor)
        t._a = None
        t._xp = xp
        t._t = node
        return t

    def record2(self, prim: Primitive, x: Tensor, y: Tensor, mm: bool = False, fn: Any = None) -> Any:
        """Fast path of ``process`` for a binary elementwise op on two Tensors of one dtype and
        backend, each a tracer of this trace with a concrete primal or a concrete Tensor
        (``mm``: a matmul of operands with at least two dimensions; ``fn``: the backend function
        when the caller resolved it for this namespace, else ``prim.impl`` runs). Returns None
        to decline."""
        xp = x._xp
        if y._xp is not xp or not prim.differentiable:
            return None
        px = x._t
        py = y._t
        if px is None:
            xa = x._a
            xr = _new(Tensor)  # an alias: later rebinding of the caller's Tensor must not change residuals
            xr._a = xa
            xr._xp = xp
            xr._t = None
        elif px.trace is self:
            xr = px.primal
            if xr._t is not None:
                return None
            xa = xr._a
        else:
            return None
        if py is None:
            ya = y._a
            yr = _new(Tensor)
            yr._a = ya
            yr._xp = xp
            yr._t = None
        elif py.trace is self:
            yr = py.primal
            if yr._t is not None:
                return None
            ya = yr._a
        else:
            return None
        if xa.dtype != ya.dtype or (mm and (xa.ndim < 2 or ya.ndim < 2)):
            return None
        out = _new(Tensor)
        try:
            out._a = oa = fn(xa, ya) if fn is not None else prim.impl(xp, xa, ya)
        except ValueError:  # shapes that do not broadcast: the slow path names them
            return None
        out._xp = xp
        out._t = None
        node = _new(Node)  # (_push, inlined on purpose: no Python call per recorded op)
        node.trace = self
        node.primal = node.out = out
        node.prim = prim
        node.params = _EMPTY
        node.parents = (px, py)
        node.primals = (xr, yr)
        node.ct = None
        node.multi = False
        node.raw = True
        self.tape.append(node)
        if prim.residuals != _KEEP_ALL:
            n = oa.size  # (a method on torch tensors, nan on dask arrays of unknown size)
            if n >= _PRUNE_MIN if n.__class__ is int else _prod(oa.shape) >= _PRUNE_MIN:
                self.prunable.append(node)
        t = _new(Tensor)
        t._a = None
        t._xp = xp
        t._t = node
        return t

    def record(self, rule: Any, params: dict[str, Any], args: Any, out: Any, multi: bool) -> Any:
        """Record a custom node (custom_vjp / custom_jvp / checkpoint) whose outputs are ``out``."""
        primals = []
        parents = []
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None and p.trace is self:
                    primals.append(p.primal)
                    parents.append(p)
                    continue
                a = _alias(a)
            primals.append(a)
            parents.append(None)
        node = Node(self, rule, params, parents, primals, out, multi)
        self.tape.append(node)
        if multi:
            node.ct = [None] * len(out)
            return tuple(
                make_tracer(VJPPayload(self, o, node, i), o._xp)
                if isinstance(o, Tensor) and o.dtype.kind in "fc"
                else o
                for i, o in enumerate(out)
            )
        return make_tracer(node, out._xp)

    def unpack_primals(self, args: Any) -> list[Any]:
        out = []
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None and p.trace is self:
                    out.append(p.primal)
                    continue
            out.append(a)
        return out

    def process_custom(self, call: Any, args: Any) -> Any:
        return call.vjp_process(self, args)


class _Meta:
    """Shape and dtype of a dropped residual (what the engine's unbroadcast and casts read)."""

    __slots__ = ("shape", "dtype", "ndim")

    def __init__(self, shape: tuple[int, ...], dtype: Any) -> None:
        self.shape = shape
        self.dtype = dtype
        self.ndim = len(shape)


def _meta(t: Any) -> Any:
    """``t`` itself, or a shape-and-dtype stand-in when ``t`` is a large concrete array."""
    if t.__class__ is not Tensor or t._t is not None:
        return t
    a = t._a
    n = a.size if a.size.__class__ is int else _prod(a.shape)
    if n < _PRUNE_MIN or _backend.is_lazy(a):  # (a lazy array holds no memory: keep its chunks)
        return t
    r = _new(Tensor)
    r._a = _Meta(tuple(a.shape), a.dtype)
    r._xp = t._xp
    r._t = None
    return r


def _prod(shape: Any) -> int:
    n = 1
    try:
        for d in shape:
            n *= int(d)
    except (TypeError, ValueError):  # unknown sizes (dask): keep the residual
        return 0
    return n


def prune(trace: VJPTrace) -> None:
    """Drop the large residuals no rule will read (after the forward pass, when no tracer can be used)."""
    nodes = trace.prunable
    trace.prunable = []
    for node in nodes:
        need_in, need_out = node.prim.residuals
        if not need_in:
            node.primals = [_meta(p) for p in node.primals]
        if not need_out and not node.multi:
            node.out = node.primal = _meta(node.out)
