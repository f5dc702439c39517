"""Forward mode (JVP tracers) and reverse mode (a tape of nodes) on the trace stack."""

from __future__ import annotations

from collections.abc import Sequence
from types import FunctionType
from typing import Any

from .._core.engine import Payload, Primitive, Trace, bind, eager
from .._core.tensor import Tensor, make_tracer, wrap
from .. import _backend  # noqa: E402
from .._ops import creation as _creation  # noqa: E402
from .._ops import dtypes as _ops_dtypes  # noqa: E402
from .._ops import elementwise as _elementwise  # noqa: E402
from .._ops import manipulation as _manipulation  # noqa: E402
from .._ops import reduction as _reduction  # noqa: E402

__all__ = ["JVPTrace", "VJPTrace", "Node", "fit_cotangent", "fit_tangent", "backward", "forward_replay"]

_new = object.__new__


# ---------------------------------------------------------------------------------
# Shape / dtype canonicalisation, once, in the engine
# ---------------------------------------------------------------------------------
def _unbroadcast(c: Tensor, shape: tuple[int, ...]) -> Tensor:
    reshape = _manipulation.reshape
    _sum = _reduction.sum

    cs = c.shape
    lead = len(cs) - len(shape)
    axes = list(range(lead))
    for i, s in enumerate(shape):
        if s == 1 and cs[lead + i] != 1:
            axes.append(lead + i)
    if axes:
        c = _sum(c, axis=tuple(axes), keepdims=False)
    if not _same_shape(c.shape, shape):
        c = reshape(c, shape)
    return c


def _same_shape(a: Any, b: Any) -> bool:
    """Shapes equal, counting two unknown (nan) sizes as equal: dask gives nan after a boolean
    mask, a new nan object per array, and nan != nan."""
    a, b = tuple(a), tuple(b)
    if a == b:
        return True
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b, strict=True))


def fit_cotangent(c: Any, like: Any) -> Any:
    """Make cotangent ``c`` match primal ``like`` in shape (sum broadcast axes) and dtype."""
    if not isinstance(c, Tensor):
        full_like = _creation.full_like

        return full_like(like, c)
    if c._t is None and like._t is None:
        ca, la = c._a, like._a
        if ca.shape == la.shape and ca.dtype is la.dtype:
            return c
    ls = like.shape
    if not _same_shape(c.shape, ls):
        c = _unbroadcast(c, ls)
    ldt = like.dtype
    if c.dtype is not ldt:
        astype = _ops_dtypes.astype

        if c.dtype.kind == "c" and ldt.kind != "c":
            real = _elementwise.real

            c = real(c)
        if c.dtype is not ldt:
            c = astype(c, ldt)
    return c


def fit_tangent(t: Any, out: Any) -> Any:
    """Make tangent ``t`` match output ``out`` in shape (broadcast) and dtype."""
    if not isinstance(t, Tensor):
        full_like = _creation.full_like

        return full_like(out, t)
    if t._t is None and out._t is None:
        ta, oa = t._a, out._a
        if ta.shape == oa.shape and ta.dtype is oa.dtype:
            return t
    os = out.shape
    if t.shape != os:
        broadcast_to = _manipulation.broadcast_to

        t = broadcast_to(t, os)
    odt = out.dtype
    if t.dtype is not odt:
        astype = _ops_dtypes.astype

        if t.dtype.kind == "c" and odt.kind != "c":
            real = _elementwise.real

            t = real(t)
        if t.dtype is not odt:
            t = astype(t, odt)
    return t


# ---------------------------------------------------------------------------------
# Forward mode
# ---------------------------------------------------------------------------------
class PrimalPayload(Payload):
    """A payload whose value is its ``primal`` (forward and reverse mode)."""

    __slots__ = ()
    primal: Any
    carries_derivative = True  # exporting the primal (numpy, DLPack) would drop the derivative

    @property
    def shape(self) -> tuple[int, ...]:
        return self.primal.shape

    @property
    def dtype(self) -> Any:
        return self.primal.dtype

    @property
    def device(self) -> Any:
        return self.primal.device

    def concrete(self, t: Tensor) -> Tensor:
        return self.primal


