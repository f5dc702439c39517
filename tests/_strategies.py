"""Hypothesis helpers shared by the table-driven tests.

Shapes come from Hypothesis; values come from a seeded ``random.Random`` (drawn by
Hypothesis), uniform inside each argument's domain, so finite differences never sit on
a kink by construction. Everything is built on the default backend of the run
(numpy, or array_api_strict with ``FUNCTORCH_LITE_BACKEND=array_api_strict``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functorch_lite as fl

MAX_SIDE = 3


@dataclass(frozen=True)
class Domain:
    """Values uniform in [lo, hi]; with ``signed`` the sign is random too (|x| in [lo, hi])."""

    lo: float = -2.0
    hi: float = 2.0
    signed: bool = False

    def sample(self, rng: random.Random) -> float:
        v = rng.uniform(self.lo, self.hi)
        if self.signed and rng.random() < 0.5:
            v = -v
        return v


REAL = Domain()
POS = Domain(0.3, 2.0)
NONZERO = Domain(0.4, 2.0, signed=True)
UNIT = Domain(-0.9, 0.9)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = MAX_SIDE) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable(n: int, min_dims: int = 0, max_dims: int = 3) -> st.SearchStrategy:
    """``n`` mutually broadcastable shapes (a list)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=MAX_SIDE
    ).map(lambda bs: list(bs.input_shapes))


def _nested(rng: random.Random, shape: Sequence[int], gen: Callable[[random.Random], Any]) -> Any:
    if not shape:
        return gen(rng)
    return [_nested(rng, shape[1:], gen) for _ in range(shape[0])]


def tensor(rng: random.Random, shape: Sequence[int], domain: Domain = REAL, dtype: Any = fl.float64) -> fl.Tensor:
    """A Tensor of ``shape`` on the default backend with values in ``domain``."""
    if 0 in tuple(shape):
        return fl.zeros(tuple(shape), dtype=dtype)
    return fl.asarray(_nested(rng, tuple(shape), domain.sample), dtype=dtype)


def ints(rng: random.Random, shape: Sequence[int], lo: int, hi: int) -> fl.Tensor:
    """An int64 Tensor with values in [lo, hi]."""
    if 0 in tuple(shape):
        return fl.zeros(tuple(shape), dtype=fl.int64)
    return fl.asarray(_nested(rng, tuple(shape), lambda r: r.randint(lo, hi)), dtype=fl.int64)


def bools(rng: random.Random, shape: Sequence[int]) -> fl.Tensor:
    return fl.asarray(_nested(rng, tuple(shape), lambda r: r.random() < 0.5), dtype=fl.bool)


def axis_arg(draw: Callable[..., Any], ndim: int, *, allow_none: bool = True, allow_tuple: bool = True) -> Any:
    """An axis argument for a reduction over an array of ``ndim`` dims (None, int, tuple, negative)."""
    opts = ["none"] if allow_none or ndim == 0 else []
    if ndim:
        opts.append("int")
        if allow_tuple:
            opts.append("tuple")
    kind = draw(st.sampled_from(opts))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, min_size=0, max_size=ndim))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


@dataclass
class Case:
    """One drawn instance of an op spec: the function, its float arguments and extras.

    ``fn(*diff_args, *extras)``; extras are non-differentiable Tensors (indices, masks)
    made by ``extras(rng)`` with fixed shapes, so several samples can be stacked for vmap.
    """

    fn: Callable[..., Any]
    shapes: list[tuple[int, ...]]
    domains: list[Domain]
    extras: Callable[[random.Random], list[Any]] = field(default=lambda rng: [])
    batch_extras: bool = True

    def args(self, rng: random.Random, dtype: Any = fl.float64) -> list[fl.Tensor]:
        return [tensor(rng, s, d, dtype) for s, d in zip(self.shapes, self.domains, strict=True)]


def to_np(x: Any) -> np.ndarray:
    return np.asarray(x.tolist() if isinstance(x, fl.Tensor) else x, dtype=float)


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-6, atol: float = 1e-6, what: str = "") -> None:
    a = to_np(actual)
    e = to_np(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)


def vdot(xs: Sequence[Any], ys: Sequence[Any]) -> float:
    """Sum of the inner products of two lists of Tensors, as a Python float."""
    return float(sum(float(fl.sum(x * y)) for x, y in zip(xs, ys, strict=True)))
