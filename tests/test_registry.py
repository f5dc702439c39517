"""The primitive registry: every primitive carries its rules.

Every differentiable primitive needs a jvp, a vjp and a batch rule; every
primitive (differentiable or not) needs a batch rule. Ops whose output shape
depends on the data have a batch rule that raises DataDependentShapeError on
purpose. The check runs over every primitive registered by importing each
module of the package, so a new primitive without its rules fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import functorch_lite as fl
from functorch_lite._core.engine import PRIMITIVES, Primitive


def _import_everything() -> None:
    for m in pkgutil.walk_packages(fl.__path__, "functorch_lite."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)


_import_everything()


def missing_rules(prims: dict[str, Primitive]) -> list[str]:
    """Descriptions of the rules each primitive lacks (empty when all are present)."""
    out = []
    for name, p in sorted(prims.items()):
        lacks = []
        if p.batch is None:
            lacks.append("batch")
        if p.differentiable:
            if p.jvp is None:
                lacks.append("jvp")
            if p.vjp is None:
                lacks.append("vjp")
        if lacks:
            out.append(f"{name}: no {', '.join(lacks)} rule")
    return out


def test_registry_is_populated() -> None:
    for name in ("add", "sin", "sum", "matmul", "getitem", "setitem", "reshape", "where", "argmax"):
        assert name in PRIMITIVES
    assert len(PRIMITIVES) > 80


def test_every_primitive_has_its_rules() -> None:
    problems = missing_rules(PRIMITIVES)
    assert not problems, "primitives without rules:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_rules_are_callable(name: str) -> None:
    p = PRIMITIVES[name]
    assert p.name == name
    assert callable(p.impl)
    for rule in (p.batch, p.jvp, p.vjp):
        assert rule is None or callable(rule)
    assert repr(p) == f"<primitive {name}>"


def test_check_fails_for_a_new_primitive_without_rules() -> None:
    """The registry check notices a differentiable primitive added without rules."""
    fake = Primitive("_registry_test_fake", lambda xp, x: x)
    try:
        assert missing_rules({"fake": fake}) == ["fake: no batch, jvp, vjp rule"]
        assert "_registry_test_fake: no batch, jvp, vjp rule" in missing_rules(PRIMITIVES)
        fake.batch = lambda n, vals, dims: (vals[0], dims[0])
        fake.jvp = lambda ts, out, x: ts[0]
        assert missing_rules({"fake": fake}) == ["fake: no vjp rule"]
        nd = Primitive("_registry_test_nondiff", lambda xp, x: x, differentiable=False)
        assert missing_rules({"nd": nd}) == ["nd: no batch rule"]
    finally:
        PRIMITIVES.pop("_registry_test_fake", None)
        PRIMITIVES.pop("_registry_test_nondiff", None)


def test_non_differentiable_outputs_carry_no_gradient() -> None:
    x = fl.asarray([1.0, -2.0, 3.0])

    def f(x: Any) -> Any:
        i = fl.argmax(x)
        return fl.sum(x * fl.astype(x > 0.0, x.dtype)) + fl.astype(i, x.dtype)

    assert fl.grad(f)(x).tolist() == [1.0, 0.0, 1.0]
    assert fl.jvp(lambda x: fl.sign(x) * 1.0, (x,), (fl.ones_like(x),))[1].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "op",
    [
        lambda x: fl.nonzero(x > 0.0)[0],
        lambda x: x[x > 0.0],
        lambda x: fl.unique_values(x),
    ],
    ids=["nonzero", "bool_mask", "unique_values"],
)
def test_data_dependent_shapes_raise_under_vmap(op: Any) -> None:
    x = fl.asarray([[1.0, -2.0], [3.0, 4.0]])
    with pytest.raises(fl.DataDependentShapeError) as ei:
        fl.vmap(op)(x)
    msg = str(ei.value)
    assert "vmap" in msg or "batched" in msg


def test_batch_rule_of_every_elementwise_op_is_shared() -> None:
    """Spot-check: each unary elementwise op batches with a moved batch axis."""
    from functorch_lite._ops import elementwise as ew

    x = fl.asarray([[0.2, 0.3, 0.4], [0.5, 0.6, 0.7]], dtype=fl.float64)
    for name in ew.__all__:
        fn = getattr(fl, name)
        prim = getattr(fn, "prim", None)
        if prim is None or prim.name in ("bitwise_invert", "logical_not"):
            continue
        try:
            ref = [fn(x[:, j]) if _unary(fn) else fn(x[:, j], x[:, j]) for j in range(3)]
        except Exception:
            continue  # not defined for floats (bitwise ops)
        got = fl.vmap(fn if _unary(fn) else (lambda a, fn=fn: fn(a, a)), in_axes=1)(x)
        exp = fl.stack(ref)
        same = got == exp
        if exp.dtype.kind == "f":
            same = same | (fl.isnan(got) & fl.isnan(exp))
        assert got.dtype == exp.dtype and bool(fl.all(same)), name


def _unary(fn: Any) -> bool:
    import inspect

    return sum(1 for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_ONLY) == 1
