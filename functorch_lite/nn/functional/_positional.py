"""Positional encodings: sinusoidal tables and rotary embeddings (RoPE).

``sinusoidal_positional_encoding`` gives the table of "Attention Is All You
Need" (sin on even features, cos on odd ones). Rotary embeddings rotate
feature pairs by position-dependent angles: ``rotary_frequencies`` gives the
cos / sin tables and ``apply_rotary_emb`` applies them, either in the
half-split layout (GPT-NeoX / LLaMA in Hugging Face: pairs (i, i + d/2)) or
interleaved (RoFormer / GPT-J: pairs (2i, 2i + 1)).
"""

from __future__ import annotations

import math
from typing import Any

from ... import _namespace as fl
from ..._core.tensor import Tensor
from ..._errors import ConfigError, ShapeError
from ._conv import _tensor

__all__ = ["sinusoidal_positional_encoding", "rotary_frequencies", "apply_rotary_emb"]


def _positions(n: int, like: Tensor | None, dtype: Any) -> Tensor:
    if like is None:
        return fl.arange(n, dtype=dtype)
    from ..._ops.creation import asarray_like

    return asarray_like(list(range(n)), like, dtype=dtype)


def sinusoidal_positional_encoding(
    seq_len: int, dim: int, base: float = 10000.0, *, dtype: Any = None, like: Tensor | None = None
) -> Tensor:
    """(seq_len, dim) table: pe[p, 2i] = sin(p / base^(2i/dim)), pe[p, 2i+1] = cos(same).

    Args:
        seq_len: number of positions.
        dim: model dimension (odd dims drop the last cosine column).
        base: the wavelength base.
        dtype: float dtype (default float dtype when None).
        like: put the table on this Tensor's backend (and dtype, unless ``dtype`` is given).

    Example:
        >>> from functorch_lite.nn.functional._positional import sinusoidal_positional_encoding
        >>> pe = sinusoidal_positional_encoding(4, 6)
        >>> pe.shape, pe[0].tolist()
        ((4, 6), [0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    """
    if dim < 1 or seq_len < 0:
        raise ConfigError(
            f"sinusoidal_positional_encoding: need dim >= 1 and seq_len >= 0; got dim={dim}, seq_len={seq_len}."
        )
    dt = dtype if dtype is not None else (like.dtype if like is not None else fl.get_default_dtype())
    half = (dim + 1) // 2
    pos = _positions(seq_len, like, dt)
    if like is None:
        inv = fl.asarray([math.exp(-math.log(base) * 2 * i / dim) for i in range(half)], dtype=dt)
    else:
        from ..._ops.creation import asarray_like

        inv = asarray_like([math.exp(-math.log(base) * 2 * i / dim) for i in range(half)], like, dtype=dt)
    ang = fl.expand_dims(pos, axis=1) * fl.expand_dims(inv, axis=0)  # (seq, half)
    pe = fl.stack([fl.sin(ang), fl.cos(ang)], axis=-1)  # (seq, half, 2): interleave sin / cos
    pe = fl.reshape(pe, (seq_len, 2 * half))
    return pe[:, :dim]


def rotary_frequencies(
    seq_len: int,
    dim: int,
    base: float = 10000.0,
    *,
    interleaved: bool = False,
    offset: int = 0,
    dtype: Any = None,
    like: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """cos and sin tables (seq_len, dim) for rotary embeddings, theta_i = base^(-2i/dim).

    Args:
        seq_len: number of positions (starting at ``offset``).
        dim: rotated feature size (even).
        interleaved: repeat each angle twice in a row (pairs (2i, 2i+1)) instead of
            concatenating the two halves (pairs (i, i + dim/2)).
        dtype / like: as [`sinusoidal_positional_encoding`][functorch_lite.nn.functional.sinusoidal_positional_encoding].

    Example:
        >>> from functorch_lite.nn.functional._positional import rotary_frequencies
        >>> cos, sin = rotary_frequencies(3, 4)
        >>> cos.shape, cos[0].tolist()
        ((3, 4), [1.0, 1.0, 1.0, 1.0])
    """
    if dim % 2 or dim < 2:
        raise ConfigError(f"rotary_frequencies: dim must be a positive even number; got {dim}.")
    dt = dtype if dtype is not None else (like.dtype if like is not None else fl.get_default_dtype())
    half = dim // 2
    pos = _positions(seq_len + offset, like, dt)[offset:]
    freqs = [base ** (-2.0 * i / dim) for i in range(half)]
    if like is None:
        inv = fl.asarray(freqs, dtype=dt)
    else:
        from ..._ops.creation import asarray_like

        inv = asarray_like(freqs, like, dtype=dt)
    ang = fl.expand_dims(pos, axis=1) * fl.expand_dims(inv, axis=0)  # (seq, half)
    if interleaved:
        ang = fl.reshape(fl.stack([ang, ang], axis=-1), (seq_len, dim))
    else:
        ang = fl.concat([ang, ang], axis=-1)
    return fl.cos(ang), fl.sin(ang)


def apply_rotary_emb(x: Any, cos: Any, sin: Any, *, interleaved: bool = False) -> Tensor:
    """Rotate feature pairs of ``x`` (..., seq, dim) by the angles of ``cos`` / ``sin`` (seq, dim).

    ``cos`` and ``sin`` may cover only the first ``rot_dim <= dim`` features (partial
    rotary); the rest pass through. They broadcast against ``x``'s leading axes.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.functional._positional import apply_rotary_emb, rotary_frequencies
        >>> cos, sin = rotary_frequencies(5, 8)
        >>> apply_rotary_emb(fl.ones((2, 4, 5, 8)), cos, sin).shape
        (2, 4, 5, 8)
    """
    x = _tensor(x, "apply_rotary_emb")
    c = _tensor(cos, "apply_rotary_emb")
    s = _tensor(sin, "apply_rotary_emb")
    rd = c.shape[-1]
    if rd > x.shape[-1] or rd % 2 or c.shape != s.shape:
        raise ShapeError(
            f"apply_rotary_emb: cos and sin must share a shape whose last axis is even and at most x's "
            f"({x.shape[-1]}); got cos {c.shape}, sin {s.shape}."
        )
    xr = x[..., :rd] if rd < x.shape[-1] else x
    if interleaved:
        pairs = fl.reshape(xr, xr.shape[:-1] + (rd // 2, 2))
        rot = fl.stack([-pairs[..., 1], pairs[..., 0]], axis=-1)  # (-x1, x0) per pair
        rot = fl.reshape(rot, xr.shape)
    else:
        h = rd // 2
        rot = fl.concat([-xr[..., h:], xr[..., :h]], axis=-1)  # rotate_half
    out = xr * c + rot * s
    if rd < x.shape[-1]:
        out = fl.concat([out, x[..., rd:]], axis=-1)
    return out
