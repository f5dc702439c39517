"""Random numbers: JAX-compatible functional keys (threefry-2x32) and a global generator.

A key is a plain ``uint32`` Tensor of shape ``(2,)``, laid out as JAX's
``jax.random.PRNGKey(seed)``. Keys are split and turned into bits by
threefry-2x32 (20 rounds) exactly as JAX does with its default
``jax_threefry_partitionable=True``, so keys and raw bits equal JAX's on every
backend; floats agree to an ulp or two. Every function is a composite of
functorch_lite ops, so it batches under ``vmap`` (map over split keys) and is
differentiable in its float parameters (``minval``, ``logits``, ...).

Under ``vmap``, a random op whose key is not batched by that ``vmap`` follows
its ``randomness`` argument: ``"error"`` raises [`RandomnessError`][functorch_lite.RandomnessError],
``"same"`` uses the key as is (one draw shared by the batch), ``"different"``
folds the batch index into the key (independent draws).

The class-based API draws keys from a global generator: ``fl.manual_seed``,
``next_key``, ``get_state`` / ``set_state``.
"""

from __future__ import annotations

import builtins
import math
import threading
from collections.abc import Sequence
from typing import Any

from . import _dtypes as D
from ._core.engine import active_traces
from ._core.tensor import Tensor
from ._errors import ConfigError, DTypeError, RandomnessError, ShapeError, TransformError
from ._ops._base import as_tensor, check_dtype, get_default_dtype
from ._ops._special import erf as _erf
from ._ops._special import erfinv as _erfinv
from ._ops._threefry import M32 as _M32
from ._ops._threefry import bits32 as _bits32
from ._ops._threefry import counter_bits as _counter_bits
from ._ops._threefry import emulated as _emulated
from ._ops._threefry import iota as _iota
from ._ops._threefry import key_words as _key_words
from ._ops._threefry import tf_counts as _tf_counts
from ._ops._threefry import to_u32 as _to_u32
from ._ops.creation import asarray_like
from ._ops.dtypes import astype, iinfo
from ._ops.elementwise import log, nextafter
from ._ops.indexing import take_along_axis
from ._ops.manipulation import broadcast_shapes, reshape, stack
from ._ops.reduction import cumulative_sum
from ._ops.searching import argmax, searchsorted, where
from ._ops.sorting import argsort

__all__ = [
    "key",
    "PRNGKey",
    "split",
    "fold_in",
    "bits",
    "uniform",
    "normal",
    "bernoulli",
    "randint",
    "permutation",
    "categorical",
    "gumbel",
    "truncated_normal",
    "choice",
    "manual_seed",
    "initial_seed",
    "next_key",
    "get_state",
    "set_state",
]


# ---------------------------------------------------------------------------------------
# Argument checks and vmap randomness
# ---------------------------------------------------------------------------------------
def _check_key(k: Any, op: str) -> Tensor:
    fix = "Make keys with fl.random.key(seed) or fl.random.split(key, n)"
    if not isinstance(k, Tensor) or k.dtype is not D.uint32:
        got = f"dtype {k.dtype.name}" if isinstance(k, Tensor) else f"a {type(k).__name__}"
        raise DTypeError(f"{op}: key must be a uint32 Tensor of shape (2,); got {got}. {fix}.")
    if k.shape != (2,):
        raise ShapeError(
            f"{op}: key must have shape (2,); got {k.shape}. {fix}; for a batch of keys, "
            "vmap over them: vmap(lambda k: ...)(keys)."
        )
    return k


def _shape_arg(shape: Any, op: str) -> tuple[int, ...]:
    if shape is None:
        return ()
    if isinstance(shape, int) and not isinstance(shape, builtins.bool):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise DTypeError(f"{op}: shape must be an int or a tuple of ints; got {shape!r}.") from None
    if builtins.any(s < 0 for s in out):
        raise ShapeError(f"{op}: shape sizes must be non-negative; got {out}.")
    return out


def _float_dtype(dtype: Any, op: str) -> D.DType:
    dt = get_default_dtype() if dtype is None else check_dtype(dtype, op)
    if dt not in (D.float32, D.float64):
        raise DTypeError(f"{op}: dtype must be float32 or float64; got {dt.name}.")
    return dt


