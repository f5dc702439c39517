"""What the native compilers (``transforms/_compiler_xla.py``, ``_compiler_torch.py``) share.

* ``_native``: a program split into its weak-scalar equations, run in Python as the replay
  runs them, and the rest, handed to the native compiler;
* ``_guarded``: the compiled function, falling back to the replay (or raising
  ``CompilerError`` for an explicit choice) when its first call fails where the replay runs;
* ``_cached_replay``: the program's own replay (cached on it), what a compiler falls back to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import CompilerError
from ._program import Eqn, Program, Var
from ._replay import compile_replay


def _cached_replay(p: Program) -> Callable[..., list[Any]]:
    fn = p._compiled
    if fn is None:
        fn = p._compiled = compile_replay(p)
    return fn


def _guarded(
    p: Program, name: str, compiled: Callable[..., Any], explicit: bool, native: Any
) -> Callable[..., list[Any]]:
    """``compiled`` (which traces on its first call); if that first call fails where the replay
    succeeds, the program is one the compiler cannot express: the default falls back to the
    replay, an explicit choice raises CompilerError. A failure of the replay too is the
    program's own error, raised as it is."""
    replay = _cached_replay(p)
    state: list[Any] = [None]

    def run(*a: Any) -> list[Any]:
        fn = state[0]
        if fn is not None:
            return fn(*a)  # type: ignore[no-any-return]
        try:
            out = compiled(*a)
        except Exception as exc:  # noqa: BLE001 - told apart from the program's own errors below
            out = replay(*a)  # (the program's own error, if it is one, raises here)
            if explicit:
                raise CompilerError(
                    f"jit(compiler={name!r}) cannot compile this program ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}). The replay runs it: pass "
                    "compiler='replay', or leave compiler=None to fall back to it."
                ) from exc
            state[0] = run.settled = replay  # type: ignore[attr-defined]
            run.compiler = "replay"  # type: ignore[attr-defined]
            return out  # type: ignore[no-any-return]
        state[0] = run.settled = compiled  # type: ignore[attr-defined]
        return out  # type: ignore[no-any-return]

    run.compiler = name  # type: ignore[attr-defined]
    run.native = native  # type: ignore[attr-defined]
    run.settled = None  # type: ignore[attr-defined]  # (after the first call: what every later call runs)
    return run


def _used(p: Program) -> set[int]:
    ids = {o.id for o in p.outs if isinstance(o, Var)}
    for e in p.eqns:
        ids.update(i.id for i in e.inputs if isinstance(i, Var))
    return ids


def _packable(p: Program, eqns: list[Eqn], read: list[Var]) -> dict[int, Any]:
    """The weak floats among ``read`` that meet only arrays of one floating dtype (as a Python
    float times a float32 array is that float cast to float32): id -> that dtype. They can be
    passed packed in one array of the dtype rather than one scalar argument each (jax.jit
    converts each scalar argument on every call, a few µs apiece)."""
    out: dict[int, Any] = {}
    bad: set[int] = set()
    for e in eqns:
        dts = {i.dtype for i in e.inputs if isinstance(i, Var) and i.weak is None}
        dts.update(o.dtype for o in e.outputs)
        dt = next(iter(dts)) if len(dts) == 1 else None
        for i in e.inputs:
            if isinstance(i, Var) and i.weak is float:
                if dt is None or getattr(dt, "kind", None) != "f" or out.get(i.id, dt) is not dt:
                    bad.add(i.id)
                else:
                    out[i.id] = dt
    outs = {o.id for o in p.outs if isinstance(o, Var)}
    return {k: v for k, v in out.items() if k not in bad and k not in outs and any(r.id == k for r in read)}


