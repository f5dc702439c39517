"""(7) DataLoader throughput: one shuffled epoch over a 60000 x 784 float32 TensorDataset, batch 128.

The floor is numpy fancy indexing with a fresh permutation (``X[perm[i:i+128]]``).
functorch_lite.data.DataLoader(TensorDataset(X, y), batch_size=128, shuffle=True)
and torch.utils.data.DataLoader (the default per-sample fetch + collate, and a
batch-sampler variant that indexes whole batches) are compared. The labels are
the sample ids, so each case is checked to visit every sample exactly once with
the right rows. Reported as one epoch's time and samples per second.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import numpy as np

N, D, BATCH = 60_000, 784, 128


def np_epoch(X, ids, r):
    perm = r.permutation(N)
    out = []
    for i in range(0, N, BATCH):
        b = perm[i : i + BATCH]
        out.append((X[b], ids[b]))
    return out


def summary(X, batches):
    """(samples seen, 1.0 if each sample once, 1.0 if the rows match their ids)."""
    got = np.concatenate([np.asarray(H.to_numpy(y)) for _, y in batches])
    once = float(np.array_equal(np.sort(got), np.arange(N)))
    x0, y0 = batches[0]
    rows = float(np.array_equal(H.to_numpy(x0), X[H.to_numpy(y0)]))
    return [float(len(got)), once, rows]


def build_cases(X, ids):
    r = H.rng(11)
    cases = [H.Case("numpy fancy indexing", lambda: np_epoch(X, ids, r), lambda: summary(X, np_epoch(X, ids, r)))]
    fl = H.peer("functorch_lite")
    data = H.peer("functorch_lite.data")
    if fl is not None and data is not None:
        ds = data.TensorDataset(fl.asarray(X), fl.asarray(ids))
        dl = data.DataLoader(ds, batch_size=BATCH, shuffle=True, seed=0)
        cases.append(H.Case("functorch_lite DataLoader", lambda: list(dl), lambda: summary(X, list(dl))))
    elif fl is not None:
        cases.append(H.Case("functorch_lite DataLoader", lambda: None, error="functorch_lite.data missing"))
    torch = H.peer("torch")
    if torch is not None:
        tds = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(ids))
        tdl = torch.utils.data.DataLoader(tds, batch_size=BATCH, shuffle=True)
        cases.append(H.Case("torch DataLoader (per-sample)", lambda: list(tdl), lambda: summary(X, list(tdl))))
        bs = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(tds), BATCH, drop_last=False)
        tdb = torch.utils.data.DataLoader(tds, sampler=bs, batch_size=None)
        cases.append(H.Case("torch DataLoader (batch sampler)", lambda: list(tdb), lambda: summary(X, list(tdb))))
    return cases


def setup():
    return build_cases(H.f32(H.rng(10).normal(0, 1, (N, D))), np.arange(N, dtype=np.int64))


def main() -> None:
    X = H.f32(H.rng(10).normal(0, 1, (N, D)))
    ids = np.arange(N, dtype=np.int64)
    cases = build_cases(X, ids)
    H.measure(H.check_cases(cases, [float(N), 1.0, 1.0]), rounds=3, block_s=0.0, warmup=0)
    rows = H.summarize(cases, "numpy fancy indexing", "DataLoader epoch")
    for r in rows:
        if "median_s" in r:
            r["samples_per_s"] = N / r["median_s"]
    H.print_table(
        f"one epoch, {N} x {D} float32, batch {BATCH}, shuffled",
        rows,
        [("samples_per_s", "samples/s", lambda v: f"{v / 1e6:.2f} M/s")],
    )
    H.emit("dataloader", rows)


if __name__ == "__main__":
    main()