def _batched_by(x: Tensor, trace: Any) -> builtins.bool:
    """Whether ``x`` is a tracer of ``trace`` (looking through the tracers of other transforms)."""
    p = x._t
    while p is not None:
        if p.trace is trace:
            return True
        inner = getattr(p, "val", None)
        if inner is None:
            inner = getattr(p, "primal", None)
        p = inner._t if isinstance(inner, Tensor) else None
    return False


def _check_vmap_randomness(k: Tensor, opname: str) -> Tensor:
    """The key that random op ``opname`` should use under the active vmaps.

    For every enclosing ``vmap`` that does not batch ``k``: ``randomness="error"``
    raises [`RandomnessError`][functorch_lite.RandomnessError], ``"same"`` keeps ``k``, ``"different"`` folds
    the batch index into ``k``. nn layers call this before drawing.
    """
    for tr in active_traces():
        if tr.kind != "vmap" or _batched_by(k, tr):
            continue
        mode = getattr(tr, "randomness", "error")
        if mode == "same":
            continue
        if mode == "different":
            # NOTE: a chunked vmap (chunk_size) may set ``index_offset`` on its trace so that
            # chunks fold in their global batch indices rather than 0..chunk-1 each.
            idx = _iota(tr.axis_size, k) + getattr(tr, "index_offset", 0)
            k = fold_in(k, tr.tracer(idx, 0))
            continue
        raise RandomnessError(
            f"{opname}: a random op ran under vmap(randomness='error') with a key that is the same "
            f"for every batch element ({tr!r}). Pass vmap(..., randomness='different') for "
            "independent draws per element or randomness='same' for one shared draw, or map "
            "over split keys: vmap(f)(fl.random.split(key, n))."
        )
    return k


def _prep(k: Any, op: str) -> Tensor:
    return _check_vmap_randomness(_check_key(k, op), op)


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------
def key(seed: Any) -> Tensor:
    """A PRNG key from an integer seed: JAX's ``PRNGKey(seed)`` layout, ``[seed >> 32, seed & 0xFFFFFFFF]``.

    Seeds in ``[-2**31, 2**32)`` give ``[0, seed mod 2**32]`` (as JAX by default);
    wider seeds use their 64-bit two's complement (as JAX with 64-bit mode). An
    integer Tensor seed works too (and batches under vmap).

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.key(42).tolist()
        [0, 42]
    """
    if isinstance(seed, Tensor):
        if seed.dtype.kind not in "iu" or seed.ndim != 0:
            raise DTypeError(
                f"key: a Tensor seed must be a 0-d integer Tensor; got shape {seed.shape}, dtype {seed.dtype.name}."
            )
        s = seed if seed.dtype is D.uint64 else astype(seed, D.int64)
        hi = (s >> 32) & _M32 if seed.dtype in (D.int64, D.uint64) else s * 0
        return astype(stack([hi, s & _M32]), D.uint32)
    if isinstance(seed, builtins.bool) or not isinstance(seed, int):
        try:
            seed = int(seed.__index__())
        except (AttributeError, TypeError):
            raise DTypeError(f"key: seed must be an int; got {seed!r}.") from None
    if not -(2**63) <= seed < 2**64:
        raise ConfigError(
            f"key: seed must fit in 64 bits, in [-2**63, 2**64); got {seed}. Reduce it, e.g. seed % 2**64."
        )
    hi = 0 if -(2**31) <= seed < 2**32 else (seed >> 32) & _M32  # type: ignore[assignment]
    from ._namespace import asarray

    return asarray([hi, seed & _M32], dtype=D.uint32)


PRNGKey = key


def split(key: Any, num: int | Sequence[int] = 2) -> Tensor:
    """Split a key into ``num`` new keys (shape ``(num, 2)``; a tuple ``num`` gives ``(*num, 2)``).

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.split(fl.random.key(0), 3).shape
        (3, 2)
    """
    k = _check_key(key, "split")
    shape = _shape_arg(num, "split")
    emu = _emulated(k)
    b0, b1 = _counter_bits(k, shape, emu)
    return _to_u32(stack([b0, b1], axis=-1), emu)


