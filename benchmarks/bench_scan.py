"""(9) Control flow: an RNN cell under ``fl.scan``, forward and grad, and the memory of a long scan.

The cell is ``h = tanh(x_t @ Wx + h @ Wh + b)``, hidden 64, batch 32, inputs of 64, 20 steps;
the loss is ``mean(ys ** 2)`` over the stacked hidden states. The floor is hand-written numpy
of the same loop, with a hand-written backward (BPTT over the stored hidden states). Cases:
functorch_lite's ``fl.scan`` eagerly and under ``fl.jit``, the same cell in a Python for-loop,
``jax.lax.scan`` under ``jax.jit`` and a torch for-loop as peers. Targets: eager ``scan`` <=
1.3x the for-loop (column ``vs for-loop``: the median of the per-round ratios, same run);
jitted ``scan`` <= 1.15x numpy.

Memory: peak (tracemalloc) of ``grad`` of ``sum(h_T)`` through a 1000-step scan of the same
cell, with and without ``checkpoint=True`` (a carry stored per segment of ~32 steps).
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import datetime as _dt

import numpy as np

T, B, D, HID = 20, 32, 64, 64
LOOP = "functorch_lite for-loop"


def data(steps: int = T, seed: int = 9):
    r = H.rng(seed)
    xs = H.f32(r.normal(0, 1, (steps, B, D)))
    wx = H.f32(r.normal(0, 1 / np.sqrt(D), (D, HID)))
    wh = H.f32(r.normal(0, 1 / np.sqrt(HID), (HID, HID)))
    b = H.f32(r.normal(0, 0.1, HID))
    return xs, wx, wh, b


# ------------------------------------------------------------------ hand-written numpy
def np_forward(xs, wx, wh, b):
    h = np.zeros((B, HID), np.float32)
    hs = []
    for t in range(xs.shape[0]):
        h = np.tanh(xs[t] @ wx + h @ wh + b)
        hs.append(h)
    ys = np.stack(hs)
    return np.mean(ys * ys), ys


def np_loss(xs, wx, wh, b):
    return np_forward(xs, wx, wh, b)[0]


def np_grad(xs, wx, wh, b):
    """Backpropagation through time over the stored hidden states."""
    loss, ys = np_forward(xs, wx, wh, b)
    gy = ys * np.float32(2.0 / ys.size)
    gwx, gwh, gb = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    gh = np.zeros((B, HID), np.float32)
    zero = np.zeros((B, HID), np.float32)
    for t in range(xs.shape[0] - 1, -1, -1):
        gz = (gh + gy[t]) * (1 - ys[t] * ys[t])
        gwx += xs[t].T @ gz
        gwh += (ys[t - 1] if t else zero).T @ gz
        gb += gz.sum(0)
        gh = gz @ wh.T
    return loss, [gwx, gwh, gb]


# ------------------------------------------------------------------ cases
def build_cases(arrays, grad: bool):
    xs, wx, wh, b = arrays
    tol = {"rtol": 2e-4, "atol": 2e-6}
    ref_name = "numpy (hand-written BPTT)" if grad else "numpy (hand-written)"
    cases = [H.Case(ref_name, (lambda: np_grad(*arrays)) if grad else (lambda: np_loss(*arrays)))]

    fl = H.peer("functorch_lite")
    if fl is not None:
        xf, wxf, whf, bf = (fl.asarray(a) for a in arrays)
        h0 = fl.zeros((B, HID))

        def scan_loss(xs, wx, wh, b):
            def cell(h, x):
                h = fl.tanh(x @ wx + h @ wh + b)
                return h, h

            _, ys = fl.scan(cell, h0, xs)
            return fl.mean(ys * ys)

        def loop_loss(xs, wx, wh, b):
            h, hs = h0, []
            for t in range(xs.shape[0]):
                h = fl.tanh(xs[t] @ wx + h @ wh + b)
                hs.append(h)
            ys = fl.stack(hs)
            return fl.mean(ys * ys)

        def as_ref(out):
            v, g = out
            return v, list(g)

        wrap = fl.value_and_grad if grad else (lambda f, **k: f)
        kw = {"argnums": (1, 2, 3)} if grad else {}
        for name, f in (
            ("functorch_lite scan", wrap(scan_loss, **kw)),
            (LOOP, wrap(loop_loss, **kw)),
            ("functorch_lite jit(scan)", fl.jit(wrap(scan_loss, **kw))),
        ):
            call = (lambda f=f: as_ref(f(xf, wxf, whf, bf))) if grad else (lambda f=f: f(xf, wxf, whf, bf))
            cases.append(H.Case(name, call, **tol))

    jax = H.peer("jax")
    if jax is not None:
        jnp = jax.numpy
        xj, wxj, whj, bj = (jnp.asarray(a) for a in arrays)

        def jloss(xs, wx, wh, b):
            def cell(h, x):
                h = jnp.tanh(x @ wx + h @ wh + b)
                return h, h

            _, ys = jax.lax.scan(cell, jnp.zeros((B, HID), jnp.float32), xs)
            return jnp.mean(ys * ys)

        if grad:
            jf = jax.jit(jax.value_and_grad(jloss, argnums=(1, 2, 3)))

            def jcall():
                v, g = jf(xj, wxj, whj, bj)
                jax.block_until_ready(g)
                return v, list(g)
        else:
            jf = jax.jit(jloss)

            def jcall():
                return jf(xj, wxj, whj, bj).block_until_ready()

        cases.append(H.Case("jax.jit(lax.scan)", jcall, **tol))

    torch = H.peer("torch")
    if torch is not None:
        xt, wxt, wht, bt = (torch.from_numpy(a) for a in arrays)

        def tloss(wx, wh, b):
            h, hs = torch.zeros((B, HID)), []
            for t in range(T):
                h = torch.tanh(xt[t] @ wx + h @ wh + b)
                hs.append(h)
            ys = torch.stack(hs)
            return torch.mean(ys * ys)

        if grad:

            def tcall():
                ps = [p.detach().requires_grad_(True) for p in (wxt, wht, bt)]
                v = tloss(*ps)
                v.backward()
                return v, [p.grad for p in ps]
        else:

            def tcall():
                with torch.no_grad():
                    return tloss(wxt, wht, bt)

        cases.append(H.Case("torch for-loop", tcall, **tol))
    return cases


def add_loop_ratios(rows, cases) -> None:
    """Each row's per-round ratio to the functorch_lite for-loop (same rounds): ``ratio_loop``."""
    loop = next((c for c in cases if c.name == LOOP and c.times), None)
    if loop is None:
        return
    by = {c.name: c for c in cases}
    for r in rows:
        c = by.get(r["case"])
        if c is None or not c.times or "skipped" in r:
            continue
        q1, med, q3 = H.quartiles([a / b for a, b in zip(c.times, loop.times, strict=False)])
        r.update(ratio_loop=med, ratio_loop_q1=q1, ratio_loop_q3=q3)


