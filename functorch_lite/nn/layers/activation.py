"""Activation modules, generated from their ``nn.functional`` functions (plus PReLU, which has a weight).

Each class takes the function's keyword arguments (after the input) as its
constructor arguments, with the same defaults, and prints them as PyTorch does.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any

import functorch_lite as fl

from ..._errors import ConfigError
from .. import functional as F
from .._module import Module, Parameter

# class name -> functional name
_TABLE = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "SELU": "selu",
    "CELU": "celu",
    "GELU": "gelu",
    "SiLU": "silu",
    "Mish": "mish",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Sigmoid": "sigmoid",
    "LogSigmoid": "log_sigmoid",
    "Hardtanh": "hardtanh",
    "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid",
    "Tanh": "tanh",
    "Tanhshrink": "tanhshrink",
    "Softmax": "softmax",
    "Softmin": "softmin",
    "LogSoftmax": "log_softmax",
    "GLU": "glu",
}

__all__ = [*_TABLE, "PReLU", "ACTIVATIONS"]


def _make(cls_name: str, fn_name: str) -> type[Module]:
    fn = getattr(F, fn_name)
    params = [
        p.replace(annotation=inspect.Parameter.empty)
        for p in list(inspect.signature(fn).parameters.values())[1:]
        if not p.name.startswith("_") and p.name != "dtype" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    ctor_sig = inspect.Signature(params)
    names = [p.name for p in params]

    def __init__(self: Module, *args: Any, **kwargs: Any) -> None:
        Module.__init__(self)
        try:
            bound = ctor_sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{cls_name}{ctor_sig}: {exc}") from None
        bound.apply_defaults()
        for k, v in bound.arguments.items():
            object.__setattr__(self, k, v)

    # the constructor's arguments, read as attributes (a user may change them) and passed in
    # the signature's order; one C call instead of a dict built per call
    get = operator.attrgetter(*names) if names else None
    positional = [p.name for p in list(inspect.signature(fn).parameters.values())[1 : 1 + len(names)]] == names

    if not positional:

        def forward(self: Module, input: Any) -> Any:
            return fn(input, **{k: getattr(self, k) for k in names})

    elif get is None:

        def forward(self: Module, input: Any) -> Any:
            return fn(input)

    elif len(names) == 1:

        def forward(self: Module, input: Any) -> Any:
            return fn(input, get(self))

    else:

        def forward(self: Module, input: Any) -> Any:
            return fn(input, *get(self))

    def extra_repr(self: Module) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in names if k != "inplace" or getattr(self, k))

    cls = type(
        cls_name,
        (Module,),
        {
            "__init__": __init__,
            "forward": forward,
            "extra_repr": extra_repr,
            "__module__": __name__,
            "__qualname__": cls_name,
            "function": staticmethod(fn),
        },
    )
    cls.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined,misc]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params]
    )
    example = repr(cls())
    cls.__doc__ = (
        f"Module form of [`{fn_name}`][functorch_lite.nn.functional.{fn_name}]; arguments {ctor_sig}.\n\n"
        "Example:\n"
        "    >>> from functorch_lite import nn\n"
        f"    >>> nn.{cls_name}()\n"
        f"    {example}\n"
    )
    return cls


for _cls_name, _fn_name in _TABLE.items():
    globals()[_cls_name] = _make(_cls_name, _fn_name)


class _Count(int):
    """PReLU's ``num_parameters``: the int PyTorch users read (``nn.PReLU(3).num_parameters == 3``)
    that is also callable as [`Module.num_parameters`][functorch_lite.nn.Module.num_parameters] (``prelu.num_parameters()``), so
    neither hides the other."""

    _module: Module

    def __new__(cls, value: int, module: Module) -> _Count:
        r = super().__new__(cls, value)
        r._module = module
        return r

    def __call__(self, trainable_only: bool = False) -> int:
        return Module.num_parameters(self._module, trainable_only)

    def __reduce__(self) -> Any:  # a plain int when pickled or copied
        return (int, (int(self),))


class PReLU(Module):
    """x for x > 0, weight * x otherwise, with a learnable weight (one, or one per channel).

    ``num_parameters`` is PyTorch's attribute (the number of weights, an int); calling it,
    ``prelu.num_parameters()``, is [`Module.num_parameters`][functorch_lite.nn.Module.num_parameters] as on every module.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.PReLU()(fl.asarray([-2.0, 2.0])).tolist()
        [-0.5, 2.0]
        >>> p = nn.PReLU(num_parameters=3)
        >>> p.num_parameters == 3, p.num_parameters()
        (True, 3)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(num_parameters, int) or num_parameters <= 0:
            raise ConfigError(f"PReLU: num_parameters must be a positive int; got {num_parameters!r}.")
        self._num_parameters = int(num_parameters)
        self.init = init
        self.weight = Parameter(fl.full((num_parameters,), init, dtype=dtype, device=device))

    @property  # type: ignore[override]
    def num_parameters(self) -> _Count:
        """The number of weights (PyTorch's constructor argument); callable as Module.num_parameters()."""
        return _Count(self.__dict__["_num_parameters"], self)

    @num_parameters.setter
    def num_parameters(self, value: int) -> None:
        self.__dict__["_num_parameters"] = int(value)

    def reset_parameters(self) -> None:
        """Weight back to ``init``."""
        from .. import init as I

        I.constant_(self.weight, self.init)

    def forward(self, input: Any) -> Any:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


ACTIVATIONS: dict[str, type[Module]] = {n: globals()[n] for n in [*_TABLE, "PReLU"]}
