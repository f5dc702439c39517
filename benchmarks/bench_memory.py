"""(8) Peak memory (tracemalloc) of the MLP step (2) and the per-example gradients (3).

numpy reports its data buffers to tracemalloc, so the peak counts every array
allocated during one call (inputs and parameters made beforehand are excluded);
torch and jax allocate outside Python's view and are not measured here.
functorch_lite runs with and without ``fl.checkpoint`` around each hidden
layer (which keeps only a layer's inputs and recomputes the layer in backward).
Two activation-heavy cases follow: batch 2048, and a 16-hidden-layer MLP checkpointed in
segments of 4 layers (where checkpointing pays: only segment inputs are kept).
Reported in MiB, with the ratio to the hand-written numpy peak.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread


import _mlp as M

SIZES = (784, 512, 512, 10)


def fl_losses(fl):
    loss = M.fl_loss(fl)
    sg = fl.stop_gradient

    relu = M.fl_relu(fl)

    def layer(x, w, b):
        return relu(x @ w + b)

    ck = fl.checkpoint(layer) if hasattr(fl, "checkpoint") else None

    def loss_ck(p, x, yoh):
        n = len(p) // 2
        for i in range(1, n):
            x = ck(x, p[f"w{i}"], p[f"b{i}"])
        z = x @ p[f"w{n}"] + p[f"b{n}"]
        m = sg(fl.max(z, axis=-1, keepdims=True))
        lse = fl.log(fl.sum(fl.exp(z - m), axis=-1)) + m[..., 0]
        return fl.mean(lse - fl.sum(yoh * z, axis=-1))

    return loss, (loss_ck if ck is not None else None)


def fl_segment_loss(fl, seg: int):
    """Checkpoint every ``seg`` consecutive hidden layers as one block (the classic sqrt(n) scheme)."""
    if not hasattr(fl, "checkpoint"):
        return None
    relu = M.fl_relu(fl)
    sg = fl.stop_gradient

    def block(x, *wb):
        for i in range(0, len(wb), 2):
            x = relu(x @ wb[i] + wb[i + 1])
        return x

    ck = fl.checkpoint(block)

    def loss(p, x, yoh):
        n = len(p) // 2
        hidden = [(p[f"w{i}"], p[f"b{i}"]) for i in range(1, n)]
        for j in range(0, len(hidden), seg):
            x = ck(x, *[t for wb in hidden[j : j + seg] for t in wb])
        z = x @ p[f"w{n}"] + p[f"b{n}"]
        m = sg(fl.max(z, axis=-1, keepdims=True))
        lse = fl.log(fl.sum(fl.exp(z - m), axis=-1)) + m[..., 0]
        return fl.mean(lse - fl.sum(yoh * z, axis=-1))

    return loss


def workload_rows(name, batch, per_example, fl, checks, sizes=SIZES, seg=None):
    p0 = M.init_params(sizes)
    x, _, yoh = M.data(batch, sizes[0], sizes[-1], seed=6)
    rows = []
    if per_example:
        ref_fn = lambda: M.np_per_example_grads(p0, x, yoh)  # noqa: E731
        base_name = "numpy einsum (hand-written)"
    else:
        ref_fn = lambda: M.np_loss_and_grads(p0, x, yoh)  # noqa: E731
        base_name = "numpy (hand-written)"
    ref = ref_fn()
    base = H.peak_mib(ref_fn)
    rows.append({"case": base_name, "group": name, "peak_mib": base, "mem_ratio": 1.0})
    if fl is None:
        return rows
    pf = {k: fl.asarray(v) for k, v in p0.items()}
    xf, yf = fl.asarray(x), fl.asarray(yoh)
    loss, loss_ck = fl_losses(fl)
    variants = [("functorch_lite", loss), ("functorch_lite + checkpoint", loss_ck)]
    if seg is not None:
        variants = [
            ("functorch_lite", loss),
            (f"functorch_lite + checkpoint per {seg}-layer segment", fl_segment_loss(fl, seg)),
        ]
    for label, lf in variants:
        if lf is None:
            rows.append({"case": label, "group": name, "skipped": "fl.checkpoint missing"})
            continue
        if per_example:
            fn = fl.vmap(fl.grad(lf), in_axes=(None, 0, 0))
            call = lambda fn=fn: fn(pf, xf, yf)  # noqa: E731
            want = ref
        else:
            fn = fl.value_and_grad(lf)
            call = lambda fn=fn: fn(pf, xf, yf)  # noqa: E731
            want = ref
        try:
            H.assert_close(call(), want, 2e-4, 2e-5, f"{name}: {label}")
            peak = H.peak_mib(call)
            rows.append({"case": label, "group": name, "peak_mib": peak, "mem_ratio": peak / base})
        except Exception as exc:  # noqa: BLE001 - report, never crash the run
            rows.append({"case": label, "group": name, "skipped": f"{type(exc).__name__}: {exc}"[:300]})
    return rows


def main() -> None:
    fl = H.peer("functorch_lite")
    rows = []
    rows += workload_rows("MLP step, batch 128", 128, False, fl, None)
    rows += workload_rows("per-example grads, batch 64", 64, True, fl, None)
    rows += workload_rows("MLP step, batch 2048 (activation-heavy)", 2048, False, fl, None)
    deep = (784,) + (512,) * 16 + (10,)
    rows += workload_rows("deep MLP step, 16 hidden layers of 512, batch 1024", 1024, False, fl, None, deep, seg=4)
    print("\n== peak memory (tracemalloc), MiB ==")
    w = max(len(r["case"]) for r in rows)
    group = None
    for r in rows:
        if r["group"] != group:
            group = r["group"]
            print(f"-- {group}")
        if "skipped" in r:
            print(f"  {r['case'].ljust(w)}  skipped: {r['skipped'][:70]}")
        else:
            print(f"  {r['case'].ljust(w)}  {r['peak_mib']:8.1f} MiB  {r['mem_ratio']:.2f}x")
    H.emit("memory", rows)


if __name__ == "__main__":
    main()
