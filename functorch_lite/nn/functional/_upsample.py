"""Resizing: ``interpolate`` / ``upsample`` (nearest, nearest-exact, linear, bilinear).

Nearest modes gather rows and columns with slices and broadcasts (a repeat
for integer scales; no integer-array indexing, which array-api-strict limits);
linear modes multiply by
small (out, in) interpolation matrices, one per spatial axis, built with
PyTorch's source-index formulas (``align_corners`` included). Both are plain
array-API compositions, so grad and vmap need no extra rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ... import _namespace as fl
from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError
from ._conv import _tensor

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]

_LINEAR = {"linear": 1, "bilinear": 2}


def _sizes(
    sp: Sequence[int], size: Any, scale_factor: Any, recompute: bool | None, op: str
) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """Output sizes and the scales PyTorch uses for source indices (None: in/out)."""
    nd = len(sp)
    if (size is None) == (scale_factor is None):
        raise ConfigError(
            f"{op}: give exactly one of size and scale_factor; got size={size!r}, scale_factor={scale_factor!r}."
        )
    if size is not None:
        out = (int(size),) * nd if isinstance(size, int) else tuple(int(s) for s in size)
        if len(out) != nd:
            raise ConfigError(f"{op}: size needs {nd} entries for an input with {nd} spatial axes; got {size!r}.")
        return out, (None,) * nd
    sf = (
        (float(scale_factor),) * nd if isinstance(scale_factor, (int, float)) else tuple(float(s) for s in scale_factor)
    )
    if len(sf) != nd or any(s <= 0 for s in sf):
        raise ConfigError(f"{op}: scale_factor needs {nd} positive entries; got {scale_factor!r}.")
    out = tuple(int(math.floor(n * s)) for n, s in zip(sp, sf, strict=True))
    if recompute:
        return out, (None,) * nd
    return out, tuple(1.0 / s for s in sf)


def _nearest_index(n_in: int, n_out: int, scale: float | None, exact: bool) -> list[int]:
    s = n_in / n_out if scale is None else scale
    off = 0.5 if exact else 0.0
    return [min(int(math.floor((i + off) * s)), n_in - 1) for i in range(n_out)]


def _gather_axis(x: Tensor, idx: list[int], axis: int) -> Tensor:
    """``x`` at the (non-decreasing) indices ``idx`` along ``axis``, without integer-array indexing."""
    n = x.shape[axis]
    m = len(idx)
    if idx == list(range(n)):
        return x
    pre = (slice(None),) * axis
    if m % n == 0 and idx == [i // (m // n) for i in range(m)]:  # integer upscale: repeat each row
        k = m // n
        y = fl.expand_dims(x, axis=axis + 1)
        y = fl.broadcast_to(y, x.shape[: axis + 1] + (k,) + x.shape[axis + 1 :])
        return fl.reshape(y, x.shape[:axis] + (m,) + x.shape[axis + 1 :])
    step = idx[1] - idx[0] if m > 1 else 1
    if step > 0 and idx == list(range(idx[0], idx[0] + step * m, step)):  # integer downscale: strided slice
        return x[pre + (slice(idx[0], idx[0] + step * (m - 1) + 1, step), Ellipsis)]
    # General ratio: concatenate one broadcast slice per run of equal source indices.
    pieces = []
    start = 0
    while start < m:
        j = idx[start]
        stop = start
        while stop < m and idx[stop] == j:
            stop += 1
        piece = x[pre + (slice(j, j + 1), Ellipsis)]
        if stop - start > 1:
            piece = fl.broadcast_to(piece, x.shape[:axis] + (stop - start,) + x.shape[axis + 1 :])
        pieces.append(piece)
        start = stop
    return fl.concat(pieces, axis=axis)


def _linear_matrix(n_in: int, n_out: int, scale: float | None, align_corners: bool, like: Tensor) -> Tensor:
    """(n_out, n_in) matrix of PyTorch's linear-interpolation weights."""
    from ..._ops.creation import asarray_like

    rows = []
    for i in range(n_out):
        if align_corners:
            src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            s = n_in / n_out if scale is None else scale
            src = max((i + 0.5) * s - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        lam = src - i0
        row = [0.0] * n_in
        row[i0] += 1.0 - lam
        row[i1] += lam
        rows.append(row)
    return asarray_like(rows, like)


def interpolate(
    input: Any,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial axes of (N, C, *spatial) input, as ``torch.nn.functional.interpolate``.

    Args:
        input: (N, C, L) or (N, C, H, W) (or (N, C, D, H, W) for nearest modes).
        size: output spatial size; or
        scale_factor: multiplier per spatial axis.
        mode: ``"nearest"``, ``"nearest-exact"``, ``"linear"`` (3-d input) or
            ``"bilinear"`` (4-d input).
        align_corners: linear modes only; PyTorch's meaning (default False).
        recompute_scale_factor: use in/out rather than 1/scale_factor for source indices.

    Returns:
        The resized Tensor, same dtype.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._upsample import interpolate
        >>> interpolate(fl.asarray([[[1.0, 2.0]]]), scale_factor=2).tolist()
        [[[1.0, 1.0, 2.0, 2.0]]]
    """
    op = "interpolate"
    x = _tensor(input, op)
    if antialias:
        raise ConfigError(f"{op}: antialias=True is not supported; resize without it.")
    if x.ndim < 3:
        raise ShapeError(f"{op}: input must be (N, C, *spatial) with at least one spatial axis; got shape {x.shape}.")
    nd = x.ndim - 2
    sp = x.shape[2:]
    out, scales = _sizes(sp, size, scale_factor, recompute_scale_factor, op)
    if any(o < 1 for o in out):
        raise ConfigError(f"{op}: the output size {out} must be positive.")
    if mode in ("nearest", "nearest-exact"):
        if align_corners is not None:
            raise ConfigError(f"{op}: align_corners only applies to linear modes; got mode={mode!r}.")
        for i in range(nd):
            idx = _nearest_index(sp[i], out[i], scales[i], mode == "nearest-exact")
            x = _gather_axis(x, idx, 2 + i)
        return x
    if mode in _LINEAR:
        if _LINEAR[mode] != nd:
            raise ShapeError(
                f"{op}: mode={mode!r} needs {_LINEAR[mode] + 2}-d input (N, C, *spatial); got shape {x.shape}."
            )
        ac = bool(align_corners)
        y = x
        for i in range(nd - 1, -1, -1):
            m = _linear_matrix(sp[i], out[i], scales[i], ac, x)
            if i == nd - 1:
                y = fl.matmul(y, fl.matrix_transpose(m))
            else:
                y = fl.matmul(m, y)  # (Ho, H) @ (..., H, Wo)
        return y
    raise ConfigError(f"{op}: mode must be 'nearest', 'nearest-exact', 'linear' or 'bilinear'; got {mode!r}.")


def upsample(
    input: Any,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """Alias of [`interpolate`][functorch_lite.nn.functional.interpolate] (PyTorch's deprecated name).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._upsample import upsample
        >>> upsample(fl.ones((1, 2, 3, 3)), size=(6, 5), mode="bilinear").shape
        (1, 2, 6, 5)
    """
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Any, size: Any = None, scale_factor: Any = None) -> Tensor:
    """Nearest-neighbour upsampling (``interpolate(..., mode="nearest")``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._upsample import upsample_nearest
        >>> upsample_nearest(fl.ones((1, 1, 2, 2)), scale_factor=2).shape
        (1, 1, 4, 4)
    """
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input: Any, size: Any = None, scale_factor: Any = None) -> Tensor:
    """Bilinear upsampling with ``align_corners=True`` (as PyTorch's deprecated function).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._upsample import upsample_bilinear
        >>> upsample_bilinear(fl.ones((1, 1, 2, 2)), scale_factor=2).shape
        (1, 1, 4, 4)
    """
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)
