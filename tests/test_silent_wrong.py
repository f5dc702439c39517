"""Regression tests for paths where a transform (or a save / pickle round trip) gave a wrong
answer without an error. Every expected value comes from an independent oracle: a hand-derived
formula, finite differences, numpy itself or the operating system; never from functorch_lite.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import stat
from typing import Any

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn

X0 = [0.3, -1.2, 2.5]


def a64(v: Any) -> fl.Tensor:
    return fl.asarray(v, dtype=fl.float64)


def close(got: Any, want: Any, tol: float = 1e-9) -> None:
    g = np.asarray(fl.stop_gradient(got) if isinstance(got, fl.Tensor) else got, dtype=np.float64)
    np.testing.assert_allclose(g, np.asarray(want, dtype=np.float64), rtol=tol, atol=tol)


def fd_grad(f: Any, x: list[float], eps: float = 1e-6) -> list[float]:
    """Central differences of a numpy function ``f`` (the oracle)."""
    out = []
    for i in range(len(x)):
        hi = np.array(x, dtype=np.float64)
        lo = np.array(x, dtype=np.float64)
        hi[i] += eps
        lo[i] -= eps
        out.append((f(hi) - f(lo)) / (2 * eps))
    return out


# ----------------------------------------------------------------------------------------------
# 1. asarray(copy=True) copies under every transform
# ----------------------------------------------------------------------------------------------
def _copy_then_write(v: Any) -> Any:
    y = fl.asarray(v, copy=True)
    y[0] = 5.0
    return fl.sum(y * v)


def _copy_then_write_np(v: np.ndarray) -> float:
    y = np.array(v, copy=True)
    y[0] = 5.0
    return float(np.sum(y * v))


def _hand_grad(v: list[float]) -> list[float]:
    # f(v) = 5 v0 + v1^2 + v2^2
    return [5.0, 2 * v[1], 2 * v[2]]


def test_asarray_copy_under_grad() -> None:
    g = fl.grad(_copy_then_write)(a64(X0))
    close(g, [5.0, -2.4, 5.0])
    close(g, fd_grad(_copy_then_write_np, X0), 1e-6)


def test_asarray_copy_value_and_caller_unchanged() -> None:
    x = a64(X0)
    v, g = fl.value_and_grad(_copy_then_write)(x)
    close(v, _copy_then_write_np(np.array(X0)))
    close(x, X0)  # the caller's Tensor is not written to


def test_asarray_copy_under_vjp_and_jacrev() -> None:
    out, f_vjp = fl.vjp(_copy_then_write, a64(X0))
    close(out, _copy_then_write_np(np.array(X0)))
    close(f_vjp(a64(1.0))[0], _hand_grad(X0))
    close(fl.jacrev(_copy_then_write)(a64(X0)), _hand_grad(X0))


def test_asarray_copy_under_jvp_and_jacfwd() -> None:
    t = [1.0, 0.5, -2.0]
    out, tan = fl.jvp(_copy_then_write, (a64(X0),), (a64(t),))
    close(out, _copy_then_write_np(np.array(X0)))
    close(tan, float(np.dot(_hand_grad(X0), t)))
    close(fl.jacfwd(_copy_then_write)(a64(X0)), _hand_grad(X0))


def test_asarray_copy_under_vmap() -> None:
    rows = [X0, [1.0, 2.0, -3.0]]
    got = fl.vmap(_copy_then_write)(a64(rows))
    close(got, [_copy_then_write_np(np.array(r)) for r in rows])


def test_asarray_copy_nested() -> None:
    rows = [X0, [1.0, 2.0, -3.0]]
    close(fl.vmap(fl.grad(_copy_then_write))(a64(rows)), [_hand_grad(r) for r in rows])
    # grad of a sum over a vmap: the gradient of each row
    close(fl.grad(lambda m: fl.sum(fl.vmap(_copy_then_write)(m)))(a64(rows)), [_hand_grad(r) for r in rows])
    # jvp over vmap
    tans = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    _, tan = fl.jvp(fl.vmap(_copy_then_write), (a64(rows),), (a64(tans),))
    close(tan, [float(np.dot(_hand_grad(r), t)) for r, t in zip(rows, tans, strict=True)])

    # second order: f(v) = sum(copy(v) with y0 = 5, times v**2) = 5 v0^2 + v1^3 + v2^3
    def f2(v: Any) -> Any:
        y = fl.asarray(v, copy=True)
        y[0] = 5.0
        return fl.sum(y * v * v)

    close(fl.hessian(f2)(a64(X0)), np.diag([10.0, 6 * X0[1], 6 * X0[2]]))
    close(fl.grad(lambda v: fl.grad(f2)(v)[0])(a64(X0)), [10.0, 0.0, 0.0])


def test_asarray_copy_is_differentiable_identity() -> None:
    g = fl.grad(lambda v: fl.sum(fl.asarray(v, copy=True) ** 2))(a64(X0))
    close(g, [2 * x for x in X0])
    _, tan = fl.jvp(lambda v: fl.asarray(v, copy=True), (a64(X0),), (a64([1.0, 2.0, 3.0]),))
    close(tan, [1.0, 2.0, 3.0])
    # a copy with a dtype: still differentiable (a cast), and a new Tensor
    g = fl.grad(lambda v: fl.sum(fl.asarray(v, dtype=fl.float32, copy=True) * 3.0))(a64(X0))
    close(g, [3.0, 3.0, 3.0])


def test_asarray_copy_none_shares_like_numpy() -> None:
    # copy=None may reuse the input (it does, for a Tensor): a write goes through, as in numpy
    def f(v: Any) -> Any:
        y = fl.asarray(v)
        y[0] = 5.0
        return fl.sum(y * v)

    def f_np(v: np.ndarray) -> float:
        v = v.copy()
        y = np.asarray(v)
        y[0] = 5.0
        return float(np.sum(y * v))

    close(fl.grad(f)(a64(X0)), fd_grad(f_np, X0), 1e-6)


def test_asarray_copy_false_refuses_a_copy() -> None:
    x = fl.asarray([1.0, 2.0])
    assert fl.asarray(x, copy=False) is x
    with pytest.raises(ValueError, match="copy=False"):
        fl.asarray(x, dtype=fl.float64, copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        fl.grad(lambda v: fl.sum(fl.asarray(v, dtype=fl.float32, copy=False)))(a64(X0))


def _xpx_at_set(x: Any, idx: Any, value: Any, copy: bool | None) -> Any:
    """array-api-extra's ``at(x)[idx].set(value, copy=...)`` on a writeable array."""
    xp = x.__array_namespace__()
    if copy:
        x = xp.asarray(x, copy=True)
    x[idx] = value
    return x


