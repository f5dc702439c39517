"""Composition of the transforms, pytrees, options (in_axes, chunk_size, has_aux, argnums),
mutation under transforms, escaped tracers, threads, and the transforms' typed errors."""

from __future__ import annotations

import threading
from collections import namedtuple
from typing import Any

import pytest
from _strategies import assert_close

import functorch_lite as fl

F64 = fl.float64


def a64(x: Any) -> fl.Tensor:
    return fl.asarray(x, dtype=F64)


X = a64([0.3, -1.2, 0.8])
M = a64([[0.5, -0.2, 0.1], [0.3, 0.9, -0.7]])


def f_vec(x: Any) -> Any:
    return fl.sin(x) * fl.exp(x * 0.5) + x * x * x


def f_scalar(x: Any) -> Any:
    return fl.sum(f_vec(x) * fl.tanh(x))


def fd_grad(f: Any, x: fl.Tensor, eps: float = 1e-6) -> fl.Tensor:
    rows = []
    for i in range(x.shape[0]):
        e = fl.zeros_like(x)
        e[i] = 1.0
        rows.append((f(x + e * eps) - f(x - e * eps)) / (2 * eps))
    return fl.stack(rows, axis=-1 if rows[0].ndim else 0)


# ---------------------------------------------------------------------------------------
# Compositions
# ---------------------------------------------------------------------------------------
def test_grad_of_grad() -> None:
    g2 = fl.grad(fl.grad(lambda x: x**3 * fl.sin(x)))
    x = 0.7
    exact = 6 * x * fl.sin(a64(x)) + 6 * x**2 * fl.cos(a64(x)) - x**3 * fl.sin(a64(x))
    assert_close(g2(a64(x)), exact, rtol=1e-12)
    g3 = fl.grad(fl.grad(fl.grad(lambda x: fl.exp(x * 2.0))))
    assert_close(g3(a64(0.3)), 8 * fl.exp(a64(0.6)), rtol=1e-12)


def test_hessian_matches_finite_differences() -> None:
    h = fl.hessian(f_scalar)(X)
    assert h.shape == (3, 3)
    assert_close(h, fd_grad(fl.grad(f_scalar), X), rtol=1e-5, atol=1e-6)
    assert_close(h, h.mT, rtol=1e-10)


def test_vmap_of_grad_and_grad_of_vmap() -> None:
    per = fl.vmap(fl.grad(f_scalar))(M)
    assert_close(per, fl.stack([fl.grad(f_scalar)(M[i]) for i in range(2)]), rtol=1e-12)
    g = fl.grad(lambda m: fl.sum(fl.vmap(f_scalar)(m)))(M)
    assert_close(g, per, rtol=1e-12)
    g1 = fl.grad(lambda m: fl.sum(fl.vmap(f_scalar, in_axes=1)(m)))(M)
    assert_close(g1, fl.stack([fl.grad(f_scalar)(M[:, j]) for j in range(3)], axis=1), rtol=1e-12)


def test_jacfwd_of_jacrev_and_variants() -> None:
    h1 = fl.jacfwd(fl.jacrev(f_scalar))(X)
    h2 = fl.jacrev(fl.jacfwd(f_scalar))(X)
    h3 = fl.jacrev(fl.jacrev(f_scalar))(X)
    h4 = fl.jacfwd(fl.jacfwd(f_scalar))(X)
    for h in (h2, h3, h4):
        assert_close(h, h1, rtol=1e-10)
    j = fl.jacrev(f_vec)(X)
    assert_close(j, fl.jacfwd(f_vec)(X), rtol=1e-12)
    assert_close(j, fd_grad(f_vec, X), rtol=1e-6)


