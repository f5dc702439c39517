"""Table-driven tests of the convolution, pooling and resizing layers and their nn.functional twins.

Every layer of ``nn.layers.conv`` and ``nn.layers.pool`` is enrolled in ``CASES`` (a test
fails when one is missing): output shape, float32 in float32 out, gradients by finite
differences (float64), vmap over an extra batch axis equal to a loop; and, where torch is
installed, the same outputs and gradients (inputs and parameters) as torch.nn in float64.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from _helpers import N, T
from _helpers import torch_module as _tm

import functorch_lite as fl
from functorch_lite import nn
from functorch_lite.nn.functional import _conv as FC
from functorch_lite.nn.functional import _pool as FP
from functorch_lite.nn.functional import _upsample as FU
from functorch_lite.nn.layers import conv as conv_mod
from functorch_lite.nn.layers import pool as pool_mod

RNG = np.random.default_rng(0)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


@dataclass
class Case:
    name: str
    make: Callable[[Any], nn.Module]  # dtype -> module
    data: tuple[np.ndarray, ...]  # float inputs
    torch: Callable[[], Any] | None = None  # () -> float64 torch module taking our state dict
    out_shape: tuple[int, ...] | None = None
    fd: bool = True


def _d(*shape: int) -> np.ndarray:
    return RNG.uniform(-2.0, 2.0, size=shape)


def _c(
    name: str,
    cls: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *shapes: tuple[int, ...],
    out: Any = None,
    dtype: bool = True,
    fd: bool = True,
) -> Case:
    def make(dt: Any) -> nn.Module:
        return getattr(nn, cls)(*args, **kwargs, **({"dtype": dt} if dtype else {}))

    return Case(name, make, tuple(_d(*s) for s in shapes), _tm(cls, *args, **kwargs), out, fd)


CASES: list[Case] = [
    _c(
        "Conv1d",
        "Conv1d",
        (4, 6, 3),
        {"stride": 2, "padding": 1, "dilation": 2, "groups": 2},
        (2, 4, 11),
        out=(2, 6, 5),
    ),
    _c("Conv1d-same", "Conv1d", (3, 2, 4), {"padding": "same"}, (2, 3, 7), out=(2, 2, 7)),
    _c("Conv1d-reflect", "Conv1d", (3, 2, 3), {"padding": 2, "padding_mode": "reflect", "bias": False}, (2, 3, 7)),
    _c("Conv2d", "Conv2d", (3, 4, 3), {}, (2, 3, 6, 5), out=(2, 4, 4, 3)),
    _c(
        "Conv2d-stride-pad",
        "Conv2d",
        (2, 4, (3, 2)),
        {"stride": (2, 1), "padding": (1, 2)},
        (2, 2, 7, 5),
        out=(2, 4, 4, 8),
    ),
    _c("Conv2d-dil-groups", "Conv2d", (4, 6, 3), {"dilation": (2, 1), "groups": 2, "padding": 1}, (2, 4, 7, 6)),
    _c(
        "Conv2d-same-even",
        "Conv2d",
        (2, 3, (4, 2)),
        {"padding": "same", "dilation": (1, 2)},
        (2, 2, 6, 5),
        out=(2, 3, 6, 5),
    ),
    _c("Conv2d-valid-unbatched", "Conv2d", (2, 3, 2), {"padding": "valid", "stride": 2}, (2, 5, 6), out=(3, 2, 3)),
    _c("Conv2d-circular", "Conv2d", (2, 3, 3), {"padding": 1, "padding_mode": "circular"}, (2, 2, 5, 4)),
    _c(
        "Conv2d-replicate-depthwise",
        "Conv2d",
        (3, 3, 3),
        {"padding": (1, 2), "padding_mode": "replicate", "groups": 3},
        (1, 3, 4, 4),
    ),
    _c(
        "ConvTranspose1d",
        "ConvTranspose1d",
        (4, 6, 3),
        {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
        (2, 4, 5),
        out=(2, 6, 10),
    ),
    _c(
        "ConvTranspose2d",
        "ConvTranspose2d",
        (3, 2, 3),
        {"stride": 2, "padding": 1, "output_padding": 1},
        (2, 3, 4, 3),
        out=(2, 2, 8, 6),
    ),
    _c(
        "ConvTranspose2d-dil-groups",
        "ConvTranspose2d",
        (4, 6, (2, 3)),
        {"stride": (1, 3), "padding": (0, 2), "dilation": (2, 1), "groups": 2, "bias": False},
        (2, 4, 3, 4),
    ),
    _c("ConvTranspose2d-unbatched", "ConvTranspose2d", (2, 3, 2), {"stride": 2}, (2, 3, 3), out=(3, 6, 6)),
    _c("MaxPool1d", "MaxPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 8), dtype=False),
    _c("MaxPool2d", "MaxPool2d", (2,), {}, (2, 3, 6, 6), out=(2, 3, 3, 3), dtype=False),
    _c("MaxPool2d-3s2p1", "MaxPool2d", (3,), {"stride": 2, "padding": 1}, (2, 2, 7, 6), dtype=False),
    _c(
        "MaxPool2d-dil-ceil",
        "MaxPool2d",
        ((2, 3),),
        {"stride": (2, 1), "dilation": (2, 1), "ceil_mode": True},
        (1, 2, 7, 6),
        dtype=False,
    ),
    _c("MaxPool2d-unbatched", "MaxPool2d", (2,), {"stride": 1}, (3, 4, 4), out=(3, 3, 3), dtype=False),
    _c("AvgPool1d", "AvgPool1d", (3,), {"stride": 2, "padding": 1}, (2, 3, 8), dtype=False),
    _c("AvgPool2d", "AvgPool2d", (2,), {}, (2, 3, 6, 6), out=(2, 3, 3, 3), dtype=False),
    _c(
        "AvgPool2d-ceil-nopad",
        "AvgPool2d",
        (3,),
        {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
        (2, 2, 6, 7),
        dtype=False,
    ),
    _c(
        "AvgPool2d-divisor",
        "AvgPool2d",
        ((3, 2),),
        {"stride": (2, 1), "padding": (1, 0), "divisor_override": 4},
        (2, 2, 5, 4),
        dtype=False,
    ),
    _c("AdaptiveAvgPool1d", "AdaptiveAvgPool1d", (4,), {}, (2, 3, 10), out=(2, 3, 4), dtype=False),
    _c("AdaptiveAvgPool2d", "AdaptiveAvgPool2d", ((3, None),), {}, (2, 3, 7, 5), out=(2, 3, 3, 5), dtype=False),
    _c("AdaptiveAvgPool2d-global", "AdaptiveAvgPool2d", (1,), {}, (3, 5, 4), out=(3, 1, 1), dtype=False),
    _c("Upsample", "Upsample", (), {"scale_factor": 2}, (2, 3, 3, 4), out=(2, 3, 6, 8), dtype=False),
    _c(
        "Upsample-bilinear",
        "Upsample",
        (),
        {"size": (5, 7), "mode": "bilinear"},
        (2, 2, 3, 4),
        out=(2, 2, 5, 7),
        dtype=False,
    ),
    _c(
        "Upsample-bilinear-ac",
        "Upsample",
        (),
        {"scale_factor": (1.5, 2.5), "mode": "bilinear", "align_corners": True},
        (1, 2, 4, 3),
        dtype=False,
    ),
    _c("Upsample-linear", "Upsample", (), {"scale_factor": 1.7, "mode": "linear"}, (2, 3, 5), dtype=False),
    _c("Upsample-nearest-exact", "Upsample", (), {"size": (5, 7), "mode": "nearest-exact"}, (2, 2, 3, 4), dtype=False),
    _c("UpsamplingNearest2d", "UpsamplingNearest2d", (), {"size": (5, 3)}, (1, 2, 3, 2), dtype=False),
    _c("UpsamplingBilinear2d", "UpsamplingBilinear2d", (), {"scale_factor": 2}, (1, 2, 3, 2), dtype=False),
]
IDS = [c.name for c in CASES]


def _build(case: Case, dt: Any) -> tuple[nn.Module, tuple[fl.Tensor, ...]]:
    fl.manual_seed(0)
    return case.make(dt), tuple(T(a, dt) for a in case.data)


def test_every_layer_enrolled() -> None:
    covered = {c.name.split("-")[0] for c in CASES}
    for mod in (conv_mod, pool_mod):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and issubclass(obj, nn.Module):
                assert name in covered, f"{mod.__name__}.{name} is not enrolled in CASES"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_and_float32(case: Case) -> None:
    m, xs = _build(case, fl.float32)
    out = m(*xs)
    assert out.dtype == fl.float32
    if case.out_shape is not None:
        assert out.shape == case.out_shape
    for _, p in m.named_parameters():
        assert p.dtype == fl.float32
    g = fl.grad(lambda mod, *a: fl.sum(mod(*a)), argnums=(0, 1))(m, *xs)
    assert g[1].dtype == fl.float32 and g[1].shape == xs[0].shape


@pytest.mark.parametrize("case", [c for c in CASES if c.fd], ids=[c.name for c in CASES if c.fd])
def test_finite_differences(case: Case) -> None:
    m, xs = _build(case, fl.float64)
    params = m.trainable_parameters()
    ct = T(RNG.normal(size=m(*xs).shape), fl.float64)

    def f(p: dict[str, Any], *inp: Any) -> Any:
        return fl.sum(nn.functional_call(m, p, *inp) * ct)

    g = fl.grad(f, argnums=tuple(range(1 + len(xs))))(params, *xs)
    h = 1e-6
    for _ in range(2):
        vp = {n: T(RNG.normal(size=p.shape), fl.float64) for n, p in params.items()}
        vx = [T(RNG.normal(size=x.shape), fl.float64) for x in xs]
        plus = f({n: p + h * vp[n] for n, p in params.items()}, *[x + h * v for x, v in zip(xs, vx, strict=True)])
        minus = f({n: p - h * vp[n] for n, p in params.items()}, *[x - h * v for x, v in zip(xs, vx, strict=True)])
        fd = (float(plus) - float(minus)) / (2 * h)
        an = sum(float(fl.sum(g[0][n] * vp[n])) for n in params)
        an += sum(float(fl.sum(gx * v)) for gx, v in zip(g[1:], vx, strict=True))
        assert math.isclose(an, fd, rel_tol=1e-6, abs_tol=1e-7), (case.name, an, fd)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_equals_loop(case: Case) -> None:
    m, xs = _build(case, fl.float64)
    batch = [fl.stack([x, x * 0.5, x + 1.0]) for x in xs]
    out = fl.vmap(lambda *a: m(*a))(*batch)
    loop = fl.stack([m(*[b[i] for b in batch]) for i in range(3)])
    np.testing.assert_allclose(N(out), N(loop), rtol=1e-12, atol=1e-12)


TORCH_CASES = [c for c in CASES if c.torch is not None]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.name for c in TORCH_CASES])
def test_matches_torch(case: Case) -> None:
    torch = pytest.importorskip("torch")
    m, xs = _build(case, fl.float64)
    tm = case.torch()
    tm.load_state_dict({k: torch.from_numpy(N(v).copy()) for k, v in m.state_dict().items()}, strict=True)
    txs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in case.data]
    tout = tm(*txs)
    ct = RNG.normal(size=tuple(tout.shape))
    (tout * torch.from_numpy(ct)).sum().backward()
    params = m.trainable_parameters()

    def f(p: dict[str, Any], *inp: Any) -> Any:
        out = nn.functional_call(m, p, *inp)
        return fl.sum(out * T(ct, fl.float64)), out

    (_, out), g = fl.value_and_grad(f, argnums=tuple(range(1 + len(xs))), has_aux=True)(params, *xs)
    np.testing.assert_allclose(N(out), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for gx, tx in zip(g[1:], txs, strict=True):
        np.testing.assert_allclose(N(gx), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(tm.named_parameters())
    for n in params:
        np.testing.assert_allclose(N(g[0][n]), tparams[n].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=n)


# --------------------------------------------------------------------------------------------
# The functional API
# --------------------------------------------------------------------------------------------
def test_default_init_bounds_like_torch() -> None:
    fl.manual_seed(0)
    m = nn.Conv2d(4, 6, (3, 2), groups=2)
    fan_in = 2 * 3 * 2
    w, b = N(m.weight), N(m.bias)
    assert m.weight.shape == (6, 2, 3, 2) and m.bias.shape == (6,)
    assert np.abs(w).max() <= 1 / math.sqrt(fan_in) + 1e-7 and np.abs(w).max() > 0.5 / math.sqrt(fan_in)
    assert np.abs(b).max() <= 1 / math.sqrt(fan_in) + 1e-7
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert t.weight.shape == (4, 3, 3, 3)
    k1 = nn.Conv1d(2, 3, 3, key=fl.random.key(1))
    k2 = nn.Conv1d(2, 3, 3, key=fl.random.key(1))
    np.testing.assert_array_equal(N(k1.weight), N(k2.weight))


def test_max_pool_return_indices_match_torch() -> None:
    torch = pytest.importorskip("torch")
    x = _d(2, 3, 7, 6)
    for kw in (
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"kernel_size": (2, 3), "dilation": (2, 1)},
    ):
        out, idx = FP.max_pool2d(T(x, fl.float64), return_indices=True, **kw)
        tout, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
        np.testing.assert_array_equal(N(out), tout.numpy())
        np.testing.assert_array_equal(N(idx), tidx.numpy())
    x1 = _d(2, 9)
    out, idx = nn.MaxPool1d(3, stride=2, return_indices=True)(T(x1, fl.float64))
    tout, tidx = torch.nn.MaxPool1d(3, stride=2, return_indices=True)(torch.from_numpy(x1))
    np.testing.assert_array_equal(N(idx), tidx.numpy())


def test_conv_transpose_is_the_adjoint_of_conv() -> None:
    x = T(_d(2, 3, 7, 6), fl.float64)
    w = T(_d(4, 3, 3, 2), fl.float64)
    kw = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}
    y = FC.conv2d(x, w, **kw)
    u = T(RNG.normal(size=y.shape), fl.float64)
    # <conv(x), u> == <x, conv_transpose(u)>, with output_padding recovering x's size.
    back = FC.conv_transpose2d(u, w, output_padding=(0, 0), **kw)
    back = back if back.shape == x.shape else FC.conv_transpose2d(u, w, output_padding=(1, 0), **kw)
    assert back.shape == x.shape
    assert math.isclose(float(fl.sum(y * u)), float(fl.sum(x * back)), rel_tol=1e-10)
    g = fl.grad(lambda a: fl.sum(FC.conv2d(a, w, **kw) * u))(x)
    np.testing.assert_allclose(N(g), N(back), rtol=1e-10, atol=1e-12)


def test_second_order_and_forward_mode() -> None:
    x = T(_d(1, 2, 5, 5), fl.float64)
    w = T(_d(3, 2, 3, 3), fl.float64)

    def f(w: Any) -> Any:
        h = fl.tanh(FC.conv2d(x, w, padding=1, stride=2))
        return fl.sum(FP.max_pool2d(h, 2, stride=1) ** 2) + fl.sum(FP.avg_pool2d(h, 3, padding=1))

    jr = fl.jacrev(f)(w)
    jf = fl.jacfwd(f)(w)
    np.testing.assert_allclose(N(jr), N(jf), rtol=1e-9, atol=1e-12)
    v = T(RNG.normal(size=w.shape), fl.float64)
    hv = fl.jvp(fl.grad(f), (w,), (v,))[1]
    h = 1e-5
    fd = (N(fl.grad(f)(w + h * v)) - N(fl.grad(f)(w - h * v))) / (2 * h)
    np.testing.assert_allclose(N(hv), fd, rtol=1e-5, atol=1e-7)


def test_vmap_over_weights_and_per_example_grads() -> None:
    x = T(_d(4, 2, 6, 6), fl.float64)
    ws = T(_d(3, 5, 2, 3, 3), fl.float64)
    out = fl.vmap(lambda w: FC.conv2d(x, w, padding=1))(ws)
    loop = fl.stack([FC.conv2d(x, ws[i], padding=1) for i in range(3)])
    np.testing.assert_allclose(N(out), N(loop), rtol=1e-12, atol=1e-12)
    w = ws[0]

    def loss(w: Any, xi: Any) -> Any:
        return fl.sum(FP.max_pool2d(FC.conv2d(xi, w, padding=1), 2) ** 2)

    per = fl.vmap(fl.grad(loss), in_axes=(None, 0))(w, x)
    ref = fl.stack([fl.grad(loss)(w, x[i]) for i in range(4)])
    np.testing.assert_allclose(N(per), N(ref), rtol=1e-10, atol=1e-12)


def test_interpolate_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = _d(2, 3, 5, 4)
    for kw in (
        {"scale_factor": 0.6, "mode": "bilinear", "recompute_scale_factor": True},
        {"scale_factor": (1.5, 2.7), "mode": "nearest"},
        {"size": 1, "mode": "bilinear", "align_corners": True},
    ):
        np.testing.assert_allclose(
            N(FU.interpolate(T(x, fl.float64), **kw)),
            torch.nn.functional.interpolate(torch.from_numpy(x), **kw).numpy(),
            atol=1e-12,
        )


def test_conv_transpose_output_size() -> None:
    torch = pytest.importorskip("torch")
    fl.manual_seed(0)
    m = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=fl.float64)
    tm = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    tm.load_state_dict({k: torch.from_numpy(N(v).copy()) for k, v in m.state_dict().items()})
    x = _d(1, 2, 4, 4)
    out = m(T(x, fl.float64), output_size=(8, 7))
    assert out.shape == (1, 3, 8, 7)
    np.testing.assert_allclose(N(out), tm(torch.from_numpy(x), output_size=(8, 7)).detach().numpy(), atol=1e-12)
    with pytest.raises(fl.ShapeError, match="output_size"):
        m(T(x, fl.float64), output_size=(10, 10))


def test_typed_errors() -> None:
    x = T(_d(1, 3, 5, 5), fl.float32)
    with pytest.raises(fl.ShapeError, match="channels"):
        FC.conv2d(x, T(_d(4, 2, 3, 3), fl.float32))
    with pytest.raises(fl.ConfigError, match="same"):
        FC.conv2d(x, T(_d(4, 3, 3, 3), fl.float32), stride=2, padding="same")
    with pytest.raises(fl.ConfigError, match="same"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(fl.ShapeError, match="smaller"):
        FC.conv2d(x, T(_d(4, 3, 7, 7), fl.float32))
    with pytest.raises(fl.ShapeError, match="4-d"):
        FC.conv2d(T(_d(5, 5), fl.float32), T(_d(4, 3, 3, 3), fl.float32))
    with pytest.raises(fl.ConfigError, match="divisible"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(fl.ConfigError, match="padding"):
        FP.max_pool2d(x, 2, padding=2)
    with pytest.raises(fl.ConfigError, match="size"):
        FU.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(fl.ShapeError, match="bilinear"):
        FU.interpolate(T(_d(1, 2, 3), fl.float32), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError):  # typed errors subclass the builtins
        FC.conv1d(T(_d(1, 3, 5), fl.float32), T(_d(4, 3, 3), fl.float32), stride=0)


def test_conv_net_training_step_decreases_loss() -> None:
    fl.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding="same"),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    x = T(RNG.normal(size=(16, 1, 8, 8)), fl.float32)
    y = T(RNG.integers(0, 3, size=16))

    def loss_fn() -> Any:
        return nn.functional.cross_entropy(model(x), y)

    step = nn.value_and_grad(model, loss_fn)
    first, _ = step()
    for _ in range(15):
        value, grads = step()
        new = {n: p - 0.2 * grads[n] for n, p in model.named_parameters()}
        model.load_state_dict(new, strict=True)
        assert all(p.dtype == fl.float32 for p in model.parameters())
    assert float(step()[0]) < float(first)
