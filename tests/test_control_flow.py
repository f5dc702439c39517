"""Control flow primitives: cond, switch, while_loop, fori_loop, scan, map.

Values are checked against plain Python loops and ``if`` (the oracle for the forward pass),
derivatives against central finite differences, and, where jax is installed, everything
against ``jax.lax`` (reverse mode through ``while_loop`` has no jax oracle: jax refuses it).
The rule tables of tests/test_rules.py enrol the primitives too (jvp, vjp, second order, vmap).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn

F64 = fl.float64


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.tolist() if isinstance(x, fl.Tensor) else x, dtype=float)


def fd_grad(f: Any, x: fl.Tensor, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar function ``f`` at ``x`` (float64)."""
    xn = _np(x)
    g = np.zeros_like(xn)
    for i in range(xn.size):
        e = np.zeros_like(xn)
        e.flat[i] = eps
        g.flat[i] = (float(f(_t(xn + e))) - float(f(_t(xn - e)))) / (2 * eps)
    return g


def _t(a: Any) -> fl.Tensor:
    """A float64 Tensor on the default backend (the suite also runs on array_api_strict)."""
    return fl.asarray(np.asarray(a).tolist(), dtype=F64)


def close(a: Any, b: Any, tol: float = 1e-6) -> None:
    np.testing.assert_allclose(_np(a), _np(b), rtol=tol, atol=tol)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def t64(*shape: int, seed: int = 0) -> fl.Tensor:
    return _t(_rng(seed).normal(size=shape))


# ---------------------------------------------------------------------------------------
# scan
# ---------------------------------------------------------------------------------------
def _cell(w: fl.Tensor) -> Any:
    def cell(h: fl.Tensor, x: fl.Tensor) -> Any:
        h2 = fl.tanh(h * w + x)
        return h2, h2 * h

    return cell


def _loop(cell: Any, h: Any, xs: Any, reverse: bool = False) -> Any:
    ys = [None] * xs.shape[0]
    for i in reversed(range(xs.shape[0])) if reverse else range(xs.shape[0]):
        h, ys[i] = cell(h, xs[i])
    return h, fl.stack(ys)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_a_python_loop(reverse: bool) -> None:
    xs, w = t64(6, 3), t64(3, seed=1)
    h0 = fl.zeros(3, dtype=F64)
    h, ys = fl.scan(_cell(w), h0, xs, reverse=reverse)
    h_ref, ys_ref = _loop(_cell(w), h0, xs, reverse)
    close(h, h_ref)
    close(ys, ys_ref)


@pytest.mark.parametrize("checkpoint", [False, True, 4])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_grad_matches_finite_differences(reverse: bool, checkpoint: Any) -> None:
    xs, w = t64(9, 3), t64(3, seed=1)

    def loss(w: fl.Tensor) -> fl.Tensor:
        h, ys = fl.scan(_cell(w), fl.ones(3, dtype=F64), xs, reverse=reverse, checkpoint=checkpoint)
        return fl.sum(h) + fl.sum(ys * ys)

    close(fl.grad(loss)(w), fd_grad(loss, w))

    # the gradient wrt xs (scanned over) and the carry too
    def loss2(xs: fl.Tensor) -> fl.Tensor:
        h, ys = fl.scan(_cell(w), xs[0], xs, reverse=reverse, checkpoint=checkpoint)
        return fl.sum(h * h) + fl.sum(fl.sin(ys))

    close(fl.grad(loss2)(xs), fd_grad(loss2, xs))


