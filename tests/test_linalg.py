"""The ``linalg`` extension: values vs numpy, derivatives vs finite differences, vmap vs loops.

Every case is a function of float arrays (gauge-fixed where a decomposition is only
unique up to signs / phases) checked in float64 for

* values against ``numpy.linalg``,
* jvp against central finite differences (real and complex inputs),
* vjp: the transpose identity ``Re<vjp(u), v> == Re<u, jvp(v)>`` (JAX's real pairing),
* ``grad`` / ``jacrev`` against finite differences,
* ``vmap(f)`` and ``vmap(grad f)`` against Python loops,
* float32 in -> float32 out, gradients included.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _helpers import T

import functorch_lite as fl

EPS = 1e-6
L = fl.linalg


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def N(t: Any) -> np.ndarray:
    return np.asarray(t.tolist()) if isinstance(t, fl.Tensor) else np.asarray(t)


def leaves(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def rand(rng: np.random.Generator, shape: tuple[int, ...], cplx: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape)
    if cplx:
        a = a + 1j * rng.standard_normal(shape)
    return a


def well(rng: np.random.Generator, shape: tuple[int, ...], cplx: bool = False) -> np.ndarray:
    """Well-conditioned square matrices: random plus a multiple of the identity."""
    n = shape[-1]
    return rand(rng, shape, cplx) * 0.5 + 2.0 * np.eye(n)


def sym(x: fl.Tensor) -> fl.Tensor:
    return (x + fl.conj(x.mT) if x.dtype.kind == "c" else x + x.mT) * 0.5


def spd(x: fl.Tensor) -> fl.Tensor:
    xh = fl.conj(x.mT) if x.dtype.kind == "c" else x.mT
    n = x.shape[-1]
    return x @ xh + fl.astype(T(np.eye(n) * n), x.dtype)


def phase(p: fl.Tensor) -> fl.Tensor:
    """p / |p| (the sign for real p); smooth away from 0."""
    return p / fl.abs(p)


def gauge_eigh(r: Any) -> tuple[fl.Tensor, fl.Tensor]:
    w, v = r
    return w, v * fl.conj(phase(v[..., :1, :])) if v.dtype.kind == "c" else v * phase(v[..., :1, :])


def gauge_svd(r: Any) -> tuple[fl.Tensor, fl.Tensor, fl.Tensor]:
    u, s, vh = r
    c = phase(u[..., :1, :])  # (..., 1, K)
    if u.dtype.kind == "c":
        return u * fl.conj(c), s, vh * fl.matrix_transpose(c)
    return u * c, s, vh * fl.matrix_transpose(c)


def rdot(xs: list[Any], ys: list[Any]) -> float:
    """Real pairing sum Re(x * y) over lists of arrays."""
    return float(sum(np.real(np.sum(N(x) * N(y))) for x, y in zip(xs, ys, strict=True)))


def fd(f: Callable[..., Any], args: list[fl.Tensor], dirs: list[fl.Tensor], eps: float = EPS) -> list[np.ndarray]:
    plus = leaves(f(*[a + eps * d for a, d in zip(args, dirs, strict=True)]))
    minus = leaves(f(*[a - eps * d for a, d in zip(args, dirs, strict=True)]))
    return [(N(p) - N(m)) / (2 * eps) for p, m in zip(plus, minus, strict=True)]


def close(a: Any, b: Any, rtol: float = 1e-6, atol: float = 1e-7, what: str = "") -> None:
    a, b = N(a), N(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------------------------------
# The table: name -> (function of Tensors, input makers (rng, cplx) -> numpy arrays)
# ---------------------------------------------------------------------------------------
Maker = Callable[[np.random.Generator, bool], np.ndarray]


def M(shape: tuple[int, ...], kind: str = "rand") -> Maker:
    return lambda rng, c: (well if kind == "well" else rand)(rng, shape, c)


CASES: dict[str, tuple[Callable[..., Any], list[Maker]]] = {
    "inv": (L.inv, [M((3, 3), "well")]),
    "inv_batch": (L.inv, [M((2, 3, 3), "well")]),
    "solve": (L.solve, [M((3, 3), "well"), M((3, 2))]),
    "solve_vec": (L.solve, [M((3, 3), "well"), M((3,))]),
    "solve_bcast": (L.solve, [M((2, 3, 3), "well"), M((3, 2))]),
    "cholesky": (lambda x: L.cholesky(spd(x)), [M((3, 3))]),
    "cholesky_upper": (lambda x: L.cholesky(spd(x), upper=True), [M((2, 3, 3))]),
    "det": (L.det, [M((3, 3), "well")]),
    "det_batch": (L.det, [M((2, 2, 2), "well")]),
    "slogdet": (lambda x: tuple(L.slogdet(x)), [M((3, 3))]),
    "eigh": (lambda x: gauge_eigh(L.eigh(sym(x))), [M((3, 3))]),
    "eigh_batch": (lambda x: gauge_eigh(L.eigh(sym(x))), [M((2, 3, 3))]),
    "eigvalsh": (lambda x: L.eigvalsh(sym(x)), [M((4, 4))]),
    "qr_tall": (lambda x: tuple(L.qr(x)), [M((4, 3))]),
    "qr_square": (lambda x: tuple(L.qr(x, mode="complete")), [M((2, 3, 3))]),
    "svd_tall": (lambda x: gauge_svd(L.svd(x, full_matrices=False)), [M((4, 3))]),
    "svd_wide": (lambda x: gauge_svd(L.svd(x, full_matrices=False)), [M((3, 4))]),
    "svd_square": (lambda x: gauge_svd(L.svd(x)), [M((2, 3, 3))]),
    "svdvals": (L.svdvals, [M((4, 3))]),
    "diagonal": (L.diagonal, [M((3, 4))]),
    "diagonal_off": (lambda x: L.diagonal(x, offset=2), [M((2, 3, 4))]),
    "diagonal_neg": (lambda x: L.diagonal(x, offset=-1), [M((3, 4))]),
    "trace": (L.trace, [M((2, 3, 3))]),
    "trace_off": (lambda x: L.trace(x, offset=-1), [M((4, 3))]),
    "pinv_tall": (L.pinv, [M((4, 3))]),
    "pinv_wide": (L.pinv, [M((2, 3, 4))]),
    "matrix_power3": (lambda x: L.matrix_power(x, 3), [M((3, 3))]),
    "matrix_power_neg": (lambda x: L.matrix_power(x, -2), [M((3, 3), "well")]),
    "outer": (L.outer, [M((3,)), M((2,))]),
    "cross": (L.cross, [M((2, 3)), M((3,))]),
    "cross_axis": (lambda a, b: L.cross(a, b, axis=0), [M((3, 2)), M((3, 2))]),
    "vector_norm": (L.vector_norm, [M((3, 4))]),
    "vector_norm_axis": (lambda x: L.vector_norm(x, axis=(0, 2), keepdims=True), [M((2, 3, 2))]),
    "vector_norm_1": (lambda x: L.vector_norm(x, axis=-1, ord=1), [M((3, 4))]),
    "vector_norm_inf": (lambda x: L.vector_norm(x, axis=0, ord=math.inf), [M((3, 4))]),
    "vector_norm_-inf": (lambda x: L.vector_norm(x, ord=-math.inf), [M((3, 4))]),
    "vector_norm_3": (lambda x: L.vector_norm(x, ord=3), [M((5,))]),
    "matmul": (L.matmul, [M((2, 3)), M((3, 4))]),
    "tensordot": (lambda a, b: L.tensordot(a, b, axes=1), [M((2, 3)), M((3, 4))]),
    "vecdot": (L.vecdot, [M((2, 3)), M((3,))]),
    "matrix_transpose": (L.matrix_transpose, [M((2, 3, 4))]),
}
for _ord in ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf):
    CASES[f"matrix_norm_{_ord}"] = (lambda x, o=_ord: L.matrix_norm(x, ord=o), [M((3, 4))])
CASES["matrix_norm_keepdims"] = (lambda x: L.matrix_norm(x, ord="nuc", keepdims=True), [M((2, 3, 2))])

# Complex-valued inputs (JAX's convention: cotangents are not conjugated).
COMPLEX = [
    "inv",
    "solve",
    "solve_vec",
    "cholesky",
    "det",
    "slogdet",
    "eigh",
    "eigvalsh",
    "qr_tall",
    "qr_square",
    "svd_tall",
    "svd_wide",
    "svd_square",
    "svdvals",
    "diagonal_off",
    "trace",
    "matrix_norm_fro",
    "matrix_norm_nuc",
    "vector_norm",
    "pinv_tall",
]


def make(name: str, seed: int = 0, cplx: bool = False) -> tuple[Callable[..., Any], list[fl.Tensor]]:
    fn, makers = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()) + seed)
    return fn, [T(m(rng, cplx)) for m in makers]


# ---------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------
def test_values_vs_numpy() -> None:
    rng = np.random.default_rng(1)
    a = well(rng, (2, 3, 3))
    b = rand(rng, (2, 3, 2))
    s = rand(rng, (3, 3))
    s = s @ s.T + 3 * np.eye(3)
    x = rand(rng, (4, 3))
    ta, tb, ts, tx = T(a), T(b), T(s), T(x)
    close(L.inv(ta), np.linalg.inv(a))
    close(L.solve(ta, tb), np.linalg.solve(a, b))
    close(L.solve(ta[0], tb[0, :, 0]), np.linalg.solve(a[0], b[0, :, 0]))
    close(L.det(ta), np.linalg.det(a))
    sign, logdet = np.linalg.slogdet(a)
    r = L.slogdet(ta)
    close(r.sign, sign)
    close(r.logabsdet, logdet)
    close(L.cholesky(ts), np.linalg.cholesky(s))
    close(L.cholesky(ts, upper=True), np.linalg.cholesky(s).T)
    w, v = L.eigh(ts)
    close(w, np.linalg.eigvalsh(s))
    close(N(v) @ np.diag(N(w)) @ N(v).T, s, atol=1e-10)
    close(L.eigvalsh(ts), np.linalg.eigvalsh(s))
    q, rr = L.qr(tx)
    close(N(q) @ N(rr), x, atol=1e-10)
    assert q.shape == (4, 3) and rr.shape == (3, 3)
    q2, r2 = L.qr(tx, mode="complete")
    assert q2.shape == (4, 4) and r2.shape == (4, 3)
    u, sv, vh = L.svd(tx)
    assert u.shape == (4, 4) and vh.shape == (3, 3)
    close(sv, np.linalg.svd(x, compute_uv=False))
    close(L.svdvals(tx), np.linalg.svd(x, compute_uv=False))
    close(L.pinv(tx), np.linalg.pinv(x), atol=1e-10)
    close(L.matrix_power(ta, 3), np.linalg.matrix_power(a, 3))
    close(L.matrix_power(ta, -2), np.linalg.matrix_power(a, -2))
    close(L.matrix_power(ta, 0), np.broadcast_to(np.eye(3), a.shape))
    close(L.matrix_rank(T(np.array([[1.0, 2.0], [2.0, 4.0]]))), 1)
    close(L.matrix_rank(ta), [3, 3])
    close(L.diagonal(tx, offset=1), np.diagonal(x, offset=1))
    close(L.diagonal(tx, offset=-2), np.diagonal(x, offset=-2))
    close(L.trace(ta, offset=1), np.trace(a, offset=1, axis1=-2, axis2=-1))
    close(L.outer(tx[0], tx[1]), np.outer(x[0], x[1]))
    close(L.cross(tx[:2], tx[2]), np.cross(x[:2], x[2]))
    for o in ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf):
        close(L.matrix_norm(tx, ord=o), np.linalg.norm(x, ord=o), what=f"matrix_norm ord={o}")
    assert L.matrix_norm(ta, keepdims=True).shape == (2, 1, 1)
    for o in (2, 1, 0, 3, 0.5, math.inf, -math.inf):
        close(L.vector_norm(tx, ord=o), np.linalg.norm(x.ravel(), ord=o), what=f"vector_norm ord={o}")
    close(L.vector_norm(tx, axis=0, keepdims=True), np.linalg.norm(x, axis=0, keepdims=True))
    c = rand(rng, (3, 3), True)
    close(L.vector_norm(T(c)), np.linalg.norm(c))
    close(L.inv(T(c + 3 * np.eye(3))), np.linalg.inv(c + 3 * np.eye(3)))
    assert L.trace(T(np.arange(9, dtype=np.int32).reshape(3, 3))).dtype == fl.int64
    assert L.trace(ta, dtype=fl.float32).dtype == fl.float32


def test_namedtuples_and_namespace() -> None:
    r = L.eigh(T(np.eye(2)))
    assert isinstance(r, L.EighResult) and r.eigenvectors.shape == (2, 2)
    assert L.qr(T(np.eye(2))).Q.shape == (2, 2)
    assert L.svd(T(np.eye(2))).Vh.shape == (2, 2)
    assert L.slogdet(T(np.eye(2))).sign.item() == 1.0
    assert fl.linalg.matmul is fl.matmul and fl.linalg.vecdot is fl.vecdot
    xp = T(np.eye(2)).__array_namespace__()
    assert xp.linalg.inv is L.inv


# ---------------------------------------------------------------------------------------
# derivatives
# ---------------------------------------------------------------------------------------
def _check_first_order(name: str, cplx: bool) -> None:
    f, args = make(name, cplx=cplx)
    rng = np.random.default_rng(7)
    dirs = [T(rand(rng, a.shape, cplx)) for a in args]
    out = leaves(f(*args))
    _, tan = fl.jvp(lambda *a: f(*a), tuple(args), tuple(dirs))
    tan = leaves(tan)
    ref = fd(f, args, dirs)
    for i, (t, r) in enumerate(zip(tan, ref, strict=True)):
        close(t, r, rtol=1e-5, atol=1e-6, what=f"{name}: jvp vs FD, output {i}")
    o2, pull = fl.vjp(lambda *a: f(*a), *args)
    us = [T(rand(rng, o.shape, o.dtype.kind == "c")) for o in out]
    cts = pull(tuple(us) if isinstance(o2, tuple) else us[0])
    for c, a in zip(cts, args, strict=True):
        assert c.shape == a.shape and c.dtype == a.dtype, (
            f"{name}: cotangent {c.shape} {c.dtype} for {a.shape} {a.dtype}"
        )
    lhs = rdot(list(cts), dirs)
    assert lhs == pytest.approx(rdot(us, tan), rel=1e-8, abs=1e-8), f"{name}: transpose identity"
    assert lhs == pytest.approx(rdot(us, ref), rel=1e-5, abs=1e-5), f"{name}: <vjp(u), v> vs FD"


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_order_real(name: str) -> None:
    _check_first_order(name, False)


@pytest.mark.parametrize("name", COMPLEX)
def test_first_order_complex(name: str) -> None:
    _check_first_order(name, True)


@pytest.mark.parametrize("name", ["inv", "det", "slogdet", "eigh", "svd_tall", "qr_tall", "cholesky", "pinv_wide"])
def test_grad_and_jacrev_vs_fd(name: str) -> None:
    f, args = make(name, seed=3)
    rng = np.random.default_rng(11)
    ws = [T(rand(rng, o.shape)) for o in leaves(f(*args))]

    def loss(*a: Any) -> Any:
        return sum(fl.sum(fl.sin(o) * w) for o, w in zip(leaves(f(*a)), ws, strict=True))

    grads = fl.grad(loss, argnums=tuple(range(len(args))))(*args)
    x = args[0]
    for idx in [(0,) * x.ndim, tuple(s - 1 for s in x.shape)]:
        e = np.zeros(x.shape)
        e[idx] = 1.0
        num = fd(loss, args, [T(e)] + [a * 0.0 for a in args[1:]])[0]
        assert float(N(grads[0])[idx]) == pytest.approx(float(num), rel=1e-5, abs=1e-6), f"{name}: grad{idx}"
    out0 = leaves(f(*args))[-1]
    jac = fl.jacrev(lambda a: leaves(f(a, *args[1:]))[-1])(x)
    assert jac.shape == out0.shape + x.shape
    e = np.zeros(x.shape)
    e[(0,) * x.ndim] = 1.0
    col = fd(lambda a: leaves(f(a, *args[1:]))[-1], [x], [T(e)])[0]
    close(N(jac)[(...,) + (0,) * x.ndim], col, rtol=1e-5, atol=1e-6, what=f"{name}: jacrev column")


@pytest.mark.parametrize("name", ["inv", "det", "eigvalsh", "svdvals", "cholesky", "qr_tall", "solve"])
def test_second_order(name: str) -> None:
    """Hessian-vector product: jvp of grad and grad of grad against FD of the gradient."""
    f, args = make(name, seed=5)
    rng = np.random.default_rng(13)
    w = T(rand(rng, leaves(f(*args))[0].shape))

    def loss(x: Any) -> Any:
        return fl.sum(fl.sin(leaves(f(x, *args[1:]))[0]) * w)

    g = fl.grad(loss)
    x = args[0]
    v = T(rand(rng, x.shape))
    num = (N(g(x + EPS * v)) - N(g(x - EPS * v))) / (2 * EPS)
    _, fwd = fl.jvp(g, (x,), (v,))
    rev = fl.grad(lambda y: fl.sum(g(y) * v))(x)
    close(fwd, num, rtol=1e-4, atol=1e-5, what=f"{name}: jvp(grad)")
    close(rev, num, rtol=1e-4, atol=1e-5, what=f"{name}: grad(grad)")


# ---------------------------------------------------------------------------------------
# vmap
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_vs_loop(name: str) -> None:
    f, _ = make(name)
    rng = np.random.default_rng(17)
    makers = CASES[name][1]
    per = [[T(m(rng, False)) for m in makers] for _ in range(2)]
    in_axes = tuple(
        0 if i == 0 else (None if len(makers) > 1 and name.startswith(("solve", "cross")) else 0)
        for i in range(len(makers))
    )
    stacked = [fl.stack([p[i] for p in per]) if ax == 0 else per[0][i] for i, ax in enumerate(in_axes)]
    examples = [[p[i] if ax == 0 else per[0][i] for i, ax in enumerate(in_axes)] for p in per]
    got = leaves(fl.vmap(f, in_axes=in_axes)(*stacked))
    exp = [leaves(f(*ex)) for ex in examples]
    for k, g in enumerate(got):
        close(g, np.stack([N(e[k]) for e in exp]), rtol=1e-10, atol=1e-10, what=f"{name}: vmap output {k}")

    def loss(*a: Any) -> Any:
        return sum(fl.sum(fl.sin(o)) for o in leaves(f(*a)))

    g_got = fl.vmap(fl.grad(loss), in_axes=in_axes)(*stacked)
    g_exp = np.stack([N(fl.grad(loss)(*ex)) for ex in examples])
    close(g_got, g_exp, rtol=1e-9, atol=1e-9, what=f"{name}: vmap(grad)")


def test_vmap_batch_axis_not_first() -> None:
    rng = np.random.default_rng(19)
    a = well(rng, (2, 3, 3))
    stacked = T(np.moveaxis(a, 0, 2))  # batch axis last
    got = fl.vmap(L.inv, in_axes=2, out_axes=1)(stacked)
    close(got, np.moveaxis(np.linalg.inv(a), 0, 1))
    w, v = fl.vmap(lambda x: L.eigh(sym(x)), in_axes=2)(stacked)
    close(w, np.stack([np.linalg.eigvalsh((m + m.T) / 2) for m in a]))


# ---------------------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "inv",
        "solve",
        "cholesky",
        "det",
        "slogdet",
        "eigh",
        "qr_tall",
        "svd_tall",
        "svdvals",
        "trace",
        "diagonal",
        "pinv_tall",
        "matrix_norm_fro",
        "matrix_norm_2",
        "vector_norm",
        "cross",
        "matrix_power3",
    ],
)
def test_float32(name: str) -> None:
    f, args = make(name)
    args32 = [fl.astype(a, fl.float32) for a in args]
    outs = leaves(f(*args32))
    for o, r in zip(outs, leaves(f(*args)), strict=True):
        assert o.dtype == fl.float32, f"{name}: float32 in gave {o.dtype}"
        close(o, r, rtol=2e-3, atol=2e-4, what=f"{name}: float32 values")
    grads = fl.grad(lambda *a: sum(fl.sum(o) for o in leaves(f(*a))), argnums=tuple(range(len(args32))))(*args32)
    for gr, a in zip(grads, args32, strict=True):
        assert gr.dtype == fl.float32 and gr.shape == a.shape
    _, t = fl.jvp(lambda *a: f(*a), tuple(args32), tuple(fl.ones_like(a) for a in args32))
    assert all(x.dtype == fl.float32 for x in leaves(t))


def test_complex64_stays_complex64() -> None:
    x = fl.astype(T(well(np.random.default_rng(2), (3, 3), True)), fl.complex64)
    assert L.inv(x).dtype == fl.complex64
    assert L.svdvals(x).dtype == fl.float32
    g = fl.grad(lambda m: fl.sum(fl.real(L.det(m))))(x)
    assert g.dtype == fl.complex64


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------
def test_errors() -> None:
    with pytest.raises(fl.ShapeError, match=r"linalg\.inv.*\(2, 3\)"):
        L.inv(fl.ones((2, 3)))
    with pytest.raises(fl.ShapeError, match=r"linalg\.det"):
        L.det(fl.ones((3,)))
    with pytest.raises(fl.ShapeError, match=r"linalg\.solve"):
        L.solve(fl.ones((3, 3)), fl.ones((2,)))
    with pytest.raises(fl.ShapeError, match=r"linalg\.cross"):
        L.cross(fl.ones((2,)), fl.ones((2,)))
    with pytest.raises(fl.ShapeError, match=r"linalg\.outer"):
        L.outer(fl.ones((2, 2)), fl.ones((2,)))
    with pytest.raises(fl.ShapeError, match=r"linalg\.diagonal"):
        L.diagonal(fl.ones((2,)))
    with pytest.raises(fl.DTypeError, match=r"linalg\.inv.*int64"):
        L.inv(fl.asarray([[1, 0], [0, 1]]))
    with pytest.raises(ValueError, match=r"qr.*mode"):
        L.qr(fl.ones((2, 2)), mode="r")
    with pytest.raises(ValueError, match=r"matrix_norm.*ord"):
        L.matrix_norm(fl.ones((2, 2)), ord=3)
    with pytest.raises(TypeError, match=r"matrix_power"):
        L.matrix_power(fl.ones((2, 2)), 1.5)
    with pytest.raises(NotImplementedError, match=r"svd.*full_matrices=False"):
        fl.grad(lambda x: fl.sum(L.svd(x).U))(fl.ones((3, 2)))
    with pytest.raises(NotImplementedError, match=r"qr.*M >= N"):
        fl.grad(lambda x: fl.sum(L.qr(x).R))(fl.ones((2, 3)))
    assert issubclass(fl.ShapeError, ValueError)


def test_degenerate_eigenvalues_give_finite_gradients() -> None:
    # eigvalsh of the identity: eigenvalues are degenerate, their gradient is still defined.
    g = fl.grad(lambda x: fl.sum(L.eigvalsh(x) ** 2))(T(np.eye(3)))
    close(g, 2 * np.eye(3))
    g2 = fl.grad(lambda x: fl.sum(L.svdvals(x)))(T(np.diag([2.0, 2.0, 1.0])))
    assert np.all(np.isfinite(N(g2)))


def test_hessian_of_logdet_and_jacfwd() -> None:
    """hessian (jacfwd of jacrev) of log|det A| is -A^-T (x) A^-T: d2/dA_ij dA_kl = -Ainv_li Ainv_jk."""
    a = well(np.random.default_rng(23), (3, 3))
    h = fl.hessian(lambda x: L.slogdet(x).logabsdet)(T(a))
    ai = np.linalg.inv(a)
    close(h, -np.einsum("li,jk->ijkl", ai, ai), rtol=1e-8, atol=1e-10)
    s = rand(np.random.default_rng(29), (3, 3))
    jf = fl.jacfwd(lambda x: L.eigvalsh(sym(x)))(T(s))
    jr = fl.jacrev(lambda x: L.eigvalsh(sym(x)))(T(s))
    close(jf, jr, rtol=1e-10, atol=1e-12)
    jf = fl.jacfwd(lambda x: fl.real(fl.fft.rfft(x, n=6)))(T(s[0]))
    close(jf, np.real(np.fft.rfft(np.eye(3), n=6, axis=0)), rtol=1e-10, atol=1e-12)
