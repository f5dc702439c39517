"""Optimizing a [`Program`][functorch_lite.transforms.Program] and compiling it to straight-line Python over backend arrays.

Passes (each returns a new program; the input is left as it was):

* ``fold``: equations whose inputs are all concrete constants are evaluated once;
* ``broadcasts``: an operand broadcast only to meet the other one enters the op unbroadcast;
* ``cse``: equal equations (same primitive, inputs and params) are computed once;
* ``dce``: equations no output depends on are dropped.

``compile_program`` generates one Python function per program: one pre-bound call per
equation (the primitive's impl with its namespace and params bound by ``functools.partial``),
and a ``del`` after each value's last use, so buffers are freed as early as in eager code.
Replaying it builds no Tensor, tracer or tape.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as _np

from .. import _backend as _B
from .._backend import FAST_NAMESPACES as _FAST_NS
from .._core.tensor import Tensor, backend_for
from .._dtypes import DType as _DType
from .._ops import dtypes as _D
from .._ops import elementwise as _E
from .._ops import indexing as _I
from .._ops import linalg_core as _L
from .._ops import manipulation as _M
from .._ops import searching as _S
from ._program import Eqn, Program, Var, custom_call_p
from ._weak import PY_OPS, weak_eval

__all__ = ["optimize", "fold", "simplify", "reshapes", "broadcasts", "cse", "dce", "compile_program"]

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


# ---------------------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------------------
def _bound(e: Eqn) -> Any:
    """The callable the generated code calls for equation ``e`` (namespace and params bound)."""
    prim = e.prim
    xp = next((i.xp for i in e.inputs if isinstance(i, Var) and i.weak is None), None)
    if all(not isinstance(i, Var) or i.weak is not None for i in e.inputs):
        wxp = next(i.xp for i in e.inputs if isinstance(i, Var))
        caller = _weak_caller(prim, wxp, e.params)
        if not prim.multiple_results and e.outputs[0].weak is None:
            # a comparison of weak values was staged as a 0-d bool array (StagingTrace.process): the
            # replay gives one too, so an op that takes it (where) sees what it saw when traced
            asarray = backend_for(e.outputs[0].xp).xp.asarray
            return lambda *a: asarray(caller(*a))
        return caller
    if prim is custom_call_p:
        sub = e.params["program"]
        return lambda *a: sub.replay(a)
    direct = getattr(prim, "direct", None)
    if direct is not None and not e.params:
        fn = direct(xp)
        if fn is not None:
            return fn
    if e.params:
        return functools.partial(prim.impl, xp, **e.params)
    return functools.partial(prim.impl, xp)


def _fast_bound(e: Eqn) -> tuple[Any, list[Any]] | None:
    """On a backend with a faster stand-in namespace (numpy: ``_backend.FAST_NAMESPACES``), the
    shape-only primitives call it straight, their params passed positionally: (function, params)."""
    prim, params, ins = e.prim, e.params, e.inputs
    if prim is _L.matmul_p and len(ins) == 2 and all(isinstance(i, Var) and i.weak is None for i in ins):
        x, y = ins  # the impl's choice depends on the shapes only: make it now
        outer = len(x.shape) >= 2 and x.shape[-1] == 1 and len(y.shape) >= 2
        return (operator.mul if outer else operator.matmul), []
    x = ins[0] if ins else None
    if not isinstance(x, Var) or x.weak is not None:
        return None
    ns = _FAST_NS.get(x.xp)
    if ns is None:
        return None
    if prim is _I.getitem_p and len(ins) == 2 and isinstance(ins[1], Var) and ins[1].weak is None:
        spec: tuple[Any, ...] = params.get("spec") or ()
        if set(params) == {"spec"} and len(spec) == 1 and isinstance(spec[0], _I._Arr) and not spec[0].is_bool:
            return operator.getitem, []  # x[i] with one integer array: numpy's own indexing
    if (
        prim is _D.astype_p
        and len(ins) == 1
        and x.shape != ()
        and set(params) <= {"dtype", "copy"}
        and params.get("copy", True) in (True, False)
    ):
        nat = backend_for(x.xp).native(params["dtype"])
        return _np.ndarray.astype, [nat, "K", "unsafe", True, params.get("copy", True)]
    if prim is _S.where_p and not params and len(ins) == 3:
        return ns.where, []  # (the impl is xp.where(c, x, y): the namespace's own, called straight)
    if prim is _L.matmul_nt_p and not params and len(ins) == 2 and isinstance(ins[1], Var) and len(ins[1].shape) == 2:
        return _matmul_nt, []
    if len(ins) != 1:
        return None
    if prim is _M.reshape_p and set(params) <= {"shape", "copy"} and params.get("copy") is None:
        return ns.reshape, [params["shape"]]
    if prim is _M.broadcast_to_p and set(params) == {"shape"}:
        return ns.broadcast_to, [params["shape"]]
    if prim is _M.permute_dims_p and set(params) == {"axes"}:
        return ns.permute_dims, [params["axes"]]
    if prim is _E.relu_p and not params:
        return ns.maximum, [0]
    if getattr(prim.impl, "__qualname__", "") == "_xp_reduce.<locals>.impl" and params.get("dtype") is None:
        # sum / prod / max / min of a floating array: the ufunc's reduce, as the impl calls it
        fast = _B.fast_reducers(x.xp)
        fn = fast.get(prim.name) if fast is not None else None
        if fn is not None and set(params) <= {"axis", "keepdims", "dtype"} and _is_float(x):
            return fn, [params["axis"], None, None, params["keepdims"]]
    return None


def _matmul_nt(x: Any, w: Any) -> Any:
    return x @ w.mT  # (the impl's x @ _amT(w) for a numpy matrix)


def _is_float(v: Var) -> bool:
    try:
        return backend_for(v.xp).native(v.dtype) in _B.FLOAT_NATIVES[v.xp]
    except Exception:  # noqa: BLE001 - an unknown dtype: not this fast path
        return False


def _weak_caller(prim: Any, xp: Any, params: dict[str, Any]) -> Any:
    op = PY_OPS.get(prim.name)
    if op is not None and not params:

        def py(*vals: Any) -> Any:
            try:
                return op(*vals)
            except (ZeroDivisionError, OverflowError, ValueError):  # the backend's inf / nan
                return weak_eval(prim, xp, vals, params)

        return py

    def call(*vals: Any) -> Any:
        return weak_eval(prim, xp, vals, params)

    return call


_PY_BINARY = {
    "add": "+",
    "subtract": "-",
    "multiply": "*",
    "divide": "/",
    "pow": "**",
    "floor_divide": "//",
    "remainder": "%",
    "equal": "==",
    "not_equal": "!=",
    "less": "<",
    "less_equal": "<=",
    "greater": ">",
    "greater_equal": ">=",
}
_PY_UNARY = {"negative": "-{}", "positive": "+{}", "abs": "abs({})"}
_PY_CAST = {"f": "float({})", "i": "int({})", "u": "int({})", "c": "complex({})", "b": "bool({})"}


def _inline_weak(e: Eqn, ins: list[str]) -> str | None:
    """Python source for a weak equation (Python scalars in, a Python scalar out), as
    ``weak_eval`` computes it: the operator itself, or the cast ``astype`` makes of a scalar."""
    if e.prim.multiple_results or not all(not isinstance(i, Var) or i.weak is not None for i in e.inputs):
        return None
    if e.outputs[0].weak is None:  # a weak comparison: a 0-d bool array, not a Python bool (see _bound)
        return None
    name = e.prim.name
    if not e.params:
        if name in _PY_BINARY and len(ins) == 2:
            return f"{ins[0]} {_PY_BINARY[name]} {ins[1]}"
        if name in _PY_UNARY and len(ins) == 1:
            return _PY_UNARY[name].format(ins[0])
    elif name == "astype" and len(ins) == 1 and set(e.params) <= {"dtype", "copy"}:
        kind = getattr(e.params["dtype"], "kind", None)
        if isinstance(kind, str) and kind in _PY_CAST:
            return _PY_CAST[kind].format(ins[0])
    return None


_CODE: dict[str, Any] = {}
_CODE_LIMIT = 256


def compiled(src: str, filename: str) -> Any:
    """``compile(src)``, cached by the text: a program traced again (a new ``jit`` of the same
    step, a new batch size) generates the same source, its constants bound by name outside it."""
    code = _CODE.get(src)
    if code is None:
        if len(_CODE) >= _CODE_LIMIT:
            del _CODE[next(iter(_CODE))]
        code = _CODE[src] = compile(src, filename, "exec")
    return code


def _codegen(p: Program, override: Any = None) -> tuple[str, dict[str, Any]]:
    """The source of ``p``'s replay and the names it reads (bound functions, literals, constants).

    ``override(eqn)``: a compiler's function for an equation (called with its inputs), or None
    for the replay's own."""
    names: dict[int, str] = {}
    env: dict[str, Any] = {}
    args = []
    for k, v in enumerate(v for v in p.in_vars if isinstance(v, Var)):
        names[v.id] = f"i{k}"
        args.append(f"i{k}")
    for k, (v, c) in enumerate(p.consts):
        names[v.id] = f"c{k}"
        env[f"c{k}"] = c._a
    # last use of every variable (outputs live to the end)
    last: dict[int, int] = {}
    for n, e in enumerate(p.eqns):
        for i in e.inputs:
            if isinstance(i, Var):
                last[i.id] = n
    out_ids = {o.id for o in p.outs if isinstance(o, Var)}
    const_ids = {v.id for v, _ in p.consts}
    lines = [f"def _run({', '.join(args)}):"]

    def ref(i: Any) -> str:
        """The name of a variable, or of a new closure constant holding literal ``i``."""
        if isinstance(i, Var):
            return names[i.id]
        lname = f"k{len(env)}"
        env[lname] = i
        return lname

    bound = [_fast_bound(e) or (_bound(e), []) for e in p.eqns]
    overridden: set[int] = set()
    if override is not None:
        for n, e in enumerate(p.eqns):
            fn = override(e)
            if fn is not None:
                bound[n] = (fn, [])
                overridden.add(n)
    reusable = _reusable_buffers(p, bound, last, out_ids | const_ids)
    for n, e in enumerate(p.eqns):
        fname = f"f{n}"
        fn, extra = bound[n]
        env[fname] = fn
        ins = [ref(i) for i in e.inputs]
        call_ins = ins + [ref(v) for v in extra]
        if n in reusable:  # a dead intermediate of the output's shape and dtype: written in place
            call_ins.append(f"out={names[reusable[n]]}")
        outs = []
        for k, o in enumerate(e.outputs):
            nm = f"v{n}_{k}"
            names[o.id] = nm
            outs.append(nm)
        call = f"{fname}({', '.join(call_ins)})"
        inline = _inline_weak(e, ins) if n not in overridden else None
        if inline is not None:  # Python scalars: the operator inline, the general call where it raises
            if e.params:
                lines.append(f"    {outs[0]} = {inline}")
            else:
                lines.append(f"    try: {outs[0]} = {inline}")
                lines.append(f"    except (ZeroDivisionError, OverflowError, ValueError): {outs[0]} = {call}")
        elif e.prim.multiple_results:
            lines.append(f"    {', '.join(outs)}{',' if len(outs) == 1 else ''} = {call}")
        else:
            lines.append(f"    {outs[0]} = {call}")
        dead = sorted(
            {
                names[i.id]
                for i in e.inputs
                if isinstance(i, Var) and last.get(i.id) == n and i.id not in out_ids and i.id not in const_ids
            }
        )
        dead += [nm for o, nm in zip(e.outputs, outs, strict=True) if o.id not in last and o.id not in out_ids]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    rets = [ref(o) for o in p.outs]
    lines.append(f"    return [{', '.join(rets)}]")
    return "\n".join(lines), env


