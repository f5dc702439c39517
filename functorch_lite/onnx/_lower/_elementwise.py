"""ONNX rules of the elementwise primitives: unary and binary math, comparisons, logic, casts."""

from __future__ import annotations

import math

from ...transforms._program import Var
from . import Ctx, Rule, rule

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
