"""Convolutions (1-d, 2-d, transposed) composed from array-API operations.

A convolution is im2col plus one matmul: the input is laid out as
(C, *spatial, N) (channels first, batch last, so every window slice copies long
contiguous runs), padded, and for every kernel offset sliced with the stride
(``x[:, i:i + s * (Ho - 1) + 1:s, ..., :]``); the slices are stacked on a new axis
and contracted with the weight in one GEMM (O, C*K) @ (C*K, L*N). The only
Python loop runs over kernel offsets, never over the batch or over output
positions. A transposed convolution is the convolution of the zero-dilated
input with the flipped, transposed weight.

Two linear primitives, ``unfold`` (the stacked window slices) and its
transpose ``fold`` (adding windows back in place into one buffer), exist for
speed only: composed from ``getitem`` + ``stack``, the backward pass made one
zero-filled input-sized array per kernel offset and a copy for each scatter,
and dispatched ~4 ops per offset; as primitives each direction is one backend
call. Their rules use only public ops (each other), so grad, vmap and
higher-order derivatives need nothing else (leading axes batch for free).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from ... import _namespace as fl
from ..._core.engine import Primitive, bind
from ..._core.tensor import Tensor, backend_for, wrap
from ..._errors import ConfigError, ShapeError
from ..._ops._rules import def_linear, move_bdim_to_front

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]


# -- helpers shared by the other functional modules of this package ----------------------
def _ntuple(v: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    """``v`` as a tuple of ``n`` ints (an int is repeated)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    try:
        t = tuple(int(e) for e in v)
    except TypeError:
        raise ConfigError(f"{op}: {name} must be an int or a tuple of {n} ints; got {v!r}.") from None
    if len(t) != n:
        raise ConfigError(f"{op}: {name} must have {n} entries; got {v!r}.")
    return t


def _tensor(x: Any, op: str) -> Tensor:
    return x if isinstance(x, Tensor) else fl.asarray(x)


def _full_on(like: Tensor, shape: Sequence[int], value: float = 0.0, dtype: Any = None) -> Tensor:
    """A concrete array filled with ``value`` on ``like``'s backend (works for tracers too)."""
    xp = like._xp
    b = backend_for(xp)
    dt = like.dtype if dtype is None else dtype
    return wrap(xp.full(tuple(shape), value, dtype=b.native(dt)), xp)


def _pad_last(x: Tensor, pads: Sequence[tuple[int, int]], value: float = 0.0, trail: int = 0) -> Tensor:
    """Pad (or, for negative amounts, crop) with a constant the ``len(pads)`` axes that precede
    the last ``trail`` axes (by default: the last ``len(pads)`` axes)."""
    nd = len(pads)
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    end = x.ndim - trail
    post = (slice(None),) * trail
    sp = x.shape[end - nd : end]
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pads, sp, strict=True))
        x = x[(Ellipsis,) + crop + post]
        pads = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
        sp = x.shape[end - nd : end]
        if all(lo == 0 and hi == 0 for lo, hi in pads):
            return x
    shape = (
        tuple(x.shape[: end - nd])
        + tuple(n + lo + hi for (lo, hi), n in zip(pads, sp, strict=True))
        + tuple(x.shape[end:])
    )
    out = _full_on(x, shape, value)
    out[(Ellipsis,) + tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, sp, strict=True)) + post] = x
    return out


# -- unfold / fold: window extraction and its transpose (primitives, for speed) ----------------
def _window_keys(
    ks: Sequence[int], ss: Sequence[int], ds: Sequence[int], outs: Sequence[int], trail: int = 0
) -> list[tuple[Any, ...]]:
    """One index per kernel offset: the strided slice of the padded input that offset sees."""
    nd = len(ks)
    post = (slice(None),) * trail
    return [
        (Ellipsis,)
        + tuple(slice(offs[i] * ds[i], offs[i] * ds[i] + (outs[i] - 1) * ss[i] + 1, ss[i]) for i in range(nd))
        + post
        for offs in itertools.product(*(range(k) for k in ks))
    ]


def _c_order(xp: Any, x: Any) -> Any:
    """A C-ordered copy of a transposed numpy / cupy view (strided gathers are slow), else ``x``."""
    flags = getattr(x, "flags", None)
    if flags is not None and not flags["C_CONTIGUOUS"]:
        return xp.reshape(x, tuple(x.shape), copy=True)
    return x


def _unfold_impl(xp: Any, x: Any, *, ks: Any, ss: Any, ds: Any, outs: Any, sp: Any, axis: int, trail: int) -> Any:
    x = _c_order(xp, x)
    return xp.stack([x[k] for k in _window_keys(ks, ss, ds, outs, trail)], axis=axis)


