"""Staging: the tracer that records a [`Program`][functorch_lite.transforms.Program] (``StagingTrace``) and ``trace_program``.

A program (the IR: ``transforms/_program.py``) is made by one more trace on the level stack
(`StagingTrace`), so ``make_program(grad(f))`` stages the gradient: the grad
trace sits above the staging trace and its rules run on staged values.

Each staged value carries an *example*: the backend array the primitive's own impl gives
on the example inputs (the caller's data). Output shapes and dtypes therefore come from
the backend itself, with no shape rule per primitive; the examples are never visible:
Python control flow on a staged value (``bool``, ``float``, ``.item()``) raises
[`ConcretizationError`][functorch_lite.ConcretizationError], and an op whose output shape depends on
the values raises [`DataDependentShapeError`][functorch_lite.DataDependentShapeError], so a program never
bakes in a value it has seen.

Python ``int`` and ``float`` inputs are *weak* (``transforms/_weak.py``): they stay Python
scalars at run time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.engine import Payload, Primitive, Trace, bind, new_trace
from .._core.tensor import Tensor, backend_for, make_tracer
from .._errors import ConcretizationError, DataDependentShapeError, TransformError
from ._program import Eqn, Program, Var, custom_call_p
from ._weak import weak_eval

__all__ = ["StagingTrace", "ShapeDtypeStruct", "trace_program"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_new = object.__new__
_WEAK_TYPES = (int, float, complex)


class ShapeDtypeStruct:
    """An abstract input for [`make_program`][functorch_lite.transforms.make_program]: a shape and dtype (and backend), no data.

    Example:
        >>> import functorch_lite as fl
        >>> print(fl.make_program(fl.sin)(fl.ShapeDtypeStruct((3,), fl.float32)))
        { lambda ; a:f32[3]. let
            b:f32[3] = sin a
          in (b) }
    """

    def __init__(self, shape: Sequence[int], dtype: Any, backend: str | None = None) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.backend = backend

    def example(self) -> Tensor:
        from .._ops.creation import zeros

        if self.backend is None:
            return zeros(self.shape, dtype=self.dtype)
        from .._backend import default_backend

        with default_backend(self.backend):
            return zeros(self.shape, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={getattr(self.dtype, 'name', self.dtype)})"


# ---------------------------------------------------------------------------------------
# The staging trace
# ---------------------------------------------------------------------------------------
def _user_frame() -> str:
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not os.path.abspath(fn).startswith(_PKG_DIR):
            import linecache

            line = linecache.getline(fn, f.f_lineno).strip()
            return f"{fn}:{f.f_lineno}" + (f" ({line})" if line else "")
        f = f.f_back  # type: ignore[assignment]
    return "<unknown>"


class StagePayload(Payload):
    """A staged value: its variable and its (hidden) example array or Python scalar."""

    __slots__ = ("var", "example")

    def __init__(self, trace: Trace, var: Var, example: Any) -> None:
        self.trace = trace
        self.var = var
        self.example = example

    @property
    def shape(self) -> tuple[int, ...]:
        return self.var.shape

    @property
    def dtype(self) -> Any:
        return self.var.dtype

    @property
    def device(self) -> Any:
        ex = self.example
        b = backend_for(self.var.xp)
        if self.var.weak is not None:
            return b.device(b.xp.asarray(0))
        return b.device(ex)

    def concrete(self, t: Tensor) -> Tensor:
        v = self.var
        raise ConcretizationError(
            f"{self.trace.kind}: a traced value of shape {v.shape} and dtype {_dname(v)} has no concrete value "
            f"while {self.trace.kind} traces the function (at {_user_frame()}). Python control flow and "
            "conversions on it (if/while on a value, bool(), float(), int(), .item(), numpy) cannot be "
            + (
                "staged. Fixes: mark the argument static (static_argnums= / static_argnames=), select with "
                "fl.where(cond, x, y) instead of if/else, use fl.cond / fl.while_loop / fl.fori_loop for "
                "control flow on values, or compute the value outside the jitted function."
                if self.trace.kind in ("jit", "make_program")
                else f"traced in a {self.trace.kind} body. Fixes: select with fl.where(cond, x, y), nest "
                "fl.cond / fl.while_loop / fl.fori_loop inside the body, or compute the value before the "
                f"{self.trace.kind} and pass it in."
            )
        )

    def __repr__(self) -> str:
        return f"{self.trace.kind} tracer {self.var.aval()}"


def _dname(v: Var) -> str:
    return f"weak {v.weak.__name__}" if v.weak is not None else getattr(v.dtype, "name", str(v.dtype))


def _example_of(t: Tensor) -> Any:
    """A backend array standing for Tensor ``t``'s value (its own data when it has some)."""
    p = t._t
    if p is None:
        return t._a
    if isinstance(p, StagePayload):
        return p.example
    if hasattr(p, "primal"):
        return _example_of(p.primal)
    val = getattr(p, "val", None)
    if val is not None:  # a vmap tracer: one example of the batch
        ex = _example_of(val)
        xp = val._xp
        d = p.bdim
        if ex.shape[d] == 0:
            return xp.zeros(tuple(p.shape), dtype=ex.dtype)
        return ex[(slice(None),) * d + (0, ...)]
    raise TransformError(f"staging: cannot find an example value for {t!r}.")  # pragma: no cover


