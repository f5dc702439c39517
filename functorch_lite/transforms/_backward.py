"""The backward pass: cotangents propagated from a tape's outputs back to its inputs."""

from __future__ import annotations

from types import FunctionType
from typing import Any

from .. import _backend
from .._core.tensor import Tensor, wrap
from ._fit import _fit_raw, fit_cotangent
from ._payloads import Node

__all__ = ["backward", "as_cotangent"]

_FAST = _backend.FAST_NAMESPACES


def as_cotangent(c: Any, xp: Any) -> Any:
    """A node's accumulated cotangent as a Tensor (backward may store backend arrays)."""
    if c is None or isinstance(c, Tensor):
        return c
    return wrap(c, _backend.lifted_namespace(c, xp) or xp)  # (dask reaching numpy: mixed placement)


def _acc(cur: Any, c: Any, xp: Any) -> Any:
    """``cur + c`` where either may be a backend array or a Tensor."""
    if cur is None:
        return c
    if isinstance(cur, Tensor):
        if not isinstance(c, Tensor):
            c = as_cotangent(c, xp)
    elif isinstance(c, Tensor):
        cur = as_cotangent(cur, xp)
    return cur + c


def backward(tape: list[Node], free: bool) -> None:
    """Propagate the cotangents set on output nodes back through ``tape``.

    A node whose primitive has an array-level rule (``avjp``), whose residuals are concrete
    and whose cotangent is concrete runs that rule on backend arrays and passes backend
    arrays on; every other node runs the Tensor-level rule (differentiable, batchable).
    """
    last_xp = fx = None
    for node in reversed(tape):
        ct = node.ct
        if ct is None:
            continue
        prim = node.prim
        primals = node.primals
        if node.multi:
            if all(c is None for c in ct):
                continue
            node.ct = [None] * len(ct)  # multi-output nodes only ever hold Tensors (see below)
        else:
            node.ct = None
            av = prim.avjp
            if av is not None and node.raw:
                if isinstance(ct, Tensor):
                    ga = ct._a if ct._t is None else None
                else:
                    ga = ct
                cts = None
                if ga is not None and ga.__class__ is not node.out._a.__class__:
                    lx = _backend.lifted_namespace(ga, node.out._xp)
                    if lx is not None:  # a dask cotangent reaching a numpy node: Tensor rules lift
                        ct = wrap(ga, lx)
                        ga = None
                if ga is not None:
                    out = node.out
                    xp = out._xp
                    if xp is not last_xp:
                        last_xp = xp
                        fx = _FAST.get(xp, xp)
                    parents = node.parents
                    # elementwise rules with one input needing a gradient: no tuples, no loop
                    f1 = prim.aunary
                    if f1 is not None:
                        pr = primals[0]
                        par = parents[0]
                        c = f1(fx, ga, pr._a, out._a)
                    elif prim.abinary is not None and (parents[0] is None or parents[1] is None):
                        x, y = primals
                        xa = x._a if isinstance(x, Tensor) else x
                        ya = y._a if isinstance(y, Tensor) else y
                        if parents[1] is None:
                            pr, par, f1 = x, parents[0], prim.abinary[0]
                        else:
                            pr, par, f1 = y, parents[1], prim.abinary[1]
                        c = None if f1 is None else f1(fx, ga, xa, ya, out._a)
                    else:
                        par = None
                    if par is not None:
                        # (fit and accumulate written out here and in each loop below on purpose: no call per edge)
                        if c is not None:
                            pa = pr._a
                            if c.shape != pa.shape or (c.dtype is not pa.dtype and c.dtype != pa.dtype):
                                c = _fit_raw(c, pr, xp, fx)
                            tgt = par if par.__class__ is Node else par.node
                            if tgt.multi:
                                tgt.ct[par.idx] = _acc(tgt.ct[par.idx], as_cotangent(c, xp), xp)
                            else:
                                cur = tgt.ct
                                if cur is None:
                                    tgt.ct = c
                                elif cur.__class__ is c.__class__ and c.__class__ is not Tensor:
                                    tgt.ct = cur + c  # (two backend arrays: _acc's common case)
                                else:
                                    tgt.ct = _acc(cur, c, xp)
                        if free:
                            node.primals = node.out = node.params = None  # type: ignore[assignment]
                        continue
                    cts = av(fx, ga, out._a, primals, parents, node.params)
                if cts is not None:  # (an array-level rule may decline: None)
                    for i, par in enumerate(parents):
                        if par is None:
                            continue
                        c = cts[i]
                        if c is None:
                            continue
                        pa = primals[i]._a
                        if c.shape != pa.shape or (c.dtype is not pa.dtype and c.dtype != pa.dtype):
                            c = _fit_raw(c, primals[i], xp, fx)
                        tgt = par if par.__class__ is Node else par.node
                        if tgt.multi:
                            tgt.ct[par.idx] = _acc(tgt.ct[par.idx], as_cotangent(c, xp), xp)
                        else:
                            cur = tgt.ct
                            if cur is None:
                                tgt.ct = c
                            elif cur.__class__ is c.__class__ and c.__class__ is not Tensor:
                                tgt.ct = cur + c
                            else:
                                tgt.ct = _acc(cur, c, xp)
                    if free:
                        node.primals = node.out = node.params = None  # type: ignore[assignment]
                    continue
            if not isinstance(ct, Tensor):
                ct = wrap(ct, _backend.lifted_namespace(ct, node.out._xp) or node.out._xp)
        cts = prim.vjp(ct, node.out, *primals, **node.params)
        for i, par in enumerate(node.parents):
            if par is None:
                continue
            c = cts[i]
            if c is None:
                continue
            if c.__class__ is FunctionType:
                c = c()
                if c is None:
                    continue
            pr = primals[i]
            if not (
                c.__class__ is Tensor
                and c._t is None
                and pr._t is None
                and c._a.shape == pr._a.shape
                and c._a.dtype is pr._a.dtype
            ):
                c = fit_cotangent(c, pr)
            tgt = par if par.__class__ is Node else par.node
            if tgt.multi:
                tgt.ct[par.idx] = _acc(tgt.ct[par.idx], c, c._xp)
            else:
                cur = tgt.ct
                tgt.ct = c if cur is None else (cur + c if isinstance(cur, Tensor) else _acc(cur, c, c._xp))
        if free:
            node.primals = node.out = node.params = None  # type: ignore[assignment]
