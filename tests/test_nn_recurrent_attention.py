"""Table-driven tests of the recurrent, attention and transformer layers and their nn.functional twins.

Every layer of ``nn.layers.recurrent``, ``nn.layers.attention`` and
``nn.layers.transformer`` is enrolled in ``CASES`` (a test fails when one is missing):
float32 in float32 out, gradients by finite differences (float64), vmap over an extra
batch axis equal to a loop; and, where torch is installed, the same outputs and gradients
(inputs and parameters) as torch.nn in float64, for every option the table lists.
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
from functorch_lite.nn.functional import _attention as FA
from functorch_lite.nn.functional import _positional as FPE
from functorch_lite.nn.functional import _recurrent as FR
from functorch_lite.nn.layers import attention as attn_mod
from functorch_lite.nn.layers import recurrent as rec_mod
from functorch_lite.nn.layers import transformer as tr_mod

RNG = np.random.default_rng(1)


def _flat(out: Any) -> Any:
    """One 1-d Tensor from a layer's (possibly nested) tuple output; None entries are skipped."""
    if isinstance(out, (tuple, list)):
        parts = [_flat(o) for o in out if o is not None]
        return fl.concat(parts) if len(parts) > 1 else parts[0]
    return fl.reshape(out, (-1,))


def _tflat(out: Any) -> Any:
    import torch

    if isinstance(out, (tuple, list)):
        parts = [_tflat(o) for o in out if o is not None]
        return torch.cat(parts) if len(parts) > 1 else parts[0]
    return out.reshape(-1)


@dataclass
class Case:
    name: str
    make: Callable[[Any], nn.Module]  # dtype -> module
    data: tuple[np.ndarray, ...]  # float inputs (differentiated)
    torch: Callable[[], Any] | None = None  # () -> float64 torch module taking our state dict
    kwargs: dict[str, Any] = field(default_factory=dict)  # constant keyword inputs (masks, hx)
    fd: bool = True


def _d(*shape: int) -> np.ndarray:
    return RNG.uniform(-1.5, 1.5, size=shape)


def _c(
    name: str,
    cls: str,
    args: tuple[Any, ...],
    kw: dict[str, Any],
    *shapes: tuple[int, ...],
    call: dict[str, Any] | None = None,
) -> Case:
    def make(dt: Any) -> nn.Module:
        return getattr(nn, cls)(*args, **kw, dtype=dt)

    return Case(name, make, tuple(_d(*s) for s in shapes), _tm(cls, *args, **kw), call or {})


def _mask(*shape: int, p: float = 0.3) -> np.ndarray:
    m = RNG.random(shape) < p
    m[..., 0] = False  # every query keeps at least one key
    return m


