"""The optimization passes over a [`Program`][functorch_lite.transforms.Program] (each returns a new program; the input is left as it was).

* ``fold``: equations whose inputs are all concrete constants are evaluated once;
* ``simplify``: ``x * 1``, ``x + 0``, ``x ** 1`` dropped, ``x ** 2`` as ``x * x``;
* ``reshapes``: reshape chains collapsed, vmap's batched matrix-vector products made one matmul;
* ``broadcasts``: an operand broadcast only to meet the other one enters the op unbroadcast;
* ``cse``: equal equations (same primitive, inputs and params) are computed once;
* ``dce``: equations no output depends on are dropped.

``optimize`` runs them all, in that order.
"""

from __future__ import annotations

from typing import Any

from .._core.tensor import Tensor
from .._ops import manipulation as _M
from ._program import Eqn, Program, Var, custom_call_p

__all__ = ["optimize", "fold", "simplify", "reshapes", "broadcasts", "cse", "dce"]

_IDENTITY = {"multiply": 1, "subtract": 0, "divide": 1}  # x op c == x exactly (x + 0 would turn -0.0 into 0.0)
_COMMUTES = ("multiply",)


def optimize(program: Program) -> Program:
    """fold, simplify, reshapes, broadcasts, cse, then dce."""
    return dce(cse(broadcasts(reshapes(simplify(fold(program))))))


def _clone(p: Program, eqns: list[Eqn], outs: list[Any], consts: list[tuple[Var, Tensor]]) -> Program:
    q = Program(p.in_vars, p.in_tree, eqns, outs, p.out_tree, consts, p.kind)
    q.guards = p.guards
    return q


def fold(p: Program) -> Program:
    """Evaluate equations whose inputs are all concrete constants or literals."""
    known: dict[int, Tensor] = {v.id: c for v, c in p.consts if c._t is None}
    if not known:
        return p
    consts = list(p.consts)
    eqns = []
    for e in p.eqns:
        vs = [i for i in e.inputs if isinstance(i, Var)]
        if vs and e.prim is not custom_call_p and all(v.id in known for v in vs):
            from .._core.engine import bind

            ins = [known[i.id] if isinstance(i, Var) else i for i in e.inputs]
            out = bind(e.prim, ins, e.params)
            outs = list(out) if e.prim.multiple_results else [out]
            if all(isinstance(o, Tensor) and o._t is None for o in outs):
                for v, o in zip(e.outputs, outs, strict=True):
                    known[v.id] = o
                    consts.append((v, o))
                continue
        eqns.append(e)
    return _clone(p, eqns, p.outs, consts)


def _const_equals(i: Any, c: Any, consts: dict[int, Tensor]) -> bool:
    """Whether input ``i`` (a literal or a concrete constant) is ``c`` everywhere."""
    if not isinstance(i, Var):
        return i.__class__ in (int, float) and i == c
    t = consts.get(i.id)
    if t is None or t._t is None and t._a is None:
        return False
    from .._ops import reduction as R

    try:
        return bool(R.all(t == c))
    except Exception:
        return False


def _same_aval(a: Var, b: Var) -> bool:
    return a.weak is None and b.weak is None and a.shape == b.shape and a.dtype is b.dtype and a.xp is b.xp


def simplify(p: Program) -> Program:
    """Algebraic identities that leave shape and dtype unchanged: ``x * 1``, ``x + 0``, ``x ** 1``
    (the ones a gradient's unit seed and the chain rule leave), and ``x ** 2`` as ``x * x``."""
    consts = {v.id: c for v, c in p.consts if c._t is None}
    sub: dict[int, Any] = {}
    eqns = []

    def rep(i: Any) -> Any:
        return sub.get(i.id, i) if isinstance(i, Var) else i

    for e in p.eqns:
        ins = [rep(i) for i in e.inputs]
        name = e.prim.name
        out = e.outputs[0] if len(e.outputs) == 1 else None
        if out is not None and not e.params and len(ins) == 2:
            x, y = ins
            keep = None
            if name in _IDENTITY:
                c = _IDENTITY[name]
                if isinstance(x, Var) and _same_aval(x, out) and _const_equals(y, c, consts):
                    keep = x
                elif name in _COMMUTES and isinstance(y, Var) and _same_aval(y, out) and _const_equals(x, c, consts):
                    keep = y
            elif name == "pow" and isinstance(x, Var) and _same_aval(x, out):
                if _const_equals(y, 1, consts):
                    keep = x
                elif not isinstance(y, Var) and y.__class__ in (int, float) and y == 2:
                    from .._ops.elementwise import multiply

                    eqns.append(Eqn(multiply.prim, [x, x], e.outputs, {}))
                    continue
            if keep is not None:
                sub[out.id] = keep
                continue
        eqns.append(Eqn(e.prim, ins, e.outputs, e.params))
    return _clone(p, eqns, [rep(o) for o in p.outs], p.consts)