class JVPPayload(PrimalPayload):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace: Trace, primal: Tensor, tangent: Tensor) -> None:
        self.trace = trace
        self.primal = primal
        self.tangent = tangent

    def __repr__(self) -> str:
        return f"JVP tracer of {self.trace!r}"


class JVPTrace(Trace):
    __slots__ = ()
    kind_name = "jvp"
    float_only = True

    def tracer(self, primal: Tensor, tangent: Tensor) -> Tensor:
        return make_tracer(JVPPayload(self, primal, tangent), primal._xp)

    def unpack(self, args: Any) -> tuple[list[Any], list[Any]]:
        primals = []
        tangents = []
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None and p.trace is self:
                    primals.append(p.primal)
                    tangents.append(p.tangent)
                    continue
            primals.append(a)
            tangents.append(None)
        return primals, tangents

    def process(self, prim: Primitive, args: Any, params: dict[str, Any]) -> Any:
        primals = []
        tangents = []
        lower = False  # a primal is itself a tracer, or an argument belongs to another trace
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None:
                    if p.trace is self:
                        pr = p.primal
                        primals.append(pr)
                        tangents.append(p.tangent)
                        if pr._t is not None:
                            lower = True
                        continue
                    lower = True
            primals.append(a)
            tangents.append(None)
        out = bind(prim, primals, params) if lower else eager(prim, primals, params)
        if not prim.differentiable:
            return out
        rule = prim.jvp
        if rule is None:
            raise NotImplementedError(f"{prim.name}: no jvp rule; forward-mode differentiation of it is not supported.")
        t_out = rule(tangents, out, *primals, **params)
        if prim.multiple_results:
            return tuple(o if t is None else self.tracer(o, fit_tangent(t, o)) for o, t in zip(out, t_out, strict=True))
        if t_out is None:
            return out
        payload = _new(JVPPayload)
        payload.trace = self
        payload.primal = out
        payload.tangent = fit_tangent(t_out, out)
        t = _new(Tensor)
        t._a = None
        t._xp = out._xp
        t._t = payload
        return t

    def process_custom(self, call: Any, args: Any) -> Any:
        return call.jvp_process(self, args)


# ---------------------------------------------------------------------------------
# Reverse mode: a tape of nodes; rules run outside this trace, on the primal values
# ---------------------------------------------------------------------------------
class Node(PrimalPayload):
    """One recorded op: its rule carrier, params, parents and residuals.

    A single-output node is also the payload of its output tracer (one object
    instead of two); multi-output nodes hand out one VJPPayload per output.
    """

    __slots__ = ("primal", "idx", "prim", "params", "parents", "primals", "out", "ct", "tan", "multi", "raw")

    def __init__(
        self,
        trace: Any,
        prim: Any,
        params: Any,
        parents: Sequence[Any],
        primals: Sequence[Any],
        out: Any,
        multi: bool,
        raw: bool = False,
    ) -> None:
        self.trace = trace
        self.primal = out
        self.idx = -1
        self.prim = prim
        self.params = params
        self.parents: Sequence[Any] = parents
        self.primals: Sequence[Any] = primals
        self.out = out
        self.ct: Any = None
        self.tan: Any = None
        self.multi = multi
        # True when every residual is concrete (recorded eagerly): backward may then run the
        # primitive's array-level rule (``Primitive.avjp``) on a concrete cotangent.
        self.raw = raw

    def __repr__(self) -> str:
        return f"VJP tracer of {self.trace!r}"

    @property
    def node(self) -> Node:
        # (a property, not a slot holding self: a self-reference would put every node in a
        # reference cycle, freed only by the cyclic garbage collector)
        return self


class VJPPayload(PrimalPayload):
    __slots__ = ("primal", "node", "idx")

    def __init__(self, trace: Trace, primal: Tensor, node: Node, idx: int) -> None:
        self.trace = trace
        self.primal = primal
        self.node = node
        self.idx = idx

    def __repr__(self) -> str:
        return f"VJP tracer of {self.trace!r}"


def _alias(t: Any) -> Any:
    if t.__class__ is Tensor or isinstance(t, Tensor):
        n = _new(Tensor)
        n._a = t._a
        n._xp = t._xp
        n._t = t._t
        return n
    return t


