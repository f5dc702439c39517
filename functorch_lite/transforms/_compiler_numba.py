"""The ``"numba"`` compiler (numpy): each run of elementwise equations of one shape becomes one
``numba.njit`` loop (its intermediates never materialised); the rest replays as usual.

numba is imported lazily, when a kernel is first compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core.engine import PRIMITIVES, Primitive
from ._compiler_native import _cached_replay
from ._passes import _clone
from ._program import Eqn, Program, Var
from ._replay import compile_replay

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
    q = _fuse(p)
    if q is p:
        return _cached_replay(p)
    fn = compile_replay(q, override=_numba_override)
    fn.compiler = "numba"
    fn.program = q
    return fn  # type: ignore[no-any-return]
