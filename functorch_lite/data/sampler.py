"""Samplers: the order in which a DataLoader visits a map-style dataset.

Each sampler yields Python ints (as PyTorch's do) and can also hand over a whole
epoch as one int64 Tensor (``epoch_indices()``), which the DataLoader slices into
batches for a vectorised gather. Both views of one epoch are the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from typing import Any

from .. import _dtypes as D
from .. import _namespace as fl
from .._core.tensor import Tensor
from .._errors import ConfigError
from ._rng import as_generator

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
]


class Sampler:
    """Base class: iterate over indices of a dataset. Subclasses define ``__iter__`` and ``__len__``.

    Subclasses that can produce a whole epoch at once define ``epoch_indices()``.

    Example:
        >>> from functorch_lite.data import Sampler
        >>> class Evens(Sampler):
        ...     def __iter__(self):
        ...         return iter([0, 2, 4])
        ...     def __len__(self):
        ...         return 3
        >>> list(Evens())
        [0, 2, 4]
    """

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} has no len()")

    def epoch_indices(self) -> Tensor | None:
        """One epoch's indices as an int64 Tensor, or None if this sampler only iterates."""
        return None


class _TensorSampler(Sampler):
    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices().tolist())  # type: ignore[union-attr]


def _length(data_source: Any, where: str) -> int:
    if not isinstance(data_source, Sized):
        raise ConfigError(f"{where}: the data source must have a len(); got {type(data_source).__name__}.")
    return len(data_source)


class SequentialSampler(_TensorSampler):
    """``0, 1, ..., len(data_source) - 1`` in order.

    Example:
        >>> from functorch_lite.data import SequentialSampler
        >>> list(SequentialSampler(range(3)))
        [0, 1, 2]
    """

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __len__(self) -> int:
        return _length(self.data_source, "SequentialSampler")

    def epoch_indices(self) -> Tensor:
        return fl.arange(len(self), dtype=D.int64)


