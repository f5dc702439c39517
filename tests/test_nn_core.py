"""The Module API: registration, traversal, modes, freezing, pytrees under grad/vmap,
functional_call, nn.value_and_grad, BatchNorm state under transforms, init, and a
small MLP trained on scikit-learn's digits."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
from _helpers import N, T

import functorch_lite as fl
from functorch_lite import nn, optim
from functorch_lite import tree_util as tu
from functorch_lite.nn import functional as F

RNG = np.random.default_rng(1)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4, dtype=fl.float64)
        self.bn = nn.BatchNorm1d(4, dtype=fl.float64)
        self.scale = nn.Parameter(fl.ones((4,), dtype=fl.float64))
        self.register_buffer("steps", fl.zeros((), dtype=fl.float64))
        self.register_buffer("cache", fl.zeros((2,), dtype=fl.float64), persistent=False)

    def forward(self, x: Any) -> Any:
        return F.relu(self.bn(self.lin(x))) * self.scale


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.layers = nn.ModuleList([nn.Linear(4, 4, dtype=fl.float64), nn.Linear(4, 2, dtype=fl.float64)])
        self.heads = nn.ModuleDict({"a": nn.Linear(2, 1, dtype=fl.float64)})

    def forward(self, x: Any) -> Any:
        h = self.block(x)
        for layer in self.layers:
            h = fl.tanh(layer(h))
        return self.heads["a"](h)


def _data(n: int = 6) -> tuple[fl.Tensor, fl.Tensor]:
    return T(RNG.normal(size=(n, 3)), fl.float64), T(RNG.normal(size=(n, 1)), fl.float64)


# ---------------------------------------------------------------------------------------------
# registration and traversal
# ---------------------------------------------------------------------------------------------
def test_named_members_use_dotted_names_in_pytorch_order() -> None:
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "block.scale",
        "block.lin.weight",
        "block.lin.bias",
        "block.bn.weight",
        "block.bn.bias",
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "heads.a.weight",
        "heads.a.bias",
    ]
    assert [n for n, _ in net.named_buffers()] == [
        "block.steps",
        "block.cache",
        "block.bn.running_mean",
        "block.bn.running_var",
        "block.bn.num_batches_tracked",
    ]
    assert [n for n, _ in net.named_modules()] == [
        "",
        "block",
        "block.lin",
        "block.bn",
        "layers",
        "layers.0",
        "layers.1",
        "heads",
        "heads.a",
    ]
    assert [type(c).__name__ for c in net.children()] == ["Block", "ModuleList", "ModuleDict"]
    assert len(list(net.modules())) == 9
    assert "block.cache" not in net.state_dict() and "block.steps" in net.state_dict()
    assert net.num_parameters() == 4 + 12 + 4 + 4 + 4 + 16 + 4 + 8 + 2 + 2 + 1
    assert isinstance(net.block.scale, nn.Parameter) and net.get_submodule("layers.1").out_features == 2


def test_attribute_rules_and_errors() -> None:
    m = nn.Module()
    m.w = nn.Parameter(fl.ones((2,)))
    m.w = fl.zeros((2,))  # rebinding a parameter keeps it registered
    assert [n for n, _ in m.named_parameters()] == ["w"]
    m.child = nn.Linear(2, 2)
    del m.child
    assert list(m.children()) == []
    with pytest.raises(TypeError, match="parameter"):
        m.w = "nope"

    class Bad(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(fl.ones(()))

    with pytest.raises(fl.ConfigError, match="super\\(\\).__init__"):
        Bad()
    with pytest.raises(AttributeError, match="no attribute"):
        _ = nn.Linear(2, 2).nothing


def test_train_eval_apply_freeze_repr() -> None:
    net = Net()
    assert net.training and net.block.bn.training
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    seen: list[str] = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"
    net.block.freeze()
    assert all(not n.startswith("block.") for n in net.trainable_parameters())
    net.block.unfreeze(keys="scale")
    assert "block.scale" in net.trainable_parameters()
    net.unfreeze()
    assert len(net.trainable_parameters()) == 11
    p = nn.Parameter(fl.ones((2,)), requires_grad=False)
    m = nn.Module()
    m.p = p
    assert m.trainable_parameters() == {}
    assert net.num_parameters(trainable_only=True) == net.num_parameters()
    r = repr(net)
    assert r.startswith("Net(\n  (block): Block(\n    (lin): Linear(in_features=3, out_features=4, bias=True)")
    assert (
        "(layers): ModuleList(\n    (0): Linear" in r and "(a): Linear(in_features=2, out_features=1, bias=True)" in r
    )


def test_containers() -> None:
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    sub = seq[:2]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2
    seq.append(nn.Sigmoid())
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    assert seq(fl.ones((4, 2))).shape == (4, 1)
    ml = nn.ModuleList()
    ml += [nn.Linear(1, 1)]
    ml.insert(0, nn.Identity())
    assert isinstance(ml[0], nn.Identity) and len(ml) == 2
    md = nn.ModuleDict([("x", nn.Linear(1, 2))])
    md["y"] = nn.Linear(2, 1)
    assert list(md) == ["x", "y"] and "y" in md and md.pop("x").out_features == 2
    with pytest.raises(KeyError):
        md["zz"]
    with pytest.raises(TypeError):
        nn.Sequential(3)


def test_to_backend_and_astype_keep_objects() -> None:
    lin = nn.Linear(2, 2)
    w = lin.weight
    lin.to_backend("numpy")
    assert lin.weight is w and w.backend == "numpy"
    lin.astype(fl.float64)
    assert lin.weight is w and w.dtype == fl.float64
    pytest.importorskip("array_api_strict")
    lin.to_backend("array_api_strict")
    assert lin.weight.backend == "array_api_strict" and lin.weight is w


# ---------------------------------------------------------------------------------------------
# pytrees under grad and vmap
# ---------------------------------------------------------------------------------------------
def test_module_is_a_pytree_with_dotted_key_paths() -> None:
    net = Net()
    paths, leaves, _ = tu.tree_flatten_with_path(net)
    assert paths == [n for n, _ in net.named_parameters()]  # trainable parameters only
    net.block.lin.freeze()
    paths2 = tu.tree_flatten_with_path(net)[0]
    assert "block.lin.weight" not in paths2 and len(paths2) == 9
    doubled = tu.tree_map(lambda p: p * 2, net)
    assert type(doubled) is Net and doubled.block.bn.running_var._a is net.block.bn.running_var._a
    np.testing.assert_allclose(N(doubled.layers[0].weight), 2 * N(net.layers[0].weight))


def _loss(model: nn.Module, x: Any, y: Any) -> Any:
    return fl.mean((model(x) - y) ** 2)


def test_grad_of_module_returns_module_of_gradients() -> None:
    net = Net()
    net.block.lin.freeze(keys="bias")
    x, y = _data()
    before = {k: N(v).copy() for k, v in net.state_dict().items()}
    g = fl.grad(_loss)(net, x, y)
    assert type(g) is Net and type(g.block) is Block
    assert g.block.lin.bias is None  # frozen
    assert g.block.bn.running_mean is None and g.block.steps is None  # buffers
    assert g.block.lin.weight.shape == (4, 3)
    # the same numbers as nn.value_and_grad (BN in training mode both times; stats restored between)
    net2 = Net()
    net2.load_state_dict({k: T(v) for k, v in before.items()})
    net2.block.lin.freeze(keys="bias")
    v, grads = nn.value_and_grad(net2, lambda a, b: _loss(net2, a, b))(x, y)
    paths, leaves, _ = tu.tree_flatten_with_path(g)
    assert paths == list(grads)
    for p, leaf in zip(paths, leaves, strict=False):
        np.testing.assert_allclose(N(leaf), N(grads[p]), rtol=1e-12, atol=1e-14)
    # the model passed to grad was not touched (its BatchNorm ran on a copy)
    for k, val in net.state_dict().items():
        np.testing.assert_array_equal(N(val), before[k])
        assert not val.is_tracer


def test_vmap_over_module_and_stacked_modules() -> None:
    lin = nn.Linear(3, 2, dtype=fl.float64)
    xs = T(RNG.normal(size=(5, 4, 3)), fl.float64)
    out = fl.vmap(lambda m, x: m(x), in_axes=(None, 0))(lin, xs)
    np.testing.assert_allclose(N(out), np.stack([N(lin(xs[i])) for i in range(5)]))
    models = [nn.Linear(3, 2, dtype=fl.float64) for _ in range(3)]
    stacked = tu.tree_map(lambda *ps: fl.stack(ps), *models)
    x = T(RNG.normal(size=(4, 3)), fl.float64)
    out = fl.vmap(lambda m: m(x))(stacked)
    np.testing.assert_allclose(N(out), np.stack([N(m(x)) for m in models]), rtol=1e-12)
    per_example = fl.vmap(fl.grad(lambda m, xi: fl.sum(m(xi) ** 2)), in_axes=(None, 0))(lin, xs)
    assert per_example.weight.shape == (5, 2, 3)


def test_ensembling_with_stack_module_state() -> None:
    models = [
        nn.Sequential(nn.Linear(3, 4, dtype=fl.float64), nn.BatchNorm1d(4, dtype=fl.float64), nn.Tanh()).eval()
        for _ in range(3)
    ]
    for i, m in enumerate(models):
        m[1].running_mean = fl.full((4,), 0.1 * i, dtype=fl.float64)
    params, buffers = nn.stack_module_state(models)
    assert params["0.weight"].shape == (3, 4, 3) and buffers["1.running_mean"].shape == (3, 4)
    base = models[0]
    x = T(RNG.normal(size=(5, 3)), fl.float64)
    out = fl.vmap(lambda p, b: nn.functional_call(base, (p, b), x))(params, buffers)
    np.testing.assert_allclose(N(out), np.stack([N(m(x)) for m in models]), rtol=1e-12)
    assert not base[0].weight.is_tracer and not base[1].running_mean.is_tracer


# ---------------------------------------------------------------------------------------------
# functional_call and nn.value_and_grad
# ---------------------------------------------------------------------------------------------
def test_functional_call_substitutes_and_restores() -> None:
    lin = nn.Linear(2, 1)
    w, b = lin.weight, lin.bias
    out = nn.functional_call(lin, {"weight": T([[1.0, 1.0]], fl.float32)}, T([[2.0, 3.0]], fl.float32))
    np.testing.assert_allclose(N(out), 5.0 + N(b)[None], rtol=1e-6)
    assert lin.weight is w and lin.bias is b

    class Boom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(fl.ones(()))

        def forward(self, x: Any) -> Any:
            raise RuntimeError("boom")

    m = Boom()
    orig = m.w
    with pytest.raises(RuntimeError, match="boom"):
        nn.functional_call(m, {"w": fl.zeros(())}, 1.0)
    assert m.w is orig
    with pytest.raises(fl.StateDictError, match="wieght"):
        nn.functional_call(lin, {"wieght": fl.ones((1, 2))}, fl.ones((1, 2)))


def test_no_tracer_leaks_from_grad_of_functional_call() -> None:
    net = Net()
    x, y = _data()
    params = dict(net.named_parameters())
    g = fl.grad(lambda p: _loss_fc(net, p, x, y))(params)
    assert set(g) == set(params)
    for _, t in list(net.named_parameters()) + list(net.named_buffers()):
        assert not t.is_tracer
    net(x)  # still usable eagerly


def _loss_fc(net: nn.Module, p: Any, x: Any, y: Any) -> Any:
    return fl.mean((nn.functional_call(net, p, x) - y) ** 2)


def test_tied_weights_share_gradient() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Linear(3, 3, bias=False, dtype=fl.float64)
            self.dec = nn.Linear(3, 3, bias=False, dtype=fl.float64)
            self.dec.weight = self.enc.weight

        def forward(self, x: Any) -> Any:
            return self.dec(fl.tanh(self.enc(x)))

    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["enc.weight"]
    assert list(m.state_dict()) == ["enc.weight", "dec.weight"]
    x = T(RNG.normal(size=(4, 3)), fl.float64)
    _, grads = nn.value_and_grad(m, lambda v: fl.sum(m(v) ** 2))(x)
    w = m.enc.weight

    def f(wv: Any) -> Any:
        return fl.sum(F.linear(fl.tanh(F.linear(x, wv)), wv) ** 2)

    np.testing.assert_allclose(N(grads["enc.weight"]), N(fl.grad(f)(w)), rtol=1e-12)
    out = nn.functional_call(m, {"enc.weight": fl.zeros((3, 3), dtype=fl.float64)}, x)
    assert float(fl.sum(fl.abs(out))) == 0.0


def test_value_and_grad_updates_batchnorm_stats_concretely() -> None:
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm1d(3, dtype=fl.float64)
    lin = nn.Linear(2, 3, dtype=fl.float64)
    model = nn.Sequential(lin, bn)
    x = T(RNG.normal(size=(8, 2)), fl.float64)
    tm = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).double()
    tm.load_state_dict({k: torch.from_numpy(N(v).copy()) for k, v in model.state_dict().items()})
    step = nn.value_and_grad(model, lambda v: fl.sum(model(v) ** 3))
    for _ in range(2):
        loss, grads = step(x)
        tm(torch.from_numpy(N(x).copy()))
    for name, buf in model.named_buffers():
        assert not buf.is_tracer
        np.testing.assert_allclose(N(buf), tm.state_dict()[name].numpy(), rtol=1e-12)
    assert int(model[1].num_batches_tracked) == 2
    # functional_call_with_state returns the new state and leaves the model alone
    before = N(model[1].running_mean).copy()
    _, bufs = nn.functional_call_with_state(model, {}, x)
    np.testing.assert_array_equal(N(model[1].running_mean), before)
    assert not np.allclose(N(bufs["1.running_mean"]), before)


def test_value_and_grad_aux_and_frozen() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].freeze()
    vg = nn.value_and_grad(model, lambda v: (fl.sum(model(v)), "aux", model(v)))
    (loss, tag, out), grads = vg(fl.ones((3, 2)))
    assert tag == "aux" and out.shape == (3, 1) and not out.is_tracer
    assert list(grads) == ["1.weight", "1.bias"]


def test_batchnorm_under_vmap() -> None:
    bn = nn.BatchNorm1d(3, dtype=fl.float64)
    xs = T(RNG.normal(size=(4, 5, 3)), fl.float64)
    with pytest.raises(fl.TransformError, match="vmap"):
        fl.vmap(bn)(xs)
    assert not bn.running_mean.is_tracer and int(bn.num_batches_tracked) == 0
    bn.eval()
    out = fl.vmap(bn)(xs)
    np.testing.assert_allclose(N(out), np.stack([N(bn(xs[i])) for i in range(4)]))


def test_grad_of_module_with_batchnorm_inside_jvp_and_grad_of_grad() -> None:
    model = nn.Sequential(nn.Linear(2, 3, dtype=fl.float64), nn.BatchNorm1d(3, dtype=fl.float64), nn.Tanh())
    x = T(RNG.normal(size=(6, 2)), fl.float64)
    w0 = model[0].weight
    _, t = fl.jvp(lambda w: fl.sum(nn.functional_call(model, {"0.weight": w}, x)), (w0,), (fl.ones_like(w0),))
    assert not model[1].running_mean.is_tracer
    hvp = fl.grad(lambda w: fl.sum(fl.grad(lambda u: fl.sum(nn.functional_call(model, {"0.weight": u}, x) ** 2))(w)))(
        w0
    )
    assert hvp.shape == w0.shape
    assert not model[1].running_mean.is_tracer


# ---------------------------------------------------------------------------------------------
# init
# ---------------------------------------------------------------------------------------------
def test_init_functions() -> None:
    k = fl.random.key(0)
    w = fl.zeros((64, 32))
    same = nn.init.kaiming_normal_(fl.zeros((64, 32)), key=k)
    assert nn.init.kaiming_normal_(w, key=k) is w
    np.testing.assert_array_equal(N(w), N(same))
    assert abs(N(w).std() - math.sqrt(2) / math.sqrt(32)) < 0.03
    nn.init.xavier_uniform_(w, gain=2.0)
    assert np.abs(N(w)).max() <= 2.0 * math.sqrt(6 / 96) + 1e-6
    nn.init.xavier_normal_(w)
    nn.init.trunc_normal_(w, std=2.0, a=-1.0, b=0.5)
    assert N(w).min() >= -1.0 and N(w).max() <= 0.5
    nn.init.constant_(w, 0.3)
    assert np.allclose(N(w), 0.3)
    nn.init.eye_(w)
    assert N(w).trace() == 32
    q = nn.init.orthogonal_(fl.zeros((6, 4), dtype=fl.float64), gain=2.0)
    np.testing.assert_allclose(N(q).T @ N(q), 4 * np.eye(4), atol=1e-10)
    q2 = nn.init.orthogonal_(fl.zeros((3, 2, 4), dtype=fl.float64))
    m = N(q2).reshape(3, 8)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-10)
    d = nn.init.dirac_(fl.zeros((3, 3, 5)))
    assert N(d)[1, 1, 2] == 1 and N(d).sum() == 3
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(fl.ConfigError, match="nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(fl.ShapeError, match="2 dimensions"):
        nn.init.xavier_uniform_(fl.zeros((3,)))
    u = nn.init.uniform_(fl.zeros((1000,)), -2.0, -1.0)
    assert N(u).min() >= -2.0 and N(u).max() <= -1.0 and u.dtype == fl.float32


# ---------------------------------------------------------------------------------------------
# training: an MLP on scikit-learn's digits
# ---------------------------------------------------------------------------------------------
def test_mlp_trains_on_digits() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if fl.default_backend_name() != "numpy":
        pytest.skip("trained once, on the numpy run (the strict backend is several times slower)")
    start = time.perf_counter()
    X, y = datasets.load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = model_selection.train_test_split(X / 16.0, y, test_size=0.2, stratify=y, random_state=0)
    fl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    step = nn.value_and_grad(model, lambda xb, yb: F.cross_entropy(model(xb), yb))
    lr, momentum, weight_decay, epochs, bs = 0.1, 0.9, 1e-4, 30, 64
    velocity = {n: fl.zeros_like(p) for n, p in model.named_parameters()}
    rng = np.random.default_rng(0)
    params = dict(model.named_parameters())
    total, k = epochs * math.ceil(len(Xtr) / bs), 0
    with threadpoolctl.threadpool_limits(1):  # small matmuls: BLAS threads only contend
        for _epoch in range(epochs):
            order = rng.permutation(len(Xtr))
            for i in range(0, len(order), bs):
                sel = order[i : i + bs]
                loss, grads = step(T(Xtr[sel], fl.float32), T(ytr[sel].astype(np.int64)))
                cur = lr * 0.5 * (1 + math.cos(math.pi * k / total))  # cosine schedule
                k += 1
                for n, g in grads.items():  # hand-written SGD with momentum (functional rebinding)
                    velocity[n] = velocity[n] * momentum + g + weight_decay * params[n]
                    p = params[n]
                    p -= cur * velocity[n]
    model.eval()
    pred = N(fl.argmax(model(T(Xte, fl.float32)), axis=1))
    acc = (pred == yte).mean()
    assert acc >= 0.97, acc
    assert time.perf_counter() - start < 60  # about 5 s on an idle 2-core machine


def test_per_example_gradients_of_a_module() -> None:
    lin = nn.Linear(3, 4, dtype=fl.float64)
    xs = T(RNG.normal(size=(6, 3)), fl.float64)
    ys = T(RNG.integers(0, 4, size=6))

    def loss(m: nn.Module, x: Any, y: Any) -> Any:
        return F.cross_entropy(m(x[None]), y[None])

    g = fl.vmap(fl.grad(loss), in_axes=(None, 0, 0))(lin, xs, ys)
    loop = np.stack([N(fl.grad(loss)(lin, xs[i], ys[i]).weight) for i in range(6)])
    np.testing.assert_allclose(N(g.weight), loop, rtol=1e-12, atol=1e-14)
    # the same through the MLX-style API, vmapped
    vg = nn.value_and_grad(lin, lambda x, y: F.cross_entropy(lin(x[None]), y[None]))
    losses, grads = fl.vmap(vg)(xs, ys)
    assert losses.shape == (6,)
    np.testing.assert_allclose(N(grads["weight"]), loop, rtol=1e-12, atol=1e-14)


def test_tree_map_of_model_and_gradient_module() -> None:
    """JAX-style SGD: tree_map over a model (buffers, frozen parameters) and its gradient Module."""
    model = nn.Sequential(
        nn.Linear(3, 4, dtype=fl.float64), nn.BatchNorm1d(4, dtype=fl.float64), nn.Linear(4, 1, dtype=fl.float64)
    )
    model[2].freeze(keys="bias")
    x, y = _data()
    g = fl.grad(_loss)(model, x, y)
    assert g[1].running_mean is None and g[2].bias is None
    new = tu.tree_map(lambda p, d: p - 0.1 * d, model, g)
    assert type(new) is nn.Sequential and new[1].running_mean._a is model[1].running_mean._a
    assert new[2].bias._a is model[2].bias._a and isinstance(new[2].bias, nn.Parameter)
    np.testing.assert_allclose(N(new[0].weight), N(model[0].weight) - 0.1 * N(g[0].weight))
    assert new(x).shape == (6, 1)
    # and a tangent Module of the model's structure for jvp
    t = tu.tree_map(fl.ones_like, model)
    _, tan = fl.jvp(lambda m: _loss(m, x, y), (model,), (t,))
    assert tan.shape == ()


def test_in_place_buffer_update_with_traced_value_does_not_leak() -> None:
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(fl.ones((2,), dtype=fl.float64))
            self.register_buffer("acc", fl.zeros((2,), dtype=fl.float64))

        def forward(self, x: Any) -> Any:
            acc = self.acc
            acc += self.w * x  # in-place rebinding of the module's own buffer with a traced value
            return fl.sum(self.w * x)

    m = Counter()
    buf = m.acc
    loss, grads = nn.value_and_grad(m, lambda v: m(v))(T([1.0, 2.0], fl.float64))
    assert m.acc is buf and not buf.is_tracer
    np.testing.assert_allclose(N(buf), [1.0, 2.0])  # the concrete value of the update is kept
    np.testing.assert_allclose(N(grads["w"]), [1.0, 2.0])
    nn.functional_call(m, {"w": T([3.0, 3.0], fl.float64)}, T([1.0, 1.0], fl.float64))
    assert not m.acc.is_tracer
    fl.grad(lambda mod, v: mod(v))(m, T([1.0, 1.0], fl.float64))  # runs on a rebuilt copy
    assert not m.acc.is_tracer


def test_container_and_module_helpers() -> None:
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml.extend([nn.Sigmoid()])
    assert isinstance(ml.pop(0), nn.ReLU) and [type(m).__name__ for m in ml] == ["Tanh", "Sigmoid"]
    assert isinstance(ml[-1:], nn.ModuleList) and len(ml + [nn.ReLU()]) == 3
    ml[0] = nn.ReLU()
    assert isinstance(ml[0], nn.ReLU)
    md = nn.ModuleDict()
    md.update({"a": nn.ReLU()})
    assert list(md.items())[0][0] == "a" and len(md) == 1
    md.clear()
    assert len(md) == 0
    with pytest.raises(fl.ConfigError):
        md["a.b"] = nn.ReLU()
    seq = nn.Sequential()
    seq.insert(0, nn.Identity())
    assert len(seq) == 1 and isinstance(seq.pop(), nn.Identity)
    m = nn.Linear(2, 2)
    m.requires_grad_(False)
    assert m.trainable_parameters() == {}
    m.requires_grad_(True)
    assert len(m.trainable_parameters()) == 2
    m.register_module("extra", nn.ReLU())
    assert m.get_submodule("extra") is m.extra
    with pytest.raises(AttributeError, match="nope"):
        m.get_submodule("nope")
    assert nn.Flatten()(fl.ones(())).shape == (1,)
    assert "weight" in dir(m)
    with pytest.raises(fl.ConfigError, match="name"):
        m.register_buffer("a.b", fl.ones(()))


# ---------------------------------------------------------------------------------------
# Cached layouts: nn.value_and_grad and the optimizers reuse a module's flattened structure
# between steps; every structural change must invalidate it (each test fails on a stale cache)
# ---------------------------------------------------------------------------------------
def _tree_grads(model: nn.Module, loss: Any, *args: Any) -> dict[str, np.ndarray]:
    """Reference gradients through the uncached pytree path, keyed like named_parameters()."""
    g = fl.grad(lambda m: loss(m, *args))(model)
    names = dict(model.named_trainable_parameters())
    got = {k: v for k, v in g.named_parameters() if v is not None}
    return {k: N(got[k]) for k in names}


def _check_step(model: nn.Module, loss: Any, *args: Any) -> dict[str, Any]:
    vg = nn.value_and_grad(model, lambda *a: loss(model, *a))
    _, g = vg(*args)
    exp = _tree_grads(model, loss, *args)
    assert sorted(g) == sorted(exp) == sorted(n for n, _ in model.named_trainable_parameters())
    for k in exp:
        np.testing.assert_allclose(N(g[k]), exp[k], rtol=1e-12, atol=1e-12)
    return g


def _mlp() -> nn.Sequential:
    fl.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4, dtype=fl.float64), nn.ReLU(), nn.Linear(4, 2, dtype=fl.float64))


def _ce(m: nn.Module, x: Any, y: Any) -> Any:
    return F.cross_entropy(m(x), y)


_X = T(RNG.normal(size=(5, 3)), fl.float64)
_Y = T(np.array([0, 1, 1, 0, 1]))


def test_layout_cache_follows_added_and_removed_modules() -> None:
    model = _mlp()
    vg = nn.value_and_grad(model, lambda x, y: _ce(model, x, y))
    vg(_X, _Y)
    model.append(nn.Linear(2, 2, dtype=fl.float64))  # Sequential.append writes _modules directly
    g = _check_step(model, _ce, _X, _Y)
    assert "3.weight" in g
    _, g = vg(_X, _Y)  # the closure made before the change sees the new layer too
    assert "3.weight" in g
    del model[3]
    g = _check_step(model, _ce, _X, _Y)
    assert "3.weight" not in g
    model._modules["1"] = nn.Tanh()  # a direct registry write is a structural change too
    _check_step(model, _ce, _X, _Y)


def test_layout_cache_follows_swapped_parameters_and_freezing() -> None:
    model = _mlp()
    opt = optim.Adam(lr=0.1)
    vg = nn.value_and_grad(model, lambda x, y: _ce(model, x, y))
    _, g = vg(_X, _Y)
    opt.update(model, g)
    old = model[0].weight
    model[0].weight = nn.Parameter(T(RNG.normal(size=(4, 3)), fl.float64))  # a new object
    _check_step(model, _ce, _X, _Y)
    _, g = vg(_X, _Y)
    before_new, before_old = N(model[0].weight).copy(), N(old).copy()
    opt.update(model, g)
    assert not np.allclose(N(model[0].weight), before_new)  # the optimizer updates the new object
    np.testing.assert_array_equal(N(old), before_old)  # and leaves the old one alone
    model[2].freeze()
    g = _check_step(model, _ce, _X, _Y)
    assert "2.weight" not in g and "2.bias" not in g
    model[2].unfreeze()
    assert "2.weight" in _check_step(model, _ce, _X, _Y)
    model[0].bias.requires_grad = False  # a Parameter's own flag
    g = _check_step(model, _ce, _X, _Y)
    assert "0.bias" not in g and "2.weight" in g
    model[0].bias.requires_grad_(True)
    assert "0.bias" in _check_step(model, _ce, _X, _Y)
    model[0].weight = T(RNG.normal(size=(4, 3)), fl.float64)  # a plain Tensor into a parameter slot
    _check_step(model, _ce, _X, _Y)
    model[0].register_parameter("bias", None)
    assert "0.bias" not in _check_step(model, _ce, _X, _Y)


def test_layout_cache_sees_swapped_in_values_inside_the_call() -> None:
    """parameters() inside the loss (weight decay) and a nested nn.value_and_grad see tracers."""
    model = _mlp()

    def loss(m: nn.Module, x: Any, y: Any) -> Any:
        return _ce(m, x, y) + 0.1 * sum(fl.sum(p * p) for p in m.parameters())

    for _ in range(2):
        _check_step(model, loss, _X, _Y)
    inner = nn.value_and_grad(model, lambda x, y: _ce(model, x, y))
    inner(_X, _Y)  # caches the layout

    def outer(x: Any, y: Any) -> Any:
        _, g = inner(x, y)  # nested: differentiates the outer tracers, not stale Parameters
        return sum(fl.sum(v * v) for v in g.values())

    _, g2 = nn.value_and_grad(model, outer)(_X, _Y)
    exp = fl.grad(lambda m: sum(fl.sum(v * v) for v in fl.grad(lambda m2: _ce(m2, _X, _Y))(m).parameters()))(model)
    for k, v in exp.named_parameters():
        np.testing.assert_allclose(N(g2[k]), N(v), rtol=1e-10, atol=1e-12)


def test_layout_cache_is_not_copied() -> None:
    import copy

    model = _mlp()
    nn.value_and_grad(model, lambda x, y: _ce(model, x, y))(_X, _Y)
    for twin in (copy.deepcopy(model),):
        opt = optim.SGD(lr=1.0)
        before = N(model[0].weight).copy()
        _, g = nn.value_and_grad(twin, lambda x, y: _ce(twin, x, y))(_X, _Y)
        opt.update(twin, g)
        np.testing.assert_array_equal(N(model[0].weight), before)  # the original is untouched
        assert not np.allclose(N(twin[0].weight), before)
    grads = fl.grad(lambda m: _ce(m, _X, _Y))(model)  # a gradient Module: no cache of the model's
    assert grads._flat_parameters()["0.weight"] is grads[0].weight


def test_layout_cache_keeps_buffer_updates() -> None:
    fl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=fl.float64), nn.BatchNorm1d(4, dtype=fl.float64))
    vg = nn.value_and_grad(model, lambda x: fl.sum(model(x) ** 2))
    seen = []
    for _ in range(3):
        vg(_X)
        seen.append(N(model[1].running_mean).copy())
        assert model[1].running_mean.is_tracer is False
    assert not np.allclose(seen[0], seen[1]) and not np.allclose(seen[1], seen[2])
    assert float(model[1].num_batches_tracked) == 3
    model.eval()
    before = N(model[1].running_mean).copy()
    vg(_X)
    np.testing.assert_array_equal(N(model[1].running_mean), before)  # eval: statistics frozen
