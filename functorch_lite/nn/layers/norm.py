"""Normalization layers: BatchNorm1d/2d, LayerNorm, GroupNorm, RMSNorm, InstanceNorm1d/2d.

BatchNorm's running statistics are buffers. In training they are replaced by
new Tensors computed from the batch (never a tracer: the batch statistics go
through ``stop_gradient``); [`nn.value_and_grad`][functorch_lite.nn.value_and_grad] writes them back after
its transform, and [`nn.functional_call_with_state`][functorch_lite.nn.functional_call_with_state] returns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import functorch_lite as fl

from ..._errors import ConfigError, ShapeError
from .. import functional as F
from .. import init
from .._module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "RMSNorm", "InstanceNorm1d", "InstanceNorm2d"]


def _ones(shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    return fl.ones(shape, dtype=dtype, device=device)


def _zeros(shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    return fl.zeros(shape, dtype=dtype, device=device)


def _affine(m: Module, shape: tuple[int, ...], weight: bool, bias: bool, dtype: Any, device: Any) -> None:
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None where not wanted (PyTorch's order)."""
    for name, want, make in (("weight", weight, _ones), ("bias", bias and weight, _zeros)):
        if want:
            setattr(m, name, Parameter(make(shape, dtype, device)))
        else:
            m.register_parameter(name, None)


class _NormBase(Module):
    """Shared by BatchNorm and InstanceNorm: affine parameters and running statistics."""

    _dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features <= 0:
            raise ConfigError(f"{type(self).__name__}: num_features must be a positive int; got {num_features!r}.")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine(self, (num_features,), affine, True, dtype, device)
        if track_running_stats:
            self.register_buffer("running_mean", _zeros((num_features,), dtype, device))
            self.register_buffer("running_var", _ones((num_features,), dtype, device))
            self.register_buffer("num_batches_tracked", fl.zeros((), dtype=fl.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean = fl.zeros_like(self.running_mean)  # type: ignore[has-type]
            self.running_var = fl.ones_like(self.running_var)  # type: ignore[has-type]
            self.num_batches_tracked = fl.zeros_like(self.num_batches_tracked)  # type: ignore[has-type]

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1, bias 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, x: Any) -> None:
        if x.ndim not in self._dims:
            raise ShapeError(
                f"{type(self).__name__}: expected a {' or '.join(f'{d}-d' for d in self._dims)} input; got shape {x.shape}."
            )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_NormBase):
    def forward(self, input: Any) -> Any:
        x = input
        self._check_input(x)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{type(self).__name__}({self.num_features}): input has {x.shape[1]} channels (dim 1); expected {self.num_features}."
            )
        training = self.training
        nbt = None
        if training and self.track_running_stats and self.num_batches_tracked is not None:
            nbt = self.num_batches_tracked + 1
        use_running = not training or self.track_running_stats
        rm = self.running_mean if use_running else None
        rv = self.running_var if use_running else None
        bn_training = training or (rm is None and rv is None)
        y, new_rm, new_rv = F.batch_norm_stats(
            x,
            rm,
            rv,
            self.weight,
            self.bias,
            training=bn_training,
            momentum=self.momentum,
            eps=self.eps,
            num_batches_tracked=None if nbt is None else _as_int(nbt),
        )
        if bn_training and rm is not None:
            self.running_mean = new_rm
            self.running_var = new_rv
            if nbt is not None:
                self.num_batches_tracked = nbt
        return y


def _as_int(t: Any) -> int | None:
    try:
        return int(t)
    except Exception:  # a batched counter (vmap): only needed when momentum is None
        return None


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> bn = nn.BatchNorm1d(3)
        >>> bn(fl.ones((4, 3))).shape, [n for n, _ in bn.named_buffers()]
        ((4, 3), ['running_mean', 'running_var', 'num_batches_tracked'])
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.BatchNorm2d(3)(fl.ones((2, 3, 4, 4))).shape
        (2, 3, 4, 4)
    """

    _dims = (4,)


class _InstanceNorm(_NormBase):
    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, input: Any) -> Any:
        x = input
        self._check_input(x)
        unbatched = x.ndim == self._dims[0]
        if unbatched:
            x = fl.expand_dims(x, axis=0)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{type(self).__name__}({self.num_features}): input has {x.shape[1]} channels; expected {self.num_features}."
            )
        use_input_stats = self.training or not self.track_running_stats
        rm, rv = self.running_mean, self.running_var
        if use_input_stats and rm is not None:
            # update out of place: new buffer Tensors, never a write into the old ones
            rm, rv = fl.asarray(rm, copy=True), fl.asarray(rv, copy=True)
        momentum = 0.1 if self.momentum is None else self.momentum
        y = F.instance_norm(x, rm, rv, self.weight, self.bias, use_input_stats, momentum, self.eps)
        if use_input_stats and rm is not None:
            self.running_mean, self.running_var = rm, rv
        return y[0] if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization over (N, C, L) or unbatched (C, L) input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.InstanceNorm1d(3)(fl.ones((2, 3, 5))).shape
        (2, 3, 5)
    """

    _dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization over (N, C, H, W) or unbatched (C, H, W) input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.InstanceNorm2d(3, affine=True)(fl.ones((2, 3, 4, 4))).shape
        (2, 3, 4, 4)
    """

    _dims = (3, 4)


def _shape(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims, with elementwise affine.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.LayerNorm(4)
        LayerNorm((4,), eps=1e-05, elementwise_affine=True)
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine(self, self.normalized_shape, elementwise_affine, bias, dtype, device)

    def forward(self, input: Any) -> Any:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class RMSNorm(Module):
    """x / sqrt(mean(x²) + eps) * weight over the trailing ``normalized_shape`` dims.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.RMSNorm(4)(fl.ones((2, 4))).shape
        (2, 4)
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(_ones(self.normalized_shape, dtype, device))
        else:
            self.register_parameter("weight", None)

    def forward(self, input: Any) -> Any:
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalise groups of channels of (N, C, *) input, then per-channel affine.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.GroupNorm(2, 4)(fl.ones((3, 4, 5))).shape
        (3, 4, 5)
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_groups, int) or num_groups <= 0 or num_channels % num_groups:
            raise ConfigError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})."
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine(self, (num_channels,), affine, True, dtype, device)

    def forward(self, input: Any) -> Any:
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ShapeError(f"GroupNorm: expected (N, {self.num_channels}, *) input; got shape {input.shape}.")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
