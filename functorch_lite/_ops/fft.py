"""The ``fft`` extension: three linear primitives (c2c, r2c, c2r) over n-d transforms.

Every transform is linear, so its jvp applies the op to the tangent and its
vjp is the transpose under the real pairing ``<a, b> = Re sum(a * b)`` (no
conjugation, as in JAX). The DFT matrix is symmetric, so:

* c2c (``fftn`` / ``ifftn``): the transpose is the same transform, same norm;
  padding / cropping to ``s`` transposes to cropping / zero-padding back.
* r2c (``rfftn``): keeps the first ``n//2+1`` bins of the full transform; its
  transpose zero-pads the cotangent to ``n`` bins, applies ``fftn`` and takes
  the real part.
* c2r (``irfftn``): ``x = c Re(sum_k w_k Y_k e^{+2pi i jk/n})`` with Hermitian
  weights ``w = 1, 2, ..., 2, (1 if n even)`` on the halved axis; its transpose
  is ``w * conj(rfftn(g, norm=dual(norm)))`` (``dual`` swaps 'backward' and
  'forward').
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from .._core.tensor import Tensor, backend_for, wrap
from ._base import Primitive, bind
from ._rules import move_bdim_to_front
from .elementwise import conj, real
from .manipulation import concat

__all__ = ["fftn_p", "rfftn_p", "irfftn_p", "c2c", "r2c", "c2r", "resize"]

_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def resize(x: Any, axes: Sequence[int], sizes: Sequence[int]) -> Any:
    """Crop or zero-pad ``x`` (at the end) along each axis to the given size."""
    for a, n in zip(axes, sizes, strict=True):
        cur = x.shape[a]
        if cur > n:
            x = x[(slice(None),) * a + (slice(0, n), ...)]
        elif cur < n:
            shape = x.shape[:a] + (n - cur,) + x.shape[a + 1 :]
            xp = x._xp
            z = wrap(xp.zeros(shape, dtype=backend_for(xp).native(x.dtype)), xp)
            x = concat([x, z], axis=a)
    return x


def _batch(prim: Primitive) -> None:
    def rule(n: int, vals: Any, dims: Any, *, axes: tuple[int, ...], **p: Any) -> Any:
        x = move_bdim_to_front(vals[0], dims[0])
        return bind(prim, (x,), dict(p, axes=tuple(a + 1 for a in axes))), 0

    prim.batch = rule


# -- complex to complex --------------------------------------------------------------------
def _c2c_impl(xp: Any, x: Any, *, inverse: builtins.bool, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Any:
    return (xp.fft.ifftn if inverse else xp.fft.fftn)(x, s=s, axes=axes, norm=norm)


fftn_p = Primitive("fft.c2c", _c2c_impl)
fftn_p.jvp = lambda ts, out, x, **p: bind(fftn_p, (ts[0],), p)
fftn_p.vjp = lambda g, out, x, **p: (lambda: resize(bind(fftn_p, (g,), p), p["axes"], [x.shape[a] for a in p["axes"]]),)
_batch(fftn_p)


def c2c(x: Tensor, s: tuple[int, ...], axes: tuple[int, ...], norm: str, inverse: builtins.bool) -> Tensor:
    return bind(fftn_p, (x,), {"inverse": inverse, "s": s, "axes": axes, "norm": norm})


# -- real to complex -----------------------------------------------------------------------
def _r2c_impl(xp: Any, x: Any, *, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Any:
    return xp.fft.rfftn(x, s=s, axes=axes, norm=norm)


rfftn_p = Primitive("fft.r2c", _r2c_impl)
rfftn_p.jvp = lambda ts, out, x, **p: bind(rfftn_p, (ts[0],), p)


def _r2c_vjp(g: Any, out: Any, x: Any, *, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Any:
    def ct() -> Any:
        full = resize(g, axes[-1:], s[-1:])  # zero-pad the halved axis to n bins
        y = real(c2c(full, s, axes, norm, False))
        return resize(y, axes, [x.shape[a] for a in axes])

    return (ct,)


rfftn_p.vjp = _r2c_vjp
_batch(rfftn_p)


def r2c(x: Tensor, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Tensor:
    return bind(rfftn_p, (x,), {"s": s, "axes": axes, "norm": norm})


# -- complex to real -----------------------------------------------------------------------
def _c2r_impl(xp: Any, x: Any, *, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Any:
    return xp.fft.irfftn(x, s=s, axes=axes, norm=norm)


irfftn_p = Primitive("fft.c2r", _c2r_impl)
irfftn_p.jvp = lambda ts, out, x, **p: bind(irfftn_p, (ts[0],), p)


def _hermitian_weights(n: int, axis: int, like: Any) -> Tensor:
    """1, 2, ..., 2, (1 if n even): multiplicity of each of the n//2+1 bins, along ``axis``."""
    k = n // 2 + 1
    w = [1.0] + [2.0] * (k - 1)
    if n % 2 == 0 and k > 1:
        w[-1] = 1.0
    xp = like._xp
    arr = xp.asarray(w, dtype=backend_for(xp).native(like.dtype))
    return wrap(xp.reshape(arr, (k,) + (1,) * (like.ndim - 1 - axis)), xp)


def _c2r_vjp(g: Any, out: Any, x: Any, *, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Any:
    def ct() -> Any:
        y = conj(r2c(g, s, axes, _DUAL[norm]))
        y = y * _hermitian_weights(s[-1], axes[-1], g)
        return resize(y, axes, [x.shape[a] for a in axes])

    return (ct,)


irfftn_p.vjp = _c2r_vjp
_batch(irfftn_p)


def c2r(x: Tensor, s: tuple[int, ...], axes: tuple[int, ...], norm: str) -> Tensor:
    return bind(irfftn_p, (x,), {"s": s, "axes": axes, "norm": norm})
