"""Pooling and resizing layers: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d, Upsample."""

from __future__ import annotations

from typing import Any

from .._module import Module
from ..functional import _pool as P
from ..functional import _upsample as U

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "Upsample",
    "UpsamplingNearest2d",
    "UpsamplingBilinear2d",
]


# Every pooling layer is one class per kind for all dimension counts (``_nd``: 1 or 2) over the
# functional module's core for that kind; the public 1d / 2d classes below only set ``_nd`` and
# keep their own docstring and example (read by the docs and the doctests).
class _PoolNd(Module):
    _nd = 2

    def __init__(self, kernel_size: Any, stride: Any, padding: Any) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding


class _MaxPoolNd(_PoolNd):
    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Any) -> Any:
        return P._max_pool(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
            self._nd,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """1-d max pooling over (N, C, L) or (C, L); PyTorch's arguments.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.MaxPool1d(2)(fl.asarray([[[1.0, 3.0, 2.0, 5.0]]])).tolist()
        [[[3.0, 5.0]]]
    """

    _nd = 1


class MaxPool2d(_MaxPoolNd):
    """2-d max pooling over (N, C, H, W) or (C, H, W); PyTorch's arguments.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.MaxPool2d(2)
        MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
        >>> nn.MaxPool2d(2)(fl.ones((1, 3, 8, 8))).shape
        (1, 3, 4, 4)
    """

    _nd = 2


class _AvgPoolNd(_PoolNd):
    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Any) -> Any:
        # AvgPool1d has no divisor_override (as PyTorch): None from its __init__, as avg_pool1d passes.
        return P._avg_pool(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
            self._nd,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1-d average pooling over (N, C, L) or (C, L); PyTorch's arguments.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.AvgPool1d(2)(fl.asarray([[[1.0, 3.0, 2.0, 6.0]]])).tolist()
        [[[2.0, 4.0]]]
    """

    _nd = 1

    # PyTorch's AvgPool1d signature: no divisor_override (spelled out for inspect.signature and mypy).
    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-d average pooling over (N, C, H, W) or (C, H, W); PyTorch's arguments.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.AvgPool2d(3, stride=2, padding=1)(fl.ones((1, 3, 8, 8))).shape
        (1, 3, 4, 4)
    """

    _nd = 2


class _AdaptiveAvgPoolNd(Module):
    _nd = 2

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Any) -> Any:
        return P._adaptive_avg(input, self.output_size, self._nd)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed output length over (N, C, L) or (C, L).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.AdaptiveAvgPool1d(2)(fl.asarray([[[1.0, 2.0, 3.0, 4.0, 5.0]]])).tolist()
        [[[2.0, 4.0]]]
    """

    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed output size over (N, C, H, W) or (C, H, W); None keeps an axis.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.AdaptiveAvgPool2d((1, 1))(fl.ones((2, 3, 7, 9))).shape
        (2, 3, 1, 1)
    """

    _nd = 2


class Upsample(Module):
    """Resize (N, C, *spatial) input: nearest, nearest-exact, linear or bilinear (``align_corners``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        >>> m(fl.ones((1, 3, 4, 4))).shape
        (1, 3, 8, 8)
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.scale_factor = (
            float(scale_factor)
            if isinstance(scale_factor, (int, float))
            else (tuple(float(s) for s in scale_factor) if scale_factor is not None else None)
        )
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Any) -> Any:
        return U.interpolate(
            input, self.size, self.scale_factor, self.mode, self.align_corners, self.recompute_scale_factor
        )

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour 2-d upsampling (``Upsample(mode="nearest")``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.UpsamplingNearest2d(scale_factor=2)(fl.ones((1, 1, 2, 2))).shape
        (1, 1, 4, 4)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear 2-d upsampling with ``align_corners=True`` (PyTorch's class).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.UpsamplingBilinear2d(size=(5, 5))(fl.ones((1, 1, 2, 2))).shape
        (1, 1, 5, 5)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