_REUSE_MIN = 1024


def _size(shape: tuple[Any, ...]) -> int:
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return 0
        n *= d
    return n if shape else 0


def _reusable_buffers(p: Program, bound: list[Any], last: dict[int, int], kept: set[int]) -> dict[int, int]:
    """For numpy ufunc equations: the id of an input whose buffer the output may take (``out=``).

    The input must be an intermediate this program computed with a ufunc (a fresh array, not
    a view of an argument or constant), used for the last time here, only ever read by ufuncs
    (so no view of it lives on), and of the output's shape and dtype."""
    np_xp = _B.numpy_backend.xp
    ufunc = [
        isinstance(fn, _np.ufunc)
        and not extra
        and fn.nout == 1
        and len(e.inputs) == fn.nin
        and len(e.outputs) == 1
        and not e.params
        and e.outputs[0].weak is None
        and _size(e.outputs[0].shape) >= _REUSE_MIN  # (below it, numpy's out= costs more than it saves)
        and all(not isinstance(i, Var) or i.xp is np_xp for i in e.inputs)
        for e, (fn, extra) in zip(p.eqns, bound, strict=True)
    ]
    read_elsewhere: set[int] = set()  # read by something other than a ufunc (a view could outlive it)
    for e, u in zip(p.eqns, ufunc, strict=True):
        if not u:
            read_elsewhere.update(i.id for i in e.inputs if isinstance(i, Var))
    owned: set[int] = set()
    out: dict[int, int] = {}
    for n, e in enumerate(p.eqns):
        if not ufunc[n]:
            continue
        o = e.outputs[0]
        for i in e.inputs:
            if (
                isinstance(i, Var)
                and i.id in owned
                and last.get(i.id) == n
                and i.id not in kept
                and i.id not in read_elsewhere
                and i.weak is None
                and i.shape == o.shape
                and i.dtype == o.dtype
            ):
                out[n] = i.id
                break
        owned.add(o.id)
    return out


