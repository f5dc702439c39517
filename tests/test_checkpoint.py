"""State dicts and safetensors checkpoints: round trips, strict errors, atomic save, tied
weights, and interchange with torch.nn (where torch is installed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _helpers import N, T

import functorch_lite as fl
from functorch_lite import nn

RNG = np.random.default_rng(2)


class _Wrap(nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        fl.manual_seed(seed)
        self.body = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
        self.emb = nn.Embedding(5, 4)
        self.norm = nn.LayerNorm(2)

    def forward(self, idx: Any) -> Any:
        return self.norm(self.body(self.emb(idx)))


def _same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(N(sa[k]), N(sb[k]))
        assert sa[k].dtype == sb[k].dtype


def test_state_dict_names_layouts_and_round_trip() -> None:
    m = _Wrap()
    sd = m.state_dict()
    assert list(sd) == [
        "body.0.weight",
        "body.0.bias",
        "body.1.weight",
        "body.1.bias",
        "body.1.running_mean",
        "body.1.running_var",
        "body.1.num_batches_tracked",
        "body.3.weight",
        "body.3.bias",
        "emb.weight",
        "norm.weight",
        "norm.bias",
    ]
    assert sd["body.0.weight"].shape == (6, 4) and sd["body.1.num_batches_tracked"].dtype == fl.int64
    other = _Wrap(seed=5)
    w_obj = other.body[0].weight
    res = other.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert other.body[0].weight is w_obj  # loaded in place
    _same(m, other)
    # the state dict is a snapshot: later training rebinds the module's Tensors, not the dict's
    p = m.body[0].weight
    p -= 1.0
    assert not np.array_equal(N(sd["body.0.weight"]), N(m.body[0].weight))


def test_strict_errors_list_everything_and_change_nothing() -> None:
    m = _Wrap()
    before = {k: N(v).copy() for k, v in m.state_dict().items()}
    sd = dict(_Wrap(seed=3).state_dict())
    del sd["body.0.bias"]
    del sd["norm.weight"]
    sd["extra.weight"] = fl.ones((2,))
    sd["body.3.weight"] = fl.ones((3, 3))
    with pytest.raises(fl.StateDictError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    for needle in ("body.0.bias", "norm.weight", "extra.weight", "body.3.weight", "(3, 3)", "(2, 6)"):
        assert needle in msg
    assert isinstance(info.value, KeyError)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(N(v), before[k])
    # strict=False: missing/unexpected reported, mismatched shape still an error
    del sd["body.3.weight"]
    res = m.load_state_dict(sd, strict=False)
    assert sorted(res.missing_keys) == ["body.0.bias", "body.3.weight", "norm.weight"]
    assert res.unexpected_keys == ["extra.weight"]


def test_load_casts_dtype_and_backend() -> None:
    m = nn.Linear(3, 2)
    sd = {"weight": np.ones((2, 3)), "bias": fl.zeros((2,), dtype=fl.float64)}
    m.load_state_dict(sd)
    assert m.weight.dtype == fl.float32 and m.bias.dtype == fl.float32
    assert m.weight.backend == fl.default_backend_name()


def test_save_load_round_trip(tmp_path: Any) -> None:
    m = _Wrap()
    m(T(np.array([0, 1, 2, 3, 4, 0])))  # update BatchNorm statistics
    path = tmp_path / "model.safetensors"
    nn.save(m, path, metadata={"epoch": 7, "note": "x"})
    sd, meta = nn.load(path, with_metadata=True)
    assert meta == {"epoch": 7, "note": "x"}
    assert list(sd) == list(m.state_dict())
    assert all(t.backend == fl.default_backend_name() for t in sd.values())
    other = _Wrap(seed=9)
    other.load_state_dict(sd)
    _same(m, other)
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp files left
    with open(path, "rb") as f:
        assert b"pickle" not in f.read(200)


def test_save_is_atomic(tmp_path: Any, monkeypatch: Any) -> None:
    path = tmp_path / "ckpt.safetensors"
    nn.save({"a": fl.ones((2,))}, path)
    import safetensors.numpy

    def broken(*args: Any, **kwargs: Any) -> None:
        with open(args[1], "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"a": fl.zeros((2,))}, path)
    monkeypatch.undo()
    assert N(nn.load(path)["a"]).tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_tied_weights_written_once(tmp_path: Any) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(7, 3)
            self.out = nn.Linear(3, 7, bias=False)
            self.out.weight = self.emb.weight

    m = Tied()
    path = tmp_path / "tied.safetensors"
    nn.save(m, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        assert list(f.keys()) == ["emb.weight"]
    sd = nn.load(path)
    assert list(sd) == ["emb.weight", "out.weight"] and sd["out.weight"] is sd["emb.weight"]
    m2 = Tied()
    m2.load_state_dict(sd)
    np.testing.assert_array_equal(N(m2.out.weight), N(m.emb.weight))
    assert m2.out.weight is m2.emb.weight


def test_save_errors(tmp_path: Any) -> None:
    with pytest.raises(fl.CheckpointError, match="complex"):
        nn.save({"z": fl.astype(fl.ones((2,)), fl.complex64)}, tmp_path / "z.safetensors")
    with pytest.raises(fl.CheckpointError, match="no file"):
        nn.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(fl.CheckpointError, match="readable"):
        nn.load(bad)


def test_checkpoint_interchange_with_torch(tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as t_load
    from safetensors.torch import save_file as t_save

    m = _Wrap()
    m(T(np.array([0, 1, 2, 3, 4, 0])))
    path = tmp_path / "to_torch.safetensors"
    nn.save(m, path)

    class TWrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
            )
            self.emb = torch.nn.Embedding(5, 4)
            self.norm = torch.nn.LayerNorm(2)

        def forward(self, idx: Any) -> Any:
            return self.norm(self.body(self.emb(idx)))

    tm = TWrap()
    tm.load_state_dict(t_load(str(path)), strict=True)
    m.eval()
    tm.eval()
    idx = np.array([1, 2, 0, 4])
    np.testing.assert_allclose(N(m(T(idx))), tm(torch.from_numpy(idx)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # and back: a torch checkpoint loads strictly into the functorch_lite model
    tm2 = TWrap()
    back = tmp_path / "from_torch.safetensors"
    t_save(tm2.state_dict(), str(back))
    m2 = _Wrap(seed=4)
    m2.load_state_dict(nn.load(back), strict=True)
    for k, v in tm2.state_dict().items():
        np.testing.assert_array_equal(N(m2.state_dict()[k]), v.numpy())
