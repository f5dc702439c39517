"""data: datasets, samplers and the DataLoader."""

from __future__ import annotations

import collections
from typing import NamedTuple

import pytest

import functorch_lite as fl
from functorch_lite import data


def _tensor_ds(n=23, d=3):
    x = fl.reshape(fl.arange(n * d, dtype=fl.float32), (n, d))
    return data.TensorDataset(x, fl.arange(n))


class Squares(data.Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"x": (float(i), [i, -i]), "y": i * i, "name": f"s{i}"}

    def __len__(self):
        return self.n


class Stream(data.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def _ids(batches):
    return [i for _, y in batches for i in y.tolist()]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [1, 4, 23, 50])
def test_every_sample_once_per_epoch_and_len(shuffle, drop_last, batch_size):
    ds = _tensor_ds(23)
    loader = data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=3)
    expected_len = 23 // batch_size if drop_last else -(-23 // batch_size)
    assert len(loader) == expected_len
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == expected_len
        ids = _ids(batches)
        assert len(ids) == len(set(ids))
        if drop_last:
            assert len(ids) == expected_len * batch_size
            assert all(b[0].shape[0] == batch_size for b in batches)
        else:
            assert sorted(ids) == list(range(23))
        for x, y in batches:  # rows stay with their labels
            assert x[:, 0].tolist() == [3.0 * i for i in y.tolist()]
            assert x.dtype == fl.float32 and y.dtype == fl.int64


def test_seeded_reproducible_and_reshuffled_each_epoch():
    ds = _tensor_ds(200)
    a = data.DataLoader(ds, batch_size=16, shuffle=True, seed=7)
    b = data.DataLoader(ds, batch_size=16, shuffle=True, seed=7)
    e1, e2 = _ids(a), _ids(a)
    assert e1 == _ids(b) and e2 == _ids(b)
    assert e1 != e2 and sorted(e1) == sorted(e2) == list(range(200))
    assert e1 != _ids(data.DataLoader(ds, batch_size=16, shuffle=True, seed=8))
    assert _ids(data.DataLoader(ds, batch_size=16)) == list(range(200))


def test_tensor_dataset_batches_are_one_gather(monkeypatch):
    ds = _tensor_ds(40)
    calls = []
    monkeypatch.setattr(data.TensorDataset, "__getitem__", lambda self, i: calls.append(i))
    batches = list(data.DataLoader(ds, batch_size=8, shuffle=True, seed=0))
    assert calls == [] and len(batches) == 5
    gather = ds._gather_unchecked
    seen = []
    monkeypatch.setattr(ds, "_gather_unchecked", lambda idx: seen.append(idx) or gather(idx))
    list(data.DataLoader(ds, batch_size=8, shuffle=True, seed=0))
    assert len(seen) == 5 and all(isinstance(i, fl.Tensor) and i.shape == (8,) for i in seen)
    # a Subset of a TensorDataset and an explicit batch sampler gather too
    sub = data.Subset(ds, list(range(0, 40, 2)))
    out = list(data.DataLoader(sub, batch_size=6, shuffle=True, seed=1))
    assert calls == [] and sorted(_ids(out)) == list(range(0, 40, 2))
    bs = data.BatchSampler(data.SequentialSampler(ds), batch_size=16, drop_last=True)
    assert [y.tolist() for _, y in data.DataLoader(ds, batch_sampler=bs)] == [list(range(16)), list(range(16, 32))]


def test_get_batch_and_getitem():
    ds = _tensor_ds(10)
    x, y = ds.get_batch([3, 1])
    assert y.tolist() == [3, 1] and x.shape == (2, 3)
    assert ds[-1][1].tolist() == 9
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(IndexError):
        ds.get_batch([11])
    with pytest.raises(fl.ShapeError):
        data.TensorDataset(fl.ones((3, 2)), fl.ones((4,)))


def test_nested_collate():
    loader = data.DataLoader(Squares(5), batch_size=2)
    first = next(iter(loader))
    assert set(first) == {"x", "y", "name"}
    (xf, xl), y, name = first["x"], first["y"], first["name"]
    assert xf.tolist() == [0.0, 1.0] and xf.dtype == fl.float32
    assert isinstance(xl, list) and [t.tolist() for t in xl] == [[0, 1], [0, -1]]
    assert y.tolist() == [0, 1] and y.dtype == fl.int64
    assert name == ["s0", "s1"]
    assert len(loader) == 3 and sum(b["y"].shape[0] for b in loader) == 5


def test_collate_namedtuples_arrays_and_bools():
    class P(NamedTuple):
        a: object
        b: bool

    out = data.default_collate([P(fl.ones((2,)), True), P(fl.zeros((2,)), False)])
    assert isinstance(out, P) and out.a.shape == (2, 2) and out.b.tolist() == [True, False]
    with pytest.raises(fl.ConfigError):
        data.default_collate([{"a": 1}, {"b": 2}])


def test_custom_collate_and_no_batching():
    loader = data.DataLoader(_tensor_ds(6), batch_size=4, collate_fn=lambda samples: len(samples))
    assert list(loader) == [4, 2]
    singles = list(data.DataLoader(Squares(3), batch_size=None))
    assert [s["y"] for s in singles] == [0, 1, 4]


def test_prefetch_gives_the_same_batches():
    ds = _tensor_ds(57)
    plain = data.DataLoader(ds, batch_size=8, shuffle=True, seed=5)
    ahead = data.DataLoader(ds, batch_size=8, shuffle=True, seed=5, prefetch=3)
    for _ in range(2):
        assert _ids(plain) == _ids(ahead)
    it = iter(ahead)
    next(it)
    it.close()  # stopping early ends the thread


def test_prefetch_reraises_errors():
    class Bad(data.Dataset):
        def __getitem__(self, i):
            if i == 3:
                raise ValueError("boom")
            return i

        def __len__(self):
            return 6

    with pytest.raises(ValueError, match="boom"):
        list(data.DataLoader(Bad(), batch_size=2, prefetch=2))


def test_iterable_dataset():
    loader = data.DataLoader(Stream(10), batch_size=4)
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(loader) == 3
    assert len(data.DataLoader(Stream(10), batch_size=4, drop_last=True)) == 2
    with pytest.raises(fl.ConfigError):
        data.DataLoader(Stream(10), shuffle=True)


def test_loader_argument_errors():
    ds = _tensor_ds(5)
    with pytest.raises(fl.ConfigError):
        data.DataLoader(ds, batch_size=0)
    with pytest.raises(fl.ConfigError):
        data.DataLoader(ds, shuffle=True, sampler=data.SequentialSampler(ds))
    with pytest.raises(fl.ConfigError):
        data.DataLoader(ds, batch_size=2, batch_sampler=data.BatchSampler(data.SequentialSampler(ds), 2, False))
    with pytest.raises(fl.ConfigError):
        data.DataLoader(ds, prefetch=-1)


def test_samplers():
    assert list(data.SequentialSampler(range(4))) == [0, 1, 2, 3]
    rs = data.RandomSampler(range(10), seed=0)
    e1, e2 = list(rs), list(rs)
    assert sorted(e1) == sorted(e2) == list(range(10)) and e1 != e2
    assert len(data.RandomSampler(range(10), num_samples=25)) == 25
    many = list(data.RandomSampler(range(10), num_samples=25, seed=1))
    assert sorted(many[:20]) == sorted(list(range(10)) * 2) and len(many) == 25
    rep = list(data.RandomSampler(range(3), replacement=True, num_samples=300, seed=2))
    assert set(rep) == {0, 1, 2} and len(rep) == 300
    sub = data.SubsetRandomSampler([4, 8, 15, 16, 23, 42], seed=0)
    assert sorted(sub) == [4, 8, 15, 16, 23, 42] and len(sub) == 6
    assert list(data.BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]
    assert len(data.BatchSampler(range(5), 2, drop_last=False)) == 3


def test_weighted_random_sampler():
    w = data.WeightedRandomSampler([1.0, 3.0, 0.0, 6.0], num_samples=4000, seed=0)
    counts = collections.Counter(w)
    assert counts[2] == 0 and len(w) == 4000
    assert abs(counts[3] / 4000 - 0.6) < 0.04 and abs(counts[0] / 4000 - 0.1) < 0.03
    no_rep = list(data.WeightedRandomSampler([1.0, 1.0, 0.0, 5.0], num_samples=3, replacement=False, seed=1))
    assert sorted(no_rep) == [0, 1, 3]
    with pytest.raises(fl.ConfigError):
        data.WeightedRandomSampler([1.0, 0.0], num_samples=2, replacement=False)
    with pytest.raises(fl.ConfigError):
        data.WeightedRandomSampler([-1.0, 1.0], num_samples=2)


def test_random_split_subset_concat():
    parts = data.random_split(range(10), [3, 7], seed=0)
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    assert [list(p) for p in data.random_split(range(10), [3, 7], seed=0)] == [list(p) for p in parts]
    fr = data.random_split(range(11), [0.5, 0.3, 0.2], seed=1)
    assert [len(p) for p in fr] == [6, 3, 2]  # floors 5, 3, 2; the remainder goes to the first
    with pytest.raises(fl.ConfigError):
        data.random_split(range(10), [3, 3])
    c = data.ConcatDataset([range(3), range(10, 12)])
    assert len(c) == 5 and [c[i] for i in range(5)] == [0, 1, 2, 10, 11] and c[-1] == 11
    both = _tensor_ds(4) + _tensor_ds(2)
    assert len(both) == 6
    batches = list(data.DataLoader(both, batch_size=4))
    assert batches[0][1].tolist() == [0, 1, 2, 3] and batches[1][1].tolist() == [0, 1]
    s = data.Subset(_tensor_ds(10), [9, 0])
    assert s[0][1].tolist() == 9 and s.get_batch([1, 0])[1].tolist() == [0, 9]


def test_large_shuffle_is_a_permutation():
    g = data.Generator(123)
    for n in (5000, 65537):
        p = g.permutation(n).tolist()
        assert sorted(p) == list(range(n))
    assert data.Generator(5).permutation(5000).tolist() == data.Generator(5).permutation(5000).tolist()


def test_manual_seed_controls_unseeded_shuffling():
    ds = _tensor_ds(50)
    fl.manual_seed(11)
    a = _ids(data.DataLoader(ds, batch_size=8, shuffle=True))
    fl.manual_seed(11)
    b = _ids(data.DataLoader(ds, batch_size=8, shuffle=True))
    assert a == b and sorted(a) == list(range(50))