def _exec(src: str, env: dict[str, Any]) -> Any:
    exec(compiled(src, "<functorch_lite program>"), env)  # noqa: S102  (generated from the program; nothing user-supplied is executed)
    fn = env["_run"]
    fn.source = src
    return fn


def compile_program(p: Program, override: Any = None, compiler: str = "replay", explicit: bool = False) -> Any:
    """Straight-line Python for ``p``: ``fn(*flat_inputs) -> list of outputs`` on backend arrays.

    ``compiler`` (see ``_compilers``): the replay itself, or the replay handed to a backend's
    compiler (``"xla"``, ``"torch.compile"``, ``"numba"``); ``explicit``: the user named it (a
    program it cannot compile raises rather than replaying). ``override``: see ``_codegen``."""
    if compiler != "replay":
        from ._compilers import lower

        return lower(p, compiler, explicit)
    return _exec(*_codegen(p, override))


# ---------------------------------------------------------------------------------------
# Reusing the passes' work for a program of the same structure
# ---------------------------------------------------------------------------------------
# A step traced again (a new ``jit`` of the same function, the same program for a new set of
# modules) gives a program equal to an earlier one up to variable ids and the captured
# constants' values. When no pass looked at a constant's value (nothing to fold, no ``x * c``
# with a constant ``c``), the optimized program and its code depend on the structure only:
# they are kept (without the constants) under a key of the structure, and rebuilt around the
# new program's constants.
_SKELETONS: dict[Any, Any] = {}
_SKELETON_LIMIT = 64


