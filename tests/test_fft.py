"""The ``fft`` extension: values vs numpy.fft, linear-map derivatives, vmap, dtypes, errors.

Each transform is linear, so its jvp must equal the transform of the tangent (checked
against finite differences) and its vjp must be the transpose under JAX's real pairing
``Re<vjp(u), v> == Re<u, jvp(v)>``, including cropping / zero-padding to ``n`` / ``s``
and the Hermitian halving of rfft / irfft / hfft / ihfft.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _helpers import T

import functorch_lite as fl

F = fl.fft
EPS = 1e-6


def N(t: Any) -> np.ndarray:
    return np.asarray(t.tolist()) if isinstance(t, fl.Tensor) else np.asarray(t)


def rand(rng: np.random.Generator, shape: tuple[int, ...], cplx: bool) -> np.ndarray:
    a = rng.standard_normal(shape)
    return a + 1j * rng.standard_normal(shape) if cplx else a


def close(a: Any, b: Any, rtol: float = 1e-7, atol: float = 1e-9, what: str = "") -> None:
    a, b = N(a), N(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


# name -> (fl function, numpy function, input shape, input is complex)
CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any], tuple[int, ...], bool]] = {}


def case(name: str, shape: tuple[int, ...], cplx: bool, **kw: Any) -> None:
    fn = name.split("/")[0]
    CASES[name] = (lambda x, f=fn: getattr(F, f)(x, **kw), lambda x, f=fn: getattr(np.fft, f)(x, **kw), shape, cplx)


for _norm in ("backward", "ortho", "forward"):
    case(f"fft/{_norm}", (2, 5), True, norm=_norm)
    case(f"ifft/{_norm}", (5, 2), True, axis=0, norm=_norm)
    case(f"rfft/{_norm}", (2, 6), False, norm=_norm)
    case(f"irfft/{_norm}", (2, 4), True, norm=_norm)
    case(f"hfft/{_norm}", (4,), True, norm=_norm)
    case(f"ihfft/{_norm}", (2, 5), False, norm=_norm)
    case(f"fftn/{_norm}", (2, 3, 4), True, norm=_norm)
    case(f"rfftn/{_norm}", (3, 4), False, norm=_norm)
    case(f"irfftn/{_norm}", (3, 3), True, norm=_norm)
case("fft/real_input", (6,), False)
case("fft/crop", (2, 6), True, n=4)
case("fft/pad", (2, 3), True, n=5)
case("ifft/pad", (3, 2), True, n=4, axis=0)
case("rfft/odd_pad", (5,), False, n=7)
case("rfft/crop", (2, 6), False, n=3, axis=-1)
case("rfft/crop0", (6, 2), False, n=3, axis=0)
case("irfft/crop0", (5, 2), True, n=4, axis=0)
case("irfft/odd", (2, 4), True, n=7)
case("irfft/even_crop", (6,), True, n=4)
case("irfft/axis0", (3, 2), True, axis=0)
case("hfft/n", (3, 2), True, n=5, axis=0)
case("ihfft/n", (6,), False, n=4)
case("fftn/s_axes", (3, 4, 2), True, s=(2, 5), axes=(0, 1))
case("ifftn/s", (3, 4), True, s=(4, 3))
case("fftn/axes_order", (3, 4), True, axes=(1, 0))
case("rfftn/s_axes", (3, 4, 5), False, s=(4, 3), axes=(2, 0))
case("rfftn/s", (4, 5), False, s=(3, 6))
case("irfftn/s_axes", (3, 4, 2), True, s=(4, 5), axes=(0, 1))
case("irfftn/odd", (3, 3), True, s=(2, 5))
case("ifftn/ortho_axes", (2, 3, 2), True, axes=(0, 2), norm="ortho")
case("fftshift/all", (3, 4), False)
case("fftshift/axes", (3, 5), True, axes=(1,))
case("ifftshift/all", (5, 2), False)
case("ifftshift/axes", (3, 4), False, axes=0)


def make(name: str, cplx: bool | None = None, seed: int = 0) -> tuple[Callable[..., Any], fl.Tensor, np.ndarray]:
    fn, _, shape, c = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()) + seed)
    a = rand(rng, shape, c if cplx is None else cplx)
    return fn, T(a), a


@pytest.mark.filterwarnings("ignore:`axes` should not be:DeprecationWarning")  # numpy's own s-without-axes
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_vs_numpy(name: str) -> None:
    fn, x, a = make(name)
    ref = CASES[name][1](a)
    out = fn(x)
    close(out, ref, what=name)
    assert (out.dtype.kind == "c") == np.iscomplexobj(ref), f"{name}: dtype {out.dtype}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_jvp_vjp_transpose(name: str) -> None:
    fn, x, _ = make(name)
    rng = np.random.default_rng(3)
    v = T(rand(rng, x.shape, x.dtype.kind == "c"))
    out, tan = fl.jvp(fn, (x,), (v,))
    fd = (N(fn(x + EPS * v)) - N(fn(x - EPS * v))) / (2 * EPS)
    close(tan, fd, rtol=1e-6, atol=1e-7, what=f"{name}: jvp vs FD")
    close(tan, fn(v), rtol=1e-12, atol=1e-12, what=f"{name}: jvp is the op on the tangent")
    _, pull = fl.vjp(fn, x)
    u = T(rand(rng, out.shape, out.dtype.kind == "c"))
    (ct,) = pull(u)
    assert ct.shape == x.shape and ct.dtype == x.dtype
    lhs = float(np.real(np.sum(N(ct) * N(v))))
    rhs = float(np.real(np.sum(N(u) * N(tan))))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10), f"{name}: transpose identity"


@pytest.mark.parametrize(
    "name", ["fft/backward", "rfft/odd_pad", "irfft/odd", "hfft/n", "ihfft/ortho", "rfftn/s_axes", "irfftn/odd"]
)
def test_complex_input_transpose(name: str) -> None:
    """Complex inputs to every op that accepts them (rfft's inputs stay real)."""
    fn, x, _ = make(name, cplx=CASES[name][3])
    rng = np.random.default_rng(5)
    v = T(rand(rng, x.shape, x.dtype.kind == "c"))
    out, tan = fl.jvp(fn, (x,), (v,))
    u = T(rand(rng, out.shape, out.dtype.kind == "c"))
    (ct,) = fl.vjp(fn, x)[1](u)
    assert float(np.real(np.sum(N(ct) * N(v)))) == pytest.approx(float(np.real(np.sum(N(u) * N(tan)))), rel=1e-10)


@pytest.mark.parametrize(
    "name", ["rfft/backward", "irfft/ortho", "fftn/s_axes", "rfftn/s", "irfftn/s_axes", "hfft/forward"]
)
def test_grad_and_jacrev_vs_fd(name: str) -> None:
    fn, x, _ = make(name, seed=1)
    rng = np.random.default_rng(9)
    out = fn(x)
    w1, w2 = T(rand(rng, out.shape, False)), T(rand(rng, out.shape, False))

    def loss(y: Any) -> Any:
        o = fn(y)
        if o.dtype.kind == "c":
            return fl.sum(fl.real(o) * w1 + fl.imag(o) ** 2 * w2)
        return fl.sum(fl.sin(o) * w1)

    g = N(fl.grad(loss)(x))
    e = np.zeros(x.shape)
    e[(0,) * x.ndim] = 1.0
    for d in [1.0] + ([1j] if x.dtype.kind == "c" else []):
        te = T(e * d)
        num = (float(loss(x + EPS * te)) - float(loss(x - EPS * te))) / (2 * EPS)
        # JAX's convention: the directional derivative along d is Re(g * d).
        assert float(np.real(g[(0,) * x.ndim] * d)) == pytest.approx(num, rel=1e-6, abs=1e-7)
    if x.dtype.kind == "f":
        jac = fl.jacrev(lambda y: fl.real(fn(y)) if out.dtype.kind == "c" else fn(y))(x)
        col = (N(fn(x + EPS * T(e))) - N(fn(x - EPS * T(e)))) / (2 * EPS)
        close(N(jac)[(...,) + (0,) * x.ndim], np.real(col), rtol=1e-6, atol=1e-7, what=f"{name}: jacrev")


@pytest.mark.parametrize(
    "name",
    [
        "fft/crop",
        "ifft/pad",
        "rfft/odd_pad",
        "irfft/odd",
        "hfft/n",
        "ihfft/n",
        "fftn/s_axes",
        "rfftn/s_axes",
        "irfftn/s_axes",
        "fftshift/axes",
        "ifftshift/all",
    ],
)
def test_vmap_vs_loop(name: str) -> None:
    fn, _, shape, c = CASES[name]
    rng = np.random.default_rng(21)
    xs = [T(rand(rng, shape, c)) for _ in range(3)]
    for axis in (0, -1):
        got = fl.vmap(fn, in_axes=axis)(fl.stack(xs, axis=axis))
        close(got, np.stack([N(fn(x)) for x in xs]), rtol=1e-12, atol=1e-12, what=f"{name}: vmap in_axes={axis}")

    def loss(y: Any) -> Any:
        o = fn(y)
        return fl.sum(fl.real(o * o))

    got = fl.vmap(fl.grad(loss))(fl.stack(xs))
    close(got, np.stack([N(fl.grad(loss)(x)) for x in xs]), rtol=1e-10, atol=1e-12, what=f"{name}: vmap(grad)")


@pytest.mark.parametrize(
    "name",
    [
        "fft/backward",
        "rfft/backward",
        "irfft/backward",
        "fftn/backward",
        "rfftn/s",
        "irfftn/odd",
        "hfft/backward",
        "ihfft/backward",
        "fftshift/all",
    ],
)
def test_float32(name: str) -> None:
    fn, x, _ = make(name)
    x32 = fl.astype(x, fl.complex64 if x.dtype.kind == "c" else fl.float32)
    out = fn(x32)
    assert out.dtype in (fl.float32, fl.complex64), f"{name}: {out.dtype}"
    close(out, fn(x), rtol=1e-4, atol=1e-5, what=f"{name}: float32 values")
    g = fl.grad(lambda y: fl.sum(fl.real(fn(y))))(x32)
    assert g.dtype == x32.dtype and g.shape == x32.shape
    assert F.fft(fl.ones((4,), dtype=fl.float32)).dtype == fl.complex64
    assert fl.grad(lambda y: fl.sum(fl.real(F.fft(y))))(fl.ones((4,), dtype=fl.float32)).dtype == fl.float32


def test_freqs_and_shifts() -> None:
    close(F.fftfreq(5, d=0.5), np.fft.fftfreq(5, d=0.5), rtol=1e-6)
    close(F.rfftfreq(6), np.fft.rfftfreq(6), rtol=1e-6)
    assert F.fftfreq(4).dtype == fl.float32
    assert F.rfftfreq(4, dtype=fl.float64).dtype == fl.float64
    x = np.arange(12.0).reshape(3, 4)
    close(F.fftshift(T(x)), np.fft.fftshift(x))
    close(F.ifftshift(T(x), axes=(1,)), np.fft.ifftshift(x, axes=(1,)))
    close(F.ifftshift(F.fftshift(T(x))), x)
    assert fl.fft is F and T(x).__array_namespace__().fft.rfft is F.rfft


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"fft\.fft: norm"):
        F.fft(fl.ones((4,)), norm="nope")
    with pytest.raises(ValueError, match=r"fft\.rfft: n must be a positive int"):
        F.rfft(fl.ones((4,)), n=0)
    with pytest.raises(fl.DTypeError, match=r"fft\.fft.*int64"):
        F.fft(fl.asarray([1, 2, 3]))
    with pytest.raises(fl.DTypeError, match=r"fft\.rfft.*complex"):
        F.rfft(F.fft(fl.ones((4,))))
    with pytest.raises(fl.ShapeError, match=r"fft\.fftn"):
        F.fftn(fl.ones((2, 2)), axes=(0, 2))
    with pytest.raises(ValueError, match=r"fft\.fftn: s .* and axes"):
        F.fftn(fl.ones((2, 2)), s=(2,), axes=(0, 1))
    with pytest.raises(ValueError, match=r"repeated axis"):
        F.fftn(fl.ones((2, 2)), axes=(0, 0))
    with pytest.raises(fl.ShapeError, match=r"0-d"):
        F.fft(fl.asarray(1.0))
    with pytest.raises(ValueError, match=r"fftfreq: n"):
        F.fftfreq(0)
