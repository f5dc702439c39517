"""Lowering a [`Program`][functorch_lite.transforms.Program] to ONNX: one node pattern per primitive.

Each rule reads only what DESIGN.md allows a lowering to read: the primitive's name, its
params and the avals of its inputs and outputs. Python-scalar operands (weak values) take
the dtype of the op, as they do in eager code. ``RULES`` maps primitive names to rules and
``UNSUPPORTED`` says why the others have none; ``coverage()`` in the package turns both into
the table the docs publish.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import ExportError
from ..transforms._staging import Program, Var
from ._graph import INT64_MAX, INT64_MIN, Builder
from ._symbolic import Dim, Merged

__all__ = ["Lowerer", "RULES", "UNSUPPORTED", "ONNX_OPS"]

Rule = Callable[["Ctx"], list[str]]
RULES: dict[str, Rule] = {}
ONNX_OPS: dict[str, str] = {}  # primitive -> the ONNX operators its rule emits (for the coverage table)

UNSUPPORTED: dict[str, str] = {
    "conj": "complex dtypes: onnxruntime has no complex arithmetic",
    "real": "complex dtypes: onnxruntime has no complex arithmetic",
    "imag": "complex dtypes: onnxruntime has no complex arithmetic",
    "fft.c2c": "complex dtypes (ONNX DFT has no complex tensors)",
    "fft.r2c": "complex dtypes (ONNX DFT has no complex tensors)",
    "fft.c2r": "complex dtypes (ONNX DFT has no complex tensors)",
    "nextafter": "no ONNX operator reads or steps the float bit pattern",
    "cumulative_prod": "no ONNX operator (CumSum only)",
    "nonzero": "data-dependent output shape",
    "unique_all": "data-dependent output shape",
    "unique_counts": "data-dependent output shape",
    "unique_inverse": "data-dependent output shape",
    "unique_values": "data-dependent output shape",
    "searchsorted": "no ONNX operator",
    "linalg.inv": "no ONNX operator",
    "linalg.solve": "no ONNX operator",
    "linalg.cholesky": "no ONNX operator",
    "linalg.eigh": "no ONNX operator",
    "linalg.qr": "no ONNX operator",
    "linalg.svd": "no ONNX operator",
    "linalg.svdvals": "no ONNX operator",
    "linalg.slogdet": "no ONNX operator",
}


def rule(names: str | Sequence[str], ops: str) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for n in [names] if isinstance(names, str) else names:
            RULES[n] = fn
            ONNX_OPS[n] = ops
        return fn

    return deco


# ---------------------------------------------------------------------------------------
# The lowering context of one equation
# ---------------------------------------------------------------------------------------
class Ctx:
    """One equation being lowered: its operands (ONNX names or Python literals) and params."""

    def __init__(self, low: Lowerer, eqn: Any, ins: list[Any], raw: list[Any], params: dict[str, Any]) -> None:
        self.low = low
        self.b: Builder = low.b
        self.eqn = eqn
        self.ins = ins  # ONNX names for Var inputs, Python values (or Dims) otherwise
        self.raw = raw  # the eqn's inputs: Vars or literals
        self.params = params
        self.outs: list[Var] = eqn.outputs

    @property
    def name(self) -> str:
        return str(self.eqn.prim.name)

    def dt(self, i: int) -> str | None:
        v = self.raw[i]
        return v.dtype.name if isinstance(v, Var) else None

    def odt(self, j: int = 0) -> str:
        return str(self.outs[j].dtype.name)

    def shape(self, i: int) -> tuple[Any, ...]:
        v = self.raw[i]
        return self.low.m.shape_of(v)

    def rank(self, i: int) -> int:
        v = self.raw[i]
        return len(v.shape) if isinstance(v, Var) else 0

    def oshape(self, j: int = 0) -> tuple[Any, ...]:
        return self.low.m.shape_of(self.outs[j])

    def x(self, i: int, dtype: str | None = None) -> str:
        """Operand ``i`` as an ONNX name, cast to ``dtype`` when given."""
        v = self.raw[i]
        a = self.ins[i]
        if isinstance(v, Var):
            if dtype is not None and v.dtype.name != dtype:
                return self.b.op("Cast", [a], to=self.b.elem(dtype))
            return str(a)
        if dtype is None:
            dtype = "bool" if isinstance(a, bool) else "int64" if isinstance(a, int) else "float32"
        if isinstance(a, Dim):
            n = self.b.dim(a, f"an operand of {self.name}")
            return n if dtype == "int64" else self.b.op("Cast", [n], to=self.b.elem(dtype))
        if a is None:
            raise ExportError(f"onnx.export: {self.name}: operand {i} is None where a value is needed.")
        return self.b.const(a, dtype)

    def op(self, typ: str, inputs: Sequence[str], **attrs: Any) -> str:
        return str(self.b.op(typ, inputs, **attrs))

    def promoted(self, idx: Sequence[int]) -> str:
        """The dtype the operands ``idx`` compute in (Var dtypes promoted; literals are weak)."""
        dts = [self.raw[i].dtype for i in idx if isinstance(self.raw[i], Var)]
        if not dts:
            return self.odt()
        if len({d.name for d in dts}) == 1:
            return str(dts[0].name)
        from .._ops.elementwise import result_type

        return str(result_type(*dts).name)


# ---------------------------------------------------------------------------------------
# Lowering programs
# ---------------------------------------------------------------------------------------
class Lowerer:
    def __init__(self, b: Builder, merged: Merged) -> None:
        self.b = b
        self.m = merged
        self._const_names: dict[int, str] = {}
        self._uniform: dict[int, Any] = {}

    def const_value(self, v: Var, c: Any) -> str:
        n = self._const_names.get(id(c))
        if n is not None and v.id not in self.m.const_fill:
            return n
        if v.id in self.m.const_fill:
            fill = self.m.const_fill[v.id]
            shape = self.b.shape_vec(self.m.shape_of(v), "a captured constant's shape")
            value = self.b.h.make_tensor("value", self.b.elem(v.dtype.name), [1], [fill])
            return str(self.b.op("ConstantOfShape", [shape], value=value))
        from .._backend import tensor_to_host

        n = self.b.host(tensor_to_host(c))
        self._const_names[id(c)] = n
        return n

    def uniform_fill(self, v: Any) -> Any:
        """The one value every element of captured constant ``v`` holds, or None."""
        if not isinstance(v, Var):
            return None
        if v.id in self.m.const_fill:
            return self.m.const_fill[v.id]
        return self._uniform.get(v.id)

    def lower(self, prog: Program, in_names: Sequence[str]) -> list[Any]:
        """Emit ``prog``'s equations; return its outputs (ONNX names, or literals for literal outputs)."""
        env: dict[int, str] = {}
        in_vars = [v for v in prog.in_vars if isinstance(v, Var)]
        if len(in_vars) != len(in_names):
            raise ExportError(f"onnx.export: internal: {len(in_names)} names for {len(in_vars)} inputs.")
        for v, n in zip(in_vars, in_names, strict=True):
            env[v.id] = n
        for v, c in prog.consts:
            env[v.id] = self.const_value(v, c)
            if v.id not in self.m.const_fill and 0 < c.size <= 1 << 22:
                from .._backend import tensor_to_host

                flat = tensor_to_host(c).reshape(-1)
                if (flat == flat[0]).all():
                    self._uniform[v.id] = flat[0].item()
        for e in prog.eqns:
            fn = RULES.get(e.prim.name)
            if fn is None:
                raise unsupported_error(e.prim.name)
            raw = self.m.inputs.get(id(e), e.inputs)
            params = self.m.params.get(id(e), e.params)
            ins = [env[x.id] if isinstance(x, Var) else x for x in raw]
            self.b.current = e.prim.name
            outs = fn(Ctx(self, e, ins, list(raw), params))
            if len(outs) != len(e.outputs):
                raise ExportError(f"onnx.export: internal: the {e.prim.name} rule gave {len(outs)} outputs.")
            for v, n in zip(e.outputs, outs, strict=True):
                env[v.id] = n
        return [env[o.id] if isinstance(o, Var) else o for o in prog.outs]

    def as_name(self, o: Any, dtype: str) -> str:
        """A program output as an ONNX name (a literal output becomes a constant)."""
        if isinstance(o, str):
            return o
        return self.b.const(o, dtype)


