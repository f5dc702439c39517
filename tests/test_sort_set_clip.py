"""sort / argsort, the unique_* set functions, clip, and searchsorted under vmap.

Values are checked against NumPy; gradients against their closed forms (a
permutation for sort, interval masks for clip) and finite differences; every
op under vmap against a Python loop. Runs on the default backend of the run
(numpy, or array_api_strict with ``FUNCTORCH_LITE_BACKEND=array_api_strict``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import functorch_lite as fl


def A(t: fl.Tensor) -> np.ndarray:
    return np.asarray(t)


def T(a: np.ndarray) -> fl.Tensor:
    return fl.asarray(
        np.asarray(a).tolist(), dtype={"f": fl.float64, "i": fl.int64, "b": fl.bool}[np.asarray(a).dtype.kind]
    )


def rand(shape: tuple[int, ...], seed: int = 0, dtype: fl.DType = fl.float64) -> fl.Tensor:
    return fl.asarray(np.random.RandomState(seed).randn(*shape).tolist(), dtype=dtype)


# ---------------------------------------------------------------------------------------
# sort / argsort
# ---------------------------------------------------------------------------------------
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_sort_argsort_match_numpy(shape: list[int], data: st.DataObject) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    desc = data.draw(st.booleans())
    # small integers: plenty of ties, so stability is exercised
    x = np.random.RandomState(data.draw(st.integers(0, 99))).randint(0, 3, size=shape)
    s = fl.sort(T(x), axis=axis, descending=desc)
    i = fl.argsort(T(x), axis=axis, descending=desc)
    # stable descending keeps equal elements in their order: argsort of -x, stably
    want_i = np.argsort(-x if desc else x, axis=axis, kind="stable")
    np.testing.assert_array_equal(A(i), want_i)
    np.testing.assert_array_equal(A(s), np.take_along_axis(x, want_i, axis=axis))
    assert i.dtype == fl.int64


def test_sort_errors() -> None:
    with pytest.raises(fl.ShapeError, match="sort"):
        fl.sort(fl.asarray(1.0))
    with pytest.raises(fl.DTypeError, match="argsort"):
        fl.argsort(fl.asarray([1 + 2j, 3j]))
    with pytest.raises(fl.ShapeError):
        fl.sort(fl.ones((2, 3)), axis=2)


def test_sort_gradient_is_the_permutation() -> None:
    x = rand((3, 5), 1)
    w = fl.arange(5.0, dtype=fl.float64)
    g = fl.grad(lambda x: fl.sum(fl.sort(x, axis=1) * w))(x)
    ranks = np.argsort(np.argsort(A(x), axis=1), axis=1)
    np.testing.assert_allclose(A(g), ranks.astype(float))
    gd = fl.grad(lambda x: fl.sum(fl.sort(x, axis=0, descending=True)[0]))(x)
    np.testing.assert_allclose(A(gd), (A(x) == A(x).max(axis=0)).astype(float))


def test_sort_jvp_and_second_order() -> None:
    x = rand((6,), 2)
    t = rand((6,), 3)
    _, tan = fl.jvp(lambda x: fl.sort(x), (x,), (t,))
    np.testing.assert_allclose(A(tan), A(t)[np.argsort(A(x))])
    h = fl.hessian(lambda x: fl.sum(fl.sort(x) ** 3 * fl.arange(6.0, dtype=fl.float64)))(x)
    ranks = np.argsort(np.argsort(A(x)))
    np.testing.assert_allclose(A(h), np.diag(6 * A(x) * ranks), atol=1e-10)


def test_sort_keeps_float32() -> None:
    x = rand((4,), 4, fl.float32)
    assert fl.sort(x).dtype == fl.float32
    assert fl.grad(lambda x: fl.sum(fl.sort(x)[:2]))(x).dtype == fl.float32


@pytest.mark.parametrize("in_axis", [0, 1, -1])
def test_sort_argsort_vmap(in_axis: int) -> None:
    xs = rand((3, 4, 5), 5)
    for f in (lambda x: fl.sort(x, axis=0), lambda x: fl.argsort(x, axis=-1, descending=True)):
        got = fl.vmap(f, in_axes=in_axis)(xs)
        moved = np.moveaxis(A(xs), in_axis, 0)
        want = np.stack([A(f(fl.asarray(m.tolist(), dtype=fl.float64))) for m in moved])
        np.testing.assert_array_equal(A(got), want)
    g = fl.vmap(fl.grad(lambda x: fl.sort(x.reshape((-1,)))[-1]))(xs)
    assert g.shape == xs.shape and float(fl.sum(g)) == 3.0


# ---------------------------------------------------------------------------------------
# unique_*
# ---------------------------------------------------------------------------------------
def test_unique_functions_match_numpy() -> None:
    x = np.array([[3, 1, 3], [2, 1, 5]])
    r = fl.unique_all(T(x))
    assert type(r).__name__ == "UniqueAllResult"
    assert r._fields == ("values", "indices", "inverse_indices", "counts")
    v, idx, inv, cnt = np.unique(x, return_index=True, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(A(r.values), v)
    np.testing.assert_array_equal(A(r.indices), idx)
    np.testing.assert_array_equal(A(r.counts), cnt)
    assert r.inverse_indices.shape == x.shape  # the 2024.12 standard: shape of x
    np.testing.assert_array_equal(A(r.values)[A(r.inverse_indices)], x)
    c = fl.unique_counts(T(x))
    assert c._fields == ("values", "counts")
    np.testing.assert_array_equal(A(c.counts), cnt)
    i = fl.unique_inverse(T(x))
    assert i._fields == ("values", "inverse_indices")
    assert i.inverse_indices.shape == (2, 3)
    np.testing.assert_array_equal(A(fl.unique_values(T(x))), v)


def test_unique_under_vmap_raises_data_dependent() -> None:
    xs = fl.asarray([[1, 1, 2], [1, 2, 3]])
    for name in ("unique_all", "unique_counts", "unique_inverse", "unique_values"):
        with pytest.raises(fl.DataDependentShapeError, match=name) as e:
            fl.vmap(getattr(fl, name))(xs)
        assert "sort" in str(e.value)  # names a fixed-shape alternative
    with pytest.raises(RuntimeError):  # the typed error is also a RuntimeError
        fl.vmap(fl.unique_values)(xs)
    # an unbatched input under vmap is just a constant
    u = fl.vmap(lambda r: r + fl.sum(fl.unique_values(fl.asarray([4, 4, 5]))), in_axes=0)(xs)
    np.testing.assert_array_equal(A(u), A(xs) + 9)


def test_unique_carries_no_gradient() -> None:
    g = fl.grad(lambda x: fl.sum(fl.unique_values(x)) + fl.sum(x))(fl.asarray([3.0, 1.0, 3.0]))
    np.testing.assert_array_equal(A(g), [1.0, 1.0, 1.0])


# ---------------------------------------------------------------------------------------
# clip
# ---------------------------------------------------------------------------------------
def test_clip_values_and_dtype() -> None:
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(A(fl.clip(T(x), -1.0, 1.0)), np.clip(x, -1, 1))
    np.testing.assert_array_equal(A(fl.clip(T(x), min=0.0)), np.clip(x, 0, None))
    np.testing.assert_array_equal(A(fl.clip(T(x), max=0.0)), np.clip(x, None, 0))
    assert fl.clip(T(x)) is not None and A(fl.clip(T(x))).tolist() == x.tolist()
    x32 = fl.asarray([-2.0, 0.5, 3.0])
    lo64 = fl.asarray([0.0, 0.0, 0.0], dtype=fl.float64)
    assert fl.clip(x32, lo64, 1).dtype == fl.float32
    xi = fl.asarray([1, 5, 300])
    r = fl.clip(xi, 2.5, 200.7)  # float bounds of an int array round inwards
    assert r.dtype == fl.int64 and A(r).tolist() == [3, 5, 200]
    assert A(fl.clip(fl.asarray([0, 200], dtype=fl.uint8), -5, 1000)).tolist() == [0, 200]
    assert A(fl.clip(xi, max=float("inf"))).tolist() == [1, 5, 300]
    # broadcasting: array bounds may widen the result
    b = fl.clip(fl.asarray([1.0, 5.0, 9.0]), fl.asarray([[2.0], [6.0]]), None)
    assert A(b).tolist() == [[2.0, 5.0, 9.0], [6.0, 6.0, 9.0]]


def test_clip_errors() -> None:
    with pytest.raises(fl.DTypeError, match="clip"):
        fl.clip(fl.asarray([True, False]), 0, 1)
    with pytest.raises(fl.DTypeError, match="clip"):
        fl.clip(fl.asarray([1 + 1j]), 0.0, 1.0)
    with pytest.raises(fl.DTypeError, match="min"):
        fl.clip(fl.asarray([1, 2]), fl.asarray([0.5, 0.5]), None)
    with pytest.raises(TypeError):
        fl.clip(fl.asarray([1, 2]), float("nan"))


def test_clip_gradients() -> None:
    x = fl.asarray([-2.0, -1.0, 0.3, 1.0, 4.0], dtype=fl.float64)
    g = fl.grad(lambda x: fl.sum(fl.clip(x, -1.0, 1.0) * fl.arange(1.0, 6.0, dtype=fl.float64)))(x)
    assert A(g).tolist() == [0.0, 2.0, 3.0, 4.0, 0.0]  # inside the closed interval: 1
    lo = fl.full((5,), -1.0, dtype=fl.float64)
    hi = fl.full((5,), 1.0, dtype=fl.float64)
    glo, ghi = fl.grad(lambda lo, hi: fl.sum(fl.clip(x, lo, hi)), argnums=(0, 1))(lo, hi)
    assert A(glo).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert A(ghi).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    # a scalar-broadcast bound gets the summed cotangent
    gs = fl.grad(lambda m: fl.sum(fl.clip(x, m, 10.0)))(fl.asarray(0.0, dtype=fl.float64))
    assert float(gs) == 2.0
    _, t = fl.jvp(lambda x, lo: fl.clip(x, lo, 1.0), (x, lo), (fl.ones_like(x), 2 * fl.ones_like(lo)))
    assert A(t).tolist() == [2.0, 1.0, 1.0, 1.0, 0.0]
    x32 = fl.asarray([0.5, 2.0])
    assert fl.grad(lambda x: fl.sum(fl.clip(x, 0.0, 1.0)))(x32).dtype == fl.float32


def test_clip_vmap() -> None:
    xs = rand((4, 3), 7)
    los = -fl.abs(rand((4, 3), 8))  # min <= max (array_api_strict refuses min > max)
    got = fl.vmap(lambda x, lo: fl.clip(x, lo, 0.5))(xs, los)
    np.testing.assert_array_equal(A(got), np.clip(A(xs), A(los), 0.5))
    got = fl.vmap(lambda lo: fl.clip(xs[0], lo, None))(los)
    np.testing.assert_array_equal(A(got), np.clip(A(xs)[0], A(los), None))
    g = fl.vmap(fl.grad(lambda x: fl.sum(fl.clip(x, -0.5, 0.5))))(xs)
    np.testing.assert_array_equal(A(g), (np.abs(A(xs)) <= 0.5).astype(float))


# ---------------------------------------------------------------------------------------
# searchsorted under vmap (its batch rule: a broadcast comparison and a sum)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_vmap(side: str) -> None:
    rs = np.random.RandomState(0)
    rows = np.sort(rs.randint(0, 6, size=(4, 7)).astype(float), axis=1)  # ties on purpose
    vals = rs.randint(-1, 8, size=(4, 3, 2)).astype(float)
    want = np.stack([np.searchsorted(rows[i], vals[i], side=side) for i in range(4)])
    f = lambda a, v: fl.searchsorted(a, v, side=side)  # noqa: E731
    np.testing.assert_array_equal(A(fl.vmap(f)(T(rows), T(vals))), want)
    np.testing.assert_array_equal(
        A(fl.vmap(f, in_axes=(0, None))(T(rows), T(vals[0]))),
        np.stack([np.searchsorted(rows[i], vals[0], side=side) for i in range(4)]),
    )
    np.testing.assert_array_equal(
        A(fl.vmap(f, in_axes=(None, 0))(T(rows[0]), T(vals[:, 0, 0]))),
        np.searchsorted(rows[0], vals[:, 0, 0], side=side),
    )
    r = fl.vmap(f, in_axes=(1, 2))(T(rows.T), T(np.moveaxis(vals, 0, 2)))
    np.testing.assert_array_equal(A(r), want)
    assert r.dtype == fl.int64
