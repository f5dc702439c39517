"""MultiheadAttention with PyTorch's parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj``)."""

from __future__ import annotations

from typing import Any

import functorch_lite as fl

from ..._errors import ConfigError
from .. import init
from .._module import Module, Parameter
from ..functional import _attention as A
from .basic import Linear, split_key

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Multi-head attention, as ``torch.nn.MultiheadAttention``.

    Parameters: ``in_proj_weight`` (3E, E) (or ``q_proj_weight`` / ``k_proj_weight`` /
    ``v_proj_weight`` when ``kdim`` or ``vdim`` differ from E), ``in_proj_bias`` (3E),
    ``out_proj.weight`` / ``out_proj.bias``, and with ``add_bias_kv`` ``bias_k`` / ``bias_v``
    (1, 1, E). PyTorch's initialisation: xavier_uniform_ projections, zero biases.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(attn_output, attn_weights or None)``. Inputs are (L, N, E), (N, L, E) with
    ``batch_first``, or unbatched (L, E). Boolean masks are True where attention is
    NOT allowed (PyTorch's convention for this module).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.MultiheadAttention(8, 2, batch_first=True)
        >>> x = fl.ones((3, 5, 8))
        >>> out, w = m(x, x, x)
        >>> out.shape, w.shape
        ((3, 5, 8), (3, 5, 5))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        for n, v in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"MultiheadAttention: {n} must be a positive int; got {v!r}.")
        if embed_dim % num_heads:
            raise ConfigError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})."
            )
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ConfigError(f"MultiheadAttention: dropout must be a probability in [0, 1]; got {dropout!r}.")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn

        def empty(*shape: int) -> Parameter:
            return Parameter(fl.empty(shape, dtype=dtype, device=device))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty(3 * embed_dim, embed_dim)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = empty(embed_dim, embed_dim)
            self.k_proj_weight = empty(embed_dim, self.kdim)
            self.v_proj_weight = empty(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = empty(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        k_lin, k_rest = split_key(key, 2)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype, key=k_lin)
        if add_bias_kv:
            self.bias_k = empty(1, 1, embed_dim)
            self.bias_v = empty(1, 1, embed_dim)
        else:
            self.bias_k = self.bias_v = None  # type: ignore[assignment]
        self._reset_parameters(key=k_rest)

    def _reset_parameters(self, *, key: Any = None) -> None:
        ks = split_key(key, 5)
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, key=ks[0])
        else:
            init.xavier_uniform_(self.q_proj_weight, key=ks[0])
            init.xavier_uniform_(self.k_proj_weight, key=ks[1])
            init.xavier_uniform_(self.v_proj_weight, key=ks[2])
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k, key=ks[3])
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v, key=ks[4])

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
        *,
        dropout_key: Any = None,
    ) -> tuple[Any, Any]:
        batched = getattr(query, "ndim", 0) == 3
        if self.batch_first and batched:
            query, key, value = (fl.permute_dims(t, (1, 0, 2)) for t in (query, key, value))
        out, w = A.multi_head_attention_forward(
            query,
            key,
            value,
            self.embed_dim,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
            dropout_key=dropout_key,
        )
        if self.batch_first and batched:
            out = fl.permute_dims(out, (1, 0, 2))
        return out, w

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