def fold_in(key: Any, data: Any) -> Tensor:
    """A new key from ``key`` and an integer ``data`` (an int Tensor gives one key per element).

    Example:
        >>> import functorch_lite as fl
        >>> k = fl.random.key(0)
        >>> bool(fl.all(fl.random.fold_in(k, 1) == fl.random.split(k, 2)[1]))
        True
    """
    k = _check_key(key, "fold_in")
    emu = _emulated(k)
    if isinstance(data, Tensor):
        if data.dtype.kind not in "iu":
            raise DTypeError(f"fold_in: data must be an integer; got dtype {data.dtype.name}. Cast it with astype.")
        d = astype(data, D.int64) & _M32 if data.dtype.kind == "i" else astype(data & _M32, D.int64)
    elif isinstance(data, int) and not isinstance(data, builtins.bool):
        d = asarray_like(data & _M32, k, dtype=D.int64)
    else:
        raise DTypeError(f"fold_in: data must be an int or an integer Tensor; got {data!r}.")
    if not emu:
        d = astype(d, D.uint32)
    k0, k1 = _key_words(k, emu)
    b0, b1 = _tf_counts(k0, k1, d, emu)
    return _to_u32(stack([b0, b1], axis=-1), emu)


# ---------------------------------------------------------------------------------------
# Bits and floats
# ---------------------------------------------------------------------------------------
def bits(key: Any, shape: Any = (), dtype: Any = None) -> Tensor:
    """Raw random bits (JAX's ``random_bits``): uint32 by default; uint8, uint16, uint64 too.

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.bits(fl.random.key(0), (2,)).dtype
        functorch_lite.uint32
    """
    k = _prep(key, "bits")
    shape = _shape_arg(shape, "bits")
    dt = D.uint32 if dtype is None else check_dtype(dtype, "bits")
    if dt not in (D.uint8, D.uint16, D.uint32, D.uint64):
        raise DTypeError(f"bits: dtype must be an unsigned integer dtype (uint8..uint64); got {dt.name}.")
    if dt is D.uint64:
        emu = _emulated(k)
        b0, b1 = _counter_bits(k, shape, emu)
        return (astype(b0, D.uint64) << 32) | astype(b1, D.uint64)
    w, emu = _bits32(k, shape)
    if dt is D.uint32:
        return _to_u32(w, emu)
    return astype(w & (0xFF if dt is D.uint8 else 0xFFFF), dt)


def _unit(k: Tensor, shape: tuple[int, ...], dt: D.DType) -> Tensor:
    """Uniform in [0, 1) by JAX's mantissa trick; exact, so equal bits on every backend."""
    if dt is D.float32:
        w, _ = _bits32(k, shape)
        # (1 + (w >> 9) * 2**-23) - 1: a float32 made from 23 random mantissa bits.
        return astype(w >> 9, D.float32) * 2.0**-23
    emu = _emulated(k)
    b0, b1 = _counter_bits(k, shape, emu)
    # 64 bits (b0 << 32 | b1) >> 12: 52 mantissa bits, b0 * 2**-32 + (b1 >> 12) * 2**-52.
    return astype(b0, D.float64) * 2.0**-32 + astype(b1 >> 12, D.float64) * 2.0**-52


def _as_dtype(v: Any, dt: D.DType, like: Tensor, op: str) -> Tensor:
    if isinstance(v, Tensor):
        return v if v.dtype is dt else astype(v, dt)
    if isinstance(v, (int, float)) and not isinstance(v, builtins.bool):
        return asarray_like(float(v), like, dtype=dt)
    t = as_tensor(v, op)
    return astype(t, dt)


def _uniform(k: Tensor, shape: tuple[int, ...], dt: D.DType, minval: Any, maxval: Any) -> Tensor:
    lo = _as_dtype(minval, dt, k, "uniform")
    hi = _as_dtype(maxval, dt, k, "uniform")
    u = _unit(k, shape, dt)
    from ._ops.elementwise import maximum

    return maximum(lo, u * (hi - lo) + lo)


def uniform(key: Any, shape: Any = (), dtype: Any = None, minval: Any = 0.0, maxval: Any = 1.0) -> Tensor:
    """Uniform floats in ``[minval, maxval)`` (float32 unless the default dtype or ``dtype`` says otherwise).

    Example:
        >>> import functorch_lite as fl
        >>> u = fl.random.uniform(fl.random.key(0), (1000,))
        >>> bool(fl.all((u >= 0) & (u < 1)))
        True
    """
    k = _prep(key, "uniform")
    return _uniform(k, _shape_arg(shape, "uniform"), _float_dtype(dtype, "uniform"), minval, maxval)


