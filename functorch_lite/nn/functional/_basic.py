"""Linear maps, dropout, embedding, one_hot, pad and the normalization functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import functorch_lite as fl

from ..._core.engine import active_traces
from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError, TransformError
from ..._ops.linalg_core import matmul_nt as _matmul_nt

__all__ = [
    "linear",
    "bilinear",
    "dropout",
    "dropout1d",
    "dropout2d",
    "embedding",
    "one_hot",
    "pad",
    "normalize",
    "layer_norm",
    "batch_norm",
    "batch_norm_stats",
    "group_norm",
    "rms_norm",
    "instance_norm",
]


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else fl.asarray(x)


# ------------------------------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias, with PyTorch's layout: weight is (out_features, in_features).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.linear(fl.ones((4, 3)), fl.ones((2, 3)), fl.zeros((2,))).shape
        (4, 2)
    """
    x = input if isinstance(input, Tensor) else _t(input)
    w = weight if isinstance(weight, Tensor) else _t(weight)
    ws = w._a.shape if w._t is None else w._t.shape  # (Tensor.shape, without the property calls)
    xs = x._a.shape if x._t is None else x._t.shape
    if len(ws) != 2 or len(xs) == 0 or xs[-1] != ws[1]:
        raise ShapeError(
            f"linear: input of shape {x.shape} does not fit weight of shape {w.shape}; the last input "
            "dimension must equal weight.shape[1] (in_features)."
        )
    y = _matmul_nt(x, w)  # weight gradients come back in (out, in) layout
    if bias is not None:
        y = y + bias
    return y


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y_k = x1 @ weight[k] @ x2 + bias_k; weight is (out_features, in1_features, in2_features).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.bilinear(fl.ones((4, 2)), fl.ones((4, 3)), fl.ones((5, 2, 3))).shape
        (4, 5)
    """
    x1, x2, w = _t(input1), _t(input2), _t(weight)
    if w.ndim != 3 or x1.shape[-1:] != w.shape[1:2] or x2.shape[-1:] != w.shape[2:3] or x1.shape[:-1] != x2.shape[:-1]:
        raise ShapeError(
            f"bilinear: inputs of shapes {x1.shape} and {x2.shape} do not fit weight {w.shape} "
            "(out, in1, in2); they need equal leading dims and last dims in1 and in2."
        )
    out, i1, i2 = w.shape
    lead = x1.shape[:-1]
    a = fl.reshape(x1, (-1, i1))
    b = fl.reshape(x2, (-1, i2))
    wm = fl.reshape(fl.permute_dims(w, (1, 0, 2)), (i1, out * i2))
    t = fl.reshape(a @ wm, (-1, out, i2))
    y = fl.sum(t * fl.expand_dims(b, axis=1), axis=-1)
    if bias is not None:
        y = y + bias
    return fl.reshape(y, lead + (out,))


# ------------------------------------------------------------------------------------------------
def _check_p(p: float, op: str) -> None:
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ConfigError(f"{op}: p is the probability of zeroing an element, so it must be in [0, 1]; got {p!r}.")


def _keep_mask(shape: tuple[int, ...], keep: float, key: Any) -> Tensor:
    from functorch_lite import random as R

    if key is None:
        key = R.next_key()
    return R.bernoulli(key, keep, shape)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, key: Any = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (in training only).

    Uses the global generator unless ``key`` is given. Under ``vmap`` pass
    ``randomness="same"`` or ``"different"``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.dropout(fl.ones((3,)), 0.5, training=False).tolist()
        [1.0, 1.0, 1.0]
    """
    _check_p(p, "dropout")
    x = _t(input)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = 1.0 - p
    mask = _keep_mask(x.shape, keep, key)
    return fl.where(mask, x * (1.0 / keep), 0.0)


def _channel_dropout(x: Tensor, p: float, training: bool, key: Any, spatial: int, op: str) -> Tensor:
    _check_p(p, op)
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ShapeError(
            f"{op}: expects (N, C, {'L' if spatial == 1 else 'H, W'}) or unbatched input; got shape {x.shape}."
        )
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = 1.0 - p
    mshape = x.shape[: x.ndim - spatial] + (1,) * spatial
    mask = _keep_mask(mshape, keep, key)
    return fl.where(mask, x * (1.0 / keep), 0.0)


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, key: Any = None
) -> Tensor:
    """Zero whole channels of (N, C, L) input with probability ``p``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.dropout1d(fl.ones((2, 3, 4)), training=False).shape
        (2, 3, 4)
    """
    return _channel_dropout(_t(input), p, training, key, 1, "dropout1d")


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, key: Any = None
) -> Tensor:
    """Zero whole channels of (N, C, H, W) input with probability ``p``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.dropout2d(fl.ones((2, 3, 4, 4)), training=False).shape
        (2, 3, 4, 4)
    """
    return _channel_dropout(_t(input), p, training, key, 2, "dropout2d")


