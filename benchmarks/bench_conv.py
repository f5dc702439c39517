"""(6) A small conv-net training step on 8x8 digits images, batch 128, SGD.

conv 1->8 (3x3, pad 1) - ReLU - conv 8->16 (3x3, pad 1) - ReLU - maxpool 2 -
flatten (256) - linear 10, softmax cross-entropy. Weights are stored in the
PyTorch layout (O, C, kH, kW) and (out, in). The numpy floor is a hand-written
im2col forward and backward. Target: functorch_lite <= 2x torch CPU (eager).
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import numpy as np

BATCH = 128
LR = 0.05
KEYS = ("c1w", "c1b", "c2w", "c2b", "fw", "fb")
TOL = {"rtol": 1e-3, "atol": 1e-4}  # float32 sums over 8192 terms in the weight gradients


def init_params(seed: int = 5) -> dict[str, np.ndarray]:
    r = H.rng(seed)
    return {
        "c1w": H.f32(r.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3))),
        "c1b": H.f32(r.normal(0, 0.01, 8)),
        "c2w": H.f32(r.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3))),
        "c2b": H.f32(r.normal(0, 0.01, 16)),
        "fw": H.f32(r.normal(0, np.sqrt(1 / 256), (10, 256))),
        "fb": H.f32(r.normal(0, 0.01, 10)),
    }


def load_batch() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    x = H.f32(X[:BATCH].reshape(BATCH, 1, 8, 8) / 16.0)
    return x, y[:BATCH].astype(np.int64)


# ----------------------------------------------------------------------------------
# Hand-written numpy (im2col)
# ----------------------------------------------------------------------------------
def _im2col(x):
    """(B, C, H, W) -> (B, C*9, H*W) windows of a 3x3, pad-1 convolution."""
    b, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([xp[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=2)
    return cols.reshape(b, c * 9, h * w)


def _col2im(d, c, h, w):
    """Transpose of _im2col: (B, C*9, H*W) -> (B, C, H, W)."""
    b = d.shape[0]
    d = d.reshape(b, c, 9, h, w)
    out = np.zeros((b, c, h + 2, w + 2), d.dtype)
    for k in range(9):
        i, j = divmod(k, 3)
        out[:, :, i : i + h, j : j + w] += d[:, :, k]
    return out[:, :, 1:-1, 1:-1]


def np_loss_and_grads(p, x, y):
    b = x.shape[0]
    col1 = _im2col(x)  # (B, 9, 64)
    h1 = p["c1w"].reshape(8, 9) @ col1 + p["c1b"][:, None]  # (B, 8, 64)
    a1 = np.maximum(h1, 0)
    col2 = _im2col(a1.reshape(b, 8, 8, 8))  # (B, 72, 64)
    h2 = p["c2w"].reshape(16, 72) @ col2 + p["c2b"][:, None]  # (B, 16, 64)
    # 2x2 windows on the last axis: (B, 16, 4, 4, 4); the gradient goes to the first maximum
    # of each window (as in torch; ties are common: where the input window is all zero, every
    # position holds the bias).
    win = np.maximum(h2, 0).reshape(b, 16, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(b, 16, 4, 4, 4)
    arg = win.argmax(axis=-1)[..., None]
    pooled = np.take_along_axis(win, arg, axis=-1)[..., 0]
    flat = pooled.reshape(b, 256)
    z = flat @ p["fw"].T + p["fb"]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) + m[:, 0] - z[np.arange(b), y])
    dz = e / s
    dz[np.arange(b), y] -= 1
    dz /= np.float32(b)
    g = {"fw": dz.T @ flat, "fb": dz.sum(axis=0)}
    dwin = np.zeros_like(win)
    np.put_along_axis(dwin, arg, (dz @ p["fw"]).reshape(b, 16, 4, 4, 1), axis=-1)
    dh2 = dwin.reshape(b, 16, 4, 4, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(b, 16, 64) * (h2 > 0)
    g["c2w"] = np.tensordot(dh2, col2, axes=([0, 2], [0, 2])).reshape(16, 8, 3, 3)
    g["c2b"] = dh2.sum(axis=(0, 2))
    da1 = _col2im(p["c2w"].reshape(16, 72).T @ dh2, 8, 8, 8).reshape(b, 8, 64)
    dh1 = da1 * (h1 > 0)
    g["c1w"] = np.tensordot(dh1, col1, axes=([0, 2], [0, 2])).reshape(8, 1, 3, 3)
    g["c1b"] = dh1.sum(axis=(0, 2))
    return loss, g


# ----------------------------------------------------------------------------------
def build_cases(p0, x, y):
    cases = []
    pn = {k: v.copy() for k, v in p0.items()}

    def np_step():
        _, g = np_loss_and_grads(pn, x, y)
        for k in KEYS:
            pn[k] -= LR * g[k]

    cases.append(H.Case("numpy im2col (hand-written)", np_step, lambda: np_loss_and_grads(p0, x, y), **TOL))

    torch = H.peer("torch")
    if torch is not None:
        nn = torch.nn

        def t_model():
            m = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(8, 16, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(256, 10),
            )
            with torch.no_grad():
                for q, k in zip(m.parameters(), KEYS, strict=True):
                    q.copy_(torch.from_numpy(p0[k]))
            return m

        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        tm = t_model()
        opt = torch.optim.SGD(tm.parameters(), lr=LR)

        def t_step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(tm(xt), yt).backward()
            opt.step()

        def t_res():
            m = t_model()
            loss = torch.nn.functional.cross_entropy(m(xt), yt)
            loss.backward()
            return loss, {k: q.grad for k, q in zip(KEYS, m.parameters(), strict=True)}

        cases.append(H.Case("torch eager", t_step, t_res, **TOL))

    fl = H.peer("functorch_lite")
    if fl is not None:
        cases += fl_cases(fl, p0, x, y)

    jax = H.peer("jax")
    if jax is not None:
        cases.append(jax_case(jax, p0, x, y))
    return cases


def fl_cases(fl, p0, x, y):
    out = []
    nn, optim = H.peer("functorch_lite.nn"), H.peer("functorch_lite.optim")
    if nn is None or optim is None:
        return [H.Case("functorch_lite nn + optim.SGD", lambda: None, error="functorch_lite.nn / optim missing")]
    F = nn.functional
    xf, yf = fl.asarray(x), fl.asarray(y)

    def model():
        m = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 10),
        )
        sd = dict(zip([n for n, _ in m.named_parameters()], [fl.asarray(p0[k]) for k in KEYS], strict=True))
        m.load_state_dict(sd)
        return m

    try:
        fm = model()
        opt = optim.SGD(lr=LR)
        lg = nn.value_and_grad(fm, lambda a, b: F.cross_entropy(fm(a), b))

        def step():
            _, g = lg(xf, yf)
            opt.update(fm, g)

        def res():
            m = model()
            v, g = nn.value_and_grad(m, lambda a, b: F.cross_entropy(m(a), b))(xf, yf)
            return v, {k: g[n] for k, (n, _) in zip(KEYS, m.named_parameters(), strict=True)}

        out.append(H.Case("functorch_lite nn + optim.SGD", step, res, **TOL))
    except Exception as exc:  # noqa: BLE001 - API in flux: report, do not crash
        out.append(H.Case("functorch_lite nn + optim.SGD", lambda: None, error=f"{type(exc).__name__}: {exc}"[:300]))

    def loss(p, a, b):
        h = F.relu(F.conv2d(a, p["c1w"], p["c1b"], padding=1))
        h = F.max_pool2d(F.relu(F.conv2d(h, p["c2w"], p["c2b"], padding=1)), 2)
        return F.cross_entropy(F.linear(fl.reshape(h, (h.shape[0], 256)), p["fw"], p["fb"]), b)

    vg = fl.value_and_grad(loss)
    st = {"p": {k: fl.asarray(v) for k, v in p0.items()}}

    def pstep():
        p = st["p"]
        _, g = vg(p, xf, yf)
        st["p"] = {k: p[k] - LR * g[k] for k in p}

    pf0 = {k: fl.asarray(v) for k, v in p0.items()}
    out.append(H.Case("functorch_lite functional grad", pstep, lambda: vg(pf0, xf, yf), **TOL))
    return out


def jax_case(jax, p0, x, y):
    jnp, lax = jax.numpy, jax.lax

    def conv(a, w, b):
        o = lax.conv_general_dilated(a, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return o + b[None, :, None, None]

    def loss(p, a, yy):
        h = jax.nn.relu(conv(a, p["c1w"], p["c1b"]))
        h = jax.nn.relu(conv(h, p["c2w"], p["c2b"]))
        h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        z = h.reshape(h.shape[0], 256) @ p["fw"].T + p["fb"]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, yy[:, None], axis=1)[:, 0])

    vg = jax.value_and_grad(loss)

    @jax.jit
    def step(p, a, yy):
        _, g = vg(p, a, yy)
        return jax.tree_util.tree_map(lambda q, d: q - LR * d, p, g)

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    st = {"p": {k: jnp.asarray(v) for k, v in p0.items()}}

    def run():
        st["p"] = step(st["p"], xj, yj)
        jax.block_until_ready(st["p"])

    pj0 = {k: jnp.asarray(v) for k, v in p0.items()}
    return H.Case("jax.jit", run, lambda: jax.jit(vg)(pj0, xj, yj), **TOL)


def setup():
    return build_cases(init_params(), *load_batch())


def main() -> None:
    p0 = init_params()
    x, y = load_batch()
    cases = build_cases(p0, x, y)
    H.measure(H.check_cases(cases, np_loss_and_grads(p0, x, y)), rounds=7, block_s=0.1)
    base = "torch eager" if any(c.name == "torch eager" and c.times for c in cases) else "numpy im2col (hand-written)"
    rows = H.summarize(cases, base, "conv-net step")
    vs_np = {r["case"]: r.get("ratio") for r in H.summarize(cases, "numpy im2col (hand-written)")}
    for r in rows:
        if vs_np.get(r["case"]) is not None:
            r["ratio_numpy"] = vs_np[r["case"]]
    H.print_table(
        f"conv-net training step on 8x8 digits, batch {BATCH} (ratio to {base})",
        rows,
        [("ratio_numpy", "vs numpy", lambda v: f"{v:.2f}x")],
    )
    H.emit("conv", rows)


if __name__ == "__main__":
    main()
