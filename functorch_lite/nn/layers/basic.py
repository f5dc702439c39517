"""Basic layers: Linear, Bilinear, Identity, Flatten, Unflatten, Dropout, Dropout1d/2d, Embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import functorch_lite as fl

from ..._errors import ConfigError, ShapeError
from .. import functional as F
from .. import init
from .._module import Module, Parameter

__all__ = [
    "Linear",
    "Bilinear",
    "Identity",
    "Flatten",
    "Unflatten",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Embedding",
    "split_key",
]


def split_key(key: Any, n: int) -> list[Any]:
    """``n`` independent keys from ``key`` (``None`` stays ``None``: the global generator is used).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.nn.layers.basic import split_key
        >>> len(split_key(fl.random.key(0), 3)), split_key(None, 2)
        (3, [None, None])
    """
    if key is None:
        return [None] * n
    from functorch_lite import random as R

    return list(R.split(key, n))


def _check_positive(name: str, value: Any, layer: str, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{layer}: {name} must be {kind} int; got {value!r}.")


def _empty(shape: tuple[int, ...], dtype: Any, device: Any) -> Parameter:
    return Parameter(fl.empty(shape, dtype=dtype, device=device))


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features) as in PyTorch.

    Initialised like PyTorch: kaiming_uniform_(weight, a=sqrt(5)), bias ~ U(-1/sqrt(in), 1/sqrt(in)).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> m = nn.Linear(3, 2)
        >>> m
        Linear(in_features=3, out_features=2, bias=True)
        >>> m(fl.ones((5, 3))).shape
        (5, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        _check_positive("in_features", in_features, "Linear", allow_zero=True)
        _check_positive("out_features", out_features, "Linear", allow_zero=True)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = _empty((out_features, in_features), dtype, device)
        if bias:
            self.bias = _empty((out_features,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(key=key)

    def reset_parameters(self, *, key: Any = None) -> None:
        """Re-draw the parameters with PyTorch's default initialisation."""
        kw, kb = split_key(key, 2)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), key=kw)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound, key=kb)

    def forward(self, input: Any) -> Any:
        if self.__class__ is Linear:
            # the registry read directly: ``self.weight`` reaches Module.__getattr__ only after
            # Python has built an AttributeError (about 0.6 us a read on 3.11); a subclass may
            # define ``weight`` as a property, so it reads attributes
            p = self._parameters
            if "weight" in p and "bias" in p:  # (else deleted, or replaced by a plain attribute)
                return F.linear(input, p["weight"], p["bias"])  # type: ignore[arg-type]  # (None fails there, as self.weight would)
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y = x1 @ weight[k] @ x2 + bias_k, weight (out_features, in1_features, in2_features).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Bilinear(2, 3, 4)(fl.ones((5, 2)), fl.ones((5, 3))).shape
        (5, 4)
    """

    def __init__(
        self,
        in1_features: int,
        in2_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        for n, v in (("in1_features", in1_features), ("in2_features", in2_features), ("out_features", out_features)):
            _check_positive(n, v, "Bilinear")
        self.in1_features = in1_features
        self.in2_features = in2_features
        self.out_features = out_features
        self.weight = _empty((out_features, in1_features, in2_features), dtype, device)
        if bias:
            self.bias = _empty((out_features,), dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(key=key)

    def reset_parameters(self, *, key: Any = None) -> None:
        """U(-1/sqrt(in1), 1/sqrt(in1)) for weight and bias, as in PyTorch."""
        kw, kb = split_key(key, 2)
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound, key=kw)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound, key=kb)

    def forward(self, input1: Any, input2: Any) -> Any:
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class Identity(Module):
    """Returns its input (arguments to the constructor are ignored).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Identity()(fl.ones((2,))).tolist()
        [1.0, 1.0]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Flatten(Module):
    """Flatten dims ``start_dim`` .. ``end_dim`` into one.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Flatten()(fl.ones((2, 3, 4))).shape
        (2, 12)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> Any:
        x = input
        nd = x.ndim
        if nd == 0:
            return fl.reshape(x, (1,))
        s = self.start_dim % nd
        e = self.end_dim % nd
        if s > e:
            raise ShapeError(
                f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for a {nd}-d input."
            )
        shape = x.shape
        n = 1
        for d in shape[s : e + 1]:
            n *= d
        return fl.reshape(x, shape[:s] + (n,) + shape[e + 1 :])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expand dim ``dim`` into ``unflattened_size``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Unflatten(1, (3, 4))(fl.ones((2, 12))).shape
        (2, 3, 4)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input: Any) -> Any:
        x = input
        d = self.dim % x.ndim
        return fl.reshape(x, x.shape[:d] + self.unflattened_size + x.shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class _DropoutBase(Module):
    _fn: Any = None

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ConfigError(f"{type(self).__name__}: p must be a probability in [0, 1]; got {p!r}.")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Any) -> Any:
        return type(self)._fn(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutBase):
    """In training, zero each element with probability p and scale the rest by 1/(1-p).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Dropout(0.5).eval()(fl.ones((3,))).tolist()
        [1.0, 1.0, 1.0]
    """

    _fn = staticmethod(F.dropout)


class Dropout1d(_DropoutBase):
    """In training, zero whole channels of (N, C, L) input with probability p.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Dropout1d().eval()(fl.ones((2, 3, 4))).shape
        (2, 3, 4)
    """

    _fn = staticmethod(F.dropout1d)


class Dropout2d(_DropoutBase):
    """In training, zero whole channels of (N, C, H, W) input with probability p.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> nn.Dropout2d().eval()(fl.ones((2, 3, 4, 4))).shape
        (2, 3, 4, 4)
    """

    _fn = staticmethod(F.dropout2d)


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``; weight ~ N(0, 1).

    Row ``padding_idx`` starts at zero and receives no gradient.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import nn
        >>> emb = nn.Embedding(10, 3, padding_idx=0)
        >>> emb(fl.asarray([[0, 5]])).shape, emb.weight[0].tolist()
        ((1, 2, 3), [0.0, 0.0, 0.0])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        key: Any = None,
    ) -> None:
        super().__init__()
        _check_positive("num_embeddings", num_embeddings, "Embedding")
        _check_positive("embedding_dim", embedding_dim, "Embedding")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ConfigError(
                    f"Embedding: padding_idx={padding_idx} is out of range for {num_embeddings} embeddings."
                )
            padding_idx %= num_embeddings
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise ConfigError("Embedding: max_norm, scale_grad_by_freq and sparse are not supported.")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        if _weight is not None:
            w = _weight if isinstance(_weight, fl.Tensor) else fl.asarray(_weight)
            if w.shape != (num_embeddings, embedding_dim):
                raise ShapeError(
                    f"Embedding: _weight must have shape {(num_embeddings, embedding_dim)}; got {w.shape}."
                )
            self.weight = Parameter(w, requires_grad=not _freeze)
        else:
            self.weight = Parameter(
                fl.empty((num_embeddings, embedding_dim), dtype=dtype, device=device), requires_grad=not _freeze
            )
            self.reset_parameters(key=key)

    def reset_parameters(self, *, key: Any = None) -> None:
        """N(0, 1) weights, with the padding row zeroed."""
        init.normal_(self.weight, key=key)
        if self.padding_idx is not None:
            w = self.weight
            w[self.padding_idx, ...] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        """An Embedding holding ``embeddings`` (frozen by default).

        Example:
            >>> import functorch_lite as fl
            >>> from functorch_lite import nn
            >>> nn.Embedding.from_pretrained(fl.ones((4, 2))).num_embeddings
            4
        """
        e = embeddings if isinstance(embeddings, fl.Tensor) else fl.asarray(embeddings)
        if e.ndim != 2:
            raise ShapeError(f"Embedding.from_pretrained: embeddings must be 2-d; got shape {e.shape}.")
        return cls(e.shape[0], e.shape[1], padding_idx=padding_idx, _weight=e, _freeze=freeze)

    def forward(self, input: Any) -> Any:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s