class _NoKey(Exception):
    pass


def _plain(v: Any) -> Any:
    """A hashable stand-in for a param or literal that equals another's only for the same value
    (floats by repr: 0.0 is not -0.0); raises _NoKey for anything else (arrays, programs)."""
    c = v.__class__
    if c in (int, bool, str, type(None), type(Ellipsis), type):
        return (c, v)
    if c in (float, complex):
        return (c, repr(v))
    if c is tuple:
        if all(x.__class__ is int for x in v):  # shapes and axes
            return ("i", v)
        return ("t", tuple(_plain(x) for x in v))
    if c is slice:
        return ("s", _plain(v.start), _plain(v.stop), _plain(v.step))
    if c is _DType:
        return ("d", id(v))  # (the dtypes are module-level constants; their __hash__ is Python code)
    if c is _I._Arr:
        return ("a", v.i, v.is_bool, v.ndim)
    raise _NoKey(c.__name__)


def _aval(v: Var) -> Any:
    return (v.shape, id(v.dtype), id(v.xp), v.weak)


class _Key:
    """A structure key with its hash computed once (a tuple's is recomputed at every lookup)."""

    __slots__ = ("items", "h")

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items = items
        self.h = hash(items)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.h == other.h and self.items == other.items


def structure_key(p: Program) -> Any:
    """The key under which ``p``'s optimized form can be shared, or None where a pass may read a
    constant's value (or a param is not a plain value)."""
    try:
        ids: dict[int, int] = {}
        items: list[Any] = [p.kind]
        for v in p.in_vars:
            if isinstance(v, Var):
                ids[v.id] = len(ids)
                items.append(_aval(v))
            else:
                items.append(("static", _plain(v[1])))
        consts: dict[int, Tensor] = {}
        for v, c in p.consts:
            if c._t is not None:
                return None
            ids[v.id] = len(ids)
            consts[v.id] = c
            items.append(("c", _aval(v)))
        append = items.append
        for e in p.eqns:
            prim = e.prim
            if prim is custom_call_p:
                return None
            ins = e.inputs
            refs: list[Any] = []
            all_const = any_var = False
            for i in ins:
                if isinstance(i, Var):
                    refs.append(ids[i.id])
                    all_const = (all_const or not any_var) and i.id in consts
                    any_var = True
                else:
                    refs.append(("l", _plain(i)))
            if all_const:
                return None  # fold would evaluate it
            params = e.params
            if len(ins) == 2 and not params and (prim.name in _IDENTITY or prim.name == "pow"):
                x, y = ins  # simplify compares a constant operand with 1 or 0: its answer is part of the key
                unit = _IDENTITY.get(prim.name, 1)
                if isinstance(y, Var) and y.id in consts:
                    append(("y", _const_equals(y, unit, consts)))
                if prim.name in _COMMUTES and isinstance(x, Var) and x.id in consts:
                    append(("x", _const_equals(x, unit, consts)))
            outs = []
            for o in e.outputs:
                ids[o.id] = len(ids)
                outs.append((o.shape, id(o.dtype), id(o.xp), o.weak))
            append(
                (prim, tuple([(k, _plain(v)) for k, v in params.items()]) if params else (), tuple(refs), tuple(outs))
            )
        items.append(tuple(ids[o.id] if isinstance(o, Var) else ("l", _plain(o)) for o in p.outs))
        return _Key(tuple(items))
    except (_NoKey, KeyError, TypeError):
        return None


