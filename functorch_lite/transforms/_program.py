"""The program IR: typed variables (``Var``), equations (``Eqn``), ``Program``, ``eval_program``.

A [`Program`][functorch_lite.transforms.Program] is a list of equations ``outs = primitive(ins, **params)`` over typed
variables (shape, dtype, backend), with the constants it captured and the pytree
structure of its inputs and outputs. Staging makes one (``transforms/_staging.py``);
calling it replays its compiled form (``transforms/_compile.py``) or, under a transform,
re-binds its equations (``eval_program``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.engine import PRIMITIVES, Primitive, bind, find_top_trace
from .._core.tensor import Tensor, wrap
from .._errors import TransformError
from ._weak import weak_eval

__all__ = ["Var", "Eqn", "Program", "eval_program", "custom_call_p"]

_ids = itertools.count()


# ---------------------------------------------------------------------------------------
# Variables and equations
# ---------------------------------------------------------------------------------------
class Var:
    """A typed variable of a program: shape, dtype, backend namespace; ``weak`` for Python scalars."""

    __slots__ = ("id", "shape", "dtype", "xp", "weak")

    def __init__(self, shape: tuple[int, ...], dtype: Any, xp: Any, weak: type | None = None) -> None:
        self.id = next(_ids)
        self.shape = shape
        self.dtype = dtype
        self.xp = xp
        self.weak = weak  # int / float / complex for a weak Python scalar, else None

    def aval(self) -> str:
        if self.weak is not None:
            return f"{self.weak.__name__}[]"
        return f"{_short(self.dtype)}[{','.join('?' if s is None else str(s) for s in self.shape)}]"

    def __repr__(self) -> str:
        return f"Var({self.aval()})"


def _short(dt: Any) -> str:
    name = getattr(dt, "name", str(dt))
    for long, short in (("float", "f"), ("uint", "u"), ("int", "i"), ("complex", "c")):
        if name.startswith(long):
            return short + name[len(long) :]
    return name


class Eqn:
    """``outputs = prim(*inputs, **params)``; an input is a `Var` or a Python literal."""

    __slots__ = ("prim", "inputs", "outputs", "params")

    def __init__(self, prim: Primitive, inputs: list[Any], outputs: list[Var], params: dict[str, Any]) -> None:
        self.prim = prim
        self.inputs = inputs
        self.outputs = outputs
        self.params = params

    def __repr__(self) -> str:
        return f"Eqn({self.prim.name})"


# ---------------------------------------------------------------------------------------
# custom_vjp / custom_jvp / checkpoint inside a program
# ---------------------------------------------------------------------------------------
custom_call_p = Primitive("custom_call", lambda xp, *a, call, program: program.replay(a), multiple_results=True)
# Not a primitive of the namespace: a program never binds it under a transform, it hands the
# call to the trace's own custom-rule handling (``Trace.process_custom``, see eval_program), so
# it has no rules of its own and stays out of the registry that the rule tests enrol.
del PRIMITIVES["custom_call"]


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------
class Program:
    """A staged function: typed inputs, equations, captured constants, pytree structure.

    Calling a program evaluates it: with concrete inputs it replays its compiled form (one
    backend call per equation); under a transform it re-binds its equations, so
    ``grad(program)``, ``vmap(program)`` and ``jvp(program)`` work like on the function.

    Example:
        >>> import functorch_lite as fl
        >>> prog = fl.make_program(lambda x: fl.sum(x * x))(fl.ones((3,)))
        >>> print(prog)
        { lambda ; a:f32[3]. let
            b:f32[3] = multiply a a
            c:f32[] = sum[keepdims=False] b
          in (c) }
        >>> float(prog(fl.ones((3,)))), fl.grad(prog)(fl.ones((3,))).tolist()
        (3.0, [2.0, 2.0, 2.0])
    """

    def __init__(
        self,
        in_vars: list[Any],
        in_tree: Any,
        eqns: list[Eqn],
        outs: list[Any],
        out_tree: Any,
        consts: list[tuple[Var, Tensor]],
        kind: str = "make_program",
    ) -> None:
        self.in_vars = in_vars  # a Var per input leaf, or ("static", value) for a static leaf
        self.in_tree = in_tree
        self.eqns = eqns
        self.outs = outs  # a Var or a Python literal per output leaf
        self.out_tree = out_tree
        self.consts = consts
        self.kind = kind
        self._compiled: Callable[..., Any] | None = None
        self.guards: list[tuple[Tensor, Any]] = []

    # -- inspection ---------------------------------------------------------------------------
    def __str__(self) -> str:
        """The program as text; nested programs (control-flow bodies) are printed in place, indented."""
        names: dict[int, str] = {}

        def name(v: Any) -> str:
            if not isinstance(v, Var):
                return repr(v)
            n = names.get(v.id)
            if n is None:
                n = names[v.id] = _letters(len(names))
            return n

        def decl(v: Var) -> str:
            return f"{name(v)}:{v.aval()}"

        cs = " ".join(decl(v) for v, _ in self.consts)
        ins = " ".join(decl(v) for v in self.in_vars if isinstance(v, Var))
        lines = [f"{{ lambda {cs}; {ins}. let"]
        for e in self.eqns:
            lhs = " ".join(decl(o) for o in e.outputs)
            rhs = " ".join(name(i) for i in e.inputs)
            bodies = _bodies(e.params)
            ps = _fmt_params({k: v for k, v in e.params.items() if k not in bodies})
            if not bodies:
                lines.append(f"    {lhs} = {e.prim.name}{ps} {rhs}".rstrip())
                continue
            lines.append(f"    {lhs} = {e.prim.name}{ps} {rhs}".rstrip() + " with")
            for k, progs in bodies.items():
                for j, p in enumerate(progs):
                    label = f"        {k if len(progs) == 1 else f'{k}[{j}]'}="
                    lines.append(label + str(p).replace("\n", "\n" + " " * len(label)))
        lines.append(f"  in ({', '.join(name(o) for o in self.outs)}) }}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Program: {len(self.in_vars)} input(s), {len(self.eqns)} equation(s), {len(self.outs)} output(s)>"

    def optimized(self) -> Program:
        """This program after constant folding, algebraic simplification, CSE and DCE (what jit runs)."""
        from ._passes import optimize

        return optimize(self)

    # -- evaluation ----------------------------------------------------------------------------
    def flat_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        leaves, tree = tu.tree_flatten((tuple(args), dict(kwargs)))
        if tree != self.in_tree:
            raise TransformError(
                f"Program: called with arguments of structure {tree}, but it was staged for {self.in_tree}. "
                "Make a new program for the new structure (fl.jit does this for you)."
            )
        flat = []
        for i, (x, v) in enumerate(zip(leaves, self.in_vars, strict=True)):
            if not isinstance(v, Var):
                if x is not v[1] and (type(x) is not type(v[1]) or x != v[1]):
                    raise TransformError(
                        f"Program: input {i} is static and was staged as {v[1]!r}; got {x!r}. Make a new "
                        "program for a new static value (fl.jit does this for you)."
                    )
                continue
            if v.weak is not None:
                if isinstance(x, Tensor) and x._t is None and x.ndim == 0:
                    x = x.item()
                flat.append(x)
                continue
            if not isinstance(x, Tensor):
                from .._ops._base import asarray

                x = asarray(x)
            if tuple(x.shape) != v.shape or x.dtype is not v.dtype:
                raise TransformError(
                    f"Program: input {i} has shape {tuple(x.shape)} and dtype {x.dtype.name}, but the program "
                    f"was staged for {v.aval()}; make a new program for new shapes (fl.jit does this for you)."
                )
            flat.append(x)
        return flat

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flat = self.flat_inputs(args, kwargs)
        return tu.tree_unflatten(self.out_tree, self.call_flat(flat))

    def call_flat(self, flat: Sequence[Any]) -> list[Any]:
        """Evaluate on flat input leaves (Tensors, or Python scalars for weak inputs)."""
        traced = any(isinstance(x, Tensor) and x._t is not None for x in flat) or any(
            c._t is not None for _, c in self.consts
        )
        if traced:
            return eval_program(self, flat)
        raw = [x._a if isinstance(x, Tensor) else x for x in flat]
        outs = self.replay(raw)
        return [wrap_out(o, v) for o, v in zip(outs, self.outs, strict=True)]

    def replay(self, raw: Sequence[Any]) -> Any:
        fn = self._compiled
        if fn is None:
            from ._compile import compile_program

            fn = self._compiled = compile_program(self)
        return fn(*raw)


def wrap_out(o: Any, v: Any) -> Any:
    if isinstance(v, Var):
        if v.weak is not None:
            return o
        return wrap(o, v.xp)
    return o


def _letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(97 + r) + s
    return s


def _bodies(params: dict[str, Any]) -> dict[str, list[Program]]:
    """The params that hold programs (a body, a tuple of branches), by name."""
    out = {}
    for k, v in params.items():
        if isinstance(v, Program):
            out[k] = [v]
        elif isinstance(v, tuple) and v and all(isinstance(p, Program) for p in v):
            out[k] = list(v)
    return out


def _fmt_params(params: dict[str, Any]) -> str:
    parts = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, Program):
            v = "<program>"
        elif k == "call":
            v = getattr(getattr(v, "owner", None), "__name__", "custom")
        else:
            v = getattr(v, "name", None) if hasattr(v, "kind") and hasattr(v, "name") else v
        parts.append(f"{k}={v}")
    return "[" + ", ".join(parts) + "]" if parts else ""


def eval_program(program: Program, flat: Sequence[Any]) -> list[Any]:
    """Evaluate ``program`` by binding each equation (so every active transform sees it)."""
    env: dict[int, Any] = {}
    for v, x in zip((v for v in program.in_vars if isinstance(v, Var)), flat, strict=True):
        env[v.id] = x
    for v, c in program.consts:
        env[v.id] = c
    for e in program.eqns:
        ins = [env[i.id] if isinstance(i, Var) else i for i in e.inputs]
        if e.prim is custom_call_p:
            call = e.params["call"]
            top = find_top_trace(ins)
            if top is None:
                outs = e.params["program"].call_flat(ins)
            else:
                outs = tu.tree_leaves(top.process_custom(call, ins))
        elif all(not isinstance(x, Tensor) for x in ins) and any(isinstance(i, Var) for i in e.inputs):
            xp = next(i.xp for i in e.inputs if isinstance(i, Var))
            outs = weak_eval(e.prim, xp, ins, e.params)
            if not e.prim.multiple_results:
                outs = [outs]
        else:
            outs = bind(e.prim, ins, e.params)
            if not e.prim.multiple_results:
                outs = [outs]
        for v, o in zip(e.outputs, outs, strict=True):
            env[v.id] = o
    return [env[o.id] if isinstance(o, Var) else o for o in program.outs]