def test_array_api_extra_at_set_copy_pattern() -> None:
    def f(v: Any) -> Any:
        y = _xpx_at_set(v, 0, 5.0, copy=True)
        return fl.sum(y * v)

    close(fl.grad(f)(a64(X0)), _hand_grad(X0))

    # the value set is itself traced: f(v, w) = sum(at(v)[1].set(w) * v) = v0^2 + w v1 + v2^2
    def h(v: Any, w: Any) -> Any:
        return fl.sum(_xpx_at_set(v, 1, w, copy=True) * v)

    gv, gw = fl.grad(h, argnums=(0, 1))(a64(X0), a64(0.7))
    close(gv, [2 * X0[0], 0.7, 2 * X0[2]])
    close(gw, X0[1])
    rows = [X0, [1.0, 2.0, -3.0]]
    close(fl.vmap(fl.grad(f))(a64(rows)), [_hand_grad(r) for r in rows])


def test_setitem_on_a_recorded_constant_does_not_change_the_tape() -> None:
    # a concrete Tensor used by a recorded op, then written to: the tape keeps the old value
    def f(w: Any) -> Any:
        c = fl.asarray([1.0, 2.0, 3.0], dtype=fl.float64)
        y = c * w
        c[0] = 100.0
        c += 1.0
        return fl.sum(y * w) + fl.sum(c)

    # f = sum(c_old * w^2) + const  ->  grad = 2 c_old w
    close(fl.grad(f)(a64(X0)), [2 * 1.0 * X0[0], 2 * 2.0 * X0[1], 2 * 3.0 * X0[2]])