_EMPTY: dict[str, Any] = {}
_FAST = _backend.FAST_NAMESPACES
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
        node = _new(Node)  # (the hottest path: _push inlined)
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
        node = _new(Node)  # (_push, inlined)
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
        node = _new(Node)  # (_push, inlined)
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


_ASTYPE: list[Any] = []


def _astype_prim() -> Any:
    if not _ASTYPE:
        astype_p = _ops_dtypes.astype_p

        _ASTYPE.append(astype_p)
    return _ASTYPE[0]


def _accumulate(p: VJPPayload, c: Any) -> None:
    node = p.node
    if node.multi:
        cur = node.ct[p.idx]
        node.ct[p.idx] = c if cur is None else cur + c
    else:
        cur = node.ct
        node.ct = c if cur is None else cur + c


def as_cotangent(c: Any, xp: Any) -> Any:
    """A node's accumulated cotangent as a Tensor (backward may store backend arrays)."""
    if c is None or isinstance(c, Tensor):
        return c
    return wrap(c, _backend.lifted_namespace(c, xp) or xp)  # (dask reaching numpy: mixed placement)


def _acc(cur: Any, c: Any, xp: Any) -> Any:
    """``cur + c`` where either may be a backend array or a Tensor."""
    if cur is None:
        return c
    if isinstance(cur, Tensor):
        if not isinstance(c, Tensor):
            c = as_cotangent(c, xp)
    elif isinstance(c, Tensor):
        cur = as_cotangent(cur, xp)
    return cur + c


def _fit_raw(c: Any, pr: Any, xp: Any, fx: Any) -> Any:
    """Array-level ``fit_cotangent``: sum broadcast axes; other mismatches go through Tensors.
    (``xp``: the Tensor namespace; ``fx``: its fast stand-in, see _backend.FAST_NAMESPACES.)"""
    pa = pr._a
    shape = tuple(pa.shape)
    if c.dtype is not pa.dtype and c.dtype != pa.dtype:  # (`is` first: numpy's == is slow)
        return fit_cotangent(wrap(c, xp), pr)
    cs = c.shape
    lead = len(cs) - len(shape)
    axes = list(range(lead))
    for i, s in enumerate(shape):
        if s == 1 and cs[lead + i] != 1:
            axes.append(lead + i)
    if axes:
        c = fx.sum(c, axis=tuple(axes))
    cs = tuple(c.shape)
    if cs != shape and not _same_shape(cs, shape):
        c = fx.reshape(c, shape)
    return c


