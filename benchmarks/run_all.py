"""Run every benchmark script and render docs/benchmarks.md (+ docs/benchmarks.png).

Usage::

    python benchmarks/run_all.py                  # everything (~8-11 minutes on 2 cores)
    python benchmarks/run_all.py --only mlp hvp   # some workloads (others keep their last results)
    python benchmarks/run_all.py --render-only    # re-render the page from benchmarks/results.json
    python benchmarks/run_all.py --profile        # also profile functorch_lite where it misses a target

Each script runs in a fresh interpreter (so the one-thread settings of
``_harness`` apply before numpy / torch / jax load) and prints one JSON line;
the raw results are kept in ``benchmarks/results.json``. Hand-written profile
notes live in ``benchmarks/PROFILE_NOTES.md`` and are pasted into the page.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from typing import Any

from _side_by_side import render_side_by_side, render_side_chart  # benchmarks/ is on sys.path when run as a script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results.json")
NOTES = os.path.join(HERE, "PROFILE_NOTES.md")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
PNG = os.path.join(ROOT, "docs", "benchmarks.png")
PNG_SIDE = os.path.join(ROOT, "docs", "benchmarks-eager-jit.png")

SCRIPTS = {
    "dispatch": "bench_dispatch.py",
    "mlp": "bench_mlp.py",
    "per_example": "bench_per_example.py",
    "hvp": "bench_hvp.py",
    "digits": "bench_digits.py",
    "conv": "bench_conv.py",
    "dataloader": "bench_dataloader.py",
    "memory": "bench_memory.py",
    "scan": "bench_scan.py",
    "dask": "bench_dask.py",
    "compilers": "bench_compilers.py",
    "onnx": "bench_onnx.py",
}

# (workload, group, functorch_lite case, metric, limit, label, profile target)
TARGETS = [
    (
        "dispatch",
        "eager chain",
        "functorch_lite",
        "ratio",
        1.5,
        "eager 200-op elementwise chain, shape (8,)",
        "dispatch-eager",
    ),
    (
        "dispatch",
        "grad chain",
        "functorch_lite grad",
        "us_per_op",
        3.0,
        "grad of the 200-op chain (µs per op)",
        "dispatch-grad",
    ),
    ("mlp", "MLP step", "functorch_lite grad", "ratio", 1.10, "MLP 784-512-512-10 step, batch 128", "mlp"),
    (
        "per_example",
        "per-example grads",
        "functorch_lite vmap(grad)",
        "ratio",
        1.30,
        "per-example grads, vmap(grad), batch 64",
        "per-example",
    ),
    (
        "hvp",
        "HVP",
        "functorch_lite jvp(grad) fwd-over-rev",
        "ratio",
        1.50,
        "HVP forward-over-reverse, 1000x1000",
        "hvp",
    ),
    (
        "digits",
        "digits end-to-end",
        "functorch_lite grad + Adam",
        "ratio",
        2.0,
        "digits end-to-end, 900 Adam steps",
        "digits",
    ),
    ("conv", "conv-net step", "functorch_lite nn + optim.SGD", "ratio", 2.0, "conv-net step vs torch CPU", "conv"),
    # fl.jit (issue [2.2])
    (
        "dispatch",
        "grad chain",
        "functorch_lite jit(grad)",
        "us_per_op",
        1.0,
        "jit(grad) of the 200-op chain (µs per op)",
        None,
    ),
    (
        "mlp",
        "MLP step",
        "functorch_lite jit(step) + optim.sgd",
        "ratio",
        1.03,
        "MLP step jitted whole (value_and_grad + optim.sgd)",
        None,
    ),
    (
        "per_example",
        "per-example grads",
        "functorch_lite jit(vmap(grad))",
        "ratio",
        1.05,
        "per-example grads, jit(vmap(grad))",
        None,
    ),
    ("hvp", "HVP", "functorch_lite jit(jvp(grad))", "ratio", 1.35, "HVP, jit(jvp(grad))", None),
    (
        "digits",
        "digits end-to-end",
        "functorch_lite jit(step) + optim.adam",
        "ratio",
        1.10,
        "digits end-to-end, optim.adam, step jitted",
        None,
    ),
    (
        "digits",
        "digits end-to-end",
        "functorch_lite jit nn + optim.Adam",
        "ratio",
        1.20,
        "digits end-to-end, class API jitted",
        None,
    ),
    # control flow (issue [2.3]): ratio_loop is the ratio to the functorch_lite for-loop, same run
    (
        "scan",
        "RNN scan forward",
        "functorch_lite scan",
        "ratio_loop",
        1.3,
        "RNN scan forward, eager, vs the for-loop",
        None,
    ),
    ("scan", "RNN scan grad", "functorch_lite scan", "ratio_loop", 1.3, "RNN scan grad, eager, vs the for-loop", None),
    ("scan", "RNN scan forward", "functorch_lite jit(scan)", "ratio", 1.15, "RNN scan forward, jitted", None),
    (
        "scan",
        "RNN scan grad",
        "functorch_lite jit(scan)",
        "ratio",
        1.15,
        "RNN scan grad, jitted, vs hand-written BPTT",
        None,
    ),
    # compilers (issue [2.5]): ratios to the peer named in the group, same run
    (
        "compilers",
        "MLP step (jax backend)",
        "functorch_lite jit(step) (default)",
        "ratio",
        1.10,
        "MLP step, jax backend, fl.jit (compiler='xla') vs jax.jit",
        None,
    ),
    (
        "compilers",
        "digits end-to-end (jax backend)",
        "functorch_lite jit(step) + optim.adam (default)",
        "ratio",
        1.15,
        "digits end-to-end, jax backend, fl.jit vs jax.jit",
        None,
    ),
    (
        "compilers",
        "grad chain (numpy backend)",
        "functorch_lite jit(grad), compiler='numba'",
        "us_per_op",
        0.40,
        "grad of the 200-op chain, compiler='numba' (µs per op)",
        None,
    ),
    # dask.distributed (issue [2.6]): wall clock on a LocalCluster; ratios in one run
    (
        "dask",
        "scaling",
        "functorch_lite, 2 workers",
        "ratio",
        0.65,
        "dask: full-batch logistic-regression gradient, 4M x 32, 2 workers vs 1 (graph path)",
        None,
    ),
    (
        "dask",
        "vs dask.array",
        "functorch_lite, 2 workers",
        "ratio",
        1.15,
        "dask: graph path `fl.dask.compute(fl.grad(loss))` vs dask.array by hand, 2 workers",
        None,
    ),
    (
        "dask",
        "vs dask.array",
        "functorch_lite data_parallel (jit per shard), 2 workers",
        "ratio",
        1.15,
        "dask: `fl.dask.data_parallel` vs dask.array by hand, 2 workers",
        None,
    ),
    (
        "compilers",
        "MLP step (torch backend)",
        "functorch_lite jit(step), compiler='torch.compile'",
        "ratio",
        1.0,
        "MLP step, torch backend, compiler='torch.compile' vs torch eager",
        None,
    ),
]


# ----------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------
def run_script(name: str, timeout: float, env: dict[str, str]) -> dict[str, Any]:
    path = os.path.join(HERE, SCRIPTS[name])
    print(f"[run_all] {name}: {SCRIPTS[name]}", flush=True)
    t0 = _dt.datetime.now()
    try:
        p = subprocess.run([sys.executable, path], cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"workload": name, "error": f"timed out after {timeout:.0f} s"}
    secs = (_dt.datetime.now() - t0).total_seconds()
    sys.stdout.write("\n".join(ln for ln in p.stdout.splitlines() if not ln.startswith("{")) + "\n")
    if p.stderr.strip():
        sys.stdout.write("".join(f"  | {ln}\n" for ln in p.stderr.strip().splitlines()[-8:]))
    line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("{")), None)
    if p.returncode != 0 or line is None:
        return {"workload": name, "error": f"exit {p.returncode}: {p.stderr.strip()[-600:]}", "seconds": secs}
    out = json.loads(line)
    out["seconds"] = secs
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "load_at_start": load}


# ----------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------
def _fmt_t(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _row(res: dict[str, Any], workload: str, group: str, case: str) -> dict[str, Any] | None:
    for r in res.get(workload, {}).get("rows", []):
        if r.get("group") == group and r.get("case") == case:
            return r
    return None


def _best_peer(res: dict[str, Any], workload: str, group: str, metric: str) -> str:
    best = None
    for r in res.get(workload, {}).get("rows", []):
        if r.get("group") != group or r["case"].startswith("functorch_lite") or r["case"] == r.get("baseline"):
            continue
        v = r.get(metric)
        if v is not None and (best is None or v < best[0]):
            best = (v, r["case"])
    if best is None:
        return "—"
    return f"{best[1]} {best[0]:.2f}{'' if metric == 'us_per_op' else 'x'}"


def target_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for wl, group, case, metric, limit, label, prof in TARGETS:
        r = _row(res, wl, group, case)
        v = None if r is None else r.get(metric)
        d = {
            "label": label,
            "limit": limit,
            "metric": metric,
            "value": v,
            "profile": prof,
            "case": case,
            "best_peer": _best_peer(
                res, wl, "scaling, by hand" if (wl, group) == ("dask", "scaling") else group, metric
            ),
        }
        if r is not None and f"{metric}_q1" in r and metric in ("ratio", "ratio_loop"):
            d["iqr"] = (r[f"{metric}_q1"], r[f"{metric}_q3"])
        if wl == "digits" and r is not None:
            d["accuracy"] = r.get("test_accuracy")
        d["met"] = None if v is None else (v <= limit and (d.get("accuracy") is None or d["accuracy"] >= 0.975))
        out.append(d)
    return out


def render_table(rows: list[dict[str, Any]], extra: list[tuple[str, str, Any]]) -> str:
    head = "| case | median | IQR | ratio [IQR] |" + "".join(f" {h} |" for _, h, _ in extra)
    sep = "|---|---:|---:|---:|" + "---:|" * len(extra)
    lines = [head, sep]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | skipped | {r['skipped'][:90].replace('|', '/')} | |" + " |" * len(extra))
            continue
        ratio = f"{r['ratio']:.2f}x [{r['ratio_q1']:.2f}–{r['ratio_q3']:.2f}]" if "ratio" in r else ""
        name = f"**{r['case']}**" if r["case"].startswith("functorch_lite") else r["case"]
        cells = [name, _fmt_t(r["median_s"]), f"{_fmt_t(r['q1_s'])} – {_fmt_t(r['q3_s'])}", ratio]
        cells += [fn(r[k]) if r.get(k) is not None else "" for k, _, fn in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt_first(s: float) -> str:
    return _fmt_t(s)


SECTIONS = [
    (
        "dispatch",
        "eager chain",
        "(1) Dispatch: eager 200-op elementwise chain, shape (8,)",
        [("us_per_op", "µs/op", lambda v: f"{v:.2f}")],
    ),
    (
        "dispatch",
        "grad chain",
        "(1) Dispatch: grad of the 200-op chain",
        [("us_per_op", "µs/op", lambda v: f"{v:.2f}")],
    ),
    ("mlp", "MLP step", "(2) MLP 784-512-512-10 training step, batch 128, SGD", []),
    ("per_example", "per-example grads", "(3) Per-example gradients of the MLP, batch 64", []),
    ("hvp", "HVP", "(4) Hessian-vector product, sum(tanh(A x)), A 1000x1000", []),
    (
        "digits",
        "digits end-to-end",
        "(5) Digits end to end: 64-128-10 MLP, Adam, 20 epochs, batch 32 (time per whole training)",
        [("test_accuracy", "test acc.", lambda v: f"{100 * v:.1f} %")],
    ),
    (
        "conv",
        "conv-net step",
        "(6) Conv-net training step on 8x8 digits, batch 128 (ratio to torch eager)",
        [("ratio_numpy", "vs numpy", lambda v: f"{v:.2f}x")],
    ),
    (
        "dataloader",
        "DataLoader epoch",
        "(7) DataLoader: one shuffled epoch of 60000 x 784 float32, batch 128",
        [("samples_per_s", "samples/s", lambda v: f"{v / 1e6:.2f} M")],
    ),
    *[
        (
            "compilers",
            g,
            f"(9) Compilers: {g}, fl.jit(f, compiler=...) vs {peer} (first call: trace + compile)",
            [("us_per_op", "µs/op", lambda v: f"{v:.2f}"), ("first_call_s", "first call", _fmt_first)],
        )
        for g, peer in (
            ("grad chain (numpy backend)", "hand-written numpy"),
            ("MLP step (jax backend)", "jax.jit"),
            ("MLP step (torch backend)", "torch eager"),
            ("digits end-to-end (jax backend)", "jax.jit(step)"),
        )
    ],
    *[
        (
            "onnx",
            g,
            f"(11) ONNX: the demo's digits CNN exported with fl.onnx.export, run in onnxruntime, {g} "
            "(ratio to functorch_lite eager)",
            [],
        )
        for g in ("batch 1", "batch 360")
    ],
]


def render_chart(res: dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return False
    short = {
        "eager chain": "(1) eager 200-op chain, shape (8,)",
        "grad chain": "(1) grad of the 200-op chain",
        "MLP step": "(2) MLP 784-512-512-10 step, batch 128",
        "per-example grads": "(3) per-example grads, batch 64",
        "HVP": "(4) HVP, A 1000x1000",
        "digits end-to-end": "(5) digits end to end, 900 Adam steps",
        "conv-net step": "(6) conv-net step, batch 128",
        "DataLoader epoch": "(7) DataLoader epoch, 60k x 784",
    }
    panels = [(wl, g, short.get(g, g)) for wl, g, _, _ in SECTIONS]
    limits = {(t[0], t[1]): t[4] for t in TARGETS if t[3] == "ratio"}
    fig, axes = plt.subplots(4, 2, figsize=(13, 15))
    for ax, (wl, group, title) in zip(axes.flat, panels, strict=False):
        rows = [r for r in res.get(wl, {}).get("rows", []) if r.get("group") == group and "ratio" in r]
        if not rows:
            ax.set_axis_off()
            continue
        names = [r["case"] for r in rows][::-1]
        vals = [r["ratio"] for r in rows][::-1]
        lo = [r["ratio"] - r["ratio_q1"] for r in rows][::-1]
        hi = [r["ratio_q3"] - r["ratio"] for r in rows][::-1]
        colors = [
            "#d62728" if n.startswith("functorch_lite") else ("#7f7f7f" if n == rows[0].get("baseline") else "#1f77b4")
            for n in names
        ]
        ax.barh(range(len(vals)), vals, xerr=[lo, hi], color=colors, capsize=2)
        ax.set_yticks(range(len(vals)), names, fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(1.0, color="k", lw=0.8)
        if (wl, group) in limits:
            ax.axvline(limits[(wl, group)], color="#d62728", ls="--", lw=1, label=f"target {limits[(wl, group)]}x")
            ax.legend(fontsize=8, loc="lower right")
        base = rows[0].get("baseline", "")
        ax.set_title(f"{title}\n(ratio to {base}; lower is better)", fontsize=9)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.2f}x", va="center", fontsize=7)
        lo_x, hi_x = ax.get_xlim()
        fine = (0.1, 0.2, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500)
        ticks = [t for t in (fine if hi_x / lo_x < 60 else (0.01, 0.1, 1, 10, 100, 1000)) if lo_x <= t <= hi_x]
        ax.set_xticks(ticks)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def render_scan(r: dict[str, Any] | None) -> str:
    """The control-flow subsection (bench_scan.py): two timing tables and the memory table."""
    out = ["### (9) Control flow\n"]
    if r is None:
        return out[0] + "not run.\n"
    if "error" in r:
        return out[0] + f"failed: `{r['error'][:400]}`\n"
    out.append(
        "An RNN cell `h = tanh(x_t @ Wx + h @ Wh + b)` (hidden 64, batch 32, inputs of 64, 20 steps), loss "
        "`mean(ys ** 2)`, as `fl.scan` (eager and under `fl.jit`), as a Python for-loop of the same cell, as "
        "hand-written numpy (forward; backward by hand, BPTT over the stored states) and as peers. **ratio**: to "
        "numpy; **vs for-loop**: to the functorch_lite for-loop, both the median of the per-round ratios of one run"
        + (f" ({r['date']})" if r.get("date") else "")
        + ". Targets: eager scan <= 1.3x the for-loop, jitted scan <= 1.15x numpy.\n"
    )
    extra = [("ratio_loop", "vs for-loop", lambda v: f"{v:.2f}x")]
    for group, title in (
        ("RNN scan forward", "Forward"),
        ("RNN scan grad", "Grad (value and gradients wrt Wx, Wh, b)"),
    ):
        rows = [x for x in r["rows"] if x.get("group") == group]
        out.append(f"**{title}**\n")
        out.append(render_table(rows, extra))
    mem = [x for x in r["rows"] if "peak_mib" in x or ("skipped" in x and "1000" in x.get("group", ""))]
    if mem:
        out.append(
            f"**Peak memory (tracemalloc) of {mem[0]['group']}** (loss `sum(h_T)`, gradients wrt Wx, Wh, b; "
            "`checkpoint=True` stores a carry per segment of ~32 steps)\n"
        )
        out.append("| case | peak | vs numpy |\n|---|---:|---:|")
        for x in mem:
            if "skipped" in x:
                out.append(f"| {x['case']} | skipped: {x['skipped'][:80]} | |")
            else:
                out.append(f"| {x['case']} | {x['peak_mib']:.1f} MiB | {x['mem_ratio']:.2f}x |")
        out.append("")
    return "\n".join(out)


_DASK_LABELS = {
    ("vs dask.array", "functorch_lite, 2 workers"): "functorch_lite, graph (`fl.dask.compute(fl.grad(...))`)",
    ("vs dask.array", "functorch_lite data_parallel (jit per shard), 2 workers"): (
        "functorch_lite `fl.dask.data_parallel` (jit per shard)"
    ),
    (
        "vs dask.array",
        "functorch_lite, fl.logaddexp loss, 2 workers",
    ): "functorch_lite, graph, loss through `fl.logaddexp`",
    ("vs dask.array", "dask.array by hand, 2 workers"): "dask.array by hand",
}


def _dask_row(r: dict[str, Any], group: str, case: str) -> dict[str, Any] | None:
    return next((x for x in r.get("rows", []) if x.get("group") == group and x.get("case") == case), None)


def _ratio(x: dict[str, Any] | None) -> str:
    if x is None or "ratio" not in x:
        return "not measured"
    return f"{x['ratio']:.2f}x"


def render_dask(r: dict[str, Any] | None) -> str:
    """The dask.distributed subsection (bench_dask.py): scaling and peer table, out of core, targets."""
    out = ["### (10) Training on a dask cluster\n"]
    if r is None:
        return out[0] + "not run (`python benchmarks/run_all.py --only dask`).\n"
    if "error" in r:
        return out[0] + f"failed: `{r['error'][:400]}`\n"
    n, chunk = r.get("n", 0), r.get("chunk", 0)
    out.append(
        "`python benchmarks/bench_dask.py` (issue [2.6]). A `distributed.LocalCluster` of 1 or 2 worker processes, "
        f"one thread each, on 127.0.0.1; logistic regression on {n:,} x {r.get('d', 32)} float32 rows "
        f"({n * r.get('d', 32) * 4 / 1e6:.0f} MB), persisted on the workers in row chunks of {chunk:,} "
        f"({n // max(chunk, 1)} chunks, block i on worker i mod 2), numpy parameters; the gradient of the mean loss "
        "`softplus(z) - y z` (`softplus` as `relu(z) + log1p(exp(-|z|))`), one graph submission per gradient. "
        "**Wall clock** (the work runs in the worker processes), interleaved rounds, every case checked against a "
        f"float64 numpy gradient of the same blocks first. Run {r.get('date', '?')}"
        + (" (`BENCH_QUICK=1`: fewer rows and rounds)" if r.get("quick") else "")
        + f", load average {r.get('load_at_start', float('nan')):.1f} at the start and "
        f"{r.get('load_at_end', float('nan')):.1f} at the end: the machine's 2 cores are shared with other jobs, "
        "which the 2-worker cases feel most.\n"
    )
    lines = ["| group | case | median | IQR | ratio [IQR] |", "|---|---|---|---:|---:|"]
    lines[1] = "|---|---|---:|---:|---:|"
    for x in r.get("rows", []):
        if x.get("group") == "out of core":
            continue
        g = x.get("group", "")
        gl = "vs dask.array, 2 workers" if g == "vs dask.array" else g.split(",")[0]
        name = _DASK_LABELS.get((g, x["case"]), x["case"])
        if "skipped" in x:
            lines.append(f"| {gl} | {name} | skipped | {x['skipped'][:80].replace('|', '/')} | |")
            continue
        name = f"**{name}**" if name.startswith("functorch_lite") and x["case"] != x.get("baseline") else name
        ratio = f"{x['ratio']:.2f}x [{x['ratio_q1']:.2f}–{x['ratio_q3']:.2f}]" if "ratio" in x else ""
        if x["case"] == x.get("baseline"):
            ratio = "1.00x"
        lines.append(
            f"| {gl} | {name} | {_fmt_t(x['median_s'])} | {_fmt_t(x['q1_s'])} – {_fmt_t(x['q3_s'])} | {ratio} |"
        )
    out.append("\n".join(lines) + "\n")
    ooc = _dask_row(r, "out of core", "functorch_lite, 3 full-batch steps out of core")
    if ooc is not None:
        steps = ooc.get("steps_s") or [ooc["q1_s"], ooc["median_s"], ooc["q3_s"]]
        losses = " -> ".join(f"{v:.3f}" for v in ooc.get("losses", []))
        mem = ooc["worker_memory_bytes"]
        out.append(
            f"**Out of core**: {ooc['rows'] / 1e6:.1f}M x {r.get('d', 32)} float32 rows "
            f"({ooc['data_bytes'] / 2**30:.2f} GiB) in a `.npy` stack on disk (`da.from_npy_stack`, memory-mapped per "
            f"chunk), 2 workers with `memory_limit={mem / 2 / 2**20:.0f}MiB` each ({mem / 2**30:.2f} GiB in all, so the "
            f"data is {ooc['data_bytes'] / mem:.2f}x the workers' memory), 3 full-batch SGD steps: "
            f"**{ooc['total_s']:.1f} s** ({', '.join(f'{v:.2f}' for v in steps)} s), loss {losses}, "
            + (
                "no worker lost or restarted"
                if not ooc.get("workers_lost")
                else f"{ooc['workers_lost']} worker(s) lost"
            )
            + f" (writing the stack: {ooc.get('write_s', float('nan')):.1f} s).\n"
        )
    sc = _dask_row(r, "scaling", "functorch_lite, 2 workers")
    scd = _dask_row(r, "scaling, data_parallel", "functorch_lite data_parallel (jit per shard), 2 workers")
    sch = _dask_row(r, "scaling, by hand", "dask.array by hand, 2 workers")
    vg = _dask_row(r, "vs dask.array", "functorch_lite, 2 workers")
    vd = _dask_row(r, "vs dask.array", "functorch_lite data_parallel (jit per shard), 2 workers")
    ceil = _dask_row(r, "scaling, machine ceiling", "numpy, 2 processes at once, half each")

    def met(x: dict[str, Any] | None, limit: float) -> str:
        return "not measured" if x is None or "ratio" not in x else ("**met**" if x["ratio"] <= limit else "**missed**")

    out.append(
        f"Targets: 2 workers vs 1 <= 0.65x: graph path {met(sc, 0.65)} ({_ratio(sc)}), `data_parallel` "
        f"{met(scd, 0.65)} ({_ratio(scd)}); dask.array by hand got {_ratio(sch)} in the same run, and the machine "
        f"itself (numpy's gradient in 2 processes at once over half the rows each, against 1 process over all, no "
        f"dask) {_ratio(ceil)}: the ceiling any 2-worker case can reach here. functorch_lite vs "
        f"dask.array by hand <= 1.15x: graph path {met(vg, 1.15)} ({_ratio(vg)}), `fl.dask.data_parallel` "
        f"{met(vd, 1.15)} ({_ratio(vd)}).\n"
    )
    out.append(
        "Why the graph path costs more than the hand-written gradient: the hand-written one is the simplified "
        "`sigmoid(z) - y` (4 numpy passes per chunk), autodiff's is the chain rule through softplus (about 19 "
        "elementwise ops), which dask fuses into one task per chunk but runs as separate numpy calls, each with a "
        "fresh result array. On a `distributed` worker a fresh 2 MB array costs ~0.7 ms of page faults, 20x the "
        "`add` itself: the nanny starts workers with `MALLOC_TRIM_THRESHOLD_=65536`, which fixes glibc's mmap "
        "threshold at 128 KiB, so every such temporary is mapped and unmapped again. `fl.dask.compute` therefore "
        "runs each fused chunk task with its dead temporaries reused as `out=` buffers (`functorch_lite/"
        "_dask_inplace.py`; the same numpy calls, bitwise equal): on one worker the fused chain went from 18 to "
        "9 ms per chunk (task stream, 500k-row chunks), the rest is the ops' own passes and the buffers that must be "
        "new. `data_parallel` runs the whole shard `fl.jit`-ed instead (CSE, DCE, in-place buffers) in one task "
        "per shard. Scaling: with two busy workers, the scheduler, the client and the other jobs share 2 cores, "
        "so neither path (nor dask.array by hand) gets near 0.5x here. The task stream shows the work itself splits "
        "evenly (17:03 UTC, load ~7: graph path 233 ms of compute on 1 worker, 98 + 115 ms on 2; by hand 177 ms, "
        "106 + 127 ms), but on 2 workers the span from the first task to the last is 2-3x the busiest worker's compute: "
        "the workers wait on the scheduler, on the tree reduction's last sums and on the CPU the other processes "
        "hold, which a 2-core machine cannot hide. numpy's float32 `logaddexp` is about 20x "
        "slower than `relu(z) + log1p(exp(-|z|))`. `BENCH_QUICK=1` runs 1M rows and 256 MiB workers.\n"
    )
    return "\n".join(out)


def render(res: dict[str, Any], meta: dict[str, Any], profiles: str) -> str:
    out = ["# Benchmarks\n"]
    out.append(
        "functorch_lite side by side with hand-written NumPy (the floor: the same math with no framework) "
        "and the peers installed here (HIPS autograd, torch CPU eager and torch.func, jax eager and jit). "
        "Generated by `python benchmarks/run_all.py` (the scripts live in `benchmarks/`; each one runs alone "
        "too and prints a table and one JSON line). Install the peers with the `benchmarks` extra "
        "(`pip install -e .[benchmarks]`; torch is pinned to `==2.13.0`); a peer that is missing is skipped.\n"
    )
    out.append("## How it is measured\n")
    out.append(
        "- **One compute thread for every framework**: `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `MKL_NUM_THREADS` = 1 and "
        "`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1` are set before numpy / jax / torch "
        "are imported, and `torch.set_num_threads(1)` (`benchmarks/_harness.py`).\n"
        "- **float32 everywhere**; every case starts from the same data and weights.\n"
        "- **Checked before timed**: each case's result (loss and gradients, HVP, parameters after one epoch, ...) is compared "
        "with the hand-written NumPy result; a case that disagrees is reported as skipped, never timed.\n"
        "- **Warm-up, calibrated blocks, interleaved rounds**: after warm-up calls, each case gets a block size (calls per block) "
        "so that a block lasts a fixed time; then several rounds run one block of every case, in an order rotated from round to "
        "round. Tables give the median time per call with its quartiles (IQR), and the **ratio** to the baseline as the median of "
        "the per-round ratios (so a ratio always compares blocks run side by side), with its quartiles.\n"
        f"- **Clock**: `{meta.get('clock', 'cpu')}`. The default is the CPU time of the benchmark process (`time.process_time`, all its "
        "threads): the machine these numbers come from is shared with other jobs, and CPU time does not count the time the process "
        "waits for a core. With one compute thread on an idle machine it equals wall time; `BENCH_CLOCK=wall` switches to "
        "`perf_counter` (both are recorded in `benchmarks/results.json`).\n"
    )
    m = meta.get("machine", {})
    vers = next((r.get("versions") for r in res.values() if r.get("versions")), {})
    out.append(
        f"Run: {meta.get('date', '?')} on {m.get('cpu', '?')}, {m.get('cores', '?')} cores "
        f"(load average {m.get('load_at_start', float('nan')):.1f} at the start), {m.get('platform', '')}. "
        "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".\n"
    )
    out.append("## Targets\n")
    out.append("Ratios to hand-written NumPy in the same run (the conv-net: to torch CPU eager).\n")
    out.append("| workload | target | functorch_lite | met? | best peer here |")
    out.append("|---|---:|---:|:---:|---|")
    for t in target_rows(res):
        unit = " µs/op" if t["metric"] == "us_per_op" else "x"
        if t["value"] is None:
            val = "not measured"
        else:
            val = f"{t['value']:.2f}{unit}"
            if "iqr" in t:
                val += f" [{t['iqr'][0]:.2f}–{t['iqr'][1]:.2f}]"
            if t.get("accuracy") is not None:
                val += f", {100 * t['accuracy']:.1f} % acc."
        met = "—" if t["met"] is None else ("yes" if t["met"] else "**no**")
        tgt = f"<= {t['limit']}{unit}" + (", >= 97.5 % acc." if t["label"].startswith("digits") else "")
        out.append(f"| {t['label']} (`{t['case']}`) | {tgt} | {val} | {met} | {t['best_peer']} |")
    mem = res.get("memory", {}).get("rows", [])
    if mem:
        ck = {(r["group"], r["case"]): r.get("peak_mib") for r in mem}
        for g, c, label in (
            (
                "deep MLP step, 16 hidden layers of 512, batch 1024",
                "functorch_lite + checkpoint per 4-layer segment",
                "checkpoint lowers peak memory (16-layer MLP, 4-layer segments)",
            ),
            (
                "MLP step, batch 2048 (activation-heavy)",
                "functorch_lite + checkpoint",
                "(same, one checkpoint per layer of the 3-layer MLP, batch 2048)",
            ),
        ):
            a, b = ck.get((g, "functorch_lite")), ck.get((g, c))
            if a is not None and b is not None:
                out.append(
                    f"| {label} | lower than without | {b:.1f} MiB vs {a:.1f} MiB | {'yes' if b < a else '**no**'} | — |"
                )
    ck = {r["case"]: r.get("peak_mib") for r in res.get("scan", {}).get("rows", []) if "peak_mib" in r}
    a, b = ck.get("functorch_lite scan"), ck.get("functorch_lite scan(checkpoint=True)")
    if a is not None and b is not None:
        out.append(
            f"| scan(checkpoint=True) lowers the peak of grad through a 1000-step RNN scan | lower than without | "
            f"{b:.1f} MiB vs {a:.1f} MiB | {'yes' if b < a else '**no**'} | — |"
        )
    out.append("")
    out.append("![ratios](benchmarks.png)\n")
    out.append(
        "Bars: median ratio to the baseline of each panel (log scale; whiskers: quartiles of the per-round ratios); "
        "functorch_lite in red, the baseline in grey, dashed line: the target.\n"
    )
    out.append(render_side_by_side(res).rstrip("\n") + "\n")  # (one blank line before the next heading)
    out.append("## Results\n")
    for wl, group, title, extra in SECTIONS:
        r = res.get(wl)
        out.append(f"### {title}\n")
        if r is None:
            out.append("not run.\n")
            continue
        if "error" in r:
            out.append(f"failed: `{r['error'][:400]}`\n")
            continue
        rows = [x for x in r["rows"] if x.get("group") == group]
        out.append(render_table(rows, extra))
        if wl == "dispatch":
            out.append(
                f"One op is one primitive call; the chain makes {r.get('n_ops', 201)} of them "
                "(67 x `x = sin(x) * 1.01 + 0.1`); the grad adds a final sum.\n"
            )
        if wl == "per_example":
            out.append(
                "Memory-bound: every call writes ~170 MB of gradients into fresh memory, so the page faults of those "
                "allocations weigh in. On the shared machine these numbers come from, numpy's time for this case is "
                "bimodal (27-35 ms in most standalone runs, 55-100 ms in some rounds), which moves the ratio; in "
                "standalone interleaved runs functorch_lite's `vmap(grad)` takes 1.1-1.2x numpy's time.\n"
            )
        if wl == "onnx" and group == "batch 360":
            out.append(
                f"The export itself took {r.get('export_s', float('nan')):.2f} s (traced at four batch sizes for the "
                f"dynamic axis), the onnxruntime session {r.get('ort_session_s', float('nan')):.2f} s to build; "
                "onnxruntime ran with one intra-op and one inter-op thread. The convolutions are exported as "
                "the program computes them (window slices, one matmul), not as ONNX `Conv`.\n"
            )
        if wl == "digits":
            out.append(
                f"{r.get('steps', 900)} steps; the times are whole trainings. Accuracy is computed in numpy from each "
                "framework's final weights on the 360 held-out images.\n"
            )
    mem = res.get("memory")
    out.append("### (8) Peak memory (tracemalloc) of (2) and (3), with and without `fl.checkpoint`\n")
    if mem is None:
        out.append("not run.\n")
    elif "error" in mem:
        out.append(f"failed: `{mem['error'][:400]}`\n")
    else:
        out.append(
            "numpy reports its buffers to tracemalloc, so this counts every array allocated during one call "
            "(torch and jax allocate outside Python's view and are not measured). `checkpoint` wraps each hidden layer.\n"
        )
        out.append("| workload | case | peak | vs numpy |\n|---|---|---:|---:|")
        for x in mem["rows"]:
            if "skipped" in x:
                out.append(f"| {x['group']} | {x['case']} | skipped: {x['skipped'][:80]} | |")
            else:
                out.append(f"| {x['group']} | {x['case']} | {x['peak_mib']:.1f} MiB | {x['mem_ratio']:.2f}x |")
        out.append("")
    out.append(render_scan(res.get("scan")))
    out.append(render_dask(res.get("dask")))
    out.append("## Profile notes\n")
    if os.path.exists(NOTES):
        with open(NOTES) as f:
            out.append(f.read().strip() + "\n")
    if profiles:
        out.append("### Raw profiles (cProfile, `python benchmarks/profile_fl.py`)\n")
        out.append(
            "Own time of the functions that cost most, per call of the functorch_lite case; "
            "cProfile inflates small Python functions, so read the shares, not the absolute times.\n"
        )
        out.append(profiles)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the benchmarks and render docs/benchmarks.md.")
    ap.add_argument("--only", nargs="*", choices=list(SCRIPTS), help="run only these workloads")
    ap.add_argument("--render-only", action="store_true", help="re-render from benchmarks/results.json")
    ap.add_argument("--profile", action="store_true", help="profile functorch_lite where it misses a target")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run; numbers are rougher)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per script")
    a = ap.parse_args()

    saved: dict[str, Any] = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            saved = json.load(f)
    res = saved.get("results", {})
    meta = saved.get("meta", {})
    profiles = saved.get("profiles", "")
    if not a.render_only:
        env = dict(os.environ)
        if a.quick:
            env["BENCH_QUICK"] = "1"
        run_meta = {
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "clock": env.get("BENCH_CLOCK", "cpu"),
            "quick": a.quick,
        }
        # --only: the page's run line stays that of the full run the other sections come from
        # (each workload's result carries its own date where its script records one)
        meta = meta if a.only and meta else run_meta
        for name in a.only or list(SCRIPTS):
            res[name] = run_script(name, a.timeout, env)
        if a.profile:
            missed = [t["profile"] for t in target_rows(res) if t["met"] is False and t["profile"]]
            if missed:
                print(f"[run_all] profiling: {', '.join(missed)}", flush=True)
                p = subprocess.run(
                    [sys.executable, os.path.join(HERE, "profile_fl.py"), *missed],
                    cwd=HERE,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                profiles = p.stdout if p.returncode == 0 else f"profile failed: {p.stderr[-600:]}\n"
            else:
                profiles = ""
        with open(RESULTS, "w") as f:
            json.dump({"meta": meta, "results": res, "profiles": profiles}, f, indent=1, default=float)
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    if not render_chart(res, PNG) or not render_side_chart(res, PNG_SIDE):
        print("[run_all] matplotlib missing: no chart", flush=True)
    with open(DOC, "w") as f:
        f.write(render(res, meta, profiles))
    print(f"[run_all] wrote {os.path.relpath(DOC, ROOT)} and {os.path.relpath(PNG, ROOT)}")
    for t in target_rows(res):
        v = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(
            f"  target {t['label']}: {v} (limit {t['limit']}) -> {'n/a' if t['met'] is None else ('met' if t['met'] else 'MISSED')}"
        )


if __name__ == "__main__":
    main()