# ----------------------------------------------------------------------------------------------
# 2. leaving the graph
# ----------------------------------------------------------------------------------------------
def _exports() -> dict[str, Any]:
    return {
        "np.asarray": lambda t: np.asarray(t),
        "np.array": lambda t: np.array(t),
        "__array__": lambda t: t.__array__(),
        "__dlpack__": lambda t: t.__dlpack__(),
        "np.from_dlpack": lambda t: np.from_dlpack(t),
        "numpy": lambda t: t.numpy(),
        "tolist": lambda t: t.tolist(),
        "pickle": lambda t: pickle.dumps(t),
    }


EXPORTS = _exports()


def _exporting(how: str) -> Any:
    def f(x: Any) -> Any:
        EXPORTS[how](x * 2.0)  # the values of a Tensor that carries a derivative leave the graph
        return fl.sum(x * x)

    return f


@pytest.mark.parametrize("how", sorted(EXPORTS))
def test_export_under_grad_raises(how: str) -> None:
    with pytest.raises(fl.LeakedGradientError, match=r"grad.*stop_gradient"):
        fl.grad(_exporting(how))(a64(X0))


@pytest.mark.parametrize("how", sorted(EXPORTS))
def test_export_under_jvp_raises(how: str) -> None:
    with pytest.raises(fl.LeakedGradientError, match=r"jvp.*stop_gradient"):
        fl.jvp(_exporting(how), (a64(X0),), (a64([1.0, 1.0, 1.0]),))


@pytest.mark.parametrize(
    "transform",
    [
        lambda f: fl.vjp(f, a64(X0)),
        lambda f: fl.jacrev(f)(a64(X0)),
        lambda f: fl.jacfwd(f)(a64(X0)),
        lambda f: fl.hessian(f)(a64(X0)),
        lambda f: fl.linearize(f, a64(X0)),
        lambda f: fl.value_and_grad(f)(a64(X0)),
    ],
    ids=["vjp", "jacrev", "jacfwd", "hessian", "linearize", "value_and_grad"],
)
def test_export_under_other_transforms_raises(transform: Any) -> None:
    with pytest.raises(fl.LeakedGradientError):
        transform(_exporting("np.asarray"))


def test_leaked_gradient_error_is_a_transform_error() -> None:
    with pytest.raises(fl.TransformError):
        fl.grad(_exporting("numpy"))(a64(X0))


def test_export_inside_grad_names_the_fix() -> None:
    with pytest.raises(fl.LeakedGradientError) as info:
        fl.grad(_exporting("np.asarray"))(a64(X0))
    msg = str(info.value)
    assert "fl.stop_gradient" in msg and "level=" not in msg


def test_scalar_conversions_stay_pathwise() -> None:
    # Python control flow on values works inside grad; the branch taken gives the gradient
    def f(x: Any) -> Any:
        s = fl.sum(x)
        assert isinstance(float(s), float) and isinstance(s.item(), float)
        assert int(fl.astype(s, fl.int64) * 0) == 0
        if bool(s > 0):
            return fl.sum(x**2)
        return fl.sum(x**3)

    close(fl.grad(f)(a64(X0)), [2 * x for x in X0])  # sum(X0) = 1.6 > 0
    close(fl.grad(f)(a64([-1.0, -2.0])), [3.0, 12.0])
    _, tan = fl.jvp(f, (a64([-1.0, -2.0]),), (a64([1.0, 1.0]),))
    close(tan, 15.0)
    close(fl.grad(lambda x: x * float(x))(a64(3.0)), 3.0)  # float() is a constant: d(x * 3)/dx


def test_export_after_stop_gradient_works() -> None:
    def f(x: Any) -> Any:
        c = np.asarray(fl.stop_gradient(x))
        assert isinstance(c, np.ndarray)
        d = fl.stop_gradient(x)
        d.tolist(), d.numpy(), np.from_dlpack(d)
        return fl.sum(x * fl.asarray(c.tolist(), dtype=x.dtype))  # c is a constant: the gradient is c

    close(fl.grad(f)(a64(X0)), X0)
    _, tan = fl.jvp(f, (a64(X0),), (a64([1.0, 1.0, 1.0]),))
    close(tan, sum(X0))