def _dynamic_shape(prim: Primitive) -> str | None:
    """Why ``prim`` on ``args`` would have a value-dependent output shape (None when it does not)."""
    name = prim.name
    if name == "nonzero" or name.startswith("unique_"):
        return f"{name}: its output shape depends on the values"
    return None


class StagingTrace(Trace):
    """Records every primitive bound on its tracers as an equation of a program."""

    __slots__ = ("eqns", "consts", "const_vars", "captured")
    kind_name = "jit"

    def __init__(self, level: int, kind: str = "jit") -> None:
        super().__init__(level)
        self.kind = kind
        self.eqns: list[Eqn] = []
        self.consts: list[tuple[Var, Tensor]] = []
        self.const_vars: dict[int, Var] = {}
        self.captured: list[tuple[Tensor, Any]] = []  # (the caller's Tensor, its array then)

    # -- values ----------------------------------------------------------------------
    def new_var_tracer(self, example: Any, xp: Any, weak: type | None = None) -> tuple[Var, Tensor]:
        if weak is not None:
            from .._ops._base import default_float, default_int

            dt = default_float() if weak is float else default_int() if weak is int else None
            if weak is complex:
                from .._ops._base import default_complex

                dt = default_complex()
            var = Var((), dt, xp, weak)
        else:
            var = Var(tuple(example.shape), _dtype_of(example, xp), xp)
        return var, make_tracer(StagePayload(self, var, example), xp)

    def const(self, t: Tensor) -> Var:
        """The variable of captured Tensor ``t`` (a concrete value or another trace's tracer)."""
        key = id(t._a) if t._t is None else id(t._t)
        v = self.const_vars.get(key)
        if v is None:
            alias = _new(Tensor)
            alias._a, alias._xp, alias._t = t._a, t._xp, t._t
            v = Var(tuple(t.shape), t.dtype, t._xp)
            self.const_vars[key] = v
            self.consts.append((v, alias))
            if t._t is None:
                self.captured.append((t, t._a))
        return v

    # -- primitives -----------------------------------------------------------------------
    def process(self, prim: Primitive, args: Sequence[Any], params: dict[str, Any]) -> Any:
        ins: list[Any] = []
        exs: list[Any] = []
        xp = None
        all_weak = True
        for a in args:
            if isinstance(a, Tensor):
                p = a._t
                if p is not None and p.trace is self:
                    v = p.var
                    exs.append(p.example)
                else:
                    v = self.const(a)
                    exs.append(_example_of(a))
                ins.append(v)
                if v.weak is None:
                    all_weak = False
                    if xp is None:
                        xp = a._xp
                    elif a._xp is not xp:
                        from .._core.engine import mixed_backends

                        raise mixed_backends(prim.name, xp, a._xp)
            else:
                ins.append(a)
                exs.append(a)
        why = _dynamic_shape(prim) or _mask_index(prim, args, params)
        if why is not None:
            raise DataDependentShapeError(
                f"{why}, which {self.kind} cannot stage: a program has fixed shapes. Use fl.where(cond, x, y) "
                "or take with integer indices of a fixed count, or call it outside the jitted function."
            )
        if all_weak:
            weak_xp = next(v.xp for v in ins if isinstance(v, Var))
            out = weak_eval(prim, weak_xp, exs, params)
            outs = list(out) if prim.multiple_results else [out]
            res = []
            vars_ = []
            for o in outs:
                if isinstance(o, _WEAK_TYPES) and not isinstance(o, bool):
                    var, tr = self.new_var_tracer(o, weak_xp, type(o))
                elif isinstance(o, bool):
                    # a comparison of weak values: a traced bool (0-d)
                    arr = backend_for(weak_xp).xp.asarray(o)
                    var, tr = self.new_var_tracer(arr, weak_xp)
                else:
                    var, tr = self.new_var_tracer(o, weak_xp)
                vars_.append(var)
                res.append(tr)
            self.eqns.append(Eqn(prim, ins, vars_, params))
            return tuple(res) if prim.multiple_results else res[0]
        out = _examples(prim, xp, exs, params)
        if prim.multiple_results:
            vars_ = []
            res = []
            for o in out:
                var, tr = self.new_var_tracer(o, xp)
                vars_.append(var)
                res.append(tr)
            hook = getattr(prim, "staged_shapes", None)
            if hook is not None:  # (control flow: outputs whose length is known only at run time)
                hook(vars_, params)
            self.eqns.append(Eqn(prim, ins, vars_, params))
            return tuple(res)
        var, tr = self.new_var_tracer(out, xp)
        self.eqns.append(Eqn(prim, ins, [var], params))
        return tr

    def process_custom(self, call: Any, args: Sequence[Any]) -> Any:
        return _stage_custom(self, call, args)