def test_vmap_of_vmap() -> None:
    x = fl.reshape(fl.arange(24, dtype=F64), (2, 3, 4)) * 0.1
    out = fl.vmap(fl.vmap(lambda r: fl.sum(r * r)))(x)
    assert_close(out, fl.sum(x * x, axis=-1))
    out = fl.vmap(fl.vmap(lambda r: fl.sum(r), in_axes=1), in_axes=2)(x)  # inner maps axis 1 of (2, 3)
    assert out.shape == (4, 3)
    assert_close(out, fl.permute_dims(fl.sum(x, axis=0), (1, 0)))
    y = a64([1.0, 2.0])
    outer = fl.vmap(fl.vmap(lambda a, b: a * b, in_axes=(None, 0)), in_axes=(0, None))(y, X)
    assert_close(outer, fl.linalg.outer(y, X) if hasattr(fl, "linalg") else y[:, None] * X[None, :])


def test_jvp_of_vjp_and_vjp_of_jvp() -> None:
    # order 2: jvp and vjp of x -> jvp(f_vec, x, t)[1] and of x -> vjp(f_vec, x)[1](u), entry by
    # entry against central differences (fl.testing.check_grads)
    fl.testing.check_grads(f_vec, (X,), order=2, rtol=1e-5, atol=1e-7, eps=1e-6)


def test_perturbation_confusion() -> None:
    r = fl.grad(lambda x: x * fl.grad(lambda y: x + y)(1.0))(1.0)
    assert float(r) == 1.0
    r2 = fl.grad(lambda x: x * fl.grad(lambda y: x * y)(2.0))(3.0)  # d/dx x * x = 2x
    assert float(r2) == 6.0
    _, t = fl.jvp(lambda x: x * fl.jvp(lambda y: x * y, (a64(1.0),), (a64(1.0),))[1], (a64(3.0),), (a64(1.0),))
    assert float(t) == 6.0


# ---------------------------------------------------------------------------------------
# pytrees, in_axes / out_axes prefixes
# ---------------------------------------------------------------------------------------
Point = namedtuple("Point", ["x", "y"])


def test_pytrees_in_and_out() -> None:
    params = {"w": a64([1.0, 2.0]), "b": {"c": a64(0.5), "d": [a64([3.0])]}}

    def loss(p: Any) -> Any:
        return fl.sum(p["w"] ** 2) * p["b"]["c"] + fl.sum(p["b"]["d"][0] * p["w"][0])

    g = fl.grad(loss)(params)
    assert set(g) == {"w", "b"} and isinstance(g["b"]["d"], list)
    assert_close(g["w"], a64([2.0 * 0.5 + 3.0, 4.0 * 0.5]))
    assert_close(g["b"]["c"], a64(5.0))
    assert_close(g["b"]["d"][0], a64([1.0]))

    pt = Point(a64([1.0, 2.0]), a64([3.0, 4.0]))
    gp = fl.grad(lambda p: fl.sum(p.x * p.y))(pt)
    assert isinstance(gp, Point)
    assert_close(gp.x, pt.y)
    out = fl.vmap(lambda p: {"s": p.x + p.y, "t": (p.x * p.y, p.x)})(pt)
    assert_close(out["s"], a64([4.0, 6.0]))
    assert_close(out["t"][0], a64([3.0, 8.0]))
    jac = fl.jacrev(lambda p: {"a": p.x * p.y})(pt)
    assert isinstance(jac["a"], Point) and jac["a"].x.shape == (2, 2)
    primal, tangent = fl.jvp(lambda d: d["u"] * 2.0, ({"u": X},), ({"u": fl.ones_like(X)},))
    assert_close(tangent, fl.full_like(X, 2.0))


def test_in_axes_out_axes_prefixes() -> None:
    d = {"a": fl.reshape(fl.arange(6, dtype=F64), (2, 3)), "b": fl.reshape(fl.arange(6, dtype=F64), (3, 2))}
    out = fl.vmap(lambda t, s: t["a"] + t["b"] * s, in_axes=({"a": 1, "b": 0}, None))(d, 2.0)
    assert_close(out, fl.matrix_transpose(d["a"]) + d["b"] * 2.0)
    out2 = fl.vmap(lambda t: (t["a"], t["b"]), in_axes=({"a": 0, "b": 1},), out_axes=(1, 0))(d)
    assert_close(out2[0], fl.matrix_transpose(d["a"]))
    assert_close(out2[1], fl.matrix_transpose(d["b"]))
    xs = [a64([1.0, 2.0]), a64([3.0, 4.0])]
    out3 = fl.vmap(lambda ls: ls[0] * ls[1], in_axes=[0])(xs)  # a list of in_axes is a prefix too
    assert_close(out3, a64([3.0, 8.0]))
    out4 = fl.vmap(lambda x: {"k": x, "c": fl.sum(X)}, out_axes={"k": 0, "c": None})(X)
    assert_close(out4["c"], fl.sum(X))


