"""The array API ``fft`` extension, differentiable and batchable.

All transforms are built on three linear primitives (``functorch_lite._ops.fft``):
complex-to-complex, real-to-complex and complex-to-real n-d transforms. Real
input to a complex transform is cast to the matching complex dtype first
(float32 -> complex64), so the gradient with respect to it is real.

Example:
    >>> import functorch_lite as fl
    >>> fl.fft.fft(fl.asarray([1.0, 0.0, 0.0, 0.0])).shape
    (4,)
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from . import _backend
from . import _dtypes as D
from ._core.tensor import Tensor, wrap
from ._errors import DTypeError, ShapeError
from ._ops._base import as_tensor, check_dtype, default_float, normalize_axis
from ._ops.dtypes import astype
from ._ops.elementwise import conj
from ._ops.fft import c2c, c2r, r2c
from ._ops.manipulation import roll

__all__ = [
    "fft",
    "ifft",
    "fftn",
    "ifftn",
    "rfft",
    "irfft",
    "rfftn",
    "irfftn",
    "hfft",
    "ihfft",
    "fftfreq",
    "rfftfreq",
    "fftshift",
    "ifftshift",
]

_NORMS = ("backward", "ortho", "forward")
_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _input(x: Any, op: str, kind: str, norm: str) -> Tensor:
    """``x`` as a Tensor of the floating kind the transform needs ('c' complex, 'f' real)."""
    if norm not in _NORMS:
        raise ValueError(f"fft.{op}: norm must be 'backward', 'ortho' or 'forward'; got {norm!r}.")
    x = as_tensor(x, f"fft.{op}")
    k = x.dtype.kind
    if k not in "fc" or (kind == "f" and k == "c"):
        want = "a real floating-point" if kind == "f" else "a floating-point"
        raise DTypeError(
            f"fft.{op}: needs {want} array; got dtype {x.dtype.name}. "
            + (
                "Pass the real part (fl.real(x)) or use fft.fft."
                if k == "c"
                else "Cast first: fl.astype(x, fl.float32)."
            )
        )
    if x.ndim == 0:
        raise ShapeError(f"fft.{op}: needs at least one dimension; got a 0-d array.")
    if kind == "c" and k == "f":
        x = astype(x, D.complex128 if x.dtype is D.float64 else D.complex64)
    return x


def _size(n: Any, default: int, op: str, what: str = "n") -> int:
    if n is None or n == -1:
        n = default
    if isinstance(n, builtins.bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"fft.{op}: {what} must be a positive int; got {n!r}.")
    return n


def _s_axes(
    x: Tensor, s: Any, axes: Any, op: str, c2r: builtins.bool = False
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if axes is None:
        axes = tuple(range(x.ndim)) if s is None else tuple(range(x.ndim - len(s), x.ndim))
    axes = tuple(normalize_axis(a, x.ndim, f"fft.{op}") for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"fft.{op}: repeated axis in axes {axes}; name each axis once.")
    if s is not None and len(s) != len(axes):
        raise ValueError(f"fft.{op}: s {tuple(s)} and axes {axes} need the same length.")
    sizes = []
    for i, a in enumerate(axes):
        default = 2 * (x.shape[a] - 1) if c2r and i == len(axes) - 1 else x.shape[a]
        sizes.append(_size(None if s is None else s[i], default, op, "every entry of s"))
    if not axes:
        raise ValueError(f"fft.{op}: needs at least one axis to transform; got axes=().")
    return tuple(sizes), axes


def fft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """One-dimensional discrete Fourier transform along ``axis`` (cropped / zero-padded to ``n``).

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.fft(fl.asarray([1.0, 1.0])).tolist()
        [(2+0j), 0j]
    """
    x = _input(x, "fft", "c", norm)
    ax = normalize_axis(axis, x.ndim, "fft.fft")
    return c2c(x, (_size(n, x.shape[ax], "fft"),), (ax,), norm, False)


def ifft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """One-dimensional inverse discrete Fourier transform along ``axis``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.ifft(fl.asarray([2.0, 0.0])).tolist()
        [(1+0j), (1+0j)]
    """
    x = _input(x, "ifft", "c", norm)
    ax = normalize_axis(axis, x.ndim, "fft.ifft")
    return c2c(x, (_size(n, x.shape[ax], "ifft"),), (ax,), norm, True)


def fftn(
    x: Any, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """N-dimensional discrete Fourier transform over ``axes`` (all axes by default).

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.fftn(fl.ones((2, 2))).tolist()
        [[(4+0j), 0j], [0j, 0j]]
    """
    x = _input(x, "fftn", "c", norm)
    s2, ax = _s_axes(x, s, axes, "fftn")
    return c2c(x, s2, ax, norm, False)


def ifftn(
    x: Any, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """N-dimensional inverse discrete Fourier transform over ``axes``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.ifftn(fl.ones((2, 2))).tolist()
        [[(1+0j), 0j], [0j, 0j]]
    """
    x = _input(x, "ifftn", "c", norm)
    s2, ax = _s_axes(x, s, axes, "ifftn")
    return c2c(x, s2, ax, norm, True)


def rfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """Fourier transform of a real signal: the ``n//2 + 1`` non-negative frequency bins.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.rfft(fl.asarray([1.0, 1.0, 1.0, 1.0])).tolist()
        [(4+0j), 0j, 0j]
    """
    x = _input(x, "rfft", "f", norm)
    ax = normalize_axis(axis, x.ndim, "fft.rfft")
    return r2c(x, (_size(n, x.shape[ax], "rfft"),), (ax,), norm)


def irfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """Inverse of ``rfft``: a real signal of length ``n`` (default ``2 * (m - 1)``).

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.irfft(fl.asarray([4.0, 0.0, 0.0])).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    x = _input(x, "irfft", "c", norm)
    ax = normalize_axis(axis, x.ndim, "fft.irfft")
    return c2r(x, (_size(n, 2 * (x.shape[ax] - 1), "irfft"),), (ax,), norm)


