"""fl.onnx.export: each exported model run in onnxruntime against eager functorch_lite (float32, 1e-5).

The oracle is the eager function itself on the same inputs (and, for the gradient, finite
differences through the eager function's values); onnxruntime is the independent executor.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-5


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(model, *xs):
    s = _session(model)
    feeds = {
        i.name: np.asarray(x.numpy() if isinstance(x, fl.Tensor) else x)
        for i, x in zip(s.get_inputs(), xs, strict=True)
    }
    assert len(feeds) == len(s.get_inputs())
    return s.run(None, feeds)


def _np(x):
    return np.asarray(x.numpy() if isinstance(x, fl.Tensor) else x)


def _close(got, want, atol=ATOL):
    want = _np(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, atol=atol, rtol=1e-5)


def _normal(seed, shape):
    return fl.random.normal(fl.random.key(seed), shape)


# ---------------------------------------------------------------------------------------
# Models of the issue
# ---------------------------------------------------------------------------------------
def test_pure_function_mlp_with_param_pytree():
    k = fl.random.split(fl.random.key(0), 3)
    params = {"w1": fl.random.normal(k[0], (4, 16)) * 0.5, "b1": fl.zeros((16,)), "w2": fl.random.normal(k[1], (16, 3))}

    def mlp(params, x):
        h = fl.tanh(x @ params["w1"] + params["b1"])
        return nn.functional.log_softmax(h @ params["w2"], dim=-1)

    x = fl.random.normal(k[2], (5, 4))
    model = fl.onnx.export(mlp, (params, x), None)
    names = [i.name for i in model.graph.input]
    assert names == ["params.b1", "params.w1", "params.w2", "x"]
    (got,) = _run(model, params["b1"], params["w1"], params["w2"], x)
    _close(got, mlp(params, x))


def test_demo_cnn_dynamic_batch(tmp_path):
    from functorch_lite._demo import make_cnn

    fl.random.manual_seed(0)
    cnn = make_cnn()
    path = tmp_path / "cnn.onnx"
    model = fl.onnx.export(
        cnn,
        (_normal(1, (2, 64)),),
        path,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
    )
    assert path.exists()
    loaded = onnx.load(str(path))
    assert loaded.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert loaded.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {i.name for i in model.graph.initializer} >= {"1.weight", "1.bias", "3.weight", "7.weight"}
    s = _session(loaded)
    for b in (1, 7, 64):
        x = _normal(b, (b, 64))
        (got,) = s.run(None, {"pixels": _np(x)})
        _close(got, cnn(x))


def test_layernorm_batchnorm_eval_embedding():
    fl.random.manual_seed(1)
    ln = nn.LayerNorm(6)
    ln.weight = nn.Parameter(_normal(2, (6,)))
    x = _normal(3, (4, 6))
    (got,) = _run(fl.onnx.export(ln, (x,), None), x)
    _close(got, ln(x))

    bn = nn.BatchNorm2d(3)
    for _ in range(3):  # running statistics away from 0 / 1
        bn(_normal(4, (5, 3, 4, 4)) * 2.0 + 1.0)
    bn.eval()
    x = _normal(5, (2, 3, 4, 4))
    (got,) = _run(fl.onnx.export(bn, (x,), None), x)
    _close(got, bn(x))

    bn.train()  # exported in eval mode, as torch.onnx.export does; the mode is restored
    model = fl.onnx.export(bn, (x,), None)
    assert bn.training
    bn.eval()
    _close(_run(model, x)[0], bn(x))

    emb = nn.Embedding(10, 4)
    ids = fl.asarray([[1, 2, 9], [0, 0, 3]])
    (got,) = _run(fl.onnx.export(emb, (ids,), None, dynamic_axes={"input": [0, 1]}), ids)
    _close(got, emb(ids))
    ids2 = fl.asarray([[5, 1, 2, 3, 4]])
    (got,) = _run(fl.onnx.export(emb, (ids,), None, dynamic_axes={"input": [0, 1]}), ids2)
    _close(got, emb(ids2))


def test_attention_dynamic_sequence():
    fl.random.manual_seed(2)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = _normal(6, (2, 5, 8))

    def f(x):
        return mha(x, x, x, need_weights=False)[0]

    model = fl.onnx.export(f, (x,), None, dynamic_axes={"x": {0: "batch", 1: "seq"}})
    s = _session(model)
    for shape in ((2, 5, 8), (1, 3, 8), (3, 9, 8)):
        xs = _normal(7, shape)
        (got,) = s.run(None, {"x": _np(xs)})
        _close(got, f(xs))


def test_lstm():
    fl.random.manual_seed(3)
    lstm = nn.LSTM(4, 6, batch_first=True)
    x = _normal(8, (2, 5, 4))
    model = fl.onnx.export(lstm, (x,), None)
    outs = _run(model, x)
    want = fl.tree_util.tree_leaves(lstm(x))
    assert len(outs) == len(want)
    for g, w in zip(outs, want, strict=True):
        _close(g, w)


LAYERS = {
    "avgpool2d": lambda: nn.AvgPool2d(2),
    "adaptive_avgpool2d": lambda: nn.AdaptiveAvgPool2d(1),
    "upsample": lambda: nn.Upsample(scale_factor=2),
    "upsample_bilinear": lambda: nn.UpsamplingBilinear2d(scale_factor=2),
    "conv_transpose2d": lambda: nn.ConvTranspose2d(4, 3, 3, stride=2),
    "groupnorm": lambda: nn.GroupNorm(2, 4),
    "instancenorm2d": lambda: nn.InstanceNorm2d(4),
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(),
    "prelu": lambda: nn.PReLU(),
    "dropout_in_eval": lambda: nn.Dropout(0.5),
}
SEQ_LAYERS = {
    "conv1d_strided": lambda: nn.Conv1d(4, 5, 3, stride=2),
    "maxpool1d": lambda: nn.MaxPool1d(3, stride=2),
    "rmsnorm": lambda: nn.RMSNorm(9),
    "gru": lambda: nn.GRU(9, 5, batch_first=True),
    "transformer_encoder_layer": lambda: nn.TransformerEncoderLayer(9, 3, 16, batch_first=True, dropout=0.0),
}


@pytest.mark.parametrize("name", sorted(LAYERS) + sorted(SEQ_LAYERS))
def test_nn_layers(name):
    fl.random.manual_seed(6)
    layer = (LAYERS.get(name) or SEQ_LAYERS[name])()
    x = _normal(19, (2, 4, 8, 8) if name in LAYERS else (2, 4, 9))
    model = fl.onnx.export(layer, (x,), None)
    layer.eval()
    got = _run(model, x)
    want = fl.tree_util.tree_leaves(layer(x))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        _close(g, w, atol=1e-5)


def test_jit_vmap_jacrev_and_custom_vjp_functions():
    x = _normal(20, (3, 4))
    f = fl.jit(lambda x: fl.sin(x) * 2)
    _close(_run(fl.onnx.export(f, (x,), None), x)[0], f(x))
    g = fl.vmap(fl.grad(lambda v: fl.sum(v**3)))
    model = fl.onnx.export(g, (x,), None, dynamic_axes={"v": [0]})
    x5 = _normal(21, (5, 4))
    _close(_run(model, x5)[0], g(x5))
    h = fl.jacrev(lambda v: fl.tanh(v) * v)
    _close(_run(fl.onnx.export(h, (x[0],), None), x[0])[0], h(x[0]))

    @fl.custom_vjp
    def clipgrad(x):
        return x

    clipgrad.defvjp(lambda x: (x, None), lambda r, g: (fl.clip(g, -0.1, 0.1),))
    k = fl.grad(lambda x: fl.sum(clipgrad(x) * 3.0))
    (got,) = _run(fl.onnx.export(k, (x,), None), x)
    np.testing.assert_array_equal(got, np.full((3, 4), 0.1, np.float32))


def test_gradient_function():
    k = fl.random.split(fl.random.key(4), 3)
    params = {"w": fl.random.normal(k[0], (4, 3)), "b": fl.zeros((3,))}
    x = fl.random.normal(k[1], (6, 4))
    y = fl.asarray([0, 1, 2, 0, 1, 2])

    def loss(params, x, y):
        return nn.functional.cross_entropy(x @ params["w"] + params["b"], y)

    model = fl.onnx.export(fl.grad(loss), (params, x, y), None)
    assert [o.name for o in model.graph.output] == ["output.b", "output.w"]
    gb, gw = _run(model, params["b"], params["w"], x, y)
    want = fl.grad(loss)(params, x, y)
    _close(gb, want["b"])
    _close(gw, want["w"])
    # and the gradient itself against central differences of the eager loss (float64)
    w64 = _np(params["w"]).astype(np.float64)
    eps = 1e-6
    num = np.zeros_like(w64)
    for i in np.ndindex(*w64.shape):
        e = np.zeros_like(w64)
        e[i] = eps
        lo = loss(
            {"w": fl.asarray((w64 - e).tolist(), dtype=fl.float64), "b": fl.zeros((3,), dtype=fl.float64)},
            fl.astype(x, fl.float64),
            y,
        )
        hi = loss(
            {"w": fl.asarray((w64 + e).tolist(), dtype=fl.float64), "b": fl.zeros((3,), dtype=fl.float64)},
            fl.astype(x, fl.float64),
            y,
        )
        num[i] = (float(hi) - float(lo)) / (2 * eps)
    np.testing.assert_allclose(gw, num, atol=1e-4)


def test_training_step_with_optimizer():
    fl.random.manual_seed(5)
    model_ = nn.Linear(4, 2)
    params = dict(model_.named_parameters())
    opt = fl.optim.adam(1e-2)
    state = opt.init(params)
    x, y = _normal(9, (8, 4)), _normal(10, (8, 2))

    def step(params, state, x, y):
        g = fl.grad(lambda p: fl.mean((nn.functional_call(model_, p, x) - y) ** 2))(params)
        upd, state = opt.update(g, state, params)
        return fl.optim.apply_updates(params, upd), state

    m = fl.onnx.export(step, (params, state, x, y), None)
    feeds = fl.tree_util.tree_leaves((params, state, x, y))
    got = _run(m, *feeds)
    want = fl.tree_util.tree_leaves(step(params, state, x, y))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        _close(g, w)


def test_scan_cond_while():
    def f(c0, xs):
        def body(c, x):
            c = fl.tanh(c * 0.9 + x)
            return c, fl.sum(c)

        c, ys = fl.scan(body, c0, xs)
        r, _ = fl.scan(lambda c, x: (c + x, c * x), c0, xs, reverse=True)
        big = fl.cond(fl.sum(c) > 0, lambda v: v * 2.0, lambda v: v - 1.0, c)
        n, acc = fl.while_loop(lambda s: s[0] < 5, lambda s: (s[0] + 1, s[1] * 1.5), (0, c))
        return big, ys, r, acc, n

    c0, xs = _normal(11, (3,)), _normal(12, (7, 3))
    model = fl.onnx.export(f, (c0, xs), None, dynamic_axes={"xs": {0: "time"}})
    for t in (7, 2, 20):
        xs_t = _normal(13 + t, (t, 3))
        got = _run(model, c0, xs_t)
        want = f(c0, xs_t)
        for g, w in zip(got, want, strict=True):
            _close(g, w)


def test_switch_and_fori_loop():
    def f(i, x):
        y = fl.switch(i, [lambda v: v + 1.0, lambda v: v * 3.0, lambda v: -v], x)
        return fl.fori_loop(0, 4, lambda k, v: v * 0.5 + k, y)

    x = _normal(14, (3,))
    model = fl.onnx.export(f, (fl.asarray(0), x), None)
    for i in (-2, 0, 1, 2, 7):
        (got,) = _run(model, fl.asarray(i), x)
        _close(got, f(fl.asarray(i), x))


def test_random_with_a_key_input():
    def f(key, x):
        return x + fl.random.normal(key, x.shape) * 0.1 + fl.random.uniform(key, x.shape)

    x = fl.zeros((4, 3))
    model = fl.onnx.export(f, (fl.random.key(0), x), None)
    for seed in (0, 7):
        (got,) = _run(model, fl.random.key(seed), x)
        _close(got, f(fl.random.key(seed), x))


# ---------------------------------------------------------------------------------------
# Elementwise coverage, against eager
# ---------------------------------------------------------------------------------------
UNARY = [
    "abs",
    "cos",
    "sin",
    "tanh",
    "exp",
    "log1p",
    "expm1",
    "sqrt",
    "floor",
    "ceil",
    "round",
    "trunc",
    "sign",
    "square",
    "log2",
    "log10",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "negative",
    "isfinite",
    "isnan",
    "signbit",
]


@pytest.mark.parametrize("name", UNARY)
def test_unary(name):
    x = fl.asarray([-2.5, -1.0, -1e-7, 0.0, 1e-6, 0.3, 0.5, 1.5, 2.5, 3.0], dtype=fl.float32)
    if name in ("sqrt", "log1p"):
        x = fl.abs(x)
    f = getattr(fl, name)
    (got,) = _run(fl.onnx.export(f, (x,), None), x)
    _close(got, f(x))


BINARY = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "maximum",
    "minimum",
    "atan2",
    "hypot",
    "copysign",
    "logaddexp",
    "remainder",
    "floor_divide",
    "less",
    "greater_equal",
    "not_equal",
    "pow",
]


@pytest.mark.parametrize("name", BINARY)
def test_binary(name):
    a = fl.asarray([[-2.5, -1.0, 0.5], [1.5, 2.0, -0.0]], dtype=fl.float32)
    b = fl.asarray([1.5, -0.5, 2.0], dtype=fl.float32)
    if name == "pow":
        a = fl.abs(a) + 0.1
    f = getattr(fl, name)
    (got,) = _run(fl.onnx.export(f, (a, b), None), a, b)
    _close(got, f(a, b))


def test_integer_ops_and_nan():
    a = fl.asarray([-7, -3, 0, 4, 9], dtype=fl.int32)
    b = fl.asarray([2, -2, 3, 3, -4], dtype=fl.int32)

    def f(a, b):
        return (
            fl.floor_divide(a, b),
            fl.remainder(a, b),
            fl.bitwise_left_shift(a, 2),
            fl.bitwise_right_shift(a, 1),
            a * 3 + 1,
            fl.bitwise_xor(a, b),
        )

    for g, w in zip(_run(fl.onnx.export(f, (a, b), None), a, b), f(a, b), strict=True):
        _close(g, w)
    x = fl.asarray([1.0, float("nan"), -2.0])
    g = lambda x: (fl.maximum(x, 0.0), fl.clip(x, -1.0, 1.0), nn.functional.relu(x))  # noqa: E731
    for got, want in zip(_run(fl.onnx.export(g, (x,), None), x), g(x), strict=True):
        np.testing.assert_array_equal(got, _np(want))


def test_reductions_indexing_manipulation():
    x = _normal(15, (4, 5, 3))
    idx = fl.asarray([3, 0, 1])

    def f(x, idx):
        return (
            fl.sum(x, axis=(0, 2)),
            fl.max(x, axis=1, keepdims=True),
            fl.argmax(x, axis=1),
            fl.argmin(x),
            fl.prod(x[:2, 1:3], axis=0),
            fl.all(x > -10.0),
            fl.any(x > 1.0, axis=0),
            fl.cumulative_sum(x, axis=1, include_initial=True),
            fl.sort(x, axis=1),
            fl.argsort(x, axis=0, descending=True),
            x[idx],
            x[:, idx, 1],
            x[::-1, 0, None],
            x[..., -1],
            x[1:3, ::2],
            fl.flip(x, axis=1),
            fl.roll(x, 2, axis=1),
            fl.concat([x, x * 2.0], axis=2),
            fl.permute_dims(x, (2, 0, 1)),
            fl.reshape(x, (-1, 3)),
            fl.broadcast_to(x[:, :1], (4, 6, 3)),
            fl.tril(x[0], k=1),
            fl.triu(x[0]),
            fl.linalg.diagonal(x[0]),
            fl.where(x > 0, x, 0.0),
            fl.astype(x * 3.0, fl.int32),
            fl.mean(x),
            fl.var(x, axis=0),
            fl.max(x),
            fl.linalg.det(x[:3, :3, 0]),
            fl.take(x, idx, axis=1),
        )

    got = _run(fl.onnx.export(f, (x, idx), None), x, idx)
    want = f(x, idx)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        _close(g, w, atol=1e-4)


def test_setitem_and_gradients_of_indexing():
    def f(x, idx):
        y = fl.zeros((5, 4))
        y[1:4, ::2] = x[:3, :2]
        y[idx] = 7.0
        z = x * 1.0
        z[1:3, 0] = 5.0  # unit-step key into a non-constant array: Pad + Where
        z[-1] = x[0] + 1.0
        return y, z

    x, idx = _normal(16, (4, 4)), fl.asarray([0, 4])
    for got, want in zip(_run(fl.onnx.export(f, (x, idx), None), x, idx), f(x, idx), strict=True):
        _close(got, want)

    emb = _normal(17, (6, 3))
    ids = fl.asarray([1, 1, 4, 0])
    g = fl.grad(lambda e, i: fl.sum(fl.take(e, i, axis=0) ** 2))
    (got,) = _run(fl.onnx.export(g, (emb, ids), None), emb, ids)
    _close(got, g(emb, ids))

    conv = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2))
    xg = _normal(18, (1, 2, 6, 6))
    gx = fl.grad(lambda x: fl.sum(conv(x) ** 2))
    (got,) = _run(fl.onnx.export(gx, (xg,), None), xg)
    _close(got, gx(xg), atol=1e-4)


def test_float64_stays_float64():
    x = fl.asarray([1.0, 2.0], dtype=fl.float64)
    (got,) = _run(fl.onnx.export(lambda x: fl.exp(x) * 2, (x,), None), x)
    assert got.dtype == np.float64
    _close(got, fl.exp(x) * 2)


# ---------------------------------------------------------------------------------------
# Errors: typed, naming the problem, nothing written
# ---------------------------------------------------------------------------------------
def test_unsupported_primitive_raises_before_writing(tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(fl.ExportError, match="linalg.inv"):
        fl.onnx.export(lambda x: fl.linalg.inv(x), (fl.eye(3),), path)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_bad_dynamic_axes_names_and_paths(tmp_path):
    x = fl.ones((2, 3))
    with pytest.raises(fl.ExportError, match="'y'.*neither an input nor an output"):
        fl.onnx.export(lambda x: x * 2, (x,), None, dynamic_axes={"y": {0: "b"}})
    with pytest.raises(fl.ExportError, match="axis 5"):
        fl.onnx.export(lambda x: x * 2, (x,), None, dynamic_axes={"x": {5: "b"}})
    with pytest.raises(fl.ExportError, match="does not exist"):
        fl.onnx.export(lambda x: x * 2, (x,), tmp_path / "no" / "m.onnx")
    with pytest.raises(fl.ExportError, match="opset"):
        fl.onnx.export(lambda x: x * 2, (x,), None, opset=11)
    with pytest.raises(fl.ExportError, match="input_names"):
        fl.onnx.export(lambda x: x * 2, (x,), None, input_names=["a", "b"])
    assert os.listdir(tmp_path) == []


def test_shape_branching_on_a_dynamic_axis_is_refused():
    def f(x):
        return x * 2.0 if x.shape[0] < 15 else x * 3.0

    with pytest.raises(fl.ExportError, match="depends on a dynamic size|depends on the dynamic sizes"):
        fl.onnx.export(f, (fl.ones((4, 2)),), None, dynamic_axes={"x": [0]})


def test_non_polynomial_size_is_refused_where_needed():
    def f(x):  # a reshape to half the batch: n // 2 is not a polynomial in n
        return fl.reshape(x[: x.shape[0] // 2 * 2], (x.shape[0] // 2, -1))

    with pytest.raises(fl.ExportError, match="polynomial"):
        fl.onnx.export(f, (fl.ones((4, 2)),), None, dynamic_axes={"x": [0]})


# ---------------------------------------------------------------------------------------
# The coverage table in the docs is the code's
# ---------------------------------------------------------------------------------------
def test_docs_coverage_table_is_current():
    page = os.path.join(os.path.dirname(__file__), "..", "docs", "concepts", "export.md")
    with open(page, encoding="utf-8") as fh:
        text = fh.read()
    assert fl.onnx.coverage_table() in text, (
        "docs/concepts/export.md's coverage table is out of date: regenerate it with "
        "python -c 'import functorch_lite as fl; print(fl.onnx.coverage_table())'"
    )
    cov = fl.onnx.coverage()
    assert cov["matmul"][0] and cov["scan"][0] and not cov["linalg.inv"][0]


def test_demo_writes_and_checks_cnn_onnx(tmp_path):
    from functorch_lite._demo import run_demo

    r = run_demo(epochs=1, out=tmp_path, progress=False, models=("cnn",), max_train=32, verbose=False)
    assert r.onnx == tmp_path / "cnn.onnx" and r.onnx.exists()
    assert r.onnx_max_diff is not None and r.onnx_max_diff <= 1e-4 and r.ok
    m = onnx.load(str(r.onnx))
    assert m.graph.input[0].name == "pixels"
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