def _normal(k: Tensor, shape: tuple[int, ...], dt: D.DType) -> Tensor:
    lo = -1.0 + (2.0**-24 if dt is D.float32 else 2.0**-53)  # nextafter(-1, 0) in dt
    u = _uniform(k, shape, dt, lo, 1.0)
    return _erfinv(u) * math.sqrt(2.0)


def normal(key: Any, shape: Any = (), dtype: Any = None) -> Tensor:
    """Standard normal samples (JAX's algorithm: ``sqrt(2) * erfinv(uniform(-1, 1))``).

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.normal(fl.random.key(0), (2, 3)).shape
        (2, 3)
    """
    k = _prep(key, "normal")
    return _normal(k, _shape_arg(shape, "normal"), _float_dtype(dtype, "normal"))


def truncated_normal(key: Any, lower: Any, upper: Any, shape: Any = None, dtype: Any = None) -> Tensor:
    """Standard normal samples truncated to ``(lower, upper)`` (inverse-CDF method, as JAX).

    Example:
        >>> import functorch_lite as fl
        >>> x = fl.random.truncated_normal(fl.random.key(0), -1.0, 1.0, (100,))
        >>> bool(fl.all(fl.abs(x) < 1.0))
        True
    """
    from ._ops.clip import clip
    from .transforms import stop_gradient

    k = _prep(key, "truncated_normal")
    dt = _float_dtype(dtype, "truncated_normal")
    lo = _as_dtype(lower, dt, k, "truncated_normal")
    hi = _as_dtype(upper, dt, k, "truncated_normal")
    shape = broadcast_shapes(lo.shape, hi.shape) if shape is None else _shape_arg(shape, "truncated_normal")
    r2 = math.sqrt(2.0)
    a, b = _erf(lo / r2), _erf(hi / r2)
    out = _erfinv(_uniform(k, shape, dt, a, b)) * r2
    lo_s, hi_s = stop_gradient(lo), stop_gradient(hi)
    return clip(out, nextafter(lo_s, math.inf), nextafter(hi_s, -math.inf))


def bernoulli(key: Any, p: Any = 0.5, shape: Any = None) -> Tensor:
    """Booleans that are True with probability ``p`` (``uniform < p``, as JAX).

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.bernoulli(fl.random.key(0), 0.5, (4,)).dtype
        functorch_lite.bool
    """
    k = _prep(key, "bernoulli")
    pt = p if isinstance(p, Tensor) else _as_dtype(p, get_default_dtype(), k, "bernoulli")
    if pt.dtype.kind != "f":
        pt = astype(pt, get_default_dtype())
    shape = pt.shape if shape is None else _shape_arg(shape, "bernoulli")
    return _unit(k, shape, pt.dtype) < pt


def gumbel(key: Any, shape: Any = (), dtype: Any = None) -> Tensor:
    """Standard Gumbel samples: ``-log(-log(uniform(tiny, 1)))``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.gumbel(fl.random.key(0), (3,)).shape
        (3,)
    """
    k = _prep(key, "gumbel")
    return _gumbel(k, _shape_arg(shape, "gumbel"), _float_dtype(dtype, "gumbel"))


def _gumbel(k: Tensor, shape: tuple[int, ...], dt: D.DType) -> Tensor:
    from ._ops.dtypes import finfo

    return -log(-log(_uniform(k, shape, dt, finfo(dt).smallest_normal, 1.0)))


def categorical(key: Any, logits: Any, axis: int = -1, shape: Any = None) -> Tensor:
    """Samples of category indices with unnormalised log-probabilities ``logits`` (Gumbel-max).

    Example:
        >>> import functorch_lite as fl
        >>> int(fl.random.categorical(fl.random.key(0), fl.asarray([-1e9, 0.0, -1e9])))
        1
    """
    from ._ops._base import normalize_axis

    k = _prep(key, "categorical")
    lg = as_tensor(logits, "categorical")
    if lg.dtype.kind != "f":
        lg = astype(lg, get_default_dtype())
    ax = normalize_axis(axis, lg.ndim, "categorical")
    batch = lg.shape[:ax] + lg.shape[ax + 1 :]
    shape = batch if shape is None else _shape_arg(shape, "categorical")
    if (
        len(shape) < len(batch)
        or broadcast_shapes(shape[len(shape) - len(batch) :], batch) != shape[len(shape) - len(batch) :]
    ):
        raise ShapeError(f"categorical: shape {shape} must end with the logits' batch shape {batch}.")
    prefix = shape[: len(shape) - len(batch)]
    full = list(shape[len(prefix) :])
    full.insert(ax, lg.shape[ax])
    g = _gumbel(k, tuple(prefix) + tuple(full), lg.dtype)
    return argmax(g + reshape(lg, (1,) * len(prefix) + lg.shape), axis=len(prefix) + ax)


