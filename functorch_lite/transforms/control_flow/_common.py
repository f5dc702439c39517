"""What the control-flow primitives share: closing bodies into cached programs, transforming them, ``ControlPrimitive``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..._core.engine import Primitive, new_trace
from ..._core.tensor import Tensor, backend_for, wrap
from ..._errors import ControlFlowError
from .._program import Program, Var, eval_program
from .._staging import _example_of, trace_program


# ---------------------------------------------------------------------------------------
# Helpers on Tensors (the ops are imported late: the ops modules import the transforms)
# ---------------------------------------------------------------------------------------
def _ops() -> Any:
    import functorch_lite as fl

    return fl


def _leaf(x: Any, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return _ops().asarray(x)
    except Exception:
        raise ControlFlowError(
            f"{what}: every leaf must be a Tensor, an array or a Python number; got {type(x).__name__}. "
            "Pass other values through a closure instead."
        ) from None


def _is_float(t: Any) -> bool:
    return isinstance(t, Tensor) and t.dtype.kind in "fc"


def _avals(ts: Sequence[Any]) -> list[tuple[tuple[int, ...], str]]:
    return [(tuple(t.shape), t.dtype.name) for t in ts]


def _fmt_avals(av: Sequence[tuple[tuple[int, ...], str]]) -> str:
    return "[" + ", ".join(f"{d}{list(s)}" for s, d in av) + "]"


def _var_aval(v: Any) -> tuple[tuple[int, ...], str]:
    return (tuple(v.shape), v.dtype.name)


def _zeros_like(t: Tensor) -> Tensor:
    return _ops().zeros_like(t)


def _example(t: Tensor, index0: bool = False) -> Tensor:
    """A concrete Tensor with ``t``'s shape and dtype (its own data, or an example's), to trace
    a body on; ``index0``: one slice along the leading axis."""
    ex = _example_of(t)
    xp = t._xp
    if index0:
        if ex.shape[0] == 0:
            ex = backend_for(xp).xp.zeros(tuple(ex.shape[1:]), dtype=ex.dtype)
        else:
            ex = ex[0, ...]
    return wrap(ex, xp)


def _xp_of(leaves: Sequence[Any]) -> Any:
    """The backend namespace of the first Tensor among ``leaves`` (the default backend's if none)."""
    for x in leaves:
        if isinstance(x, Tensor):
            return x._xp
    from ..._backend import current_default

    return current_default().xp


def _spec(shape: tuple[int, ...], dtype: Any, xp: Any) -> Tensor:
    b = backend_for(xp)
    return wrap(b.xp.zeros(shape, dtype=b.native(dtype)), xp)


# ---------------------------------------------------------------------------------------
# Bodies: a function traced into a closed program
# ---------------------------------------------------------------------------------------
def _global_key() -> Any:
    from ... import random as _random

    return _random._GLOBAL


_CACHE: dict[Any, Any] = {}
_CACHE_MAX = 1024


def signature(p: Program) -> Any:
    """A hashable key of ``p``'s structure (equations, params, avals; not its Var objects), or
    None: two traces of one body give one signature, so they share one optimized, compiled
    program and the programs the rules derive from it."""
    s = p.__dict__.get("_cf_sig", False)
    if s is not False:
        return s
    ids: dict[int, int] = {}

    def ref(v: Any) -> Any:
        if isinstance(v, Var):
            r = ids.get(v.id)
            if r is None:
                r = ids[v.id] = len(ids)
            return r
        if v is None or isinstance(v, (bool, int, float, complex, str)):
            return ("lit", type(v), v)
        raise TypeError

    try:
        ins = tuple((ref(v), v.shape, v.dtype, v.xp, v.weak) for v in p.in_vars)
        eqs = tuple(
            (
                e.prim.name,
                _param_sig(e.params),
                tuple(ref(i) for i in e.inputs),
                tuple((ref(o), o.shape, o.dtype, o.weak) for o in e.outputs),
            )
            for e in p.eqns
        )
        s = (ins, eqs, tuple(ref(o) for o in p.outs))
        hash(s)
    except TypeError:
        s = None
    p._cf_sig = s  # type: ignore[attr-defined]
    return s


def _param_sig(params: dict[str, Any]) -> Any:
    items = []
    for k, v in params.items():
        if isinstance(v, Program):
            v = ("program", signature(v))
            if v[1] is None:
                raise TypeError
        elif isinstance(v, tuple) and v and all(isinstance(b, Program) for b in v):
            v = ("programs", tuple(signature(b) for b in v))
            if None in v[1]:
                raise TypeError
        items.append((k, v))
    return tuple(items)


def _remember(key: Any, value: Any) -> Any:
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = value
    return value


def close(
    fn: Callable[..., Sequence[Any]], examples: Sequence[Any], kind: str, key: Any = None
) -> tuple[Program, list[Tensor]]:
    """Trace ``fn`` (flat Tensors in, a flat list of Tensors out) on ``examples`` into a program
    with no captured constants: the values it captured become its leading inputs, returned
    beside it, to be passed as operands.

    ``key`` (the rules pass one: what they derive and from which body's signature) looks the
    result up instead of tracing again; every program is optimized and compiled once per
    signature."""
    if key is not None:
        key = (key, tuple((tuple(e.shape), e.dtype, e._xp) for e in examples))
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
    g = _global_key()
    key_before = g.key
    depth = g.stage(key_before)  # (the body's draws stay in this thread: see random._Global)
    try:
        p = trace_program(lambda *a: list(fn(*a)), list(examples), kind=kind)
    finally:
        key_after = g.key
        g.unstage(depth)
    if key_after is not key_before:
        raise ControlFlowError(
            f"{kind}: the body draws from the global random generator (a random op without a key, "
            "nn.Dropout, ...), whose state cannot advance inside a traced body. Pass a key "
            "(fl.random.key) through the carry or operands and split it in the body."
        )
    cvars = [v for v, _ in p.consts]
    consts = [c for _, c in p.consts]
    prog = Program(cvars + list(p.in_vars), None, p.eqns, list(p.outs), p.out_tree, [], kind)
    sig = signature(prog)
    if sig is None:
        prog = prog.optimized()
    else:
        canon = _CACHE.get(("canonical", sig))
        prog = canon if canon is not None else _remember(("canonical", sig), prog.optimized())
    res = (prog, consts)
    if key is not None and all(c._t is None for c in consts):
        _remember(key, res)
    return res


def _key(tag: str, *parts: Any) -> Any:
    """A cache key for a derived program, or None when a body has no signature."""
    sigs = []
    for x in parts:
        if isinstance(x, Program):
            x = signature(x)
            if x is None:
                return None
        elif isinstance(x, tuple) and x and all(isinstance(b, Program) for b in x):
            x = tuple(signature(b) for b in x)
            if None in x:
                return None
        sigs.append(x)
    return (tag, *sigs)


def _jvp_eval(prog: Program, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """``prog`` under forward mode: outputs and their tangents (None where zero)."""
    from .._ad import JVPTrace

    with new_trace(JVPTrace) as tr:
        args = [p if t is None else tr.tracer(p, t) for p, t in zip(primals, tangents, strict=True)]
        outs = eval_program(prog, args)
    res = []
    tans = []
    for o in outs:
        p = o._t if isinstance(o, Tensor) else None
        if p is not None and p.trace is tr:
            res.append(p.primal)
            tans.append(p.tangent)
        else:
            res.append(o)
            tans.append(None)
    return res, tans


def _vjp_eval(
    prog: Program, primals: Sequence[Any], wrt: Sequence[int], out_idx: Sequence[int], cts: Sequence[Any]
) -> list[Any]:
    """Cotangents of ``prog``'s inputs ``wrt`` for cotangents ``cts`` on its outputs ``out_idx``
    (zeros where an input is unused)."""
    from ..api import vjp

    def f(*w: Any) -> list[Any]:
        args = list(primals)
        for i, x in zip(wrt, w, strict=True):
            args[i] = x
        outs = eval_program(prog, args)
        return [outs[j] for j in out_idx]

    if not wrt:
        return []
    _, f_vjp = vjp(f, *[primals[i] for i in wrt])
    return list(f_vjp(list(cts)))


def _vmap_eval(prog: Program, args: Sequence[Any], dims: Sequence[Any], axis_size: int) -> list[Any]:
    """``prog`` vectorised over the inputs batched at ``dims``; every output batched at axis 0."""
    from ..api import vmap

    def f(*a: Any) -> list[Any]:
        return eval_program(prog, list(a))

    return list(vmap(f, in_axes=tuple(dims), out_axes=0, axis_size=axis_size)(*args))


def _to_front(x: Tensor, d: Any, n: int) -> Tensor:
    """``x`` with its batch axis ``d`` moved to the front (broadcast when ``d`` is None)."""
    fl = _ops()
    if d is None:
        return fl.broadcast_to(fl.expand_dims(x, axis=0), (n, *x.shape))
    return x if d == 0 else fl.moveaxis(x, d, 0)


def _select(pred: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """``where(pred, new, old)`` with a batch-leading ``pred`` broadcast over the other axes."""
    fl = _ops()
    p = fl.reshape(pred, tuple(pred.shape) + (1,) * (new.ndim - pred.ndim))
    return fl.where(p, new, old)


# ---------------------------------------------------------------------------------------
# Primitives whose staged outputs may have a run-time length (scan with a traced length)
# ---------------------------------------------------------------------------------------
class ControlPrimitive(Primitive):
    """A control-flow primitive: its params hold programs (printed nested by ``str(program)``)."""

    __slots__ = ()

    def staged_shapes(self, outs: Sequence[Var], params: dict[str, Any]) -> None:
        """Mark output variables whose shapes are known only at run time (StagingTrace calls this)."""
        if params.get("dyn"):
            nk = params["n_carry"]
            for v in outs[nk:]:
                v.shape = (None, *v.shape[1:])  # type: ignore[arg-type]


def _compiled(p: Program) -> Callable[..., list[Any]]:
    """The straight-line replay of body ``p`` (compiled on first use): arrays in, arrays out."""
    fn = p._compiled
    if fn is None:
        from .._compile import compile_program

        fn = p._compiled = compile_program(p)
    return fn
