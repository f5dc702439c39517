"""Attention: ``scaled_dot_product_attention`` and ``multi_head_attention_forward`` (PyTorch's semantics).

Mask conventions follow PyTorch, and they differ between the two functions:
in ``scaled_dot_product_attention`` a boolean ``attn_mask`` is True where a
query MAY attend; in ``multi_head_attention_forward`` (and
``nn.MultiheadAttention``) a boolean ``attn_mask`` or ``key_padding_mask`` is
True where attention is NOT allowed. Float masks are added to the scores in both.
Dropout on the attention weights draws from ``dropout_key`` (a
``functorch_lite.random`` key; the global generator when None) - the argument
is not called ``key`` because ``key`` is the key tensor.
"""

from __future__ import annotations

import math
from typing import Any

from ... import _namespace as fl
from ..._core.tensor import Tensor
from ..._errors import ConfigError, DTypeError, ShapeError
from ._conv import _tensor
from ._positional import apply_rotary_emb, rotary_frequencies, sinusoidal_positional_encoding

# The positional encodings ride along here so that nn.functional re-exports them.
__all__ = [
    "scaled_dot_product_attention",
    "multi_head_attention_forward",
    "causal_mask",
    "sinusoidal_positional_encoding",
    "rotary_frequencies",
    "apply_rotary_emb",
]


def causal_mask(q_len: int, k_len: int, like: Tensor | None = None) -> Tensor:
    """Boolean (q_len, k_len) mask, True on and below the diagonal (PyTorch's ``is_causal``: top-left aligned).

    Example:
        >>> from functorch_lite.nn.functional._attention import causal_mask
        >>> causal_mask(2, 3).tolist()
        [[True, False, False], [True, True, False]]
    """
    from ..._ops.indexing import _arange_like

    if like is None:
        like = fl.zeros((1,))
    i = _arange_like(q_len, like)
    j = _arange_like(k_len, like)
    return fl.expand_dims(i, axis=1) >= fl.expand_dims(j, axis=0)


def _softmax(x: Tensor) -> Tensor:
    from ._activations import softmax

    return softmax(x, dim=-1)


def _dropout(x: Tensor, p: float, key: Any) -> Tensor:
    from ._basic import dropout

    return dropout(x, p, True, key=key)


def _is_bool(t: Tensor) -> bool:
    return t.dtype.kind == "b"


def _attend(
    q: Tensor, k: Tensor, v: Tensor, mask: Any, dropout_p: float, scale: float, key: Any, bool_allows: bool
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T * scale (+ mask)) (dropout) @ v; returns (output, weights)."""
    s = fl.matmul(q * scale, fl.matrix_transpose(k))
    if mask is not None:
        if _is_bool(mask):
            allowed = mask if bool_allows else fl.logical_not(mask)
            s = fl.where(allowed, s, -math.inf)
        else:
            s = s + mask
    w = _softmax(s)
    if dropout_p > 0.0:
        w = _dropout(w, dropout_p, key)
    return fl.matmul(w, v), w


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    dropout_key: Any = None,
) -> Tensor:
    """softmax(Q K^T / sqrt(E) + mask) V over the last two axes, as PyTorch's function.

    Args:
        query: (..., L, E); key: (..., S, E); value: (..., S, Ev).
        attn_mask: broadcastable to (..., L, S); boolean (True = may attend) or
            float (added to the scores).
        dropout_p: dropout on the attention weights (always applied when > 0, as
            PyTorch; pass 0.0 in evaluation). ``dropout_key`` seeds it.
        is_causal: mask out keys after the query position (top-left aligned);
            cannot be combined with ``attn_mask``.
        scale: defaults to 1 / sqrt(E).
        enable_gqa: key/value may have fewer heads (axis -3) than query; they are repeated.

    Returns:
        (..., L, Ev).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._attention import scaled_dot_product_attention
        >>> q = fl.ones((2, 4, 5, 8))
        >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
        (2, 4, 5, 8)
    """
    op = "scaled_dot_product_attention"
    q, k, v = (_tensor(t, op) for t in (query, key, value))
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ShapeError(
            f"{op}: query, key and value need at least 2 dims (..., seq, features); got {q.shape}, {k.shape}, {v.shape}."
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(
            f"{op}: query (..., L, E) and key (..., S, E) must share E, and key and value must share S; got "
            f"query {q.shape}, key {k.shape}, value {v.shape}."
        )
    if not 0.0 <= dropout_p <= 1.0:
        raise ConfigError(f"{op}: dropout_p must be in [0, 1]; got {dropout_p!r}.")
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        hq, hk = q.shape[-3], k.shape[-3]
        if hq % hk or v.shape[-3] != hk:
            raise ShapeError(
                f"{op}: with enable_gqa the query heads ({hq}) must be a multiple of the key/value heads ({hk})."
            )
        k = fl.repeat(k, hq // hk, axis=k.ndim - 3)
        v = fl.repeat(v, hq // hk, axis=v.ndim - 3)
    mask = None
    if is_causal:
        if attn_mask is not None:
            raise ConfigError(f"{op}: give either attn_mask or is_causal=True, not both (as PyTorch).")
        mask = causal_mask(q.shape[-2], k.shape[-2], q)
    elif attn_mask is not None:
        mask = _tensor(attn_mask, op)
        if not _is_bool(mask) and mask.dtype.kind != "f":
            raise DTypeError(f"{op}: attn_mask must be boolean or floating; got {mask.dtype}.")
    sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return _attend(q, k, v, mask, dropout_p, sc, dropout_key, bool_allows=True)[0]


def _as_float_mask(m: Tensor, like: Tensor) -> Tensor:
    """PyTorch's canonical mask: boolean True (= not allowed) becomes -inf, else 0; floats pass."""
    if _is_bool(m):
        from ._conv import _full_on

        return fl.where(m, _full_on(like, (), -math.inf), _full_on(like, (), 0.0))
    return m