def test_scan_composes_with_every_transform() -> None:
    xs, w = t64(5, 3), t64(3, seed=1)

    def f(w: fl.Tensor) -> fl.Tensor:
        h, ys = fl.scan(_cell(w), fl.ones(3, dtype=F64), xs)
        return fl.sum(h) + fl.sum(ys)

    def f_loop(w: fl.Tensor) -> fl.Tensor:
        h, ys = _loop(_cell(w), fl.ones(3, dtype=F64), xs)
        return fl.sum(h) + fl.sum(ys)

    ws = fl.stack([w, w * 0.5, -w])
    close(fl.jit(f)(w), f_loop(w))
    close(fl.jit(fl.grad(f))(w), fl.grad(f_loop)(w))
    close(fl.grad(fl.jit(f))(w), fl.grad(f_loop)(w))
    close(fl.vmap(f)(ws), fl.vmap(f_loop)(ws))
    close(fl.vmap(fl.grad(f))(ws), fl.vmap(fl.grad(f_loop))(ws))
    close(fl.jit(fl.vmap(fl.grad(f)))(ws), fl.vmap(fl.grad(f_loop))(ws))
    close(fl.hessian(f)(w), fl.hessian(f_loop)(w))
    close(fl.jacfwd(fl.grad(f))(w), fl.hessian(f_loop)(w))
    v = t64(3, seed=2)
    close(fl.jvp(f, (w,), (v,))[1], fl.jvp(f_loop, (w,), (v,))[1])
    prog = fl.make_program(fl.grad(f))(w)
    assert sum(e.prim.name == "scan" for e in prog.eqns) >= 2  # the forward and the backward loop
    close(prog(w), fl.grad(f_loop)(w))


def test_scan_body_is_traced_once() -> None:
    calls = []

    def body(c: fl.Tensor, x: fl.Tensor) -> Any:
        calls.append(1)
        return c + x, c

    fl.scan(body, fl.asarray(0.0), fl.arange(100.0))
    assert len(calls) == 1
    calls.clear()
    fl.grad(lambda x: fl.scan(body, fl.asarray(0.0), x)[0])(fl.arange(100.0))
    assert len(calls) == 1  # the rules transform the traced program, not the Python body


def test_scan_length_pytrees_and_int_carries() -> None:
    def body(c: Any, _: Any) -> Any:
        i, (a, b) = c
        return (i + 1, (a + b, b * 2.0)), {"i": i, "a": a}

    (i, (a, b)), ys = fl.scan(body, (fl.asarray(0), (fl.asarray(1.0), fl.asarray(1.0))), length=4)
    assert int(i) == 4 and float(a) == 16.0 and float(b) == 16.0
    assert ys["i"].tolist() == [0, 1, 2, 3] and ys["a"].tolist() == [1.0, 2.0, 4.0, 8.0]
    assert ys["i"].dtype == fl.int64 or ys["i"].dtype == fl.int32
    # zero steps: the carry unchanged and empty ys of the right shape
    c, ys = fl.scan(lambda c, x: (c + x, c * x), fl.zeros(2), fl.zeros((0, 2)))
    assert c.tolist() == [0.0, 0.0] and ys.shape == (0, 2)


def test_scan_closed_over_values_get_gradients() -> None:
    w = t64(3, seed=1)
    xs = t64(4, 3)

    def f(w: fl.Tensor) -> fl.Tensor:
        # w enters only through the closure of the body
        return fl.sum(fl.scan(lambda h, x: (fl.tanh(h * w + x), None), fl.zeros(3, dtype=F64), xs)[0])

    close(fl.grad(f)(w), fd_grad(f, w))


def test_scan_keeps_float32() -> None:
    xs = fl.ones((4, 3))
    w = fl.ones(3) * 0.5
    f = lambda w: fl.sum(fl.scan(lambda h, x: (h * w + x, h), fl.zeros(3), xs)[1])  # noqa: E731
    assert f(w).dtype == fl.float32
    assert fl.grad(f)(w).dtype == fl.float32
    assert fl.jit(fl.grad(f))(w).dtype == fl.float32
    assert fl.vmap(fl.grad(f))(fl.stack([w, w])).dtype == fl.float32


