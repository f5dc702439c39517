"""The rest of the transform API: grad's ``argnames``, ``linear_transpose``, ``hessian(chunk_size=)``
and ``fl.testing.check_grads``, against hand-derived values and finite differences.

Everything runs on the default backend of the run (numpy, or array_api_strict with
``FUNCTORCH_LITE_BACKEND=array_api_strict``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from _strategies import assert_close

import functorch_lite as fl
from functorch_lite.nn import functional as F

F64 = fl.float64


def a64(x: Any) -> fl.Tensor:
    return fl.asarray(x, dtype=F64)


X = a64([0.3, -1.2, 0.8])
W = a64([1.5, 0.5, -2.0])
B = a64(0.25)


def fd_grad(f: Any, x: fl.Tensor, eps: float = 1e-6) -> fl.Tensor:
    """Central differences of scalar ``f`` along each entry of 1-d ``x`` (the oracle)."""
    rows = []
    for i in range(x.shape[0]):
        e = fl.zeros_like(x)
        e[i] = 1.0
        rows.append((f(x + e * eps) - f(x - e * eps)) / (2 * eps))
    return fl.stack(rows)


def vdot(xs: Any, ys: Any) -> float:
    """sum(x * y) over the leaves of two pytrees (real part for complex), as a Python float."""
    total = 0.0
    for x, y in zip(fl.tree_util.tree_leaves(xs), fl.tree_util.tree_leaves(ys), strict=True):
        p = fl.sum(x * y)
        total += float(fl.real(p)) if p.dtype.kind == "c" else float(p)
    return total


# ---------------------------------------------------------------------------------------
# argnames
# ---------------------------------------------------------------------------------------
def loss(x: Any, y: Any = None, *, w: Any, b: Any) -> Any:
    # d/dx = w**2 + b, d/dw = 2 x w, d/db = sum(x)
    return fl.sum(x * w * w + b * x)


def test_argnames_only_gives_a_dict_of_the_named_keywords() -> None:
    g = fl.grad(loss, argnames="w")(X, w=W, b=B)
    assert isinstance(g, dict) and list(g) == ["w"]
    assert_close(g["w"], 2.0 * X * W)
    g2 = fl.grad(loss, argnames=["b", "w"])(X, w=W, b=B)
    assert list(g2) == ["b", "w"]  # the order the names were given
    assert_close(g2["b"], fl.sum(X))
    assert_close(g2["w"], 2.0 * X * W)
    assert_close(g2["w"], fd_grad(lambda w: loss(X, w=w, b=B), W), rtol=1e-6)
    v, g3 = fl.value_and_grad(loss, argnames=("w",))(X, w=W, b=B)
    assert_close(v, loss(X, w=W, b=B))
    assert_close(g3["w"], g["w"])


def test_argnums_and_argnames_give_positional_and_named_grads() -> None:
    pos, named = fl.grad(loss, argnums=0, argnames="b")(X, w=W, b=B)
    assert_close(pos, W * W + B)
    assert_close(named["b"], fl.sum(X))
    pos2, named2 = fl.grad(loss, argnums=(0,), argnames=["w", "b"])(X, w=W, b=B)
    assert isinstance(pos2, tuple) and len(pos2) == 1
    assert_close(pos2[0], fd_grad(lambda x: loss(x, w=W, b=B), X), rtol=1e-6)
    assert_close(named2["w"], 2.0 * X * W)


def test_default_is_still_argnums_0() -> None:
    assert_close(fl.grad(loss)(X, w=W, b=B), W * W + B)
    assert_close(fl.grad(loss, argnums=None)(X, w=W, b=B), W * W + B)
    assert_close(fl.grad(loss, argnames=[])(X, w=W, b=B), W * W + B)
    ga, gc = fl.grad(lambda a, b, c: fl.sum(a * b * c), argnums=(0, 2))(X, W, X)
    assert_close(ga, W * X)
    assert_close(gc, X * W)


def test_argnames_with_has_aux_pytrees_and_var_keywords() -> None:
    def f(x: Any, **kw: Any) -> Any:
        p = kw["params"]
        return fl.sum(fl.tanh(x * p["a"]) * p["c"][0]), {"n": fl.sum(x)}

    params = {"a": W, "c": [B]}
    g, aux = fl.grad(f, argnames="params", has_aux=True)(X, params=params, unused=3)
    assert set(g["params"]) == {"a", "c"} and isinstance(g["params"]["c"], list)
    t = fl.tanh(X * W)
    assert_close(g["params"]["a"], (1.0 - t * t) * X * B)
    assert_close(g["params"]["c"][0], fl.sum(t))
    assert_close(aux["n"], fl.sum(X))
    assert not aux["n"].is_tracer
    ((v, aux2), g2) = fl.value_and_grad(f, argnums=0, argnames="params", has_aux=True)(X, params=params)
    assert_close(v, fl.sum(t) * B)
    assert_close(g2[0], (1.0 - t * t) * W * B)
    assert_close(g2[1]["params"]["a"], g["params"]["a"])


def test_argnames_compose_with_vmap_and_grad() -> None:
    xs = fl.stack([X, X * 2.0, -X])
    per = fl.vmap(lambda x: fl.grad(loss, argnames="w")(x, w=W, b=B)["w"])(xs)
    assert_close(per, fl.stack([2.0 * xs[i] * W for i in range(3)]))

    # d/dw sum(grad_w) = d/dw sum(2 x w) = 2 x
    gg = fl.grad(lambda w: fl.sum(fl.grad(loss, argnames="w")(X, w=w, b=B)["w"]))(W)
    assert_close(gg, 2.0 * X)
    # a named keyword that is itself a tracer of an outer transform
    h = fl.jacfwd(lambda w: fl.grad(loss, argnames="w")(X, w=w, b=B)["w"])(W)
    assert_close(h, fl.eye(3, dtype=F64) * 2.0 * X)


def test_argnames_errors() -> None:
    with pytest.raises(fl.TransformError) as ei:
        fl.grad(loss, argnames="q")(X, w=W, b=B)
    msg = str(ei.value)
    assert "'q'" in msg and "'w'" in msg and "'b'" in msg and "keyword" in msg
    with pytest.raises(fl.TransformError, match="keyword"):
        fl.grad(lambda x, w: fl.sum(x * w), argnames="w")(X, W)  # passed by position, not by name
    with pytest.raises(fl.TransformError, match="more than once"):
        fl.grad(loss, argnames=["w", "w"])
    with pytest.raises(fl.TransformError, match="argnames"):
        fl.grad(loss, argnames=[0])  # type: ignore[list-item]
    with pytest.raises(fl.TransformError, match="argnames"):
        fl.value_and_grad(loss, argnames="")
    with pytest.raises(fl.TransformError, match="argnums"):
        fl.grad(loss, argnums=3, argnames="w")(X, w=W, b=B)
    i = fl.asarray([1, 2, 3])
    with pytest.raises(fl.TransformError) as ei2:
        fl.grad(lambda x, *, k: fl.sum(x), argnames="k")(X, k=i)
    assert "'k'" in str(ei2.value) and "int64" in str(ei2.value) and "allow_int" in str(ei2.value)
    gk = fl.grad(lambda x, *, k: fl.sum(x * fl.astype(k, F64)), argnames="k", allow_int=True)(X, k=i)
    assert float(fl.sum(fl.abs(fl.astype(gk["k"], F64)))) == 0.0
    with pytest.raises(fl.NonScalarOutputError, match="scalar"):
        fl.grad(lambda *, w: w * 2.0, argnames="w")(w=W)


# ---------------------------------------------------------------------------------------
# linear_transpose
# ---------------------------------------------------------------------------------------
A = a64([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])


def test_linear_transpose_of_a_matrix_is_its_transpose() -> None:
    f_t = fl.linear_transpose(lambda x: A @ x, fl.zeros((3,), dtype=F64))
    ct = a64([2.0, -1.0])
    (res,) = f_t(ct)
    assert_close(res, a64([2.0 - 0.5, 4.0, -2.0 - 3.0]), rtol=1e-15)  # A^T ct by hand
    assert res.dtype == F64
    assert_close(f_t(a64([0.0, 1.0]))[0], A[1], rtol=1e-15)  # callable again


def _lin(p: Any, z: Any) -> Any:
    """A linear map of a pytree: sums, slices, reshapes, transposes, concat, scaling, a matmul."""
    m = fl.reshape(p["m"], (3, 2))
    return {
        "s": fl.sum(p["v"]) * 2.0 - z[0],
        "t": (
            fl.concat([p["v"][1:], fl.matrix_transpose(m)[0][:1]]) @ A.mT,
            m.mT * 0.5 + z[1:3][:, None] @ a64([[1.0, 0.0, 2.0]]),
        ),
        "u": fl.cumulative_sum(z) - fl.flip(p["v"]),
    }


def test_linear_transpose_pytrees_against_the_inner_product_identity() -> None:
    key = fl.random.key(3)
    ks = fl.random.split(key, 6)
    p0 = {"v": fl.zeros((3,), dtype=F64), "m": fl.zeros((6,), dtype=F64)}
    z0 = fl.zeros((3,), dtype=F64)
    f_t = fl.linear_transpose(_lin, p0, z0)
    x = (
        {"v": fl.random.normal(ks[0], (3,), dtype=F64), "m": fl.random.normal(ks[1], (6,), dtype=F64)},
        fl.random.normal(ks[2], (3,), dtype=F64),
    )
    out = _lin(*x)
    ct = {
        "s": fl.random.normal(ks[3], (), dtype=F64),
        "t": (fl.random.normal(ks[4], (2,), dtype=F64), fl.random.normal(ks[5], (2, 3), dtype=F64)),
        "u": fl.random.normal(fl.random.fold_in(key, 9), (3,), dtype=F64),
    }
    res = f_t(ct)
    assert isinstance(res, tuple) and len(res) == 2 and set(res[0]) == {"v", "m"}
    assert res[0]["m"].shape == (6,) and res[1].shape == (3,)
    assert vdot(ct, out) == pytest.approx(vdot(res, x), rel=1e-12)  # <ct, f(x)> == <f_T(ct), x>
    # the transpose is the vjp (of a linear map, at any point) ...
    _, pull = fl.vjp(_lin, *x)
    for r, c in zip(fl.tree_util.tree_leaves(res), fl.tree_util.tree_leaves(pull(ct)), strict=True):
        assert_close(r, c, rtol=1e-12)
    # ... and pairs with the jvp: <ct, J t> == <f_T(ct), t>
    _, jt = fl.jvp(_lin, x, x)
    assert vdot(ct, jt) == pytest.approx(vdot(res, x), rel=1e-12)


def test_linear_transpose_primal_values_are_not_used() -> None:
    nan = fl.full((3,), float("nan"), dtype=F64)
    f_t = fl.linear_transpose(lambda x: A @ x, nan)
    assert_close(f_t(a64([1.0, 1.0]))[0], fl.sum(A, axis=0))


def test_linear_transpose_composes() -> None:
    x0 = fl.zeros((3,), dtype=F64)
    f_t = fl.linear_transpose(lambda x: A @ x, x0)
    cts = a64([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    assert_close(fl.vmap(lambda c: f_t(c)[0])(cts), cts @ A)
    # the transpose of the transpose is f: grad_ct <f_T(ct), v> = f(v)
    v = a64([1.0, -2.0, 0.5])
    assert_close(fl.grad(lambda c: fl.sum(f_t(c)[0] * v))(a64([0.0, 0.0])), A @ v)
    f_tt = fl.linear_transpose(lambda c: f_t(c)[0], fl.zeros((2,), dtype=F64))
    assert_close(f_tt(v)[0], A @ v)

    # f closes over a traced matrix: f_T(ct) = M^T ct, so d/dM <M^T ct, v> = outer(ct, v)
    ct = a64([1.0, 3.0])

    def g(m: Any) -> Any:
        return fl.sum(fl.linear_transpose(lambda x: m @ x, x0)(ct)[0] * v)

    assert_close(fl.grad(g)(A), ct[:, None] * v[None, :])
    # under vmap over the matrix (no single value to check linearity on: the check is skipped)
    ms = fl.stack([A, A * 2.0])
    got = fl.vmap(lambda m: fl.linear_transpose(lambda x: m @ x, x0)(ct)[0])(ms)
    assert_close(got, fl.stack([ct @ A, ct @ (A * 2.0)]))


def test_linear_transpose_complex_is_not_conjugated() -> None:
    c = fl.asarray(2.0 + 3.0j, dtype=fl.complex128)
    z0 = fl.zeros((3,), dtype=fl.complex128)
    f_t = fl.linear_transpose(lambda z: c * z + fl.fft.fft(z), z0)
    u = fl.asarray([1.0 + 0.5j, -2.0j, 0.25], dtype=fl.complex128)
    z = fl.asarray([0.5 - 1.0j, 1.0, 2.0 + 2.0j], dtype=fl.complex128)
    (r,) = f_t(u)
    # JAX's convention: f_T(u) = c u + fft(u) (the DFT matrix is symmetric), no conjugate
    want = c * u + fl.fft.fft(u)
    assert_close(fl.real(r), fl.real(want), rtol=1e-12, atol=1e-12)
    assert_close(fl.imag(r), fl.imag(want), rtol=1e-12, atol=1e-12)
    lhs = complex(fl.sum(u * (c * z + fl.fft.fft(z))).item())
    rhs = complex(fl.sum(r * z).item())
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: A @ fl.sin(x),  # odd
        lambda x: A @ (x * x),  # even, zero derivative at 0
        lambda x: A @ F.relu(x),  # one-sided
        lambda x: fl.abs(A @ x),
        lambda x: x * fl.stop_gradient(x),
        lambda x: fl.exp(x) - 1.0,  # f(0) == 0 but not linear
    ],
    ids=["sin", "square", "relu", "abs", "stop_gradient", "expm1"],
)
def test_linear_transpose_rejects_non_linear_functions(f: Any) -> None:
    with pytest.raises(fl.TransformError, match="not linear") as ei:
        fl.linear_transpose(f, fl.zeros((3,), dtype=F64))
    assert "random point" in str(ei.value) and "vjp" in str(ei.value)


def test_linear_transpose_rejects_affine_and_bad_input() -> None:
    with pytest.raises(fl.TransformError, match=r"f\(0\) is not zero") as ei:
        fl.linear_transpose(lambda x: A @ x + 1.0, fl.zeros((3,), dtype=F64))
    assert "affine" in str(ei.value)
    with pytest.raises(fl.TransformError, match="int64"):
        fl.linear_transpose(lambda i: i * 2, fl.asarray([1, 2]))
    with pytest.raises(fl.TransformError, match="output"):
        fl.linear_transpose(lambda x: (x * 2.0, fl.astype(x, fl.int64)), fl.zeros((2,), dtype=F64))
    f_t = fl.linear_transpose(lambda x: (A @ x, x), fl.zeros((3,), dtype=F64))
    with pytest.raises(fl.TransformError, match="structure"):
        f_t(a64([1.0, 2.0]))
    with pytest.raises(fl.TransformError, match=r"\(3,\)"):
        f_t((a64([1.0, 2.0]), a64([1.0, 2.0])))
    # a float32 linear map passes (rounding stays inside the float32 tolerance)
    a32 = fl.astype(A, fl.float32)
    assert fl.linear_transpose(lambda x: a32 @ x, fl.zeros((3,)))(fl.ones((2,)))[0].dtype == fl.float32


# ---------------------------------------------------------------------------------------
# hessian(chunk_size=)
# ---------------------------------------------------------------------------------------
def h_f(x: Any) -> Any:
    return fl.sum(fl.sin(x) * x[0] + x**3)


def test_hessian_chunk_size_matches_and_chunks() -> None:
    x = a64([0.1, -0.4, 0.7, 1.1, -0.2])
    ref = fd_grad(fl.grad(h_f), x)
    calls: list[int] = []

    def counted(v: Any) -> Any:
        calls.append(1)
        return h_f(v)

    full = fl.hessian(counted)(x)
    assert len(calls) == 1
    assert_close(full, ref, rtol=1e-6, atol=1e-7)
    for c in (1, 2, 3, 5, 8):
        calls.clear()
        h = fl.hessian(counted, chunk_size=c)(x)
        assert len(calls) == math.ceil(5 / c)  # the forward pass over the gradient runs per chunk
        assert_close(h, full, rtol=1e-12, atol=1e-14)

    def two(a: Any, b: Any) -> Any:
        return fl.sum(a * a * b) + fl.sum(b**3), a

    (haa, hab), (hba, hbb) = fl.hessian(two, argnums=(0, 1), has_aux=True, chunk_size=1)(X, W)[0]
    assert_close(haa, fl.eye(3, dtype=F64) * 2.0 * W)
    assert_close(hab, fl.eye(3, dtype=F64) * 2.0 * X)
    assert_close(hbb, fl.eye(3, dtype=F64) * 6.0 * W)
    assert_close(fl.hessian(two, has_aux=True, chunk_size=2)(X, W)[1], X)


def test_hessian_chunk_size_is_checked() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(fl.TransformError, match="chunk_size"):
            fl.hessian(h_f, chunk_size=bad)  # type: ignore[arg-type]
    with pytest.raises(fl.TransformError, match="jacrev: chunk_size"):
        fl.jacrev(h_f, chunk_size=0)
    with pytest.raises(fl.TransformError, match="jacfwd: chunk_size"):
        fl.jacfwd(h_f, chunk_size=0)


# ---------------------------------------------------------------------------------------
# fl.testing.check_grads
# ---------------------------------------------------------------------------------------
def _parse(msg: str) -> tuple[float, float]:
    """(got, expected) from a check_grads message."""
    m = re.search(r" is (\S+), but finite differences give (\S+) ", msg)
    assert m, msg
    return float(m.group(1)), float(m.group(2))


def test_check_grads_passes_on_correct_derivatives() -> None:
    fl.testing.check_grads(lambda x, y: fl.sin(x) * y + fl.exp(x * y), (X, W), order=2)
    fl.testing.check_grads(
        lambda p, i: {"o": fl.tanh(p["w"][i]) * p["b"], "s": fl.sum(p["w"] ** 3)},
        ({"w": W, "b": B}, fl.asarray([0, 2, 2])),  # an integer argument is held fixed
        order=3,
    )
    big = fl.reshape(fl.linspace(-1.0, 1.0, 40, dtype=F64), (5, 8))  # > 32 entries: the pairing check
    fl.testing.check_grads(lambda m: fl.sin(m) @ fl.ones((8,), dtype=F64), (big,), order=2)
    z = fl.asarray([1.0 + 2.0j, 0.5 - 1.0j], dtype=fl.complex128)
    fl.testing.check_grads(lambda z: z * z * fl.conj(z), (z,), order=2)
    fl.testing.check_grads(lambda x: x * 2.0, (X,), order=1, modes="fwd")
    fl.testing.check_grads(lambda x: x * 2.0, [X], order=1, modes=["rev"])


def test_check_grads_runs_in_float64() -> None:
    seen = []

    def f(x: Any) -> Any:
        seen.append(x.dtype)
        return fl.exp(x * 3.0) * fl.sin(x)

    fl.testing.check_grads(f, (fl.asarray([0.3, -0.5]),), order=2, atol=1e-7, rtol=1e-7)  # float32 input
    assert seen and all(d == F64 for d in seen)


def test_check_grads_catches_a_wrong_custom_vjp() -> None:
    @fl.custom_vjp
    def double(x: Any) -> Any:
        return 2.0 * x

    double.defvjp(lambda x: (2.0 * x, None), lambda res, g: (3.0 * g,))  # 3: wrong
    with pytest.raises(AssertionError) as ei:
        fl.testing.check_grads(double, (X,), order=1, modes="rev")
    msg = str(ei.value)
    assert "rev mode" in msg and "order 1" in msg and "args[0]" in msg
    got, want = _parse(msg)
    # the cotangent is 3 w, differences say 2 w (the message prints 6 digits)
    assert got / want == pytest.approx(1.5, rel=1e-5)
    # deterministic: the same directions every time
    with pytest.raises(AssertionError) as ei2:
        fl.testing.check_grads(double, (X,), order=1, modes="rev")
    assert str(ei2.value) == msg


def test_check_grads_names_the_argument_and_the_worst_entry() -> None:
    @fl.custom_vjp
    def mul(x: Any, p: Any) -> Any:
        return x * p["w"]

    mask = fl.asarray([False, True, False])

    def bwd(res: Any, g: Any) -> Any:
        x, w = res
        return g * w, {"w": fl.where(mask, 2.0, 1.0) * g * x}  # entry 1 of w's cotangent doubled

    mul.defvjp(lambda x, p: (x * p["w"], (x, p["w"])), bwd)
    with pytest.raises(AssertionError) as ei:
        fl.testing.check_grads(mul, (X, {"w": W}), order=1, modes="rev")
    msg = str(ei.value)
    assert "args[1].w" in msg and "entry (1,)" in msg
    got, want = _parse(msg)
    assert got / want == pytest.approx(2.0, rel=1e-5)  # (the message prints 6 digits)
    # forward mode (derived from the same wrong rule) names the output entry
    with pytest.raises(AssertionError) as ei2:
        fl.testing.check_grads(mul, (X, {"w": W}), order=1, modes="fwd")
    msg2 = str(ei2.value)
    assert "fwd mode" in msg2 and "args[1].w" in msg2 and "entry (1,) of the output" in msg2
    # a large argument (the pairing check) is still named
    xb = fl.linspace(0.5, 1.5, 40, dtype=F64)
    with pytest.raises(AssertionError, match=r"rev mode.*args\[1\]\.w.*<vjp\(w\), t>"):
        mask = fl.arange(40) == 7
        fl.testing.check_grads(mul, (xb, {"w": xb * 0.5}), order=1, modes="rev")


def test_check_grads_catches_a_wrong_custom_jvp() -> None:
    @fl.custom_jvp
    def prod(x: Any, y: Any) -> Any:
        return x * y

    prod.defjvp(lambda p, t: (p[0] * p[1], t[0] * p[1] + t[1] * p[1]))  # t[1] * p[1]: should be p[0]
    with pytest.raises(AssertionError) as ei:
        fl.testing.check_grads(prod, (X, W), order=1, modes="fwd")
    msg = str(ei.value)
    assert "fwd mode" in msg and "args[1]" in msg
    with pytest.raises(AssertionError, match=r"rev mode.*args\[1\]"):
        fl.testing.check_grads(prod, (X, W), order=1, modes="rev")


def test_check_grads_order_2_catches_a_rule_that_is_right_only_at_first_order() -> None:
    @fl.custom_vjp
    def cube(x: Any) -> Any:
        return x**3

    # right value, but stop_gradient makes its derivative (the second derivative of cube) zero
    cube.defvjp(lambda x: (x**3, x), lambda x, g: (g * 3.0 * fl.stop_gradient(x) ** 2,))
    fl.testing.check_grads(cube, (X,), order=1)
    with pytest.raises(AssertionError) as ei:
        fl.testing.check_grads(cube, (X,), order=2)
    assert "order 2" in str(ei.value)

    @fl.custom_jvp
    def sq(x: Any) -> Any:
        return x * x

    sq.defjvp(lambda p, t: (p[0] * p[0], 2.0 * fl.stop_gradient(p[0]) * t[0]))
    fl.testing.check_grads(sq, (X,), order=1)
    with pytest.raises(AssertionError, match="order 2 \\(on the (jvp|vjp) of f\\)"):
        fl.testing.check_grads(sq, (X,), order=2)


def test_check_grads_tolerances() -> None:
    @fl.custom_vjp
    def almost(x: Any) -> Any:
        return 2.0 * x

    almost.defvjp(lambda x: (2.0 * x, None), lambda res, g: ((2.0 + 1e-4) * g,))
    with pytest.raises(AssertionError):
        fl.testing.check_grads(almost, (X,), order=1)
    fl.testing.check_grads(almost, (X,), order=1, atol=1e-3, rtol=1e-3)


def test_check_grads_bad_arguments() -> None:
    with pytest.raises(fl.TransformError, match="tuple"):
        fl.testing.check_grads(fl.sin, X)
    with pytest.raises(fl.TransformError, match="order"):
        fl.testing.check_grads(fl.sin, (X,), order=0)
    with pytest.raises(fl.TransformError, match="modes"):
        fl.testing.check_grads(fl.sin, (X,), modes=("bwd",))
