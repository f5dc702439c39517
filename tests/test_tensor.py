"""The Tensor API: operators, Python scalars, promotion, indexing, conversions, backends, errors."""

from __future__ import annotations

import builtins
import copy
import itertools
import operator

import pytest
from conftest import BACKEND

import functorch_lite as fl

OTHER = "numpy" if BACKEND == "array_api_strict" else "array_api_strict"


def t(x, dtype=None):
    return fl.asarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------
ARITH = [
    ("+", operator.add, operator.iadd),
    ("-", operator.sub, operator.isub),
    ("*", operator.mul, operator.imul),
    ("/", operator.truediv, operator.itruediv),
    ("//", operator.floordiv, operator.ifloordiv),
    ("%", operator.mod, operator.imod),
    ("**", operator.pow, operator.ipow),
]


@pytest.mark.parametrize("sym,op,iop", ARITH, ids=[a[0] for a in ARITH])
def test_arithmetic_dunders(sym, op, iop) -> None:
    a = t([1.5, 2.0, 3.0], fl.float64)
    b = t([0.5, 4.0, 2.0], fl.float64)
    ra, rb = [1.5, 2.0, 3.0], [0.5, 4.0, 2.0]
    exp = [op(x, y) for x, y in zip(ra, rb, strict=False)]
    assert op(a, b).tolist() == pytest.approx(exp)
    assert op(a, 2.0).tolist() == pytest.approx([op(x, 2.0) for x in ra])  # Tensor op scalar
    assert op(2.0, a).tolist() == pytest.approx([op(2.0, x) for x in ra])  # reflected
    c = a
    c = iop(c, b)
    assert c.tolist() == pytest.approx(exp)
    d = t([1.5, 2.0, 3.0], fl.float64)
    same = d
    d = iop(d, 2.0)
    assert d is same  # in place: the same Tensor object, rebound
    assert d.tolist() == pytest.approx([op(x, 2.0) for x in ra])


BITS = [
    ("&", operator.and_, operator.iand),
    ("|", operator.or_, operator.ior),
    ("^", operator.xor, operator.ixor),
    ("<<", operator.lshift, operator.ilshift),
    (">>", operator.rshift, operator.irshift),
]


@pytest.mark.parametrize("sym,op,iop", BITS, ids=[b[0] for b in BITS])
def test_bitwise_dunders(sym, op, iop) -> None:
    a, b = t([1, 6, 12]), t([3, 1, 2])
    assert op(a, b).tolist() == [op(x, y) for x, y in zip([1, 6, 12], [3, 1, 2], strict=False)]
    assert op(a, 1).tolist() == [op(x, 1) for x in [1, 6, 12]]
    assert op(1, a).tolist() == [op(1, x) for x in [1, 6, 12]]
    c = t([1, 6, 12])
    same = c
    c = iop(c, b)
    assert c is same and c.tolist() == [op(x, y) for x, y in zip([1, 6, 12], [3, 1, 2], strict=False)]


def test_unary_and_comparison_dunders() -> None:
    a = t([-1.0, 0.0, 2.0])
    assert (-a).tolist() == [1.0, -0.0, -2.0]
    assert (+a).tolist() == a.tolist()
    assert abs(a).tolist() == [1.0, 0.0, 2.0]
    assert (~t([True, False])).tolist() == [False, True]
    assert (~t([0, 1])).tolist() == [-1, -2]
    assert (a < 0.5).tolist() == [True, True, False]
    assert (a <= 0.0).tolist() == [True, True, False]
    assert (a > 0.0).tolist() == [False, False, True]
    assert (a >= 0.0).tolist() == [False, True, True]
    assert (a == 0.0).tolist() == [False, True, False]
    assert (a != 0.0).tolist() == [True, False, True]
    assert (0.5 > a).tolist() == [True, True, False]  # reflected comparison
    m = fl.reshape(fl.arange(6, dtype=fl.float32), (2, 3))
    assert (m @ fl.ones((3,))).tolist() == [3.0, 12.0]
    mm = fl.ones((2, 2))
    same = mm
    mm @= fl.ones((2, 2))
    assert mm is same and mm.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert m.T.shape == (3, 2) and m.mT.shape == (3, 2)


