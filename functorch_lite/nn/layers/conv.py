"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (PyTorch's names and layouts)."""

from __future__ import annotations

import math
from typing import Any

import functorch_lite as fl

from ..._errors import ConfigError, ShapeError
from .. import init
from .._module import Module, Parameter
from ..functional import _conv as C
from .basic import split_key

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# One convolution layer class for all dimension counts (``_nd``); the public 1d / 2d classes below
# only set ``_nd`` and keep their own docstring and example (read by the docs and the doctests).
class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        output_padding: Any = 0,
        key: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        nd = self._nd
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}: {arg} must be a positive int; got {v!r}.")
        if in_channels % groups or out_channels % groups:
            raise ConfigError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must both be divisible "
                f"by groups ({groups})."
            )
        if padding_mode not in _PADDING_MODES:
            raise ConfigError(f"{name}: padding_mode must be one of {_PADDING_MODES}; got {padding_mode!r}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = C._ntuple(kernel_size, nd, "kernel_size", name)
        self.stride = C._ntuple(stride, nd, "stride", name)
        if isinstance(padding, str):
            if padding not in ("same", "valid") or self._transposed:
                raise ConfigError(
                    f"{name}: padding must be an int, a tuple, or (for Conv) 'same' / 'valid'; got {padding!r}."
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ConfigError(f"{name}: padding='same' needs stride 1; got stride {self.stride}.")
            self.padding: Any = padding
        else:
            self.padding = C._ntuple(padding, nd, "padding", name)
        self.dilation = C._ntuple(dilation, nd, "dilation", name)
        self.output_padding = C._ntuple(output_padding, nd, "output_padding", name)
        self.groups = groups
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(fl.empty(shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(fl.empty((out_channels,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(key=key)

    def reset_parameters(self, *, key: Any = None) -> None:
        """PyTorch's default: kaiming_uniform_(weight, a=sqrt(5)); bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        kw, kb = split_key(key, 2)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), key=kw)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound, key=kb)

    def extra_repr(self) -> str:
        nd = self._nd
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * nd:
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    def _pads(self) -> list[tuple[int, int]]:
        return C._conv_padding(self.padding, self.kernel_size, self.dilation, self.stride, type(self).__name__)

    def forward(self, input: Any) -> Any:
        nd = self._nd
        if self.padding_mode == "zeros":
            return C._convnd(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, nd)
        from ..functional import pad

        flat: list[int] = []
        for lo, hi in reversed(self._pads()):
            flat += [lo, hi]
        x = pad(input, tuple(flat), mode=self.padding_mode)
        return C._convnd(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups, nd)


class Conv1d(_Conv):
    """1-d convolution over (N, C_in, L) or (C_in, L); weight (C_out, C_in / groups, k).

    Args as ``torch.nn.Conv1d`` (``padding`` may be ``"same"`` or ``"valid"``;
    ``padding_mode`` zeros / reflect / replicate / circular), plus ``key`` for init.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.Conv1d(3, 4, 3, padding=1)
        >>> m
        Conv1d(3, 4, kernel_size=(3,), stride=(1,), padding=(1,))
        >>> m(fl.ones((2, 3, 10))).shape
        (2, 4, 10)
    """

    _nd = 1


class Conv2d(_Conv):
    """2-d convolution over (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in / groups, kh, kw).

    Args as ``torch.nn.Conv2d`` (``padding`` may be ``"same"`` or ``"valid"``;
    ``padding_mode`` zeros / reflect / replicate / circular), plus ``key`` for init.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.Conv2d(1, 8, 3, padding="same")
        >>> m.weight.shape, m(fl.ones((2, 1, 8, 8))).shape
        ((8, 1, 3, 3), (2, 8, 8, 8))
    """

    _nd = 2


class _ConvTranspose(_ConvNd):
    _transposed = True

    # PyTorch's ConvTranspose argument order (output_padding after padding, dilation after bias)
    # differs from Conv's, so the signature is spelled out again (inspect.signature, mypy).
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        if padding_mode != "zeros":
            raise ConfigError(
                f"{type(self).__name__}: only padding_mode='zeros' is supported (as PyTorch); got {padding_mode!r}."
            )
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
            output_padding=output_padding,
            key=key,
        )

    def _output_padding(self, input: Any, output_size: Any) -> tuple[int, ...]:
        if output_size is None:
            return self.output_padding
        nd = self._nd
        size = tuple(output_size)[-nd:]
        sp = tuple(input.shape[-nd:])
        op = []
        for i in range(nd):
            base = (sp[i] - 1) * self.stride[i] - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            extra = size[i] - base
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ShapeError(
                    f"{type(self).__name__}: output_size {tuple(output_size)} cannot be reached from input of spatial "
                    f"size {sp}; the reachable sizes per axis are {base} to {base + max(self.stride[i], self.dilation[i]) - 1}."
                )
            op.append(extra)
        return tuple(op)

    def forward(self, input: Any, output_size: Any = None) -> Any:
        return C._conv_transposend(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self._output_padding(input, output_size),
            self.groups,
            self.dilation,
            self._nd,
        )


class ConvTranspose1d(_ConvTranspose):
    """1-d transposed convolution; weight (C_in, C_out / groups, k) as PyTorch.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.ConvTranspose1d(3, 4, 3, stride=2)
        >>> m.weight.shape, m(fl.ones((2, 3, 5))).shape
        ((3, 4, 3), (2, 4, 11))
    """

    _nd = 1


class ConvTranspose2d(_ConvTranspose):
    """2-d transposed convolution; weight (C_in, C_out / groups, kh, kw) as PyTorch.

    ``forward(input, output_size=None)``: ``output_size`` picks the output padding.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        >>> m(fl.ones((1, 4, 4, 4))).shape
        (1, 2, 8, 8)
    """

    _nd = 2