# ---------------------------------------------------------------------------------------
# Integers
# ---------------------------------------------------------------------------------------
def _int_bound(v: Any, k: Tensor, op: str) -> Tensor:
    if isinstance(v, Tensor):
        if v.dtype.kind not in "iu":
            v = astype(v, D.int64)
        return astype(v, D.int64) if v.dtype is not D.int64 else v
    if isinstance(v, (int, float)) and not isinstance(v, builtins.bool):
        return asarray_like(int(v), k, dtype=D.int64)
    return astype(as_tensor(v, op), D.int64)


def randint(key: Any, shape: Any, minval: Any, maxval: Any, dtype: Any = None) -> Tensor:
    """Integers uniform in ``[minval, maxval)`` (JAX's algorithm; dtype int64 unless given).

    Bits equal JAX's for dtypes up to 32 bits (JAX's default) and, for int64, JAX in
    64-bit mode whenever ``maxval - minval <= 2**31`` (any span where the backend has
    uint64 arithmetic).

    Example:
        >>> import functorch_lite as fl
        >>> r = fl.random.randint(fl.random.key(0), (100,), 0, 10)
        >>> bool(fl.all((r >= 0) & (r < 10)))
        True
    """
    from ._ops.clip import clip

    k = _prep(key, "randint")
    shape = _shape_arg(shape, "randint")
    dt = D.int64 if dtype is None else check_dtype(dtype, "randint")
    if dt.kind not in "iu":
        raise DTypeError(f"randint: dtype must be an integer dtype; got {dt.name}.")
    lo = _int_bound(minval, k, "randint")
    hi = _int_bound(maxval, k, "randint")
    info = iinfo(dt)
    if info.bits < 32:  # JAX samples 8- and 16-bit dtypes as int32 (less bias), then casts
        lo = clip(lo, info.min, info.max)
        hi = clip(hi, info.min, info.max + 1)
        return astype(_randint(k, shape, lo, hi, D.int32), dt)
    return _randint(k, shape, lo, hi, dt)


