"""The eager and reverse-mode fast paths agree with the general paths they short-cut.

Each fast path (the op functions' direct recording under grad, the array-level backward, the
eager reductions, take and basic getitem) must give the same values, dtypes and errors as the
general machinery; the general path is reached here by passing inputs the fast paths decline
(Tensor subclasses, NumPy scalars, nested transforms).
"""

from __future__ import annotations

from typing import Any

import pytest
from _strategies import assert_close

import functorch_lite as fl

F32 = fl.float32


def _x() -> fl.Tensor:
    return fl.asarray([[0.3, -1.2, 0.8], [0.5, 0.1, -0.4]], dtype=F32)


def _chain(x: Any) -> Any:
    y = 1.0 - x  # reversed scalar op
    y = 2.0 / (y * y + 1.0)
    z = fl.exp(y) - fl.sum(y, axis=1, keepdims=True)
    return fl.mean(z * x) + fl.max(z, axis=0).sum() - fl.min(z)


def test_grad_fast_paths_match_the_general_path() -> None:
    x = _x()
    g_fast = fl.grad(_chain)(x)
    # Under vmap the inputs of grad are batch tracers: every op takes the general path.
    g_slow = fl.vmap(fl.grad(_chain))(x[None])[0]
    assert g_fast.dtype is F32 and g_slow.dtype is F32
    assert_close(g_fast, g_slow, rtol=1e-6, atol=1e-6)


def test_second_order_through_fast_paths_matches_finite_differences() -> None:
    x = fl.asarray([0.3, -1.2, 0.8], dtype=fl.float64)

    def f(x: Any) -> Any:
        return fl.sum(fl.sin(1.0 - x) * x * x)

    h = fl.hessian(f)(x)
    eps = 1e-5
    rows = []
    for i in range(3):
        e = fl.zeros_like(x)
        e[i] = eps
        rows.append((fl.grad(f)(x + e) - fl.grad(f)(x - e)) / (2 * eps))
    assert_close(h, fl.stack(rows), rtol=1e-5, atol=1e-6)


def test_stop_gradient_of_nested_tracers() -> None:
    x = fl.asarray(2.0, dtype=fl.float64)

    def inner(y: Any) -> Any:
        return y * fl.stop_gradient(y * y)

    # d/dy [y * sg(y^2)] = sg(y^2): stopped for every transform, so its derivative is 0 (as JAX)
    assert float(fl.grad(inner)(x)) == pytest.approx(4.0)
    assert float(fl.grad(fl.grad(inner))(x)) == 0.0
    t = fl.jvp(fl.grad(inner), (x,), (fl.asarray(1.0, dtype=fl.float64),))[1]
    assert float(t) == 0.0
    assert fl.vmap(fl.grad(inner))(fl.asarray([1.0, 3.0])).tolist() == [1.0, 9.0]


def test_stop_gradient_returns_a_new_tensor() -> None:
    x = fl.asarray([1.0, 2.0])
    y = fl.stop_gradient(x)
    y[0] = 5.0  # functional mutation rebinds y only
    assert x.tolist() == [1.0, 2.0]


def test_eager_reductions_keep_dtype_and_validate_axes() -> None:
    x = _x()
    assert fl.sum(x).dtype is F32 and fl.mean(x, axis=-1).dtype is F32
    assert fl.max(x, axis=(0, 1)).shape == ()
    assert fl.sum(x, axis=-1, keepdims=True).shape == (2, 1)
    with pytest.raises(Exception, match="axis"):
        fl.sum(x, axis=2)
    with pytest.raises(ValueError, match="zero elements"):
        fl.max(fl.zeros((0,)))
    assert fl.max(fl.zeros((0, 3)), axis=1).shape == (0,)  # empty rows, non-empty reduced axis
    assert fl.sum(fl.asarray([1, 2], dtype=fl.int32)).dtype is fl.int64
    m = fl.mean(fl.zeros((0,)))
    assert m.shape == () and m.dtype is F32


def test_take_fast_path_errors_and_values() -> None:
    x = _x()
    assert fl.take(x, fl.asarray([1, 1, 0]), axis=0).shape == (3, 3)
    assert fl.take(x, fl.asarray([-1]), axis=1).tolist() == [[0.800000011920929], [-0.4000000059604645]]
    with pytest.raises(IndexError, match="out of bounds"):
        fl.take(x, fl.asarray([3]), axis=1)
    with pytest.raises(IndexError, match="out of bounds"):
        fl.take(x, fl.asarray([-3]), axis=0)


def test_basic_getitem_fast_path() -> None:
    x = _x()
    assert x[..., 0].tolist() == pytest.approx([0.3, 0.5])
    assert x[1, 1:].shape == (2,)
    assert x[None, 0].shape == (1, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        x[2, 0]
    with pytest.raises(IndexError):
        x[..., 0, ...]


def test_array_level_backward_handles_broadcasting_and_accumulation() -> None:
    a = fl.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=F32)
    b = fl.asarray([0.5, -1.0, 2.0], dtype=F32)

    def f(a: Any, b: Any) -> Any:
        return fl.sum((a * b + b) * a)  # b broadcast twice, a used twice

    ga, gb = fl.grad(f, argnums=(0, 1))(a, b)
    assert ga.dtype is F32 and gb.dtype is F32
    assert_close(ga, 2 * a * b + b)
    assert_close(gb, fl.sum(a * a + a, axis=0))


