"""``stop_gradient``: the value with no gradient flowing through it."""

from __future__ import annotations

from typing import Any

from .. import _dtypes as _dtypes
from .._core import tree_util as tu
from .._core.engine import Primitive, bind
from .._core.tensor import Tensor
from .._ops import _base as _base
from . import _ad as _ad

_new = object.__new__


# --------------------------------------------------------------------------------------
# stop_gradient
# --------------------------------------------------------------------------------------
stop_gradient_p = Primitive("stop_gradient", lambda xp, x: x, differentiable=False)
stop_gradient_p.batch = lambda n, vals, dims: (bind(stop_gradient_p, vals, {}), dims[0])


def stop_gradient(x: Any) -> Any:
    """The value of ``x`` (a pytree) with no gradient flowing through it.

    Example:
        >>> import functorch_lite as fl
        >>> fl.grad(lambda x: fl.sum(x * fl.stop_gradient(x)))(fl.asarray([3.0])).tolist()
        [3.0]
    """

    if x.__class__ is Tensor:  # the common case: one Tensor, no pytree walk
        p = x._t
        # stop_gradient(tracer) is stop_gradient(its primal) under forward and reverse mode
        while p is not None and p.trace.alive and isinstance(p, _ad.PrimalPayload):
            x = p.primal
            p = x._t
        if x._t is None:
            t = _new(Tensor)  # a new Tensor: rebinding it (t[i] = v) must not change x
            t._a = x._a
            t._xp = x._xp
            t._t = None
            return t
        return bind(stop_gradient_p, (x,), {})

    def f(t: Any) -> Any:
        if isinstance(t, Tensor):
            return bind(stop_gradient_p, (t,), {})
        return t

    return tu.tree_map(f, x)
