"""Recurrent layers: RNN, LSTM, GRU (multi-layer, bidirectional, batch_first) and their cells.

Parameter names, shapes and gate order are PyTorch's (``weight_ih_l0``,
``weight_hh_l0_reverse``, ...; LSTM gates i, f, g, o; GRU r, z, n), so
state_dicts load into ``torch.nn.LSTM`` and back. Every weight and bias is
initialised U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import functorch_lite as fl

from ..._errors import ConfigError
from .. import init
from .._module import Module, Parameter
from ..functional import _recurrent as R
from .basic import split_key

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]


def _check_size(name: str, v: Any, layer: str) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"{layer}: {name} must be a positive int; got {v!r}.")


def _gate_parameters(
    m: Module, sfx: str, g: int, in_size: int, h_size: int, bias: bool, dtype: Any, device: Any
) -> None:
    """weight_ih, weight_hh (and, with ``bias``, bias_ih, bias_hh) + ``sfx`` in PyTorch's shapes, uninitialised."""
    shapes: list[tuple[str, tuple[int, ...]]] = [("weight_ih", (g, in_size)), ("weight_hh", (g, h_size))]
    if bias:
        shapes += [("bias_ih", (g,)), ("bias_hh", (g,))]
    for name, shape in shapes:
        setattr(m, name + sfx, Parameter(fl.empty(shape, dtype=dtype, device=device)))


# The public layers below keep torch's signatures and their own docstring and example (read by
# inspect.signature, mypy and the docs); the parameters and checks live in the two bases.
class _RNNBase(Module):
    _mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_size("input_size", input_size, name)
        _check_size("hidden_size", hidden_size, name)
        _check_size("num_layers", num_layers, name)
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ConfigError(f"{name}: dropout must be a probability in [0, 1]; got {dropout!r}.")
        if proj_size and self._mode != "LSTM":
            raise ConfigError(f"{name}: proj_size is only supported by LSTM; got proj_size={proj_size}.")
        if not isinstance(proj_size, int) or proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ConfigError(f"{name}: proj_size must be an int in [0, hidden_size); got {proj_size!r}.")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        g = R._GATES[self._mode] * hidden_size
        dirs = 2 if bidirectional else 1
        h_size = proj_size or hidden_size
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else h_size * dirs
                _gate_parameters(self, sfx, g, in_size, h_size, bias, dtype, device)
                if proj_size:
                    setattr(
                        self,
                        "weight_hr" + sfx,
                        Parameter(fl.empty((proj_size, hidden_size), dtype=dtype, device=device)),
                    )
        self.reset_parameters(key=key)

    def reset_parameters(self, *, key: Any = None) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (PyTorch's default)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        names = [n for n, _ in self.named_parameters()]
        for n, k in zip(names, split_key(key, len(names)), strict=True):
            init.uniform_(getattr(self, n), -stdv, stdv, key=k)

    def _weights(self) -> list[tuple[Any, ...]]:
        dirs = 2 if self.bidirectional else 1
        out = []
        for layer in range(self.num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                ws = [getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)]
                if self.bias:
                    ws += [getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)]
                if self.proj_size:
                    ws.append(getattr(self, "weight_hr" + sfx))
                out.append(tuple(ws))
        return out

    def _kwargs(self, key: Any) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "training": self.training,
            "key": key,
        }

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class RNN(_RNNBase):
    """Multi-layer Elman RNN (tanh or relu); ``forward(input, hx=None) -> (output, h_n)``.

    Args as ``torch.nn.RNN`` (``nonlinearity``, ``num_layers``, ``bias``,
    ``batch_first``, ``dropout``, ``bidirectional``), plus ``key`` for init.
    ``forward`` takes a ``key`` for the inter-layer dropout (global generator otherwise).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.RNN(3, 5, num_layers=2)
        >>> out, h = m(fl.ones((7, 2, 3)))
        >>> out.shape, h.shape
        ((7, 2, 5), (2, 2, 5))
    """

    _mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"RNN: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}.")
        self.__dict__["_mode"] = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, num_layers, *args, **kwargs)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None, *, key: Any = None) -> tuple[Any, Any]:
        return R.rnn(input, hx, self._weights(), nonlinearity=self.nonlinearity, **self._kwargs(key))

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity != "tanh" else "")


class LSTM(_RNNBase):
    """Multi-layer LSTM; ``forward(input, hx=None) -> (output, (h_n, c_n))``.

    Gates i, f, g, o stacked in ``weight_ih_l{k}`` (4 * hidden, input) as PyTorch;
    ``_reverse`` suffix for the backward direction; ``proj_size`` adds ``weight_hr_l{k}``
    (proj_size, hidden) and makes h (and the output) proj_size wide.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
        >>> out, (h, c) = m(fl.ones((2, 6, 3)))
        >>> out.shape, h.shape, m.weight_ih_l0_reverse.shape
        ((2, 6, 8), (2, 2, 4), (16, 3))
    """

    _mode = "LSTM"

    def forward(self, input: Any, hx: Any = None, *, key: Any = None) -> tuple[Any, Any]:
        return R.lstm(input, hx, self._weights(), **self._kwargs(key))


class GRU(_RNNBase):
    """Multi-layer GRU (gates r, z, n; PyTorch's n-gate); ``forward(input, hx=None) -> (output, h_n)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> out, h = nn.GRU(3, 4, num_layers=2, dropout=0.1)(fl.ones((5, 3)))
        >>> out.shape, h.shape
        ((5, 4), (2, 4))
    """

    _mode = "GRU"

    def forward(self, input: Any, hx: Any = None, *, key: Any = None) -> tuple[Any, Any]:
        return R.gru(input, hx, self._weights(), **self._kwargs(key))


class _CellBase(Module):
    _gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_size("input_size", input_size, name)
        _check_size("hidden_size", hidden_size, name)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        _gate_parameters(self, "", self._gates * hidden_size, input_size, hidden_size, bias, dtype, device)
        if not bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters(key=key)

    def reset_parameters(self, *, key: Any = None) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (PyTorch's default)."""
        _RNNBase.reset_parameters(self, key=key)  # type: ignore[arg-type]

    def _args(self) -> tuple[Any, ...]:
        return (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s


class RNNCell(_CellBase):
    """One Elman RNN step; ``forward(input, hx=None) -> h'``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.RNNCell(3, 4)(fl.ones((2, 3))).shape
        (2, 4)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"RNNCell: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}.")
        super().__init__(input_size, hidden_size, bias, device, dtype, key=key)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Any:
        fn = R.rnn_tanh_cell if self.nonlinearity == "tanh" else R.rnn_relu_cell
        return fn(input, hx, *self._args())

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity != "tanh" else "")


class LSTMCell(_CellBase):
    """One LSTM step; ``forward(input, hx=None) -> (h', c')`` with ``hx = (h, c)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> h, c = nn.LSTMCell(3, 4)(fl.ones((3,)))
        >>> h.shape
        (4,)
    """

    _gates = 4

    def forward(self, input: Any, hx: Any = None) -> Any:
        return R.lstm_cell(input, hx, *self._args())


class GRUCell(_CellBase):
    """One GRU step; ``forward(input, hx=None) -> h'``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.GRUCell(3, 4)(fl.ones((2, 3))).shape
        (2, 4)
    """

    _gates = 3

    def forward(self, input: Any, hx: Any = None) -> Any:
        return R.gru_cell(input, hx, *self._args())
