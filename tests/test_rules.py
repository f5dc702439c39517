"""Table-driven tests of every differentiable primitive's rules.

Each spec in ``SPECS`` draws a case (a function of float arrays, the argument
shapes and domains, optional non-differentiable extras such as index arrays).
Every spec runs through the same checks, in float64:

* jvp against central finite differences,
* vjp against finite differences, and the transpose identity
  ``<vjp(u), v> == <u, jvp(v)>``,
* second order: forward-over-reverse and reverse-over-reverse Hessian-vector
  products against finite differences of the gradient, entry by entry
  (``fl.testing.check_grads`` of the gradient),
* ``vmap(f)`` (and ``vmap`` of its gradient and jvp) against a Python loop,
  with random ``in_axes`` (0, 1, -1, None mixes) and ``out_axes``,
* dtype preservation: float32 in, float32 out, float32 tangents and gradients.

The elementwise functions are enrolled automatically from the namespace; a
coverage test runs every spec under ``jvp`` with each primitive's impl
instrumented and fails if a differentiable primitive of
``functorch_lite._core.engine.PRIMITIVES`` is exercised by no spec.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from _strategies import (
    NONZERO,
    POS,
    REAL,
    UNIT,
    Case,
    Domain,
    assert_close,
    axis_arg,
    bools,
    broadcastable,
    ints,
    shapes,
    tensor,
    vdot,
)
from hypothesis import given
from hypothesis import strategies as st

import functorch_lite as fl
from functorch_lite._core.engine import PRIMITIVES
from functorch_lite._ops import elementwise as _ew

EPS = 1e-6
Draw = Callable[..., Any]


@dataclass
class Spec:
    name: str
    build: Callable[[Draw], Case]
    second_order: bool = True
    vmap: bool = True
    rtol: float = 1e-5
    atol: float = 1e-6

    def __repr__(self) -> str:
        return self.name


SPECS: list[Spec] = []


def spec(name: str, **kw: Any) -> Callable[[Callable[[Draw], Case]], Callable[[Draw], Case]]:
    def deco(build: Callable[[Draw], Case]) -> Callable[[Draw], Case]:
        SPECS.append(Spec(name, build, **kw))
        return build

    return deco


# ---------------------------------------------------------------------------------------
# Elementwise: enrolled from the namespace, domains from this table (default: REAL)
# ---------------------------------------------------------------------------------------
UNARY_DOMAINS = {
    "abs": NONZERO,
    "acos": UNIT,
    "asin": UNIT,
    "atanh": UNIT,
    "acosh": Domain(1.2, 3.0),
    "log": POS,
    "log2": POS,
    "log10": POS,
    "sqrt": POS,
    "log1p": Domain(-0.7, 2.0),
    "reciprocal": NONZERO,
    "tan": Domain(-1.2, 1.2),
}
BINARY_DOMAINS = {
    "divide": (REAL, NONZERO),
    "pow": (POS, REAL),
    "atan2": (NONZERO, NONZERO),
    "hypot": (NONZERO, NONZERO),
    "copysign": (NONZERO, NONZERO),
    "remainder": (Domain(0.1, 3.0, signed=True), Domain(0.6, 1.4, signed=True)),
}
# Complex-only in the standard's spirit: exercised through a complex round trip below.
COMPLEX_UNARY = {"real", "imag", "conj"}


def _arity(fn: Callable[..., Any]) -> int:
    return sum(1 for p in inspect.signature(fn).parameters.values() if p.kind is p.POSITIONAL_ONLY)


def _enroll_elementwise() -> None:
    for name in _ew.__all__:
        fn = getattr(fl, name, None)
        prim = getattr(fn, "prim", None)
        if prim is None or not prim.differentiable or name in COMPLEX_UNARY:
            continue
        if _arity(fn) == 1:
            dom = UNARY_DOMAINS.get(name, REAL)

            def build(draw: Draw, fn: Any = fn, dom: Domain = dom) -> Case:
                return Case(fn, [draw(shapes())], [dom])

        else:
            doms = BINARY_DOMAINS.get(name, (REAL, REAL))

            def build(draw: Draw, fn: Any = fn, doms: Any = doms) -> Case:
                return Case(fn, draw(broadcastable(2)), list(doms))

        SPECS.append(Spec(name, build))


_enroll_elementwise()


@spec("complex_round_trip")
def _complex(draw: Draw) -> Case:
    def f(x: Any, y: Any) -> Any:
        c = fl.complex64 if x.dtype == fl.float32 else fl.complex128
        z = fl.astype(x, c) + fl.astype(y, c) * 1j
        w = fl.conj(z) * z + z * z
        return fl.real(w) + fl.imag(w) * 0.5

    return Case(f, draw(broadcastable(2)), [REAL, REAL])


@spec("python_scalar_mixing")
def _scalars(draw: Draw) -> Case:
    c = draw(st.sampled_from([2, 3.0, 0.5]))
    return Case(lambda x: (x**c) + c / x - (2.0**x) * c + (x - c) * 1.5 + c % (x + 4.0), [draw(shapes())], [POS])


@spec("matmul_nt")
def _matmul_nt(draw: Draw) -> Case:
    from functorch_lite._ops.linalg_core import matmul_nt

    lead = draw(st.sampled_from([(), (2,), (2, 3)]))
    return Case(matmul_nt, [lead + (4,), (3, 4)], [REAL, REAL])


@spec("relu")
def _relu(draw: Draw) -> Case:
    from functorch_lite._ops.elementwise import relu

    return Case(relu, [draw(shapes())], [NONZERO])


@spec("maximum_minimum_scalar")
def _maxmin_scalar(draw: Draw) -> Case:
    return Case(lambda x: fl.maximum(x, 0.1) + fl.minimum(0.2, x), [draw(shapes())], [NONZERO])


# ---------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------
def _reduction(
    name: str, fn: Callable[..., Any], dom: Domain = REAL, extra: dict[str, Any] | None = None, min_side: int = 1
) -> None:
    @spec(name)
    def build(draw: Draw) -> Case:
        shape = draw(shapes(0 if min_side == 1 else 1, 3, min_side=min_side))
        axis = axis_arg(draw, len(shape))
        if min_side > 1 and axis == ():
            axis = None  # var/std over no axis is 0, where std is not differentiable
        keepdims = draw(st.booleans())
        kw = {k: draw(v) for k, v in (extra or {}).items()}
        return Case(lambda x: fn(x, axis=axis, keepdims=keepdims, **kw), [shape], [dom])


_reduction("sum", fl.sum)
_reduction("prod", fl.prod, Domain(0.5, 1.5, signed=True))
_reduction("max", fl.max)
_reduction("min", fl.min)
_reduction("mean", fl.mean)
# min_side=2: n - correction > 0, and std is differentiable only where the variance is not 0.
_reduction("var", fl.var, extra={"correction": st.sampled_from([0, 1])}, min_side=2)
_reduction("std", fl.std, extra={"correction": st.sampled_from([0, 1])}, min_side=2)


def _cumulative(name: str, fn: Callable[..., Any], dom: Domain) -> None:
    @spec(name)
    def build(draw: Draw) -> Case:
        shape = draw(shapes(1, 3))
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        inc = draw(st.booleans())
        return Case(lambda x: fn(x, axis=axis, include_initial=inc), [shape], [dom])


_cumulative("cumulative_sum", fl.cumulative_sum, REAL)
_cumulative("cumulative_prod", fl.cumulative_prod, Domain(0.5, 1.5, signed=True))


@spec("diff")
def _diff(draw: Draw) -> Case:
    shape = draw(shapes(1, 3, min_side=2))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = draw(st.integers(0, shape[axis] - 1))
    return Case(lambda x: fl.diff(x, axis=axis, n=n), [shape], [REAL])


# ---------------------------------------------------------------------------------------
# Manipulation
# ---------------------------------------------------------------------------------------
@spec("reshape")
def _reshape(draw: Draw) -> Case:
    shape = draw(shapes(0, 3))
    size = 1
    for s in shape:
        size *= s
    new = draw(st.sampled_from([(size,), (1, size), (size, 1), (-1,), (1, -1, 1)]))
    return Case(lambda x: fl.reshape(x, new) * 1.0, [shape], [REAL])


@spec("broadcast_to")
def _broadcast_to(draw: Draw) -> Case:
    src, dst = draw(broadcastable(2))
    target = fl.broadcast_shapes(src, dst)
    return Case(lambda x: fl.broadcast_to(x, target) * fl.broadcast_to(x, target), [src], [REAL])


@spec("permute_dims")
def _permute(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    perm = tuple(draw(st.permutations(range(len(shape)))))
    return Case(lambda x: fl.permute_dims(x, perm), [shape], [REAL])


@spec("moveaxis_transpose")
def _moveaxis(draw: Draw) -> Case:
    shape = draw(shapes(2, 3))
    src = draw(st.integers(-len(shape), len(shape) - 1))
    dst = draw(st.integers(-len(shape), len(shape) - 1))
    return Case(lambda x: fl.moveaxis(x, src, dst) + fl.moveaxis(fl.matrix_transpose(x).mT, src, dst), [shape], [REAL])


@spec("flip")
def _flip(draw: Draw) -> Case:
    shape = draw(shapes(0, 3))
    axis = axis_arg(draw, len(shape))
    return Case(lambda x: fl.flip(x, axis=axis) * x, [shape], [REAL])


@spec("roll")
def _roll(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        axis, shift = None, draw(st.integers(-4, 4))
    elif kind == "int":
        axis, shift = draw(st.integers(-nd, nd - 1)), draw(st.integers(-4, 4))
    else:
        axis = tuple(draw(st.lists(st.integers(0, nd - 1), unique=True, min_size=1, max_size=nd)))
        shift = tuple(draw(st.integers(-3, 3)) for _ in axis)
    return Case(lambda x: fl.roll(x, shift, axis=axis) * x, [shape], [REAL])


@spec("concat")
def _concat(draw: Draw) -> Case:
    base = draw(shapes(1, 3))
    n = draw(st.integers(1, 3))
    axis = draw(st.sampled_from([None, *range(-len(base), len(base))]))
    shs = []
    for _ in range(n):
        s = list(base)
        if axis is not None:
            s[axis] = draw(st.integers(1, 3))
        shs.append(tuple(s))
    return Case(lambda *xs: fl.concat(list(xs), axis=axis), shs, [REAL] * n)


@spec("stack_unstack")
def _stack(draw: Draw) -> Case:
    shape = draw(shapes(0, 2))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))

    def f(x: Any, y: Any) -> Any:
        s = fl.stack([x, y * x, y], axis=axis)
        parts = fl.unstack(s, axis=axis)
        return fl.stack([parts[2], parts[0] + parts[1]], axis=0)

    return Case(f, [shape, shape], [REAL, REAL])


@spec("expand_squeeze")
def _expand(draw: Draw) -> Case:
    shape = draw(shapes(0, 2))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(lambda x: fl.squeeze(fl.expand_dims(x, axis=axis) * 2.0, axis=axis), [shape], [REAL])


@spec("tile")
def _tile(draw: Draw) -> Case:
    shape = draw(shapes(0, 2))
    reps = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    return Case(lambda x: fl.tile(x, reps), [shape], [REAL])


@spec("repeat")
def _repeat(draw: Draw) -> Case:
    shape = draw(shapes(1, 2))
    axis = draw(st.sampled_from([None, *range(len(shape))]))
    if draw(st.booleans()):
        reps: Any = draw(st.integers(1, 3))
    else:
        n = shape[axis] if axis is not None else 1
        for s in shape if axis is None else ():
            n *= s
        reps = fl.asarray(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    return Case(lambda x: fl.repeat(x, reps, axis=axis), [shape], [REAL], batch_extras=False)


@spec("tril_triu")
def _tri(draw: Draw) -> Case:
    shape = draw(shapes(2, 3))
    k = draw(st.integers(-2, 2))
    return Case(lambda x: fl.tril(x, k=k) * 2.0 + fl.triu(x, k=k) * x, [shape], [REAL])


@spec("astype")
def _astype(draw: Draw) -> Case:
    def f(x: Any) -> Any:
        c = fl.complex64 if x.dtype == fl.float32 else fl.complex128
        return fl.astype(x, x.dtype, copy=True) * fl.real(fl.astype(x, c) * 2.0)

    return Case(f, [draw(shapes())], [REAL])


# ---------------------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------------------
def _basic_key(draw: Draw, shape: tuple[int, ...]) -> Any:
    from hypothesis.extra import numpy as hnp

    return draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))


@spec("getitem_basic")
def _getitem_basic(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    key = _basic_key(draw, shape)
    return Case(lambda x: x[key] * 1.0, [shape], [REAL])


@spec("getitem_int_array")
def _getitem_int(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    n = shape[0]
    ishape = draw(shapes(0, 2))
    return Case(lambda x, i: x[i], [shape], [REAL], extras=lambda rng: [ints(rng, ishape, -n, n - 1)])


@spec("getitem_mixed")
def _getitem_mixed(draw: Draw) -> Case:
    shape = draw(shapes(2, 3))
    nd = len(shape)
    form = draw(st.sampled_from(["slice_arr", "arr_slice_arr", "int_arr", "arr_arr", "none_arr"]))
    ishape = draw(shapes(0, 2))
    if form == "slice_arr":
        ax = nd - 1
        return Case(lambda x, i: x[..., i], [shape], [REAL], extras=lambda rng: [ints(rng, ishape, 0, shape[ax] - 1)])
    if form == "arr_slice_arr":
        if nd < 3:
            shape = shape + (2,)
        return Case(
            lambda x, i, j: x[i, 1:, j],
            [shape],
            [REAL],
            extras=lambda rng: [ints(rng, ishape, 0, shape[0] - 1), ints(rng, ishape, 0, shape[2] - 1)],
        )
    if form == "int_arr":
        return Case(lambda x, i: x[0, i], [shape], [REAL], extras=lambda rng: [ints(rng, ishape, 0, shape[1] - 1)])
    if form == "none_arr":
        return Case(lambda x, i: x[None, i], [shape], [REAL], extras=lambda rng: [ints(rng, ishape, 0, shape[0] - 1)])
    return Case(
        lambda x, i, j: x[i, j],
        [shape],
        [REAL],
        extras=lambda rng: [ints(rng, ishape, 0, shape[0] - 1), ints(rng, (), 0, shape[1] - 1)],
    )


@spec("getitem_bool_mask")
def _getitem_bool(draw: Draw) -> Case:
    shape = draw(shapes(1, 2))
    mask = bools(random.Random(draw(st.integers(0, 999))), shape)
    return Case(lambda x: x[mask] * 2.0, [shape], [REAL], batch_extras=False)


def _perm(rng: random.Random, n: int, k: int) -> fl.Tensor:
    return fl.asarray(rng.sample(range(n), k), dtype=fl.int64)


@spec("setitem")
def _setitem(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    form = draw(st.sampled_from(["basic", "int_array", "scalar_value"]))
    if form == "basic":
        key = _basic_key(draw, shape)
        import numpy as np

        vshape = np.empty(shape)[key].shape
        return Case(lambda x, v: fl.setitem(x, key, v) * x, [shape, vshape], [REAL, REAL])
    if form == "scalar_value":
        key = _basic_key(draw, shape)
        return Case(lambda x: fl.setitem(x * x, key, 0.5), [shape], [REAL])
    k = draw(st.integers(1, shape[0]))
    vshape = (k,) + shape[1:]
    return Case(
        lambda x, v, i: fl.setitem(x, i, v * v) * x,
        [shape, vshape],
        [REAL, REAL],
        extras=lambda rng: [_perm(rng, shape[0], k)],
    )


@spec("index_add")
def _index_add(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    k = draw(st.integers(1, 4))
    vshape = (k,) + shape[1:]
    return Case(
        lambda x, v, i: fl.index_add(x * x, i, v * v),
        [shape, vshape],
        [REAL, REAL],
        extras=lambda rng: [ints(rng, (k,), 0, shape[0] - 1)],
    )


@spec("take")
def _take(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    axis = draw(st.sampled_from([None, *range(len(shape))]))
    n = shape[axis] if axis is not None else 1
    if axis is None:
        for s in shape:
            n *= s
    k = draw(st.integers(1, 4))
    return Case(lambda x, i: fl.take(x, i, axis=axis), [shape], [REAL], extras=lambda rng: [ints(rng, (k,), 0, n - 1)])


@spec("take_along_axis")
def _take_along(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ishape = list(shape)
    ishape[axis] = draw(st.integers(1, 3))
    return Case(
        lambda x, i: fl.take_along_axis(x, i, axis=axis),
        [shape],
        [REAL],
        extras=lambda rng: [ints(rng, ishape, 0, shape[axis] - 1)],
    )


@spec("where")
def _where(draw: Draw) -> Case:
    cs, xs, ys = draw(broadcastable(3))
    return Case(lambda x, y, c: fl.where(c, x * y, y), [xs, ys], [REAL, REAL], extras=lambda rng: [bools(rng, cs)])


@spec("where_scalar")
def _where_scalar(draw: Draw) -> Case:
    shape = draw(shapes())
    return Case(lambda x: fl.where(x > 0.0, x, 0.0) + fl.where(x < 0.5, 1.0, x * x), [shape], [NONZERO])


# ---------------------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------------------
@spec("matmul")
def _matmul(draw: Draw) -> Case:
    form = draw(st.sampled_from(["mm", "mv", "vm", "vv", "batched"]))
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    if form == "mm":
        shs = [(n, k), (k, m)]
    elif form == "mv":
        shs = [(n, k), (k,)]
    elif form == "vm":
        shs = [(k,), (k, m)]
    elif form == "vv":
        shs = [(k,), (k,)]
    else:
        b1, b2 = draw(broadcastable(2, 1, 2))
        shs = [tuple(b1) + (n, k), tuple(b2) + (k, m)]
    return Case(lambda x, y: x @ y, shs, [REAL, REAL])


@spec("tensordot")
def _tensordot(draw: Draw) -> Case:
    a, b, c = (draw(st.integers(1, 3)) for _ in range(3))
    form = draw(st.sampled_from([0, 1, 2, "pairs"]))
    if form == "pairs":
        return Case(lambda x, y: fl.tensordot(x, y, axes=([0, 2], [1, 0])), [(a, b, c), (c, a)], [REAL, REAL])
    if form == 0:
        return Case(lambda x, y: fl.tensordot(x, y, axes=0), [(a,), (b, c)], [REAL, REAL])
    if form == 1:
        return Case(lambda x, y: fl.tensordot(x, y, axes=1), [(a, b), (b, c)], [REAL, REAL])
    return Case(lambda x, y: fl.tensordot(x, y, axes=2), [(a, b, c), (b, c)], [REAL, REAL])


@spec("vecdot")
def _vecdot(draw: Draw) -> Case:
    s1, s2 = draw(broadcastable(2, 0, 2))
    k = draw(st.integers(1, 3))
    axis = draw(st.sampled_from([-1, -2]))
    s1, s2 = tuple(s1) + (k,), tuple(s2) + (k,)
    if axis == -2:
        s1, s2 = s1 + (2,), s2 + (1,)
        if len(s1) < 2 or len(s2) < 2:
            axis = -1
    return Case(lambda x, y: fl.vecdot(x, y, axis=axis), [s1, s2], [REAL, REAL])


# ---------------------------------------------------------------------------------------
# Sorting, clip, linalg, fft
# ---------------------------------------------------------------------------------------
@spec("sort")
def _sort(draw: Draw) -> Case:
    shape = draw(shapes(1, 3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    desc = draw(st.booleans())
    return Case(lambda x: fl.sort(x, axis=axis, descending=desc) * x, [shape], [REAL])


@spec("clip")
def _clip(draw: Draw) -> Case:
    shape = draw(shapes())
    form = draw(st.sampled_from(["scalars", "arrays", "min_only", "max_only"]))
    if form == "scalars":
        return Case(lambda x: fl.clip(x, -0.5, 0.7) * x, [shape], [REAL])
    if form == "min_only":
        return Case(lambda x: fl.clip(x, min=0.1), [shape], [REAL])
    if form == "max_only":
        return Case(lambda x: fl.clip(x, max=0.1), [shape], [REAL])
    shs = draw(broadcastable(3))
    return Case(lambda x, lo, hi: fl.clip(x, lo, lo + fl.abs(hi)), shs, [REAL, REAL, NONZERO])


def _square(draw: Draw, min_n: int = 1) -> tuple[int, ...]:
    n = draw(st.integers(min_n, 3))
    batch = draw(shapes(0, 1, max_side=2))
    return tuple(batch) + (n, n)


def _well(x: Any) -> Any:
    """A well-conditioned matrix near the identity."""
    n = x.shape[-1]
    return x * 0.3 + fl.eye(n, dtype=x.dtype)


def _spd(x: Any) -> Any:
    n = x.shape[-1]
    return x @ x.mT + fl.eye(n, dtype=x.dtype) * float(n)


def _sym(x: Any) -> Any:
    return x + x.mT


def _weights(n: int, like: Any) -> Any:
    return fl.astype(fl.arange(1, n + 1), like.dtype)


@spec("linalg.cholesky")
def _cholesky(draw: Draw) -> Case:
    upper = draw(st.booleans())
    return Case(lambda x: fl.linalg.cholesky(_spd(x), upper=upper), [_square(draw)], [REAL])


@spec("linalg.det_inv_slogdet")
def _det(draw: Draw) -> Case:
    def f(x: Any) -> Any:
        a = _well(x)
        sd = fl.linalg.slogdet(a)
        return fl.linalg.inv(a) * fl.expand_dims(fl.expand_dims(fl.linalg.det(a) + sd.logabsdet, axis=-1), axis=-1)

    return Case(f, [_square(draw)], [REAL])


@spec("linalg.solve")
def _solve(draw: Draw) -> Case:
    sq = _square(draw)
    n = sq[-1]
    rhs = draw(st.sampled_from([(n,), (n, 2)])) if len(sq) == 2 else sq[:-2] + (n, 2)
    return Case(lambda a, b: fl.linalg.solve(_well(a), b), [sq, rhs], [REAL, REAL])


@spec("linalg.eigh")
def _eigh(draw: Draw) -> Case:
    def f(x: Any) -> Any:
        lam, v = fl.linalg.eigh(_sym(x))
        w = _weights(x.shape[-1], x)
        # eigenvectors only up to sign: use a sign-invariant function of them
        return lam + fl.sum(v * v * fl.expand_dims(w, axis=-1), axis=-2) + fl.linalg.eigvalsh(_sym(x)) * 0.5

    return Case(f, [_square(draw)], [REAL])


@spec("linalg.qr")
def _qr(draw: Draw) -> Case:
    def f(x: Any) -> Any:
        q, r = fl.linalg.qr(_well(x))
        return fl.concat([q, r], axis=-1)

    return Case(f, [_square(draw)], [REAL])


@spec("linalg.svd")
def _svd(draw: Draw) -> Case:
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))

    def f(x: Any) -> Any:
        u, sv, vh = fl.linalg.svd(x, full_matrices=False)
        # singular vectors only up to a joint sign: use a sign-invariant function of them
        k = sv.shape[-1]
        w = _weights(k, x)
        return fl.concat(
            [
                sv,
                fl.linalg.svdvals(x),
                fl.sum(u * u * w, axis=-2),
                fl.sum(vh * vh * fl.expand_dims(w, axis=-1), axis=-1),
            ],
            axis=-1,
        )

    return Case(f, [(m, n)], [REAL])


@spec("linalg.diagonal_trace")
def _diag(draw: Draw) -> Case:
    shape = draw(shapes(2, 3))
    off = draw(st.integers(-1, 1))
    return Case(
        lambda x: fl.linalg.diagonal(x, offset=off) * 2.0 + fl.expand_dims(fl.linalg.trace(x, offset=off), axis=-1),
        [shape],
        [REAL],
    )


@spec("linalg.norms")
def _norms(draw: Draw) -> Case:
    sq = _square(draw)
    vord = draw(st.sampled_from([2, 1, 3, float("inf")]))
    mord = draw(st.sampled_from(["fro", "nuc", 2]))

    def f(x: Any) -> Any:
        m = fl.linalg.matrix_norm(x, ord=mord, keepdims=True)
        return fl.linalg.vector_norm(x, axis=-1, ord=vord, keepdims=True) + m * 0.5

    return Case(f, [sq], [NONZERO])


@spec("linalg.composites")
def _lcomp(draw: Draw) -> Case:
    n = draw(st.integers(1, 3))
    p = draw(st.integers(0, 3))

    def f(x: Any, a: Any, b: Any, c: Any, d: Any) -> Any:
        return (
            fl.linalg.matrix_power(_well(x), p)
            + fl.linalg.pinv(_well(x)) * 0.5
            + fl.linalg.outer(a, b)
            + fl.sum(fl.linalg.cross(c, d) * c)
        )

    return Case(f, [(n, n), (n,), (n,), (3,), (3,)], [REAL] * 5)


@spec("fft.complex")
def _fft(draw: Draw) -> Case:
    shape = draw(shapes(1, 2))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    nn = draw(st.sampled_from([None, 1, 2, 4]))
    norm = draw(st.sampled_from(["backward", "ortho", "forward"]))

    def f(x: Any, y: Any) -> Any:
        c = fl.complex64 if x.dtype == fl.float32 else fl.complex128
        z = fl.astype(x, c) + fl.astype(y, c) * 1j
        w = fl.fft.fft(z, n=nn, axis=axis, norm=norm) + fl.fft.ifft(z, n=nn, axis=axis, norm=norm) * 0.5
        return fl.real(w) + fl.imag(w) * 0.3

    return Case(f, [shape, shape], [REAL, REAL])


@spec("fft.real")
def _rfft(draw: Draw) -> Case:
    shape = draw(shapes(1, 2, min_side=2))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    norm = draw(st.sampled_from(["backward", "ortho", "forward"]))
    nn = draw(st.sampled_from([None, 2, 4]))

    def f(x: Any) -> Any:
        r = fl.fft.rfft(x, n=nn, axis=axis, norm=norm)
        back = fl.fft.irfft(r * r, n=nn, axis=axis, norm=norm)
        h = fl.fft.ihfft(x, axis=axis, norm=norm)
        hb = fl.fft.hfft(h * 1.5, n=shape[axis], axis=axis, norm=norm)
        return fl.sum(back) + fl.sum(fl.real(r) * 2.0 + fl.imag(r)) + hb * x

    return Case(f, [shape], [REAL])


@spec("fft.nd")
def _fftn(draw: Draw) -> Case:
    shape = draw(shapes(2, 3, min_side=2))
    axes = tuple(draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1, max_size=2)))
    norm = draw(st.sampled_from(["backward", "ortho", "forward"]))

    def f(x: Any) -> Any:
        c = fl.complex64 if x.dtype == fl.float32 else fl.complex128
        z = fl.fft.fftn(fl.astype(x, c), axes=axes, norm=norm)
        z = fl.fft.ifftn(z * z, axes=axes, norm=norm)
        r = fl.fft.rfftn(x, axes=axes, norm=norm)
        back = fl.fft.irfftn(r * 2.0, s=tuple(shape[a] for a in axes), axes=axes, norm=norm)
        return fl.real(z) + fl.imag(z) + back + fl.fft.fftshift(x, axes=axes) + fl.fft.ifftshift(x)

    return Case(f, [shape], [REAL])


# ---------------------------------------------------------------------------------------
# nn.functional primitives (erf, the unfold / fold behind convolutions and pooling)
# ---------------------------------------------------------------------------------------
def _nnf() -> Any:
    from functorch_lite.nn import functional as F

    return F


@spec("nn.erf")
def _erf(draw: Draw) -> Case:
    return Case(lambda x: _nnf().erf(x) + _nnf().gelu(x), [draw(shapes())], [REAL])


@spec("nn.conv")
def _conv(draw: Draw) -> Case:
    F = _nnf()
    dims = draw(st.sampled_from([1, 2]))
    n, cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = draw(st.integers(1, 2))
    size = draw(st.integers(k, 4))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1))
    sp = (size,) * dims
    ks = (k,) * dims
    conv = F.conv1d if dims == 1 else F.conv2d
    convt = F.conv_transpose1d if dims == 1 else F.conv_transpose2d

    def f(x: Any, w: Any, b: Any, wt: Any) -> Any:
        y = conv(x, w, b, stride=stride, padding=padding)
        return convt(y, wt, stride=stride)

    return Case(f, [(n, cin) + sp, (cout, cin) + ks, (cout,), (cout, cin) + ks], [REAL] * 4)


@spec("nn.pool")
def _pool(draw: Draw) -> Case:
    F = _nnf()
    size = draw(st.integers(2, 4))
    k = draw(st.integers(1, 2))

    def f(x: Any) -> Any:
        return F.max_pool2d(x, k) + F.avg_pool2d(x, k)

    return Case(f, [(1, 2, size, size)], [REAL])


@spec("nn.cross_entropy")
def _cross_entropy(draw: Draw) -> Case:
    # the fused softmax cross-entropy primitive behind F.cross_entropy's common case
    F = _nnf()
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def targets(rng: random.Random) -> list[Any]:
        t = ints(rng, (n,), -c, c)
        return [fl.where(t == c, -100, t)]  # negative: counted from the end; -100: ignored

    def f(x: Any, t: Any) -> Any:
        return F.cross_entropy(x, t, reduction="none") + F.cross_entropy(x, t, reduction="sum")

    return Case(f, [(n, c)], [REAL], extras=targets, batch_extras=False)


# ---------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------
def _draw_case(data: Any, sp: Spec) -> tuple[Case, random.Random]:
    case = sp.build(data.draw)
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    return case, rng


def _fd(f: Callable[..., Any], args: list[Any], tans: list[Any], extras: list[Any], eps: float = EPS) -> Any:
    plus = [a + eps * t for a, t in zip(args, tans, strict=True)]
    minus = [a - eps * t for a, t in zip(args, tans, strict=True)]
    return (f(*plus, *extras) - f(*minus, *extras)) / (2 * eps)


def _directions(rng: random.Random, args: list[Any]) -> list[Any]:
    return [tensor(rng, a.shape, REAL, a.dtype) for a in args]


@pytest.mark.parametrize("sp", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_first_order(sp: Spec, data: Any) -> None:
    """jvp and vjp against central finite differences, and <vjp(u), v> == <u, jvp(v)>."""
    case, rng = _draw_case(data, sp)
    args = case.args(rng)
    extras = case.extras(rng)
    n = len(args)

    def f(*a: Any) -> Any:
        return case.fn(*a, *extras)

    out = f(*args)
    v = _directions(rng, args)
    fd = _fd(case.fn, args, v, extras)
    o2, t = fl.jvp(f, tuple(args), tuple(v))
    assert_close(o2, out, what=f"{sp.name}: jvp primal output")
    assert t.dtype == out.dtype, f"{sp.name}: tangent dtype {t.dtype} != output dtype {out.dtype}"
    assert_close(t, fd, rtol=sp.rtol, atol=sp.atol, what=f"{sp.name}: jvp vs finite differences")

    o3, pull = fl.vjp(f, *args)
    assert_close(o3, out, what=f"{sp.name}: vjp primal output")
    u = tensor(rng, out.shape, REAL, out.dtype)
    cts = pull(u)
    assert len(cts) == n
    for a, c in zip(args, cts, strict=True):
        assert c.shape == a.shape and c.dtype == a.dtype, (
            f"{sp.name}: cotangent {c.shape}/{c.dtype} for {a.shape}/{a.dtype}"
        )
    lhs = vdot(cts, v)
    assert lhs == pytest.approx(vdot([u], [fd]), rel=1e-5, abs=1e-5), f"{sp.name}: <vjp(u), v> vs <u, FD(v)>"
    assert lhs == pytest.approx(vdot([u], [t]), rel=1e-9, abs=1e-9), f"{sp.name}: transpose identity"
    # A second pull-back from the same vjp gives the same result (the tape is reusable).
    cts2 = pull(u)
    for c1, c2 in zip(cts, cts2, strict=True):
        assert_close(c2, c1, what=f"{sp.name}: second call of f_vjp")


@pytest.mark.parametrize("sp", [s for s in SPECS if s.second_order], ids=lambda s: s.name)
@given(data=st.data())
def test_second_order(sp: Spec, data: Any) -> None:
    """Hessian-vector products (forward-over-reverse, reverse-over-reverse) vs FD of the gradient."""
    case, rng = _draw_case(data, sp)
    args = case.args(rng)
    extras = case.extras(rng)
    n = len(args)
    nums = tuple(range(n))
    out = case.fn(*args, *extras)
    w = tensor(rng, out.shape, REAL, out.dtype)

    def g(*a: Any) -> Any:
        return fl.sum(case.fn(*a, *extras) * w)

    # jvp(grad g) and vjp(grad g) (forward-over-reverse, reverse-over-reverse), entry by entry
    fl.testing.check_grads(fl.grad(g, argnums=nums), tuple(args), order=1, rtol=1e-4, atol=1e-5, eps=EPS)


def _batch_input(
    rng: random.Random, make: Callable[[random.Random], Any], size: int, axis: Any
) -> tuple[Any, list[Any]]:
    """(value passed to vmap, per-example values) for one argument."""
    if axis is None:
        x = make(rng)
        return x, [x] * size
    xs = [make(rng) for _ in range(size)]
    return fl.stack(xs, axis=axis), xs


@pytest.mark.parametrize("sp", [s for s in SPECS if s.vmap], ids=lambda s: s.name)
@given(data=st.data())
def test_vmap(sp: Spec, data: Any) -> None:
    """vmap(f), vmap(grad f) and vmap(jvp f) against a Python loop, with mixed in_axes/out_axes."""
    case, rng = _draw_case(data, sp)
    size = data.draw(st.integers(1, 3), label="batch size")
    makers: list[Callable[[random.Random], Any]] = [
        (lambda r, s=s, d=d: tensor(r, s, d)) for s, d in zip(case.shapes, case.domains, strict=True)
    ]
    n_diff = len(makers)
    proto = case.extras(random.Random(0))
    for i in range(len(proto)):
        makers.append(lambda r, i=i: case.extras(r)[i])
    in_axes = []
    for k, m in enumerate(makers):
        nd = len(m(random.Random(0)).shape) + 1
        if k >= n_diff and not case.batch_extras:
            in_axes.append(None)
        else:
            in_axes.append(data.draw(st.sampled_from([0, -1, None] + ([1] if nd > 1 else [])), label=f"in_axes[{k}]"))
    if all(a is None for a in in_axes[:n_diff]):
        in_axes[0] = 0
    vals, per = [], []
    for m, ax in zip(makers, in_axes, strict=True):
        v, p = _batch_input(rng, m, size, ax)
        vals.append(v)
        per.append(p)
    examples = [[p[b] for p in per] for b in range(size)]
    out0 = case.fn(*examples[0])
    out_axis = data.draw(st.sampled_from([0, -1] + ([1] if out0.ndim >= 1 else [])), label="out_axes")

    expected = fl.stack([case.fn(*ex) for ex in examples], axis=out_axis)
    got = fl.vmap(case.fn, in_axes=tuple(in_axes), out_axes=out_axis)(*vals)
    assert_close(got, expected, rtol=1e-12, atol=1e-12, what=f"{sp.name}: vmap vs loop, in_axes={in_axes}")

    # vmap of the gradient and of the jvp (exercises the batch rules of the derivative rules).
    nums = tuple(range(n_diff))

    def grad_f(*a: Any) -> Any:
        return fl.grad(lambda *d: fl.sum(fl.sin(case.fn(*d, *a[n_diff:]))), argnums=nums)(*a[:n_diff])

    def jvp_f(*a: Any) -> Any:
        d = a[:n_diff]
        return fl.jvp(lambda *x: case.fn(*x, *a[n_diff:]), tuple(d), tuple(x * 0.5 + 1.0 for x in d))[1]

    g_exp = [grad_f(*ex) for ex in examples]
    g_got = fl.vmap(grad_f, in_axes=tuple(in_axes))(*vals)
    for i in range(n_diff):
        assert_close(
            g_got[i], fl.stack([g[i] for g in g_exp]), rtol=1e-10, atol=1e-10, what=f"{sp.name}: vmap(grad) arg {i}"
        )
    j_exp = fl.stack([jvp_f(*ex) for ex in examples])
    j_got = fl.vmap(jvp_f, in_axes=tuple(in_axes))(*vals)
    assert_close(j_got, j_exp, rtol=1e-10, atol=1e-10, what=f"{sp.name}: vmap(jvp)")


@pytest.mark.parametrize("sp", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_float32(sp: Spec, data: Any) -> None:
    """float32 in -> float32 out; tangents, cotangents and gradients stay float32."""
    case, rng = _draw_case(data, sp)
    args = case.args(rng, fl.float32)
    extras = case.extras(rng)

    def f(*a: Any) -> Any:
        return case.fn(*a, *extras)

    out = f(*args)
    assert out.dtype == fl.float32, f"{sp.name}: float32 inputs gave {out.dtype}"
    ref = f(*[fl.astype(a, fl.float64) for a in args])
    assert_close(out, ref, rtol=1e-3, atol=1e-4, what=f"{sp.name}: float32 vs float64 values")
    _, t = fl.jvp(f, tuple(args), tuple(fl.ones_like(a) for a in args))
    assert t.dtype == fl.float32, f"{sp.name}: float32 jvp gave a {t.dtype} tangent"
    _, pull = fl.vjp(f, *args)
    for c in pull(fl.ones_like(out)):
        assert c.dtype == fl.float32, f"{sp.name}: float32 vjp gave a {c.dtype} cotangent"
    grads = fl.grad(lambda *a: fl.sum(f(*a)), argnums=tuple(range(len(args))))(*args)
    for gr, a in zip(grads, args, strict=True):
        assert gr.dtype == fl.float32 and gr.shape == a.shape


# ---------------------------------------------------------------------------------------
# Coverage: every differentiable primitive is exercised by some spec
# ---------------------------------------------------------------------------------------
# Control flow (bodies are traced programs; their rules transform those programs)
# ---------------------------------------------------------------------------------------
@spec("scan")
def _scan(draw: Draw) -> Case:
    n = draw(st.integers(0, 4))
    reverse = draw(st.booleans())

    def f(h0: Any, xs: Any, w: Any) -> Any:
        def cell(h: Any, x: Any) -> Any:
            h2 = fl.tanh(h * w + x)
            return h2, h2 * x + fl.sin(h)

        h, ys = fl.scan(cell, h0, xs, reverse=reverse)
        return h + fl.sum(ys, axis=0)

    return Case(f, [(3,), (n, 3), (3,)], [REAL, REAL, REAL])


@spec("scan_int_carry_and_consts")
def _scan_int(draw: Draw) -> Case:
    def f(x: Any, c: Any) -> Any:
        # an integer counter in the carry, a closed-over Tensor, a nested pytree carry
        def body(carry: Any, _: Any) -> Any:
            i, (a, b) = carry
            return (i + 1, (a * c + b, fl.cos(a) * i)), None

        (_, (a, b)), _ = fl.scan(body, (fl.asarray(0), (x, x * 0.5)), None, length=3)
        return a + b

    return Case(f, [(2,), (2,)], [REAL, Domain(-0.9, 0.9)])


@spec("cond")
def _cond(draw: Draw) -> Case:
    def f(x: Any, y: Any) -> Any:
        return fl.cond(fl.max(x) > 0.0, lambda a, b: fl.sin(a) * b, lambda a, b: a * b * b, x, y)

    return Case(f, draw(broadcastable(2)), [NONZERO, REAL])


@spec("switch")
def _switch(draw: Draw) -> Case:
    def f(x: Any) -> Any:
        i = fl.astype(fl.max(x) > 0.0, fl.int32) * 2 + fl.astype(fl.min(x) > 0.0, fl.int32)
        return fl.switch(i, [lambda a: a * a, lambda a: fl.exp(a), lambda a: -a, lambda a: fl.sin(a) * a], x)

    return Case(f, [draw(shapes())], [NONZERO])


@spec("while_loop")
def _while(draw: Draw) -> Case:
    def f(x: Any, w: Any) -> Any:
        # a fixed trip count (an integer counter) keeps finite differences away from a jump
        def body(c: Any) -> Any:
            i, h = c
            return i + 1, fl.sin(h) * w + h * 0.5

        return fl.while_loop(lambda c: c[0] < 3, body, (fl.asarray(0), x + w * 0.0))[1]

    return Case(f, draw(broadcastable(2)), [REAL, REAL])


# ---------------------------------------------------------------------------------------
# Primitives whose gradient is tested elsewhere, with the reason.
NOT_IN_TABLE: dict[str, str] = {}


def _exercised() -> set[str]:
    """Names of the primitives whose impl runs when each spec is differentiated (jvp and vjp)."""
    from hypothesis import settings

    seen: set[str] = set()
    saved = {name: p.impl for name, p in PRIMITIVES.items()}

    def wrap(name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            seen.add(name)
            return impl(*a, **k)

        return run

    def exercise(sp: Spec) -> None:
        @settings(max_examples=6, database=None)
        @given(data=st.data())
        def run(data: Any) -> None:
            case, rng = _draw_case(data, sp)
            args = case.args(rng)
            extras = case.extras(rng)
            fl.jvp(lambda *a: case.fn(*a, *extras), tuple(args), tuple(args))
            fl.vjp(lambda *a: case.fn(*a, *extras), *args)[1](case.fn(*args, *extras))

        run()

    try:
        for name, p in PRIMITIVES.items():
            p.impl = wrap(name, p.impl)
        for sp in SPECS:
            try:
                exercise(sp)
            except Exception:  # failures are reported by the other tests of the spec
                pass
    finally:
        for name, p in PRIMITIVES.items():
            p.impl = saved[name]
    return seen


def test_every_differentiable_primitive_has_a_spec() -> None:
    import importlib
    import pkgutil

    for m in pkgutil.walk_packages(fl.__path__, "functorch_lite."):  # register every primitive
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)
    seen = _exercised()
    missing = sorted(
        name for name, p in PRIMITIVES.items() if p.differentiable and name not in seen and name not in NOT_IN_TABLE
    )
    assert not missing, (
        f"differentiable primitives exercised by no spec in tests/test_rules.py: {missing}. "
        "Add an entry to the table (a function of float arrays, its domain and shapes)."
    )
