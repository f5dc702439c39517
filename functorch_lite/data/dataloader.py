"""``DataLoader``: batches from a dataset, seeded reshuffling, default collate, thread prefetch."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .. import _backend
from .. import _dtypes as D
from .. import _namespace as fl
from .._backend import backend_of
from .._core import tree_util
from .._core.tensor import Tensor, wrap
from .._errors import ConfigError
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader", "default_collate"]


def default_collate(batch: list[Any]) -> Any:
    """Stack a list of samples into a batch, recursing into tuples, lists, dicts and namedtuples.

    Tensors and arrays are stacked on their own backend; Python numbers become a Tensor
    (float32 / int64 / bool by the default dtypes); strings and other objects stay a list.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.data import default_collate
        >>> b = default_collate([{"x": fl.ones((2,)), "y": 1}, {"x": fl.zeros((2,)), "y": 0}])
        >>> b["x"].shape, b["y"].tolist()
        ((2, 2), [1, 0])
    """
    if not batch:
        raise ConfigError("default_collate: cannot collate an empty batch.")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return fl.stack(batch)
    if backend_of(elem) is not None:
        return fl.stack([fl.asarray(b) for b in batch])
    if isinstance(elem, bool):
        return fl.asarray(batch, dtype=D.bool_)
    if isinstance(elem, int):
        return fl.asarray(batch, dtype=D.int64)
    if isinstance(elem, (float, complex)):
        return fl.asarray(batch)
    if isinstance(elem, (str, bytes)) or elem is None:
        return list(batch)
    if isinstance(elem, Mapping):
        for b in batch[1:]:
            if set(b) != set(elem):
                raise ConfigError(
                    f"default_collate: samples have different keys ({sorted(map(str, elem))} vs "
                    f"{sorted(map(str, b))}); every sample needs the same keys."
                )
        out = {k: default_collate([b[k] for b in batch]) for k in elem}
        if type(elem) is not dict:
            try:
                return type(elem)(out)  # type: ignore[call-arg]
            except TypeError:
                return out
        return out
    if isinstance(elem, (tuple, list)):
        n = len(elem)
        for b in batch[1:]:
            if len(b) != n:
                raise ConfigError(
                    f"default_collate: samples have different lengths ({n} and {len(b)}); "
                    "every sample needs the same structure."
                )
        cols = [default_collate([b[i] for b in batch]) for i in range(n)]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):
            return type(elem)(*cols)
        return tuple(cols) if isinstance(elem, tuple) else cols
    return list(batch)


class DataLoader:
    """Iterate over a dataset in batches (``torch.utils.data.DataLoader``'s arguments, no workers).

    Args:
        dataset: a map-style dataset (``__getitem__`` + ``__len__``) or an IterableDataset.
        batch_size: samples per batch; None yields single samples uncollated.
        shuffle: a new random order every epoch (each ``iter``), drawn from ``seed``.
        sampler: the order of indices (excludes ``shuffle``).
        batch_sampler: yields lists of indices (excludes batch_size, shuffle, sampler, drop_last).
        drop_last: drop the last, incomplete batch.
        collate_fn: turns a list of samples into a batch (default: [`default_collate`][functorch_lite.data.default_collate]).
        seed: seed of the shuffling generator (None: drawn from the global generator, ``fl.manual_seed``).
        prefetch: number of batches a background thread prepares ahead (0: none).
        fetch: compute batches of dask-backed data (a TensorDataset of dask arrays), one
            graph submission per batch, so each batch is numpy-backed; with ``prefetch`` the
            next batches are fetched while the current one trains (False: yield lazy batches).

    A [`TensorDataset`][functorch_lite.data.TensorDataset] (or a Subset of one) with the default collate is read with
    one vectorised gather per batch, not a loop over samples.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite.data import DataLoader, TensorDataset
        >>> ds = TensorDataset(fl.arange(10), fl.arange(10) * 2)
        >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
        >>> len(loader), [x.shape[0] for x, y in loader]
        (3, [4, 4, 2])
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool = False,
        sampler: Any = None,
        batch_sampler: Any = None,
        drop_last: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        seed: int | None = None,
        prefetch: int = 0,
        fetch: bool = True,
    ) -> None:
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
        ):
            raise ConfigError(f"DataLoader: batch_size must be a positive int or None; got {batch_size!r}.")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ConfigError(f"DataLoader: prefetch must be an int >= 0; got {prefetch!r}.")
        self.dataset = dataset
        self.drop_last = bool(drop_last)
        self.prefetch = prefetch
        self.fetch = bool(fetch)
        self.seed = seed
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle or sampler is not None or batch_sampler is not None:
                raise ConfigError(
                    "DataLoader: an IterableDataset sets its own order; shuffle, sampler and "
                    "batch_sampler are not supported with it."
                )
        elif batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ConfigError(
                    "DataLoader: batch_sampler excludes batch_size, shuffle, sampler and drop_last; "
                    "give those to the batch sampler instead."
                )
            batch_size = None
        else:
            if sampler is not None and shuffle:
                raise ConfigError("DataLoader: sampler excludes shuffle; shuffle with the sampler (RandomSampler).")
            if sampler is None:
                sampler = RandomSampler(dataset, seed=seed) if shuffle else SequentialSampler(dataset)
            if batch_size is not None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._default_collate = collate_fn is None
        self.collate_fn = default_collate if collate_fn is None else collate_fn

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError when the stream has no length, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        batches = self._batches()
        if self.fetch:
            batches = _fetched(batches)
        return _prefetched(batches, self.prefetch) if self.prefetch else batches

    # -- one epoch ----------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        if self._iterable:
            yield from self._iterable_batches()
            return
        if self.batch_sampler is None:
            for i in self.sampler:
                yield self.dataset[i]
            return
        gather = getattr(self.dataset, "_gather_unchecked", None) if self._default_collate else None
        if gather is not None:
            yield from self._gathered(gather)
            return
        for indices in self.batch_sampler:
            yield self.collate_fn([self.dataset[i] for i in indices])

    def _gathered(self, gather: Callable[[Tensor], Any]) -> Iterator[Any]:
        bs = self.batch_sampler
        n = len(self.dataset)
        rows = getattr(self.dataset, "_rows", None)
        if isinstance(bs, BatchSampler) and type(bs.sampler) is SequentialSampler and rows is not None:
            stop = n - n % bs.batch_size if bs.drop_last else n
            for i in range(0, stop, bs.batch_size):  # in order: contiguous slices, no gather at all
                yield rows(i, min(i + bs.batch_size, n))
            return
        get = getattr(getattr(bs, "sampler", None), "epoch_indices", None)
        if isinstance(bs, BatchSampler) and callable(get) and (idx := get()) is not None:
            _check_bounds(idx, n)  # once per epoch; the batches are slices of it
            m = idx.shape[0]
            stop = m - m % bs.batch_size if bs.drop_last else m
            for i in range(0, stop, bs.batch_size):
                yield gather(idx[i : min(i + bs.batch_size, m)])
            return
        for indices in bs:
            idx = indices if isinstance(indices, Tensor) else fl.asarray(list(indices), dtype=D.int64)
            _check_bounds(idx, n)
            yield gather(idx)

    def _iterable_batches(self) -> Iterator[Any]:
        if self.batch_size is None:
            yield from self.dataset
            return
        batch: list[Any] = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)