# ---------------------------------------------------------------------------------------
# chunk_size, has_aux, argnums, allow_int
# ---------------------------------------------------------------------------------------
def test_chunk_size() -> None:
    x = fl.reshape(fl.arange(10, dtype=F64), (5, 2)) * 0.1
    ref = fl.vmap(f_scalar)(x)
    for c in (1, 2, 3, 5, 7):
        assert_close(fl.vmap(f_scalar, chunk_size=c)(x), ref, rtol=1e-12)
        assert_close(fl.vmap(f_vec, chunk_size=c, in_axes=1, out_axes=1)(x), fl.vmap(f_vec, in_axes=1, out_axes=1)(x))
    j = fl.jacrev(f_vec)(X)
    for c in (1, 2):
        assert_close(fl.jacrev(f_vec, chunk_size=c)(X), j, rtol=1e-12)
        assert_close(fl.jacfwd(f_vec, chunk_size=c)(X), j, rtol=1e-12)
    nested = fl.vmap(fl.jacrev(f_vec, chunk_size=2), chunk_size=2)(M)
    assert_close(nested, fl.stack([j_ for j_ in (fl.jacrev(f_vec)(M[0]), fl.jacrev(f_vec)(M[1]))]), rtol=1e-12)
    with pytest.raises(fl.TransformError, match="chunk_size"):
        fl.vmap(f_vec, chunk_size=0)


def test_has_aux_everywhere() -> None:
    def f(x: Any) -> Any:
        return fl.sum(x * x), {"aux": x * 2.0}

    def fv(x: Any) -> Any:
        return x * x, x + 1.0

    g, aux = fl.grad(f, has_aux=True)(X)
    assert_close(g, X * 2.0)
    assert_close(aux["aux"], X * 2.0)
    assert not aux["aux"].is_tracer
    (v, aux2), g2 = fl.value_and_grad(f, has_aux=True)(X)
    assert_close(v, fl.sum(X * X))
    out, pull, aux3 = fl.vjp(fv, X, has_aux=True)
    assert_close(pull(fl.ones_like(X))[0], X * 2.0)
    assert_close(aux3, X + 1.0)
    _, t, aux4 = fl.jvp(fv, (X,), (fl.ones_like(X),), has_aux=True)
    assert_close(t, X * 2.0)
    assert_close(aux4, X + 1.0)
    jr, a5 = fl.jacrev(fv, has_aux=True)(X)
    jf, a6 = fl.jacfwd(fv, has_aux=True)(X)
    assert_close(jr, jf)
    assert_close(a5, X + 1.0)
    assert_close(a6, X + 1.0)
    h, a7 = fl.hessian(f, has_aux=True)(X)
    assert h.shape == (3, 3)
    gg, a8 = fl.vmap(fl.grad(f, has_aux=True))(M)
    assert_close(gg, M * 2.0)
    assert_close(a8["aux"], M * 2.0)
    with pytest.raises(fl.TransformError, match="has_aux"):
        fl.grad(lambda x: fl.sum(x), has_aux=True)(X)


def test_argnums() -> None:
    def f(a: Any, b: Any, c: Any) -> Any:
        return fl.sum(a * b * b + c)

    ga, gc = fl.grad(f, argnums=(0, 2))(X, X, X)
    assert_close(ga, X * X)
    assert_close(gc, fl.ones_like(X))
    gb = fl.grad(f, argnums=-2)(X, X, X)
    assert_close(gb, 2.0 * X * X)
    (gx,) = fl.grad(f, argnums=(1,))(X, X, X)
    assert_close(gx, gb)
    ja, jb = fl.jacrev(lambda a, b: a * b, argnums=(0, 1))(X, M[0])
    assert_close(ja, fl.linalg.diagonal(ja)[..., None] * fl.eye(3, dtype=F64) if False else ja)
    jfa, jfb = fl.jacfwd(lambda a, b: a * b, argnums=(0, 1))(X, M[0])
    assert_close(ja, jfa)
    assert_close(jb, jfb)
    assert_close(jb, fl.eye(3, dtype=F64) * X)