def test_scan_inside_an_nn_module_step() -> None:
    fl.manual_seed(0)
    cell = nn.Linear(3, 3)
    xs = fl.ones((5, 2, 3))

    def loss(model: Any) -> fl.Tensor:
        h, _ = fl.scan(lambda h, x: (fl.tanh(model(h) + x), None), fl.zeros((2, 3)), xs)
        return fl.mean(h * h)

    def loss_loop(model: Any) -> fl.Tensor:
        h = fl.zeros((2, 3))
        for x in xs:
            h = fl.tanh(model(h) + x)
        return fl.mean(h * h)

    v, g = nn.value_and_grad(cell, loss)(cell)
    v2, g2 = nn.value_and_grad(cell, loss_loop)(cell)
    close(v, v2, 1e-5)
    close(g["weight"], g2["weight"], 1e-5)
    close(g["bias"], g2["bias"], 1e-5)


def test_map() -> None:
    xs = t64(4, 3)
    close(fl.map(lambda r: fl.sum(fl.sin(r)), xs), fl.sum(fl.sin(xs), axis=1))
    f = lambda xs: fl.sum(fl.map(lambda r: fl.sum(r * r) * r[0], xs))  # noqa: E731
    close(fl.grad(f)(xs), fd_grad(f, xs))


# ---------------------------------------------------------------------------------------
# cond / switch
# ---------------------------------------------------------------------------------------
def test_cond_eager_runs_only_the_chosen_branch() -> None:
    ran = []

    def a(x: fl.Tensor) -> fl.Tensor:
        ran.append("a")
        return x + 1

    def b(x: fl.Tensor) -> fl.Tensor:
        ran.append("b")
        return x - 1

    assert float(fl.cond(fl.asarray(True), a, b, fl.asarray(1.0))) == 2.0
    assert float(fl.cond(False, a, b, fl.asarray(1.0))) == 0.0
    assert ran == ["a", "b"]


def _branchy(x: fl.Tensor) -> fl.Tensor:
    return fl.cond(fl.sum(x) > 0.0, lambda v: fl.sin(v) * v[0], lambda v: v * v, x)


def _branchy_py(x: fl.Tensor) -> fl.Tensor:
    return fl.sin(x) * x[0] if float(fl.sum(x)) > 0 else x * x


def test_cond_under_jit_chooses_at_run_time() -> None:
    f = fl.jit(_branchy)
    for x in (t64(3), -fl.abs(t64(3)), fl.abs(t64(3))):
        close(f(x), _branchy_py(x))
        close(fl.jit(fl.jacrev(_branchy))(x), fl.jacrev(_branchy_py)(x))
    assert f.cache_size() == 1


def test_cond_under_vmap_with_a_batched_predicate() -> None:
    xs = fl.stack([t64(3), -fl.abs(t64(3, seed=1)), fl.abs(t64(3, seed=2))])
    close(fl.vmap(_branchy)(xs), fl.stack([_branchy_py(x) for x in xs]))
    g = fl.vmap(fl.jacrev(_branchy))(xs)
    close(g, fl.stack([fl.jacrev(_branchy_py)(x) for x in xs]))
    s = lambda x: fl.sum(_branchy(x))  # noqa: E731
    for x in xs:
        close(fl.grad(s)(x), fd_grad(s, x))
    close(fl.jit(fl.vmap(_branchy))(xs), fl.stack([_branchy_py(x) for x in xs]))


def test_switch_clamps_and_batches() -> None:
    fs = [lambda x: x + 1.0, lambda x: x * 10.0, lambda x: -x]
    x = fl.asarray(2.0)
    assert [float(fl.switch(i, fs, x)) for i in (-3, 0, 1, 2, 7)] == [3.0, 3.0, 20.0, -2.0, -2.0]
    f = fl.jit(lambda i, x: fl.switch(i, fs, x))
    assert [float(f(fl.asarray(i), x)) for i in (-3, 1, 7)] == [3.0, 20.0, -2.0]
    out = fl.vmap(lambda i, x: fl.switch(i, fs, x))(fl.asarray([-1, 0, 1, 2, 5]), fl.ones(5))
    assert out.tolist() == [2.0, 2.0, 10.0, -1.0, -1.0]
    g = fl.vmap(fl.grad(lambda x, i: fl.switch(i, fs, x * x)), in_axes=(0, 0))(fl.ones(3) * 3.0, fl.asarray([0, 1, 2]))
    assert g.tolist() == [6.0, 60.0, -6.0]


