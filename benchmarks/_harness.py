"""Shared measurement harness for the benchmark scripts.

Import this module FIRST in every benchmark script (before numpy, jax or torch):
it pins every framework to one compute thread by setting the BLAS / OpenMP /
XLA environment variables before any of them is imported.

Measurement protocol (the same for every workload):

* float32 everywhere;
* each case's result is checked against the hand-written NumPy result before
  it is timed (``Case.check``);
* warm-up calls, then a calibrated block size per case (enough calls for one
  block to last ``block_s`` seconds);
* several rounds; in every round each case runs one block, the order of the
  cases rotated from round to round so slow drifts of the machine hit every
  case alike;
* per-case median with quartiles; ratios are taken to the baseline case of the
  same run (the median of the per-round ratios, with its quartiles).
"""

from __future__ import annotations

import os

for _v in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[_v] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
# The clock: "cpu" (default) is the CPU time of this process (all its threads), which on a
# shared machine ignores the time the process spends descheduled; "wall" is perf_counter.
# With one compute thread and an idle machine the two agree. Both are recorded.
CLOCK = os.environ.get("BENCH_CLOCK", "cpu")


# ----------------------------------------------------------------------------------
# Peers: imported lazily, skipped cleanly when missing
# ----------------------------------------------------------------------------------
_MODULES: dict[str, Any] = {}


def peer(name: str) -> Any | None:
    """Import and configure a peer framework; ``None`` when it is not installed.

    ``name`` is one of ``torch``, ``jax``, ``autograd``, ``functorch_lite``,
    or a dotted submodule (``functorch_lite.nn``).
    """
    if name in _MODULES:
        return _MODULES[name]
    mod = None
    try:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            mod = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        mod = None
    if mod is not None and name == "torch":
        mod.set_num_threads(1)
        try:
            mod.set_num_interop_threads(1)
        except RuntimeError:
            pass
    if mod is not None and name == "jax":
        mod.config.update("jax_enable_x64", False)
        mod.config.update("jax_platforms", "cpu")
    _MODULES[name] = mod
    return mod


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for n in ("functorch_lite", "torch", "jax", "autograd"):
        m = peer(n)
        if m is not None:
            out[n] = getattr(m, "__version__", "?")
    return out