def reshapes(p: Program) -> Program:
    """Collapse reshape chains (a reshape of a reshape is one reshape; one to the same shape is
    none), and turn the batched matrix-vector products that vmap makes of a vector rule,
    ``reshape(matmul(A, reshape(C, (n, k, 1))), (n, m))`` with a 2-d ``A`` of shape (m, k), into
    one matrix product ``C @ A.T``."""
    from .._ops.linalg_core import matmul_p
    from .._ops.manipulation import permute_dims_p, reshape_p

    producer: dict[int, Eqn] = {}
    sub: dict[int, Any] = {}
    eqns: list[Eqn] = []

    def rep(i: Any) -> Any:
        return sub.get(i.id, i) if isinstance(i, Var) else i

    for e in p.eqns:
        ins = [rep(i) for i in e.inputs]
        if e.prim is reshape_p and len(ins) == 1 and isinstance(ins[0], Var) and set(e.params) <= {"shape", "copy"}:
            x = ins[0]
            out = e.outputs[0]
            src = producer.get(x.id)
            if src is not None and src.prim is reshape_p and set(src.params) <= {"shape", "copy"}:
                x = src.inputs[0]
            if x.shape == out.shape and x.dtype is out.dtype and x.weak is None:
                sub[out.id] = x
                continue
            mm = producer.get(ins[0].id)
            if mm is not None and mm.prim is matmul_p and not mm.params and len(out.shape) == 2:
                a, b = mm.inputs
                rb = producer.get(b.id) if isinstance(b, Var) else None
                n, m = out.shape
                if (
                    isinstance(a, Var)
                    and len(a.shape) == 2
                    and a.shape[0] == m
                    and rb is not None
                    and rb.prim is reshape_p
                    and isinstance(rb.inputs[0], Var)
                    and rb.inputs[0].shape == (n, a.shape[1])
                    and b.shape == (n, a.shape[1], 1)
                    and mm.outputs[0].shape == (n, m, 1)
                ):
                    c = rb.inputs[0]
                    at = Var((a.shape[1], m), a.dtype, a.xp)
                    eqns.append(Eqn(permute_dims_p, [a], [at], {"axes": (1, 0)}))
                    ne = Eqn(matmul_p, [c, at], [out], {})
                    eqns.append(ne)
                    producer[out.id] = ne
                    continue
            ne = Eqn(e.prim, [x], e.outputs, e.params)
        else:
            ne = Eqn(e.prim, ins, e.outputs, e.params)
        for o in e.outputs:
            producer[o.id] = ne
        eqns.append(ne)
    return _clone(p, eqns, [rep(o) for o in p.outs], p.consts)


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    if None in a or None in b:  # (a dimension known only at run time)
        return None
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def broadcasts(p: Program) -> Program:
    """An operand broadcast only to meet the other one (``broadcast_to(s, shape) * y``, ``y``
    already of that shape) enters the elementwise op as it is: the op broadcasts it itself."""
    producer: dict[int, Eqn] = {}
    eqns = []
    changed = False
    for e in p.eqns:
        ne = e
        if len(e.inputs) == 2 and len(e.outputs) == 1 and not e.params and getattr(e.prim, "direct", None):
            ins = list(e.inputs)
            out = e.outputs[0]
            for k in (0, 1):
                i, other = ins[k], ins[1 - k]
                src = producer.get(i.id) if isinstance(i, Var) else None
                if src is None or src.prim is not _M.broadcast_to_p or not isinstance(other, Var):
                    continue
                s = src.inputs[0]
                if isinstance(s, Var) and s.weak is None and other.weak is None and s.dtype is i.dtype:
                    if _broadcast_shape(s.shape, other.shape) == tuple(out.shape):
                        ins[k] = s
            if any(a is not b for a, b in zip(ins, e.inputs, strict=True)):
                ne = Eqn(e.prim, ins, e.outputs, e.params)
                changed = True
        for o in ne.outputs:
            producer[o.id] = ne
        eqns.append(ne)
    return _clone(p, eqns, p.outs, p.consts) if changed else p


def _param_key(params: dict[str, Any]) -> Any:
    items = []
    for k, v in params.items():
        if isinstance(v, (list, dict, set)):
            return None
        items.append((k, v))
    key = tuple(items)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def cse(p: Program) -> Program:
    """Compute each distinct equation once."""
    sub: dict[int, Var] = {}
    seen: dict[Any, Eqn] = {}
    eqns = []

    def rep(i: Any) -> Any:
        return sub.get(i.id, i) if isinstance(i, Var) else i

    for e in p.eqns:
        ins = [rep(i) for i in e.inputs]
        pk = _param_key(e.params)
        key = None
        if pk is not None and e.prim is not custom_call_p:
            try:
                lits = tuple(("v", i.id) if isinstance(i, Var) else ("l", type(i), i) for i in ins)
                key = (e.prim, lits, pk)
                hash(key)
            except TypeError:
                key = None
        if key is not None:
            prev = seen.get(key)
            if prev is not None:
                for a, b in zip(e.outputs, prev.outputs, strict=True):
                    sub[a.id] = b
                continue
        ne = Eqn(e.prim, ins, e.outputs, e.params)
        if key is not None:
            seen[key] = ne
        eqns.append(ne)
    outs = [rep(o) for o in p.outs]
    return _clone(p, eqns, outs, p.consts)


def dce(p: Program) -> Program:
    """Drop equations that no output needs, and constants no equation reads."""
    live = {o.id for o in p.outs if isinstance(o, Var)}
    kept = []
    for e in reversed(p.eqns):
        if any(o.id in live for o in e.outputs):
            kept.append(e)
            for i in e.inputs:
                if isinstance(i, Var):
                    live.add(i.id)
    kept.reverse()
    consts = [(v, c) for v, c in p.consts if v.id in live]
    return _clone(p, kept, p.outs, consts)