class RandomSampler(_TensorSampler):
    """A fresh random order every epoch (each ``iter``), from a seeded generator.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement (then ``num_samples`` may exceed the length).
        num_samples: how many indices per epoch (default: the dataset length). Without
            replacement and more than the length, whole permutations are concatenated.
        seed: seed of the generator (None: drawn from the global generator, ``fl.manual_seed``).
        generator: a ``data.Generator`` or ``random.Random`` to draw from instead.

    Example:
        >>> from functorch_lite.data import RandomSampler
        >>> sorted(RandomSampler(range(4), seed=0))
        [0, 1, 2, 3]
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        seed: int | None = None,
        generator: Any = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = bool(replacement)
        if num_samples is not None and (
            isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0
        ):
            raise ConfigError(f"RandomSampler: num_samples must be a positive int; got {num_samples!r}.")
        self._num_samples = num_samples
        self.generator = as_generator(seed, generator)

    @property
    def num_samples(self) -> int:
        """The number of indices drawn per epoch."""
        return _length(self.data_source, "RandomSampler") if self._num_samples is None else self._num_samples

    def __len__(self) -> int:
        return self.num_samples

    def epoch_indices(self) -> Tensor:
        n, m = _length(self.data_source, "RandomSampler"), self.num_samples
        if n == 0:
            return fl.zeros((0,), dtype=D.int64)
        if self.replacement:
            return self.generator.randint(n, m)
        parts = [self.generator.permutation(n) for _ in range(m // n)]
        if m % n:
            parts.append(self.generator.permutation(n)[: m % n])
        return parts[0] if len(parts) == 1 else fl.concat(parts)


class SubsetRandomSampler(_TensorSampler):
    """The given indices in a fresh random order every epoch.

    Example:
        >>> from functorch_lite.data import SubsetRandomSampler
        >>> sorted(SubsetRandomSampler([5, 7, 9], seed=0))
        [5, 7, 9]
    """

    def __init__(self, indices: Sequence[int] | Tensor, seed: int | None = None, generator: Any = None) -> None:
        self.indices = indices
        self._t = fl.asarray(list(indices) if not isinstance(indices, Tensor) else indices, dtype=D.int64)
        self.generator = as_generator(seed, generator)

    def __len__(self) -> int:
        return len(self.indices)

    def epoch_indices(self) -> Tensor:
        return fl.take(self._t, self.generator.permutation(len(self)))


class WeightedRandomSampler(_TensorSampler):
    """Indices ``0 .. len(weights) - 1`` drawn with probability proportional to ``weights``.

    Args:
        weights: non-negative weights (a sequence or a Tensor), not necessarily summing to one.
        num_samples: how many indices per epoch.
        replacement: with replacement (default); without, each index at most once
            (``num_samples <= number of non-zero weights``).
        seed, generator: as in [`RandomSampler`][functorch_lite.data.RandomSampler].

    Example:
        >>> from functorch_lite.data import WeightedRandomSampler
        >>> set(WeightedRandomSampler([0.0, 1.0, 0.0], num_samples=5, seed=0))
        {1}
    """

    def __init__(
        self,
        weights: Sequence[float] | Tensor,
        num_samples: int,
        replacement: bool = True,
        seed: int | None = None,
        generator: Any = None,
    ) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise ConfigError(f"WeightedRandomSampler: num_samples must be a positive int; got {num_samples!r}.")
        w = fl.asarray(weights if isinstance(weights, Tensor) else list(weights), dtype=D.float64)
        if w.ndim != 1 or w.shape[0] == 0:
            raise ConfigError(f"WeightedRandomSampler: weights must be a non-empty 1-D sequence; got shape {w.shape}.")
        if not bool(fl.all(fl.isfinite(w))) or bool(fl.any(w < 0)) or float(fl.sum(w)) <= 0:
            raise ConfigError("WeightedRandomSampler: weights must be finite, >= 0 and not all zero.")
        nonzero = int(fl.sum(fl.astype(w > 0, D.int64)))
        if not replacement and num_samples > nonzero:
            raise ConfigError(
                f"WeightedRandomSampler: cannot draw {num_samples} indices without replacement from "
                f"{nonzero} non-zero weights; lower num_samples or set replacement=True."
            )
        self.weights = w
        self.num_samples = num_samples
        self.replacement = bool(replacement)
        self.generator = as_generator(seed, generator)
        self._cdf = fl.cumulative_sum(w)

    def __len__(self) -> int:
        return self.num_samples

    def epoch_indices(self) -> Tensor:
        n = self.weights.shape[0]
        u = self.generator.uniform(self.num_samples if self.replacement else n)
        if self.replacement:
            idx = fl.searchsorted(self._cdf, u * self._cdf[-1], side="right")
            return fl.astype(fl.minimum(idx, n - 1), D.int64)
        # Efraimidis-Spirakis: the smallest -log(u) / w are a weighted sample without replacement
        keys = fl.where(self.weights > 0, -fl.log(u) / fl.where(self.weights > 0, self.weights, 1.0), fl.inf)
        return fl.astype(fl.argsort(keys)[: self.num_samples], D.int64)


class BatchSampler(Sampler):
    """Group another sampler's indices into lists of ``batch_size`` (the last one shorter unless ``drop_last``).

    Example:
        >>> from functorch_lite.data import BatchSampler, SequentialSampler
        >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ConfigError(f"BatchSampler: batch_size must be a positive int; got {batch_size!r}.")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for b in self.index_batches():
            yield b.tolist() if isinstance(b, Tensor) else b

    def index_batches(self) -> Iterator[Tensor | list[int]]:
        """The batches of one epoch: int64 Tensor slices where the sampler gives a whole epoch."""
        bs = self.batch_size
        get = getattr(self.sampler, "epoch_indices", None)
        idx = get() if callable(get) else None
        if idx is not None:
            n = idx.shape[0]
            stop = n - n % bs if self.drop_last else n
            for i in range(0, stop, bs):
                yield idx[i : min(i + bs, n)]
            return
        batch: list[int] = []
        for i in self.sampler:
            batch.append(int(i))
            if len(batch) == bs:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch
