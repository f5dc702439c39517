"""The compilers ``fl.jit(f, compiler=...)`` hands a traced program's concrete replay to.

One [`Program`][functorch_lite.transforms.Program], each backend's own compiler:

* ``"replay"``: the straight-line Python replay of ``_compile.compile_program`` (every backend);
* ``"xla"`` (jax): that replay traced by ``jax.jit``, so XLA fuses it; ``scan``, ``cond`` and
  ``while_loop`` become ``lax.scan``, ``lax.switch`` and ``lax.while_loop``; weak Python
  scalars are traced arguments, so a changing learning rate does not recompile;
* ``"torch.compile"`` (torch, opt-in): the replay compiled by ``torch.compile``;
* ``"numba"`` (numpy): each run of elementwise equations of one shape becomes one
  ``numba.njit`` loop (its intermediates never materialised); the rest replays as usual.

A compiler only changes how the concrete replay of a cache entry runs: tracing, caching,
retracing and composition with outer transforms are ``jit``'s own and unchanged.

This module is the jax / torch / numba lowering: it imports those packages lazily, inside the
functions that lower to them (never at functorch_lite import time).
"""

from __future__ import annotations

import functools
import importlib.util
import operator
from collections.abc import Callable
from typing import Any

from .._core.engine import PRIMITIVES, Primitive
from .._core.tensor import backend_for
from .._errors import CompilerError
from ._program import Eqn, Program, Var

__all__ = ["CompilerError", "COMPILERS", "check_compiler", "resolve", "lower"]

COMPILERS = ("replay", "xla", "torch.compile", "numba")
_FITS: dict[str, tuple[str, ...] | None] = {
    "replay": None,
    "xla": ("jax",),
    "torch.compile": ("torch",),
    "numba": ("numpy",),
}
_PACKAGE = {"xla": ("jax", "jax"), "torch.compile": ("torch", "torch"), "numba": ("numba", "numba")}
_DEFAULT = {"jax": "xla"}


def _fitting(backend: str) -> list[str]:
    return [c for c, fits in _FITS.items() if fits is None or backend in fits]


def check_compiler(compiler: Any) -> None:
    """Validate ``compiler`` when ``jit`` is built: a known name whose package is installed."""
    if compiler is None:
        return
    if compiler not in COMPILERS:
        raise CompilerError(
            f"jit: unknown compiler {compiler!r}. Choose one of None (the backend's default), "
            + ", ".join(repr(c) for c in COMPILERS)
            + ": 'replay' fits every backend, 'xla' the jax backend, 'torch.compile' torch, 'numba' numpy."
        )
    pkg = _PACKAGE.get(compiler)
    if pkg is not None and importlib.util.find_spec(pkg[0]) is None:
        raise CompilerError(
            f"jit(compiler={compiler!r}) needs the {pkg[0]} package, which is not installed; install it "
            f"(pip install 'functorch_lite[{pkg[1]}]') or use compiler='replay' (or None)."
        )


def _backends(p: Program) -> set[str]:
    """The backends of the arrays ``p`` computes with: weak scalars (Python numbers, whatever the
    default backend) and inputs no equation reads (the generator key, mostly) do not count."""
    used = _used(p)
    xps = {v.xp for v in p.in_vars if isinstance(v, Var) and v.id in used and v.weak is None}
    xps.update(v.xp for v, _ in p.consts if v.weak is None)
    for e in p.eqns:
        xps.update(o.xp for o in e.outputs if o.weak is None)
    return {backend_for(xp).name for xp in xps}


def resolve(compiler: str | None, p: Program) -> str:
    """The compiler that runs ``p``: ``compiler``, or the default of ``p``'s backend for None."""
    names = _backends(p)
    if compiler is None:
        return _DEFAULT.get(next(iter(names)), "replay") if len(names) == 1 else "replay"
    fits = _FITS[compiler]
    if fits is None or names and names <= set(fits):
        return compiler
    where = ", ".join(sorted(names))
    choices = ", ".join(repr(c) for c in _fitting(next(iter(names)))) if len(names) == 1 else "'replay'"
    raise CompilerError(
        f"jit(compiler={compiler!r}) compiles programs on the {' / '.join(fits)} backend; this program's "
        f"arrays are on {where}. For it choose one of: {choices} (or None for the backend's default)."
    )


def lower(p: Program, compiler: str, explicit: bool) -> Callable[..., list[Any]]:
    """``fn(*flat_inputs) -> list of outputs`` for optimized program ``p`` under ``compiler``.

    ``explicit``: the user named the compiler (a program it cannot compile raises), rather
    than getting the backend's default (such a program falls back to the replay)."""
    if compiler == "xla":
        return _xla(p, explicit)
    if compiler == "torch.compile":
        return _torch_compile(p, explicit)
    if compiler == "numba":
        return _numba(p)
    return _replay(p)


def _replay(p: Program) -> Callable[..., list[Any]]:
    fn = p._compiled
    if fn is None:
        from ._compile import compile_program

        fn = p._compiled = compile_program(p)
    return fn


def _guarded(
    p: Program, name: str, compiled: Callable[..., Any], explicit: bool, native: Any
) -> Callable[..., list[Any]]:
    """``compiled`` (which traces on its first call); if that first call fails where the replay
    succeeds, the program is one the compiler cannot express: the default falls back to the
    replay, an explicit choice raises CompilerError. A failure of the replay too is the
    program's own error, raised as it is."""
    replay = _replay(p)
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
    from ._compile import compile_program

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
    pw = compile_program(Program(weak_in, None, weak_eqns, wanted, None, [], p.kind)) if weak_eqns else None
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


# ---------------------------------------------------------------------------------------
# xla: the replay inside jax.jit, control flow as lax loops
# ---------------------------------------------------------------------------------------
def _xla_replay(p: Program) -> Callable[..., list[Any]]:
    """``p``'s replay with its control-flow equations lowered to lax (cached on the program)."""
    fn = p.__dict__.get("_xla_replay")
    if fn is None:
        from ._compile import compile_program

        fn = p._xla_replay = compile_program(p, override=_xla_override)  # type: ignore[attr-defined]
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
    from ._compile import _clone

    return _clone(p, eqns, p.outs, p.consts)


def _xla(p: Program, explicit: bool) -> Callable[..., list[Any]]:
    import jax

    run, jf = _native(reciprocals(p), _xla_replay, jax.jit, pack=True)
    return _guarded(p, "xla", run, explicit, jf)


# ---------------------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------------------
def _weak_only(e: Eqn) -> bool:
    ins = e.inputs
    return any(isinstance(i, Var) for i in ins) and all(not isinstance(i, Var) or i.weak is not None for i in ins)


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
        from ._compile import _bound

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

    from ._compile import compile_program

    run, tf = _native(p, lambda q: compile_program(q, override=_torch_override), torch.compile)
    return _guarded(p, "torch.compile", run, explicit, tf)


# ---------------------------------------------------------------------------------------
# numba: runs of elementwise equations fused into one loop each
# ---------------------------------------------------------------------------------------
# A run: consecutive equations, each an elementwise op of the table below on numpy floating
# arrays of one shape (or 0-d arrays, Python scalars, literals), whose outputs have that shape.
# Its kernel reads each input array once, computes every equation per element in the output
# dtype (each operand cast to it first, as numpy's promotion does for these ops; a weak Python
# scalar is cast too, as NEP 50 does), and writes only the values read after the run.
_UNARY = {
    "abs": "np.abs({})",
    "acos": "np.arccos({})",
    "acosh": "np.arccosh({})",
    "asin": "np.arcsin({})",
    "asinh": "np.arcsinh({})",
    "atan": "np.arctan({})",
    "atanh": "np.arctanh({})",
    "cos": "np.cos({})",
    "cosh": "np.cosh({})",
    "exp": "np.exp({})",
    "expm1": "np.expm1({})",
    "log": "np.log({})",
    "log1p": "np.log1p({})",
    "log2": "np.log2({})",
    "log10": "np.log10({})",
    "negative": "-{}",
    "positive": "{}",
    "reciprocal": "T(1) / {}",
    "sin": "np.sin({})",
    "sinh": "np.sinh({})",
    "sqrt": "np.sqrt({})",
    "square": "{0} * {0}",
    "tan": "np.tan({})",
    "tanh": "np.tanh({})",
    "relu": "np.maximum({}, T(0))",
}
_BINARY = {
    "add": "{} + {}",
    "subtract": "{} - {}",
    "multiply": "{} * {}",
    "divide": "{} / {}",
    "maximum": "np.maximum({}, {})",
    "minimum": "np.minimum({}, {})",
    "pow": "{} ** {}",
    "hypot": "np.hypot({}, {})",
}
_MIN_RUN = 2
_KERNELS: dict[str, Any] = {}
_KERNEL_LIMIT = 256