def _pad_last_col(m: Tensor | None) -> Tensor | None:
    """Append one zero (allowed) column to a float mask."""
    if m is None:
        return None
    from ._conv import _pad_last

    return _pad_last(m, [(0, 1)], 0.0)


def multi_head_attention_forward(
    query: Any,
    key: Any,
    value: Any,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Any,
    in_proj_bias: Any,
    bias_k: Any,
    bias_v: Any,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Any,
    out_proj_bias: Any,
    training: bool = True,
    key_padding_mask: Any = None,
    need_weights: bool = True,
    attn_mask: Any = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Any = None,
    k_proj_weight: Any = None,
    v_proj_weight: Any = None,
    static_k: Any = None,
    static_v: Any = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    *,
    dropout_key: Any = None,
) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention on sequence-first inputs, as ``torch.nn.functional.multi_head_attention_forward``.

    Args:
        query: (L, N, E) or unbatched (L, E); key, value: (S, N, Ek/Ev) or (S, Ek/Ev).
        in_proj_weight: (3E, E) packed q/k/v projection (or ``use_separate_proj_weight``
            with ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, Ek), ``v_proj_weight`` (E, Ev)).
        key_padding_mask: (N, S) (or (S,)); boolean True = ignore that key, or float added.
        attn_mask: (L, S) or (N * num_heads, L, S); boolean True = not allowed, or float added.
        is_causal: with ``attn_mask=None`` a causal mask is built (PyTorch requires the mask).
        need_weights / average_attn_weights: also return the attention weights,
            (N, L, S) averaged over heads or (N, num_heads, L, S).
        dropout_key: seeds the dropout on the weights (training only).

    Returns:
        ``(attn_output (L, N, E), attn_weights or None)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._attention import multi_head_attention_forward
        >>> x = fl.ones((5, 2, 8))
        >>> out, w = multi_head_attention_forward(x, x, x, 8, 2, fl.ones((24, 8)) * 0.1, None, None, None,
        ...                                       False, 0.0, fl.ones((8, 8)), None)
        >>> out.shape, w.shape
        ((5, 2, 8), (2, 5, 5))
    """
    op = "multi_head_attention_forward"
    q_in, k_in, v_in = (_tensor(t, op) for t in (query, key, value))
    unb = q_in.ndim == 2
    if unb:
        q_in, k_in, v_in = (fl.expand_dims(t, axis=1) for t in (q_in, k_in, v_in))
        if key_padding_mask is not None:
            key_padding_mask = fl.expand_dims(_tensor(key_padding_mask, op), axis=0)
    if q_in.ndim != 3:
        raise ShapeError(f"{op}: query must be (L, N, E) or (L, E); got shape {q_in.shape}.")
    tgt_len, bsz, e = q_in.shape
    if e != embed_dim_to_check:
        raise ShapeError(f"{op}: query has embedding size {e}; expected embed_dim={embed_dim_to_check}.")
    if e % num_heads:
        raise ConfigError(f"{op}: embed_dim {e} is not divisible by num_heads={num_heads}.")
    hd = e // num_heads
    # -- projections -----------------------------------------------------------------------------
    if use_separate_proj_weight:
        wq, wk, wv = (_tensor(w, op) for w in (q_proj_weight, k_proj_weight, v_proj_weight))
    else:
        w = _tensor(in_proj_weight, op)
        wq, wk, wv = w[:e], w[e : 2 * e], w[2 * e :]
    if in_proj_bias is not None:
        b = _tensor(in_proj_bias, op)
        bq, bk, bv = b[:e], b[e : 2 * e], b[2 * e :]
    else:
        bq = bk = bv = None  # type: ignore[assignment]

    def lin(x: Tensor, w: Tensor, b: Any) -> Tensor:
        y = fl.matmul(x, fl.matrix_transpose(w))
        return y if b is None else y + b

    q = lin(q_in, wq, bq)
    k: Any = lin(k_in, wk, bk) if static_k is None else None
    v: Any = lin(v_in, wv, bv) if static_v is None else None
    # -- masks (PyTorch: boolean True = not allowed) ------------------------------------------------
    mask = None
    if attn_mask is not None:
        mask = _tensor(attn_mask, op)
        if not _is_bool(mask) and mask.dtype.kind != "f":
            raise DTypeError(f"{op}: attn_mask must be boolean or floating; got {mask.dtype}.")
        mask = _as_float_mask(mask, q)
        if mask.ndim == 2:
            mask = fl.expand_dims(mask, axis=0)  # (1, L, S)
        elif mask.ndim != 3 or mask.shape[0] != bsz * num_heads:
            raise ShapeError(f"{op}: attn_mask must be (L, S) or (N * num_heads, L, S); got shape {mask.shape}.")
    elif is_causal:
        mask = _as_float_mask(
            fl.logical_not(
                causal_mask(tgt_len, k_in.shape[0] if static_k is None else _tensor(static_k, op).shape[1], q)
            ),
            q,
        )
        mask = fl.expand_dims(mask, axis=0)
    kpm = None
    if key_padding_mask is not None:
        kpm = _as_float_mask(_tensor(key_padding_mask, op), q)  # (N, S)
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise ConfigError(f"{op}: bias_k/bias_v cannot be combined with static_k/static_v.")
        bk_ = fl.broadcast_to(fl.reshape(_tensor(bias_k, op), (1, 1, e)), (1, bsz, e))
        bv_ = fl.broadcast_to(fl.reshape(_tensor(bias_v, op), (1, 1, e)), (1, bsz, e))
        k = fl.concat([k, bk_], axis=0)
        v = fl.concat([v, bv_], axis=0)
        mask = _pad_last_col(mask)
        kpm = _pad_last_col(kpm)
    elif (bias_k is None) != (bias_v is None):
        raise ConfigError(f"{op}: give both bias_k and bias_v, or neither.")

    # -- heads: (L, N, E) -> (N * heads, L, hd) ----------------------------------------------------
    def heads(x: Tensor) -> Tensor:
        n_len = x.shape[0]
        return fl.permute_dims(fl.reshape(x, (n_len, bsz * num_heads, hd)), (1, 0, 2))

    q = heads(q)
    k = heads(k) if static_k is None else _tensor(static_k, op)
    v = heads(v) if static_v is None else _tensor(static_v, op)
    if add_zero_attn:
        from ._conv import _full_on

        zk = _full_on(k, (bsz * num_heads, 1, hd))
        k = fl.concat([k, zk], axis=1)
        v = fl.concat([v, _full_on(v, (bsz * num_heads, 1, v.shape[-1]))], axis=1)
        mask = _pad_last_col(mask)
        kpm = _pad_last_col(kpm)
    src_len = k.shape[1]
    if kpm is not None:
        if kpm.shape != (bsz, src_len):
            raise ShapeError(f"{op}: key_padding_mask must be (N, S) = {(bsz, src_len)}; got {kpm.shape}.")
        kpm_h = fl.reshape(
            fl.broadcast_to(fl.reshape(kpm, (bsz, 1, 1, src_len)), (bsz, num_heads, 1, src_len)),
            (bsz * num_heads, 1, src_len),
        )
        mask = kpm_h if mask is None else mask + kpm_h
    p = dropout_p if training else 0.0
    out, w = _attend(q, k, v, mask, p, 1.0 / math.sqrt(hd), dropout_key, bool_allows=False)
    # (N * heads, L, hd) -> (L, N, E) -> out projection
    out = fl.reshape(fl.permute_dims(out, (1, 0, 2)), (tgt_len, bsz, e))
    out = lin(out, _tensor(out_proj_weight, op), out_proj_bias)
    weights = None
    if need_weights:
        weights = fl.reshape(w, (bsz, num_heads, tgt_len, src_len))
        if average_attn_weights:
            weights = fl.mean(weights, axis=1)
        if unb:
            weights = weights[0]
    if unb:
        out = out[:, 0]
    return out, weights