L_, S_, B_, E_ = 4, 5, 2, 8
CASES: list[Case] = [
    _c("RNN", "RNN", (3, 4, 2), {}, (5, 2, 3), (2, 2, 4)),
    _c(
        "RNN-relu-bi-bf", "RNN", (3, 4), {"nonlinearity": "relu", "bidirectional": True, "batch_first": True}, (2, 5, 3)
    ),
    _c("LSTM", "LSTM", (3, 4), {}, (5, 2, 3)),
    _c("LSTM-2l-bi-bf", "LSTM", (3, 4), {"num_layers": 2, "bidirectional": True, "batch_first": True}, (2, 4, 3)),
    _c("LSTM-proj-bi-2l", "LSTM", (3, 5), {"proj_size": 2, "num_layers": 2, "bidirectional": True}, (4, 2, 3)),
    _c(
        "LSTM-nobias-unbatched-hx",
        "LSTM",
        (3, 4),
        {"bias": False, "num_layers": 2},
        (5, 3),
        call={"hx": (_d(2, 4), _d(2, 4))},
    ),
    _c("GRU", "GRU", (3, 4, 2), {"bidirectional": True}, (5, 2, 3), (4, 2, 4)),
    _c("GRU-unbatched", "GRU", (3, 4), {"batch_first": True}, (6, 3), (1, 4)),
    _c("RNNCell", "RNNCell", (3, 4), {"nonlinearity": "relu"}, (2, 3), (2, 4)),
    _c("LSTMCell", "LSTMCell", (3, 4), {}, (2, 3), call={"hx": (_d(2, 4), _d(2, 4))}),
    _c("GRUCell", "GRUCell", (3, 4), {}, (3,), (4,)),
    _c("MultiheadAttention", "MultiheadAttention", (E_, 2), {}, (L_, B_, E_), (S_, B_, E_), (S_, B_, E_)),
    _c(
        "MultiheadAttention-bf-masks",
        "MultiheadAttention",
        (E_, 4),
        {"batch_first": True},
        (B_, L_, E_),
        (B_, S_, E_),
        (B_, S_, E_),
        call={"attn_mask": _mask(L_, S_), "key_padding_mask": _mask(B_, S_), "average_attn_weights": False},
    ),
    _c(
        "MultiheadAttention-float-mask-kv-dims",
        "MultiheadAttention",
        (E_, 2),
        {"kdim": 5, "vdim": 3, "bias": False},
        (L_, B_, E_),
        (S_, B_, 5),
        (S_, B_, 3),
        call={"attn_mask": _d(B_ * 2, L_, S_)},
    ),
    _c(
        "MultiheadAttention-bias-kv-zero-attn",
        "MultiheadAttention",
        (E_, 2),
        {"add_bias_kv": True, "add_zero_attn": True},
        (L_, B_, E_),
        (S_, B_, E_),
        (S_, B_, E_),
        call={"key_padding_mask": _mask(B_, S_)},
    ),
    _c(
        "MultiheadAttention-unbatched",
        "MultiheadAttention",
        (E_, 2),
        {},
        (L_, E_),
        (S_, E_),
        (S_, E_),
        call={"need_weights": False},
    ),
    _c(
        "TransformerEncoderLayer",
        "TransformerEncoderLayer",
        (E_, 2, 16),
        {},
        (L_, B_, E_),
        call={"src_key_padding_mask": _mask(B_, L_)},
    ),
    _c(
        "TransformerEncoderLayer-gelu-normfirst-bf",
        "TransformerEncoderLayer",
        (E_, 4, 12),
        {"activation": "gelu", "norm_first": True, "batch_first": True},
        (B_, L_, E_),
        call={"src_mask": np.triu(np.ones((L_, L_), dtype=bool), 1), "is_causal": True},
    ),
    _c(
        "TransformerDecoderLayer",
        "TransformerDecoderLayer",
        (E_, 2, 16),
        {"norm_first": True},
        (L_, B_, E_),
        (S_, B_, E_),
        call={"tgt_mask": np.triu(np.ones((L_, L_), dtype=bool), 1), "memory_key_padding_mask": _mask(B_, S_)},
    ),
]


def _encoder(dt: Any) -> nn.Module:
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(E_, 2, 12, dtype=dt), 2, norm=nn.LayerNorm(E_, dtype=dt))


def _tencoder() -> Any:
    import torch

    layer = torch.nn.TransformerEncoderLayer(E_, 2, 12)
    return torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(E_), enable_nested_tensor=False).double()


def _decoder(dt: Any) -> nn.Module:
    return nn.TransformerDecoder(nn.TransformerDecoderLayer(E_, 2, 12, batch_first=True, dtype=dt), 2)


def _tdecoder() -> Any:
    import torch

    return torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E_, 2, 12, batch_first=True), 2).double()


CASES += [
    Case(
        "TransformerEncoder", _encoder, (_d(L_, B_, E_),), _tencoder, {"mask": np.triu(np.full((L_, L_), -np.inf), 1)}
    ),
    Case("TransformerDecoder", _decoder, (_d(B_, L_, E_), _d(B_, S_, E_)), _tdecoder),
    Case(
        "SinusoidalPositionalEncoding", lambda dt: nn.SinusoidalPositionalEncoding(E_, dropout=0.0), (_d(L_, B_, E_),)
    ),
    Case(
        "SinusoidalPositionalEncoding-bf",
        lambda dt: nn.SinusoidalPositionalEncoding(6, dropout=0.0, batch_first=True),
        (_d(B_, L_, 6),),
    ),
    Case("RotaryEmbedding", lambda dt: nn.RotaryEmbedding(8), (_d(B_, 2, L_, 8),)),
    Case("RotaryEmbedding-partial-interleaved", lambda dt: nn.RotaryEmbedding(4, interleaved=True), (_d(B_, L_, 6),)),
]
IDS = [c.name for c in CASES]