def _fold_impl(xp: Any, c: Any, *, ks: Any, ss: Any, ds: Any, outs: Any, sp: Any, axis: int, trail: int) -> Any:
    nd = len(ks)
    end = c.ndim - trail
    lead = tuple(c.shape[:axis]) + tuple(c.shape[axis + 1 : end - nd])
    b = backend_for(xp)
    out = xp.zeros(lead + tuple(sp) + tuple(c.shape[end:]), dtype=c.dtype)
    pre = (slice(None),) * axis
    disjoint = all(s >= d * (k - 1) + 1 for k, s, d in zip(ks, ss, ds, strict=True))
    for k, key in enumerate(_window_keys(ks, ss, ds, outs, trail)):
        piece = c[pre + (k, Ellipsis)]
        if b.immutable:  # JAX: functional update through the backend layer
            out = b.setitem(out, key, out[key] + piece)
        elif disjoint:
            out[key] = piece  # windows do not overlap (pooling): plain writes, no adds
        else:
            out[key] += piece  # a fresh buffer of our own: in-place accumulation is safe
    return out


unfold_p = Primitive("nn_unfold", _unfold_impl)
fold_p = Primitive("nn_fold", _fold_impl)
def_linear(unfold_p, lambda g, x, **p: bind(fold_p, (g,), p))
def_linear(fold_p, lambda g, c, **p: bind(unfold_p, (g,), p))


def _window_batch(prim: Primitive) -> Any:
    def rule(n: int, vals: Any, dims: Any, **p: Any) -> tuple[Any, int]:
        x = move_bdim_to_front(vals[0], dims[0])
        return bind(prim, (x,), {**p, "axis": p["axis"] + 1}), 0

    return rule


unfold_p.batch = _window_batch(unfold_p)
fold_p.batch = _window_batch(fold_p)


def unfold_windows(
    x: Tensor, ks: Sequence[int], ss: Sequence[int], ds: Sequence[int], outs: Sequence[int], axis: int, trail: int = 0
) -> Tensor:
    """Windows of the (already padded) spatial axes of ``x``, stacked on a new ``axis``.

    The spatial axes are the ``len(ks)`` axes before the last ``trail`` ones. Output
    shape: ``x``'s shape with ``K = prod(ks)`` inserted at ``axis`` and the spatial sizes
    replaced by ``outs``.
    """
    nd = len(ks)
    end = x.ndim - trail
    params = {
        "ks": tuple(ks),
        "ss": tuple(ss),
        "ds": tuple(ds),
        "outs": tuple(outs),
        "sp": tuple(x.shape[end - nd : end]),
        "axis": axis,
        "trail": trail,
    }
    return bind(unfold_p, (x,), params)


def _out_size(n: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def _batchify(x: Tensor, nd: int, op: str, name: str = "input") -> tuple[Tensor, bool]:
    """Add a batch axis to an unbatched input; check the rank."""
    if x.ndim == nd + 1:
        return fl.expand_dims(x, axis=0), True
    if x.ndim != nd + 2:
        raise ShapeError(
            f"{op}: {name} must be {nd + 1}-d (unbatched) or {nd + 2}-d (batched, channels first); got shape {x.shape}."
        )
    return x, False


def _conv_padding(
    padding: Any, ks: Sequence[int], ds: Sequence[int], ss: Sequence[int], op: str
) -> list[tuple[int, int]]:
    nd = len(ks)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "same":
            if any(s != 1 for s in ss):
                raise ConfigError(f"{op}: padding='same' needs stride 1; got stride {tuple(ss)}. Pad explicitly.")
            out = []
            for k, d in zip(ks, ds, strict=True):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))  # extra padding on the right, as PyTorch
            return out
        raise ConfigError(f"{op}: padding must be an int, a tuple, 'same' or 'valid'; got {padding!r}.")
    p = _ntuple(padding, nd, "padding", op)
    if any(v < 0 for v in p):
        raise ConfigError(f"{op}: padding must be non-negative; got {padding!r}.")
    return [(v, v) for v in p]