_IS_JAX: dict[Any, bool] = {}


def _examples(prim: Primitive, xp: Any, exs: list[Any], params: dict[str, Any]) -> Any:
    """``prim``'s outputs on the examples, which give the staged variables their shapes and dtypes.

    On jax, running the impl eagerly costs an XLA compilation per new primitive and shape (tens
    of milliseconds each: most of a step's first call); there the outputs' shapes and dtypes come
    from ``jax.eval_shape`` instead (a trace, no compilation), and their examples are zeros of
    them on the first array input's device (a transfer, no compilation). An example's values are
    never read (a staged value has no concrete value), only its shape, dtype and device. Where the
    abstract evaluation does not apply (a primitive carrying programs or a custom call, an operand
    that is neither a jax array nor a Python scalar, an impl that needs values, a weak-typed
    output) the impl runs on the examples as before."""
    is_jax = _IS_JAX.get(xp)
    if is_jax is None:
        is_jax = _IS_JAX[xp] = backend_for(xp).name == "jax"
    if is_jax and prim is not custom_call_p and not any(_holds_program(v) for v in params.values()):
        out = _abstract_examples(prim, xp, exs, params)
        if out is not None:
            return out
    return prim.impl(xp, *exs, **params)


def _holds_program(v: Any) -> bool:
    return isinstance(v, Program) or (isinstance(v, (tuple, list)) and any(_holds_program(x) for x in v))


def _abstract_examples(prim: Primitive, xp: Any, exs: list[Any], params: dict[str, Any]) -> Any:
    import jax
    import numpy as np

    pos = [k for k, e in enumerate(exs) if isinstance(e, jax.Array)]
    if not pos or any(k not in pos and not isinstance(e, (bool, int, float, complex)) for k, e in enumerate(exs)):
        return None

    def impl(*arrays: Any) -> Any:
        a = list(exs)  # (Python scalars stay concrete: an impl may branch on them)
        for k, v in zip(pos, arrays, strict=True):
            a[k] = v
        return prim.impl(xp, *a, **params)

    try:
        out = jax.eval_shape(impl, *[exs[k] for k in pos])
    except Exception:  # noqa: BLE001 - an impl that needs values: it runs on the examples instead
        return None
    outs = list(out) if prim.multiple_results else [out]
    if not all(isinstance(o, jax.ShapeDtypeStruct) and not o.weak_type for o in outs):
        return None
    try:
        sharding = exs[pos[0]].sharding
        arrays = [jax.device_put(np.zeros(o.shape, o.dtype), sharding) for o in outs]
    except Exception:  # noqa: BLE001 - (a dtype numpy cannot hold, a typed PRNG key): run the impl
        return None
    return tuple(arrays) if prim.multiple_results else arrays[0]


def _mask_index(prim: Primitive, args: Sequence[Any], params: dict[str, Any]) -> str | None:
    """getitem with a traced boolean mask selects a value-dependent number of elements."""
    if prim.name != "getitem":
        return None
    idx = args[1:]
    for s in params.get("spec", ()):
        if getattr(s, "is_bool", False) and s.i < len(idx):
            a = idx[s.i]
            if isinstance(a, Tensor) and a._t is not None and a.ndim > 0:
                return "getitem: a traced boolean mask index selects a value-dependent number of elements"
    return None