fused_p = Primitive("numba_fused", lambda xp, *a, kernel, **_: kernel(*a), multiple_results=True)
del PRIMITIVES["numba_fused"]  # (made by the numba compiler only; never bound, so no rules)


def _float_np(v: Var, np_xp: Any) -> str | None:
    """The numpy float dtype name of an array variable, or None if it is not one."""
    if v.weak is not None or v.xp is not np_xp:
        return None
    name = getattr(v.dtype, "name", "")
    return name if name in ("float32", "float64") else None


def _fusible(e: Eqn, np_xp: Any, consts: dict[int, Any]) -> tuple[tuple[int, ...], str] | None:
    """(shape, dtype name) of an elementwise equation the kernel can compute, else None."""
    name = e.prim.name
    table = _UNARY if len(e.inputs) == 1 else _BINARY if len(e.inputs) == 2 else None
    if table is None or name not in table or e.params or len(e.outputs) != 1 or e.prim.multiple_results:
        return None
    from .._core.engine import PRIMITIVES as _P

    if _P.get(name) is not e.prim:
        return None
    o = e.outputs[0]
    dt = _float_np(o, np_xp)
    shape = o.shape
    if dt is None or not shape or any(not isinstance(d, int) for d in shape):
        return None
    for i in e.inputs:
        if isinstance(i, Var):
            if i.weak is not None:
                if i.weak not in (int, float):
                    return None
                continue
            if _float_np(i, np_xp) is None or (i.shape != shape and i.shape != ()):
                return None
        elif i.__class__ not in (int, float):
            return None
    return tuple(shape), dt


def _fuse(p: Program) -> Program:
    """``p`` with each run of fusible equations replaced by one ``numba_fused`` equation."""
    from .._backend import numpy_backend

    np_xp = numpy_backend.xp
    consts = {v.id: c for v, c in p.consts}
    used_after: dict[int, int] = {}
    for n, e in enumerate(p.eqns):
        for i in e.inputs:
            if isinstance(i, Var):
                used_after[i.id] = n
    out_ids = {o.id for o in p.outs if isinstance(o, Var)}
    eqns: list[Eqn] = []
    run: list[Eqn] = []
    run_key: Any = None

    def flush(end: int) -> None:
        eqns.extend(_fused_eqn(run, end, used_after, out_ids) if len(run) >= _MIN_RUN else run)
        run.clear()

    for n, e in enumerate(p.eqns):
        key = _fusible(e, np_xp, consts)
        if key is not None and run and key[0] != run_key[0]:
            flush(n)
        if key is None:
            flush(n)
            eqns.append(e)
            continue
        if not run:
            run_key = key
        run.append(e)
    flush(len(p.eqns))
    if len(eqns) == len(p.eqns):
        return p
    from ._compile import _clone

    return _clone(p, eqns, p.outs, p.consts)