def _conv_core(
    x: Tensor,
    w: Tensor,
    ss: Sequence[int],
    pads: Sequence[tuple[int, int]],
    ds: Sequence[int],
    groups: int,
) -> Tensor:
    """Batched, channels-first convolution (cross-correlation) of ``x`` (N, C, *sp) with ``w``."""
    nd = len(ss)
    n, c = x.shape[0], x.shape[1]
    o = w.shape[0]
    ks = tuple(w.shape[2:])
    sp = x.shape[2:]
    outs = tuple(_out_size(sp[i], ks[i], ss[i], ds[i], *pads[i]) for i in range(nd))
    if any(v <= 0 for v in outs):
        raise ShapeError(
            f"conv: the (padded) input of spatial shape {tuple(sp)} is smaller than the dilated kernel "
            f"{tuple(ks)} (dilation {tuple(ds)}); use a smaller kernel or more padding."
        )
    kk = 1
    for k in ks:
        kk *= k
    ell = n
    for v in outs:
        ell *= v
    # Layout (C, *spatial, N): channels first, batch last. Every window slice then copies long
    # contiguous runs (a row of W * N values), and the contraction is one GEMM
    # (O/g, C/g*K) @ (C/g*K, L*N) per group whose gradients are GEMMs too.
    sp_axes = tuple(range(2, 2 + nd))
    xt = fl.permute_dims(x, (1,) + sp_axes + (0,))  # (C, *sp, N)
    xt = _pad_last(xt, pads, trail=1)
    if kk == 1 and all(s == 1 for s in ss):
        col = fl.reshape(xt, (groups, c // groups, ell))
    else:
        col = unfold_windows(xt, ks, ss, ds, outs, axis=1, trail=1)  # (C, K, *out, N)
        col = fl.reshape(col, (groups, (c // groups) * kk, ell))
    if groups == 1:  # plain 2-d GEMM (O, C*K) @ (C*K, L*N)
        col = fl.reshape(col, ((c // groups) * kk, ell))
        wm = fl.reshape(w, (o, c * kk))
    else:
        wm = fl.reshape(w, (groups, o // groups, (c // groups) * kk))
    out = fl.matmul(wm, col)  # (g, O/g, L*N) or (O, L*N)
    out = fl.reshape(out, (o,) + outs + (n,))
    return fl.permute_dims(out, (nd + 1, 0) + tuple(range(1, nd + 1)))


def _check_conv(x: Tensor, w: Tensor, groups: int, nd: int, op: str, transposed: bool = False) -> None:
    if w.ndim != nd + 2:
        raise ShapeError(f"{op}: weight must be {nd + 2}-d; got shape {w.shape}.")
    if not isinstance(groups, int) or groups < 1:
        raise ConfigError(f"{op}: groups must be a positive int; got {groups!r}.")
    c = x.shape[1]
    if transposed:
        if w.shape[0] != c:
            raise ShapeError(
                f"{op}: weight of shape {w.shape} expects {w.shape[0]} input channels (weight is "
                f"(in, out/groups, *kernel)); got input of shape {x.shape} with {c}."
            )
        if c % groups:
            raise ShapeError(f"{op}: input channels {c} are not divisible by groups={groups}.")
        return
    if c % groups or w.shape[1] * groups != c:
        raise ShapeError(
            f"{op}: input of shape {x.shape} has {c} channels but weight of shape {w.shape} with "
            f"groups={groups} expects {w.shape[1] * groups} (weight is (out, in/groups, *kernel))."
        )
    if w.shape[0] % groups:
        raise ShapeError(f"{op}: out channels {w.shape[0]} are not divisible by groups={groups}.")


def _add_bias(out: Tensor, bias: Any, nd: int) -> Tensor:
    if bias is None:
        return out
    b = _tensor(bias, "conv")
    return out + fl.reshape(b, (b.shape[0],) + (1,) * nd)


def _conv_inputs(x: Any, weight: Any, groups: int, nd: int, op: str, transposed: bool) -> tuple[Tensor, Tensor, bool]:
    """Input (batched) and weight as Tensors, their shapes checked; and whether the input was unbatched."""
    x = _tensor(x, op)
    w = _tensor(weight, op)
    x, unb = _batchify(x, nd, op)
    _check_conv(x, w, groups, nd, op, transposed)
    return x, w, unb


def _steps(stride: Any, dilation: Any, nd: int, op: str, *more: tuple[Any, str]) -> tuple[tuple[int, ...], ...]:
    """Stride, dilation and each ``(value, name)`` of ``more`` as ``nd``-tuples; stride and dilation >= 1."""
    ss = _ntuple(stride, nd, "stride", op)
    ds = _ntuple(dilation, nd, "dilation", op)
    rest = tuple(_ntuple(v, nd, name, op) for v, name in more)
    if any(v < 1 for v in ss + ds):
        raise ConfigError(f"{op}: stride and dilation must be >= 1; got stride={stride!r}, dilation={dilation!r}.")
    return (ss, ds) + rest


def _convnd(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: int, nd: int) -> Tensor:
    op = f"conv{nd}d"
    x, w, unb = _conv_inputs(x, weight, groups, nd, op, False)
    ss, ds = _steps(stride, dilation, nd, op)
    pads = _conv_padding(padding, tuple(w.shape[2:]), ds, ss, op)
    out = _add_bias(_conv_core(x, w, ss, pads, ds, groups), bias, nd)
    return out[0] if unb else out


# The public functions below spell out torch's signature and their own docstring and example per
# dimension count (read by inspect.signature, mypy and the docs); each is one call of its core.
def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | str = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
) -> Tensor:
    """1-d convolution (cross-correlation) over (N, C, L) or unbatched (C, L) input.

    Args:
        input: (N, C_in, L) or (C_in, L).
        weight: (C_out, C_in / groups, k).
        bias: optional (C_out,).
        stride, padding, dilation, groups: as in ``torch.nn.functional.conv1d``;
            padding may be ``"same"`` (stride 1 only) or ``"valid"``.

    Returns:
        (N, C_out, L_out), or (C_out, L_out) for unbatched input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._conv import conv1d
        >>> conv1d(fl.ones((2, 3, 10)), fl.ones((4, 3, 3)), padding="same").shape
        (2, 4, 10)
    """
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] | str = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
) -> Tensor:
    """2-d convolution (cross-correlation) over (N, C, H, W) or unbatched (C, H, W) input.

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_out, C_in / groups, kh, kw), PyTorch's layout.
        bias: optional (C_out,).
        stride, padding, dilation, groups: as in ``torch.nn.functional.conv2d``;
            padding may be ``"same"`` (stride 1 only) or ``"valid"``.

    Returns:
        (N, C_out, H_out, W_out), or (C_out, H_out, W_out) for unbatched input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._conv import conv2d
        >>> conv2d(fl.ones((2, 3, 8, 8)), fl.ones((4, 3, 3, 3)), stride=2, padding=1).shape
        (2, 4, 4, 4)
    """
    return _convnd(input, weight, bias, stride, padding, dilation, groups, 2)


def _conv_transposend(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any, groups: int, dilation: Any, nd: int
) -> Tensor:
    op = f"conv_transpose{nd}d"
    x, w, unb = _conv_inputs(x, weight, groups, nd, op, True)
    ss, ds, ps, ops_ = _steps(stride, dilation, nd, op, (padding, "padding"), (output_padding, "output_padding"))
    for i in range(nd):
        if not 0 <= ops_[i] < max(ss[i], ds[i]):
            raise ConfigError(
                f"{op}: output_padding must be smaller than stride or dilation; got output_padding="
                f"{output_padding!r}, stride={stride!r}, dilation={dilation!r}."
            )
    cin = w.shape[0]
    cout_g = w.shape[1]
    ks = tuple(w.shape[2:])
    n = x.shape[0]
    sp = x.shape[2:]
    # Zero-dilate the input by the stride.
    if any(s > 1 for s in ss):
        dil = tuple((sp[i] - 1) * ss[i] + 1 for i in range(nd))
        xd = _full_on(x, (n, cin) + dil)
        xd[(Ellipsis,) + tuple(slice(None, None, s) for s in ss)] = x
    else:
        xd = x
    # (in, out/g, *k) -> (out, in/g, *k), flipped in space.
    wt = fl.reshape(w, (groups, cin // groups, cout_g) + ks)
    wt = fl.permute_dims(wt, (0, 2, 1) + tuple(range(3, 3 + nd)))
    wt = fl.reshape(wt, (groups * cout_g, cin // groups) + ks)
    wt = fl.flip(wt, axis=tuple(range(2, 2 + nd)))
    pads = [(ds[i] * (ks[i] - 1) - ps[i], ds[i] * (ks[i] - 1) - ps[i] + ops_[i]) for i in range(nd)]
    out = _add_bias(_conv_core(xd, wt, (1,) * nd, pads, ds, groups), bias, nd)
    return out[0] if unb else out


def conv_transpose1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    output_padding: int | tuple[int, ...] = 0,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
) -> Tensor:
    """1-d transposed convolution (the gradient of conv1d with respect to its input).

    Args:
        input: (N, C_in, L) or (C_in, L).
        weight: (C_in, C_out / groups, k), PyTorch's layout.
        bias: optional (C_out,).
        stride, padding, output_padding, groups, dilation: as in
            ``torch.nn.functional.conv_transpose1d``.

    Returns:
        (N, C_out, (L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._conv import conv_transpose1d
        >>> conv_transpose1d(fl.ones((2, 3, 5)), fl.ones((3, 4, 3)), stride=2).shape
        (2, 4, 11)
    """
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)


def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    output_padding: int | tuple[int, ...] = 0,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
) -> Tensor:
    """2-d transposed convolution (the gradient of conv2d with respect to its input).

    Args:
        input: (N, C_in, H, W) or (C_in, H, W).
        weight: (C_in, C_out / groups, kh, kw), PyTorch's layout.
        bias: optional (C_out,).
        stride, padding, output_padding, groups, dilation: as in
            ``torch.nn.functional.conv_transpose2d``.

    Returns:
        (N, C_out, H_out, W_out), or (C_out, H_out, W_out) for unbatched input.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._conv import conv_transpose2d
        >>> conv_transpose2d(fl.ones((1, 3, 4, 4)), fl.ones((3, 2, 3, 3)), stride=2, padding=1,
        ...                  output_padding=1).shape
        (1, 2, 8, 8)
    """
    return _conv_transposend(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)