def test_export_of_integer_values_inside_grad_works() -> None:
    # an integer Tensor carries no gradient, so handing it out loses nothing
    def f(x: Any) -> Any:
        idx = fl.argsort(x)
        order = idx.tolist()
        return fl.sum(x[order[0]] * 1.0) + fl.sum(x * 0.0)

    close(fl.grad(f)(a64(X0)), [0.0, 1.0, 0.0])


def test_vmap_tracers_keep_their_own_error() -> None:
    for how in ("np.asarray", "numpy", "tolist", "__dlpack__"):
        with pytest.raises(fl.TransformError) as info:
            fl.vmap(_exporting(how))(a64([X0, X0]))
        assert not isinstance(info.value, fl.LeakedGradientError)
        with pytest.raises(fl.TransformError) as info:
            fl.vmap(fl.grad(_exporting(how)))(a64([X0, X0]))
        assert not isinstance(info.value, fl.LeakedGradientError)


def test_a_payload_without_value_keeps_its_error() -> None:
    # what a staging / jit tracer does: concrete() raises ConcretizationError
    from functorch_lite._core.engine import Payload, Trace, new_trace
    from functorch_lite._core.tensor import make_tracer

    class StagePayload(Payload):
        __slots__ = ()

        def __init__(self, trace: Trace) -> None:
            self.trace = trace

        @property
        def shape(self) -> tuple[int, ...]:
            return (3,)

        @property
        def dtype(self) -> Any:
            return fl.float64

        @property
        def device(self) -> Any:
            return "cpu"

        def concrete(self, t: Any) -> Any:
            raise fl.ConcretizationError("no value while staging")

    class StageTrace(Trace):
        kind_name = "stage"

    with new_trace(StageTrace) as tr:
        t = make_tracer(StagePayload(tr), fl.asarray(0.0)._xp)
        for how in ("np.asarray", "numpy", "tolist", "__dlpack__"):
            with pytest.raises(fl.ConcretizationError):
                EXPORTS[how](t)
        assert t.shape == (3,) and t.device == "cpu" and t.size == 3
        assert "Tensor(" in repr(t)


def test_repr_and_print_of_tracers(capsys: Any) -> None:
    seen: list[str] = []

    def f(x: Any) -> Any:
        seen.append(repr(x))
        seen.append(str(x * 2.0))
        print(x)
        return fl.sum(x)

    fl.grad(f)(a64(X0))
    fl.jvp(f, (a64(X0),), (a64(X0),))
    fl.vmap(f)(a64([X0, X0]))
    fl.vmap(fl.grad(f))(a64([X0, X0]))
    out = capsys.readouterr().out
    assert len(seen) == 8 and all(s.startswith("Tensor(") for s in seen)
    assert "level=" not in out and not any("level=" in s for s in seen)


# ----------------------------------------------------------------------------------------------
# 3. metadata on every tracer
# ----------------------------------------------------------------------------------------------
def _meta(t: Any) -> tuple[Any, ...]:
    r = (t.shape, t.dtype, t.device, t.ndim, t.size, t.mT.shape)
    if t.ndim == 2:
        r += (t.T.shape,)
    return r


def _expect(shape: tuple[int, ...], device: Any) -> tuple[Any, ...]:
    n = math.prod(shape)
    r = (shape, fl.float64, device, len(shape), n, shape[:-2] + (shape[-1], shape[-2]))
    if len(shape) == 2:
        r += ((shape[1], shape[0]),)
    return r


def _record_meta(seen: list[Any]) -> Any:
    def f(x: Any) -> Any:
        seen.append(_meta(x))
        return fl.sum(x * x)

    return f