# ---------------------------------------------------------------------------------------
# while_loop / fori_loop
# ---------------------------------------------------------------------------------------
def _decay(x: fl.Tensor) -> Any:
    """A loop whose trip count depends on the data: halve-and-wiggle until small."""

    def body(c: Any) -> Any:
        v, s = c
        return v * 0.5 + 0.05 * fl.sin(v), s + fl.sum(v * v)

    return fl.while_loop(lambda c: fl.sum(c[0] * c[0]) > 0.01, body, (x, fl.zeros((), dtype=x.dtype)))


def _decay_py(x: fl.Tensor) -> Any:
    v, s = x, fl.zeros((), dtype=x.dtype)
    while float(fl.sum(v * v)) > 0.01:
        v, s = v * 0.5 + 0.05 * fl.sin(v), s + fl.sum(v * v)
    return v, s


def test_while_loop_matches_python_while() -> None:
    for seed in range(3):
        x = t64(3, seed=seed) * 3
        for a, b in zip(_decay(x), _decay_py(x), strict=True):
            close(a, b)
        for a, b in zip(fl.jit(_decay)(x), _decay_py(x), strict=True):
            close(a, b)


def test_while_loop_reverse_mode() -> None:
    def loss(x: fl.Tensor) -> fl.Tensor:
        v, s = _decay(x)
        return fl.sum(v) + s

    def loss_py(x: fl.Tensor) -> fl.Tensor:
        v, s = _decay_py(x)
        return fl.sum(v) + s

    for seed in range(3):
        x = t64(3, seed=seed) * 3
        g = fl.grad(loss)(x)
        close(g, fd_grad(loss, x))
        close(g, fl.grad(loss_py)(x))
        close(fl.jit(fl.grad(loss))(x), g)
        close(fl.grad(fl.jit(loss))(x), g)
        # second order: forward over reverse and reverse over reverse
        h = fl.hessian(loss_py)(x)
        close(fl.jacfwd(fl.grad(loss))(x), h)
        close(fl.jacrev(fl.grad(loss))(x), h)


def test_while_loop_vmap_iterates_until_every_element_is_done() -> None:
    xs = fl.stack([t64(3, seed=s) * (s + 1) for s in range(4)])  # different trip counts

    def loss(x: fl.Tensor) -> fl.Tensor:
        v, s = _decay(x)
        return fl.sum(v) + s

    def loss_py(x: fl.Tensor) -> fl.Tensor:
        v, s = _decay_py(x)
        return fl.sum(v) + s

    close(fl.vmap(loss)(xs), fl.stack([loss_py(x) for x in xs]))
    ref = fl.stack([fl.grad(loss_py)(x) for x in xs])
    close(fl.vmap(fl.grad(loss))(xs), ref)
    close(fl.grad(lambda a: fl.sum(fl.vmap(loss)(a)))(xs), ref)
    close(fl.jit(fl.vmap(fl.grad(loss)))(xs), ref)
    tans = fl.ones_like(xs)
    jv = fl.vmap(lambda x, t: fl.jvp(loss, (x,), (t,))[1])(xs, tans)
    close(jv, fl.stack([fl.sum(r) for r in ref]))


def test_while_loop_reverse_mode_with_an_int_counter_and_zero_trips() -> None:
    def f(x: fl.Tensor, n: Any) -> fl.Tensor:
        return fl.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, fl.sin(c[1]) * 1.5), (fl.asarray(0), x))[1]

    x = t64(2)
    for n in (0, 1, 4):
        s = lambda x, n=n: fl.sum(f(x, n))  # noqa: E731
        close(fl.grad(s)(x), fd_grad(s, x))
    assert fl.grad(lambda x: fl.sum(f(x, 0)))(x).tolist() == [1.0, 1.0]