def test_allow_int() -> None:
    i = fl.asarray([1, 2, 3])
    with pytest.raises(fl.TransformError, match="allow_int"):
        fl.grad(lambda i, x: fl.sum(x))(i, X)
    gi, gx = fl.grad(lambda i, x: fl.sum(x * fl.astype(i, F64)), argnums=(0, 1), allow_int=True)(i, X)
    assert gi.shape == (3,)
    assert float(fl.sum(fl.abs(fl.astype(gi, F64)))) == 0.0
    assert_close(gx, a64([1.0, 2.0, 3.0]))
    assert_close(fl.grad(lambda x, i: fl.sum(x[i]))(X, fl.asarray([0, 0, 2])), a64([2.0, 0.0, 1.0]))


def test_linearize_evaluates_once() -> None:
    calls = []

    def f(x: Any) -> Any:
        calls.append(1)
        return f_vec(x)

    out, f_jvp = fl.linearize(f, X)
    assert len(calls) == 1
    assert_close(out, f_vec(X))
    for v in (fl.ones_like(X), a64([0.1, 0.2, -0.3])):
        assert_close(f_jvp(v), fl.jvp(f_vec, (X,), (v,))[1], rtol=1e-12)
    assert len(calls) == 1
    out2, f_jvp2 = fl.linearize(lambda a, b: a * b + fl.sin(a), X, M[0])
    assert_close(f_jvp2(fl.ones_like(X), fl.zeros_like(X)), M[0] + fl.cos(X))


def test_stop_gradient() -> None:
    g = fl.grad(lambda x: fl.sum(x * fl.stop_gradient(x * x)))(X)
    assert_close(g, X * X)
    _, t = fl.jvp(lambda x: fl.stop_gradient(x) * x, (X,), (fl.ones_like(X),))
    assert_close(t, X)
    tree = fl.stop_gradient({"a": X, "b": 3})
    assert tree["b"] == 3
    h = fl.hessian(lambda x: fl.sum(fl.stop_gradient(x) * x * x))(X)
    assert_close(h, fl.eye(3, dtype=F64) * 2.0 * X)
    assert_close(fl.vmap(fl.grad(lambda x: fl.sum(fl.stop_gradient(x) * x)))(M), M)


# ---------------------------------------------------------------------------------------
# Mutation inside transforms
# ---------------------------------------------------------------------------------------
def _fill(x: Any) -> Any:
    buf = fl.zeros((4,), dtype=x.dtype)
    buf[0] = x[0] * 2.0
    buf[1:3] = x[1:] * x[1:]
    buf[fl.asarray([3])] = fl.sum(x)
    buf += x[0]
    buf *= 2.0
    acc = fl.zeros((), dtype=x.dtype)
    for i in range(4):
        acc += buf[i] * (i + 1)
    return acc


def test_mutation_inside_grad_and_vmap() -> None:
    g = fl.grad(_fill)(X)
    assert_close(g, fd_grad(_fill, X), rtol=1e-6)
    per = fl.vmap(_fill)(M)
    assert_close(per, fl.stack([_fill(M[0]), _fill(M[1])]))
    pg = fl.vmap(fl.grad(_fill))(M)
    assert_close(pg, fl.stack([fl.grad(_fill)(M[0]), fl.grad(_fill)(M[1])]), rtol=1e-12)
    assert_close(fl.jacfwd(_fill)(X), g, rtol=1e-12)
    h = fl.hessian(_fill)(X)
    assert_close(h, fd_grad(fl.grad(_fill), X), rtol=1e-5, atol=1e-6)