@pytest.mark.parametrize(
    "name",
    ["grad", "jvp", "vjp", "vmap", "vmap(grad)", "grad(vmap)", "jvp(vmap)", "vmap(vmap)", "vmap(jvp)", "grad(grad)"],
)
def test_metadata_under_transforms(name: str) -> None:
    x4 = a64((np.arange(24.0).reshape(2, 3, 4) / 10).tolist())  # per-call shape (3, 4) under one vmap
    x2 = a64((np.arange(12.0).reshape(3, 4) / 10).tolist())
    dev = x2.device
    seen: list[Any] = []
    f = _record_meta(seen)
    if name == "grad":
        fl.grad(f)(x2)
    elif name == "jvp":
        fl.jvp(f, (x2,), (x2,))
    elif name == "vjp":
        fl.vjp(f, x2)
    elif name == "vmap":
        fl.vmap(f)(x4)
    elif name == "vmap(grad)":
        fl.vmap(fl.grad(f))(x4)
    elif name == "grad(vmap)":
        fl.grad(lambda m: fl.sum(fl.vmap(f)(m)))(x4)
    elif name == "jvp(vmap)":
        fl.jvp(fl.vmap(f), (x4,), (x4,))
    elif name == "vmap(vmap)":
        fl.vmap(fl.vmap(f))(fl.ones((2, 5, 3, 4), dtype=fl.float64))
    elif name == "vmap(jvp)":
        fl.vmap(lambda r: fl.jvp(f, (r,), (r,))[1])(x4)
    elif name == "grad(grad)":
        fl.grad(lambda v: fl.sum(fl.grad(f)(v)))(x2)
    assert seen and all(m == _expect((3, 4), dev) for m in seen), seen


def test_metadata_under_vmap_of_other_ranks() -> None:
    seen: list[Any] = []
    fl.vmap(_record_meta(seen), in_axes=1)(fl.ones((3, 7, 4, 5), dtype=fl.float64))
    fl.vmap(lambda r: fl.sum(r * 0.0) + _record_meta(seen)(r[0]))(fl.ones((2, 1, 6, 2), dtype=fl.float64))
    dev = a64(1.0).device
    assert seen == [_expect((3, 4, 5), dev), _expect((6, 2), dev)]


# ----------------------------------------------------------------------------------------------
# 4. float64 on jax without x64
# ----------------------------------------------------------------------------------------------
def test_jax_float64_without_x64_raises() -> None:
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("jax runs with x64 enabled here")
    with fl.default_backend("jax"):
        x = fl.zeros((2,))
        assert x.dtype is fl.float32 and str(x._a.dtype) == "float32"
        for make in (
            lambda: fl.zeros((2,), dtype=fl.float64),
            lambda: fl.asarray([1.0, 2.0], dtype=fl.float64),
            lambda: fl.astype(x, fl.float64),
            lambda: fl.to_backend(fl.asarray(np.zeros(2, dtype=np.float64)), "jax"),
            lambda: fl.from_dlpack(np.zeros(2, dtype=np.float64)),
            lambda: fl._backend.host_to_tensor(np.zeros(2, dtype=np.float64), "jax"),  # nn.load, unpickling
        ):
            with pytest.raises(fl.DTypeError, match="JAX_ENABLE_X64") as info:
                make()
            assert "jax_enable_x64" in str(info.value)
        with pytest.raises(fl.DTypeError, match="JAX_ENABLE_X64"):
            fl.zeros((2,), dtype=fl.complex128)
        with pytest.raises(fl.DTypeError, match="JAX_ENABLE_X64"):
            nn.Linear(2, 2, dtype=fl.float64)
        assert "float64" not in fl.__array_namespace_info__().dtypes()
    jax.config.update("jax_enable_x64", True)
    try:
        with fl.default_backend("jax"):
            y = fl.zeros((2,), dtype=fl.float64)
            assert y.dtype is fl.float64 and str(y._a.dtype) == "float64"
    finally:
        jax.config.update("jax_enable_x64", False)


# ----------------------------------------------------------------------------------------------
# 5. pickling keeps the backend
# ----------------------------------------------------------------------------------------------
BACKENDS = ["numpy", "array_api_strict"]