def test_fori_loop_static_and_traced_bounds() -> None:
    body = lambda i, v: v * 1.1 + fl.astype(i, v.dtype)  # noqa: E731
    x = fl.asarray(0.5, dtype=F64)
    ref = x
    for i in range(2, 7):
        ref = ref * 1.1 + i
    close(fl.fori_loop(2, 7, body, x), ref)
    close(fl.jit(lambda lo, hi, v: fl.fori_loop(lo, hi, body, v))(fl.asarray(2), fl.asarray(7), x), ref)
    assert float(fl.fori_loop(5, 2, body, x)) == 0.5
    g = fl.grad(lambda v: fl.fori_loop(0, 5, lambda i, v: v * v, v))(fl.asarray(1.01, dtype=F64))
    close(g, 32 * 1.01**31)
    gj = fl.jit(fl.grad(lambda v, n: fl.fori_loop(0, n, lambda i, v: v * v, v)))(
        fl.asarray(1.01, dtype=F64), fl.asarray(5)
    )
    close(gj, 32 * 1.01**31)
    prog = fl.make_program(lambda n, v: fl.fori_loop(0, n, body, v))(fl.asarray(3), x)
    assert [e.prim.name for e in prog.eqns].count("while_loop") == 1
    prog = fl.make_program(lambda v: fl.fori_loop(0, 3, body, v))(x)
    assert [e.prim.name for e in prog.eqns].count("scan") == 1