def test_numpy_scalars_defer_to_tensor() -> None:
    np = pytest.importorskip("numpy")
    a = t([1.0, 2.0])
    r = np.float64(2.0) * a
    assert isinstance(r, fl.Tensor) and r.tolist() == [2.0, 4.0]
    if BACKEND == "numpy":  # np.float32 is a numpy array scalar (np.float64 is also a Python float)
        assert isinstance(a * np.float32(3.0), fl.Tensor)


# ---------------------------------------------------------------------------------------
# Python scalars and promotion
# ---------------------------------------------------------------------------------------
def test_python_scalar_mixing() -> None:
    f32 = t([1.0, 2.0], fl.float32)
    assert (f32 * 2.0).dtype == fl.float32
    assert (2.0 * f32).dtype == fl.float32
    assert (f32 + 1).dtype == fl.float32
    assert (f32**2).dtype == fl.float32
    i64 = t([1, 2])
    assert (i64 + 1.5).dtype == fl.get_default_dtype() == fl.float32
    assert (i64 + 1.5).tolist() == [2.5, 3.5]
    assert (i64 * 2).dtype == fl.int64
    i8 = t([1, 2], fl.int8)
    assert (i8 + 1).dtype == fl.int8
    f64 = t([1.0], fl.float64)
    assert (f64 * 2.0).dtype == fl.float64
    assert (f64 * 1j).dtype == fl.complex128
    assert (f32 * 1j).dtype == fl.complex64
    b = t([True, False])
    assert (b & True).dtype == fl.bool
    assert (b + 1).dtype == fl.int64


def test_default_dtypes() -> None:
    assert fl.asarray(1.0).dtype == fl.float32
    assert fl.asarray(1).dtype == fl.int64
    assert fl.asarray(True).dtype == fl.bool
    assert fl.asarray(1j).dtype == fl.complex64
    assert fl.asarray([1, 2.0]).dtype == fl.float32
    for f in (fl.zeros, fl.ones, fl.empty):
        assert f((2,)).dtype == fl.float32
    assert fl.full((2,), 1).dtype == fl.int64
    assert fl.arange(3).dtype == fl.int64 and fl.arange(3.0).dtype == fl.float32
    assert fl.linspace(0, 1, 3).dtype == fl.float32 and fl.eye(2).dtype == fl.float32
    info = fl.__array_namespace_info__()
    assert info.default_dtypes()["real floating"] == fl.float32
    assert info.default_dtypes()["indexing"] == fl.int64


def test_set_default_dtype() -> None:
    try:
        fl.set_default_dtype(fl.float64)
        assert fl.asarray(1.0).dtype == fl.float64
        assert fl.zeros((1,)).dtype == fl.float64
        assert (t([1, 2]) + 0.5).dtype == fl.float64
        assert fl.asarray(1j).dtype == fl.complex128
        assert fl.__array_namespace_info__().default_dtypes()["real floating"] == fl.float64
        assert fl.get_default_dtype() == fl.float64
        with pytest.raises(fl.DTypeError, match="float"):
            fl.set_default_dtype(fl.int32)
    finally:
        fl.set_default_dtype(fl.float32)
    assert fl.asarray(1.0).dtype == fl.float32


INTS = [fl.int8, fl.int16, fl.int32, fl.int64]
UINTS = [fl.uint8, fl.uint16, fl.uint32, fl.uint64]
FLOATS = [fl.float32, fl.float64]
COMPLEX = [fl.complex64, fl.complex128]