def _backend_ok(name: str) -> None:
    if name not in fl.available_backends():
        pytest.skip(f"{name} is not installed")


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("values,dtype", [([1.5, -2.0], "float32"), ([[1, 2], [3, 4]], "int64"), ([True], "bool")])
def test_pickle_tensor_keeps_backend(name: str, values: Any, dtype: str) -> None:
    _backend_ok(name)
    with fl.default_backend(name):
        t = fl.asarray(values, dtype=getattr(fl, dtype))
    for other in BACKENDS:  # whatever the default backend is when it comes back
        with fl.default_backend(other):
            r = pickle.loads(pickle.dumps(t))
        assert type(r) is fl.Tensor
        assert r.backend == name and r.dtype is getattr(fl, dtype)
        assert np.array_equal(np.asarray(r), np.asarray(values))


@pytest.mark.parametrize("name", BACKENDS)
def test_pickle_parameter_and_module_keep_backend(name: str) -> None:
    _backend_ok(name)
    fl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)).to_backend(name)
    model[0].bias.requires_grad = False
    p = nn.Parameter(fl.to_backend(fl.asarray([1.0, 2.0], dtype=fl.float64), name), requires_grad=False)
    for other in BACKENDS:
        with fl.default_backend(other):
            p2 = pickle.loads(pickle.dumps(p))
            m2 = pickle.loads(pickle.dumps(model))
        assert isinstance(p2, nn.Parameter) and not p2.requires_grad
        assert p2.backend == name and p2.dtype is fl.float64 and p2.tolist() == [1.0, 2.0]
        before = dict(model.named_parameters())
        after = dict(m2.named_parameters())
        assert before.keys() == after.keys()
        for k, v in before.items():
            w = after[k]
            assert isinstance(w, nn.Parameter) and w.backend == name and w.dtype is v.dtype
            assert w.requires_grad == v.requires_grad
            assert np.array_equal(np.asarray(w), np.asarray(v))
        x = fl.to_backend(fl.ones((4, 3)), name)
        assert np.array_equal(np.asarray(m2(x)), np.asarray(model(x)))


# ----------------------------------------------------------------------------------------------
# 6. nn.save respects the umask
# ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_save_respects_umask(tmp_path: Any, mask: int, mode: int) -> None:
    pytest.importorskip("safetensors")
    old = os.umask(mask)
    try:
        path = tmp_path / "m.safetensors"
        nn.save(nn.Linear(2, 2), path)
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
        with open(tmp_path / "plain", "w") as fh:  # the oracle: what open() makes
            fh.write("x")
        assert stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == mode
        assert sorted(nn.load(path)) == ["bias", "weight"]
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------------------------
# 7. layer attributes never shadow Module methods
# ----------------------------------------------------------------------------------------------
def test_prelu_num_parameters() -> None:
    p = nn.PReLU(num_parameters=3)
    assert p.num_parameters == 3 and int(p.num_parameters) == 3  # torch's attribute
    assert f"{p.num_parameters}" == "3" and "num_parameters=3" in repr(p)
    assert p.num_parameters() == 3  # the Module method
    p.weight.requires_grad = False
    assert p.num_parameters(trainable_only=True) == 0 and p.num_parameters == 3
    assert nn.PReLU().num_parameters == 1
    assert nn.Sequential(nn.Linear(2, 3), nn.PReLU(3)).num_parameters() == 2 * 3 + 3 + 3


def _module_methods() -> set[str]:
    return {n for n in dir(nn.Module) if callable(getattr(nn.Module, n, None)) and not n.startswith("__")}


_CANDIDATE_ARGS: list[tuple[Any, ...]] = [(), (4,), (4, 4), (4, 4, 3), (4, 2, 4), (4, 4, 4, 4)]
_CANDIDATE_KW: list[dict[str, Any]] = [
    {},
    {"normalized_shape": 4},
    {"modules": [nn.Linear(2, 2)]},
    {"d_model": 8, "nhead": 2},
    {"embed_dim": 8, "num_heads": 2},
    {"size": 4},
    {"output_size": 2},
    {"scale_factor": 2},
    {"dim": 4},
]


def _instances() -> list[Any]:
    out = []
    for name in sorted(dir(nn)):
        cls = getattr(nn, name)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            continue
        made = None
        for args in _CANDIDATE_ARGS:
            for kw in _CANDIDATE_KW:
                try:
                    made = cls(*args, **kw)
                    break
                except Exception:
                    continue
            if made is not None:
                break
        if made is not None:
            out.append(made)
    return out


def test_no_layer_shadows_a_module_method() -> None:
    methods = _module_methods()
    instances = _instances()
    assert len(instances) >= 40  # the enumeration found the layers
    bad = []
    for m in instances:
        for n in methods:
            if n in vars(m):
                bad.append(f"{type(m).__name__}.{n} (instance attribute)")
            elif n in m._parameters or n in m._buffers or n in m._modules:
                bad.append(f"{type(m).__name__}.{n} (registered under a method's name)")
            elif not callable(getattr(m, n)):
                bad.append(f"{type(m).__name__}.{n} (not callable on the layer)")
    assert not bad, bad


# ----------------------------------------------------------------------------------------------
# 8. errors name the transform stack, once, without levels
# ----------------------------------------------------------------------------------------------
def _bad_axis(x: Any) -> Any:
    return fl.sum(fl.sum(x, axis=7))


def _stack_of(exc: BaseException) -> list[str]:
    return re.findall(r"\(inside ([^)]*)\)", str(exc))


@pytest.mark.parametrize(
    "run,stack",
    [
        (lambda: fl.grad(_bad_axis)(a64(X0)), "grad"),
        (lambda: fl.jvp(_bad_axis, (a64(X0),), (a64(X0),)), "jvp"),
        (lambda: fl.vmap(_bad_axis)(a64([X0])), "vmap"),
        (lambda: fl.vmap(fl.grad(_bad_axis))(a64([X0])), "vmap > grad"),
        (lambda: fl.grad(fl.grad(lambda x: fl.sum(_bad_axis(x))))(a64(1.0)), "grad > grad"),
        (lambda: fl.grad(lambda m: fl.sum(fl.vmap(_bad_axis)(m)))(a64([X0])), "grad > vmap"),
        (lambda: fl.vmap(fl.vmap(_bad_axis))(a64([[X0]])), "vmap > vmap"),
        (lambda: fl.vmap(lambda r: fl.sum(r) + fl.sum(r, axis=3))(a64([X0])), "vmap"),
        (lambda: fl.vmap(lambda r: fl.nonzero(r)[0])(a64([X0])), "vmap"),
        (lambda: fl.vmap(lambda r: fl.reshape(r, (7,)))(a64([X0])), "vmap"),
        (lambda: fl.grad(lambda x: fl.sum(fl.reshape(x, (2, 2))))(a64(X0)), "grad"),
        (lambda: fl.vmap(fl.grad(lambda x: x * 2.0))(a64([X0])), "vmap"),  # grad's own error
    ],
)
def test_typed_errors_show_the_stack_once(run: Any, stack: str) -> None:
    with pytest.raises(fl.FunctorchLiteError) as info:
        run()
    assert _stack_of(info.value) == [stack], str(info.value)
    assert "level" not in str(info.value)


def test_eager_errors_have_no_stack() -> None:
    with pytest.raises(fl.ShapeError) as info:
        _bad_axis(a64(X0))
    assert "(inside" not in str(info.value)