def _kw(case: Case, dt: Any) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(conv(e) for e in v)
        if isinstance(v, np.ndarray):
            return T(v, dt if v.dtype.kind == "f" else None)
        return v

    return {k: conv(v) for k, v in case.kwargs.items()}


def _build(case: Case, dt: Any) -> tuple[nn.Module, tuple[fl.Tensor, ...], dict[str, Any]]:
    fl.manual_seed(0)
    m = case.make(dt).eval()
    return m, tuple(T(a, dt) for a in case.data), _kw(case, dt)


def test_every_layer_enrolled() -> None:
    covered = {c.name.split("-")[0] for c in CASES}
    for mod in (rec_mod, attn_mod, tr_mod):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and issubclass(obj, nn.Module):
                assert name in covered, f"{mod.__name__}.{name} is not enrolled in CASES"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case: Case) -> None:
    m, xs, kw = _build(case, fl.float32)
    out = _flat(m(*xs, **kw))
    assert out.dtype == fl.float32
    for _, p in m.named_parameters():
        assert p.dtype == fl.float32
    g = fl.grad(lambda *a: fl.sum(_flat(m(*a, **kw))))(*xs)
    assert g.dtype == fl.float32


@pytest.mark.parametrize("case", [c for c in CASES if c.fd], ids=[c.name for c in CASES if c.fd])
def test_finite_differences(case: Case) -> None:
    m, xs, kw = _build(case, fl.float64)
    params = m.trainable_parameters()
    ct = T(RNG.normal(size=_flat(m(*xs, **kw)).shape), fl.float64)

    def f(p: dict[str, Any], *inp: Any) -> Any:
        return fl.sum(_flat(nn.functional_call(m, p, *inp, **kw)) * ct)

    g = fl.grad(f, argnums=tuple(range(1 + len(xs))))(params, *xs)
    h = 1e-6
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
    m, xs, kw = _build(case, fl.float64)
    batch = [fl.stack([x, x * 0.5, x + 0.25]) for x in xs]
    out = fl.vmap(lambda *a: _flat(m(*a, **kw)))(*batch)
    loop = fl.stack([_flat(m(*[b[i] for b in batch], **kw)) for i in range(3)])
    np.testing.assert_allclose(N(out), N(loop), rtol=1e-11, atol=1e-12)


TORCH_CASES = [c for c in CASES if c.torch is not None]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c.name for c in TORCH_CASES])
def test_matches_torch(case: Case) -> None:
    torch = pytest.importorskip("torch")
    m, xs, kw = _build(case, fl.float64)
    tm = case.torch().eval()
    tm.load_state_dict({k: torch.from_numpy(N(v).copy()) for k, v in m.state_dict().items()}, strict=True)

    def tconv(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(tconv(e) for e in v)
        return torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v

    tkw = {k: tconv(v) for k, v in case.kwargs.items()}
    txs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in case.data]
    tout = _tflat(tm(*txs, **tkw))
    ct = RNG.normal(size=tuple(tout.shape))
    (tout * torch.from_numpy(ct)).sum().backward()
    params = m.trainable_parameters()

    def f(p: dict[str, Any], *inp: Any) -> Any:
        out = _flat(nn.functional_call(m, p, *inp, **kw))
        return fl.sum(out * T(ct, fl.float64)), out

    (_, out), g = fl.value_and_grad(f, argnums=tuple(range(1 + len(xs))), has_aux=True)(params, *xs)
    np.testing.assert_allclose(N(out), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for gx, tx in zip(g[1:], txs, strict=True):
        np.testing.assert_allclose(N(gx), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    tparams = dict(tm.named_parameters())
    assert set(tparams) == set(params)
    for n in params:
        np.testing.assert_allclose(N(g[0][n]), tparams[n].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=n)


# --------------------------------------------------------------------------------------------
# The functional API
# --------------------------------------------------------------------------------------------
SDPA = [
    ({}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"attn_mask": "bool"}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"attn_mask": "float", "scale": 0.3}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"is_causal": True}, (2, 4, 5), (2, 6, 5), (2, 6, 3)),
    ({"enable_gqa": True}, (2, 4, 4, 5), (2, 2, 6, 5), (2, 2, 6, 7)),
]


