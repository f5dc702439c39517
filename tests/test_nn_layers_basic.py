"""Table-driven tests of the basic, norm and activation layers and their nn.functional twins.

Every layer of ``nn.layers.basic``, ``nn.layers.norm`` and ``nn.layers.activation`` is
enrolled in ``LAYERS`` (a test fails when one is missing): output shape, gradients by
finite differences (float64), vmap over an extra batch axis equal to a loop, float32 in
float32 out; and, where torch is installed, the same outputs and gradients as torch.nn.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from _helpers import N, T
from _helpers import torch_module as _tm

import functorch_lite as fl
from functorch_lite import nn
from functorch_lite.nn import functional as F
from functorch_lite.nn.layers import activation as act_mod
from functorch_lite.nn.layers import basic as basic_mod
from functorch_lite.nn.layers import norm as norm_mod

RNG = np.random.default_rng(0)


@dataclass
class Case:
    name: str
    make: Callable[[Any], nn.Module]  # dtype -> module
    inputs: Callable[[Any], tuple[Any, ...]]  # dtype -> inputs
    torch: Callable[[], Any] | None = None  # () -> torch module (float64) taking the same state dict
    train: bool = False  # run in training mode
    vmap_randomness: str = "error"
    fd: bool = True  # finite differences
    int_input: bool = False
    out_shape: tuple[int, ...] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _x(*shape: int, lo: float = -2.0, hi: float = 2.0) -> Callable[[Any], tuple[Any, ...]]:
    data = RNG.uniform(lo, hi, size=shape)
    return lambda dt: (T(data, dt),)


def _away_from(points: list[float], *shape: int) -> Callable[[Any], tuple[Any, ...]]:
    """Inputs at least 0.05 away from the kinks ``points``."""
    data = RNG.uniform(-4.0, 4.0, size=shape)
    for p in points:
        near = np.abs(data - p) < 0.05
        data[near] += 0.1
    return lambda dt: (T(data, dt),)


ACT_KINKS = {
    "ReLU": [0.0],
    "ReLU6": [0.0, 6.0],
    "LeakyReLU": [0.0],
    "ELU": [0.0],
    "SELU": [0.0],
    "CELU": [0.0],
    "Hardtanh": [-1.0, 1.0],
    "Hardswish": [-3.0, 3.0],
    "Hardsigmoid": [-3.0, 3.0],
    "PReLU": [0.0],
}
ACT_ARGS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "LeakyReLU": ((0.2,), {}),
    "ELU": ((0.7,), {}),
    "CELU": ((1.5,), {}),
    "GELU": ((), {"approximate": "none"}),
    "Softplus": ((), {"beta": 2.0, "threshold": 5.0}),
    "Hardtanh": ((-1.0, 1.0), {}),
    "Softmax": ((), {"dim": 1}),
    "Softmin": ((), {"dim": 1}),
    "LogSoftmax": ((), {"dim": 1}),
    "GLU": ((), {"dim": -1}),
}

CASES: list[Case] = []
for _name in act_mod._TABLE:
    _a, _k = ACT_ARGS.get(_name, ((), {}))
    CASES.append(
        Case(
            _name,
            (lambda n, a, k: lambda dt: getattr(nn, n)(*a, **k))(_name, _a, _k),
            _away_from(ACT_KINKS.get(_name, []), 3, 4),
            _tm(_name, *_a, **_k),
        )
    )
CASES += [
    Case("GELU-tanh", lambda dt: nn.GELU("tanh"), _x(3, 4), _tm("GELU", approximate="tanh")),
    Case("PReLU", lambda dt: nn.PReLU(3, dtype=dt), _away_from([0.0], 2, 3, 4), _tm("PReLU", 3)),
    Case("PReLU-1", lambda dt: nn.PReLU(dtype=dt), _away_from([0.0], 2, 3), _tm("PReLU")),
    Case("Linear", lambda dt: nn.Linear(4, 3, dtype=dt), _x(2, 4), _tm("Linear", 4, 3)),
    Case("Linear-nobias", lambda dt: nn.Linear(4, 3, bias=False, dtype=dt), _x(5, 4), _tm("Linear", 4, 3, bias=False)),
    Case("Linear-3d", lambda dt: nn.Linear(4, 2, dtype=dt), _x(2, 3, 4), _tm("Linear", 4, 2)),
    Case(
        "Bilinear",
        lambda dt: nn.Bilinear(3, 2, 4, dtype=dt),
        (lambda a, b: lambda dt: (T(a, dt), T(b, dt)))(RNG.normal(size=(5, 3)), RNG.normal(size=(5, 2))),
        _tm("Bilinear", 3, 2, 4),
    ),
    Case("Identity", lambda dt: nn.Identity(), _x(2, 3), _tm("Identity")),
    Case("Flatten", lambda dt: nn.Flatten(), _x(2, 3, 4), _tm("Flatten")),
    Case("Flatten-0", lambda dt: nn.Flatten(0, 1), _x(2, 3, 4), _tm("Flatten", 0, 1)),
    Case("Unflatten", lambda dt: nn.Unflatten(1, (2, 3)), _x(2, 6), _tm("Unflatten", 1, (2, 3))),
    Case("Dropout-eval", lambda dt: nn.Dropout(0.5), _x(3, 4), _tm("Dropout", 0.5)),
    Case("Dropout", lambda dt: nn.Dropout(0.3), _x(3, 4), None, train=True, vmap_randomness="same"),
    Case("Dropout1d", lambda dt: nn.Dropout1d(0.3), _x(2, 3, 4), None, train=True, vmap_randomness="same"),
    Case("Dropout2d", lambda dt: nn.Dropout2d(0.3), _x(2, 3, 4, 4), None, train=True, vmap_randomness="same"),
    Case(
        "Embedding",
        lambda dt: nn.Embedding(6, 3, dtype=dt),
        (lambda i: lambda dt: (T(i),))(np.array([[0, 1, 5], [2, 2, 3]], dtype=np.int64)),
        _tm("Embedding", 6, 3),
        int_input=True,
    ),
    Case(  # the padding row gets no gradient (so no finite-difference check)
        "Embedding-pad",
        lambda dt: nn.Embedding(6, 3, padding_idx=1, dtype=dt),
        (lambda i: lambda dt: (T(i),))(np.array([[0, 1, 5], [2, 2, 3]], dtype=np.int64)),
        _tm("Embedding", 6, 3, padding_idx=1),
        int_input=True,
        fd=False,
    ),
    Case(
        "BatchNorm1d-eval",
        lambda dt: _bn_eval(nn.BatchNorm1d(3, dtype=dt)),
        _x(4, 3),
        lambda: _bn_eval(_tm("BatchNorm1d", 3)()),
    ),
    Case("BatchNorm1d", lambda dt: nn.BatchNorm1d(3, dtype=dt), _x(4, 3, 5), _tm("BatchNorm1d", 3), train=True),
    Case("BatchNorm2d", lambda dt: nn.BatchNorm2d(2, dtype=dt), _x(3, 2, 3, 3), _tm("BatchNorm2d", 2), train=True),
    Case(
        "BatchNorm2d-eval",
        lambda dt: _bn_eval(nn.BatchNorm2d(2, dtype=dt)),
        _x(3, 2, 3, 3),
        lambda: _bn_eval(_tm("BatchNorm2d", 2)()),
    ),
    Case(
        "BatchNorm1d-nostats",
        lambda dt: nn.BatchNorm1d(3, affine=False, track_running_stats=False, dtype=dt),
        _x(4, 3),
        _tm("BatchNorm1d", 3, affine=False, track_running_stats=False),
        train=True,
    ),
    Case(
        "InstanceNorm1d-track",
        lambda dt: _randomise(nn.InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=dt)),
        _x(2, 3, 5),
        _tm("InstanceNorm1d", 3, affine=True, track_running_stats=True),
        train=True,
    ),
    Case("LayerNorm", lambda dt: _randomise(nn.LayerNorm(4, dtype=dt)), _x(2, 3, 4), _tm("LayerNorm", 4)),
    Case("LayerNorm-2d", lambda dt: _randomise(nn.LayerNorm((3, 4), dtype=dt)), _x(2, 3, 4), _tm("LayerNorm", (3, 4))),
    Case("GroupNorm", lambda dt: _randomise(nn.GroupNorm(2, 4, dtype=dt)), _x(2, 4, 3), _tm("GroupNorm", 2, 4)),
    Case("RMSNorm", lambda dt: _randomise(nn.RMSNorm(4, dtype=dt)), _x(2, 3, 4), _tm("RMSNorm", 4)),
    Case("InstanceNorm1d", lambda dt: nn.InstanceNorm1d(3, dtype=dt), _x(2, 3, 5), _tm("InstanceNorm1d", 3)),
    Case(
        "InstanceNorm2d",
        lambda dt: _randomise(nn.InstanceNorm2d(2, affine=True, dtype=dt)),
        _x(2, 2, 3, 3),
        _tm("InstanceNorm2d", 2, affine=True),
    ),
]


def _bn_eval(m: Any) -> Any:
    """Eval mode with non-trivial running statistics."""
    if isinstance(m, nn.Module):
        c = m.num_features
        dt = m.running_mean.dtype
        m.running_mean = fl.astype(T(np.linspace(-0.5, 0.5, c)), dt)
        m.running_var = fl.astype(T(np.linspace(0.5, 2.0, c)), dt)
        return m.eval()
    import torch

    with torch.no_grad():
        c = m.num_features
        m.running_mean.copy_(torch.from_numpy(np.linspace(-0.5, 0.5, c)))
        m.running_var.copy_(torch.from_numpy(np.linspace(0.5, 2.0, c)))
    return m.eval()


def _randomise(m: nn.Module) -> nn.Module:
    for _, p in m.named_parameters():
        nn.init.uniform_(p, 0.5, 1.5)
    return m


IDS = [c.name for c in CASES]


def test_every_layer_enrolled() -> None:
    covered = {c.name.split("-")[0] for c in CASES}
    for mod in (act_mod, basic_mod, norm_mod):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and issubclass(obj, nn.Module):
                assert name in covered, f"{mod.__name__}.{name} is not enrolled in CASES"


def _build(case: Case, dt: Any) -> tuple[nn.Module, tuple[Any, ...]]:
    fl.manual_seed(0)
    m = case.make(dt)
    m.train(case.train)
    return m, case.inputs(dt)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case: Case) -> None:
    m, xs = _build(case, fl.float32)
    out = m(*xs)
    assert out.dtype == fl.float32
    for _, p in m.named_parameters():
        assert p.dtype == fl.float32


@pytest.mark.parametrize("case", [c for c in CASES if c.fd], ids=[c.name for c in CASES if c.fd])
def test_finite_differences(case: Case) -> None:
    m, xs = _build(case, fl.float64)
    params = m.trainable_parameters()
    out0 = m(*xs)
    ct = T(RNG.normal(size=out0.shape), fl.float64)
    diff_inputs = () if case.int_input else xs

    def f(p: dict[str, Any], *inp: Any) -> Any:
        fl.manual_seed(1)  # Dropout: one mask for every evaluation
        allx = inp if not case.int_input else xs
        return fl.sum(nn.functional_call(m, p, *allx) * ct)

    if case.train:  # BatchNorm updates buffers; keep them fixed between evaluations
        saved = m.state_dict()
    g = fl.grad(f, argnums=tuple(range(1 + len(diff_inputs))))(params, *diff_inputs)
    if case.train:
        m.load_state_dict(saved)
    flat_p = list(params.items())
    h = 1e-6
    for _k in range(2):
        vs_p = {n: T(RNG.normal(size=p.shape), fl.float64) for n, p in flat_p}
        vs_x = [T(RNG.normal(size=x.shape), fl.float64) for x in diff_inputs]
        plus = f({n: p + h * vs_p[n] for n, p in flat_p}, *[x + h * v for x, v in zip(diff_inputs, vs_x, strict=False)])
        minus = f(
            {n: p - h * vs_p[n] for n, p in flat_p}, *[x - h * v for x, v in zip(diff_inputs, vs_x, strict=False)]
        )
        if case.train:
            m.load_state_dict(saved)
        fd = (float(plus) - float(minus)) / (2 * h)
        an = sum(float(fl.sum(g[0][n] * vs_p[n])) for n, _ in flat_p)
        an += sum(float(fl.sum(gx * v)) for gx, v in zip(g[1:], vs_x, strict=False))
        assert math.isclose(an, fd, rel_tol=1e-5, abs_tol=1e-6), (case.name, an, fd)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_equals_loop(case: Case) -> None:
    m, xs = _build(case, fl.float64)
    if m.training and getattr(m, "track_running_stats", False):  # running statistics of a batch of models
        with pytest.raises(fl.TransformError, match="vmap"):
            fl.vmap(lambda *a: m(*a))(*[fl.stack([x, x]) for x in xs])
        return
    batch = [fl.stack([x, x * 0.5 if x.dtype.kind == "f" else x, x + 1 if x.dtype.kind == "f" else x]) for x in xs]
    fl.manual_seed(3)
    out = fl.vmap(lambda *a: m(*a), randomness=case.vmap_randomness)(*batch)
    loop = []
    for i in range(3):
        fl.manual_seed(3)
        loop.append(m(*[b[i] for b in batch]))
    np.testing.assert_allclose(N(out), N(fl.stack(loop)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_output_shape_and_grad_tree(case: Case) -> None:
    m, xs = _build(case, fl.float64)
    out = m(*xs)
    assert out.ndim >= 1 and out.dtype == fl.float64
    if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)) or case.name in act_mod._TABLE:
        expected = list(xs[0].shape)
        if isinstance(m, act_mod.GLU):
            expected[m.dim] //= 2
        assert out.shape == tuple(expected)
    g = fl.grad(lambda mod: fl.sum(mod(*xs)))(m)
    assert type(g) is type(m)
    names = [n for n, _ in m.named_trainable_parameters()]
    assert [n for n, _ in g.named_parameters()] == names
    for n, p in g.named_parameters():
        assert p.shape == dict(m.named_parameters())[n].shape


# --------------------------------------------------------------------------------------------
# Same weights -> same outputs and gradients as torch.nn (float64)
# --------------------------------------------------------------------------------------------
TORCH_CASES = [c for c in CASES if c.torch is not None]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.name for c in TORCH_CASES])
def test_matches_torch(case: Case) -> None:
    torch = pytest.importorskip("torch")
    m, xs = _build(case, fl.float64)
    tm = case.torch()
    tm.train(case.train)
    sd = {k: torch.from_numpy(N(v).copy()) for k, v in m.state_dict().items()}
    tm.load_state_dict(sd, strict=True)
    txs = [torch.from_numpy(N(x).copy()) for x in xs]
    for t in txs:
        if t.is_floating_point():
            t.requires_grad_(True)
    tout = tm(*txs)
    ct = RNG.normal(size=tuple(tout.shape))
    (tout * torch.from_numpy(ct)).sum().backward()

    diff = tuple(i for i, x in enumerate(xs) if x.dtype.kind == "f")
    params = m.trainable_parameters()

    def f(p: dict[str, Any], *inp: Any) -> Any:
        full = list(xs)
        for i, v in zip(diff, inp, strict=False):
            full[i] = v
        return fl.sum(nn.functional_call(m, p, *full) * T(ct))

    out = nn.functional_call(m, params, *xs) if not case.train else None
    if out is not None:
        assert out.shape == tuple(tout.shape)
        np.testing.assert_allclose(N(out), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    grads = fl.grad(f, argnums=tuple(range(1 + len(diff))))(params, *[xs[i] for i in diff])
    if case.train:  # the forward inside grad updated running stats exactly once, as torch's did
        for k, v in m.state_dict().items():
            np.testing.assert_allclose(N(v), tm.state_dict()[k].detach().numpy(), rtol=1e-10, atol=1e-12)
    rtol = 1e-7 if case.name == "Hardsigmoid" else 1e-9  # torch's hardsigmoid backward uses a float32 1/6
    for n, g in grads[0].items():
        tg = dict(tm.named_parameters())[n].grad
        np.testing.assert_allclose(N(g), tg.numpy(), rtol=rtol, atol=1e-11, err_msg=n)
    for i, g in zip(diff, grads[1:], strict=False):
        np.testing.assert_allclose(N(g), txs[i].grad.numpy(), rtol=rtol, atol=1e-11)


# --------------------------------------------------------------------------------------------
# Functional: activations and losses against torch, stability at ±1e4
# --------------------------------------------------------------------------------------------
ACT_FUNCS = [
    ("relu", {}),
    ("relu6", {}),
    ("leaky_relu", {"negative_slope": 0.1}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("celu", {"alpha": 2.0}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("mish", {}),
    ("softplus", {"beta": 1.5, "threshold": 10.0}),
    ("softsign", {}),
    ("sigmoid", {}),
    ("log_sigmoid", {}),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}),
    ("hardswish", {}),
    ("hardsigmoid", {}),
    ("tanh", {}),
    ("softmax", {"dim": -1}),
    ("log_softmax", {"dim": 0}),
    ("softmin", {"dim": 1}),
    ("glu", {"dim": -1}),
]


def _torch_fn(name: str) -> Any:
    import torch

    tf = torch.nn.functional
    return {"log_sigmoid": tf.logsigmoid, "tanh": torch.tanh, "sigmoid": torch.sigmoid}.get(name) or getattr(tf, name)


@pytest.mark.parametrize("name,kw", ACT_FUNCS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ACT_FUNCS)])
def test_activation_functions_match_torch_and_are_stable(name: str, kw: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    data = np.concatenate([RNG.uniform(-8, 8, size=(3, 6)), [[1e4, -1e4, 30.0, -30.0, 0.3, -0.3]]])
    fn = getattr(F, name)
    x = T(data, fl.float64)
    ct = RNG.normal(size=fn(x, **kw).shape)
    y, g = fl.vjp(lambda v: fn(v, **kw), x)
    (gx,) = g(T(ct))
    tx = torch.from_numpy(data.copy()).requires_grad_(True)
    ty = _torch_fn(name)(tx, **kw)
    (ty * torch.from_numpy(ct)).sum().backward()
    np.testing.assert_allclose(N(y), ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    rtol = 1e-7 if name == "hardsigmoid" else 1e-8  # torch's hardsigmoid backward uses a float32 1/6
    np.testing.assert_allclose(N(gx), tx.grad.numpy(), rtol=rtol, atol=1e-10)
    # float32 at extremes: finite values and gradients
    x32 = T(data, fl.float32)
    y32, g32 = fl.vjp(lambda v: fn(v, **kw), x32)
    (gx32,) = g32(T(ct, fl.float32))
    assert y32.dtype == fl.float32 and gx32.dtype == fl.float32
    assert np.isfinite(N(y32)).all() and np.isfinite(N(gx32)).all()


def test_erf_accuracy() -> None:
    xs = np.linspace(-7, 7, 2001)
    ref = np.array([math.erf(v) for v in xs])
    got = N(F.erf(T(xs, fl.float64)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-15)
    g = fl.grad(lambda v: fl.sum(F.erf(v)))(T(xs, fl.float64))
    np.testing.assert_allclose(N(g), 2 / math.sqrt(math.pi) * np.exp(-xs * xs), rtol=1e-12, atol=1e-300)


def _logits(n: int = 5, c: int = 4, extreme: bool = True) -> np.ndarray:
    z = RNG.normal(size=(n, c)) * 3
    if extreme:
        z[0, 0], z[1, 1], z[2] = 1e4, -1e4, [1e4, -1e4] + [0.0] * (c - 2)
    return z


LOSSES: list[tuple[str, Callable[[], tuple[list[np.ndarray], list[bool], dict[str, Any]]]]] = [
    ("cross_entropy", lambda: ([_logits(), np.array([0, 1, 2, 3, 0])], [True, False], {})),
    ("cross_entropy", lambda: ([_logits(), np.array([0, -100, 2, 3, 1])], [True, False], {"label_smoothing": 0.1})),
    (
        "cross_entropy",
        lambda: (
            [_logits(), np.array([0, 1, 2, 3, 3])],
            [True, False],
            {"weight": np.array([1.0, 2.0, 0.5, 1.5]), "label_smoothing": 0.2},
        ),
    ),
    (
        "cross_entropy",
        lambda: ([_logits(), np.array([0, 1, 2, 3, 3])], [True, False], {"reduction": "sum", "ignore_index": 3}),
    ),
    ("cross_entropy", lambda: ([_logits(), RNG.dirichlet(np.ones(4), size=5)], [True, True], {"label_smoothing": 0.1})),
    (
        "cross_entropy",
        lambda: (
            [RNG.normal(size=(2, 3, 4)), np.array([[0, 1, 2, 1], [2, 2, 0, 1]])],
            [True, False],
            {"reduction": "none"},
        ),
    ),
    (
        "nll_loss",
        lambda: (
            [np.log(RNG.dirichlet(np.ones(3), size=4)), np.array([0, 2, 1, 1])],
            [True, False],
            {"weight": np.array([0.2, 1.0, 3.0])},
        ),
    ),
    ("mse_loss", lambda: ([RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))], [True, True], {})),
    ("l1_loss", lambda: ([RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))], [True, True], {"reduction": "sum"})),
    ("smooth_l1_loss", lambda: ([RNG.normal(size=(3, 4)) * 2, RNG.normal(size=(3, 4))], [True, True], {"beta": 0.7})),
    ("huber_loss", lambda: ([RNG.normal(size=(3, 4)) * 2, RNG.normal(size=(3, 4))], [True, True], {"delta": 0.6})),
    (
        "binary_cross_entropy",
        lambda: ([RNG.uniform(0.05, 0.95, size=(6,)), RNG.uniform(0, 1, size=(6,))], [True, True], {}),
    ),
    (
        "binary_cross_entropy_with_logits",
        lambda: (
            [np.array([1e4, -1e4, 0.5, -2.0, 3.0, 1e4]), RNG.uniform(0, 1, size=(6,))],
            [True, True],
            {"pos_weight": np.array([2.0])},
        ),
    ),
    (
        "kl_div",
        lambda: (
            [np.log(RNG.dirichlet(np.ones(4), size=3)), RNG.dirichlet(np.ones(4), size=3)],
            [True, True],
            {"reduction": "batchmean"},
        ),
    ),
    (
        "kl_div",
        lambda: (
            [np.log(RNG.dirichlet(np.ones(4), size=3)), np.log(RNG.dirichlet(np.ones(4), size=3))],
            [True, True],
            {"log_target": True, "reduction": "sum"},
        ),
    ),
    (
        "cosine_embedding_loss",
        lambda: (
            [RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3)), np.array([1.0, -1.0, 1.0, -1.0])],
            [True, True, False],
            {"margin": 0.1},
        ),
    ),
    (
        "margin_ranking_loss",
        lambda: (
            [RNG.normal(size=(5,)), RNG.normal(size=(5,)), np.array([1.0, -1.0, 1.0, -1.0, 1.0])],
            [True, True, False],
            {"margin": 0.2},
        ),
    ),
    (
        "triplet_margin_loss",
        lambda: (
            [RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))],
            [True, True, True],
            {"margin": 2.0, "swap": True},
        ),
    ),
    (
        "poisson_nll_loss",
        lambda: ([RNG.normal(size=(3, 4)), RNG.poisson(2.0, size=(3, 4)).astype(float)], [True, False], {"full": True}),
    ),
    (
        "poisson_nll_loss",
        lambda: (
            [RNG.uniform(0.1, 3, size=(5,)), RNG.poisson(2.0, size=(5,)).astype(float)],
            [True, False],
            {"log_input": False},
        ),
    ),
    (
        "soft_margin_loss",
        lambda: ([np.array([30.0, -30.0, 0.3, -2.0]), np.array([1.0, 1.0, -1.0, -1.0])], [True, False], {}),
    ),
    ("cosine_similarity", lambda: ([RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))], [True, True], {"dim": 1})),
    ("pairwise_distance", lambda: ([RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))], [True, True], {"p": 3.0})),
    ("normalize", lambda: ([RNG.normal(size=(4, 3))], [True], {"p": 1.0, "dim": 0})),
    (
        "linear",
        lambda: ([RNG.normal(size=(4, 3)), RNG.normal(size=(2, 3)), RNG.normal(size=(2,))], [True, True, True], {}),
    ),
    (
        "bilinear",
        lambda: (
            [RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2)), RNG.normal(size=(5, 3, 2))],
            [True, True, True],
            {},
        ),
    ),
    (
        "layer_norm",
        lambda: (
            [RNG.normal(size=(2, 3, 4)), (3, 4), RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))],
            [True, False, True, True],
            {},
        ),
    ),
    (
        "group_norm",
        lambda: (
            [RNG.normal(size=(2, 6, 3)), 3, RNG.normal(size=(6,)), RNG.normal(size=(6,))],
            [True, False, True, True],
            {},
        ),
    ),
    (
        "rms_norm",
        lambda: ([RNG.normal(size=(2, 3, 4)), (4,), RNG.normal(size=(4,))], [True, False, True], {"eps": 1e-6}),
    ),
    (
        "gaussian_nll_loss",
        lambda: (
            [RNG.normal(size=(4, 2)), RNG.normal(size=(4, 2)), RNG.uniform(0.1, 2, size=(4, 2))],
            [True, True, True],
            {"full": True},
        ),
    ),
]


def _conv(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return T(v, fl.float64 if v.dtype.kind == "f" else None)
    return v


@pytest.mark.parametrize("name,make", LOSSES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LOSSES)])
def test_losses_match_torch(name: str, make: Callable[..., Any]) -> None:
    torch = pytest.importorskip("torch")
    arrays, diff, kw = make()
    fn = getattr(F, name)
    args = [_conv(a) for a in arrays]
    kws = {k: _conv(v) for k, v in kw.items()}
    idx = [i for i, d in enumerate(diff) if d]

    def f(*d: Any) -> Any:
        full = list(args)
        for i, v in zip(idx, d, strict=False):
            full[i] = v
        return fn(*full, **kws)

    out = f(*[args[i] for i in idx])
    targs = [torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in arrays]
    for i in idx:
        targs[i].requires_grad_(True)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    tout = getattr(torch.nn.functional, name)(*targs, **tkw)
    np.testing.assert_allclose(N(out), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    ct = RNG.normal(size=tuple(tout.shape))
    (tout * torch.from_numpy(ct)).sum().backward()
    _, f_vjp = fl.vjp(f, *[args[i] for i in idx])
    grads = f_vjp(T(ct, fl.float64))
    for i, g in zip(idx, grads, strict=False):
        np.testing.assert_allclose(N(g), targs[i].grad.numpy(), rtol=1e-8, atol=1e-10)
        assert np.isfinite(N(g)).all()


@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy_with_logits", "nll_loss"])
def test_losses_finite_at_extreme_logits_float32(name: str) -> None:
    if name == "binary_cross_entropy_with_logits":
        x, t = T([1e4, -1e4, 1e4, -1e4], fl.float32), T([0.0, 1.0, 1.0, 0.0], fl.float32)
    elif name == "cross_entropy":
        x, t = T([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4]], fl.float32), T(np.array([1, 0]))
    else:
        x, t = F.log_softmax(T([[1e4, -1e4, 0.0]], fl.float32), dim=1), T(np.array([1]))
    v, g = fl.value_and_grad(lambda z: getattr(F, name)(z, t))(x)
    assert v.dtype == fl.float32 and g.dtype == fl.float32
    assert np.isfinite(float(v)) and np.isfinite(N(g)).all()


def test_loss_reduction_errors() -> None:
    with pytest.raises(fl.ConfigError, match="reduction"):
        F.mse_loss(T([1.0]), T([1.0]), reduction="avg")
    with pytest.raises(fl.ShapeError, match="target"):
        F.cross_entropy(T(np.zeros((2, 3))), T(np.array([0, 1, 2])))


# --------------------------------------------------------------------------------------------
# pad, one_hot, dropout, embedding, normalization functions
# --------------------------------------------------------------------------------------------
PADS = [
    ((1, 2), "constant", 0.5),
    ((2, 1, 1, 0), "constant", None),
    ((-1, 1), "constant", None),
    ((2, 1), "reflect", None),
    ((1, 2, 2, 1), "reflect", None),
    ((2, 3), "replicate", None),
    ((1, 1, 2, 0), "replicate", None),
    ((2, 1), "circular", None),
    ((1, 2, 2, 1), "circular", None),
]


@pytest.mark.parametrize("pad,mode,value", PADS)
def test_pad_matches_torch(pad: tuple[int, ...], mode: str, value: Any) -> None:
    torch = pytest.importorskip("torch")
    data = RNG.normal(size=(2, 3, 4, 5)[: 2 + len(pad) // 2])  # torch pads 1 dim of 3-d, 2 dims of 4-d input
    x = T(data, fl.float64)
    kw = {} if value is None else {"value": value}
    out = F.pad(x, pad, mode=mode, **kw)
    ref = torch.nn.functional.pad(torch.from_numpy(data), pad, mode=mode, **kw)
    np.testing.assert_allclose(N(out), ref.numpy())
    g = fl.grad(lambda v: fl.sum(F.pad(v, pad, mode=mode, **kw) ** 2))(x)
    tx = torch.from_numpy(data.copy()).requires_grad_(True)
    (torch.nn.functional.pad(tx, pad, mode=mode, **kw) ** 2).sum().backward()
    np.testing.assert_allclose(N(g), tx.grad.numpy())
    vm = fl.vmap(lambda v: F.pad(v, pad, mode=mode, **kw))(x)
    np.testing.assert_allclose(N(vm), ref.numpy())


def test_pad_errors() -> None:
    with pytest.raises(fl.ConfigError, match="reflect"):
        F.pad(T(np.zeros((1, 3))), (3, 0), mode="reflect")
    with pytest.raises(fl.ConfigError, match="mode"):
        F.pad(T(np.zeros((1, 3))), (1, 1), mode="wrap")


def test_one_hot() -> None:
    out = F.one_hot(T(np.array([[0, 3], [1, 2]])), 4)
    assert out.dtype == fl.int64 and out.shape == (2, 2, 4)
    assert N(out).tolist()[0] == [[1, 0, 0, 0], [0, 0, 0, 1]]
    assert F.one_hot(T(np.array([2, 0]))).shape == (2, 3)
    batched = fl.vmap(lambda v: F.one_hot(v, 4))(T(np.array([[0, 3], [1, 2]])))
    np.testing.assert_array_equal(N(batched), N(out))


def test_dropout_statistics_and_scaling() -> None:
    fl.manual_seed(0)
    x = fl.ones((200, 50))
    y = F.dropout(x, 0.3)
    kept = N(y) != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(N(y)[kept], 1 / 0.7, rtol=1e-6)
    y2 = F.dropout2d(fl.ones((40, 30, 2, 2)), 0.5)
    ch = N(y2).reshape(40, 30, 4)
    assert ((ch == 0).all(-1) | (ch != 0).all(-1)).all()
    with pytest.raises(fl.ConfigError, match="probability"):
        F.dropout(x, 1.5)


def test_dropout_vmap_randomness() -> None:
    xs = fl.ones((4, 10))
    with pytest.raises(fl.RandomnessError):
        fl.vmap(lambda r: F.dropout(r, 0.5))(xs)
    same = N(fl.vmap(lambda r: F.dropout(r, 0.5), randomness="same")(xs))
    assert (same == same[0]).all()
    diff = N(fl.vmap(lambda r: F.dropout(r, 0.5), randomness="different")(fl.ones((4, 64))))
    assert not (diff == diff[0]).all()


def test_embedding_padding_idx_gets_no_gradient() -> None:
    emb = nn.Embedding(5, 3, padding_idx=2, dtype=fl.float64)
    idx = T(np.array([[2, 0, 2], [1, 2, 4]]))
    g = fl.grad(lambda m: fl.sum(m(idx) ** 2))(emb)
    gw = N(g.weight)
    assert (gw[2] == 0).all() and (gw[0] != 0).any()
    assert (N(emb.weight)[2] == 0).all()
    with pytest.raises(fl.ConfigError, match="integers"):
        F.embedding(T([0.0]), emb.weight)


def test_batchnorm_momentum_none_cumulative_average() -> None:
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm1d(2, momentum=None, dtype=fl.float64)
    tbn = torch.nn.BatchNorm1d(2, momentum=None).double()
    for s in range(3):
        data = RNG.normal(size=(5, 2)) + s
        bn(T(data))
        tbn(torch.from_numpy(data))
    for k, v in bn.state_dict().items():
        np.testing.assert_allclose(N(v), tbn.state_dict()[k].numpy(), rtol=1e-12)


def test_norm_layer_errors() -> None:
    with pytest.raises(fl.ShapeError, match="channels"):
        nn.BatchNorm1d(3)(fl.ones((4, 2)))
    with pytest.raises(fl.ShapeError, match="more than one value"):
        nn.BatchNorm1d(3)(fl.ones((1, 3)))
    with pytest.raises(fl.ConfigError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(fl.ShapeError, match="normalized_shape"):
        nn.LayerNorm(5)(fl.ones((2, 4)))


def test_layer_reprs() -> None:
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"
    assert repr(nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


def test_default_initialisation_bounds() -> None:
    fl.manual_seed(0)
    lin = nn.Linear(100, 50)
    w, b = N(lin.weight), N(lin.bias)
    bound = 1 / math.sqrt(100)  # kaiming_uniform(a=sqrt(5)) gives the same bound as the bias
    assert np.abs(w).max() <= bound + 1e-7 and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound + 1e-7
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound
    fl.manual_seed(0)
    again = nn.Linear(100, 50)
    np.testing.assert_array_equal(N(again.weight), w)
    k1 = nn.Linear(4, 4, key=fl.random.key(7))
    k2 = nn.Linear(4, 4, key=fl.random.key(7))
    np.testing.assert_array_equal(N(k1.weight), N(k2.weight))
    np.testing.assert_array_equal(N(k1.bias), N(k2.bias))
    emb = nn.Embedding(1000, 20)
    assert abs(N(emb.weight).std() - 1) < 0.05


def test_activation_modules_read_their_arguments_at_call_time():
    # the constructor's arguments are attributes: changed after construction, the next call uses them
    x = fl.asarray([-2.0, 3.0], dtype=fl.float32)
    m = nn.LeakyReLU(0.2)
    np.testing.assert_allclose(np.asarray(m(x)), [-0.4, 3.0], rtol=1e-6)
    m.negative_slope = 0.5
    np.testing.assert_allclose(np.asarray(m(x)), [-1.0, 3.0], rtol=1e-6)
    h = nn.Hardtanh(-1.0, 2.0)
    h.max_val = 1.5
    np.testing.assert_allclose(np.asarray(h(x)), [-1.0, 1.5])


def test_linear_subclass_weight_property_and_replaced_parameters():
    # nn.Linear reads its registry directly; a subclass that computes its weight (a weight norm
    # written as a property) and a plain-attribute weight still go through attribute lookup
    class Doubled(nn.Linear):
        @property
        def weight(self):
            return self._parameters["weight"] * 2.0

    x = np.array([[1.0, 2.0]], np.float32)
    xf = fl.asarray(x.tolist(), dtype=fl.float32)
    m = Doubled(2, 1)
    w, b = np.asarray(m._parameters["weight"]), np.asarray(m.bias)
    np.testing.assert_allclose(np.asarray(m(xf)), x @ (2 * w).T + b, rtol=1e-6)
    lin = nn.Linear(2, 1)
    del lin.weight
    lin.weight = fl.asarray([[3.0, 0.0]], dtype=fl.float32)  # (a plain attribute now)
    assert "weight" not in lin._parameters
    np.testing.assert_allclose(np.asarray(lin(xf)), [3.0 + np.asarray(lin.bias)], rtol=1e-6)
