"""Datasets: map-style (``__getitem__`` / ``__len__``) and iterable, as in ``torch.utils.data``.

A dataset may also define ``get_batch(indices)`` (indices: an int64 Tensor) returning a
whole collated batch; [`TensorDataset`][functorch_lite.data.TensorDataset] does so with one vectorised gather per
tensor, and the DataLoader uses it instead of a Python loop over samples.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .. import _namespace as fl
from .._core.tensor import Tensor, backend_for, wrap
from .._errors import ConfigError, ShapeError
from ._rng import as_generator

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "random_split"]


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``.

    Example:
        >>> from functorch_lite.data import Dataset
        >>> class Squares(Dataset):
        ...     def __getitem__(self, i):
        ...         return i * i
        ...     def __len__(self):
        ...         return 4
        >>> [Squares()[i] for i in range(4)]
        [0, 1, 4, 9]
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset:
    """A dataset that is a stream: subclasses define ``__iter__`` (and ``__len__`` if known).

    Example:
        >>> from functorch_lite.data import IterableDataset
        >>> class Count(IterableDataset):
        ...     def __iter__(self):
        ...         return iter(range(3))
        >>> list(Count())
        [0, 1, 2]
    """

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


def _check_index(i: Any, n: int, where: str) -> int:
    if isinstance(i, Tensor):
        i = int(i)
    if isinstance(i, bool) or not isinstance(i, int):
        try:
            i = int(i.__index__())
        except AttributeError:
            raise TypeError(f"{where}: an index must be an int; got {type(i).__name__}.") from None
    if not -n <= i < n:
        raise IndexError(f"{where}: index {i} is out of range for a dataset of length {n}.")
    return i + n if i < 0 else i


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension.

    ``dataset[i]`` is a tuple of the ``i``-th rows; ``get_batch(indices)`` gathers a whole
    batch with one ``take`` per tensor, on the tensors' own backend.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.data import TensorDataset
        >>> ds = TensorDataset(fl.arange(6).reshape(3, 2), fl.asarray([0, 1, 0]))
        >>> len(ds), ds[1][0].tolist()
        (3, [2, 3])
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ConfigError("TensorDataset: give at least one tensor.")
        ts = tuple(fl.asarray(t) for t in tensors)
        for i, t in enumerate(ts):
            if t.ndim == 0:
                raise ShapeError(f"TensorDataset: tensor {i} is 0-d; every tensor needs a first (sample) dimension.")
        n = ts[0].shape[0]
        for i, t in enumerate(ts):
            if t.shape[0] != n:
                raise ShapeError(
                    f"TensorDataset: tensor {i} has {t.shape[0]} rows but tensor 0 has {n}; "
                    "all tensors must share their first dimension."
                )
        self.tensors = ts

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        i = _check_index(index, len(self), "TensorDataset")
        return tuple(t[i] for t in self.tensors)

    def get_batch(self, indices: Any) -> tuple[Tensor, ...]:
        """The rows at ``indices`` (an int Tensor or list), one gather per tensor."""
        idx = _as_index(indices)
        if idx.dtype.kind not in "iu" or idx.ndim != 1:
            raise TypeError(
                f"TensorDataset.get_batch: indices must be a 1-D int sequence; got {idx.dtype.name}, shape {idx.shape}."
            )
        n = len(self)
        if idx.shape[0]:
            lo, hi = int(fl.min(idx)), int(fl.max(idx))
            if lo < -n or hi >= n:
                raise IndexError(
                    f"TensorDataset.get_batch: index {hi if hi >= n else lo} is out of range for {n} samples."
                )
            if lo < 0:
                idx = idx % n
        return self._gather_unchecked(idx)

    def _rows(self, start: int, stop: int) -> tuple[Tensor, ...]:
        return tuple(t[start:stop] for t in self.tensors)

    def _gather_unchecked(self, idx: Tensor) -> tuple[Tensor, ...]:
        # The DataLoader checks a whole epoch's indices once, then gathers without re-checking.
        # NOTE: concrete data goes straight to the backend's take (the standard's own function):
        # a loader's gather is never differentiated, and this keeps it at numpy's speed.
        out = []
        for t in self.tensors:
            if t._t is None and _backend.is_lazy(t._a):  # dask: a lazy gather, computed by the loader
                out.append(wrap(_backend.gather_rows(t._a, idx.concrete()._a), t._xp))
                continue
            i = _on(idx, t)
            if t._t is None and i._t is None:
                out.append(wrap(backend_for(t._xp).fix(t._xp.take(t._a, i._a, axis=0)), t._xp))
            else:
                out.append(t[i])
        return tuple(out)


def _on(idx: Tensor, like: Tensor) -> Tensor:
    """``idx`` on ``like``'s backend."""
    return idx if idx._xp is like._xp else fl.to_backend(idx, like.backend)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Example:
        >>> from functorch_lite.data import Subset
        >>> s = Subset(list("abcde"), [4, 0])
        >>> len(s), s[0], s[1]
        (2, 'e', 'a')
    """

    def __init__(self, dataset: Any, indices: Sequence[int] | Tensor) -> None:
        self.dataset = dataset
        self.indices = indices.tolist() if isinstance(indices, Tensor) else list(indices)
        self._t: Tensor | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[_check_index(index, len(self), "Subset")]]

    def _index_tensor(self) -> Tensor:
        if self._t is None:
            self._t = fl.asarray(self.indices, dtype=D.int64) if self.indices else fl.zeros((0,), dtype=D.int64)
        return self._t

    def __getattr__(self, name: str) -> Any:
        # get_batch exists exactly when the wrapped dataset gathers batches
        if name in ("dataset", "indices", "_t"):
            raise AttributeError(name)
        if name == "get_batch" and hasattr(self.dataset, "get_batch"):
            return lambda indices: self.dataset.get_batch(fl.take(self._index_tensor(), _as_index(indices)))
        if name == "_gather_unchecked" and hasattr(self.dataset, "_gather_unchecked"):
            return lambda idx: self.dataset._gather_unchecked(self._index_tensor()[idx])
        raise AttributeError(name)


def _as_index(indices: Any) -> Tensor:
    return indices if isinstance(indices, Tensor) else fl.asarray(list(indices), dtype=D.int64)


class ConcatDataset(Dataset):
    """The datasets one after the other.

    Example:
        >>> from functorch_lite.data import ConcatDataset
        >>> c = ConcatDataset([[1, 2], [3]])
        >>> len(c), c[2], c[-1]
        (3, 3, 3)
    """

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ConfigError("ConcatDataset: give at least one dataset.")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise ConfigError("ConcatDataset: iterable datasets cannot be indexed; chain their iterators instead.")
        self.cumulative_sizes: list[int] = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        i = _check_index(index, len(self), "ConcatDataset")
        d = bisect.bisect_right(self.cumulative_sizes, i)
        start = self.cumulative_sizes[d - 1] if d else 0
        return self.datasets[d][i - start]


def random_split(
    dataset: Any, lengths: Sequence[int | float], seed: int | None = None, generator: Any = None
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random [`Subset`][functorch_lite.data.Subset]s of the given lengths.

    ``lengths`` are ints summing to ``len(dataset)`` or fractions summing to 1 (floored,
    the remainder handed out one by one from the first split, as PyTorch does).

    Example:
        >>> from functorch_lite.data import random_split
        >>> a, b = random_split(range(10), [0.8, 0.2], seed=0)
        >>> len(a), len(b), sorted(list(a) + list(b)) == list(range(10))
        (8, 2, True)
    """
    n = len(dataset)
    lengths = list(lengths)
    if (
        lengths
        and all(isinstance(x, float) for x in lengths)
        and math.isclose(sum(lengths), 1.0)
        and sum(lengths) <= 1 + 1e-9
    ):
        if any(x < 0 for x in lengths):
            raise ConfigError(f"random_split: fractions must be >= 0; got {lengths!r}.")
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in lengths):
            raise ConfigError(
                f"random_split: lengths must be non-negative ints summing to the dataset length ({n}) "
                f"or fractions summing to 1; got {lengths!r}."
            )
        sizes = [int(x) for x in lengths]
        if sum(sizes) != n:
            raise ConfigError(
                f"random_split: the lengths sum to {sum(sizes)} but the dataset has {n} samples; "
                "make them add up (or pass fractions summing to 1)."
            )
    perm = as_generator(seed, generator).permutation(n).tolist()
    out, start = [], 0
    for s in sizes:
        out.append(Subset(dataset, perm[start : start + s]))
        start += s
    return out
