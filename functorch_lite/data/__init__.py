"""Data loading: datasets, samplers and a DataLoader (``torch.utils.data``'s API, no workers).

Example:
    >>> import functorch_lite as fl
    >>> from functorch_lite import data
    >>> ds = data.TensorDataset(fl.arange(6), fl.arange(6) % 2)
    >>> [x.tolist() for x, _ in data.DataLoader(ds, batch_size=4)]
    [[0, 1, 2, 3], [4, 5]]
"""

from __future__ import annotations

from ._rng import Generator
from .dataloader import DataLoader, default_collate
from .dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "random_split",
    "DataLoader",
    "default_collate",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "Generator",
]
