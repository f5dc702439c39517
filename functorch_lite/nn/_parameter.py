"""``Parameter``: the Tensor that a Module registers as learnable when assigned to an attribute."""

from __future__ import annotations

from typing import Any

from .._core.tensor import Tensor
from ._version import structure_changed

__all__ = ["Parameter", "is_parameter"]

_new = object.__new__


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter when assigned to an attribute.

    Parameter is only a marker: what makes a tensor a parameter is its
    registration in a module. Under transforms the registered slot may hold a
    plain (traced) Tensor.

    Args:
        data: a Tensor or anything [`functorch_lite.asarray`][functorch_lite.asarray] accepts.
        requires_grad: False registers the parameter frozen.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> p = nn.Parameter(fl.zeros((2,)))
        >>> p.shape, p.requires_grad
        ((2,), True)
    """

    __slots__ = ("_requires_grad",)

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        from .._ops._base import asarray

        if data is None:
            data = asarray([])
        t = data if isinstance(data, Tensor) else asarray(data)
        self._a = t._a
        self._xp = t._xp
        self._t = t._t
        self._requires_grad = bool(requires_grad)

    @property
    def requires_grad(self) -> bool:
        """False for a frozen parameter (no gradient, not trained)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self._requires_grad = bool(value)
        structure_changed()  # which parameters are trainable may have changed

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Set [`requires_grad`][functorch_lite.nn.Parameter.requires_grad] and return self."""
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: Any) -> Parameter:
        t = Tensor.__deepcopy__(self, memo)
        return Parameter(t, self.requires_grad)

    def __reduce__(self) -> Any:
        # the plain Tensor pickles with its backend (Tensor.__reduce__), so the Parameter comes
        # back on the backend it was saved from, whatever the default backend is then
        t = _new(Tensor)
        t._a, t._xp, t._t = self._a, self._xp, self._t
        return (Parameter, (t, self.requires_grad))


def is_parameter(x: Any) -> bool:
    """True for a [`Parameter`][functorch_lite.nn.Parameter].

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.is_parameter(nn.Linear(2, 2).weight), nn.is_parameter(fl.ones(()))
        (True, False)
    """
    return isinstance(x, Parameter)