def _check_bounds(idx: Tensor, n: int) -> None:
    if idx.shape[0] == 0:
        return
    lo, hi = int(fl.min(idx)), int(fl.max(idx))
    if lo < -n or hi >= n:
        raise IndexError(
            f"DataLoader: the sampler gave index {hi if hi >= n else lo}, out of range for a dataset "
            f"of length {n}; check the sampler's data source."
        )


_END = object()


def _fetched(batches: Iterator[Any]) -> Iterator[Any]:
    """Each batch with its dask-backed Tensors computed together (one submission per batch)."""
    nxp = _backend.numpy_backend.xp
    for batch in batches:
        leaves, treedef = tree_util.tree_flatten(batch)
        pos = [i for i, t in enumerate(leaves) if isinstance(t, Tensor) and t._t is None and _backend.is_lazy(t._a)]
        if pos:
            values = _backend.compute_lazy([leaves[i]._a for i in pos])
            for i, v in zip(pos, values, strict=True):
                leaves[i] = wrap(v, nxp)
            batch = tree_util.tree_unflatten(treedef, leaves)
        yield batch


def _prefetched(batches: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``batches`` in a daemon thread, ``depth`` batches ahead; errors re-raise in the consumer."""
    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put((True, b)):
                    return
            put((True, _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            put((False, exc))

    thread = threading.Thread(target=work, name="functorch_lite-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
