"""The "eager and jitted, side by side" table and chart of docs/benchmarks.md (used by run_all.py).

One row per workload: hand-written numpy (the floor), functorch_lite eager and under ``fl.jit``,
and the fastest eager and the fastest compiled peer measured in the same run. Every figure is
a ratio to the workload's baseline, read from ``benchmarks/results.json``; nothing is measured here.
"""

from __future__ import annotations

from typing import Any

# (label, workload, group, functorch_lite eager case, functorch_lite jitted case)
SIDE = (
    ("eager 200-op chain, shape (8,)", "dispatch", "eager chain", "functorch_lite", "functorch_lite jit"),
    ("grad of the 200-op chain", "dispatch", "grad chain", "functorch_lite grad", "functorch_lite jit(grad)"),
    ("MLP 784-512-512-10 step", "mlp", "MLP step", "functorch_lite grad", "functorch_lite jit(step) + optim.sgd"),
    (
        "per-example grads, batch 64",
        "per_example",
        "per-example grads",
        "functorch_lite vmap(grad)",
        "functorch_lite jit(vmap(grad))",
    ),
    ("HVP, A 1000x1000", "hvp", "HVP", "functorch_lite jvp(grad) fwd-over-rev", "functorch_lite jit(jvp(grad))"),
    (
        "digits end to end, optim.adam",
        "digits",
        "digits end-to-end",
        "functorch_lite grad + Adam",
        "functorch_lite jit(step) + optim.adam",
    ),
    (
        "digits end to end, class API",
        "digits",
        "digits end-to-end",
        "functorch_lite nn + optim.Adam",
        "functorch_lite jit nn + optim.Adam",
    ),
    ("RNN scan forward, 20 steps", "scan", "RNN scan forward", "functorch_lite scan", "functorch_lite jit(scan)"),
    ("RNN scan grad (BPTT)", "scan", "RNN scan grad", "functorch_lite scan", "functorch_lite jit(scan)"),
)

_COMPILED_MARKS = ("jit", "compile", "xla")


def _rows(res: dict[str, Any], workload: str, group: str) -> list[dict[str, Any]]:
    return [r for r in res.get(workload, {}).get("rows", []) if r.get("group") == group and "ratio" in r]


def _best(rows: list[dict[str, Any]], compiled: bool) -> tuple[str, float] | None:
    """The fastest peer row (not functorch_lite, not the baseline), eager or compiled."""
    best = None
    for r in rows:
        name = r["case"]
        if name.startswith("functorch_lite") or name == r.get("baseline"):
            continue
        if any(m in name for m in _COMPILED_MARKS) != compiled:
            continue
        if best is None or r["ratio"] < best[1]:
            best = (name, r["ratio"])
    return best


def side_by_side(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per workload: label, baseline, eager / jit ratios and the best peers (or None)."""
    out = []
    for label, wl, group, eager, jitted in SIDE:
        rows = _rows(res, wl, group)
        if not rows:
            continue
        by_case = {r["case"]: r for r in rows}
        out.append(
            {
                "label": label,
                "baseline": rows[0].get("baseline", ""),
                "eager": by_case.get(eager, {}).get("ratio"),
                "jit": by_case.get(jitted, {}).get("ratio"),
                "peer_eager": _best(rows, compiled=False),
                "peer_jit": _best(rows, compiled=True),
            }
        )
    return out


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def _peer(p: tuple[str, float] | None) -> str:
    return "—" if p is None else f"{p[1]:.2f}x ({p[0]})"


def render_side_by_side(res: dict[str, Any]) -> str:
    """The markdown table (empty when no workload of SIDE has results)."""
    rows = side_by_side(res)
    if not rows:
        return ""
    lines = [
        "## Eager and jitted, side by side\n",
        "Ratio to hand-written NumPy (1.00x; the RNN grad: hand-written BPTT) of functorch_lite run op by op and "
        "under `fl.jit`, next to the fastest peer of each kind in the same run (eager: torch, jax op by op, "
        "HIPS autograd, torch.func; compiled: `jax.jit`). Lower is better.\n",
        "| workload | functorch_lite eager | functorch_lite `fl.jit` | best eager peer | best compiled peer |",
        "|---|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_x(r['eager'])} | {_x(r['jit'])} | {_peer(r['peer_eager'])} | {_peer(r['peer_jit'])} |"
        )
    lines.append("")
    lines.append("![eager and jitted](benchmarks-eager-jit.png)\n")
    return "\n".join(lines) + "\n"


def render_side_chart(res: dict[str, Any], path: str) -> bool:
    """Grouped bars of side_by_side (log scale); False when matplotlib is missing or nothing was run."""
    rows = side_by_side(res)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return False
    if not rows:
        return False
    series = (
        ("functorch_lite eager", "eager", "#f4a3a3"),
        ("functorch_lite fl.jit", "jit", "#d62728"),
        ("best eager peer", "peer_eager", "#9ecae1"),
        ("best compiled peer", "peer_jit", "#1f77b4"),
    )
    fig, ax = plt.subplots(figsize=(11, 0.4 * len(rows) * len(series) / 2 + 1.8))
    height = 0.8 / len(series)
    for k, (name, key, color) in enumerate(series):
        ys, vals = [], []
        for i, r in enumerate(rows):
            v = r[key][1] if isinstance(r[key], tuple) else r[key]
            if v is not None:
                ys.append(len(rows) - 1 - i + (len(series) / 2 - k - 0.5) * height)
                vals.append(v)
        ax.barh(ys, vals, height=height, color=color, label=name)
        for y, v in zip(ys, vals, strict=True):
            ax.text(v, y, f" {v:.2f}x", va="center", fontsize=6)
    ax.set_yticks(range(len(rows)), [r["label"] for r in rows][::-1], fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    lo, hi = ax.get_xlim()
    ax.set_xticks([t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200) if lo <= t <= hi])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_title(
        "ratio to hand-written NumPy (lower is better): eager and jitted, functorch_lite and peers", fontsize=9
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=len(series))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
