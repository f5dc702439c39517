"""Array-level vjp rules (``Primitive.avjp``) against the Tensor-level ``vjp`` rules.

First-order backward on concrete values runs a primitive's ``avjp`` (backend arrays, no
dispatch) instead of its ``vjp`` (Tensor ops, differentiable). The two are separate
implementations of one derivative, so every primitive with an ``avjp`` is enrolled here
automatically from ``functorch_lite._core.engine.PRIMITIVES`` and checked on:

* concrete inputs (the cases of ``tests/test_rules.py``: random shapes, broadcasting, float32
  and float64): ``fl.vjp`` with the avjp equals ``fl.vjp`` with it switched off (values,
  dtypes, shapes), and each array-level call equals the Tensor-level rule on the same
  residuals, dtype for dtype (float32 in, float32 out);
* binary elementwise ops with one operand that needs no gradient (a Python float or int, a
  concrete Tensor of either float dtype or bool), on either side;
* fixed edge cases (broadcasting patterns, empty arrays, every axis/keepdims form of sum,
  1-d matmul operands that the avjp declines), in float32, float64 and complex;
* inputs large enough to be pruned (``_ad._PRUNE_MIN`` elements): the avjp reads only what
  ``Primitive.residuals`` keeps, against an unpruned Tensor-level reference;
* cotangents that are tracers (``vmap`` and ``grad`` over ``f_vjp``, ``grad`` of ``grad``):
  the Tensor-level rule runs, and agrees with the avjp path and finite differences.

A primitive that gains an ``avjp`` fails here until it has a spec (in test_rules' table, or
``LOCAL_SPECS`` below) and a large-input case (``LARGE``; generated for elementwise ops).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import pkgutil
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _strategies import NONZERO, REAL, Case, Domain, assert_close, bools, broadcastable, tensor
from hypothesis import assume, given
from hypothesis import strategies as st
from test_rules import BINARY_DOMAINS, SPECS, UNARY_DOMAINS, Spec, _arity, _directions, _draw_case, _fd

import functorch_lite as fl
from functorch_lite._core.engine import PRIMITIVES, Primitive, bind
from functorch_lite._core.tensor import wrap
from functorch_lite._ops import elementwise as _ew
from functorch_lite._ops.elementwise import relu
from functorch_lite._ops.linalg_core import matmul_nt
from functorch_lite.transforms import _ad

for _m in pkgutil.walk_packages(fl.__path__, "functorch_lite."):  # register every primitive
    if not _m.name.endswith("__main__"):
        importlib.import_module(_m.name)

AVJP = sorted(name for name, p in PRIMITIVES.items() if p.avjp is not None)
RULE_SPECS: dict[str, Spec] = {s.name: s for s in SPECS}
DTYPES = ["float32", "float64"]
Fn = Callable[..., Any]


def _elementwise(arity: int) -> list[str]:
    """The avjp primitives that are public elementwise functions of ``arity`` arguments."""
    out = []
    for name in AVJP:
        fn = getattr(fl, name, None)
        if (
            fn is not None
            and name in _ew.__all__
            and getattr(fn, "prim", None) is PRIMITIVES[name]
            and _arity(fn) == arity
        ):
            out.append(name)
    return out


UNARY = _elementwise(1)
BINARY = _elementwise(2)


def _spec(name: str) -> Spec:
    sp = RULE_SPECS.get(name) or LOCAL_SPECS.get(name)
    if sp is None:
        pytest.fail(
            f"primitive {name!r} has an avjp but no spec: add one named {name!r} to tests/test_rules.py "
            "(or to LOCAL_SPECS here): a function that applies it, its shapes and domains."
        )
    return sp


# ---------------------------------------------------------------------------------------
# Primitives with an avjp and no spec in test_rules (bound by name: no private imports)
# ---------------------------------------------------------------------------------------
def _ce(x: Any, t: Any, ignore_index: int = -100) -> Any:
    """Per-row softmax cross-entropy of (N, C) logits ``x`` and (N,) class indices ``t``."""
    return bind(PRIMITIVES["nn.cross_entropy"], (x, t), {"ignore_index": ignore_index})


def _ce_targets(n: int, c: int, ignore_index: int = -100) -> Any:
    """Deterministic targets in [-c, c), every fifth row ``ignore_index``."""
    i = fl.arange(n, dtype=fl.int64)
    return fl.where(i % 5 == 3, ignore_index, (i * 7) % (2 * c) - c)


def _ce_build(draw: Callable[..., Any]) -> Case:
    n = draw(st.integers(1, 4))  # (n == 0: see test_cross_entropy_no_rows)
    c = draw(st.integers(1, 4))
    ii = draw(st.sampled_from([-100, 0, -1]))
    scale = draw(st.sampled_from([1.0, 30.0]))  # large logits: the max shift matters

    def targets(rng: random.Random) -> list[Any]:
        return [fl.asarray([rng.choice([*range(-c, c), ii]) for _ in range(n)], dtype=fl.int64)]

    return Case(lambda x, t: _ce(x * scale, t, ii), [(n, c)], [REAL], extras=targets)


LOCAL_SPECS: dict[str, Spec] = {"nn.cross_entropy": Spec("nn.cross_entropy", _ce_build)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_no_rows(dtype: str) -> None:
    if "nn.cross_entropy" not in PRIMITIVES:
        pytest.skip("no nn.cross_entropy primitive")
    x = fl.zeros((0, 3), dtype=getattr(fl, dtype))
    f = lambda x: _ce(x, _ce_targets(0, 3))  # noqa: E731
    _compare_paths("nn.cross_entropy", f, [x], fl.zeros((0,), dtype=x.dtype), f"nn.cross_entropy {dtype} (0, 3)")


# ---------------------------------------------------------------------------------------
# Instrumenting one primitive's avjp
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _avjp_as(prim: Primitive, rule: Any) -> Iterator[None]:
    # Backward calls an elementwise rule's per-input forms (aunary / abinary) directly when one
    # input needs a gradient; they are the very formulas the avjp wraps. Switched off here so that
    # every array-level call goes through ``rule`` and is recorded (or, with None, none runs).
    saved = prim.avjp, prim.aunary, prim.abinary
    prim.avjp, prim.aunary, prim.abinary = rule, None, None
    try:
        yield
    finally:
        prim.avjp, prim.aunary, prim.abinary = saved


class _Recorder:
    """Wraps ``prim.avjp``: records each call (inputs and result) for the rule-level check."""

    def __init__(self, prim: Primitive) -> None:
        assert prim.avjp is not None and prim.vjp is not None
        self.prim = prim
        self.rule: Callable[..., Any] = prim.avjp
        self.vjp: Callable[..., Any] = prim.vjp
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, xp: Any, g: Any, o: Any, ps: Any, par: Any, pm: Any) -> Any:
        assert not isinstance(g, fl.Tensor), f"{self.prim.name}: avjp called with a Tensor cotangent"
        r = self.rule(xp, g, o, ps, par, pm)
        self.calls.append((g, o, tuple(ps), tuple(par), dict(pm), r))
        return r

    def pruned(self) -> bool:
        """Whether some call saw a pruned (shape-only) residual."""
        return any(
            o.__class__ is _ad._Meta or any(isinstance(p, fl.Tensor) and p._a.__class__ is _ad._Meta for p in ps)
            for _, o, ps, _, _, _ in self.calls
        )

    def check(self, what: str) -> None:
        """Each non-declined call's cotangents equal the Tensor-level rule's, dtype for dtype."""
        prim = self.prim
        for g, o, ps, par, pm, r in self.calls:
            if r is None:
                continue  # declined: the Tensor-level rule ran instead
            xp = next(p._xp for p in ps if isinstance(p, fl.Tensor))
            need_in, need_out = prim.residuals
            for i, p in enumerate(ps):  # the engine never drops what the rules read
                if isinstance(p, fl.Tensor):
                    assert need_in is False or p._a.__class__ is not _ad._Meta, f"{what}: input {i} pruned"
            assert need_out is False or o.__class__ is not _ad._Meta, f"{what}: output pruned"
            assert len(r) == len(ps), f"{what}: avjp gave {len(r)} cotangents for {len(ps)} inputs"
            ref = self.vjp(wrap(g, xp), wrap(o, xp), *ps, **pm)
            for i, (c, p, parent) in enumerate(zip(r, ps, par, strict=True)):
                if parent is None:
                    continue
                e = ref[i]
                if callable(e) and not isinstance(e, fl.Tensor):
                    e = e()
                if c is None:
                    assert e is None, f"{what}: avjp gives no cotangent for input {i}, vjp gives one"
                    continue
                assert e is not None, f"{what}: avjp gives a cotangent for input {i}, vjp gives none"
                ct = wrap(c, xp)
                assert ct.dtype == e.dtype, f"{what}: input {i}: avjp dtype {ct.dtype} != vjp dtype {e.dtype}"
                if g.dtype == p._a.dtype and p.dtype == fl.float32:
                    assert ct.dtype == fl.float32, f"{what}: float32 in, {ct.dtype} cotangent out for input {i}"
                got = _ad.fit_cotangent(ct, p)
                exp = _ad.fit_cotangent(e, p)
                _same(got, exp, f"{what}: rule-level cotangent of input {i}")


def _same(got: Any, exp: Any, what: str) -> None:
    assert got.shape == exp.shape, f"{what}: shape {got.shape} != {exp.shape}"
    assert got.dtype == exp.dtype, f"{what}: dtype {got.dtype} != {exp.dtype}"
    assert type(got._a) is type(exp._a), f"{what}: array type {type(got._a)} != {type(exp._a)}"
    tol = 1e-6 if got.dtype in (fl.float32, fl.complex64) else 1e-13
    if got.dtype.kind == "c":
        assert_close(fl.real(got), fl.real(exp), rtol=tol, atol=tol, what=what + " (real part)")
        assert_close(fl.imag(got), fl.imag(exp), rtol=tol, atol=tol, what=what + " (imaginary part)")
    else:
        assert_close(got, exp, rtol=tol, atol=tol, what=what)


def _pullback(f: Fn, args: list[Any], u: Any) -> tuple[Any, ...]:
    _, pull = fl.vjp(f, *args)
    return pull(u)


def _compare_paths(name: str, f: Fn, args: list[Any], u: Any, what: str, unpruned: bool = False) -> _Recorder:
    """``fl.vjp`` with ``name``'s avjp against ``fl.vjp`` without it (and, with ``unpruned``,
    without pruning either); checks every avjp call against the vjp rule; returns the recorder."""
    prim = PRIMITIVES[name]
    rec = _Recorder(prim)
    with _avjp_as(prim, rec):
        got = _pullback(f, args, u)
    saved = _ad._PRUNE_MIN
    try:
        if unpruned:
            _ad._PRUNE_MIN = 1 << 62
        with _avjp_as(prim, None):
            exp = _pullback(f, args, u)
    finally:
        _ad._PRUNE_MIN = saved
    for i, (a, g, e) in enumerate(zip(args, got, exp, strict=True)):
        assert g.shape == a.shape and g.dtype == a.dtype, f"{what}: gradient {i} is {g.shape}/{g.dtype}"
        _same(g, e, f"{what}: gradient {i}, avjp path vs Tensor path")
    rec.check(what)
    return rec


def _cotangent(rng: random.Random, f: Fn, args: list[Any]) -> Any:
    out = f(*args)
    return tensor(rng, out.shape, REAL, out.dtype)


# ---------------------------------------------------------------------------------------
# 1-2. Concrete inputs: the cases of test_rules, float32 and float64
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", AVJP)
@given(data=st.data())
def test_avjp_equals_vjp(name: str, dtype: str, data: Any) -> None:
    """fl.vjp with and without the avjp agree, and each avjp call matches the vjp rule."""
    case, rng = _draw_case(data, _spec(name))
    args = case.args(rng, getattr(fl, dtype))
    extras = case.extras(rng)

    def f(*a: Any) -> Any:
        return case.fn(*a, *extras)

    rec = _compare_paths(name, f, args, _cotangent(rng, f, args), f"{name} {dtype} {case.shapes}")
    # A degenerate draw (broadcast_to or reshape to the same shape, an identity permutation)
    # binds no primitive: rejected; Hypothesis fails (Unsatisfiable) if no draw runs the avjp.
    assume(rec.calls)


def _int_constants(dom: Domain) -> list[int]:
    return [i for i in (1, 2, -1, -2) if (dom.lo <= abs(i) <= dom.hi if dom.signed else dom.lo <= i <= dom.hi)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_constant_operand(name: str, dtype: str, data: Any) -> None:
    """One operand needs no gradient: a Python float or int, or a concrete Tensor (of the same
    dtype, the other float dtype, or bool), on either side, broadcasting."""
    fn = getattr(fl, name)
    doms = BINARY_DOMAINS.get(name, (REAL, REAL))
    side = data.draw(st.sampled_from([0, 1]), label="constant side")
    dom = doms[side]
    kinds = ["float", "tensor", "other float tensor"]
    kinds += ["int"] if _int_constants(dom) else []
    kinds += ["bool tensor"] if not dom.signed and dom.lo <= 0.0 and 1.0 <= dom.hi else []
    kind = data.draw(st.sampled_from(kinds), label="constant kind")
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    xs, cs = data.draw(broadcastable(2), label="shapes")
    dt = getattr(fl, dtype)
    c: Any
    if kind == "float":
        c = dom.sample(rng)
    elif kind == "int":
        c = rng.choice(_int_constants(dom))
    elif kind == "bool tensor":
        c = bools(rng, cs)
    else:
        c = tensor(rng, cs, dom, dt if kind == "tensor" else fl.float64 if dt == fl.float32 else fl.float32)
    x = tensor(rng, xs, doms[1 - side], dt)

    def f(x: Any) -> Any:
        return fn(c, x) if side == 0 else fn(x, c)

    what = f"{name}({'c, x' if side == 0 else 'x, c'}) c={c!r}"
    rec = _compare_paths(name, f, [x], _cotangent(rng, f, [x]), what)
    assert rec.calls, f"{what}: the avjp never ran"


# ---------------------------------------------------------------------------------------
# Fixed edge cases: broadcasting patterns, empty arrays, every axis/keepdims form
# ---------------------------------------------------------------------------------------
FixedCase = tuple[Fn, list[tuple[int, ...]], list[Domain]]
BINARY_SHAPES: list[list[tuple[int, ...]]] = [
    [(2, 3), (3,)],
    [(2, 1), (1, 3)],
    [(), (2, 3)],
    [(2, 3), ()],
    [(1,), (2, 1, 3)],
    [(0, 3), (3,)],
]


def _sum_cases() -> list[FixedCase]:
    out: list[FixedCase] = []
    for axis in (None, 0, 1, -1, (0, 2), (-1, 0), (), (0, 1, 2)):
        for keepdims in (False, True):
            out.append((lambda x, a=axis, k=keepdims: fl.sum(x, axis=a, keepdims=k), [(2, 3, 4)], [REAL]))
    out.append((lambda x: fl.sum(x, axis=0), [(0, 3)], [REAL]))
    out.append((lambda x: fl.sum(x, axis=-1, dtype=fl.float64), [(2, 3)], [REAL]))
    return out


# Small cases for the non-elementwise primitives (the elementwise ones are generated).
EDGE: dict[str, list[FixedCase]] = {
    "relu": [
        (relu, [(2, 3)], [NONZERO]),
        (relu, [()], [NONZERO]),
        (relu, [(0, 2)], [REAL]),
        (relu, [(3,)], [Domain(0.0, 0.0)]),  # the kink: gradient 0 at 0 on both paths
    ],
    "sum": _sum_cases(),
    "reshape": [
        (lambda x: fl.reshape(x, (3, 2)), [(2, 3)], [REAL]),
        (lambda x: fl.reshape(x, (-1,)), [(2, 1, 3)], [REAL]),
        (lambda x: fl.reshape(x, (1, 1)), [()], [REAL]),
        (lambda x: fl.reshape(x, ()), [(1, 1)], [REAL]),
    ],
    "broadcast_to": [
        (lambda x: fl.broadcast_to(x, (2, 3)), [(3,)], [REAL]),
        (lambda x: fl.broadcast_to(x, (4, 2, 3)), [(2, 1)], [REAL]),
        (lambda x: fl.broadcast_to(x, (2,)), [()], [REAL]),
        (lambda x: fl.broadcast_to(x, (2, 0, 3)), [(1, 3)], [REAL]),
    ],
    "permute_dims": [
        (lambda x: fl.permute_dims(x, (1, 0)), [(2, 3)], [REAL]),
        (lambda x: fl.permute_dims(x, (2, 0, 1)), [(2, 3, 4)], [REAL]),
        (lambda x: fl.permute_dims(x, (1, 2, 0)), [(2, 3, 4)], [REAL]),
    ],
    "matmul": [
        (lambda x, y: x @ y, [(2, 3), (3, 4)], [REAL, REAL]),
        (lambda x, y: x @ y, [(2, 1, 3, 4), (5, 4, 2)], [REAL, REAL]),
        (lambda x, y: x @ y, [(3, 4), (2, 4, 5)], [REAL, REAL]),
        (lambda x, y: x @ y, [(3,), (2, 3, 4)], [REAL, REAL]),
        (lambda x, y: x @ y, [(2, 3), (3,)], [REAL, REAL]),
        (lambda x, y: x @ y, [(3,), (3,)], [REAL, REAL]),
        (lambda x, y: x @ y, [(2, 0), (0, 3)], [REAL, REAL]),
    ],
    "nn.cross_entropy": [
        (lambda x: _ce(x, _ce_targets(7, 3)), [(7, 3)], [REAL]),
        (lambda x: _ce(x * 1e4, _ce_targets(4, 2), 0), [(4, 2)], [REAL]),
        (lambda x: _ce(x, fl.full((3,), -100, dtype=fl.int64)), [(3, 2)], [REAL]),  # every row ignored
        (lambda x: _ce(x, fl.zeros((3,), dtype=fl.int64)), [(3, 1)], [REAL]),  # one class
        (lambda x: _ce(fl.where(fl.eye(3, 4, dtype=fl.bool), -math.inf, x), _ce_targets(3, 4)), [(3, 4)], [REAL]),
    ],
    "matmul_nt": [
        (matmul_nt, [(2, 3), (4, 3)], [REAL, REAL]),
        (matmul_nt, [(2, 5, 3), (4, 3)], [REAL, REAL]),
        (matmul_nt, [(3,), (4, 3)], [REAL, REAL]),
        (matmul_nt, [(1, 3), (1, 3)], [REAL, REAL]),
    ],
}


def _edge_cases(name: str) -> list[FixedCase]:
    if name in UNARY:
        dom = UNARY_DOMAINS.get(name, REAL)
        return [(getattr(fl, name), [s], [dom]) for s in [(), (2, 3), (0, 2)]]
    if name in BINARY:
        doms = list(BINARY_DOMAINS.get(name, (REAL, REAL)))
        return [(getattr(fl, name), shs, doms) for shs in BINARY_SHAPES]
    return EDGE.get(name, [])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", AVJP)
def test_avjp_edge_cases(name: str, dtype: str) -> None:
    """Fixed shapes Hypothesis may miss in a few draws: the avjp and Tensor paths agree."""
    cases = _edge_cases(name)
    if not cases:
        pytest.skip(f"{name}: no fixed edge cases (the Hypothesis tests still cover it)")
    rng = random.Random(1234)
    ran = False
    for fn, shapes, doms in cases:
        args = [tensor(rng, s, d, getattr(fl, dtype)) for s, d in zip(shapes, doms, strict=True)]
        rec = _compare_paths(name, fn, args, _cotangent(rng, fn, args), f"{name} {dtype} {shapes}")
        ran = ran or any(c[-1] is not None for c in rec.calls)
    assert ran, f"{name}: the avjp never ran on the edge cases"


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("name", AVJP)
def test_avjp_complex(name: str, dtype: str) -> None:
    """The edge cases on complex inputs and cotangents (where the op accepts complex)."""
    dt = getattr(fl, dtype)
    real = fl.float32 if dt == fl.complex64 else fl.float64
    rng = random.Random(4321)
    ran = False
    for fn, shapes, doms in _edge_cases(name):
        args = [
            fl.astype(tensor(rng, s, d, real), dt) + fl.astype(tensor(rng, s, Domain(-0.3, 0.3), real), dt) * 1j
            for s, d in zip(shapes, doms, strict=True)
        ]
        try:
            out = fn(*args)
        except Exception:  # the op is real-only (relu, atan2, hypot, logaddexp)
            continue
        u = fl.astype(tensor(rng, out.shape, REAL, real), dt) - fl.astype(tensor(rng, out.shape, REAL, real), dt) * 1j
        rec = _compare_paths(name, fn, args, u, f"{name} {dtype} {shapes}")
        ran = ran or any(c[-1] is not None for c in rec.calls)
    if not ran:
        pytest.skip(f"{name}: real-only, or no edge cases")


# ---------------------------------------------------------------------------------------
# 3. Pruned residuals: inputs and outputs of _PRUNE_MIN elements and more
# ---------------------------------------------------------------------------------------
S = math.isqrt(_ad._PRUNE_MIN - 1) + 1  # S * S >= _PRUNE_MIN
BIG = (S, S)

# Non-elementwise primitives: cases whose output is large too (what makes the engine prune).
LARGE: dict[str, list[FixedCase]] = {
    "relu": [(relu, [BIG], [NONZERO])],
    "sum": [
        (lambda x: fl.sum(x, axis=0), [(2, S, S)], [REAL]),
        (lambda x: fl.sum(x, axis=-1, keepdims=True), [(S, S, 2)], [REAL]),
        (lambda x: fl.sum(x, axis=(0, -1)), [(2, S, S, 1)], [REAL]),
        (lambda x: fl.sum(x, axis=1, dtype=fl.float64), [(S, 2, S)], [REAL]),
        (lambda x: fl.sum(x), [BIG], [REAL]),
    ],
    "reshape": [
        (lambda x: fl.reshape(x, (-1,)), [BIG], [REAL]),
        (lambda x: fl.reshape(x, (2, S // 2, S)), [BIG], [REAL]),
    ],
    "broadcast_to": [
        (lambda x: fl.broadcast_to(x, (2, S, S)), [BIG], [REAL]),
        (lambda x: fl.broadcast_to(x, BIG), [(S, 1)], [REAL]),
    ],
    "permute_dims": [(lambda x: fl.permute_dims(x, (2, 0, 1)), [(S // 4, 4, S)], [REAL])],
    "matmul": [
        (lambda x, y: x @ y, [BIG, BIG], [REAL, REAL]),
        (lambda x, y: x @ y, [(2, S // 2, 8), (8, S)], [REAL, REAL]),
    ],
    "nn.cross_entropy": [(lambda x: _ce(x, _ce_targets(S * S, 2)), [(S * S, 2)], [REAL])],
    "matmul_nt": [
        (matmul_nt, [BIG, BIG], [REAL, REAL]),
        (matmul_nt, [(2, S // 2, 8), (S, 8)], [REAL, REAL]),
    ],
}


def _large_cases(name: str) -> list[FixedCase] | None:
    if name in UNARY:
        return [(getattr(fl, name), [BIG], [UNARY_DOMAINS.get(name, REAL)])]
    if name in BINARY:
        fn = getattr(fl, name)
        doms = list(BINARY_DOMAINS.get(name, (REAL, REAL)))
        return [(fn, [BIG, BIG], doms), (fn, [BIG, (S,)], doms), (fn, [(S, 1), BIG], doms)]
    return LARGE.get(name)


def _ramp(shape: tuple[int, ...], dom: Domain, dtype: Any, k: float) -> Any:
    """Deterministic values in ``dom`` (built on the backend: fast for large shapes)."""
    t = fl.arange(math.prod(shape), dtype=dtype)
    v = dom.lo + (dom.hi - dom.lo) * ((fl.sin(t * k) + 1.0) * 0.5)
    if dom.signed:
        v = fl.where(fl.sin(t * (k + 0.61)) < 0.0, -v, v)
    return fl.reshape(v, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", AVJP)
def test_avjp_pruned_residuals(name: str, dtype: str) -> None:
    """Large residuals are pruned to shapes; the avjp still gives the unpruned Tensor-path gradient."""
    cases = _large_cases(name)
    if cases is None:
        pytest.fail(
            f"primitive {name!r} has an avjp but no large-input case; add one to LARGE in tests/test_avjp.py "
            f"(inputs or outputs of at least _ad._PRUNE_MIN = {_ad._PRUNE_MIN} elements)."
        )
    prim = PRIMITIVES[name]
    dt = getattr(fl, dtype)
    pruned = False
    for fn, shapes, doms in cases:
        args = [_ramp(s, d, dt, 0.37 + i) for i, (s, d) in enumerate(zip(shapes, doms, strict=True))]
        out = fn(*args)
        u = _ramp(out.shape, REAL, out.dtype, 0.91)
        what = f"{name} {dtype} {shapes} (large)"
        rec = _compare_paths(name, fn, args, u, what, unpruned=True)
        assert rec.calls, f"{what}: the avjp never ran"
        assert any(c[-1] is not None for c in rec.calls), f"{what}: the avjp declined every call"
        pruned = pruned or rec.pruned()
    if prim.residuals != (True, True):
        assert pruned, f"{name}: residuals={prim.residuals}, yet no large case pruned one; fix LARGE"


# ---------------------------------------------------------------------------------------
# 4. Tracer cotangents take the Tensor-level rule
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", AVJP)
@given(data=st.data())
def test_tracer_cotangent(name: str, data: Any) -> None:
    """vmap and grad over f_vjp, and grad of grad, against the avjp path and finite differences."""
    sp = _spec(name)
    case, rng = _draw_case(data, sp)
    args = case.args(rng)
    extras = case.extras(rng)
    n = len(args)

    def f(*a: Any) -> Any:
        return case.fn(*a, *extras)

    prim = PRIMITIVES[name]
    out, pull = fl.vjp(f, *args)
    us = [tensor(rng, out.shape, REAL, out.dtype) for _ in range(2)]
    rec = _Recorder(prim)
    with _avjp_as(prim, rec):
        batched = fl.vmap(pull)(fl.stack(us))
    assert not rec.calls, f"{name}: a batched cotangent reached the array-level rule"
    loop = [pull(u) for u in us]  # concrete cotangents: the avjp path
    for i in range(n):
        assert_close(batched[i], fl.stack([c[i] for c in loop]), rtol=1e-12, atol=1e-12, what=f"{name}: vmap(f_vjp)")

    # d/du <f_vjp(u), v> = J v: the outer grad's tracer is the cotangent of every inner node.
    v = _directions(rng, args)
    jv = fl.grad(lambda u: sum(fl.sum(c * vi) for c, vi in zip(pull(u), v, strict=True)))(us[0])
    fd = _fd(case.fn, args, v, extras)
    assert_close(jv, fd, rtol=sp.rtol, atol=sp.atol, what=f"{name}: grad over f_vjp vs finite differences")

    # grad of grad (tracer residuals) against finite differences of the avjp-path gradient.
    if not sp.second_order:
        return
    nums = tuple(range(n))
    grad_g = fl.grad(lambda *a: fl.sum(f(*a) * us[1]), argnums=nums)
    hv = fl.grad(lambda *a: sum(fl.sum(gi * vi) for gi, vi in zip(grad_g(*a), v, strict=True)), argnums=nums)(*args)
    eps = 1e-6
    plus = grad_g(*[a + eps * t for a, t in zip(args, v, strict=True)])
    minus = grad_g(*[a - eps * t for a, t in zip(args, v, strict=True)])
    for i in range(n):
        fdi = (plus[i] - minus[i]) / (2 * eps)
        assert_close(hv[i], fdi, rtol=1e-4, atol=1e-5, what=f"{name}: grad(grad) vs FD of the gradient, argument {i}")