def test_mutation_does_not_touch_the_caller() -> None:
    x = a64([1.0, 2.0, 3.0])
    alias = x

    def f(y: Any) -> Any:
        y[0] = 10.0  # rebinding the tracer, not the caller's Tensor
        y += 1.0
        return fl.sum(y * y)

    assert_close(fl.grad(f)(x), a64([0.0, 6.0, 8.0]))
    assert x.tolist() == [1.0, 2.0, 3.0] and alias is x and not x.is_tracer
    z = fl.zeros((3,), dtype=F64)
    y = z
    z[1] = 5.0
    assert y.tolist() == [0.0, 5.0, 0.0]  # in-place: the same object holds the new value


def test_closed_over_tensor_mutated_inside_transform_is_reported() -> None:
    state = fl.zeros((3,), dtype=F64)

    def f(x: Any) -> Any:
        state[0] = x[0]
        return fl.sum(x)

    fl.grad(f)(X)
    with pytest.raises(fl.EscapedTracerError, match="grad"):
        state + 1.0
    buf = fl.zeros((3,), dtype=F64)

    def h(x: Any) -> Any:
        buf[1] = x[0]  # a closed-over buffer becomes batched inside vmap
        return x * 2.0

    assert_close(fl.vmap(h)(M), M * 2.0)
    with pytest.raises(fl.EscapedTracerError, match="vmap"):
        fl.sum(buf)


# ---------------------------------------------------------------------------------------
# Escaped tracers and threads
# ---------------------------------------------------------------------------------------
def test_escaped_tracer() -> None:
    leaked = []

    def f(x: Any) -> Any:
        leaked.append(x * 2.0)
        return fl.sum(x)

    fl.grad(f)(X)
    with pytest.raises(fl.EscapedTracerError) as ei:
        fl.sin(leaked[0])
    assert "grad" in str(ei.value) and "escaped" in str(ei.value)
    fl.vmap(f)(M)
    with pytest.raises(fl.EscapedTracerError, match="vmap"):
        leaked[1] + 1.0
    fl.jvp(f, (X,), (X,))
    with pytest.raises(fl.EscapedTracerError, match="jvp"):
        fl.sum(leaked[2])