def test_nested_control_flow() -> None:
    def f(x: fl.Tensor) -> fl.Tensor:
        def outer(c: fl.Tensor, xi: fl.Tensor) -> Any:
            inner = fl.while_loop(lambda v: fl.sum(v * v) < 4.0, lambda v: v * 1.5 + 0.1, c + xi)
            return fl.cond(fl.sum(inner) > 0, lambda a: a * 0.5, lambda a: -a * 0.25, inner), fl.sum(inner)

        c, ys = fl.scan(outer, x[0], x)
        return fl.sum(c) + fl.sum(ys)

    def f_py(x: fl.Tensor) -> fl.Tensor:
        c = x[0]
        ys = []
        for xi in x:
            v = c + xi
            while float(fl.sum(v * v)) < 4.0:
                v = v * 1.5 + 0.1
            c = v * 0.5 if float(fl.sum(v)) > 0 else -v * 0.25
            ys.append(fl.sum(v))
        return fl.sum(c) + sum(ys)

    x = t64(3, 2) * 0.3
    close(f(x), f_py(x))
    close(fl.jit(f)(x), f_py(x))
    close(fl.grad(f)(x), fl.grad(f_py)(x))
    close(fl.jit(fl.grad(f))(x), fl.grad(f_py)(x))
    xs = fl.stack([x, x * 2])
    close(fl.vmap(fl.grad(f))(xs), fl.stack([fl.grad(f_py)(r) for r in xs]))


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------
def test_errors_name_the_primitive_and_the_fix() -> None:
    E = fl.ControlFlowError
    assert issubclass(E, fl.TransformError)
    x = fl.ones(3)
    with pytest.raises(E, match=r"scan: the body returned a carry with shapes/dtypes \[float32\[1\]\].*float32\[3\]"):
        fl.scan(lambda c, x: (fl.sum(c, keepdims=True), None), x, fl.ones((2, 1)))
    with pytest.raises(E, match="scan: the body returned a carry of structure"):
        fl.scan(lambda c, x: ((c, c), None), x, fl.ones((2, 1)))
    with pytest.raises(E, match=r"scan: .*float64.*float32|scan: .*float32.*float64"):
        fl.scan(lambda c, x: (fl.astype(c, fl.float64), None), x, fl.ones((2, 1)))
    with pytest.raises(E, match=r"scan: the body must return a pair \(carry, y\)"):
        fl.scan(lambda c, x: c, x, fl.ones((2, 1)))
    with pytest.raises(E, match="different lengths"):
        fl.scan(lambda c, x: (c, None), x, (fl.ones(2), fl.ones(3)))
    with pytest.raises(E, match="length=4 but xs has leading axis 2"):
        fl.scan(lambda c, x: (c, None), x, fl.ones(2), length=4)
    with pytest.raises(E, match="xs=None, pass length"):
        fl.scan(lambda c, x: (c, None), x)
    with pytest.raises(E, match="checkpoint must be"):
        fl.scan(lambda c, x: (c, None), x, fl.ones(2), checkpoint=0)
    with pytest.raises(E, match=r"cond: the branches return different structures.*false_fun.*true_fun"):
        fl.jit(lambda v: fl.cond(fl.sum(v) > 0, lambda a: (a, a), lambda a: a, v))(x)
    with pytest.raises(E, match=r"cond: the branches return different .*float32\[\]\].*float32\[3\]\]"):
        fl.jit(lambda v: fl.cond(fl.sum(v) > 0, lambda a: a, lambda a: fl.sum(a), v))(x)
    with pytest.raises(E, match=r"cond: pred: needs a boolean scalar.*shape \(3,\)"):
        fl.cond(x > 0, lambda a: a, lambda a: a, x)
    with pytest.raises(E, match=r"cond: pred: needs a boolean scalar.*float32"):
        fl.cond(fl.sum(x), lambda a: a, lambda a: a, x)
    with pytest.raises(E, match="switch: index: needs an integer scalar"):
        fl.switch(fl.asarray(1.0), [lambda a: a], x)
    with pytest.raises(E, match="switch: branches must be a non-empty"):
        fl.switch(0, [], x)
    with pytest.raises(E, match="while_loop: cond_fun's result: needs a boolean scalar"):
        fl.while_loop(lambda v: v < 3, lambda v: v + 1, x)
    with pytest.raises(E, match="while_loop: body_fun returned structure"):
        fl.while_loop(lambda v: fl.sum(v) < 3, lambda v: (v, v), x)
    with pytest.raises(E, match="while_loop: the body returned a carry"):
        fl.while_loop(lambda v: fl.sum(v) < 3, lambda v: fl.astype(v, fl.int32), x)
    with pytest.raises(E, match="global random generator"):
        fl.scan(lambda c, _: (c + fl.random.normal(fl.random.next_key(), (3,)), None), x, length=2)
    with pytest.raises(fl.ConcretizationError, match="scan"):
        fl.scan(lambda c, x: (c + 1 if float(x) > 0 else c, None), x, fl.ones(2))


def test_a_failed_trace_leaves_nothing_behind() -> None:
    from functorch_lite._core.engine import active_traces

    fl.manual_seed(3)
    k = fl.random._GLOBAL.key
    with pytest.raises(fl.ControlFlowError):
        fl.scan(lambda c, _: (c + fl.random.normal(fl.random.next_key(), (3,)), None), fl.ones(3), length=2)
    assert fl.random._GLOBAL.key is k and not active_traces()
    assert float(fl.scan(lambda c, x: (c + x, None), fl.asarray(0.0), fl.ones(3))[0]) == 3.0