def to_numpy(x: Any) -> Any:
    """A numpy array (or a list / dict of them) from any framework's result."""
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_numpy(v) for v in x]
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_close(got: Any, want: Any, rtol: float, atol: float, what: str) -> None:
    """Compare (nested) results; raise AssertionError naming the case and the worst error."""
    g, w = to_numpy(got), to_numpy(want)
    if isinstance(w, dict):
        if not isinstance(g, dict) or set(g) != set(w):
            raise AssertionError(f"{what}: result keys {sorted(g) if isinstance(g, dict) else type(g)} != {sorted(w)}")
        for k in w:
            assert_close(g[k], w[k], rtol, atol, f"{what}[{k}]")
        return
    if isinstance(w, list):
        if not isinstance(g, list) or len(g) != len(w):
            raise AssertionError(
                f"{what}: got {type(g).__name__} of {len(g) if isinstance(g, list) else '?'} items, want {len(w)}"
            )
        for i, (a, b) in enumerate(zip(g, w, strict=True)):
            assert_close(a, b, rtol, atol, f"{what}[{i}]")
        return
    g = np.asarray(g, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if g.shape != w.shape:
        raise AssertionError(f"{what}: shape {g.shape} != reference {w.shape}")
    if not np.allclose(g, w, rtol=rtol, atol=atol):
        err = np.max(np.abs(g - w) / (atol + rtol * np.abs(w)))
        raise AssertionError(f"{what}: differs from the numpy reference (worst error {err:.3g} x tolerance)")


# ----------------------------------------------------------------------------------
# Cases and timing
# ----------------------------------------------------------------------------------
@dataclass
class Case:
    """One framework's implementation of a workload.

    ``run`` does one unit of work (one step, one chain, ...). ``result`` (if
    given) returns the value compared with the reference; by default ``run()``'s
    own return value is compared.
    """

    name: str
    run: Callable[[], Any]
    result: Callable[[], Any] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5
    note: str = ""
    times: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    error: str = ""


def check_cases(cases: Sequence[Case], reference: Any) -> list[Case]:
    """Check each case against ``reference``; failing cases are reported and dropped."""
    ok = []
    for c in cases:
        if c.error:  # could not even be built (e.g. an API that does not exist yet)
            print(f"  [skip] {c.name}: {c.error}", file=sys.stderr)
            continue
        try:
            got = c.result() if c.result is not None else c.run()
            if reference is not None:
                assert_close(got, reference, c.rtol, c.atol, c.name)
            ok.append(c)
        except Exception as exc:  # noqa: BLE001 - report, never crash the whole run
            c.error = f"{type(exc).__name__}: {exc}"[:300]
            print(f"  [skip] {c.name}: {c.error}", file=sys.stderr)
    return ok


def _block(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """(clock time, wall time) per call over a block of ``n`` calls."""
    w0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(n):
        fn()
    c1 = time.process_time()
    w1 = time.perf_counter()
    c, w = (c1 - c0) / n, (w1 - w0) / n
    return (c if CLOCK == "cpu" else w), w


def measure(
    cases: Sequence[Case],
    *,
    rounds: int = 7,
    block_s: float = 0.05,
    warmup: int = 2,
    max_calls: int = 100_000,
) -> None:
    """Time every case: warm-up, calibrated blocks, rounds interleaved in rotated order.

    Per-call times (seconds) land in ``case.times``, one per round.
    """
    if QUICK:
        rounds, block_s = min(rounds, 3), block_s / 4
    calls = []
    for c in cases:
        for _ in range(warmup):
            c.run()
        t = _block(c.run, 1)[1]
        n = 1
        while t * n < block_s / 4 and n < max_calls:  # calibrate on a short block
            n = min(max_calls, max(n * 2, int(block_s / 4 / max(t, 1e-9))))
            t = _block(c.run, n)[1]
        calls.append(max(1, min(max_calls, int(round(block_s / max(t, 1e-9))))))
    k = len(cases)
    gc_was = gc.isenabled()
    for r in range(rounds):
        order = [(r + i) % k for i in range(k)]
        for i in order:
            c = cases[i]
            gc.collect()
            gc.disable()
            try:
                t, w = _block(c.run, calls[i])
                c.times.append(t)
                c.wall.append(w)
            finally:
                if gc_was:
                    gc.enable()


def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def summarize(cases: Sequence[Case], baseline: str | None, group: str = "") -> list[dict[str, Any]]:
    """Rows with median / quartiles per case and the ratio to ``baseline`` (same rounds)."""
    base = next((c for c in cases if c.name == baseline), None)
    rows = []
    for c in cases:
        row: dict[str, Any] = {"case": c.name, "group": group, "baseline": baseline}
        if c.error or not c.times:
            row["skipped"] = c.error or "not run"
            rows.append(row)
            continue
        q1, med, q3 = quartiles(c.times)
        row.update(median_s=med, q1_s=q1, q3_s=q3, wall_median_s=statistics.median(c.wall), clock=CLOCK)
        if base is not None and base.times:
            ratios = [a / b for a, b in zip(c.times, base.times, strict=False)]
            r1, rm, r3 = quartiles(ratios)
            row.update(ratio=rm, ratio_q1=r1, ratio_q3=r3)
        if c.note:
            row["note"] = c.note
        rows.append(row)
    return rows


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def print_table(
    title: str, rows: Sequence[dict[str, Any]], extra: Sequence[tuple[str, str, Callable[[Any], str]]] = ()
) -> None:
    """Print rows as an aligned text table (extra columns: (key, header, formatter))."""
    head = ["case", "median", "IQR", "ratio"] + [h for _, h, _ in extra]
    lines = []
    for r in rows:
        if "skipped" in r:
            lines.append([r["case"], "skipped", r["skipped"][:60], ""] + [""] * len(extra))
            continue
        ratio = f"{r['ratio']:.2f}x [{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}]" if "ratio" in r else ""
        cols = [r["case"], fmt_time(r["median_s"]), f"{fmt_time(r['q1_s'])} - {fmt_time(r['q3_s'])}", ratio]
        cols += [fn(r.get(k)) if r.get(k) is not None else "" for k, _, fn in extra]
        lines.append(cols)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    print(f"\n== {title} ==")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for ln in lines:
        print("  ".join(str(x).ljust(w) for x, w in zip(ln, widths, strict=False)))


def emit(workload: str, rows: Sequence[dict[str, Any]], **meta: Any) -> None:
    """Print the one JSON line the runner parses."""
    payload = {"workload": workload, "rows": list(rows), "versions": versions(), "quick": QUICK, **meta}
    print(json.dumps(payload, default=float))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def f32(a: Any) -> Any:
    return np.ascontiguousarray(a, dtype=np.float32)


def peak_mib(fn) -> float:
    """Peak traced memory (MiB) above the level before the call; best of 2 calls."""
    best = float("inf")
    for _ in range(2):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del out
        best = min(best, (peak - base) / 2**20)
    return best