def _randint(k: Tensor, shape: tuple[int, ...], lo: Tensor, hi: Tensor, dt: D.DType) -> Tensor:
    from ._ops.clip import clip

    info = iinfo(dt)
    nbits = info.bits
    dmax = builtins.min(info.max, 2**63 - 1)
    hi_out = hi > dmax
    lo = clip(lo, builtins.max(info.min, -(2**63)), dmax)
    hi = clip(hi, builtins.max(info.min, -(2**63)), dmax)
    ks = split(k)
    k1, k2 = ks[0], ks[1]
    if nbits == 64:
        return _randint64(k1, k2, shape, lo, hi, hi_out, dt)
    # JAX's algorithm in nbits-bit unsigned arithmetic, emulated in int64 with a mask (a wrapped
    # int64 product keeps its low bits). XLA's x % 0 is x: span 0 stands for 2**nbits.
    mask = (1 << nbits) - 1
    hb = astype(_bits32(k1, shape)[0], D.int64) & mask
    lb = astype(_bits32(k2, shape)[0], D.int64) & mask
    span = where(hi <= lo, 1, (hi - lo) & mask)
    span = where(hi_out & (hi > lo), (span + 1) & mask, span)
    full = span == 0
    safe = where(full, 1, span)

    def urem(x: Any) -> Any:
        return where(full, x, x % safe)

    mult = urem(asarray_like(1 << (nbits // 2), k, dtype=D.int64))
    mult = urem((mult * mult) & mask)
    off = urem((((urem(hb) * mult) & mask) + urem(lb)) & mask)
    return astype(lo + off, dt)


def _randint64(
    k1: Tensor, k2: Tensor, shape: tuple[int, ...], lo: Tensor, hi: Tensor, hi_out: Tensor, dt: D.DType
) -> Tensor:
    """JAX's 64-bit randint (``jax_enable_x64``) with 64-bit words as two 32-bit halves."""
    emu = _emulated(k1)
    a0, a1 = _counter_bits(k1, shape, emu)
    c0, c1 = _counter_bits(k2, shape, emu)
    span = where(hi <= lo, 1, hi - lo)
    span = where(hi_out & (hi > lo), span + 1, span)
    # NOTE: 64-bit words are kept as 32-bit halves in int64: x mod s = (h * (2**32 mod s) + l) mod s,
    # exact while s <= 2**31, where no product reaches 2**63 (JAX's uint64 math then agrees).
    t32 = (2**32) % span
    h1, l1 = astype(a0, D.int64), astype(a1, D.int64)
    h2, l2 = astype(c0, D.int64), astype(c1, D.int64)
    hb = (((h1 % span) * t32) + (l1 % span)) % span
    lb = (((h2 % span) * t32) + (l2 % span)) % span
    mult = (t32 * t32) % span
    off = ((hb * mult) + lb) % span
    return astype(lo + off, dt)


def permutation(key: Any, x: Any, axis: int = 0, independent: builtins.bool = False) -> Tensor:
    """A random permutation of ``arange(x)`` (int ``x``) or of ``x`` along ``axis`` (sorts random bits, as JAX).

    Example:
        >>> import functorch_lite as fl
        >>> sorted(fl.random.permutation(fl.random.key(0), 5).tolist())
        [0, 1, 2, 3, 4]
    """
    from ._ops._base import normalize_axis

    k = _prep(key, "permutation")
    if isinstance(x, int) and not isinstance(x, builtins.bool):
        return _shuffle(k, _iota(x, k), 0)
    t = as_tensor(x, "permutation")
    if t.ndim == 0:
        if t.dtype.kind not in "iu":
            raise DTypeError(
                f"permutation: x must be an int or an array of at least one dimension; got a 0-d {t.dtype.name} Tensor."
            )
        return _shuffle(k, _iota(int(t), k), 0)
    ax = normalize_axis(axis, t.ndim, "permutation")
    if independent or t.ndim == 1:
        return _shuffle(k, t, ax)
    return _take_axis(t, _shuffle(k, _iota(t.shape[ax], k), 0), ax)


def _take_axis(x: Tensor, idx: Tensor, axis: int) -> Tensor:
    """``take(x, idx, axis=axis)`` for 1-d ``idx``, as a broadcast take_along_axis (which
    array_api_strict can index: it refuses slices mixed with integer arrays)."""
    shape = [1] * x.ndim
    shape[axis] = idx.shape[0]
    return take_along_axis(x, reshape(idx, tuple(shape)), axis=axis)


def _shuffle(k: Tensor, x: Tensor, axis: int) -> Tensor:
    n = x.size
    rounds = math.ceil(3 * math.log(builtins.max(1, n)) / math.log(_M32))
    for _ in range(rounds):
        ks = split(k)
        k, sub = ks[0], ks[1]
        w, emu = _bits32(sub, x.shape)
        order = argsort(w, axis=axis, stable=True)
        x = take_along_axis(x, order, axis=axis)
    return x


def choice(key: Any, a: Any, shape: Any = (), replace: builtins.bool = True, p: Any = None, axis: int = 0) -> Tensor:
    """Random samples of ``a`` (or of ``arange(a)`` for an int), as JAX's ``choice``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.choice(fl.random.key(0), 5, (3,), replace=False).shape
        (3,)
    """
    from ._ops._base import normalize_axis

    k = _prep(key, "choice")
    shape = _shape_arg(shape, "choice")
    scalar = isinstance(a, int) and not isinstance(a, builtins.bool)
    arr = None if scalar else as_tensor(a, "choice")
    if arr is not None and arr.ndim == 0:
        scalar, a, arr = True, int(arr), None
    ax = 0 if arr is None else normalize_axis(axis, arr.ndim, "choice")
    n = a if arr is None else arr.shape[ax]
    draws = math.prod(shape)
    if n <= 0 and draws:
        raise ShapeError(f"choice: a must be positive unless no samples are taken; got {n}.")
    if not replace and draws > n:
        raise ShapeError(
            f"choice: cannot take {draws} samples from {n} without replacement; pass replace=True or fewer samples."
        )
    if p is None:
        if replace:
            ind = randint(k, shape, 0, n)
        else:
            ind = reshape(_shuffle(k, _iota(n, k), 0)[:draws], shape)
    else:
        pa = as_tensor(p, "choice")
        if pa.dtype.kind != "f":
            pa = astype(pa, get_default_dtype())
        if pa.shape != (n,):
            raise ShapeError(f"choice: p must have shape ({n},); got {pa.shape}.")
        if replace:
            cum = cumulative_sum(pa)
            r = cum[-1] * (1.0 - _unit(k, shape, pa.dtype))
            ind = reshape(searchsorted(cum, reshape(r, (-1,))), shape)
        else:
            g = _gumbel(k, (n,), pa.dtype) + log(pa)
            ind = reshape(argsort(g, descending=True, stable=True)[:draws], shape)
    if arr is None:
        return ind
    flat = reshape(ind, (-1,))
    r = _take_axis(arr, flat, ax)
    return reshape(r, arr.shape[:ax] + shape + arr.shape[ax + 1 :])


# ---------------------------------------------------------------------------------------
# The global generator (class-based API: nn.Dropout, nn.init, DataLoader shuffling)
# ---------------------------------------------------------------------------------------
class _Global:
    """The global generator: its seed and key, shared by every thread, except while a thread
    stages a program (``jit``'s tracing, a control-flow body, ``fl.export``): then that thread
    reads and writes a key of its own (``stage`` ... ``unstage``), the program's traced key.
    Other threads keep the real one: a DataLoader's prefetch thread that draws a shuffle seed
    meanwhile never sees the tracer, and cannot leave one behind as the global key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seed = 0
        self._key: Tensor | None = None
        self._local = threading.local()  # .keys: this thread's staged keys, innermost last

    @property
    def key(self) -> Tensor | None:
        staged = self._local.__dict__.get("keys")
        return staged[-1] if staged else self._key

    @key.setter
    def key(self, value: Tensor | None) -> None:
        staged = self._local.__dict__.get("keys")
        if staged:
            staged[-1] = value
        else:
            self._key = value

    def stage(self, value: Tensor | None) -> int:
        """From now on this thread's draws read and advance ``value``, not the global key;
        returns the depth that `unstage` takes back to."""
        keys = self._local.__dict__.setdefault("keys", [])
        keys.append(value)
        return len(keys) - 1

    def unstage(self, depth: int) -> None:
        """End the staging `stage` returned ``depth`` for (and any inside it)."""
        keys = self._local.__dict__.get("keys")
        if keys is not None:
            del keys[depth:]


_GLOBAL = _Global()


def manual_seed(seed: int) -> None:
    """Seed the global generator that ``next_key`` (and the class-based API) draws from.

    Example:
        >>> import functorch_lite as fl
        >>> fl.manual_seed(0); a = fl.random.next_key()
        >>> fl.manual_seed(0); bool(fl.all(fl.random.next_key() == a))
        True
    """
    k = key(seed)
    with _GLOBAL.lock:
        _GLOBAL.seed = int(seed)
        _GLOBAL.key = k


def initial_seed() -> int:
    """The seed last given to ``manual_seed`` (0 before any).

    Example:
        >>> import functorch_lite as fl
        >>> fl.manual_seed(7); fl.random.initial_seed()
        7
    """
    return _GLOBAL.seed


def next_key() -> Tensor:
    """A fresh key from the global generator (thread-safe; advances the global state).

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.next_key().shape
        (2,)
    """
    with _GLOBAL.lock:
        k = _GLOBAL.key
        if k is None:
            k = key(_GLOBAL.seed)
        ks = split(k)
        _GLOBAL.key = ks[0]
        return ks[1]


def get_state() -> Tensor:
    """The global generator's current key (pass it to ``set_state`` to restore).

    Example:
        >>> import functorch_lite as fl
        >>> s = fl.random.get_state(); a = fl.random.next_key()
        >>> fl.random.set_state(s); bool(fl.all(fl.random.next_key() == a))
        True
    """
    with _GLOBAL.lock:
        if _GLOBAL.key is None:
            _GLOBAL.key = key(_GLOBAL.seed)
        return _GLOBAL.key


def set_state(state: Any) -> None:
    """Restore the global generator's key (a uint32 Tensor of shape (2,) from ``get_state``).

    Example:
        >>> import functorch_lite as fl
        >>> fl.random.set_state(fl.random.key(3))
    """
    k = _check_key(state, "set_state")
    if k.is_tracer:
        raise TransformError(
            "set_state: the state must be a concrete key, not a value traced inside a transform; call it outside."
        )
    with _GLOBAL.lock:
        _GLOBAL.key = k