def _fused_eqn(run: list[Eqn], end: int, used_after: dict[int, int], out_ids: set[int]) -> list[Eqn]:
    """[one numba_fused equation for ``run``], or ``run`` itself where it cannot be fused."""
    made = {o.id for e in run for o in e.outputs}
    shape = run[0].outputs[0].shape
    ins: list[Var] = []
    seen: set[int] = set()
    for e in run:
        for i in e.inputs:
            if isinstance(i, Var) and i.id not in made and i.id not in seen:
                seen.add(i.id)
                ins.append(i)
    outs = [o for e in run for o in e.outputs if o.id in out_ids or used_after.get(o.id, -1) >= end]
    if not outs or not any(i.weak is None and i.shape == shape for i in ins):
        return list(run)  # (nothing read after it, or no array of its shape to loop over)
    kernel = _kernel(run, ins, outs, shape)
    return [Eqn(fused_p, list(ins), outs, {"kernel": kernel, "n_eqns": len(run)})]


def _kernel(run: list[Eqn], ins: list[Var], outs: list[Var], shape: tuple[int, ...]) -> Any:
    names: dict[int, str] = {}
    lits: dict[str, Any] = {}
    pro, body = [], []
    k0 = next(k for k, v in enumerate(ins) if v.weak is None and v.shape == shape)
    args = []
    for k, v in enumerate(ins):
        a = f"a{k}"
        args.append(a)
        if v.weak is None and v.shape == shape:
            pro.append(f"    f{k} = np.ascontiguousarray({a}).reshape(-1)")
            body.append(f"        x{k} = f{k}[i]")
            names[v.id] = f"x{k}"
        elif v.weak is None:  # a 0-d array: one value for every element
            pro.append(f"    s{k} = {a}[()]")
            names[v.id] = f"s{k}"
        else:  # a weak Python scalar
            names[v.id] = a
    for k, o in enumerate(outs):
        pro.append(f"    o{k} = np.empty(f{k0}.size, np.{o.dtype.name})")
    dtypes: dict[int, str] = {}
    for v in ins:
        dtypes[v.id] = v.dtype.name if v.weak is None else "weak"
    for n, e in enumerate(run):
        o = e.outputs[0]
        t = o.dtype.name
        ops = []
        for i in e.inputs:
            if isinstance(i, Var):
                ops.append(names[i.id] if dtypes.get(i.id) == t else f"np.{t}({names[i.id]})")
            else:
                lname = f"L{len(lits)}"
                lits[lname] = (t, i)
                ops.append(lname)
        table = _UNARY if len(e.inputs) == 1 else _BINARY
        expr = table[e.prim.name].format(*ops).replace("T(", f"np.{t}(")
        nm = f"t{n}"
        body.append(f"        {nm} = np.{t}({expr})")
        names[o.id] = nm
        dtypes[o.id] = t
    for k, o in enumerate(outs):
        body.append(f"        o{k}[i] = {names[o.id]}")
    rets = ", ".join(f"o{k}.reshape(a{k0}.shape)" for k in range(len(outs)))
    lit_src = "".join(f"{n} = np.{t}({v!r})\n" for n, (t, v) in lits.items())
    src = "\n".join(
        [
            lit_src + f"def _kernel({', '.join(args)}):",
            *pro,
            f"    for i in range(f{k0}.size):",
            *body,
            f"    return ({rets},)",
        ]
    )
    fn = _KERNELS.get(src)
    if fn is None:
        import numba
        import numpy as np

        env: dict[str, Any] = {"np": np}
        exec(compile(src, "<functorch_lite numba kernel>", "exec"), env)  # noqa: S102 (generated above)
        fn = numba.njit(cache=False, error_model="numpy", fastmath=False)(env["_kernel"])
        fn.source = src
        if len(_KERNELS) >= _KERNEL_LIMIT:
            del _KERNELS[next(iter(_KERNELS))]
        _KERNELS[src] = fn
    return fn


def _numba_override(e: Eqn) -> Callable[..., Any] | None:
    return e.params["kernel"] if e.prim is fused_p else None


def _numba(p: Program) -> Callable[..., list[Any]]:
    from ._compile import compile_program

    q = _fuse(p)
    if q is p:
        return _replay(p)
    fn = compile_program(q, override=_numba_override)
    fn.compiler = "numba"
    fn.program = q
    return fn  # type: ignore[no-any-return]
