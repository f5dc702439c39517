"""functorch_lite.random: JAX-exact keys and bits, distributions, vmap randomness, the global generator.

The expected vectors were computed once with jax 0.10.2 (``jax_threefry_partitionable``
on, its default) and are hard-coded, so these tests need no JAX; where JAX is
installed, ``test_against_live_jax`` compares many more draws with it directly.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import functorch_lite as fl
from functorch_lite._ops import _threefry

fr = fl.random

# jax.random.* results (32-bit mode unless the name says f64 / i64 / u64, which used jax_enable_x64)
JAX = {
    "key0": [0, 0],
    "key42": [0, 42],
    "key_neg1": [0, 4294967295],
    "split0": [[1797259609, 2579123966], [928981903, 3453687069]],
    "split42_3": [[1832780943, 270669613], [64467757, 2916123636], [2465931498, 255383827]],
    "fold_in0_1": [928981903, 3453687069],
    "fold_in42_big": [456327611, 898978002],
    "bits0_4": [4070199207, 4202968722, 1427181096, 2012915765],
    "bits42_2x3": [[2098992034, 2919706841, 2646866425], [2409546199, 1935504149, 2516274904]],
    "bits0_u8": [167, 146, 40, 53],
    "uniform0_4": [0.9476670026779175, 0.9785798788070679, 0.33229148387908936, 0.46866846084594727],
    "uniform42_ab": [1.4209669828414917, 2.758580207824707, 2.3139004707336426],
    "normal0_4": [1.622642159461975, 2.0252647399902344, -0.4335944354534149, -0.07861734926700592],
    "normal42_5": [
        -0.02830461598932743,
        0.4671318531036377,
        0.2957029640674591,
        0.15354591608047485,
        -0.12403281778097153,
    ],
    "randint0_i32": [9, 0, 2, 3, 1, 7],
    "randint42_u8": [196, 18, 183, 193, 141, 107],
    "perm0_8": [0, 1, 5, 6, 4, 3, 2, 7],
    "bern42": [False, False, False, False, False, False, True, False],
    "cat42": [[2, 0], [2, 0], [1, 0]],
    "gumbel0": [2.923372507095337, 3.83261775970459, -0.09689324349164963],
    "trunc0": [1.5094677209854126, 1.747393012046814, -0.1746756136417389, 0.10624171793460846],
    "key_big": [256, 3],
    "key_negbig": [4294967040, 0],
    "uniform0_f64": [0.41845711171638644, 0.21629545460551136, 0.9653214611189975],
    "normal0_f64": [-0.2058421394796434, -0.7847657764467411, 1.8160866726679836],
    "randint0_i64": [175, 501, 375, 717, 928, 395],
    "choice42": [7, 4, 2, 5],
    "bits0_u64": [7719171245655871230, 3989946895414531357],
}


def A(t: fl.Tensor) -> np.ndarray:
    return np.asarray(t)


def ulps_close(got: fl.Tensor, want: list[float], dtype: type, ulps: int) -> None:
    g = A(got)
    w = np.asarray(want, dtype=dtype)
    assert g.dtype == w.dtype
    assert np.all(np.abs(g - w) <= ulps * np.spacing(np.abs(w))), (g, w)


K0 = fr.key(0)
K42 = fr.key(42)


# ---------------------------------------------------------------------------------------
# Bit-exactness with JAX (hard-coded vectors)
# ---------------------------------------------------------------------------------------
def test_keys_match_jax() -> None:
    assert K0.dtype == fl.uint32 and K0.shape == (2,)
    assert A(K0).tolist() == JAX["key0"]
    assert A(K42).tolist() == JAX["key42"]
    assert A(fr.key(-1)).tolist() == JAX["key_neg1"]  # JAX's default (32-bit) seeds
    assert A(fr.key(2**40 + 3)).tolist() == JAX["key_big"]  # 64-bit seeds as JAX with x64
    assert A(fr.key(-(2**40))).tolist() == JAX["key_negbig"]
    assert A(fr.PRNGKey(42)).tolist() == JAX["key42"]
    assert A(fr.key(fl.asarray(42))).tolist() == JAX["key42"]


def test_split_fold_in_bits_match_jax() -> None:
    assert A(fr.split(K0)).tolist() == JAX["split0"]
    assert A(fr.split(K42, 3)).tolist() == JAX["split42_3"]
    assert fr.split(K42, (2, 3)).shape == (2, 3, 2)
    assert A(fr.fold_in(K0, 1)).tolist() == JAX["fold_in0_1"]
    assert A(fr.fold_in(K42, 2**31 + 7)).tolist() == JAX["fold_in42_big"]
    assert A(fr.fold_in(K42, fl.asarray(2**31 + 7))).tolist() == JAX["fold_in42_big"]
    assert A(fr.bits(K0, (4,))).tolist() == JAX["bits0_4"]
    assert A(fr.bits(K42, (2, 3))).tolist() == JAX["bits42_2x3"]
    b8 = fr.bits(K0, (4,), fl.uint8)
    assert b8.dtype == fl.uint8 and A(b8).tolist() == JAX["bits0_u8"]
    assert A(fr.bits(K0, (2,), fl.uint64)).tolist() == JAX["bits0_u64"]


def test_floats_match_jax() -> None:
    u = fr.uniform(K0, (4,))
    assert u.dtype == fl.float32
    assert A(u).tolist() == JAX["uniform0_4"]  # the mantissa trick is exact
    ulps_close(
        fr.uniform(K42, (3,), minval=-2.0, maxval=5.0), JAX["uniform42_ab"], np.float32, 1
    )  # XLA may fuse the fma
    ulps_close(fr.normal(K0, (4,)), JAX["normal0_4"], np.float32, 4)
    ulps_close(fr.normal(K42, (5,)), JAX["normal42_5"], np.float32, 4)
    ulps_close(fr.gumbel(K0, (3,)), JAX["gumbel0"], np.float32, 4)
    ulps_close(fr.truncated_normal(K0, -1.0, 2.0, (4,)), JAX["trunc0"], np.float32, 8)
    assert A(fr.uniform(K0, (3,), fl.float64)).tolist() == JAX["uniform0_f64"]
    # JAX's float64 erfinv is itself up to ~20 ulps off; ours is within a few of the truth
    np.testing.assert_allclose(A(fr.normal(K0, (3,), fl.float64)), JAX["normal0_f64"], rtol=1e-14)


def test_discrete_match_jax() -> None:
    r = fr.randint(K0, (6,), 0, 10, fl.int32)
    assert r.dtype == fl.int32 and A(r).tolist() == JAX["randint0_i32"]
    r8 = fr.randint(K42, (6,), 0, 256, fl.uint8)
    assert r8.dtype == fl.uint8 and A(r8).tolist() == JAX["randint42_u8"]
    r64 = fr.randint(K0, (6,), -5, 1000)
    assert r64.dtype == fl.int64 and A(r64).tolist() == JAX["randint0_i64"]
    assert A(fr.permutation(K0, 8)).tolist() == JAX["perm0_8"]
    assert A(fr.bernoulli(K42, 0.3, (8,))).tolist() == JAX["bern42"]
    logits = fl.asarray([[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]])
    assert A(fr.categorical(K42, logits, shape=(3, 2))).tolist() == JAX["cat42"]
    assert A(fr.choice(K42, 10, (4,), replace=False)).tolist() == JAX["choice42"]


def test_same_bits_on_numpy_and_array_api_strict() -> None:
    pytest.importorskip("array_api_strict")
    outs = {}
    for name in ("numpy", "array_api_strict"):
        k = fl.to_backend(fr.key(7), name)
        outs[name] = [
            A(f(k))
            for f in (
                lambda k: fr.split(k, 3),
                lambda k: fr.fold_in(k, 12345),
                lambda k: fr.bits(k, (5,)),
                lambda k: fr.uniform(k, (5,)),
                lambda k: fr.uniform(k, (5,), fl.float64),
                lambda k: fr.normal(k, (5,)),
                lambda k: fr.randint(k, (5,), -3, 40, fl.int32),
                lambda k: fr.permutation(k, 6),
            )
        ]
        assert fr.normal(k, (2,)).backend == name
    for a, b in zip(outs["numpy"], outs["array_api_strict"], strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_torch_backend_same_bits() -> None:
    pytest.importorskip("torch")
    k = fl.to_backend(fr.key(7), "torch")
    assert k.dtype == fl.uint32 and k.backend == "torch"
    assert _threefry.emulated(k)  # torch lacks uint32 arithmetic: int64 words with masks
    for f in (
        lambda k: fr.split(k, 3),
        lambda k: fr.bits(k, (5,)),
        lambda k: fr.uniform(k, (5,)),
        lambda k: fr.randint(k, (5,), -3, 40, fl.int32),
        lambda k: fr.permutation(k, 6),
    ):
        got, want = A(f(k)), A(f(fr.key(7)))
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    z, w = A(fr.normal(k, (500,))), A(fr.normal(fr.key(7), (500,)))
    assert np.all(np.abs(z - w) <= 4 * np.spacing(np.abs(w)))  # torch's log1p may differ by an ulp
    assert fl.vmap(lambda kk: fr.normal(kk, (2,)))(fr.split(k, 3)).backend == "torch"


def test_int64_emulation_gives_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Backends without uint32 arithmetic (torch) compute the words in int64 with masks.
    fns = (
        lambda: fr.split(fr.key(9), 4),
        lambda: fr.fold_in(fr.key(9), 77),
        lambda: fr.bits(fr.key(9), (6,)),
        lambda: fr.normal(fr.key(9), (6,)),
        lambda: fr.uniform(fr.key(9), (3,), fl.float64),
        lambda: fr.randint(fr.key(9), (6,), 0, 100),
    )
    native = [A(f()) for f in fns]
    monkeypatch.setitem(_threefry._NATIVE_U32, K0.backend, False)
    assert _threefry.emulated(K0)
    for want, f in zip(native, fns, strict=True):
        got = A(f())
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_against_live_jax() -> None:
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    if jax.config.jax_enable_x64:
        pytest.skip("compares with JAX's default 32-bit mode")
    # (each JAX call compiles for about a second here, so a few calls cover the algorithms)
    k, fk = jax.random.PRNGKey(1234), fr.key(1234)
    np.testing.assert_array_equal(A(fr.split(fk, 7)), np.asarray(jax.random.split(k, 7)))
    np.testing.assert_array_equal(A(fr.fold_in(fk, 2**32 - 1)), np.asarray(jax.random.fold_in(k, 2**32 - 1)))
    np.testing.assert_array_equal(A(fr.uniform(fk, (3, 500))), np.asarray(jax.random.uniform(k, (3, 500))))
    n = np.asarray(jax.random.normal(k, (5000,)))
    np.testing.assert_array_less(np.abs(A(fr.normal(fk, (5000,))) - n), 4 * np.spacing(np.abs(n)) + 1e-30)
    np.testing.assert_array_equal(
        A(fr.randint(fk, (300,), -7, 12345, fl.int16)), np.asarray(jax.random.randint(k, (300,), -7, 12345, jnp.int16))
    )


# ---------------------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------------------
def test_statistics() -> None:
    k = fr.key(2024)
    u = A(fr.uniform(k, (20000,)))
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    v = A(fr.uniform(k, (20000,), minval=-3.0, maxval=-1.0))
    assert v.min() >= -3.0 and v.max() < -1.0
    for dt in (fl.float32, fl.float64):
        z = A(fr.normal(k, (20000,), dt))
        assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03
        assert z.dtype == np.dtype(dt.name)
    t = A(fr.truncated_normal(k, -0.5, 1.5, (20000,)))
    assert t.min() > -0.5 and t.max() < 1.5
    assert abs(t.mean() - 0.3563) < 0.02  # (pdf(a) - pdf(b)) / (cdf(b) - cdf(a)) for (a, b) = (-0.5, 1.5)
    b = A(fr.bernoulli(k, 0.25, (20000,)))
    assert b.dtype == np.bool_ and abs(b.mean() - 0.25) < 0.015
    g = A(fr.gumbel(k, (20000,)))
    assert abs(g.mean() - 0.5772) < 0.03
    r = A(fr.randint(k, (20000,), 3, 8))
    assert r.min() == 3 and r.max() == 7 and np.all(np.abs(np.bincount(r)[3:] / 20000 - 0.2) < 0.015)
    logits = fl.asarray([0.0, 1.0, 2.0])
    c = A(fr.categorical(k, logits, shape=(20000,)))
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert np.all(np.abs(np.bincount(c, minlength=3) / 20000 - p) < 0.015)
    assert sorted(A(fr.permutation(k, 50)).tolist()) == list(range(50))
    x = fl.reshape(fl.arange(12), (3, 4))
    px = A(fr.permutation(k, x, axis=1))
    assert sorted(px[0].tolist()) == [0, 1, 2, 3] and np.all(px - px[:, :1] == px[0] - px[0, 0])
    pi = A(fr.permutation(k, x, axis=1, independent=True))
    assert all(sorted(row.tolist()) == list(range(4 * i, 4 * i + 4)) for i, row in enumerate(pi))
    ch = A(fr.choice(k, fl.asarray([10, 20, 30]), (1000,), p=fl.asarray([0.0, 1.0, 0.0])))
    assert set(ch.tolist()) == {20}


def test_default_dtype_follows_fl() -> None:
    fl.set_default_dtype(fl.float64)
    try:
        assert fr.uniform(K0, (2,)).dtype == fl.float64
        assert fr.normal(K0).dtype == fl.float64
    finally:
        fl.set_default_dtype(fl.float32)
    assert fr.normal(K0, ()).shape == ()


def test_erf_erfinv_accuracy() -> None:
    special = pytest.importorskip("scipy.special")
    from functorch_lite._ops._special import erf, erfinv

    x = np.linspace(-0.999, 0.999, 2001)
    for dt, rtol in ((fl.float64, 1e-14), (fl.float32, 3e-6)):
        got = A(erfinv(fl.asarray(x.tolist(), dtype=dt)))
        np.testing.assert_allclose(got, special.erfinv(x.astype(dt.name)), rtol=rtol, atol=rtol)
        y = np.linspace(-6.0, 6.0, 2001)
        np.testing.assert_allclose(
            A(erf(fl.asarray(y.tolist(), dtype=dt))), special.erf(y.astype(dt.name)), rtol=rtol, atol=rtol
        )
    e = A(erfinv(fl.asarray([1.0, -1.0, 0.0])))
    assert e.tolist() == [math.inf, -math.inf, 0.0]


def test_gradients_flow_through_parameters() -> None:
    g = fl.grad(lambda m: fl.sum(fr.uniform(K0, (5,), minval=m, maxval=m + 2.0)))(fl.asarray(0.5))
    assert float(g) == pytest.approx(5.0)
    g = fl.grad(lambda lo: fl.sum(fr.truncated_normal(K0, lo, 2.0, (50,))))(fl.asarray(-0.5))
    assert math.isfinite(float(g)) and float(g) > 0
    # reparametrisation: d/dmu sum(mu + sigma * eps) = n
    g = fl.grad(lambda mu: fl.sum(mu + 2.0 * fr.normal(K42, (7,))))(fl.asarray(0.0))
    assert float(g) == 7.0


def test_argument_errors() -> None:
    with pytest.raises(fl.DTypeError, match="uint32"):
        fr.normal(fl.asarray([0, 0]), (2,))
    with pytest.raises(fl.ShapeError, match="vmap"):
        fr.normal(fr.split(K0, 3), (2,))
    with pytest.raises(fl.DTypeError, match="uniform"):
        fr.uniform(K0, (2,), fl.int32)
    with pytest.raises(fl.DTypeError, match="randint"):
        fr.randint(K0, (2,), 0, 3, fl.float32)
    with pytest.raises(fl.DTypeError, match="bits"):
        fr.bits(K0, (2,), fl.int32)
    with pytest.raises(fl.ShapeError, match="replace"):
        fr.choice(K0, 3, (5,), replace=False)
    with pytest.raises(fl.ConfigError, match="seed"):
        fr.key(2**70)


# ---------------------------------------------------------------------------------------
# vmap: batched keys, and randomness="error" / "same" / "different"
# ---------------------------------------------------------------------------------------
SAMPLERS = {
    "normal": lambda k: fr.normal(k, (3,)),
    "uniform": lambda k: fr.uniform(k, (2,), minval=-1.0, maxval=1.0),
    "bits": lambda k: fr.bits(k, (2,)),
    "split": lambda k: fr.split(k, 3),
    "fold_in": lambda k: fr.fold_in(k, 3),
    "randint": lambda k: fr.randint(k, (4,), 0, 10),
    "permutation": lambda k: fr.permutation(k, 6),
    "bernoulli": lambda k: fr.bernoulli(k, 0.3, (4,)),
    "categorical": lambda k: fr.categorical(k, fl.asarray([0.1, 0.5, 2.0])),
    "truncated_normal": lambda k: fr.truncated_normal(k, -1.0, 1.0, (3,)),
    "gumbel": lambda k: fr.gumbel(k, (2,)),
    "choice": lambda k: fr.choice(k, 5, (3,), replace=False),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_vmap_over_split_keys_equals_a_loop(name: str) -> None:
    f = SAMPLERS[name]
    keys = fr.split(K0, 4)
    got = fl.vmap(f)(keys)  # batched keys are fine even with randomness="error"
    want = np.stack([A(f(keys[i])) for i in range(4)])
    np.testing.assert_array_equal(A(got), want)


def test_vmap_keys_on_another_axis_and_seeds() -> None:
    keys = fr.split(K42, 3)
    got = fl.vmap(lambda k: fr.normal(k, (2,)), in_axes=1)(fl.permute_dims(keys, (1, 0)))
    np.testing.assert_array_equal(A(got), np.stack([A(fr.normal(keys[i], (2,))) for i in range(3)]))
    ks = fl.vmap(fr.key)(fl.arange(3))
    assert A(ks).tolist() == [[0, 0], [0, 1], [0, 2]]


def test_randomness_error() -> None:
    x = fl.ones((4, 3))
    with pytest.raises(fl.RandomnessError, match="normal") as e:
        fl.vmap(lambda x: x + fr.normal(K0, (3,)))(x)
    msg = str(e.value)
    assert "randomness='different'" in msg and "randomness='same'" in msg and "split" in msg
    with pytest.raises(RuntimeError):  # typed, and a RuntimeError
        fl.vmap(lambda x: x * fr.bernoulli(K0, 0.5, (3,)))(x)
    # a key that is not used for sampling (split / fold_in) is fine
    fl.vmap(lambda x: x + fl.astype(fr.split(K0)[0, 0], fl.float32))(x)


def test_randomness_same_and_different() -> None:
    x = fl.zeros((4, 3))
    s = A(fl.vmap(lambda x: x + fr.normal(K0, (3,)), randomness="same")(x))
    np.testing.assert_array_equal(s, np.broadcast_to(A(fr.normal(K0, (3,))), (4, 3)))
    d = A(fl.vmap(lambda x: x + fr.normal(K0, (3,)), randomness="different")(x))
    assert len({tuple(r) for r in d.tolist()}) == 4
    # "different" folds the batch index into the key
    np.testing.assert_array_equal(d[2], A(fr.normal(fr.fold_in(K0, 2), (3,))))
    # nested vmaps each fold in their own index
    dd = A(
        fl.vmap(fl.vmap(lambda x: x + fr.uniform(K0), randomness="different"), randomness="different")(fl.zeros((2, 3)))
    )
    assert len(set(dd.ravel().tolist())) == 6
    sd = A(fl.vmap(fl.vmap(lambda x: x + fr.uniform(K0), randomness="different"), randomness="same")(fl.zeros((2, 3))))
    np.testing.assert_array_equal(sd[0], sd[1])
    assert len(set(sd[0].tolist())) == 3


def test_randomness_different_with_chunks() -> None:
    f = lambda x: x + fr.uniform(K0)  # noqa: E731
    whole = A(fl.vmap(f, randomness="different")(fl.zeros((6,))))
    chunked = A(fl.vmap(f, randomness="different", chunk_size=4)(fl.zeros((6,))))
    np.testing.assert_array_equal(chunked, whole)  # chunks fold in their global indices


def test_check_vmap_randomness_helper() -> None:
    k = fr._check_vmap_randomness(K0, "dropout")  # outside vmap: unchanged
    assert k is K0

    def f(x: fl.Tensor) -> fl.Tensor:
        return x + fl.astype(fr._check_vmap_randomness(K0, "dropout")[1], fl.float32)

    with pytest.raises(fl.RandomnessError, match="dropout"):
        fl.vmap(f)(fl.zeros((3,)))
    out = A(fl.vmap(f, randomness="different")(fl.zeros((3,))))
    assert len(set(out.tolist())) == 3


def test_vmap_of_grad_with_batched_keys() -> None:
    keys = fr.split(K0, 5)
    g = fl.vmap(fl.grad(lambda w, k: fl.sum(w * fr.normal(k, (3,)))), in_axes=(None, 0))(fl.ones(3), keys)
    np.testing.assert_array_equal(A(g), np.stack([A(fr.normal(keys[i], (3,))) for i in range(5)]))


# ---------------------------------------------------------------------------------------
# The global generator
# ---------------------------------------------------------------------------------------
def test_manual_seed_next_key_state() -> None:
    fl.manual_seed(3)
    assert fr.initial_seed() == 3
    a, b = fr.next_key(), fr.next_key()
    assert a.shape == (2,) and a.dtype == fl.uint32 and A(a).tolist() != A(b).tolist()
    fl.manual_seed(3)
    assert A(fr.next_key()).tolist() == A(a).tolist()
    state = fr.get_state()
    c = fr.next_key()
    fr.set_state(state)
    assert A(fr.next_key()).tolist() == A(c).tolist()
    with pytest.raises(fl.DTypeError, match="set_state"):
        fr.set_state(fl.asarray([1, 2]))
    # the first key of seed s is split(key(s))[1]
    fl.manual_seed(11)
    assert A(fr.next_key()).tolist() == A(fr.split(fr.key(11))[1]).tolist()


def test_next_key_is_thread_safe() -> None:
    fl.manual_seed(0)
    got: list[tuple[int, ...]] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(20):
            k = tuple(A(fr.next_key()).tolist())
            with lock:
                got.append(k)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 80 and len(set(got)) == 80
    # the same 80 keys as drawing them one after another
    fl.manual_seed(0)
    assert set(got) == {tuple(A(fr.next_key()).tolist()) for _ in range(80)}


def test_staging_keeps_its_traced_key_from_other_threads():
    # while jit traces a function that draws from the global generator, another thread (a
    # DataLoader's prefetch thread drawing a shuffle seed) must see the real key, never the
    # program's tracer, and must not leave a tracer behind as the global key
    seen = []

    def other():
        seen.append(fl.random.get_state())
        seen.append(fl.random.next_key())

    def f(x):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        return x + fl.random.uniform(fl.random.next_key(), (2,))

    fl.manual_seed(3)
    before = fl.random.get_state()
    out = fl.jit(f)(fl.zeros((2,)))
    assert out.shape == (2,)
    assert len(seen) == 2 and not any(k.is_tracer for k in seen), "the other thread saw a tracer"
    assert np.array_equal(np.asarray(seen[0].tolist()), np.asarray(before.tolist()))
    after = fl.random.get_state()
    assert not after.is_tracer
    fl.random.next_key()  # (an escaped tracer would raise here)