def rfftn(
    x: Any, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """N-dimensional transform of a real array (the last of ``axes`` is halved).

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.rfftn(fl.ones((2, 4))).shape
        (2, 3)
    """
    x = _input(x, "rfftn", "f", norm)
    s2, ax = _s_axes(x, s, axes, "rfftn")
    return r2c(x, s2, ax, norm)


def irfftn(
    x: Any, /, *, s: Sequence[int] | None = None, axes: Sequence[int] | None = None, norm: str = "backward"
) -> Tensor:
    """Inverse of ``rfftn``: a real array of shape ``s`` over ``axes``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.irfftn(fl.ones((2, 3))).shape
        (2, 4)
    """
    x = _input(x, "irfftn", "c", norm)
    s2, ax = _s_axes(x, s, axes, "irfftn", c2r=True)
    return c2r(x, s2, ax, norm)


def hfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """Transform of a Hermitian-symmetric signal given by its first half: a real spectrum.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.hfft(fl.asarray([1.0, 0.0, 0.0])).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    x = _input(x, "hfft", "c", norm)
    ax = normalize_axis(axis, x.ndim, "fft.hfft")
    n = _size(n, 2 * (x.shape[ax] - 1), "hfft")
    return c2r(conj(x), (n,), (ax,), _DUAL[norm])


def ihfft(x: Any, /, *, n: int | None = None, axis: int = -1, norm: str = "backward") -> Tensor:
    """Inverse of ``hfft``: the first half of a Hermitian signal from a real spectrum.

    Example:
        >>> import functorch_lite as fl
        >>> fl.real(fl.fft.ihfft(fl.asarray([1.0, 1.0, 1.0, 1.0]))).tolist()
        [1.0, 0.0, 0.0]
    """
    x = _input(x, "ihfft", "f", norm)
    ax = normalize_axis(axis, x.ndim, "fft.ihfft")
    return conj(r2c(x, (_size(n, x.shape[ax], "ihfft"),), (ax,), _DUAL[norm]))


def _freq(name: str, n: int, d: float, dtype: Any, device: Any) -> Tensor:
    if isinstance(n, builtins.bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"fft.{name}: n must be a positive int; got {n!r}.")
    dt = default_float() if dtype is None else check_dtype(dtype, f"fft.{name}")
    if dt.kind != "f":
        raise DTypeError(f"fft.{name}: dtype must be a real floating-point dtype; got {dt.name}.")
    b = _backend.current_default()
    kw: dict[str, Any] = {"d": d, "dtype": b.native(dt)}
    if device is not None:
        kw["device"] = device
    return wrap(getattr(b.xp.fft, name)(n, **kw), b.xp)


def fftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    """Sample frequencies of ``fft`` for ``n`` samples spaced ``d`` apart.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.fftfreq(4).tolist()
        [0.0, 0.25, -0.5, -0.25]
    """
    return _freq("fftfreq", n, d, dtype, device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype: Any = None, device: Any = None) -> Tensor:
    """Sample frequencies of ``rfft`` (non-negative only) for ``n`` samples spaced ``d`` apart.

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.rfftfreq(4).tolist()
        [0.0, 0.25, 0.5]
    """
    return _freq("rfftfreq", n, d, dtype, device)


def _shift(x: Any, axes: Any, sign: int, op: str) -> Tensor:
    x = as_tensor(x, f"fft.{op}")
    if axes is None:
        axes = tuple(range(x.ndim))
    elif isinstance(axes, int):
        axes = (axes,)
    axes = tuple(normalize_axis(a, x.ndim, f"fft.{op}") for a in axes)
    if not axes:
        return x
    return roll(x, tuple(sign * (x.shape[a] // 2) for a in axes), axis=axes)


def fftshift(x: Any, /, *, axes: int | Sequence[int] | None = None) -> Tensor:
    """Move the zero-frequency bin to the centre (a roll by ``n // 2`` along each axis).

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.fftshift(fl.asarray([0.0, 1.0, -2.0, -1.0])).tolist()
        [-2.0, -1.0, 0.0, 1.0]
    """
    return _shift(x, axes, 1, "fftshift")


def ifftshift(x: Any, /, *, axes: int | Sequence[int] | None = None) -> Tensor:
    """Inverse of ``fftshift`` (a roll by ``-(n // 2)`` along each axis).

    Example:
        >>> import functorch_lite as fl
        >>> fl.fft.ifftshift(fl.asarray([-2.0, -1.0, 0.0, 1.0])).tolist()
        [0.0, 1.0, -2.0, -1.0]
    """
    return _shift(x, axes, -1, "ifftshift")