def _fd_grad(f: Any, x: fl.Tensor, eps: float = 1e-6) -> fl.Tensor:
    flat = fl.reshape(x, (-1,))
    out = []
    for i in range(flat.shape[0]):
        e = fl.zeros_like(flat)
        e[i] = eps
        out.append((f(fl.reshape(flat + e, x.shape)) - f(fl.reshape(flat - e, x.shape))) / (2 * eps))
    return fl.reshape(fl.stack(out), x.shape)


def test_backward_mixes_array_level_and_tensor_level_rules() -> None:
    # x feeds ops with array-level rules (sin, multiply) and ops with Tensor-level ones only
    # (sort, cumulative_sum, a multi-output eigh): cotangents of both kinds accumulate on x.
    x = fl.asarray([[0.3, -1.2], [0.8, 0.5]], dtype=fl.float64)

    def f(x: Any) -> Any:
        s = x + x.mT  # symmetric, for eigh
        w, v = fl.linalg.eigh(s)
        return (
            fl.sum(fl.sin(x) * x)
            + fl.sum(fl.sort(x, axis=1) * fl.asarray([1.0, 2.0], dtype=fl.float64))
            + fl.sum(fl.cumulative_sum(x, axis=0) ** 2)
            + fl.sum(w * fl.cos(w))
            + fl.sum(v[:, 0] ** 2)
        )

    g = fl.grad(f)(x)
    assert g.dtype is fl.float64
    assert_close(g, _fd_grad(f, x), rtol=1e-5, atol=1e-6)
    # and the same gradient when every rule runs at the Tensor level (vmap of grad)
    assert_close(fl.vmap(fl.grad(f))(x[None])[0], g, rtol=1e-10, atol=1e-12)


def test_vjp_called_twice_and_with_tracer_cotangents() -> None:
    x = fl.asarray([0.3, -1.2, 0.8], dtype=fl.float64)
    out, pull = fl.vjp(lambda x: fl.exp(x) * x + fl.sum(x * x), x)
    u = fl.asarray([1.0, -2.0, 0.5], dtype=fl.float64)
    (g1,) = pull(u)
    (g2,) = pull(u)  # the tape survives a first backward
    assert_close(g1, g2, rtol=0, atol=0)
    jac = fl.vmap(lambda c: pull(c)[0])(fl.eye(3, dtype=fl.float64))  # tracer cotangents
    assert_close(jac.mT @ u, g1, rtol=1e-12, atol=1e-12)  # row i of jac is pull(e_i) = J^T e_i


def test_setitem_in_place_only_when_nothing_else_sees_the_array(monkeypatch: Any) -> None:
    from functorch_lite import _backend

    done: list[bool] = []
    real = _backend.setitem_in_place

    def spy(holder: Any, key: Any, value: Any) -> bool:
        r = real(holder, key, value)
        done.append(r)
        return r

    monkeypatch.setattr(_backend, "setitem_in_place", spy)
    x = fl.zeros((4,))
    for i in range(4):
        x[i] = float(i)  # x's array is its own: written in place on numpy, copied elsewhere
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0]
    if fl.default_backend_name() == "numpy":
        assert done == [True] * 4

    view = x[1:]  # a view shares x's memory: x must be copied, not written
    y = x  # the same Tensor object: it sees the write, as with any rebinding
    x[1] = 10.0
    assert view.tolist() == [1.0, 2.0, 3.0] and y.tolist() == [0.0, 10.0, 2.0, 3.0]

    other = fl.stop_gradient(x)  # another Tensor object around the same array
    assert other is not x
    snapshot = other.tolist()
    x[2] = 20.0
    assert other.tolist() == snapshot

    out, pull = fl.vjp(lambda w: w * x, fl.ones((4,)))  # the tape keeps x's array as a residual
    x[3] = 30.0
    (g,) = pull(fl.ones((4,)))
    assert g.tolist() == [0.0, 10.0, 20.0, 3.0]  # the value x had when recorded

    a = fl.ones((2,))
    ga, gb = fl.grad(lambda a, b: fl.sum(a + b), argnums=(0, 1))(a, fl.ones((2,)))
    ga[0] = 5.0  # gradients may share one array: writing one must not change the other
    assert gb.tolist() == [1.0, 1.0]


def test_augmented_assignment_in_place_keeps_functional_semantics() -> None:
    x = fl.ones((2, 3))
    row = x[0]  # a view: x must not be written through
    alias = fl.stop_gradient(x)  # another Tensor around x's array
    x *= 2.0
    assert row.tolist() == [1.0, 1.0, 1.0] and alias.tolist() == [[1.0] * 3] * 2
    x -= fl.full((3,), 0.5)  # broadcasting operand, same dtype
    assert x.tolist() == [[1.5] * 3] * 2 and x.dtype is fl.float32
    x /= fl.asarray(3.0, dtype=fl.float64)  # another dtype: computed, then cast back
    assert x.dtype is fl.float32 and x.tolist() == [[0.5] * 3] * 2
    i = fl.asarray([1, 2])
    i += 1
    assert i.tolist() == [2, 3] and i.dtype is fl.int64
    with pytest.raises(Exception, match="shape"):
        y = fl.ones((1,))
        y += fl.ones((3,))  # would grow y: refused, and y keeps its value
    assert y.tolist() == [1.0]

    def f(w: Any) -> Any:
        v = w * 1.0
        v += w  # under grad: the functional path, differentiable
        return fl.sum(v * v)

    assert fl.grad(f)(fl.ones((2,))).tolist() == [8.0, 8.0]
