"""A seeded generator for index permutations, vectorised on the backend.

Python's ``random.Random(seed)`` draws the keys; the arrays are made by integer
ops on the backend (all within int64): a permutation is a keyed Feistel network
over ``arange(4**k)`` (``4**k >= n``) restricted to the values below ``n``; random
integers and floats come from a counter-based hash. So a 60k-sample epoch costs a few array ops, not a Python loop
or a sort.
"""

from __future__ import annotations

import random
from typing import Any

from .. import _dtypes as D
from .. import _namespace as fl
from .._core.tensor import Tensor
from .._errors import ConfigError

__all__ = ["Generator", "as_generator"]

_M31 = (1 << 31) - 1
_M32 = (1 << 32) - 1
_SMALL = 4096
_MULTS = (0x2C1B3C6D, 0x297A2D39, 0x5BD1E995 & _M31, 0x68E31DA4)


def _mix(x: Tensor, seed: int) -> Tensor:
    """A 31-bit avalanche hash of non-negative int64 ``x`` (< 2**31) keyed by ``seed``."""
    x = (x ^ seed) & _M31
    for m in _MULTS:
        x = (x * m + 0x3C6EF372) & _M31  # products stay below 2**62: no overflow in int64
        x = x ^ (x >> 15)
    return x


def _feistel(x: Tensor, half: int, rounds: list[tuple[int, int]]) -> Tensor:
    """A keyed bijection of ``[0, 4**half)``: a 6-round Feistel network, multiply-shift round function."""
    mask = (1 << half) - 1
    left, right = x >> half, x & mask
    for m, k in rounds:
        f = (((right + k) * m) & _M32) >> (32 - half)  # right < 2**16 and m < 2**32: no overflow
        left, right = right, left ^ f
    return (left << half) | right


class Generator:
    """Seeded source of index permutations and samples (wraps ``random.Random``).

    Example:
        >>> from functorch_lite.data import Generator
        >>> sorted(Generator(0).permutation(5).tolist())
        [0, 1, 2, 3, 4]
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._py = random.Random(seed)

    def spawn_seed(self) -> int:
        """A fresh 62-bit seed drawn from this generator."""
        return self._py.getrandbits(62)

    def _keys(self, n: int) -> Tensor:
        if n >= 1 << 31:
            raise ConfigError(f"Generator: at most 2**31 - 1 indices are supported; got {n}.")
        s1, s2 = self._py.getrandbits(31), self._py.getrandbits(31)
        i = fl.arange(n, dtype=D.int64)
        return (_mix(i, s1) << 31) | _mix(i ^ s2, s2 ^ 0x1234567)

    def permutation(self, n: int) -> Tensor:
        """A random permutation of ``range(n)`` as an int64 Tensor."""
        if n <= _SMALL:  # exact Fisher-Yates where a Python loop is cheap
            order = list(range(n))
            self._py.shuffle(order)
            return fl.asarray(order, dtype=D.int64) if n else fl.zeros((0,), dtype=D.int64)
        if n >= 1 << 31:
            raise ConfigError(f"Generator: at most 2**31 - 1 indices are supported; got {n}.")
        bits = max(2, (n - 1).bit_length())
        half = (bits + 1) // 2
        rounds = [(self._py.getrandbits(32) | 1, self._py.getrandbits(32)) for _ in range(6)]
        # a keyed bijection of [0, 4**half), restricted (in order) to the values below n
        y = _feistel(fl.arange(1 << (2 * half), dtype=D.int64), half, rounds)
        return y[y < n]

    def randint(self, high: int, size: int) -> Tensor:
        """``size`` integers drawn uniformly from ``[0, high)``, int64."""
        if size == 0:
            return fl.zeros((0,), dtype=D.int64)
        return self._keys(size) % high

    def uniform(self, size: int) -> Tensor:
        """``size`` float64 numbers uniform in ``(0, 1)``."""
        k = fl.astype(self._keys(size) >> 9, D.float64)  # 53 random bits
        return (k + 0.5) * (2.0**-53)


def as_generator(seed: Any = None, generator: Any = None) -> Generator:
    """A [`Generator`][functorch_lite.data.Generator] from a seed, an existing Generator or a ``random.Random``.

    With neither, the seed comes from the global generator (``fl.manual_seed``).
    """
    if generator is not None:
        if isinstance(generator, Generator):
            return generator
        if isinstance(generator, random.Random):
            return Generator(generator.getrandbits(62))
        raise ConfigError(
            f"generator must be a functorch_lite.data.Generator or random.Random; got {type(generator).__name__}."
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"seed must be an int or None; got {seed!r}.")
    return Generator(_global_seed() if seed is None else seed)


def _global_seed() -> int | None:
    """A seed drawn from the global generator, so ``fl.manual_seed`` makes shuffling reproducible."""
    try:
        from .. import random as fl_random
    except ImportError:  # pragma: no cover - the random module is optional here
        return None
    a, b = (int(w) for w in fl_random.next_key().tolist())
    return (a << 32) | b