def unsupported_error(name: str, where: str = "") -> ExportError:
    why = UNSUPPORTED.get(name, "no lowering is registered for it")
    return ExportError(
        f"onnx.export: primitive {name!r}{where} cannot be expressed in ONNX ({why}); nothing was written. "
        "Compute it outside the exported function, or replace it with ops from the coverage table "
        "(docs: concepts/export)."
    )


def walk_primitives(prog: Program) -> list[str]:
    """Every primitive name in ``prog`` and in the programs its params hold."""
    out: list[str] = []
    for e in prog.eqns:
        out.append(e.prim.name)
        for v in e.params.values():
            for p in v if isinstance(v, (tuple, list)) else [v]:
                if isinstance(p, Program):
                    out.extend(walk_primitives(p))
    return out


# ---------------------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------------------
_UNARY = {
    "abs": "Abs",
    "acos": "Acos",
    "acosh": "Acosh",
    "asin": "Asin",
    "asinh": "Asinh",
    "atan": "Atan",
    "atanh": "Atanh",
    "cos": "Cos",
    "cosh": "Cosh",
    "exp": "Exp",
    "log": "Log",
    "negative": "Neg",
    "reciprocal": "Reciprocal",
    "sin": "Sin",
    "sinh": "Sinh",
    "sqrt": "Sqrt",
    "tan": "Tan",
    "tanh": "Tanh",
    "erf": "Erf",
    "relu": "Relu",
    "sign": "Sign",
    "positive": "Identity",
    "stop_gradient": "Identity",
}


