"""Pooling (max, average, adaptive average) composed from array-API primitives.

Windows are gathered like im2col: one strided slice of the padded input per
kernel offset, stacked on a new axis and reduced. When the kernel tiles the
input exactly (kernel == stride, no padding) a reshape replaces the slices.
Adaptive average pooling is two small matmuls with averaging matrices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ... import _dtypes as _D
from ... import _namespace as fl
from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError
from ._conv import _batchify, _ntuple, _pad_last, _tensor, unfold_windows

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
]


def _pool_geometry(
    sp: Sequence[int],
    ks: Sequence[int],
    ss: Sequence[int],
    ps: Sequence[int],
    ds: Sequence[int],
    ceil_mode: bool,
    op: str,
) -> tuple[tuple[int, ...], list[tuple[int, int]]]:
    """Output sizes and the (left, right) padding that makes every window fit."""
    outs = []
    pads = []
    for n, k, s, p, d in zip(sp, ks, ss, ps, ds, strict=True):
        if p > (d * (k - 1) + 1) // 2:
            raise ConfigError(
                f"{op}: padding should be at most half of the (dilated) kernel size; got padding {p}, kernel {k}."
            )
        span = n + 2 * p - d * (k - 1) - 1
        if span < 0:
            raise ShapeError(f"{op}: input of spatial size {tuple(sp)} is smaller than the kernel {tuple(ks)}.")
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1  # the last window must start inside the input or the left padding (as PyTorch)
        outs.append(o)
        need = (o - 1) * s + d * (k - 1) + 1
        pads.append((p, need - n - p))
    return tuple(outs), pads


def _args(kernel_size: Any, stride: Any, padding: Any, dilation: Any, nd: int, op: str) -> tuple[tuple[int, ...], ...]:
    ks = _ntuple(kernel_size, nd, "kernel_size", op)
    ss = (
        ks
        if stride is None or (not isinstance(stride, int) and len(stride) == 0)
        else _ntuple(stride, nd, "stride", op)
    )
    ps = _ntuple(padding, nd, "padding", op)
    ds = _ntuple(dilation, nd, "dilation", op)
    if any(v < 1 for v in ks + ss + ds) or any(v < 0 for v in ps):
        raise ConfigError(
            f"{op}: kernel_size, stride and dilation must be >= 1 and padding >= 0; got kernel_size="
            f"{kernel_size!r}, stride={stride!r}, padding={padding!r}, dilation={dilation!r}."
        )
    return ks, ss, ps, ds


def _max_pool(
    x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool, return_indices: bool, nd: int
) -> Any:
    op = f"max_pool{nd}d"
    x = _tensor(x, op)
    x, unb = _batchify(x, nd, op)
    ks, ss, ps, ds = _args(kernel_size, stride, padding, dilation, nd, op)
    sp = x.shape[2:]
    outs, pads = _pool_geometry(sp, ks, ss, ps, ds, ceil_mode, op)
    # Layout (C, *spatial, N): window slices then copy long contiguous runs (see _conv).
    perm_in, perm_out = _perms(nd)
    xpad = _pad_last(fl.permute_dims(x, perm_in), pads, -math.inf, trail=1)
    win = unfold_windows(xpad, ks, ss, ds, outs, axis=1, trail=1)  # (C, K, *outs, N)
    # NOTE: where entries of a window tie for the maximum, the reduction's rule shares the
    # gradient evenly among them; PyTorch sends it all to the first one.
    out = fl.permute_dims(fl.max(win, axis=1), perm_out)
    if return_indices:
        flat = 1
        for n in sp:
            flat *= n
        from ..._ops.creation import asarray_like

        pos = asarray_like(list(range(flat)), x, dtype=_D.int64)
        pos = _pad_last(fl.reshape(pos, tuple(sp)), pads, -1)
        pidx = unfold_windows(pos, ks, ss, ds, outs, axis=0)  # (K, *outs)
        pidx = fl.broadcast_to(fl.reshape(pidx, (1,) + pidx.shape + (1,)), win.shape)
        am = fl.argmax(win, axis=1, keepdims=True)  # the first maximum, as PyTorch
        idx = fl.permute_dims(fl.squeeze(fl.take_along_axis(pidx, am, axis=1), axis=1), perm_out)
        return (out[0], idx[0]) if unb else (out, idx)
    return out[0] if unb else out


def _perms(nd: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(N, C, *sp) -> (C, *sp, N) and back."""
    sp_axes = tuple(range(2, 2 + nd))
    return (1,) + sp_axes + (0,), (nd + 1, 0) + tuple(range(1, nd + 1))