def backward(tape: list[Node], free: bool) -> None:
    """Propagate the cotangents set on output nodes back through ``tape``.

    A node whose primitive has an array-level rule (``avjp``), whose residuals are concrete
    and whose cotangent is concrete runs that rule on backend arrays and passes backend
    arrays on; every other node runs the Tensor-level rule (differentiable, batchable).
    """
    last_xp = fx = None
    for node in reversed(tape):
        ct = node.ct
        if ct is None:
            continue
        prim = node.prim
        primals = node.primals
        if node.multi:
            if all(c is None for c in ct):
                continue
            node.ct = [None] * len(ct)  # multi-output nodes only ever hold Tensors (see below)
        else:
            node.ct = None
            av = prim.avjp
            if av is not None and node.raw:
                if isinstance(ct, Tensor):
                    ga = ct._a if ct._t is None else None
                else:
                    ga = ct
                cts = None
                if ga is not None and ga.__class__ is not node.out._a.__class__:
                    lx = _backend.lifted_namespace(ga, node.out._xp)
                    if lx is not None:  # a dask cotangent reaching a numpy node: Tensor rules lift
                        ct = wrap(ga, lx)
                        ga = None
                if ga is not None:
                    out = node.out
                    xp = out._xp
                    if xp is not last_xp:
                        last_xp = xp
                        fx = _FAST.get(xp, xp)
                    parents = node.parents
                    # elementwise rules with one input needing a gradient: no tuples, no loop
                    f1 = prim.aunary
                    if f1 is not None:
                        pr = primals[0]
                        par = parents[0]
                        c = f1(fx, ga, pr._a, out._a)
                    elif prim.abinary is not None and (parents[0] is None or parents[1] is None):
                        x, y = primals
                        xa = x._a if isinstance(x, Tensor) else x
                        ya = y._a if isinstance(y, Tensor) else y
                        if parents[1] is None:
                            pr, par, f1 = x, parents[0], prim.abinary[0]
                        else:
                            pr, par, f1 = y, parents[1], prim.abinary[1]
                        c = None if f1 is None else f1(fx, ga, xa, ya, out._a)
                    else:
                        par = None
                    if par is not None:
                        if c is not None:
                            pa = pr._a
                            if c.shape != pa.shape or (c.dtype is not pa.dtype and c.dtype != pa.dtype):
                                c = _fit_raw(c, pr, xp, fx)
                            tgt = par if par.__class__ is Node else par.node
                            if tgt.multi:
                                tgt.ct[par.idx] = _acc(tgt.ct[par.idx], as_cotangent(c, xp), xp)
                            else:
                                cur = tgt.ct
                                if cur is None:
                                    tgt.ct = c
                                elif cur.__class__ is c.__class__ and c.__class__ is not Tensor:
                                    tgt.ct = cur + c  # (two backend arrays: _acc's common case)
                                else:
                                    tgt.ct = _acc(cur, c, xp)
                        if free:
                            node.primals = node.out = node.params = None  # type: ignore[assignment]
                        continue
                    cts = av(fx, ga, out._a, primals, parents, node.params)
                if cts is not None:  # (an array-level rule may decline: None)
                    for i, par in enumerate(parents):
                        if par is None:
                            continue
                        c = cts[i]
                        if c is None:
                            continue
                        pa = primals[i]._a
                        if c.shape != pa.shape or (c.dtype is not pa.dtype and c.dtype != pa.dtype):
                            c = _fit_raw(c, primals[i], xp, fx)
                        tgt = par if par.__class__ is Node else par.node
                        if tgt.multi:
                            tgt.ct[par.idx] = _acc(tgt.ct[par.idx], as_cotangent(c, xp), xp)
                        else:
                            cur = tgt.ct
                            if cur is None:
                                tgt.ct = c
                            elif cur.__class__ is c.__class__ and c.__class__ is not Tensor:
                                tgt.ct = cur + c
                            else:
                                tgt.ct = _acc(cur, c, xp)
                    if free:
                        node.primals = node.out = node.params = None  # type: ignore[assignment]
                    continue
            if not isinstance(ct, Tensor):
                ct = wrap(ct, _backend.lifted_namespace(ct, node.out._xp) or node.out._xp)
        cts = prim.vjp(ct, node.out, *primals, **node.params)
        for i, par in enumerate(node.parents):
            if par is None:
                continue
            c = cts[i]
            if c is None:
                continue
            if c.__class__ is FunctionType:
                c = c()
                if c is None:
                    continue
            pr = primals[i]
            if not (
                c.__class__ is Tensor
                and c._t is None
                and pr._t is None
                and c._a.shape == pr._a.shape
                and c._a.dtype is pr._a.dtype
            ):
                c = fit_cotangent(c, pr)
            tgt = par if par.__class__ is Node else par.node
            if tgt.multi:
                tgt.ct[par.idx] = _acc(tgt.ct[par.idx], c, c._xp)
            else:
                cur = tgt.ct
                tgt.ct = c if cur is None else (cur + c if isinstance(cur, Tensor) else _acc(cur, c, c._xp))
        if free:
            node.primals = node.out = node.params = None  # type: ignore[assignment]


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


def forward_replay(tape: list[Node]) -> None:
    """Propagate tangents set on input nodes forward through ``tape`` (for linearize)."""
    for node in tape:
        tans = []  # type: ignore[var-annotated]
        any_t = False
        for par in node.parents:
            if par is None:
                tans.append(None)
                continue
            src = par.node
            t = src.tan[par.idx] if src.multi else src.tan
            tans.append(t)
            any_t = any_t or t is not None
        if not any_t:
            node.tan = [None] * len(node.out) if node.multi else None
            continue
        rule = node.prim.jvp
        t_out = rule(tans, node.out, *node.primals, **node.params)
        if node.multi:
            node.tan = [None if t is None else fit_tangent(t, o) for t, o in zip(t_out, node.out, strict=True)]
        else:
            node.tan = None if t_out is None else fit_tangent(t_out, node.out)