def _unary(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        return [c.op(onnx_op, [c.x(0, c.odt())])]

    return r


for _n, _o in _UNARY.items():
    rule(_n, _o)(_unary(_o))


def _round_like(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        if c.odt() not in ("float16", "float32", "float64", "bfloat16"):
            return [c.op("Identity", [c.x(0)])]  # integers are already whole
        return [c.op(onnx_op, [c.x(0)])]

    return r


for _n, _o in (("floor", "Floor"), ("ceil", "Ceil"), ("round", "Round")):
    rule(_n, _o)(_round_like(_o))


@rule("trunc", "Floor, Ceil, Where")
def _trunc(c: Ctx) -> list[str]:
    x = c.x(0)
    if c.odt() not in ("float16", "float32", "float64"):
        return [c.op("Identity", [x])]
    neg = c.op("Less", [x, c.b.const(0, c.odt())])
    return [c.op("Where", [neg, c.op("Ceil", [x]), c.op("Floor", [x])])]


@rule("square", "Mul")
def _square(c: Ctx) -> list[str]:
    x = c.x(0, c.odt())
    return [c.op("Mul", [x, x])]


@rule("log2", "Log, Div")
def _log2(c: Ctx) -> list[str]:
    return [c.op("Div", [c.op("Log", [c.x(0, c.odt())]), c.b.const(math.log(2.0), c.odt())])]


@rule("log10", "Log, Div")
def _log10(c: Ctx) -> list[str]:
    return [c.op("Div", [c.op("Log", [c.x(0, c.odt())]), c.b.const(math.log(10.0), c.odt())])]


@rule("log1p", "Log, Add, Sub, Div, Where")
def _log1p(c: Ctx) -> list[str]:
    # Kahan's exact form: u = 1 + x; log(u) * x / (u - 1), and x where u rounds to 1
    dt = c.odt()
    x = c.x(0, dt)
    one = c.b.const(1.0, dt)
    u = c.op("Add", [one, x])
    um1 = c.op("Sub", [u, one])
    r = c.op("Div", [c.op("Mul", [c.op("Log", [u]), x]), um1])
    r = c.op("Where", [c.op("Equal", [um1, x]), c.op("Log", [u]), r])  # exact u (and inf)
    return [c.op("Where", [c.op("Equal", [u, one]), x, r])]


@rule("expm1", "Exp, Log, Sub, Div, Where")
def _expm1(c: Ctx) -> list[str]:
    # Kahan's form: u = exp(x); (u - 1) * x / log(u), x where u rounds to 1, -1 where u - 1 is -1
    dt = c.odt()
    x = c.x(0, dt)
    one = c.b.const(1.0, dt)
    u = c.op("Exp", [x])
    um1 = c.op("Sub", [u, one])
    r = c.op("Div", [c.op("Mul", [um1, x]), c.op("Log", [u])])
    r = c.op("Where", [c.op("IsInf", [u]), u, r])
    r = c.op("Where", [c.op("Equal", [um1, c.b.const(-1.0, dt)]), um1, r])
    return [c.op("Where", [c.op("Equal", [u, one]), x, r])]


_BINARY = {
    "add": "Add",
    "subtract": "Sub",
    "multiply": "Mul",
    "divide": "Div",
    "pow": "Pow",
    "maximum": "Max",
    "minimum": "Min",
}


def _binary(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        dt = c.odt()
        if onnx_op in ("Max", "Min") and dt in ("float16", "float32", "float64"):
            # NaN propagates, as in the standard's maximum / minimum
            a, b = c.x(0, dt), c.x(1, dt)
            m = c.op(onnx_op, [a, b])
            m = c.op("Where", [c.op("IsNaN", [a]), a, m])
            return [c.op("Where", [c.op("IsNaN", [b]), b, m])]
        if onnx_op == "Pow" and c.raw[1] is not None and not isinstance(c.raw[1], Var):
            return [c.op("Pow", [c.x(0, dt), c.x(1, dt)])]
        return [c.op(onnx_op, [c.x(0, dt), c.x(1, dt)])]

    return r


for _n, _o in _BINARY.items():
    rule(_n, _o)(_binary(_o))

_COMPARE = {
    "equal": "Equal",
    "less": "Less",
    "less_equal": "LessOrEqual",
    "greater": "Greater",
    "greater_equal": "GreaterOrEqual",
}


def _compare(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        dt = c.promoted([0, 1])
        return [c.op(onnx_op, [c.x(0, dt), c.x(1, dt)])]

    return r


for _n, _o in _COMPARE.items():
    rule(_n, _o)(_compare(_o))


@rule("not_equal", "Equal, Not")
def _ne(c: Ctx) -> list[str]:
    dt = c.promoted([0, 1])
    return [c.op("Not", [c.op("Equal", [c.x(0, dt), c.x(1, dt)])])]


def _logical(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        return [c.op(onnx_op, [c.x(i, "bool") for i in range(len(c.raw))])]

    return r


for _n, _o in (("logical_and", "And"), ("logical_or", "Or"), ("logical_xor", "Xor"), ("logical_not", "Not")):
    rule(_n, _o)(_logical(_o))


def _bitwise(onnx_op: str, bool_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        dt = c.odt()
        ins = [c.x(i, dt) for i in range(len(c.raw))]
        return [c.op(bool_op if dt == "bool" else onnx_op, ins)]

    return r


rule("bitwise_and", "BitwiseAnd")(_bitwise("BitwiseAnd", "And"))
rule("bitwise_or", "BitwiseOr")(_bitwise("BitwiseOr", "Or"))
rule("bitwise_xor", "BitwiseXor")(_bitwise("BitwiseXor", "Xor"))
rule("bitwise_invert", "BitwiseNot")(_bitwise("BitwiseNot", "Not"))


def _shift(direction: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        dt = c.odt()
        a, s = c.x(0, dt), c.x(1, dt)
        if dt.startswith("uint"):
            return [c.op("BitShift", [a, s], direction=direction)]
        p = c.op("Pow", [c.b.const(2, dt), s])  # signed: x * 2**s, floor(x / 2**s)
        if direction == "LEFT":
            return [c.op("Mul", [a, p])]
        return [_int_floordiv(c, a, p)]

    return r


rule("bitwise_left_shift", "BitShift (unsigned); Mul, Pow (signed)")(_shift("LEFT"))
rule("bitwise_right_shift", "BitShift (unsigned); Div, Mod, Pow (signed)")(_shift("RIGHT"))


def _is_float(dt: str) -> bool:
    return dt in ("float16", "bfloat16", "float32", "float64")


def _int_floordiv(c: Ctx, a: str, b: str) -> str:
    return c.op("Div", [c.op("Sub", [a, c.op("Mod", [a, b], fmod=0)]), b])


@rule("floor_divide", "Div, Floor (floats); Div, Mod, Sub (integers)")
def _floordiv(c: Ctx) -> list[str]:
    dt = c.odt()
    a, b = c.x(0, dt), c.x(1, dt)
    if _is_float(dt):
        return [c.op("Floor", [c.op("Div", [a, b])])]
    return [_int_floordiv(c, a, b)]


@rule("remainder", "Mod (integers); Div, Floor, Mul, Sub (floats)")
def _remainder(c: Ctx) -> list[str]:
    dt = c.odt()
    a, b = c.x(0, dt), c.x(1, dt)
    if _is_float(dt):
        return [c.op("Sub", [a, c.op("Mul", [c.op("Floor", [c.op("Div", [a, b])]), b])])]
    return [c.op("Mod", [a, b], fmod=0)]


def _signbit(c: Ctx, x: str, dt: str) -> str:
    zero = c.b.const(0, dt)
    neg = c.op("Less", [x, zero])
    negzero = c.op("And", [c.op("Equal", [x, zero]), c.op("Less", [c.op("Div", [c.b.const(1, dt), x]), zero])])
    return c.op("Or", [neg, negzero])


@rule("signbit", "Less, Equal, Div, And, Or")
def _signbit_rule(c: Ctx) -> list[str]:
    dt = c.dt(0) or "float32"
    x = c.x(0, dt)
    if not _is_float(dt):
        return [c.op("Less", [x, c.b.const(0, dt)])]
    return [_signbit(c, x, dt)]


@rule("copysign", "Abs, Neg, Where (+ signbit)")
def _copysign(c: Ctx) -> list[str]:
    dt = c.odt()
    a, b = c.op("Abs", [c.x(0, dt)]), c.x(1, dt)
    return [c.op("Where", [_signbit(c, b, dt), c.op("Neg", [a]), a])]


@rule("hypot", "Mul, Add, Sqrt")
def _hypot(c: Ctx) -> list[str]:
    dt = c.odt()
    a, b = c.x(0, dt), c.x(1, dt)
    return [c.op("Sqrt", [c.op("Add", [c.op("Mul", [a, a]), c.op("Mul", [b, b])])])]


@rule("atan2", "Atan, Div, Where (+ signbit)")
def _atan2(c: Ctx) -> list[str]:
    dt = c.odt()
    y, x = c.x(0, dt), c.x(1, dt)
    pi = c.b.const(math.pi, dt)
    npi = c.b.const(-math.pi, dt)
    zero = c.b.const(0.0, dt)
    base = c.op("Atan", [c.op("Div", [y, x])])
    xneg, yneg = _signbit(c, x, dt), _signbit(c, y, dt)
    adj = c.op("Where", [xneg, c.op("Where", [yneg, npi, pi]), zero])
    r = c.op("Add", [base, adj])
    both0 = c.op("And", [c.op("Equal", [y, zero]), c.op("Equal", [x, zero])])
    at0 = c.op("Where", [xneg, c.op("Where", [yneg, npi, pi]), y])  # atan2(+-0, -0) = +-pi, (+-0, +0) = +-0
    return [c.op("Where", [both0, at0, r])]


@rule("logaddexp", "Max, Abs, Sub, Exp, Log, Add, Where")
def _logaddexp(c: Ctx) -> list[str]:
    dt = c.odt()
    a, b = c.x(0, dt), c.x(1, dt)
    m = c.op("Max", [a, b])
    d = c.op("Neg", [c.op("Abs", [c.op("Sub", [a, b])])])
    r = c.op("Add", [m, c.op("Log", [c.op("Add", [c.b.const(1.0, dt), c.op("Exp", [d])])])])
    same = c.op("Add", [a, c.b.const(math.log(2.0), dt)])  # a == b, infinities included
    r = c.op("Where", [c.op("Equal", [a, b]), same, r])
    r = c.op("Where", [c.op("IsNaN", [a]), a, r])
    return [c.op("Where", [c.op("IsNaN", [b]), b, r])]


@rule("isnan", "IsNaN")
def _isnan(c: Ctx) -> list[str]:
    x = c.x(0)
    if not _is_float(c.dt(0) or ""):
        return [c.op("Not", [c.op("Equal", [x, x])])]
    return [c.op("IsNaN", [x])]


@rule("isinf", "IsInf")
def _isinf(c: Ctx) -> list[str]:
    x = c.x(0)
    if not _is_float(c.dt(0) or ""):
        return [c.op("Not", [c.op("Equal", [x, x])])]
    return [c.op("IsInf", [x])]


@rule("isfinite", "IsNaN, IsInf, Or, Not")
def _isfinite(c: Ctx) -> list[str]:
    x = c.x(0)
    if not _is_float(c.dt(0) or ""):
        return [c.op("Equal", [x, x])]
    return [c.op("Not", [c.op("Or", [c.op("IsNaN", [x]), c.op("IsInf", [x])])])]


@rule("astype", "Cast")
def _astype(c: Ctx) -> list[str]:
    return [c.op("Cast", [c.x(0)], to=c.b.elem(c.odt()))]


@rule("where", "Where")
def _where(c: Ctx) -> list[str]:
    dt = c.odt()
    return [c.op("Where", [c.x(0, "bool"), c.x(1, dt), c.x(2, dt)])]


@rule("clip", "Max, Min (NaN kept)")
def _clip(c: Ctx) -> list[str]:
    dt = c.odt()
    x = c.x(0, dt)
    r = x
    if c.raw[1] is not None:
        r = c.op("Max", [r, c.x(1, dt)])
    if c.raw[2] is not None:
        r = c.op("Min", [r, c.x(2, dt)])
    if _is_float(dt):
        r = c.op("Where", [c.op("IsNaN", [x]), x, r])
    return [r]


# ---------------------------------------------------------------------------------------
# Reductions and scans along an axis
# ---------------------------------------------------------------------------------------
def _axes(c: Ctx, i: int = 0) -> list[int] | None:
    ax = c.params.get("axis")
    if ax is None:
        return None
    r = c.rank(i)
    ax = (ax,) if isinstance(ax, int) else ax
    return [a % r if r else a for a in ax]


def _reduce(onnx_op: str, cast_in: str | None = None) -> Rule:
    def r(c: Ctx) -> list[str]:
        dt = c.odt()
        work = cast_in or (dt if dt != "bool" else "int32")
        x = c.x(0, work)
        axes = _axes(c)
        keep = 1 if c.params.get("keepdims") else 0
        if axes is not None and len(axes) == 0:
            out = c.op("Identity", [x])
        elif axes is None:
            out = c.op(onnx_op, [x], keepdims=keep)
        else:
            out = c.op(onnx_op, [x, c.b.i64(axes)], keepdims=keep)
        return [out if work == dt else c.op("Cast", [out], to=c.b.elem(dt))]

    return r


rule("sum", "ReduceSum")(_reduce("ReduceSum"))
rule("prod", "ReduceProd")(_reduce("ReduceProd"))
rule("max", "ReduceMax")(_reduce("ReduceMax"))
rule("min", "ReduceMin")(_reduce("ReduceMin"))
rule("all", "Cast, ReduceMin")(_reduce("ReduceMin", "int32"))
rule("any", "Cast, ReduceMax")(_reduce("ReduceMax", "int32"))


def _arg(onnx_op: str) -> Rule:
    def r(c: Ctx) -> list[str]:
        x = c.x(0)
        ax = c.params.get("axis")
        keep = 1 if c.params.get("keepdims") else 0
        if ax is None:
            flat = c.op("Reshape", [x, c.b.i64([-1])])
            out = c.op(onnx_op, [flat], axis=0, keepdims=0)
            if keep:
                out = c.op("Reshape", [out, c.b.i64([1] * c.rank(0))])
        else:
            out = c.op(onnx_op, [x], axis=int(ax), keepdims=keep)
        return [out if c.odt() == "int64" else c.op("Cast", [out], to=c.b.elem(c.odt()))]

    return r


rule("argmax", "ArgMax")(_arg("ArgMax"))
rule("argmin", "ArgMin")(_arg("ArgMin"))


@rule("cumulative_sum", "CumSum (+ Pad for include_initial)")
def _cumsum(c: Ctx) -> list[str]:
    dt = c.odt()
    ax = int(c.params["axis"]) % max(c.rank(0), 1)
    out = c.op("CumSum", [c.x(0, dt), c.b.const(ax, "int64")])
    if c.params.get("include_initial"):
        r = c.rank(0)
        pads = [0] * (2 * r)
        pads[ax] = 1
        out = c.op("Pad", [out, c.b.i64(pads), c.b.const(0, dt)])
    return [out]


def _sort(want: int) -> Rule:
    def r(c: Ctx) -> list[str]:
        ax = int(c.params["axis"])
        x = c.x(0)
        k = c.op("Unsqueeze", [c.op("Gather", [c.op("Shape", [x]), c.b.const(ax % c.rank(0), "int64")]), c.b.i64([0])])
        vals, idx = c.b.opn("TopK", [x, k], 2, axis=ax, largest=1 if c.params.get("descending") else 0, sorted=1)
        out = [vals, idx][want]
        if want == 1 and c.odt() != "int64":
            out = c.op("Cast", [out], to=c.b.elem(c.odt()))
        return [out]

    return r


rule("sort", "TopK")(_sort(0))
rule("argsort", "TopK")(_sort(1))


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------
@rule("matmul", "MatMul")
def _matmul(c: Ctx) -> list[str]:
    dt = c.odt()
    return [c.op("MatMul", [c.x(0, dt), c.x(1, dt)])]


@rule("matmul_nt", "Transpose, MatMul")
def _matmul_nt(c: Ctx) -> list[str]:
    dt = c.odt()
    r = c.rank(1)
    w = c.x(1, dt)
    if r >= 2:
        perm = list(range(r - 2)) + [r - 1, r - 2]
        w = c.op("Transpose", [w], perm=perm)
    return [c.op("MatMul", [c.x(0, dt), w])]


@rule("linalg.det", "Det")
def _det(c: Ctx) -> list[str]:
    return [c.op("Det", [c.x(0, c.odt())])]


def _diag(c: Ctx, x: str, shape: tuple[Any, ...], offset: int) -> str:
    n, m = (c.b.static(d, "the matrix size") for d in shape[-2:])
    rows = range(max(0, -offset), min(n, m - offset)) if m - offset > 0 else range(0)
    idx = [i * m + i + offset for i in rows]
    lead = len(shape) - 2
    flat = c.op("Reshape", [x, c.b.i64([0] * lead + [n * m])])
    return c.op("Gather", [flat, c.b.i64(idx)], axis=lead)


@rule("linalg.diagonal", "Reshape, Gather")
def _diagonal(c: Ctx) -> list[str]:
    return [_diag(c, c.x(0), c.shape(0), int(c.params.get("offset", 0)))]


@rule("linalg.trace", "Reshape, Gather, ReduceSum")
def _trace(c: Ctx) -> list[str]:
    dt = c.odt()
    d = _diag(c, c.x(0, dt), c.shape(0), int(c.params.get("offset", 0)))
    return [c.op("ReduceSum", [d, c.b.i64([-1])], keepdims=0)]


# ---------------------------------------------------------------------------------------
# Manipulation
# ---------------------------------------------------------------------------------------
@rule("reshape", "Reshape")
def _reshape(c: Ctx) -> list[str]:
    shape = tuple(c.params["shape"])
    zero = any(not isinstance(d, Dim) and d == 0 for d in shape)
    return [c.op("Reshape", [c.x(0), c.b.shape_vec(shape, "a reshape target")], allowzero=1 if zero else None)]


@rule("broadcast_to", "Expand")
def _broadcast_to(c: Ctx) -> list[str]:
    return [c.op("Expand", [c.x(0), c.b.shape_vec(tuple(c.params["shape"]), "a broadcast target")])]


@rule("permute_dims", "Transpose")
def _permute(c: Ctx) -> list[str]:
    return [c.op("Transpose", [c.x(0)], perm=[int(a) for a in c.params["axes"]])]


@rule("flip", "Slice")
def _flip(c: Ctx) -> list[str]:
    r = c.rank(0)
    ax = c.params.get("axis")
    axes = list(range(r)) if ax is None else [a % r for a in ((ax,) if isinstance(ax, int) else ax)]
    if not axes:
        return [c.op("Identity", [c.x(0)])]
    n = len(axes)
    return [
        c.op(
            "Slice",
            [c.x(0), c.b.i64([-1] * n), c.b.i64([INT64_MIN] * n), c.b.i64(axes), c.b.i64([-1] * n)],
        )
    ]


@rule("roll", "Slice, Concat")
def _roll(c: Ctx) -> list[str]:
    x = c.x(0)
    shape = c.shape(0)
    ax = c.params.get("axis")
    shift = c.params["shift"]
    shifts = (shift,) if isinstance(shift, int) else tuple(shift)
    if ax is None:
        flat = c.op("Reshape", [x, c.b.i64([-1])])
        size = 1
        for d in c.b.static(tuple(shape), "the rolled array's size"):
            size *= d
        out = _roll1(c, flat, int(c.b.static(sum(shifts), "the shift")), size, 0)
        return [c.op("Reshape", [out, c.op("Shape", [x])])]
    axes = (ax,) if isinstance(ax, int) else tuple(ax)
    for s, a in zip(shifts, axes, strict=True):
        a = a % len(shape)
        x = _roll1(c, x, int(c.b.static(s, "the shift")), int(c.b.static(shape[a], "the rolled axis")), a)
    return [x]


def _roll1(c: Ctx, x: str, s: int, n: int, axis: int) -> str:
    if n == 0:
        return x
    s %= n
    if s == 0:
        return x
    tail = c.op("Slice", [x, c.b.i64([n - s]), c.b.i64([n]), c.b.i64([axis])])
    head = c.op("Slice", [x, c.b.i64([0]), c.b.i64([n - s]), c.b.i64([axis])])
    return c.op("Concat", [tail, head], axis=axis)


@rule("concat", "Concat")
def _concat(c: Ctx) -> list[str]:
    dt = c.odt()
    ax = c.params.get("axis", 0)
    ins = [c.x(i, dt) for i in range(len(c.raw))]
    if ax is None:
        ins = [c.op("Reshape", [x, c.b.i64([-1])]) for x in ins]
        ax = 0
    return [c.op("Concat", ins, axis=int(ax))]


@rule(("tril", "triu"), "Trilu")
def _trilu(c: Ctx) -> list[str]:
    k = int(c.params.get("k", 0))
    return [c.op("Trilu", [c.x(0), c.b.const(k, "int64")], upper=1 if c.name == "triu" else 0)]


# ---------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------
def _expand_key(spec: Sequence[Any], ndim: int) -> list[Any]:
    from .._ops.indexing import _Arr

    used = sum(
        (s.ndim if isinstance(s, _Arr) and s.is_bool else 1) for s in spec if s is not None and s is not Ellipsis
    )
    out: list[Any] = []
    seen = False
    for s in spec:
        if s is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
            seen = True
        else:
            out.append(s)
    if not seen:
        out.extend([slice(None)] * (ndim - used))
    return out


def _select(c: Ctx, x: str, ndim: int, spec: Sequence[Any], arrays: Sequence[tuple[str, int]]) -> tuple[str, int]:
    """``x[key]`` for the key ``spec`` (arrays[i] = (name of array i, its rank)); returns (name, rank)."""
    from .._ops.indexing import _Arr

    key = _expand_key(spec, ndim)
    # new axes first: each None becomes a full slice over an inserted size-1 axis
    new_axes = [i for i, k in enumerate(key) if k is None]
    if new_axes:
        x = c.op("Unsqueeze", [x, c.b.i64(new_axes)])
        key = [slice(None) if k is None else k for k in key]
    rank = len(key)
    has_arr = any(isinstance(k, _Arr) for k in key)
    # basic slices
    st, en, ax, sp = [], [], [], []
    for i, k in enumerate(key):
        if isinstance(k, slice) and k != slice(None):
            step = 1 if k.step is None else k.step
            if isinstance(step, Dim):
                step = c.b.static(step, "a slice step")
            start = k.start if k.start is not None else (0 if step > 0 else INT64_MAX)
            stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
            st.append(start)
            en.append(stop)
            ax.append(i)
            sp.append(step)
    ints = [i for i, k in enumerate(key) if isinstance(k, int) and not isinstance(k, bool)]
    if not has_arr:
        for i in ints:
            k = key[i]
            st.append(k)
            en.append(k + 1 if k != -1 else INT64_MAX)
            ax.append(i)
            sp.append(1)
    if ax:
        x = c.op(
            "Slice",
            [
                x,
                c.b.shape_vec(st, "a slice start"),
                c.b.shape_vec(en, "a slice stop"),
                c.b.i64(ax),
                c.b.shape_vec(sp, "a slice step"),
            ],
        )
    if not has_arr:
        if ints:
            x = c.op("Squeeze", [x, c.b.i64(ints)])
        return x, rank - len(ints)
    # advanced indexing: the integer arrays and ints broadcast together (NumPy's rule)
    adv = [i for i, k in enumerate(key) if isinstance(k, _Arr) or i in ints]
    for i in adv:
        if isinstance(key[i], _Arr) and key[i].is_bool:
            raise ExportError(
                f"onnx.export: {c.name}: a boolean-mask index has a data-dependent shape; index with integer "
                "arrays (fl.nonzero of a fixed mask outside the function) or select with fl.where."
            )
    rest = [i for i in range(rank) if i not in adv]
    xt = c.op("Transpose", [x], perm=adv + rest) if adv + rest != list(range(rank)) else x
    idx_names = []
    nb = 0
    for i in adv:
        k = key[i]
        if isinstance(k, _Arr):
            name, r = arrays[k.i]
            idx_names.append(c.op("Cast", [name], to=c.b.elem("int64")))
            nb = max(nb, r)
        else:
            idx_names.append(c.b.const(int(k), "int64"))
    zero = None
    for n in idx_names:  # a zero of the broadcast shape
        z = c.op("Mul", [n, c.b.const(0, "int64")])
        zero = z if zero is None else c.op("Add", [zero, z])
    assert zero is not None
    stacked = c.op("Concat", [c.op("Unsqueeze", [c.op("Add", [n, zero]), c.b.i64([-1])]) for n in idx_names], axis=-1)
    out = c.op("GatherND", [xt, stacked])
    out_rank = nb + len(rest)
    contiguous = adv == list(range(adv[0], adv[-1] + 1))
    p = adv[0]
    if contiguous and p > 0:  # the broadcast dimensions stay where the indexed axes were
        perm = list(range(nb, nb + p)) + list(range(nb)) + list(range(nb + p, out_rank))
        out = c.op("Transpose", [out], perm=perm)
    return out, out_rank


def _arrays(c: Ctx, first: int) -> list[tuple[str, int]]:
    return [(c.x(i), c.rank(i)) for i in range(first, len(c.raw))]


@rule("getitem", "Slice, Squeeze, Unsqueeze, Transpose, GatherND")
def _getitem(c: Ctx) -> list[str]:
    out, _ = _select(c, c.x(0), c.rank(0), c.params["spec"], _arrays(c, 1))
    return [out]


def _scatter(c: Ctx, x: str, v: str, v_rank: int, spec: Sequence[Any], arrays: Any, add: bool) -> str:
    """``x[key] = v`` (or ``+= v``): the key selects flat positions from an arange, then ScatterND."""
    shape = c.op("Shape", [x])
    n = c.op("ReduceProd", [shape], keepdims=0)
    pos = c.op("Reshape", [c.op("Range", [c.b.const(0, "int64"), n, c.b.const(1, "int64")]), shape])
    p, prank = _select(c, pos, len(c.outs[0].shape), spec, arrays)
    if v_rank > prank:  # leading size-1 axes of the value, as NumPy drops them
        v = c.op("Reshape", [v, c.op("Shape", [p])])
    upd = c.op("Expand", [v, c.op("Shape", [p])])
    flat = c.op("Reshape", [x, c.b.i64([-1])])
    out = c.op("ScatterND", [flat, c.op("Unsqueeze", [p, c.b.i64([-1])]), upd], reduction="add" if add else None)
    return c.op("Reshape", [out, shape])


def _basic_pads(c: Ctx, spec: Sequence[Any]) -> tuple[list[int], list[int], list[Any]] | None:
    """For a key of ints and unit-step slices: (pads, int axes, region shape), else None."""
    from .._ops.indexing import _Arr

    shape = c.shape(0)
    if any(isinstance(k, _Arr) or k is None for k in spec):
        return None
    key = _expand_key(spec, len(shape))
    r = len(shape)
    before, after, region, ints = [0] * r, [0] * r, [], []
    for i, (k, n) in enumerate(zip(key, shape, strict=True)):
        if isinstance(k, slice) and k == slice(None):
            region.append(n)
            continue
        if isinstance(n, Dim) or any(isinstance(v, Dim) for v in (getattr(k, "start", k), getattr(k, "stop", k))):
            return None
        if isinstance(k, int):
            j = k % n
            before[i], after[i] = j, n - j - 1
            region.append(1)
            ints.append(i)
        elif isinstance(k, slice) and k.step in (None, 1):
            lo, hi, _ = k.indices(n)
            hi = max(hi, lo)
            before[i], after[i] = lo, n - hi
            region.append(hi - lo)
        else:
            return None
    return before + after, ints, region


@rule("setitem", "Pad, Where (unit-step keys); Range, Slice/GatherND, Expand, ScatterND (others)")
def _setitem(c: Ctx) -> list[str]:
    dt = c.odt()
    x, v = c.x(0, dt), c.x(1, dt)
    basic = _basic_pads(c, c.params["spec"])
    if basic is None:
        return [_scatter(c, x, v, c.rank(1), c.params["spec"], _arrays(c, 2), False)]
    pads, ints, region = basic
    keep = [d for i, d in enumerate(region) if i not in ints]
    val = c.op("Expand", [v, c.b.shape_vec(keep, "the updated region")])
    if ints:
        val = c.op("Unsqueeze", [val, c.b.i64(ints)])
    fill = c.low.uniform_fill(c.raw[0])
    if fill is not None:  # into a constant of one value (a padding buffer): just a Pad
        return [c.op("Pad", [val, c.b.i64(pads), c.b.const(fill, dt)])]
    padded = c.op("Pad", [val, c.b.i64(pads), c.b.const(0, dt)])
    ones = c.op("Expand", [c.b.const(True, "bool"), c.b.shape_vec(region, "the updated region")])
    mask = c.op("Pad", [ones, c.b.i64(pads), c.b.const(False, "bool")])
    return [c.op("Where", [mask, padded, x])]


@rule("index_add", "Range, Slice/GatherND (positions), Expand, ScatterND(add)")
def _index_add(c: Ctx) -> list[str]:
    dt = c.odt()
    return [_scatter(c, c.x(0, dt), c.x(1, dt), c.rank(1), c.params["spec"], _arrays(c, 2), True)]


def _window_keys(c: Ctx) -> list[tuple[Any, ...]]:
    from ..nn.functional._conv import _window_keys as wk

    p = {k: c.b.static(c.params[k], f"the window parameter {k}") for k in ("ks", "ss", "ds", "outs")}
    return wk(p["ks"], p["ss"], p["ds"], p["outs"], int(c.params["trail"]))


@rule("nn_unfold", "Slice, Unsqueeze, Concat")
def _unfold(c: Ctx) -> list[str]:
    x, r = c.x(0), c.rank(0)
    axis = int(c.params["axis"])
    parts = [c.op("Unsqueeze", [_select(c, x, r, k, [])[0], c.b.i64([axis])]) for k in _window_keys(c)]
    return [c.op("Concat", parts, axis=axis) if len(parts) > 1 else parts[0]]


@rule("nn_fold", "ConstantOfShape, Slice, ScatterND(add)")
def _fold(c: Ctx) -> list[str]:
    dt = c.odt()
    x, r = c.x(0, dt), c.rank(0)
    axis, trail = int(c.params["axis"]), int(c.params["trail"])
    sp = c.b.static(tuple(c.params["sp"]), "the folded spatial size")
    nd = len(sp)
    end = r - trail
    shape = c.op("Shape", [x])
    pieces = []
    if axis > 0:
        pieces.append(c.op("Slice", [shape, c.b.i64([0]), c.b.i64([axis])]))
    if end - nd > axis + 1:
        pieces.append(c.op("Slice", [shape, c.b.i64([axis + 1]), c.b.i64([end - nd])]))
    pieces.append(c.b.i64(list(sp)))
    if trail:
        pieces.append(c.op("Slice", [shape, c.b.i64([end]), c.b.i64([r])]))
    oshape = c.op("Concat", pieces, axis=0) if len(pieces) > 1 else pieces[0]
    out = c.op("ConstantOfShape", [oshape], value=c.b.h.make_tensor("value", c.b.elem(dt), [1], [0]))
    for k, key in enumerate(_window_keys(c)):
        piece, prank = _select(c, x, r, (slice(None),) * axis + (k, Ellipsis), [])
        out = _scatter(c, out, piece, prank, key, [], True)
    return [out]


# ---------------------------------------------------------------------------------------
# nn and optim primitives
# ---------------------------------------------------------------------------------------
@rule("nn.cross_entropy", "ReduceMax, Exp, ReduceSum, Log, Equal, Where")
def _cross_entropy(c: Ctx) -> list[str]:
    dt = c.odt()
    x, t = c.x(0, dt), c.x(1, "int64")
    m = c.op("ReduceMax", [x, c.b.i64([1])], keepdims=1)
    fin = c.op("Not", [c.op("Or", [c.op("IsNaN", [m]), c.op("IsInf", [m])])])
    m = c.op("Where", [fin, m, c.b.const(0.0, dt)])
    lse = c.op(
        "Add",
        [
            c.op("Log", [c.op("ReduceSum", [c.op("Exp", [c.op("Sub", [x, m])]), c.b.i64([1])], keepdims=0)]),
            c.op("Squeeze", [m, c.b.i64([1])]),
        ],
    )
    ignore = c.params.get("ignore_index")
    valid = None
    if ignore is not None:
        valid = c.op("Not", [c.op("Equal", [t, c.b.const(int(ignore), "int64")])])
    ncls = c.op("Gather", [c.op("Shape", [x]), c.b.const(1, "int64")])
    if c.params.get("wrap", True):
        t = c.op("Where", [c.op("Less", [t, c.b.const(0, "int64")]), c.op("Add", [t, ncls]), t])
    classes = c.op("Range", [c.b.const(0, "int64"), ncls, c.b.const(1, "int64")])
    hit = c.op("Equal", [c.op("Unsqueeze", [t, c.b.i64([1])]), classes])
    if valid is not None:
        hit = c.op("And", [hit, c.op("Unsqueeze", [valid, c.b.i64([1])])])
    xt = c.op("ReduceSum", [c.op("Where", [hit, x, c.b.const(0.0, dt)]), c.b.i64([1])], keepdims=0)
    out = c.op("Sub", [lse, xt])
    if valid is not None:
        out = c.op("Mul", [out, c.op("Cast", [valid], to=c.b.elem(dt))])
    return [out]


@rule("optim.adam_moments", "Sub, Mul, Add, Sqrt, Div")
def _adam(c: Ctx) -> list[str]:
    dt = c.odt()
    g, m, v = c.x(0, dt), c.x(1, dt), c.x(2, dt)
    p = c.params

    def k(name: str) -> str:
        return c.b.const(float(p[name]), dt)

    mk = c.op("Add", [m, c.op("Mul", [c.op("Sub", [g, m]), k("c1")])])
    vk = c.op("Add", [c.op("Mul", [v, k("b2")]), c.op("Mul", [c.op("Mul", [g, g]), k("c2")])])
    den = c.op("Add", [c.op("Div", [c.op("Sqrt", [vk]), k("bc2_sqrt")]), k("eps")])
    return [mk, vk, c.op("Div", [c.op("Div", [mk, den]), k("bc1")])]


# ---------------------------------------------------------------------------------------
# Calls and control flow
# ---------------------------------------------------------------------------------------
@rule("custom_call", "(the function's own program, inlined)")
def _custom_call(c: Ctx) -> list[str]:
    prog = c.params["program"]
    outs = c.low.lower(prog, [c.x(i) for i in range(len(c.raw))])
    return [c.low.as_name(o, v.dtype.name) for o, v in zip(outs, c.outs, strict=True)]


def _body_outputs(c: Ctx, names: Sequence[Any], vars_: Sequence[Any]) -> tuple[list[str], list[Any]]:
    """Identity each output of a body (a subgraph output must be its own value), with its type."""
    outs, infos = [], []
    for n, v in zip(names, vars_, strict=True):
        dt = v.dtype.name if isinstance(v, Var) else c.odt()
        src = c.low.as_name(n, dt)
        o = c.b.op("Identity", [src])
        outs.append(o)
        infos.append(c.b.value_info(o, dt, None))
    return outs, infos


def _branch_graph(c: Ctx, prog: Program, ops: Sequence[str], tag: str) -> Any:
    with c.b.frame() as f:
        res = c.low.lower(prog, ops)
        _, infos = _body_outputs(c, res, prog.outs)
    return c.b.graph(f, c.b.fresh(tag), [], infos)


@rule("cond", "If")
def _cond(c: Ctx) -> list[str]:
    branches: tuple[Program, ...] = c.params["branches"]
    ops = [c.x(i) for i in range(1, len(c.raw))]
    idx_dt = c.dt(0) or "int64"
    index = c.x(0)
    index = c.op("Reshape", [index, c.b.i64([])]) if c.rank(0) else index

    def build(lo: int) -> list[str]:
        # branches[lo] when index <= lo, else the rest (index clamped, as the impl clamps it)
        if lo == len(branches) - 1:
            raise AssertionError
        if idx_dt == "bool":
            pred = index
        else:
            pred = c.op("LessOrEqual", [index, c.b.const(lo, idx_dt)])
        then_g = _branch_graph(c, branches[lo], ops, "then")
        if lo + 1 == len(branches) - 1:
            else_g = _branch_graph(c, branches[lo + 1], ops, "else")
        else:
            with c.b.frame() as f:
                inner = build(lo + 1)
                outs, infos = [], []
                for n, v in zip(inner, c.outs, strict=True):
                    o = c.b.op("Identity", [n])
                    outs.append(o)
                    infos.append(c.b.value_info(o, v.dtype.name, None))
            else_g = c.b.graph(f, c.b.fresh("else"), [], infos)
        if idx_dt == "bool":  # branches are (false, true)
            then_g, else_g = else_g, then_g
        return c.b.opn("If", [pred], len(c.outs), then_branch=then_g, else_branch=else_g)

    if len(branches) == 1:
        return [c.low.as_name(o, v.dtype.name) for o, v in zip(c.low.lower(branches[0], ops), c.outs, strict=True)]
    return build(0)


@rule("scan", "Loop (+ Gather per step, Slice to reverse)")
def _scan(c: Ctx) -> list[str]:
    p = c.params
    body: Program = p["body"]
    k = 1 if p["dyn"] else 0
    nc, nk = int(p["n_consts"]), int(p["n_carry"])
    n_in = len(c.raw)
    consts = [c.x(i) for i in range(k, k + nc)]
    carry = [c.x(i) for i in range(k + nc, k + nc + nk)]
    xs = [c.x(i) for i in range(k + nc + nk, n_in)]
    if p["dyn"]:
        m = c.op("Reshape", [c.x(0, "int64"), c.b.i64([])])
    elif xs:
        m = c.op("Gather", [c.op("Shape", [xs[0]]), c.b.const(0, "int64")])
    else:
        m = c.b.dim(p["length"], "the scan length")
    carry_vars = body.outs[:nk]
    with c.b.frame() as f:
        it = c.b.fresh("iter")
        cin = c.b.fresh("cond_in")
        ks = [c.b.fresh("carry_in") for _ in range(nk)]
        idx = it
        if p["reverse"]:
            idx = c.b.op("Sub", [c.b.op("Sub", [m, c.b.const(1, "int64")]), it])
        x_t = [c.b.op("Gather", [x, idx], axis=0) for x in xs]
        res = c.low.lower(body, [*consts, *ks, *x_t])
        cout = c.b.op("Identity", [cin])
        outs, infos = _body_outputs(c, res, body.outs)
    in_vars = [v for v in body.in_vars if isinstance(v, Var)]
    inputs = [c.b.value_info(it, "int64", []), c.b.value_info(cin, "bool", [])] + [
        c.b.value_info(n, v.dtype.name, None) for n, v in zip(ks, in_vars[nc : nc + nk], strict=True)
    ]
    g = c.b.graph(f, c.b.fresh("scan_body"), inputs, [c.b.value_info(cout, "bool", []), *infos])
    del carry_vars
    res_names = c.b.opn("Loop", [m, "", *carry], len(c.outs), body=g)
    if p["reverse"]:
        res_names = res_names[:nk] + [
            c.op("Slice", [y, c.b.i64([-1]), c.b.i64([INT64_MIN]), c.b.i64([0]), c.b.i64([-1])]) for y in res_names[nk:]
        ]
    return res_names


@rule("while_loop", "Loop (condition carried)")
def _while(c: Ctx) -> list[str]:
    p = c.params
    cprog: Program = p["cond"]
    bprog: Program = p["body"]
    ncc, nbc = int(p["n_cc"]), int(p["n_bc"])
    cc = [c.x(i) for i in range(ncc)]
    bc = [c.x(i) for i in range(ncc, ncc + nbc)]
    carry = [c.x(i) for i in range(ncc + nbc, len(c.raw))]
    cnt_dt = c.outs[-1].dtype.name

    def pred_of(vals: Sequence[str]) -> str:
        r = c.low.lower(cprog, [*cc, *vals])[0]
        r = c.low.as_name(r, "bool")
        r = c.b.op("Cast", [r], to=c.b.elem("bool"))
        return str(c.b.op("Reshape", [r, c.b.i64([])]))

    pred0 = pred_of(carry)
    carry_vars = [v for v in bprog.in_vars if isinstance(v, Var)][nbc:]
    with c.b.frame() as f:
        it = c.b.fresh("iter")
        cin = c.b.fresh("cond_in")
        ks = [c.b.fresh("carry_in") for _ in carry]
        n_in = c.b.fresh("count_in")
        new = c.low.lower(bprog, [*bc, *ks])
        new_names = [c.low.as_name(o, v.dtype.name) for o, v in zip(new, bprog.outs, strict=True)]
        pred = c.b.op("Identity", [pred_of(new_names)])
        outs, infos = _body_outputs(c, new_names, bprog.outs)
        n_out = c.b.op("Add", [n_in, c.b.const(1, cnt_dt)])
        infos.append(c.b.value_info(n_out, cnt_dt, []))
    inputs = [c.b.value_info(it, "int64", []), c.b.value_info(cin, "bool", [])]
    inputs += [c.b.value_info(n, v.dtype.name, None) for n, v in zip(ks, carry_vars, strict=True)]
    inputs.append(c.b.value_info(n_in, cnt_dt, []))
    g = c.b.graph(f, c.b.fresh("while_body"), inputs, [c.b.value_info(pred, "bool", []), *infos])
    zero = c.b.const(0, cnt_dt)
    return c.b.opn("Loop", ["", pred0, *carry, zero], len(c.outs), body=g)