def test_thread_safety() -> None:
    errors: list[BaseException] = []
    results: dict[str, list[Any]] = {"grad": [], "vmap": []}
    barrier = threading.Barrier(2)

    def run_grad() -> None:
        try:
            barrier.wait()
            for _ in range(30):
                results["grad"].append(fl.grad(fl.grad(lambda x: fl.sum(x**3)))(a64(2.0)))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def run_vmap() -> None:
        try:
            barrier.wait()
            for _ in range(30):
                results["vmap"].append(fl.vmap(fl.grad(f_scalar))(M))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    import sys

    ts = [threading.Thread(target=run_grad), threading.Thread(target=run_vmap)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so the two transforms interleave
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert all(float(r) == 12.0 for r in results["grad"])
    ref = fl.vmap(fl.grad(f_scalar))(M)
    for r in results["vmap"]:
        assert_close(r, ref, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# Typed errors
# ---------------------------------------------------------------------------------------
def test_grad_of_non_scalar() -> None:
    with pytest.raises(fl.NonScalarOutputError) as ei:
        fl.grad(lambda x: x * 2.0)(X)
    msg = str(ei.value)
    assert "(3,)" in msg and "jacrev" in msg
    assert isinstance(ei.value, fl.TransformError) and isinstance(ei.value, ValueError)
    with pytest.raises(fl.NonScalarOutputError, match="jacrev"):
        fl.vmap(fl.grad(lambda x: x))(M)


def test_vmap_sizes_disagree() -> None:
    with pytest.raises(fl.BatchAxisError) as ei:
        fl.vmap(lambda a, b: a + b)(fl.ones((2, 3)), fl.ones((3, 3)))
    msg = str(ei.value)
    assert "args[0]" in msg and "args[1]" in msg and "2" in msg and "3" in msg
    with pytest.raises(fl.BatchAxisError, match=r"args\[0\]\.b"):
        fl.vmap(lambda d: d["a"] + d["b"])({"a": fl.ones((2,)), "b": fl.ones((3,))})


def test_in_axes_mismatch() -> None:
    with pytest.raises(fl.BatchAxisError, match="in_axes"):
        fl.vmap(lambda a, b: a + b, in_axes=(0,))(X, X)
    with pytest.raises(fl.BatchAxisError, match="in_axes"):
        fl.vmap(lambda d: d["a"], in_axes=({"zz": 0},))({"a": X})
    with pytest.raises(fl.BatchAxisError, match="out of range"):
        fl.vmap(lambda a: a, in_axes=2)(X)
    with pytest.raises(fl.BatchAxisError, match="axis_size"):
        fl.vmap(lambda a: a, in_axes=None)(X)
    with pytest.raises(fl.BatchAxisError, match="out_axes"):
        fl.vmap(lambda a: a, out_axes=None)(X)


def test_argnums_out_of_range() -> None:
    with pytest.raises(fl.TransformError) as ei:
        fl.grad(lambda a, b: fl.sum(a * b), argnums=2)(X, X)
    assert "argnums" in str(ei.value) and "2" in str(ei.value)
    with pytest.raises(fl.TransformError, match="argnums"):
        fl.jacrev(lambda a: a, argnums=(0, 1))(X)
    with pytest.raises(fl.TransformError, match="argnums"):
        fl.jacfwd(lambda a: a, argnums=-2)(X)


def test_cotangent_of_wrong_shape_or_dtype() -> None:
    _, pull = fl.vjp(lambda x: x * 2.0, X)
    with pytest.raises(fl.TransformError) as ei:
        pull(fl.ones((2,), dtype=F64))
    assert "(2,)" in str(ei.value) and "(3,)" in str(ei.value)
    with pytest.raises(fl.TransformError, match="dtype"):
        pull(fl.asarray([1, 2, 3]))
    with pytest.raises(fl.TransformError, match="structure"):
        pull((X, X))
    with pytest.raises(fl.TransformError, match="shape"):
        fl.jvp(lambda x: x, (X,), (fl.ones((2,)),))
    with pytest.raises(fl.TransformError, match="tuple"):
        fl.jvp(lambda x: x, X, X)


def test_errors_are_typed_builtins() -> None:
    assert issubclass(fl.BatchAxisError, ValueError)
    assert issubclass(fl.EscapedTracerError, RuntimeError)
    assert issubclass(fl.DataDependentShapeError, RuntimeError)


def test_value_dependent_python_control_flow_under_vmap() -> None:
    with pytest.raises(fl.TransformError, match="where"):
        fl.vmap(lambda x: x if float(fl.sum(x)) > 0 else -x)(M)


# ---------------------------------------------------------------------------------------
# Against torch.func where torch is installed
# ---------------------------------------------------------------------------------------
def test_compare_with_torch_func() -> None:
    torch = pytest.importorskip("torch")
    tf = torch.func
    import numpy as np

    rng = np.random.default_rng(0)
    xs = rng.standard_normal((4, 3))

    def fl_f(x: Any) -> Any:
        return fl.sum(fl.tanh(x) * fl.sin(x * 2.0) + x * x)

    def t_f(x: Any) -> Any:
        return (torch.tanh(x) * torch.sin(x * 2.0) + x * x).sum()

    xt = torch.asarray(xs)
    xf = fl.asarray(xs.tolist(), dtype=F64)
    cases = [
        (fl.vmap(fl.grad(fl_f)), tf.vmap(tf.grad(t_f))),
        (fl.vmap(fl.hessian(fl_f)), tf.vmap(tf.hessian(t_f))),
        (fl.jacrev(fl.vmap(fl.grad(fl_f))), tf.jacrev(tf.vmap(tf.grad(t_f)))),
        (fl.vmap(fl.jacfwd(fl.grad(fl_f))), tf.vmap(tf.jacfwd(tf.grad(t_f)))),
    ]
    for a, b in cases:
        np.testing.assert_allclose(np.asarray(a(xf).tolist()), b(xt).detach().numpy(), rtol=1e-10, atol=1e-12)