def test_escaped_tracer_message_has_no_levels() -> None:
    box: list[Any] = []

    def f(x: Any) -> Any:
        box.append(x * 2.0)
        return fl.sum(x)

    fl.grad(f)(a64(X0))
    with pytest.raises(fl.EscapedTracerError) as info:
        fl.sum(box[0])
    msg = str(info.value)
    assert "grad" in msg and "level" not in msg
    with pytest.raises(fl.EscapedTracerError) as info:
        fl.vmap(lambda r: r + box[0])(a64([X0]))
    assert "level" not in str(info.value) and _stack_of(info.value) == ["vmap"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_save_over_a_file_keeps_its_mode(tmp_path: Any) -> None:
    pytest.importorskip("safetensors")
    path = tmp_path / "m.safetensors"
    nn.save(nn.Linear(2, 2), path)
    os.chmod(path, 0o640)
    old = os.umask(0o022)
    try:
        nn.save(nn.Linear(2, 2), path)  # as open(path, "w") would: the existing mode stays
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------------------------
# other paths found: creation functions with a traced value, in-place casts, from_dlpack
# ----------------------------------------------------------------------------------------------
def test_full_like_and_full_with_a_traced_fill() -> None:
    x = a64(X0)
    # f(w) = sum(full_like(x, w) * x) = w * sum(x)
    close(fl.grad(lambda w: fl.sum(fl.full_like(x, w) * x))(a64(0.6)), sum(X0))
    close(fl.grad(lambda w: fl.sum(fl.full((3,), w, dtype=fl.float64) * x))(a64(0.6)), sum(X0))
    _, tan = fl.jvp(lambda w: fl.full_like(x, w), (a64(0.6),), (a64(2.0),))
    close(tan, [2.0, 2.0, 2.0])
    close(fl.vmap(lambda w: fl.full_like(x, w))(a64([1.0, 2.0])), [[1.0] * 3, [2.0] * 3])
    # eager and traced agree on the dtype: a Tensor fill keeps its dtype
    assert fl.full((2,), a64(1.0)).dtype is fl.float64


def test_linspace_with_traced_ends() -> None:
    # linspace(a, b, 5)[i] = a + (b - a) i / 4: d/da sum = 5 - 10/4, d/db sum = 10/4
    ga, gb = fl.grad(lambda a, b: fl.sum(fl.linspace(a, b, 5, dtype=fl.float64)), argnums=(0, 1))(a64(0.5), a64(2.0))
    close(ga, 2.5)
    close(gb, 2.5)
    w = [1.0, -2.0, 0.5, 3.0]
    g = fl.grad(lambda b: fl.sum(fl.linspace(0.0, b, 4, dtype=fl.float64, endpoint=False) * a64(w)))(a64(2.0))
    close(g, sum(wi * i / 4 for i, wi in enumerate(w)))
    got = fl.vmap(lambda b: fl.linspace(0.0, b, 3, dtype=fl.float64))(a64([1.0, 4.0]))
    close(got, np.stack([np.linspace(0.0, 1.0, 3), np.linspace(0.0, 4.0, 3)]))


def test_in_place_op_refuses_a_lossy_cast() -> None:
    # numpy refuses these ("same_kind" casting) and so does torch; truncating would be silent
    x = fl.arange(3)
    with pytest.raises(fl.DTypeError, match="float32"):
        x += 0.5
    with pytest.raises(TypeError):  # (DTypeError; array_api_strict refuses int / int itself)
        x /= 2
    b = fl.asarray([True, False])
    with pytest.raises(fl.DTypeError):
        b += 1
    f = fl.asarray([1.0, 2.0])
    with pytest.raises(fl.DTypeError):
        f += 1j

    # inside grad the derivative would have been dropped with the fraction
    def h(w: Any) -> Any:
        z = fl.zeros((3,), dtype=fl.int64)
        z += w
        return fl.sum(fl.astype(z, fl.float64))

    with pytest.raises(fl.DTypeError):
        fl.grad(h)(a64(0.7))
    # what numpy allows still works: same kind, or a narrower kind into a wider one
    f += fl.arange(2)
    i = fl.arange(3)
    i *= 2
    assert f.tolist() == [1.0, 3.0] and i.tolist() == [0, 2, 4]


def test_from_dlpack_of_a_tracer() -> None:
    # on the tracer's own backend: the same values, still differentiable
    close(fl.grad(lambda v: fl.sum(fl.from_dlpack(v) ** 2))(a64(X0)), [2 * x for x in X0])
    close(fl.grad(lambda v: fl.sum(fl.from_dlpack(v, copy=True) * v))(a64(X0)), [2 * x for x in X0])


def test_jvp_refuses_a_nonzero_tangent_on_an_integer_primal():
    f = lambda x, n: x * fl.astype(n, fl.float32)  # noqa: E731
    x, n = fl.ones((2,)), fl.asarray([1, 2])
    with pytest.raises(fl.TransformError, match="carries no tangent"):
        fl.jvp(f, (x, n), (fl.ones((2,)), fl.asarray([1, 1])))
    _, t = fl.jvp(f, (x, n), (fl.ones((2,)), fl.zeros((2,), dtype=fl.int64)))
    assert t.tolist() == [1.0, 2.0]