def _dtype_of(a: Any, xp: Any) -> Any:
    from .._backend import DTYPE_MAPS

    dt = DTYPE_MAPS[xp].get(a.dtype)
    if dt is None:
        return backend_for(xp).dtype_of(a)
    return dt


# ---------------------------------------------------------------------------------------
# custom_vjp / custom_jvp / checkpoint inside a program
# ---------------------------------------------------------------------------------------
def _stage_custom(trace: StagingTrace, call: Any, leaves: Sequence[Any]) -> Any:
    """Stage a custom call as one equation whose params keep the call (so transforms of the
    program still use the custom rule) and its primal function traced as a sub-program."""
    owner = call.owner
    fun = owner.fun
    kwargs = call.kwargs

    def primal(*ls: Any) -> Any:
        return fun(*call.args(ls), **kwargs)

    sub = trace_program(primal, list(leaves), kind=trace.kind)
    for _, c in sub.consts:
        if c._t is not None:
            raise TransformError(
                f"{trace.kind}: the custom function {getattr(fun, '__name__', '?')!r} closes over a value traced "
                "by an outer transform; pass that value to it as an argument instead."
            )
    outs = bind(custom_call_p, tuple(a for a in leaves if isinstance(a, Tensor)), {"call": call, "program": sub})
    return tu.tree_unflatten(sub.out_tree, list(outs))


# ---------------------------------------------------------------------------------------
# trace_program (make_program, in transforms/_make_program.py, and jit call it)
# ---------------------------------------------------------------------------------------
def _classify(x: Any) -> str:
    if isinstance(x, Tensor):
        return "tensor"
    if isinstance(x, bool):
        return "static"
    if isinstance(x, _WEAK_TYPES):
        return "weak"
    if isinstance(x, ShapeDtypeStruct):
        return "spec"
    from .._backend import backend_of

    if backend_of(x) is not None:
        return "array"
    return "static"


def trace_program(
    f: Callable[..., Any],
    leaves: list[Any],
    *,
    in_tree: Any = None,
    kind: str = "make_program",
    call: Callable[[Callable[..., Any], list[Any]], Any] | None = None,
) -> Program:
    """Trace ``f`` on staged versions of ``leaves``; ``f`` takes the leaves (or, with ``in_tree``,
    the unflattened ``(args, kwargs)``)."""
    with new_trace(StagingTrace, kind=kind) as tr:
        in_vars: list[Any] = []
        tracers: list[Any] = []
        for x in leaves:
            k = _classify(x)
            if k == "static":
                in_vars.append(("static", x))
                tracers.append(x)
                continue
            if k == "weak":
                xp = _default_xp()
                var, t = tr.new_var_tracer(x, xp, type(x))
            else:
                if k == "spec":
                    x = x.example()
                elif k == "array":
                    from .._ops._base import asarray

                    x = asarray(x)
                var, t = tr.new_var_tracer(_example_of(x), x._xp)
            in_vars.append(var)
            tracers.append(t)
        if in_tree is None:
            out = f(*tracers)
        else:
            tree = tu.tree_unflatten(in_tree, tracers)
            out = f(*tree[0], **tree[1]) if call is None else call(f, tree)
        o_leaves, out_tree = tu.tree_flatten(out)
        outs: list[Any] = []
        for o in o_leaves:
            if isinstance(o, Tensor):
                p = o._t
                if p is not None and p.trace is tr:
                    outs.append(p.var)
                else:
                    outs.append(tr.const(o))
            else:
                from .._backend import backend_of

                if backend_of(o) is not None:
                    from .._ops._base import asarray

                    outs.append(tr.const(asarray(o)))
                else:
                    outs.append(o)
    prog = Program(in_vars, in_tree, tr.eqns, outs, out_tree, tr.consts, kind)
    # Tensors captured from outside that still hold the array they held when captured: if one
    # is rebound later (an optimizer step on a closed-over parameter), the program is stale
    prog.guards = [(t, a) for t, a in tr.captured if t._t is None and t._a is a]
    return prog


def _default_xp() -> Any:
    from .._backend import current_default

    return current_default().xp