# The public functions below spell out torch's signature and their own docstring and example per
# dimension count (read by inspect.signature, mypy and the docs); each is one call of its core.
def max_pool1d(
    input: Any,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """1-d max pooling over (N, C, L) or (C, L); PyTorch's arguments (stride defaults to the kernel).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._pool import max_pool1d
        >>> max_pool1d(fl.asarray([[[1.0, 3.0, 2.0, 5.0]]]), 2).tolist()
        [[[3.0, 5.0]]]
    """
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def max_pool2d(
    input: Any,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """2-d max pooling over (N, C, H, W) or (C, H, W); with ``return_indices`` also the flat argmax.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._pool import max_pool2d
        >>> max_pool2d(fl.ones((2, 3, 8, 8)), 3, stride=2, padding=1).shape
        (2, 3, 4, 4)
    """
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def _avg_pool(
    x: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Any,
    nd: int,
) -> Tensor:
    op = f"avg_pool{nd}d"
    x = _tensor(x, op)
    x, unb = _batchify(x, nd, op)
    ks, ss, ps, ds = _args(kernel_size, stride, padding, 1, nd, op)
    sp = x.shape[2:]
    outs, pads = _pool_geometry(sp, ks, ss, ps, ds, ceil_mode, op)
    kk = math.prod(ks)
    perm_in, perm_out = _perms(nd)
    xpad = _pad_last(fl.permute_dims(x, perm_in), pads, trail=1)
    out = fl.sum(unfold_windows(xpad, ks, ss, ds, outs, axis=1, trail=1), axis=1)  # (C, *outs, N)
    if ks == ss and all(lo == 0 and hi <= 0 for lo, hi in pads):
        div: Any = float(kk if divisor_override is None else divisor_override)
    else:
        if divisor_override is not None:
            div = float(divisor_override)
        else:
            # Divisor per window: the count of the input (and, with count_include_pad, the
            # explicit padding) it covers; never the ceil_mode overhang (as PyTorch).
            from ..._ops.creation import asarray_like

            mask = asarray_like([1.0], x)
            mask = fl.broadcast_to(fl.reshape(mask, (1,) * nd), tuple(sp))
            if count_include_pad:
                mask = _pad_last(mask, [(p, p) for p in ps], 1.0)
                mask = _pad_last(mask, [(0, hi - p) for (_, hi), p in zip(pads, ps, strict=True)], 0.0)
            else:
                mask = _pad_last(mask, pads, 0.0)
            div = fl.sum(unfold_windows(mask, ks, ss, ds, outs, axis=0), axis=0)
            div = fl.expand_dims(div, axis=nd)  # against the trailing batch axis
    out = fl.permute_dims(out / div, perm_out)
    return out[0] if unb else out


def avg_pool1d(
    input: Any,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """1-d average pooling over (N, C, L) or (C, L); PyTorch's arguments.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._pool import avg_pool1d
        >>> avg_pool1d(fl.asarray([[[1.0, 3.0, 2.0, 6.0]]]), 2).tolist()
        [[[2.0, 4.0]]]
    """
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def avg_pool2d(
    input: Any,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-d average pooling over (N, C, H, W) or (C, H, W); PyTorch's arguments.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._pool import avg_pool2d
        >>> avg_pool2d(fl.ones((2, 3, 8, 8)), 2).shape
        (2, 3, 4, 4)
    """
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2)


def _adaptive_matrix(n: int, o: int, like: Tensor) -> Tensor:
    """(o, n) matrix averaging PyTorch's adaptive bins: [floor(i n / o), ceil((i + 1) n / o))."""
    from ..._ops.creation import asarray_like

    rows = []
    for i in range(o):
        a = (i * n) // o
        b = -(-((i + 1) * n) // o)
        rows.append([1.0 / (b - a) if a <= j < b else 0.0 for j in range(n)])
    return asarray_like(rows, like)


def _adaptive_avg(x: Any, output_size: Any, nd: int) -> Tensor:
    op = f"adaptive_avg_pool{nd}d"
    x = _tensor(x, op)
    x, unb = _batchify(x, nd, op)
    sp = x.shape[2:]
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size,) * nd
    os_ = tuple(sp[i] if o is None else int(o) for i, o in enumerate(output_size))
    if len(os_) != nd or any(o < 1 for o in os_):
        raise ConfigError(f"{op}: output_size must be {nd} positive ints (or None); got {output_size!r}.")
    out = x
    if os_[-1] != sp[-1]:
        out = fl.matmul(out, fl.matrix_transpose(_adaptive_matrix(sp[-1], os_[-1], x)))
    if nd == 2 and os_[0] != sp[0]:
        out = fl.matmul(_adaptive_matrix(sp[0], os_[0], x), out)
    return out[0] if unb else out


def adaptive_avg_pool1d(input: Any, output_size: int | tuple[int]) -> Tensor:
    """1-d adaptive average pooling to ``output_size`` over (N, C, L) or (C, L).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._pool import adaptive_avg_pool1d
        >>> adaptive_avg_pool1d(fl.asarray([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2).tolist()
        [[[2.0, 4.0]]]
    """
    return _adaptive_avg(input, output_size, 1)


def adaptive_avg_pool2d(input: Any, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """2-d adaptive average pooling to ``output_size`` over (N, C, H, W) or (C, H, W).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._pool import adaptive_avg_pool2d
        >>> adaptive_avg_pool2d(fl.ones((2, 3, 7, 9)), (3, 4)).shape
        (2, 3, 3, 4)
    """
    return _adaptive_avg(input, output_size, 2)