# ---------------------------------------------------------------------------------------
# Against jax.lax, where installed
# ---------------------------------------------------------------------------------------
@pytest.fixture
def jax() -> Any:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def test_against_jax_lax(jax: Any) -> None:
    jnp = jax.numpy
    lax = jax.lax
    xs_np = _rng(0).normal(size=(7, 3))
    w_np = _rng(1).normal(size=3)

    def f_j(w: Any) -> Any:
        h, ys = lax.scan(lambda h, x: (jnp.tanh(h * w + x), jnp.sin(h) * x), jnp.ones(3), xs_np, reverse=True)
        h = lax.cond(jnp.sum(h) > 0, lambda a: a * 2.0, lambda a: -a, h)
        h = lax.fori_loop(0, 3, lambda i, a: a * 0.9 + i, h)
        h = lax.switch(2, [jnp.sin, jnp.cos, lambda a: a * a], h)
        return jnp.sum(h) + jnp.sum(ys * ys)

    def f_f(w: Any) -> Any:
        xs = _t(xs_np)
        h, ys = fl.scan(lambda h, x: (fl.tanh(h * w + x), fl.sin(h) * x), fl.ones(3, dtype=F64), xs, reverse=True)
        h = fl.cond(fl.sum(h) > 0, lambda a: a * 2.0, lambda a: -a, h)
        h = fl.fori_loop(0, 3, lambda i, a: a * 0.9 + fl.astype(i, a.dtype), h)
        h = fl.switch(2, [fl.sin, fl.cos, lambda a: a * a], h)
        return fl.sum(h) + fl.sum(ys * ys)

    w = _t(w_np)
    close(f_f(w), f_j(jnp.asarray(w_np)))
    close(fl.grad(f_f)(w), jax.grad(f_j)(jnp.asarray(w_np)))
    close(fl.jit(fl.grad(f_f))(w), jax.jit(jax.grad(f_j))(jnp.asarray(w_np)))
    close(fl.hessian(f_f)(w), jax.hessian(f_j)(jnp.asarray(w_np)), 1e-5)
    ws = np.stack([w_np, -w_np, w_np * 0.3])
    close(fl.vmap(fl.grad(f_f))(_t(ws)), jax.vmap(jax.grad(f_j))(jnp.asarray(ws)))

    # while_loop: values and forward mode (jax has no reverse mode through it), batched too
    def w_j(x: Any) -> Any:
        return lax.while_loop(lambda v: jnp.sum(v * v) < 10.0, lambda v: v * 1.3 + jnp.sin(v), x)

    def w_f(x: Any) -> Any:
        return fl.while_loop(lambda v: fl.sum(v * v) < 10.0, lambda v: v * 1.3 + fl.sin(v), x)

    xb = _rng(2).normal(size=(4, 3)) * [[0.1], [0.5], [1.0], [2.0]]
    close(fl.vmap(w_f)(_t(xb)), jax.vmap(w_j)(jnp.asarray(xb)))
    tj = jax.jvp(w_j, (jnp.asarray(xb[0]),), (jnp.ones(3),))[1]
    close(fl.jvp(w_f, (_t(xb[0]),), (fl.ones(3, dtype=F64),))[1], tj)
    # reverse mode here equals jax's forward-mode Jacobian
    jf = jax.jacfwd(w_j)(jnp.asarray(xb[1]))
    close(fl.jacrev(w_f)(_t(xb[1])), jf)


def test_backends_replay_the_bodies_on_their_namespace() -> None:
    from functorch_lite._backend import available_backends

    for name in available_backends():
        if name in ("numpy",):
            continue
        with fl.default_backend(name):
            xs = fl.ones((4, 2))
            f = lambda w: fl.sum(fl.scan(lambda h, x: (fl.tanh(h * w + x), None), fl.zeros(2), xs)[0])  # noqa: E731
            w = fl.ones(2) * 0.5
            g = fl.grad(f)(w)
            assert g._xp is w._xp
            h = fl.while_loop(lambda v: fl.sum(v) < 10.0, lambda v: v * 2.0, w)
            assert float(fl.sum(h)) == 16.0


def test_programs_print_their_bodies() -> None:
    def f(c0, xs):
        c, _ = fl.scan(lambda c, x: (fl.tanh(c * 0.9 + x), fl.sum(c)), c0, xs)
        return fl.cond(fl.sum(c) > 0, lambda v: v * 2.0, lambda v: v - 1.0, c)

    text = str(fl.make_program(f)(fl.ones((3,)), fl.ones((4, 3))))
    assert "<program>" not in text
    assert "scan[" in text and "body={ lambda ; a:f32[3] b:f32[3]. let" in text
    assert "tanh" in text and "branches[0]={ lambda" in text and "subtract a 1.0" in text
