"""Recurrent cells and sequence functions (Elman RNN, LSTM, GRU) in PyTorch's conventions.

Weights use PyTorch's layouts: ``w_ih`` (G * hidden, input), ``w_hh`` (G * hidden,
hidden) with gates stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
A sequence function projects the whole input sequence with one matmul per
layer and direction, then loops over time steps in Python (vectorised over the
batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ... import _namespace as fl
from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError
from ._conv import _tensor

__all__ = [
    "rnn_tanh_cell",
    "rnn_relu_cell",
    "lstm_cell",
    "gru_cell",
    "rnn",
    "lstm",
    "gru",
]


def _sigmoid(x: Tensor) -> Tensor:
    # NOTE: sigmoid(x) = (1 + tanh(x / 2)) / 2: three ops with simple derivatives, finite
    # everywhere (tanh saturates instead of overflowing) - cheaper per time step than exp forms.
    return fl.tanh(x * 0.5) * 0.5 + 0.5


def _lstm_consts(like: Tensor, hidden: int) -> tuple[Tensor, Tensor]:
    """Per-gate scale and shift: act = tanh(z * scale) * scale + shift is sigmoid on the
    i, f, o blocks and tanh on the g block, in one pass over all four gates."""
    from ..._ops.creation import asarray_like

    scale = [0.5] * (2 * hidden) + [1.0] * hidden + [0.5] * hidden
    shift = [0.5] * (2 * hidden) + [0.0] * hidden + [0.5] * hidden
    return asarray_like(scale, like), asarray_like(shift, like)


def _chunk(x: Tensor, n: int) -> list[Tensor]:
    h = x.shape[-1] // n
    return [x[..., i * h : (i + 1) * h] for i in range(n)]


def _cell_args(input: Any, hx: Any, w_ih: Any, hidden: int, op: str) -> tuple[Tensor, Any, bool]:
    x = _tensor(input, op)
    if x.ndim not in (1, 2):
        raise ShapeError(f"{op}: input must be (batch, input_size) or (input_size,); got shape {x.shape}.")
    if x.shape[-1] != _tensor(w_ih, op).shape[1]:
        raise ShapeError(
            f"{op}: input has {x.shape[-1]} features but w_ih of shape {tuple(_tensor(w_ih, op).shape)} expects "
            f"{_tensor(w_ih, op).shape[1]}."
        )
    unb = x.ndim == 1
    if unb:
        x = fl.expand_dims(x, axis=0)
    return x, hx, unb


def _zeros_like_shape(like: Tensor, shape: tuple[int, ...]) -> Tensor:
    from ._conv import _full_on

    return _full_on(like, shape, 0.0)


def _rnn_step(x: Tensor, h: Tensor, w_hh_t: Tensor, relu: bool) -> Tensor:
    a = x + fl.matmul(h, w_hh_t)  # x already holds both biases
    return fl.maximum(a, 0.0) if relu else fl.tanh(a)


def _lstm_step(
    x: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor, consts: tuple[Tensor, Tensor], w_hr_t: Any = None
) -> tuple[Tensor, Tensor]:
    scale, shift = consts
    gates = x + fl.matmul(h, w_hh_t)  # x already holds both biases
    i, f, g, o = _chunk(fl.tanh(gates * scale) * scale + shift, 4)  # gate order i, f, g, o
    c2 = f * c + i * g
    h2 = o * fl.tanh(c2)
    return (h2 if w_hr_t is None else fl.matmul(h2, w_hr_t)), c2  # proj_size: h = W_hr (o * tanh(c))


def _gru_step(x: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Any) -> Tensor:
    hidden = h.shape[-1]
    hp = fl.matmul(h, w_hh_t)
    if b_hh is not None:
        hp = hp + b_hh
    rz = _sigmoid(x[..., : 2 * hidden] + hp[..., : 2 * hidden])  # r and z in one pass
    r, z = rz[..., :hidden], rz[..., hidden:]
    n = fl.tanh(x[..., 2 * hidden :] + r * hp[..., 2 * hidden :])  # PyTorch: r multiplies (W_hn h + b_hn)
    return n + z * (h - n)  # (1 - z) * n + z * h


def _t(w: Tensor) -> Tensor:
    return fl.matrix_transpose(w)


def _xproj(x: Tensor, w_ih: Tensor, b_ih: Any, b_hh: Any, fold_hh: bool) -> Tensor:
    """x W_ih^T + b_ih (+ b_hh when it is purely additive: RNN and LSTM, not GRU)."""
    y = fl.matmul(x, _t(w_ih))
    if b_ih is not None:
        y = y + b_ih
    if fold_hh and b_hh is not None:
        y = y + b_hh
    return y


def _hx(hx: Any, x: Tensor, hidden: int, unb: bool) -> Tensor:
    if hx is None:
        return _zeros_like_shape(x, (x.shape[0], hidden))
    h = _tensor(hx, "cell")
    return fl.expand_dims(h, axis=0) if unb else h


def _cell(
    op: str,
    input: Any,
    hx: Any,
    w_ih: Any,
    w_hh: Any,
    b_ih: Any,
    b_hh: Any,
    step: Callable[[Tensor, Tensor, Tensor, Any], Tensor],
    arg: Any,
    fold_hh: bool,
) -> Tensor:
    """One step of a single-state cell (RNN, GRU): ``step(x W_ih^T + biases, h, W_hh^T, arg)``."""
    hidden = _tensor(w_hh, op).shape[1]
    x, _, unb = _cell_args(input, hx, w_ih, hidden, op)
    xp_ = _xproj(x, _tensor(w_ih, op), b_ih, b_hh, fold_hh)
    h = step(xp_, _hx(hx, x, hidden, unb), _t(_tensor(w_hh, op)), arg)
    return h[0] if unb else h


# The public cells spell out torch's signature and their own docstring and example (read by
# inspect.signature, mypy and the docs); the single-state ones are one call of _cell.
def rnn_tanh_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None) -> Tensor:
    """One Elman RNN step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import rnn_tanh_cell
        >>> rnn_tanh_cell(fl.ones((2, 3)), None, fl.ones((4, 3)), fl.ones((4, 4))).shape
        (2, 4)
    """
    return _cell("rnn_tanh_cell", input, hx, w_ih, w_hh, b_ih, b_hh, _rnn_step, False, True)


def rnn_relu_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None) -> Tensor:
    """One Elman RNN step with ReLU: h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import rnn_relu_cell
        >>> rnn_relu_cell(fl.ones((3,)), fl.zeros((4,)), fl.ones((4, 3)), fl.ones((4, 4))).tolist()
        [3.0, 3.0, 3.0, 3.0]
    """
    return _cell("rnn_relu_cell", input, hx, w_ih, w_hh, b_ih, b_hh, _rnn_step, True, True)


def lstm_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None) -> tuple[Tensor, Tensor]:
    """One LSTM step (gates i, f, g, o as PyTorch); ``hx`` is ``(h, c)`` or None for zeros.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import lstm_cell
        >>> h, c = lstm_cell(fl.ones((2, 3)), None, fl.ones((16, 3)), fl.ones((16, 4)))
        >>> h.shape, c.shape
        ((2, 4), (2, 4))
    """
    hidden = _tensor(w_hh, "lstm_cell").shape[1]
    x, _, unb = _cell_args(input, hx, w_ih, hidden, "lstm_cell")
    if hx is None:
        h0 = c0 = None
    else:
        h0, c0 = hx
    xp_ = _xproj(x, _tensor(w_ih, "lstm"), b_ih, b_hh, True)
    consts = _lstm_consts(xp_, hidden)
    h, c = _lstm_step(xp_, _hx(h0, x, hidden, unb), _hx(c0, x, hidden, unb), _t(_tensor(w_hh, "lstm")), consts)
    return (h[0], c[0]) if unb else (h, c)


def gru_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None, b_hh: Any = None) -> Tensor:
    """One GRU step (gates r, z, n and PyTorch's n-gate: tanh(W_in x + b_in + r * (W_hn h + b_hn))).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import gru_cell
        >>> gru_cell(fl.ones((2, 3)), None, fl.ones((12, 3)), fl.ones((12, 4))).shape
        (2, 4)
    """
    return _cell("gru_cell", input, hx, w_ih, w_hh, b_ih, b_hh, _gru_step, b_hh, False)  # b_hh inside the n-gate


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}  # gate blocks per mode (the layers size weights by it)


def _run(
    mode: str,
    input: Any,
    hx: Any,
    weights: Sequence[Sequence[Any]],
    num_layers: int,
    bidirectional: bool,
    batch_first: bool,
    dropout: float,
    training: bool,
    key: Any,
) -> tuple[Tensor, Any]:
    op = mode.lower()
    x = _tensor(input, op)
    dirs = 2 if bidirectional else 1
    if len(weights) != num_layers * dirs:
        raise ConfigError(
            f"{op}: weights must hold one (w_ih, w_hh[, b_ih, b_hh]) tuple per layer and direction "
            f"({num_layers * dirs}); got {len(weights)}."
        )
    if x.ndim not in (2, 3):
        raise ShapeError(
            f"{op}: input must be (seq, batch, features), (batch, seq, features) or (seq, features); got {x.shape}."
        )
    unb = x.ndim == 2
    if unb:
        x = fl.expand_dims(x, axis=1)
    elif batch_first:
        x = fl.permute_dims(x, (1, 0, 2))
    t_len, n = x.shape[0], x.shape[1]
    lstm = mode == "LSTM"
    if hx is None:
        h0 = c0 = None
    elif lstm:
        h0, c0 = (_tensor(v, op) for v in hx)
    else:
        h0, c0 = _tensor(hx, op), None

    def initial(s: Any, i: int, size: int) -> Tensor:
        if s is None:
            return _zeros_like_shape(x, (n, size))
        if unb:
            return fl.expand_dims(s[i], axis=0)
        return s[i]

    if dropout and training and num_layers > 1:
        from functorch_lite.nn.layers.basic import split_key

        keys = split_key(key, num_layers - 1)
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    layer_in = x
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            idx = layer * dirs + d
            wts = list(weights[idx])
            w_hr = _tensor(wts.pop(), op) if lstm and len(wts) in (3, 5) else None  # LSTM proj_size
            wts += [None] * (4 - len(wts))
            w_ih, w_hh, b_ih, b_hh = (None if v is None else _tensor(v, op) for v in wts)  # type: Any, Any, Any, Any
            if w_ih.shape[1] != layer_in.shape[-1]:
                raise ShapeError(
                    f"{op}: layer {layer} expects {w_ih.shape[1]} input features; got {layer_in.shape[-1]}."
                )
            gru = mode == "GRU"
            # The whole sequence's input projection in one matmul: (T, N, G * H).
            xp_ = _xproj(layer_in, w_ih, b_ih, b_hh, not gru)
            w_hh_t = _t(w_hh)  # transposed once, not per step
            h: Any = initial(h0, idx, w_hh.shape[1])
            c: Any = initial(c0, idx, w_hh.shape[0] // 4) if lstm else None
            consts = _lstm_consts(xp_, w_hh.shape[0] // 4) if lstm else None
            w_hr_t = None if w_hr is None else _t(w_hr)
            steps = range(t_len - 1, -1, -1) if d == 1 else range(t_len)
            hs: list[Any] = [None] * t_len
            for t in steps:
                if lstm:
                    h, c = _lstm_step(xp_[t], h, c, w_hh_t, consts, w_hr_t)  # type: ignore[arg-type]
                elif gru:
                    h = _gru_step(xp_[t], h, w_hh_t, b_hh)
                else:
                    h = _rnn_step(xp_[t], h, w_hh_t, mode == "RNN_RELU")
                hs[t] = h
            outs.append(fl.stack(hs, axis=0))
            h_n.append(h)
            if lstm:
                c_n.append(c)
        layer_in = outs[0] if dirs == 1 else fl.concat(outs, axis=-1)
        if dropout and training and layer < num_layers - 1:
            from ._basic import dropout as _dropout

            layer_in = _dropout(layer_in, dropout, True, key=keys[layer])
    out = layer_in
    hn = fl.stack(h_n, axis=0)
    cn = fl.stack(c_n, axis=0) if lstm else None
    if unb:
        out = out[:, 0]
        hn = hn[:, 0]
        cn = cn[:, 0] if lstm else None
    elif batch_first:
        out = fl.permute_dims(out, (1, 0, 2))
    return out, ((hn, cn) if lstm else hn)


# rnn, lstm and gru spell out torch's keyword arguments and their own docstring and example (read by
# inspect.signature, mypy and the docs); each is one call of _run.
def rnn(
    input: Any,
    hx: Any,
    weights: Sequence[Sequence[Any]],
    *,
    num_layers: int = 1,
    nonlinearity: str = "tanh",
    bidirectional: bool = False,
    batch_first: bool = False,
    dropout: float = 0.0,
    training: bool = True,
    key: Any = None,
) -> tuple[Tensor, Tensor]:
    """A multi-layer Elman RNN over a sequence; returns ``(output, h_n)`` like ``torch.nn.RNN``.

    Args:
        input: (T, N, I), (N, T, I) with ``batch_first``, or unbatched (T, I).
        hx: initial hidden state (num_layers * dirs, N, H), or None for zeros.
        weights: one ``(w_ih, w_hh, b_ih, b_hh)`` tuple per layer and direction
            (layer 0 forward, layer 0 reverse, layer 1 forward, ...); biases may be None.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        dropout: dropout on the outputs of every layer but the last (training only);
            ``key`` seeds it (global generator otherwise).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import rnn
        >>> out, h = rnn(fl.ones((5, 2, 3)), None, [(fl.ones((4, 3)), fl.ones((4, 4)))])
        >>> out.shape, h.shape
        ((5, 2, 4), (1, 2, 4))
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ConfigError(f"rnn: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}.")
    mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
    return _run(mode, input, hx, weights, num_layers, bidirectional, batch_first, dropout, training, key)


def lstm(
    input: Any,
    hx: Any,
    weights: Sequence[Sequence[Any]],
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    dropout: float = 0.0,
    training: bool = True,
    key: Any = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A multi-layer LSTM over a sequence; returns ``(output, (h_n, c_n))`` like ``torch.nn.LSTM``.

    Args as [`rnn`][functorch_lite.nn.functional.rnn]; ``hx`` is ``(h_0, c_0)`` or None. With projections (PyTorch's
    ``proj_size``) each weight tuple ends with ``w_hr`` (proj, hidden):
    ``(w_ih, w_hh, b_ih, b_hh, w_hr)`` or, without biases, ``(w_ih, w_hh, w_hr)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import lstm
        >>> w = [(fl.ones((16, 3)), fl.ones((16, 4))), (fl.ones((16, 3)), fl.ones((16, 4)))]
        >>> out, (h, c) = lstm(fl.ones((5, 2, 3)), None, w, bidirectional=True)
        >>> out.shape, h.shape
        ((5, 2, 8), (2, 2, 4))
    """
    return _run("LSTM", input, hx, weights, num_layers, bidirectional, batch_first, dropout, training, key)  # type: ignore[return-value]


def gru(
    input: Any,
    hx: Any,
    weights: Sequence[Sequence[Any]],
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    dropout: float = 0.0,
    training: bool = True,
    key: Any = None,
) -> tuple[Tensor, Tensor]:
    """A multi-layer GRU over a sequence; returns ``(output, h_n)`` like ``torch.nn.GRU``.

    Args as [`rnn`][functorch_lite.nn.functional.rnn].

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._recurrent import gru
        >>> out, h = gru(fl.ones((2, 5, 3)), None, [(fl.ones((12, 3)), fl.ones((12, 4)))], batch_first=True)
        >>> out.shape, h.shape
        ((2, 5, 4), (1, 2, 4))
    """
    return _run("GRU", input, hx, weights, num_layers, bidirectional, batch_first, dropout, training, key)
