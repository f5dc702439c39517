"""Threefry-2x32 counter-mode bits from functorch_lite integer ops, as JAX computes them.

Words are native ``uint32`` Tensors, or ``int64`` Tensors holding ``[0, 2**32)``
on backends without uint32 arithmetic (torch); both give the same bits. The
public API is [`functorch_lite.random`][functorch_lite.random].
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from .. import _dtypes as D
from .._core.tensor import Tensor, wrap
from .._errors import ShapeError
from .creation import arange, zeros_like
from .dtypes import astype
from .manipulation import reshape

__all__ = ["M32", "bits32", "counter_bits", "emulated", "iota", "key_words", "tf_counts", "to_u32"]

M32 = 0xFFFFFFFF
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


_NATIVE_U32: dict[str, builtins.bool] = {}


def _probe_u32(backend: str) -> builtins.bool:
    """Whether ``backend`` does wrapping uint32 add, shifts and xor correctly."""
    from .._namespace import asarray, to_backend

    a_py, b_py = [0xFFFFFFFF, 0x80000001, 7], [2, 0xFFFFFFFF, 0x12345678]
    try:
        a = to_backend(asarray(a_py, dtype=D.uint32), backend)
        b = to_backend(asarray(b_py, dtype=D.uint32), backend)
        got = (((a + b) ^ (a << 13)) | (b >> 19)).tolist()
    except Exception:
        return False
    want = [(((x + y) & M32) ^ ((x << 13) & M32)) | (y >> 19) for x, y in zip(a_py, b_py, strict=True)]
    return [int(v) for v in got] == want


def emulated(like: Tensor) -> builtins.bool:
    """Whether words on ``like``'s backend are emulated in int64 (no uint32 arithmetic there)."""
    name = like.backend
    native = _NATIVE_U32.get(name)
    if native is None:
        native = _NATIVE_U32[name] = _probe_u32(name)
    return not native


def _add(a: Any, b: Any, emu: builtins.bool) -> Any:
    return (a + b) & M32 if emu else a + b


def _rotl(x: Any, r: int, emu: builtins.bool) -> Any:
    if emu:
        return ((x << r) & M32) | (x >> (32 - r))
    return (x << r) | (x >> (32 - r))


def _threefry2x32(k0: Any, k1: Any, x0: Any, x1: Any, emu: builtins.bool) -> tuple[Any, Any]:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), JAX's rotations and key schedule."""
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0 = _add(x0, ks[0], emu)
    x1 = _add(x1, ks[1], emu)
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = _add(x0, x1, emu)
            x1 = _rotl(x1, r, emu) ^ x0
        x0 = _add(x0, ks[(i + 1) % 3], emu)
        x1 = _add(_add(x1, ks[(i + 2) % 3], emu), i + 1, emu)
    return x0, x1


def key_words(k: Tensor, emu: builtins.bool) -> tuple[Any, Any]:
    k0, k1 = k[0], k[1]
    if emu:
        k0, k1 = astype(k0, D.int64), astype(k1, D.int64)
    return k0, k1


def iota(n: int, like: Tensor) -> Tensor:
    """``arange(n)`` (int64) on ``like``'s backend."""
    t = arange(n, dtype=D.int64)
    if t._xp is not like._xp:
        from .._namespace import to_backend

        t = to_backend(t, like.backend)
    return t


def counter_bits(k: Tensor, shape: tuple[int, ...], emu: builtins.bool) -> tuple[Any, Any]:
    """JAX's partitionable threefry: the two output words for counters (0, i), i the flat index."""
    size = math.prod(shape)
    if size >= 2**32:
        raise ShapeError(f"random: at most 2**32 - 1 values per call; got shape {shape} ({size} values).")
    lo = reshape(iota(size, k), shape)
    if not emu:
        lo = astype(lo, D.uint32)
    k0, k1 = key_words(k, emu)
    return tf_counts(k0, k1, lo, emu)


def tf_counts(k0: Any, k1: Any, lo: Any, emu: builtins.bool) -> tuple[Any, Any]:
    """threefry2x32 of the counters (hi=0, lo) under the key words (k0, k1).

    Concrete words (no transform tracing them, counters of at least one dimension) go through
    the rounds as backend arrays: the same array-API operators, about 120 of them per call, a
    Tensor dispatch fewer each (nn.Linear(64, 128) initialises about 2x faster); traced
    ones (a key under vmap or jit) as Tensors. (0-d counters stay Tensors: numpy turns 0-d
    results into scalars, whose operators warn on the wrap-around the rounds rely on.)
    """
    if (
        lo.__class__ is Tensor
        and lo._t is None
        and k0.__class__ is Tensor
        and k0._t is None
        and k1.__class__ is Tensor
        and k1._t is None
        and len(lo.shape) > 0
        and k0._xp is lo._xp
        and k1._xp is lo._xp
    ):
        xp = lo._xp
        b0, b1 = _threefry2x32(k0._a, k1._a, xp.zeros_like(lo._a), lo._a, emu)
        return wrap(b0, xp), wrap(b1, xp)
    return _threefry2x32(k0, k1, zeros_like(lo), lo, emu)


def to_u32(w: Any, emu: builtins.bool) -> Tensor:
    return astype(w, D.uint32) if emu else w


def bits32(k: Tensor, shape: tuple[int, ...]) -> tuple[Any, builtins.bool]:
    """The 32-bit random bits of JAX's ``random_bits`` (as words) and whether they are emulated."""
    emu = emulated(k)
    b0, b1 = counter_bits(k, shape, emu)
    return b0 ^ b1, emu
