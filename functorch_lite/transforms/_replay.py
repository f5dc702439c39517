"""Compiling a [`Program`][functorch_lite.transforms.Program] to straight-line Python over backend arrays (the replay).

``compile_replay`` generates one Python function per program: one pre-bound call per
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
from .._core.tensor import backend_for
from .._ops import dtypes as _D
from .._ops import elementwise as _E
from .._ops import indexing as _I
from .._ops import linalg_core as _L
from .._ops import manipulation as _M
from .._ops import searching as _S
from ._program import Eqn, Program, Var, custom_call_p
from ._weak import PY_OPS, weak_eval

__all__ = ["compile_replay", "compiled"]


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


def compile_replay(p: Program, override: Any = None) -> Any:
    """Straight-line Python for ``p``: ``fn(*flat_inputs) -> list of outputs`` on backend arrays.

    ``override``: see ``_codegen``."""
    return _exec(*_codegen(p, override))
