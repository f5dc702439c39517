"""Transformer blocks (PyTorch's names and layouts) and positional-encoding modules.

``TransformerEncoderLayer`` / ``TransformerDecoderLayer`` hold the same
submodules as PyTorch's (``self_attn``, ``multihead_attn``, ``linear1``,
``linear2``, ``norm1``..``norm3``, ``dropout``..``dropout3``), so state_dicts
interchange; ``norm_first`` and ``activation`` ("relu", "gelu" or a callable)
behave as in PyTorch. ``TransformerEncoder`` / ``TransformerDecoder`` stack deep
copies of one layer, as PyTorch does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..._errors import ConfigError
from .._containers import ModuleList
from .._module import Module
from ..functional import _positional as PE
from .attention import MultiheadAttention
from .basic import Dropout, Linear, split_key
from .norm import LayerNorm

__all__ = [
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
    "SinusoidalPositionalEncoding",
    "RotaryEmbedding",
]


def _activation(activation: str | Callable[[Any], Any], layer: str) -> Callable[[Any], Any]:
    from .. import functional as F

    if callable(activation):
        return activation
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise ConfigError(f"{layer}: activation must be 'relu', 'gelu' or a callable; got {activation!r}.")


class _TransformerLayer(Module):
    """What the encoder and decoder layers share: their submodules (in PyTorch's order) and blocks.

    ``_n_attention`` attention blocks (self-attention, then cross-attention in the decoder),
    a feed-forward block, and one LayerNorm and one Dropout per block (``norm1``.., ``dropout1``..).
    """

    _n_attention = 1

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Any], Any] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        n = self._n_attention
        ks = split_key(key, n + 2)
        dd = {"device": device, "dtype": dtype}
        for name, k in zip(("self_attn", "multihead_attn")[:n], ks, strict=False):
            setattr(
                self,
                name,
                MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, key=k, **dd),
            )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, key=ks[n], **dd)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, key=ks[n + 1], **dd)
        self.norm_first = norm_first
        for i in range(1, n + 2):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **dd))
        for i in range(1, n + 2):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(activation, type(self).__name__)
        self.batch_first = batch_first

    def _sa_block(self, x: Any, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Any:
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: Any) -> Any:
        last_dropout = getattr(self, f"dropout{self._n_attention + 1}")
        return last_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention + feed-forward block, as ``torch.nn.TransformerEncoderLayer``.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``;
    masks follow MultiheadAttention (boolean True = not allowed). With
    ``is_causal=True`` and no ``src_mask`` a causal mask is built.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        >>> layer(fl.ones((3, 5, 8))).shape
        (3, 5, 8)
    """

    def forward(self, src: Any, src_mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool = False) -> Any:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerDecoderLayer(_TransformerLayer):
    """Self-attention + cross-attention + feed-forward block, as ``torch.nn.TransformerDecoderLayer``.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
        >>> layer(fl.ones((4, 3, 8)), fl.ones((6, 3, 8))).shape
        (4, 3, 8)
    """

    _n_attention = 2

    def _mha_block(self, x: Any, mem: Any, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Any:
        x = self.multihead_attn(
            x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout2(x)

    def forward(
        self,
        tgt: Any,
        memory: Any,
        tgt_mask: Any = None,
        memory_mask: Any = None,
        tgt_key_padding_mask: Any = None,
        memory_key_padding_mask: Any = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Any:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x


def _clones(layer: Module, n: int, name: str) -> ModuleList:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"{name}: num_layers must be a positive int; got {n!r}.")
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of an encoder layer (+ optional final ``norm``).

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), num_layers=2)
        >>> [n for n, _ in enc.named_parameters()][0], enc(fl.ones((5, 2, 8))).shape
        ('layers.0.self_attn.in_proj_weight', (5, 2, 8))
    """

    def __init__(
        self,
        encoder_layer: Module,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self, src: Any, mask: Any = None, src_key_padding_mask: Any = None, is_causal: bool | None = None
    ) -> Any:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        if self.norm is not None:
            x = self.norm(x)
        return x


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of a decoder layer (+ optional final ``norm``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), num_layers=2)
        >>> dec(fl.ones((4, 2, 8)), fl.ones((6, 2, 8))).shape
        (4, 2, 8)
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = num_layers
        self.norm = norm

    # torch's forward signature, spelled out here as in TransformerDecoderLayer (inspect.signature, mypy).
    def forward(
        self,
        tgt: Any,
        memory: Any,
        tgt_mask: Any = None,
        memory_mask: Any = None,
        tgt_key_padding_mask: Any = None,
        memory_key_padding_mask: Any = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Any:
        x = tgt
        for layer in self.layers:
            x = layer(
                x,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal),
                memory_is_causal=memory_is_causal,
            )
        if self.norm is not None:
            x = self.norm(x)
        return x


class SinusoidalPositionalEncoding(Module):
    """Adds the sinusoidal table of "Attention Is All You Need" to (seq, batch, d) or (batch, seq, d) input.

    No parameters or buffers (the table is computed for each call's length), then
    dropout (PyTorch tutorial's ``PositionalEncoding``).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> pe = nn.SinusoidalPositionalEncoding(8, dropout=0.0, batch_first=True)
        >>> pe(fl.zeros((2, 5, 8)))[0, 0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    """

    def __init__(
        self, d_model: int, dropout: float = 0.1, max_len: int = 5000, base: float = 10000.0, batch_first: bool = False
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.base = base
        self.batch_first = batch_first
        self.dropout = Dropout(dropout)

    def forward(self, x: Any) -> Any:
        import functorch_lite as fl

        seq_axis = 1 if (self.batch_first and x.ndim == 3) else 0
        n = x.shape[seq_axis]
        if n > self.max_len:
            raise ConfigError(f"SinusoidalPositionalEncoding: sequence length {n} exceeds max_len={self.max_len}.")
        pe = PE.sinusoidal_positional_encoding(n, self.d_model, self.base, like=x)
        if seq_axis == 0 and x.ndim == 3:
            pe = fl.expand_dims(pe, axis=1)  # (seq, 1, d) against (seq, batch, d)
        return self.dropout(x + pe)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class RotaryEmbedding(Module):
    """Rotary position embedding (RoPE) applied to (..., seq, dim) queries or keys.

    Args:
        dim: number of rotated features (even; may be smaller than the input's last axis).
        base: angle base (10000).
        interleaved: pairs (2i, 2i+1) (RoFormer, GPT-J) instead of (i, i + dim/2)
            (GPT-NeoX, LLaMA in Hugging Face).

    ``forward(x, offset=0)`` rotates positions ``offset .. offset + seq - 1``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> rope = nn.RotaryEmbedding(8)
        >>> rope(fl.ones((2, 4, 5, 8))).shape
        (2, 4, 5, 8)
    """

    def __init__(self, dim: int, base: float = 10000.0, interleaved: bool = False) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ConfigError(f"RotaryEmbedding: dim must be a positive even int; got {dim!r}.")
        self.dim = dim
        self.base = base
        self.interleaved = interleaved

    def forward(self, x: Any, offset: int = 0) -> Any:
        cos, sin = PE.rotary_frequencies(
            x.shape[-2], self.dim, self.base, interleaved=self.interleaved, offset=offset, like=x
        )
        return PE.apply_rotary_emb(x, cos, sin, interleaved=self.interleaved)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base}, interleaved={self.interleaved}"