@pytest.mark.parametrize("kw,qs,ks,vs", SDPA, ids=[str(sorted(k)) for k, *_ in SDPA])
def test_sdpa_matches_torch(kw: dict[str, Any], qs: tuple[int, ...], ks: tuple[int, ...], vs: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    q, k, v = _d(*qs), _d(*ks), _d(*vs)
    kw = dict(kw)
    mask = None
    if kw.get("attn_mask") == "bool":
        mask = ~_mask(qs[-2], ks[-2], p=0.4)  # True = may attend (PyTorch's sdpa convention)
    elif kw.get("attn_mask") == "float":
        mask = _d(1, qs[1], qs[-2], ks[-2])
    kw.pop("attn_mask", None)
    fm = None if mask is None else T(mask, fl.float64 if mask.dtype.kind == "f" else None)
    tmask = None if mask is None else torch.from_numpy(mask)
    tq, tk, tv = (torch.from_numpy(a).requires_grad_(True) for a in (q, k, v))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, **kw)
    ct = RNG.normal(size=tuple(tout.shape))
    (tout * torch.from_numpy(ct)).sum().backward()

    def f(q: Any, k: Any, v: Any) -> Any:
        return fl.sum(FA.scaled_dot_product_attention(q, k, v, attn_mask=fm, **kw) * T(ct, fl.float64))

    args = [T(a, fl.float64) for a in (q, k, v)]
    out = FA.scaled_dot_product_attention(*args, attn_mask=fm, **kw)
    np.testing.assert_allclose(N(out), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(fl.grad(f, argnums=(0, 1, 2))(*args), (tq, tk, tv), strict=True):
        np.testing.assert_allclose(N(g), t.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_sdpa_dropout_uses_the_key() -> None:
    q = T(_d(2, 6, 4), fl.float64)
    a = FA.scaled_dot_product_attention(q, q, q, dropout_p=0.5, dropout_key=fl.random.key(3))
    b = FA.scaled_dot_product_attention(q, q, q, dropout_p=0.5, dropout_key=fl.random.key(3))
    c = FA.scaled_dot_product_attention(q, q, q, dropout_p=0.5, dropout_key=fl.random.key(4))
    d = FA.scaled_dot_product_attention(q, q, q)
    np.testing.assert_array_equal(N(a), N(b))
    assert not np.allclose(N(a), N(c)) and not np.allclose(N(a), N(d))
    # Same key under vmap with randomness="same" equals the unbatched call.
    out = fl.vmap(
        lambda x: FA.scaled_dot_product_attention(x, x, x, dropout_p=0.5, dropout_key=fl.random.key(3)),
        randomness="same",
    )(fl.stack([q, q]))
    np.testing.assert_allclose(N(out[1]), N(a), rtol=1e-12)


def test_sdpa_errors() -> None:
    q = T(_d(2, 3, 4), fl.float32)
    with pytest.raises(fl.ConfigError, match="is_causal"):
        FA.scaled_dot_product_attention(q, q, q, attn_mask=T(np.ones((3, 3), bool)), is_causal=True)
    with pytest.raises(fl.ShapeError, match="share"):
        FA.scaled_dot_product_attention(q, T(_d(2, 3, 5), fl.float32), q)
    with pytest.raises(fl.ConfigError, match="divisible"):
        nn.MultiheadAttention(6, 4)


def test_recurrent_dropout_between_layers() -> None:
    fl.manual_seed(0)
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=fl.float64)
    x = T(_d(5, 2, 3), fl.float64)
    a = m(x, key=fl.random.key(0))[0]
    b = m(x, key=fl.random.key(0))[0]
    np.testing.assert_array_equal(N(a), N(b))
    e = m.eval()(x)[0]
    assert not np.allclose(N(a), N(e))
    # The first layer is never dropped: a 1-layer net ignores dropout (as PyTorch).
    one = nn.GRU(3, 4, dropout=0.5, dtype=fl.float64)
    np.testing.assert_allclose(N(one(x)[0]), N(one.eval()(x)[0]))


def test_functional_sequences_and_hidden_state_grads() -> None:
    torch = pytest.importorskip("torch")
    tm = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True).double()
    ws = []
    for layer in range(2):
        for sfx in ("", "_reverse"):
            ws.append(
                tuple(
                    T(getattr(tm, f"{n}_l{layer}{sfx}").detach().numpy())
                    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
            )
    x, h0 = _d(6, 2, 3), _d(4, 2, 4)
    th0 = torch.from_numpy(h0).requires_grad_(True)
    out, hn = tm(torch.from_numpy(x), th0)
    (out.sum() + (hn**2).sum()).backward()

    def f(h: Any) -> Any:
        o, n = FR.gru(T(x), h, ws, num_layers=2, bidirectional=True)
        return fl.sum(o) + fl.sum(n**2)

    np.testing.assert_allclose(N(fl.grad(f)(T(h0))), th0.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_rnn_default_init_like_torch() -> None:
    fl.manual_seed(0)
    m = nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(16)
    for n, p in m.named_parameters():
        a = np.abs(N(p))
        assert a.max() <= bound + 1e-7 and a.max() > 0.5 * bound, n
    assert m.weight_ih_l1.shape == (64, 32) and m.weight_hh_l0_reverse.shape == (64, 16)
    mha = nn.MultiheadAttention(8, 2)
    assert float(fl.max(fl.abs(mha.in_proj_bias))) == 0.0 and float(fl.max(fl.abs(mha.out_proj.bias))) == 0.0
    assert mha.in_proj_weight.shape == (24, 8)


def test_sinusoidal_matches_reference() -> None:
    n, d = 7, 6
    pe = FPE.sinusoidal_positional_encoding(n, d, dtype=fl.float64)
    ref = np.zeros((n, d))
    pos = np.arange(n)[:, None]
    div = np.exp(np.arange(0, d, 2) * (-math.log(10000.0) / d))
    ref[:, 0::2] = np.sin(pos * div)
    ref[:, 1::2] = np.cos(pos * div)
    np.testing.assert_allclose(N(pe), ref, atol=1e-12)
    assert FPE.sinusoidal_positional_encoding(3, 5).dtype == fl.float32


@pytest.mark.parametrize("interleaved", [False, True])
def test_rotary_matches_complex_rotation(interleaved: bool) -> None:
    x = _d(2, 3, 7, 8)
    cos, sin = FPE.rotary_frequencies(7, 8, interleaved=interleaved, dtype=fl.float64)
    out = N(FPE.apply_rotary_emb(T(x, fl.float64), cos, sin, interleaved=interleaved))
    ang = np.outer(np.arange(7), 10000.0 ** (-np.arange(0, 8, 2) / 8))
    if interleaved:
        z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * ang)
        ref = np.stack([z.real, z.imag], -1).reshape(x.shape)
    else:
        z = (x[..., :4] + 1j * x[..., 4:]) * np.exp(1j * ang)
        ref = np.concatenate([z.real, z.imag], -1)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    # Relative positions: <rope(q)_i, rope(k)_j> depends only on i - j.
    q = np.broadcast_to(_d(8), (7, 8))
    rq = N(FPE.apply_rotary_emb(T(q, fl.float64), cos, sin, interleaved=interleaved))
    s = rq @ rq.T
    np.testing.assert_allclose(np.diag(s, 1), np.full(6, s[0, 1]), rtol=1e-10)