def _expected(a, b):
    """The standard's promotion table (None where it defines no result)."""
    if a == b:
        return a
    kinds = {a.kind, b.kind}
    if "b" in kinds:
        return None
    if kinds <= {"i", "u"}:
        if a.kind == b.kind:
            return a if a.bits > b.bits else b
        s, u = (a, b) if a.kind == "i" else (b, a)
        if s.bits > u.bits:
            return s
        for cand in INTS:
            if cand.bits > u.bits:
                return cand
        return None
    if kinds & {"i", "u"}:
        return None  # mixed integer and floating kinds: not defined by the standard
    bits = builtins.max(a.bits // (2 if a.kind == "c" else 1), b.bits // (2 if b.kind == "c" else 1))
    if "c" in kinds:
        return fl.complex64 if bits == 32 else fl.complex128
    return fl.float32 if bits == 32 else fl.float64


@pytest.mark.parametrize("a,b", list(itertools.product(INTS + UINTS + FLOATS + COMPLEX + [fl.bool], repeat=2)))
def test_promotion_table(a, b) -> None:
    exp = _expected(a, b)
    if exp is None:
        return
    assert fl.result_type(a, b) == exp
    x = fl.ones((2,), dtype=a)
    y = fl.ones((2,), dtype=b)
    if a.kind != "b":
        assert (x + y).dtype == exp


def test_result_type_with_scalars() -> None:
    assert fl.result_type(fl.int8, 1) == fl.int8
    assert fl.result_type(fl.int8, 1.0) == fl.float32
    assert fl.result_type(fl.float64, 1.0) == fl.float64
    assert fl.result_type(fl.float32, 1j) == fl.complex64


# ---------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------
def test_getitem_forms() -> None:
    x = fl.reshape(fl.arange(24), (2, 3, 4))
    ref = [[[i * 12 + j * 4 + k for k in range(4)] for j in range(3)] for i in range(2)]
    assert x[1].tolist() == ref[1]
    assert x[-1, 2].tolist() == ref[1][2]
    assert x[0, 1, 2].tolist() == ref[0][1][2]
    assert x[:, 1].tolist() == [r[1] for r in ref]
    assert x[..., 0].tolist() == [[r[0] for r in p] for p in ref]
    assert x[0, ::2, 1:3].tolist() == [row[1:3] for row in ref[0][::2]]
    assert x[0, ::-1, 0].tolist() == [ref[0][j][0] for j in (2, 1, 0)]
    assert x[None, 0].shape == (1, 3, 4)
    assert x[0, None, :, None].shape == (1, 3, 1, 4)
    assert x[()].shape == (2, 3, 4)
    i = fl.asarray([1, 0, 1])
    assert x[i, 0, 0].tolist() == [12, 0, 12]
    assert x[i, i, fl.asarray(3)].tolist() == [ref[1][1][3], ref[0][0][3], ref[1][1][3]]
    mask = x[0, 0] > 1
    assert x[0, 0][mask].tolist() == [2, 3]
    assert x[t(1)].tolist() == ref[1]  # a 0-d integer Tensor is an index
    with pytest.raises(IndexError, match="out of bounds"):
        x[2]
    with pytest.raises(IndexError):
        x[0, 0, 0, 0]
    with pytest.raises(TypeError, match="integer or bool"):
        x[t([0.5])]


def test_setitem_forms() -> None:
    x = fl.zeros((3, 4))
    x[0] = 1.0
    x[1, 1:3] = t([2.0, 3.0])
    x[2, -1] = 4
    x[..., 0] += 10.0
    assert x.tolist() == [[11.0, 1.0, 1.0, 1.0], [10.0, 2.0, 3.0, 0.0], [10.0, 0.0, 0.0, 4.0]]
    assert x.dtype == fl.float32
    y = fl.zeros((4,))
    y[fl.asarray([0, 2])] = t([5.0, 6.0])
    assert y.tolist() == [5.0, 0.0, 6.0, 0.0]
    y[y > 5.5] = -1.0
    assert y.tolist() == [5.0, 0.0, -1.0, 0.0]
    z = fl.setitem(y, 1, 7.0)
    assert z.tolist() == [5.0, 7.0, -1.0, 0.0] and y.tolist() == [5.0, 0.0, -1.0, 0.0]
    assert fl.index_add(fl.zeros((3,)), fl.asarray([0, 0, 2]), 1.0).tolist() == [2.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------------------
def test_python_conversions() -> None:
    assert bool(t(1.0)) is True and bool(t([0.0])) is False
    assert int(t(3.7)) == 3 and int(t([[2]])) == 2
    assert float(t(2.5)) == 2.5
    assert complex(t(1.0)) == 1 + 0j
    assert operator.index(t(4)) == 4
    assert [10, 20, 30][t(1)] == 20
    with pytest.raises(TypeError, match="integer"):
        operator.index(t(1.0))
    with pytest.raises(TypeError, match="one element"):
        float(t([1.0, 2.0]))
    with pytest.raises((TypeError, ValueError)):
        bool(t([1.0, 2.0]))
    assert t([[1.5]]).item() == 1.5
    with pytest.raises(ValueError, match="one element"):
        t([1.0, 2.0]).item()
    assert t([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert isinstance(t(1.0).item(), float) and isinstance(t(1).item(), int)
    assert len(t([1, 2, 3])) == 3 and [v.item() for v in t([1, 2])] == [1, 2]
    with pytest.raises(TypeError):
        len(t(1.0))


def test_numpy_interop() -> None:
    np = pytest.importorskip("numpy")
    x = t([1.0, 2.0])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.tolist() == [1.0, 2.0]
    b = np.asarray(x)
    assert b.dtype == np.float32 and b.tolist() == [1.0, 2.0]
    n = fl.asarray(np.arange(3.0))
    assert n.backend == "numpy" and n.dtype == fl.float64  # arrays keep their backend and dtype


def test_dlpack() -> None:
    np = pytest.importorskip("numpy")
    x = t([1.0, 2.0, 3.0])
    assert x.__dlpack_device__()[0] == 1  # CPU
    y = fl.from_dlpack(x)
    assert y.tolist() == [1.0, 2.0, 3.0]
    assert np.from_dlpack(x).tolist() == [1.0, 2.0, 3.0]
    cap = x.__dlpack__(stream=None, max_version=(1, 0), dl_device=None, copy=None)
    assert cap is not None


def test_repr_and_copy() -> None:
    x = t([1.0, 2.0])
    r = repr(x)
    assert r.startswith("Tensor(") and "float32" in r and BACKEND in r
    assert str(x) == r
    assert "int64" in repr(t([1]))
    c = copy.deepcopy(x)
    assert c is not x and c.tolist() == x.tolist()
    s = copy.copy(x)
    s += 1.0
    assert x.tolist() == [1.0, 2.0]
    seen = []
    fl.grad(lambda v: seen.append(repr(v)) or fl.sum(v))(x)
    assert "grad" in seen[0] and "shape=(2,)" in seen[0]
    import pickle

    assert pickle.loads(pickle.dumps(x)).tolist() == [1.0, 2.0]


def test_metadata() -> None:
    x = fl.zeros((2, 3), dtype=fl.float64)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == fl.float64
    assert x.backend == BACKEND and not x.is_tracer
    assert x.device is not None and x.to_device(x.device).shape == (2, 3)
    assert x.__array_namespace__() is fl
    with pytest.raises(ValueError, match="api_version"):
        x.__array_namespace__(api_version="1999.01")
    assert x.sum().shape == () and x.reshape(3, 2).shape == (3, 2) and x.flatten().shape == (6,)
    assert fl.Tensor([1.0, 2.0]).dtype == fl.float32


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------
def test_default_backend_context_manager() -> None:
    assert fl.default_backend_name() == BACKEND
    with fl.default_backend(OTHER) as b:
        y = fl.ones((2,))
        assert fl.default_backend_name() == OTHER
        assert b.name == OTHER
    assert y.backend == OTHER
    assert fl.ones((2,)).backend == BACKEND


def test_to_backend() -> None:
    x = t([1.0, 2.0], fl.float64)
    y = fl.to_backend(x, OTHER)
    assert y.backend == OTHER and y.dtype == fl.float64 and y.tolist() == [1.0, 2.0]
    z = fl.to_backend(y, BACKEND)
    assert z.backend == BACKEND and z.tolist() == [1.0, 2.0]
    tree = fl.to_backend({"a": x, "b": [x, 3]}, OTHER)
    assert tree["a"].backend == OTHER and tree["b"][1] == 3
    assert fl.to_backend(x, BACKEND) is x
    g = fl.grad(lambda v: fl.sum(v * v))(y)
    assert g.backend == OTHER


def test_mixed_backends_raise() -> None:
    x = t([1.0, 2.0])
    y = fl.to_backend(x, OTHER)
    for op in (operator.add, operator.mul, fl.maximum, fl.matmul, lambda a, b: fl.stack([a, b])):
        with pytest.raises(fl.BackendMismatchError) as ei:
            op(x, y)
        msg = str(ei.value)
        assert BACKEND in msg and OTHER in msg and "to_backend" in msg
    assert issubclass(fl.BackendMismatchError, TypeError)


def test_unknown_backend_and_objects() -> None:
    with pytest.raises(fl.BackendError, match="unknown backend"):
        fl.to_backend(t([1.0]), "no_such_backend")
    with pytest.raises(fl.BackendError, match="unknown backend"):
        with fl.default_backend("no_such_backend"):
            pass
    with pytest.raises(fl.BackendError, match="unknown backend"):
        fl.set_default_backend("no_such_backend")
    with pytest.raises(fl.BackendError, match="object"):
        fl.asarray(object())
    with pytest.raises((fl.DTypeError, fl.BackendError)):
        fl.asarray([1.0, "a"])
    with pytest.raises(TypeError):
        t([1.0]) + "a"
    with pytest.raises(TypeError):
        t([1.0]) @ 2.0


def test_shape_errors() -> None:
    with pytest.raises(fl.ShapeError) as ei:
        fl.ones((2, 3)) @ fl.ones((2, 3))
    assert "(2, 3)" in str(ei.value) and "matmul" in str(ei.value)
    with pytest.raises(fl.ShapeError, match="broadcast"):
        fl.ones((2,)) + fl.ones((3,))
    with pytest.raises(fl.ShapeError, match="reshape"):
        fl.reshape(fl.ones((2, 3)), (4,))
    with pytest.raises(fl.ShapeError, match="in-place"):
        x = fl.ones((2,))
        x += fl.ones((3, 2))
    with pytest.raises(fl.DTypeError):
        fl.astype(t([1.0]), "not a dtype")
    assert issubclass(fl.ShapeError, ValueError)


MIXED_KEYS = [
    lambda i, j: (i, slice(1, 3), j),
    lambda i, j: (0, slice(None), j),
    lambda i, j: (None, i),
    lambda i, j: (i, None, j),
    lambda i, j: (slice(None, None, -1), 0, j, None),
    lambda i, j: (slice(None), slice(None), j, i[:, :1] * 0 + 1),
    lambda i, j: (Ellipsis, i[:, 0]),
    lambda i, j: (i, j, Ellipsis, 1),
]


@pytest.mark.parametrize("make", MIXED_KEYS, ids=[str(k) for k in range(len(MIXED_KEYS))])
def test_mixed_integer_array_keys_follow_numpy(make) -> None:
    """Integer arrays mixed with slices, ints and None index (and assign) as in NumPy, on every backend."""
    np = pytest.importorskip("numpy")
    ref = np.arange(2 * 3 * 4 * 2).reshape(2, 3, 4, 2)
    x = fl.reshape(fl.arange(2 * 3 * 4 * 2), (2, 3, 4, 2))
    ni, nj = np.array([[0], [1]]), np.array([1, 2, 0])
    key_np = make(ni, nj)
    key_fl = make(fl.asarray(ni.tolist()), fl.asarray(nj.tolist()))
    assert np.array_equal(np.asarray(x[key_fl].tolist()), ref[key_np])
    expected = ref.copy()
    expected[key_np] = -1
    y = fl.asarray(x, copy=True)
    y[key_fl] = -1
    assert np.array_equal(np.asarray(y.tolist()), expected)
    g = fl.grad(lambda v: fl.sum(v[key_fl] * 2.0))(fl.astype(x, fl.float64))
    counts = np.zeros(ref.shape)
    np.add.at(counts, key_np, 2.0)
    assert np.array_equal(np.asarray(g.tolist()), counts)