def _native(
    p: Program, compile_arrays: Callable[[Program], Any], make: Callable[[Any], Any], pack: bool = False
) -> tuple[Any, Any]:
    """(``p`` run through a native compiler ``make``, the compiled object).

    The program is split in two: its equations on weak scalars only (``0.9 ** step``,
    ``count + 1``) run in Python, as the replay runs them, so their results stay Python numbers
    with no device round trip; the rest (``compile_arrays`` of it) is what ``make`` compiles,
    reading the weak values it needs as (traced) arguments. The compiled part takes only the
    inputs it reads (an unused generator key is not transferred) and returns only its array
    outputs; literal outputs are put back around it."""
    flat = [v for v in p.in_vars if isinstance(v, Var)]
    pos = {v.id: k for k, v in enumerate(flat)}
    weak_eqns = [e for e in p.eqns if _weak_only(e)]
    arr_eqns = [e for e in p.eqns if not _weak_only(e)]
    weak_ids = {v.id for v in flat if v.weak is not None} | {o.id for e in weak_eqns for o in e.outputs}
    read: list[Var] = []  # what the compiled part reads: array inputs, then weak values
    seen: set[int] = set()
    made = {o.id for e in arr_eqns for o in e.outputs} | {v.id for v, _ in p.consts}
    for e in arr_eqns:
        for i in e.inputs:
            if isinstance(i, Var) and i.id not in made and i.id not in seen:
                seen.add(i.id)
                read.append(i)
    arr_outs = [o for o in p.outs if isinstance(o, Var) and o.weak is None]
    for o in arr_outs:  # (an input returned as it is)
        if o.id not in made and o.id not in seen:
            seen.add(o.id)
            read.append(o)
    wanted = [v for v in read if v.id in weak_ids and v.id not in pos]  # weak values computed in Python
    wanted += [o for o in p.outs if isinstance(o, Var) and o.weak is not None and o.id not in pos]
    weak_in = [v for v in flat if v.weak is not None]
    pw = compile_replay(Program(weak_in, None, weak_eqns, wanted, None, [], p.kind)) if weak_eqns else None
    pa = Program(read, None, arr_eqns, arr_outs, None, p.consts, p.kind)
    fn = compile_arrays(pa)
    packed = _packable(p, arr_eqns, read) if pack else {}
    direct = [v for v in read if v.id not in packed]
    groups: dict[Any, list[Var]] = {}
    for v in read:
        if v.id in packed:
            groups.setdefault(packed[v.id], []).append(v)
    if groups:  # the compiled function takes (direct..., one array per group) and unpacks them
        where: dict[int, tuple[int, int]] = {}
        for g, vs in enumerate(groups.values()):
            for j, v in enumerate(vs):
                where[v.id] = (g, j)
        order: list[tuple[int, int]] = [  # (-1, position among direct) or (group, index in it)
            (-1, direct.index(v)) if v.id not in packed else where[v.id] for v in read
        ]
        nd, inner_fn = len(direct), fn

        def fn(*args: Any) -> Any:
            packs = args[nd:]
            return inner_fn(*[args[j] if g < 0 else packs[g][j] for g, j in order])

    native = make(fn)
    # the generated wrapper: one line per source of each value
    import numpy

    from .._backend import numpy_backend

    env: dict[str, Any] = {"native": native, "pw": pw, "array": numpy.array}
    names: dict[int, str] = {v.id: f"a{k}" for k, v in enumerate(flat)}
    lines = [f"def run({', '.join(f'a{k}' for k in range(len(flat)))}):"]
    if pw is not None:
        lines.append(f"    w = pw({', '.join(names[v.id] for v in weak_in)})")
        for k, v in enumerate(wanted):
            names.setdefault(v.id, f"w[{k}]")
    call = [names[v.id] for v in direct]
    for g, (dt, vs) in enumerate(groups.items()):
        env[f"D{g}"] = numpy_backend.native(dt)
        call.append(f"array([{', '.join(names[v.id] for v in vs)}], D{g})")
    lines.append(f"    r = native({', '.join(call)})")
    for k, o in enumerate(arr_outs):
        names.setdefault(o.id, f"r[{k}]")
    aout = {o.id: f"r[{k}]" for k, o in enumerate(arr_outs)}
    rets = []
    for o in p.outs:
        if not isinstance(o, Var):
            lit = f"L{len(env)}"
            env[lit] = o
            rets.append(lit)
        else:
            rets.append(aout.get(o.id) or names[o.id])
    lines.append(f"    return [{', '.join(rets)}]")
    exec(compile("\n".join(lines), "<functorch_lite compiled call>", "exec"), env)  # noqa: S102 (generated above)
    return env["run"], native


def _weak_only(e: Eqn) -> bool:
    ins = e.inputs
    return any(isinstance(i, Var) for i in ins) and all(not isinstance(i, Var) or i.weak is not None for i in ins)
