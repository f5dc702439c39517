"""The ``"xla"`` compiler (jax): the replay inside ``jax.jit``, control flow as lax loops.

``scan``, ``cond`` and ``while_loop`` become ``lax.scan``, ``lax.switch`` and
``lax.while_loop``; weak Python scalars are traced arguments (packed in one array per dtype),
so a changing learning rate does not recompile. jax is imported lazily, inside the functions
that lower to it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._core.engine import PRIMITIVES
from .._core.tensor import backend_for
from ._compiler_native import _guarded, _native, _weak_only
from ._passes import _clone
from ._program import Eqn, Program, Var
from ._replay import compile_replay


def _xla_replay(p: Program) -> Callable[..., list[Any]]:
    """``p``'s replay with its control-flow equations lowered to lax (cached on the program)."""
    fn = p.__dict__.get("_xla_replay")
    if fn is None:
        fn = p._xla_replay = compile_replay(p, override=_xla_override)  # type: ignore[attr-defined]
    return fn  # type: ignore[no-any-return]


def _xla_override(e: Eqn) -> Callable[..., Any] | None:
    name, params = e.prim.name, e.params
    if _weak_only(e):
        return _weak_xla(e)
    if name == "scan" and not params.get("dyn"):
        return functools.partial(_lax_scan, **params)
    if name == "cond":
        return functools.partial(_lax_switch, **params)
    if name == "while_loop":
        return functools.partial(_lax_while, **params)
    return None


def _weak_xla(e: Eqn) -> Callable[..., Any] | None:
    """An equation on weak scalars only, which jax.jit traces (as weak-typed values): what the
    replay computes in Python, on tracers. A cast keeps the value weak, as ``float(v)`` does."""
    from ._weak import PY_OPS

    if e.prim.name == "astype" and len(e.inputs) == 1:
        kind = getattr(e.params.get("dtype"), "kind", None)
        if kind == "f":
            return lambda v: v + 0.0  # (weak int + weak float: a weak float, as in Python)
        return None  # (int(v), bool(v) of a traced value: not expressible; the default replays)
    op = PY_OPS.get(e.prim.name)
    if op is not None and not e.params:
        return op  # (on tracers jax gives inf / nan where Python raises, as the replay's fallback does)
    import jax.numpy as jnp

    return functools.partial(e.prim.impl, jnp, **e.params)


def _lax_scan(*arrays: Any, body: Program, n_consts: int, n_carry: int, length: int, reverse: bool, **_: Any) -> Any:
    from jax import lax

    consts = arrays[:n_consts]
    carry = list(arrays[n_consts : n_consts + n_carry])
    xs = list(arrays[n_consts + n_carry :])
    fn = _xla_replay(body)

    def step(c: list[Any], x: list[Any]) -> tuple[list[Any], list[Any]]:
        outs = fn(*consts, *c, *x)
        return list(outs[:n_carry]), list(outs[n_carry:])

    c, ys = lax.scan(step, carry, xs, length=length, reverse=reverse)
    return (*c, *ys)


def _lax_switch(index: Any, *arrays: Any, branches: tuple[Program, ...]) -> Any:
    import jax.numpy as jnp
    from jax import lax

    fns = [functools.partial(lambda f, *a: tuple(f(*a)), _xla_replay(b)) for b in branches]
    return tuple(lax.switch(jnp.asarray(index).astype(jnp.int32), fns, *arrays))


def _lax_while(*arrays: Any, cond: Program, body: Program, n_cc: int, n_bc: int) -> Any:
    import jax.numpy as jnp
    from jax import lax

    from .control_flow import _int_dtype

    cc, bc = arrays[:n_cc], arrays[n_cc : n_cc + n_bc]
    carry = list(arrays[n_cc + n_bc :])
    cf, bf = _xla_replay(cond), _xla_replay(body)
    n0 = jnp.asarray(0, dtype=backend_for(jnp).native(_int_dtype()))
    out, n = lax.while_loop(
        lambda s: jnp.asarray(cf(*cc, *s[0])[0]).astype(bool),
        lambda s: (list(bf(*bc, *s[0])), s[1] + 1),
        (carry, n0),
    )
    return (*out, n)


def reciprocals(p: Program) -> Program:
    """``p`` with each ``divide(x, s)`` of a real floating array ``x`` by a weak Python scalar
    ``s`` written ``multiply(x, r)``, where ``r = 1 / s`` is a weak equation of its own (so it
    runs in Python with the other weak-scalar equations; a zero ``s`` gives the backend's
    signed infinity there, as ``x / 0`` does).

    XLA rewrites ``x / broadcast(s)`` as ``x * broadcast(1 / s)`` itself, but computes each
    ``1 / s`` as a separate scalar kernel: Adam's two bias corrections per parameter make eight
    such kernels, all ready at the start, and the CPU runtime then runs the program on its
    thread pool, where waking a worker and waiting for it costs more than the whole step's
    arithmetic. Computed in Python, each reciprocal is one more packed scalar, which XLA fuses
    into the kernel that reads it. The result differs from the replay's ``x / s`` by at most
    an ulp (the float64 reciprocal rounded once, rather than the float32 one XLA computes)."""
    from .._ops.elementwise import multiply

    divide_p, multiply_p = PRIMITIVES.get("divide"), multiply.prim
    eqns: list[Eqn] = []
    recip: dict[int, Var] = {}
    for e in p.eqns:
        ins = e.inputs
        if (
            e.prim is divide_p
            and not e.params
            and len(ins) == 2
            and isinstance(ins[0], Var)
            and isinstance(ins[1], Var)
            and ins[0].weak is None
            and ins[1].weak in (int, float)
            and getattr(ins[0].dtype, "kind", None) == "f"
            and e.outputs[0].dtype is ins[0].dtype
        ):
            s = ins[1]
            r = recip.get(s.id)
            if r is None:
                from .._ops._base import default_float

                r = recip[s.id] = Var((), default_float(), s.xp, float)
                eqns.append(Eqn(divide_p, [1.0, s], [r], {}))
            eqns.append(Eqn(multiply_p, [ins[0], r], e.outputs, {}))
            continue
        eqns.append(e)
    if not recip:
        return p
    return _clone(p, eqns, p.outs, p.consts)


def _xla(p: Program, explicit: bool) -> Callable[..., list[Any]]:
    import jax

    run, jf = _native(reciprocals(p), _xla_replay, jax.jit, pack=True)
    return _guarded(p, "xla", run, explicit, jf)