# ------------------------------------------------------------------------------------------------
def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` picked by integer ``input``; no gradient flows to row ``padding_idx``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.embedding(fl.asarray([[0, 2]]), fl.ones((3, 4))).shape
        (1, 2, 4)
    """
    idx = _t(input)
    w = _t(weight)
    if idx.dtype.kind not in "iu":
        raise ConfigError(f"embedding: indices must be integers; got dtype {idx.dtype.name}.")
    if w.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-d (num_embeddings, embedding_dim); got shape {w.shape}.")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise ConfigError(
            "embedding: max_norm, scale_grad_by_freq and sparse are not supported; leave them at their defaults."
        )
    n = w.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ConfigError(f"embedding: padding_idx={padding_idx} is out of range for {n} embeddings.")
        padding_idx %= n
    flat = fl.reshape(idx, (-1,)) if idx.ndim != 1 else idx
    # NOTE: take_along_axis (a full integer-array key) works on every backend, array-api-strict included
    out = fl.take_along_axis(w, fl.expand_dims(flat, axis=-1), axis=0)
    out = fl.reshape(out, idx.shape + (w.shape[1],))
    if padding_idx is not None:
        mask = fl.expand_dims(idx != padding_idx, axis=-1)
        out = fl.where(mask, out, fl.stop_gradient(out))
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new last axis of size ``num_classes`` (-1: max + 1).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.one_hot(fl.asarray([0, 2]), 3).tolist()
        [[1, 0, 0], [0, 0, 1]]
    """
    x = _t(tensor)
    if x.dtype.kind not in "iu":
        raise ConfigError(f"one_hot: expects integer class indices; got dtype {x.dtype.name}.")
    if num_classes == -1:
        num_classes = int(fl.max(x)) + 1 if x.size else 0
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ConfigError(f"one_hot: num_classes must be a non-negative int or -1; got {num_classes!r}.")
    classes = fl.arange(num_classes, dtype=x.dtype)
    classes = _on_like(classes, x)
    return fl.astype(fl.expand_dims(x, axis=-1) == classes, fl.int64)


def _on_like(t: Tensor, like: Tensor) -> Tensor:
    if t._xp is not like._xp:
        t = fl.to_backend(t, like.backend)
    return t


# ------------------------------------------------------------------------------------------------
def _slice(x: Tensor, axis: int, start: int | None, stop: int | None) -> Tensor:
    return x[(slice(None),) * axis + (slice(start, stop),)]


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left_last, right_last, left_prev, right_prev, ...)``.

    Modes: "constant" (negative pads crop), "reflect", "replicate", "circular".

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.pad(fl.asarray([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
        [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    x = _t(input)
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ConfigError(
            f"pad: pad must have an even length of at most 2 * ndim ({2 * x.ndim}); got {len(pad)} entries."
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ConfigError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular'; got {mode!r}.")
    if mode != "constant" and value not in (None, 0, 0.0):
        raise ConfigError(f"pad: value is only used with mode='constant'; got value={value!r} with mode={mode!r}.")
    fill = 0.0 if value is None else value
    for i in range(len(pad) // 2):
        axis = x.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if lo == 0 and hi == 0:
            continue
        n = x.shape[axis]
        if mode == "constant":
            if lo < 0:
                x = _slice(x, axis, -lo, None)
                lo = 0
            if hi < 0:
                x = _slice(x, axis, None, x.shape[axis] + hi)
                hi = 0
            parts = []
            if lo:
                s = list(x.shape)
                s[axis] = lo
                parts.append(_filled(x, tuple(s), fill))
            parts.append(x)
            if hi:
                s = list(x.shape)
                s[axis] = hi
                parts.append(_filled(x, tuple(s), fill))
            x = fl.concat(parts, axis=axis)
            continue
        if lo < 0 or hi < 0:
            raise ConfigError(
                f"pad: negative padding is only allowed with mode='constant'; got {pad} with mode={mode!r}."
            )
        if mode == "reflect":
            if lo >= n or hi >= n:
                raise ConfigError(
                    f"pad: reflect padding must be smaller than the padded dimension; got ({lo}, {hi}) for size {n}."
                )
            left = fl.flip(_slice(x, axis, 1, lo + 1), axis=axis) if lo else None
            right = fl.flip(_slice(x, axis, n - 1 - hi, n - 1), axis=axis) if hi else None
        elif mode == "replicate":
            if n == 0:
                raise ConfigError("pad: replicate padding needs a non-empty dimension.")
            left = _repeat_edge(_slice(x, axis, 0, 1), axis, lo) if lo else None
            right = _repeat_edge(_slice(x, axis, n - 1, n), axis, hi) if hi else None
        else:  # circular
            if lo > n or hi > n:
                raise ConfigError(
                    f"pad: circular padding must not exceed the padded dimension; got ({lo}, {hi}) for size {n}."
                )
            left = _slice(x, axis, n - lo, n) if lo else None
            right = _slice(x, axis, 0, hi) if hi else None
        x = fl.concat([p for p in (left, x, right) if p is not None], axis=axis)
    return x


def _filled(like: Tensor, shape: tuple[int, ...], value: float) -> Tensor:
    with fl.default_backend(like.backend):
        return fl.full(shape, value, dtype=like.dtype)


def _repeat_edge(edge: Tensor, axis: int, count: int) -> Tensor:
    s = list(edge.shape)
    s[axis] = count
    return fl.broadcast_to(edge, tuple(s))


# ------------------------------------------------------------------------------------------------
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.normalize(fl.asarray([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    x = _t(input)
    if p == 2:
        n = fl.sqrt(fl.sum(x * x, axis=dim, keepdims=True))
    elif p == 1:
        n = fl.sum(fl.abs(x), axis=dim, keepdims=True)
    else:
        n = fl.sum(fl.abs(x) ** p, axis=dim, keepdims=True) ** (1.0 / p)
    return x / fl.maximum(n, eps)


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        y = y * (fl.reshape(weight, shape) if weight.shape != shape else weight)
    if bias is not None:
        y = y + (fl.reshape(bias, shape) if bias.shape != shape else bias)
    return y


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims, then scale and shift.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> fl.round(F.layer_norm(fl.asarray([[1.0, 3.0]]), (2,)) * 100).tolist()
        [[-100.0, 100.0]]
    """
    x = _t(input)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or x.shape[x.ndim - k :] != ns:
        raise ShapeError(
            f"layer_norm: normalized_shape {ns} must equal the trailing dims of the input; got input shape {x.shape}."
        )
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = fl.mean(x, axis=axes, keepdims=True)
    xc = x - mean
    var = fl.mean(xc * xc, axis=axes, keepdims=True)
    y = xc / fl.sqrt(var + eps)
    return _affine(y, weight, bias, ns)


def rms_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """x / sqrt(mean(x², trailing dims) + eps) * weight; eps defaults to the dtype's machine epsilon.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.rms_norm(fl.asarray([[2.0, 2.0]]), (2,)).tolist()
        [[1.0, 1.0]]
    """
    x = _t(input)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or x.shape[x.ndim - k :] != ns:
        raise ShapeError(
            f"rms_norm: normalized_shape {ns} must equal the trailing dims of the input; got input shape {x.shape}."
        )
    if eps is None:
        eps = fl.finfo(x.dtype).eps
    axes = tuple(range(x.ndim - k, x.ndim))
    y = x / fl.sqrt(fl.mean(x * x, axis=axes, keepdims=True) + eps)
    return _affine(y, weight, None, ns)


def _in_vmap() -> bool:
    return any(t.kind == "vmap" for t in active_traces())


def batch_norm_stats(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: Any = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Pure batch norm: ``(output, new_running_mean, new_running_var)`` (the inputs are not touched).

    In training the running statistics move towards the batch statistics
    (unbiased variance); they carry no gradient. ``momentum=None`` means a
    cumulative average, which needs ``num_batches_tracked`` (after its increment).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> y, rm, rv = F.batch_norm_stats(fl.ones((4, 2)), fl.zeros((2,)), fl.ones((2,)), training=True)
        >>> rm.tolist()
        [0.10000000149011612, 0.10000000149011612]
    """
    x = _t(input)
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expects input of shape (N, C, *); got shape {x.shape}.")
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (c,) + (1,) * (x.ndim - 2)
    use_batch = training or running_mean is None or running_var is None
    new_rm, new_rv = running_mean, running_var
    if use_batch:
        n = x.size // c if c else 0
        if training and n <= 1:
            raise ShapeError(
                f"batch_norm: training needs more than one value per channel; got input shape {x.shape}. "
                "Use a larger batch or eval()."
            )
        mean = fl.mean(x, axis=axes, keepdims=True)
        xc = x - mean
        var = fl.mean(xc * xc, axis=axes, keepdims=True)
        y = xc / fl.sqrt(var + eps)
        if training and running_mean is not None and running_var is not None:
            if _in_vmap():
                raise TransformError(
                    "batch_norm: updating running statistics in training mode under vmap is not defined "
                    "(one module cannot hold a batch of statistics). Call model.eval() first, build the "
                    "layer with track_running_stats=False, or vmap over functional_call with stacked buffers in eval mode."
                )
            m = momentum
            if m is None:
                m = 1.0 / float(num_batches_tracked) if num_batches_tracked else 0.0
            bm = fl.stop_gradient(fl.reshape(mean, (c,)))
            bv = fl.stop_gradient(fl.reshape(var, (c,))) * (n / (n - 1))
            new_rm = running_mean * (1.0 - m) + fl.astype(bm, running_mean.dtype) * m
            new_rv = running_var * (1.0 - m) + fl.astype(bv, running_var.dtype) * m
    else:
        rm = fl.reshape(running_mean, shape)
        rv = fl.reshape(running_var, shape)
        y = (x - rm) / fl.sqrt(rv + eps)
    return _affine(y, weight, bias, shape), new_rm, new_rv


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization over (N, C, *) input (PyTorch's ``F.batch_norm``).

    In training, ``running_mean`` and ``running_var`` are rebound in place to
    their updated values (functional mutation, as ``x += y`` is), like PyTorch's
    in-place update; [`batch_norm_stats`][functorch_lite.nn.functional.batch_norm_stats] returns them instead.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.batch_norm(fl.ones((4, 2)), fl.zeros((2,)), fl.ones((2,))).shape
        (4, 2)
    """
    y, rm, rv = batch_norm_stats(input, running_mean, running_var, weight, bias, training, momentum, eps)
    for old, new in ((running_mean, rm), (running_var, rv)):
        if old is not None and new is not None and new is not old:
            _rebind_stat(old, new)
    return y


def _rebind_stat(old: Tensor, new: Tensor) -> None:
    """Functional in-place update of a running statistic; never turns a concrete Tensor into a tracer."""
    if new._t is not None and old._t is None:
        return  # a traced update (differentiating w.r.t. the statistics): the caller's Tensor stays concrete
    old._a, old._xp, old._t = new._a, new._xp, new._t


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each (sample, channel) over its spatial dims; input (N, C, *).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> fl.round(F.instance_norm(fl.asarray([[[1.0, 3.0]]])) * 100).tolist()
        [[[-100.0, 100.0]]]
    """
    x = _t(input)
    if x.ndim < 3:
        raise ShapeError(f"instance_norm: expects input of shape (N, C, *spatial); got shape {x.shape}.")
    c = x.shape[1]
    shape = (c,) + (1,) * (x.ndim - 2)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ConfigError("instance_norm: use_input_stats=False needs running_mean and running_var.")
        y = (x - fl.reshape(running_mean, shape)) / fl.sqrt(fl.reshape(running_var, shape) + eps)
        return _affine(y, weight, bias, shape)
    axes = tuple(range(2, x.ndim))
    mean = fl.mean(x, axis=axes, keepdims=True)
    xc = x - mean
    var = fl.mean(xc * xc, axis=axes, keepdims=True)
    y = xc / fl.sqrt(var + eps)
    if running_mean is not None and running_var is not None:
        if _in_vmap():
            raise TransformError(
                "instance_norm: updating running statistics under vmap is not defined; use eval() or "
                "track_running_stats=False."
            )
        n = 1
        for s in x.shape[2:]:
            n *= s
        bm = fl.stop_gradient(fl.mean(fl.reshape(mean, (x.shape[0], c)), axis=0))
        bv = fl.stop_gradient(fl.mean(fl.reshape(var, (x.shape[0], c)), axis=0)) * (n / max(n - 1, 1))
        for old, new in (
            (running_mean, running_mean * (1 - momentum) + bm * momentum),
            (running_var, running_var * (1 - momentum) + bv * momentum),
        ):
            _rebind_stat(old, new)
    return _affine(y, weight, bias, shape)


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over groups of channels (and spatial dims) of (N, C, *) input, then per-channel affine.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn import functional as F
        >>> F.group_norm(fl.ones((2, 4, 3)), 2).shape
        (2, 4, 3)
    """
    x = _t(input)
    if x.ndim < 2:
        raise ShapeError(f"group_norm: expects input of shape (N, C, *); got shape {x.shape}.")
    n, c = x.shape[0], x.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ConfigError(f"group_norm: num_channels ({c}) must be divisible by num_groups ({num_groups}).")
    g = fl.reshape(x, (n, num_groups, -1))
    mean = fl.mean(g, axis=2, keepdims=True)
    gc = g - mean
    var = fl.mean(gc * gc, axis=2, keepdims=True)
    y = fl.reshape(gc / fl.sqrt(var + eps), x.shape)
    return _affine(y, weight, bias, (c,) + (1,) * (x.ndim - 2))
