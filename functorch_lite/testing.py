"""Testing helpers for users: [`check_grads`][functorch_lite.testing.check_grads] checks derivatives against finite differences.

The way to test a custom rule (``custom_vjp``, ``custom_jvp``) or any differentiable code:

Example:
    >>> import functorch_lite as fl
    >>> @fl.custom_jvp
    ... def softplus(x):
    ...     return fl.log1p(fl.exp(x))
    >>> _ = softplus.defjvp(lambda p, t: (softplus(p[0]), t[0] / (1.0 + fl.exp(-p[0]))))
    >>> fl.testing.check_grads(softplus, (fl.asarray([-1.0, 0.5, 2.0]),), order=2)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import _dtypes as D
from ._core import tree_util as tu
from ._core.tensor import Tensor, backend_for
from ._errors import TransformError
from .transforms.api import _argname, _outname, _random_like, _to_leaf, jvp, vjp

__all__ = ["check_grads"]

_NAME = {"fwd": "jvp", "rev": "vjp"}
_ENTRYWISE = 32  # rev mode checks leaves up to this size entry by entry
# defaults by working precision: (finite-difference step, atol, rtol)
_DEFAULTS = {64: (1e-5, 1e-5, 1e-5), 32: (1e-3, 1e-2, 1e-2)}


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    order: int = 2,
    modes: str | Sequence[str] = ("fwd", "rev"),
    atol: float | None = None,
    rtol: float | None = None,
    eps: float | None = None,
) -> None:
    """Check ``f``'s jvp and vjp against central finite differences, up to ``order`` (JAX's ``check_grads``).

    Floating inputs are cast to float64 (complex to complex128) where their backend has it,
    so the differences are accurate. Random directions come from a fixed seed, so a check
    is reproducible. Each order checks, for every mode:

    * ``"fwd"``: ``jvp(f, args, t)`` against ``(f(x + eps t) - f(x - eps t)) / (2 eps)``,
      entry by entry, for a random tangent ``t``;
    * ``"rev"``: ``vjp(w)`` for a random output cotangent ``w``, entry by entry against the
      finite difference of ``<w, f>`` along that entry, for input leaves of up to 32 entries;
      for larger leaves, ``<vjp(w), t>`` against ``<w, finite difference along t>``
      (``<a, b> = Re(sum(a * b))`` over all leaves).

    ``order=2`` then checks, the same way, the derivatives of the derivatives:
    ``x -> jvp(f, x, t)[1]`` and ``x -> vjp(f, x)[1](w)`` for fixed random ``t``, ``w``
    (forward-over-forward, reverse-over-forward, and so on). This is how to test a
    ``custom_vjp`` / ``custom_jvp`` rule: a wrong rule fails here, naming what is wrong.

    A value passes when ``|got - expected| <= atol + rtol * |expected|`` (for an inner
    product, ``|expected|`` is the sum of the absolute values of its terms). The defaults
    are for float64; they loosen when ``f`` computes in lower precision (a backend without
    float64, or an ``f`` that casts to float32).

    Args:
        f: the function; its positional arguments are ``args`` (pytrees of arrays; integer
            leaves are held fixed).
        args: a tuple of ``f``'s positional arguments.
        order: how many times to differentiate (1: jvp and vjp of ``f``; 2: also of those).
        modes: ``"fwd"``, ``"rev"`` or both.
        atol: absolute tolerance (default ``1e-5`` in float64, ``1e-2`` in lower precision).
        rtol: relative tolerance (same defaults).
        eps: the finite-difference step (default ``1e-5`` in float64, ``1e-3`` otherwise).

    Raises:
        AssertionError: a derivative disagrees with finite differences. The message names
            the mode, the order, the argument, and the worst entry (expected vs got).

    Example:
        >>> import functorch_lite as fl
        >>> fl.testing.check_grads(lambda x, y: fl.sin(x) * y, (fl.asarray([0.5, 1.0]), fl.asarray(2.0)))
        >>> @fl.custom_vjp
        ... def double(x):
        ...     return 2.0 * x
        >>> double.defvjp(lambda x: (2.0 * x, None), lambda res, g: (3.0 * g,))   # wrong: 3, not 2
        >>> fl.testing.check_grads(double, (fl.asarray([1.0]),), order=1, modes="rev")
        Traceback (most recent call last):
        ...
        AssertionError: check_grads: rev mode (vjp) failed at order 1, for argument args[0]: entry (0,) of its cotangent is ...
    """
    if not isinstance(args, (tuple, list)):
        raise TransformError(
            f"check_grads: args must be a tuple of f's positional arguments; got {type(args).__name__}. "
            "Write check_grads(f, (x,)) for one argument."
        )
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise TransformError(f"check_grads: order must be an int >= 1; got {order!r}.")
    mode_list = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in mode_list if m not in _NAME]
    if bad or not mode_list:
        raise TransformError(f"check_grads: modes must be 'fwd', 'rev' or both; got {modes!r}.")
    leaves, tree = tu.tree_flatten(tuple(args))
    leaves = [_to_float64(_to_leaf(x, "check_grads")) for x in leaves]
    args64 = tu.tree_unflatten(tree, leaves)
    out = tu.tree_leaves(f(*args64))
    bits = 64
    for t in [*leaves, *out]:
        t = _to_leaf(t, "check_grads")
        if t.dtype.kind in "fc" and t.dtype not in (D.float64, D.complex128):
            bits = 32
    d_eps, d_atol, d_rtol = _DEFAULTS[bits]
    tol = (d_atol if atol is None else atol, d_rtol if rtol is None else rtol)
    _check(f, args64, order, mode_list, (), tol, d_eps if eps is None else eps)


def _to_float64(x: Tensor) -> Tensor:
    """``x`` in float64 (complex128) where its backend has that dtype; other leaves unchanged."""
    if x.dtype.kind not in "fc":
        return x
    wide = D.float64 if x.dtype.kind == "f" else D.complex128
    if x.dtype is wide or wide not in backend_for(x._xp).to_native:
        return x
    from ._ops.dtypes import astype

    return astype(x, wide)


def _is_diff(x: Any) -> bool:
    return isinstance(x, Tensor) and x.dtype.kind in "fc" and _size(x.shape) > 0


def _size(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _random_tree(leaves: Sequence[Any], seed: int) -> list[Any]:
    """A random unit-scale direction per floating leaf; zeros (held fixed) for the others."""
    from ._ops.creation import zeros_like

    return [
        _random_like(x, seed * 1009 + i) if _is_diff(x) else zeros_like(_to_leaf(x, "check_grads"))
        for i, x in enumerate(leaves)
    ]


def _describe(mode: str, chain: tuple[str, ...]) -> str:
    on = " of ".join(f"the {_NAME[m]}" for m in reversed(chain))
    where = f" (on {on} of f)" if chain else ""
    return f"{mode} mode ({_NAME[mode]}) failed at order {len(chain) + 1}{where}"


def _seed(chain: tuple[str, ...], what: int) -> int:
    """A fixed seed per derivative being checked (``chain``) and per kind of direction."""
    return 2 * (1 + sum((1 + (m == "rev")) * 3**i for i, m in enumerate(chain))) + what


class _Checker:
    """The first-order checks of one function at one point (finite differences shared by the modes)."""

    def __init__(
        self, f: Callable[..., Any], args: tuple[Any, ...], chain: tuple[str, ...], tol: tuple[float, float], eps: float
    ) -> None:
        self.f = f
        self.leaves, self.tree = tu.tree_flatten(tuple(args))
        self.paths = tu.path_names(tuple(args))
        self.chain = chain
        self.atol, self.rtol = tol
        self.eps = eps
        self.t = _random_tree(self.leaves, _seed(chain, 0))  # the random tangent
        self.diff = [i for i, x in enumerate(self.leaves) if _is_diff(x)]
        out = f(*tu.tree_unflatten(self.tree, self.leaves))
        self.out, self.out_tree = tu.tree_flatten(out)
        self.out_paths = tu.path_names(out)
        self.w = _random_tree(self.out, _seed(chain, 1))  # the random output cotangent

    def call(self, leaves: Sequence[Any]) -> list[Any]:
        return tu.tree_leaves(self.f(*tu.tree_unflatten(self.tree, list(leaves))))

    def fd(self, only: int | Sequence[int] | None = None) -> list[Any]:
        """Central differences along ``t`` (restricted to input leaf / leaves ``only`` when given)."""
        e = self.eps
        keep = self.diff if only is None else [only] if isinstance(only, int) else only
        use = [i in keep for i in range(len(self.leaves))]
        plus = [x + e * t if u else x for x, t, u in zip(self.leaves, self.t, use, strict=True)]
        minus = [x - e * t if u else x for x, t, u in zip(self.leaves, self.t, use, strict=True)]
        p = self.call(plus)
        m = self.call(minus)
        return [(a - b) / (2 * e) if _is_diff(a) else None for a, b in zip(p, m, strict=True)]

    def tangents(self, only: int | None = None) -> Any:
        """The random tangent as a tree of the arguments (zero outside input leaf ``only``)."""
        from ._ops.creation import zeros_like

        ts = [t if only is None or i == only else zeros_like(t) for i, t in enumerate(self.t)]
        return tu.tree_unflatten(self.tree, ts)

    def jvp_out(self, only: int | None = None) -> list[Any]:
        _, tan = jvp(self.f, tu.tree_unflatten(self.tree, self.leaves), self.tangents(only))
        return tu.tree_leaves(tan)

    # -- fwd ---------------------------------------------------------------------------
    def check_fwd(self, fd: list[Any]) -> None:
        worst = _worst_of(self.jvp_out(), fd, self.atol, self.rtol)
        if worst is None:
            return
        if len(self.diff) == 1:
            arg = _argname(self.paths[self.diff[0]])
        else:  # localise: the argument whose tangent alone gives the worst error
            found = [(w, k) for k in self.diff if (w := _worst_of(self.jvp_out(k), self.fd(k), self.atol, self.rtol))]
            arg = "every argument together"
            if found:
                worst, k = max(found, key=lambda c: c[0][0])
                arg = _argname(self.paths[k])
        _, leaf, idx, g, x, err, bound = worst
        raise AssertionError(
            f"check_grads: {_describe('fwd', self.chain)}, for argument {arg}: entry {idx} of "
            f"{_outname(self.out_paths[leaf])} of the jvp is {_fmt(g)}, but finite differences give "
            f"{_fmt(x)} (|error| {err:.3g} > tolerance {bound:.3g}; random tangent, eps={self.eps:g})."
        )

    # -- rev ---------------------------------------------------------------------------
    def check_rev(self, fd: list[Any]) -> None:
        w = self.w
        _, pull = vjp(self.f, *tu.tree_unflatten(self.tree, self.leaves))
        ct = tu.tree_leaves(pull(tu.tree_unflatten(self.out_tree, w)))
        small = [k for k in self.diff if _size(self.leaves[k].shape) <= _ENTRYWISE]
        big = [k for k in self.diff if k not in small]
        worst = None  # small leaves: every entry of the cotangent against its own difference of <w, f>
        for k in small:
            e = self._entrywise(k, w, ct[k])
            if e is not None and (worst is None or _ratio(e[3], e[4]) > _ratio(worst[1][3], worst[1][4])):
                worst = (k, e)
        if worst is not None:
            k, (idx, g, x, err, b) = worst
            raise AssertionError(
                f"check_grads: {_describe('rev', self.chain)}, for argument {_argname(self.paths[k])}: entry "
                f"{idx} of its cotangent is {_fmt(g)}, but finite differences give {_fmt(x)} (|error| "
                f"{err:.3g} > tolerance {b:.3g}; random output cotangent w, eps={self.eps:g})."
            )
        if not big:
            return
        # large leaves: <vjp(w), t> against <w, finite difference along t>
        lhs, _ = _pair([ct[i] for i in big], [self.t[i] for i in big])
        rhs, scale = _pair(w, fd if not small else self.fd(big))
        bound = self.atol + self.rtol * scale
        if abs(lhs - rhs) <= bound:
            return
        arg = "every large argument together"
        if len(big) == 1:
            arg = _argname(self.paths[big[0]])
        else:  # localise: the argument whose own pairing is the most wrong
            ratio = -1.0
            for i in big:
                li, _ = _pair([ct[i]], [self.t[i]])
                ri, si = _pair(w, self.fd(i))
                r = _ratio(abs(li - ri), self.atol + self.rtol * si)
                if r > 1.0 and r > ratio:
                    arg, ratio, lhs, rhs, bound = _argname(self.paths[i]), r, li, ri, self.atol + self.rtol * si
        raise AssertionError(
            f"check_grads: {_describe('rev', self.chain)}, for argument {arg}: <vjp(w), t> = {lhs:.6g}, "
            f"but finite differences give <w, df(t)> = {rhs:.6g} (|error| {abs(lhs - rhs):.3g} > tolerance "
            f"{bound:.3g}; random w and t, eps={self.eps:g})."
        )

    def _entrywise(self, k: int, w: list[Any], ct: Tensor) -> Any:
        """The worst entry of cotangent ``ct`` of input leaf ``k`` against differences of <w, f>."""
        from ._ops.creation import zeros_like
        from ._ops.manipulation import reshape

        x = self.leaves[k]
        flat = reshape(ct, (-1,))
        parts = [1.0, 1j] if x.dtype.kind == "c" else [1.0]
        worst = None
        for j in range(_size(x.shape)):
            idx = _unravel(j, x.shape)
            vals = []
            for unit in parts:
                e = reshape(zeros_like(x), (-1,))
                e[j] = unit
                d = reshape(e, x.shape) * self.eps
                p = self.call([x + d if i == k else v for i, v in enumerate(self.leaves)])
                m = self.call([x - d if i == k else v for i, v in enumerate(self.leaves)])
                fdj = [(a - b) / (2 * self.eps) if _is_diff(a) else None for a, b in zip(p, m, strict=True)]
                vals.append(_pair(w, fdj))
            # Re(ct_j * t_j) is the derivative along t_j: t_j = 1 gives Re(ct_j), t_j = 1j gives -Im(ct_j)
            expected: Any = vals[0][0] if len(vals) == 1 else complex(vals[0][0], -vals[1][0])
            scale = sum(v[1] for v in vals)
            got = flat[j].item()
            if x.dtype.kind != "c":
                got = float(got)
            err = abs(got - expected)
            bound = self.atol + self.rtol * scale
            if not err <= bound and (worst is None or _ratio(err, bound) > _ratio(worst[3], worst[4])):
                worst = (idx, got, expected, err, bound)
        return worst


def _check(
    f: Callable[..., Any],
    args: Any,
    order: int,
    modes: tuple[str, ...],
    chain: tuple[str, ...],
    tol: tuple[float, float],
    eps: float,
) -> None:
    c = _Checker(f, tuple(args), chain, tol, eps)
    if c.diff:
        fd = c.fd()
        if "fwd" in modes:
            c.check_fwd(fd)
        if "rev" in modes:
            c.check_rev(fd)
    if order <= 1:
        return
    for m in modes:
        if m == "fwd":  # x -> jvp(f, x, t)[1], t fixed
            t = c.tangents()
            g: Callable[..., Any] = lambda *a, t=t: jvp(f, a, t)[1]  # noqa: E731
        else:  # x -> vjp(f, x)[1](w), w fixed
            w = tu.tree_unflatten(c.out_tree, c.w)
            g = lambda *a, w=w: vjp(f, *a)[1](w)  # noqa: E731
        _check(g, args, order - 1, modes, chain + (m,), tol, eps)


def _pair(xs: Sequence[Any], ys: Sequence[Any]) -> tuple[float, float]:
    """``(Re(sum(x * y)), sum(|x| * |y|))`` over the pairs whose entries are both present."""
    from ._ops.elementwise import abs as _abs
    from ._ops.elementwise import real
    from ._ops.reduction import sum as _sum

    val = 0.0
    scale = 0.0
    for x, y in zip(xs, ys, strict=True):
        if x is None or y is None or not _is_diff(x) or not _is_diff(y):
            continue
        p = x * y
        val += float(_sum(real(p) if p.dtype.kind == "c" else p))
        scale += float(_sum(_abs(x) * _abs(y)))
    return val, scale


def _worst_of(got: Sequence[Any], want: Sequence[Any], atol: float, rtol: float) -> Any:
    """``(ratio, leaf, index, got, want, |error|, bound)`` of the worst failing entry, or None."""
    worst = None
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if w is None or not _is_diff(_to_leaf(g, "check_grads")):
            continue
        r = _worst_entry(_to_leaf(g, "check_grads"), w, atol, rtol)
        if r is not None and (worst is None or r[0] > worst[0]):
            worst = (r[0], i, *r[1:])
    return worst


def _worst_entry(got: Tensor, want: Tensor, atol: float, rtol: float) -> Any:
    from ._ops.elementwise import abs as _abs
    from ._ops.elementwise import isnan, maximum
    from ._ops.manipulation import reshape
    from ._ops.searching import argmax, where

    g = reshape(got, (-1,))
    w = reshape(want, (-1,))
    err = _abs(g - w)
    bound = _abs(w) * rtol + atol
    fail = ~(err <= bound) & ~(isnan(g) & isnan(w))  # NaN fails, unless both sides are NaN there
    ratio = where(fail, where(isnan(err), float("inf"), err / maximum(bound, _TINY)), 0.0)
    j = int(argmax(ratio))
    r = float(ratio[j])
    if r == 0.0:
        return None
    gv, wv = g[j].item(), w[j].item()
    return (r, _unravel(j, got.shape), gv, wv, float(err[j]), float(bound[j]))


_TINY = 1e-30


def _ratio(err: float, bound: float) -> float:
    """How many tolerances ``err`` is (inf for a NaN error or a zero tolerance)."""
    if err != err:
        return float("inf")
    return err / max(bound, _TINY)


def _unravel(j: int, shape: Sequence[int]) -> tuple[int, ...]:
    idx = []
    for s in reversed(tuple(shape)):
        idx.append(j % s)
        j //= s
    return tuple(reversed(idx))


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, (float, complex)) else str(v)