def optimize_compiled(p: Program) -> Program:
    """``optimize(p)`` with its compiled replay set (``_compiled``); a program of an already
    seen structure reuses the optimized equations and the generated code."""
    key = structure_key(p)
    skel = _SKELETONS.get(key) if key is not None else None
    if skel is not None:
        in_vars, eqns, outs, cvars, pos, src, tmpl = skel
        consts = [(v, p.consts[k][1]) for v, k in zip(cvars, pos, strict=True)]
        q = Program(in_vars, p.in_tree, eqns, outs, p.out_tree, consts, p.kind)
        q.guards = p.guards
        env = dict(tmpl)
        env.update({f"c{k}": c._a for k, (_, c) in enumerate(consts)})
        q._compiled = _exec(src, env)
        return q
    q = optimize(p)
    src, env = _codegen(q)
    q._compiled = _exec(src, dict(env))
    if key is not None:
        where = {v.id: k for k, (v, _) in enumerate(p.consts)}
        pos = [where.get(v.id) for v, _ in q.consts]
        if None not in pos:  # (no constant of the passes' own: nothing but the trace's)
            tmpl = {n: x for n, x in env.items() if not (n[0] == "c" and n[1:].isdigit())}
            if len(_SKELETONS) >= _SKELETON_LIMIT:
                del _SKELETONS[next(iter(_SKELETONS))]
            _SKELETONS[key] = (q.in_vars, q.eqns, q.outs, [v for v, _ in q.consts], pos, src, tmpl)
    return q