# ------------------------------------------------------------------ memory
def memory_rows(steps: int = 1000):
    group = f"grad through a {steps}-step scan"
    arrays = data(steps, seed=10)
    xs, wx, wh, b = arrays

    def np_ref():
        # BPTT of sum(h_T): the hidden states stored, as reverse mode does without checkpointing
        h = np.zeros((B, HID), np.float32)
        hs = [h]
        for t in range(steps):
            h = np.tanh(xs[t] @ wx + h @ wh + b)
            hs.append(h)
        gh = np.ones_like(h)
        gwx, gwh, gb = np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
        for t in range(steps - 1, -1, -1):
            gz = gh * (1 - hs[t + 1] * hs[t + 1])
            gwx += xs[t].T @ gz
            gwh += hs[t].T @ gz
            gb += gz.sum(0)
            gh = gz @ wh.T
        return [gwx, gwh, gb]

    ref = np_ref()
    base = H.peak_mib(np_ref)
    rows = [{"case": "numpy (hand-written BPTT)", "group": group, "peak_mib": base, "mem_ratio": 1.0}]
    fl = H.peer("functorch_lite")
    if fl is None:
        return rows
    xf, wxf, whf, bf = (fl.asarray(a) for a in arrays)
    h0 = fl.zeros((B, HID))

    def make(checkpoint):
        def loss(wx, wh, b):
            def cell(h, x):
                return fl.tanh(x @ wx + h @ wh + b), None

            h, _ = fl.scan(cell, h0, xf, checkpoint=checkpoint)
            return fl.sum(h)

        g = fl.grad(loss, argnums=(0, 1, 2))
        return lambda: list(g(wxf, whf, bf))

    for label, ck in (("functorch_lite scan", False), ("functorch_lite scan(checkpoint=True)", True)):
        call = make(ck)
        try:
            H.assert_close(call(), ref, 1e-3, 1e-4, f"{group}: {label}")
            peak = H.peak_mib(call)
            rows.append({"case": label, "group": group, "peak_mib": peak, "mem_ratio": peak / base})
        except Exception as exc:  # noqa: BLE001 - report, never crash the run
            rows.append({"case": label, "group": group, "skipped": f"{type(exc).__name__}: {exc}"[:300]})
    return rows


def setup():
    return build_cases(data(), grad=True)


def main() -> None:
    arrays = data()
    rows = []
    for grad, group in ((False, "RNN scan forward"), (True, "RNN scan grad")):
        ref = np_grad(*arrays) if grad else np_loss(*arrays)
        cases = build_cases(arrays, grad)
        H.measure(H.check_cases(cases, ref), rounds=9, block_s=0.08)
        g_rows = H.summarize(cases, cases[0].name, group)
        add_loop_ratios(g_rows, cases)
        H.print_table(
            f"{group}: h = tanh(x_t Wx + h Wh + b), hidden {HID}, batch {B}, {T} steps",
            g_rows,
            [("ratio_loop", "vs for-loop", lambda v: f"{v:.2f}x")],
        )
        rows += g_rows
    mem = memory_rows()
    print("\n== peak memory (tracemalloc), MiB ==")
    for r in mem:
        if "skipped" in r:
            print(f"  {r['case']:40s}  skipped: {r['skipped'][:70]}")
        else:
            print(f"  {r['case']:40s}  {r['peak_mib']:8.2f} MiB  {r['mem_ratio']:.2f}x")
    H.emit("scan", rows + mem, date=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


if __name__ == "__main__":
    main()
