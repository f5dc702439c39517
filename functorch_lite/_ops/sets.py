"""Set functions of the standard: unique_all, unique_counts, unique_inverse, unique_values.

Their output shapes depend on the values, so they cannot be batched: under
``vmap`` (with a batched input) they raise [`DataDependentShapeError`][functorch_lite.DataDependentShapeError],
as JAX does. They carry no gradient. NaNs are distinct values, as the
standard says (the backend decides).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._core.tensor import Tensor
from .._errors import DataDependentShapeError
from ._base import Primitive, as_tensor, bind

__all__ = ["unique_all", "unique_counts", "unique_inverse", "unique_values"]


class UniqueAllResult(NamedTuple):
    values: Tensor
    indices: Tensor
    inverse_indices: Tensor
    counts: Tensor


class UniqueCountsResult(NamedTuple):
    values: Tensor
    counts: Tensor


class UniqueInverseResult(NamedTuple):
    values: Tensor
    inverse_indices: Tensor


_ALTERNATIVE = (
    "Call it outside vmap, or use a fixed-shape formulation: s = sort(x); "
    "first = concat([ones((1,), dtype=bool), s[1:] != s[:-1]]) marks the first occurrence of "
    "each value, and sum(astype(first, int64)) counts them."
)


def _batch_error(name: str) -> Any:
    def rule(n: int, vals: Any, dims: Any, **p: Any) -> Any:
        raise DataDependentShapeError(
            f"{name}: the number of unique values differs between batch elements, so its output "
            f"shape depends on the data and cannot be batched under vmap. {_ALTERNATIVE}"
        )

    return rule


def _impl(name: str) -> Any:
    def impl(xp: Any, x: Any) -> Any:
        r = getattr(xp, name)(x)
        if name == "unique_values":
            return (r,)
        r = tuple(r)
        if name in ("unique_all", "unique_inverse"):
            # The standard (2024.12) gives inverse_indices the shape of x; some backends flatten it.
            i = 2 if name == "unique_all" else 1
            if tuple(r[i].shape) != tuple(x.shape):
                r = r[:i] + (xp.reshape(r[i], x.shape),) + r[i + 1 :]
        return r

    return impl


def _prim(name: str) -> Primitive:
    p = Primitive(name, _impl(name), multiple_results=True, differentiable=False)
    p.batch = _batch_error(name)
    return p


unique_all_p = _prim("unique_all")
unique_counts_p = _prim("unique_counts")
unique_inverse_p = _prim("unique_inverse")
unique_values_p = _prim("unique_values")


def unique_all(x: Any, /) -> UniqueAllResult:
    """Unique values of ``x`` with first-occurrence indices, inverse indices and counts.

    Returns:
        ``UniqueAllResult(values, indices, inverse_indices, counts)``; ``inverse_indices``
        has the shape of ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> r = fl.unique_all(fl.asarray([3, 1, 3]))
        >>> r.values.tolist(), r.indices.tolist(), r.inverse_indices.tolist(), r.counts.tolist()
        ([1, 3], [1, 0], [1, 0, 1], [1, 2])
    """
    x = as_tensor(x, "unique_all")
    return UniqueAllResult(*bind(unique_all_p, (x,), {}))


def unique_counts(x: Any, /) -> UniqueCountsResult:
    """Unique values of ``x`` and how often each occurs.

    Returns:
        ``UniqueCountsResult(values, counts)``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.unique_counts(fl.asarray([3, 1, 3])).counts.tolist()
        [1, 2]
    """
    x = as_tensor(x, "unique_counts")
    return UniqueCountsResult(*bind(unique_counts_p, (x,), {}))


def unique_inverse(x: Any, /) -> UniqueInverseResult:
    """Unique values of ``x`` and, for each element, the index of its value among them.

    Returns:
        ``UniqueInverseResult(values, inverse_indices)``; ``inverse_indices`` has the shape
        of ``x``, and ``values[inverse_indices]`` rebuilds ``x``.

    Example:
        >>> import functorch_lite as fl
        >>> fl.unique_inverse(fl.asarray([[3, 1], [1, 3]])).inverse_indices.tolist()
        [[1, 0], [0, 1]]
    """
    x = as_tensor(x, "unique_inverse")
    return UniqueInverseResult(*bind(unique_inverse_p, (x,), {}))


def unique_values(x: Any, /) -> Tensor:
    """The unique values of ``x`` (sorted on most backends; the standard leaves the order open).

    Example:
        >>> import functorch_lite as fl
        >>> fl.unique_values(fl.asarray([3, 1, 3])).tolist()
        [1, 3]
    """
    x = as_tensor(x, "unique_values")
    return bind(unique_values_p, (x,), {})[0]
