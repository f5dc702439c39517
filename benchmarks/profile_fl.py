"""Profile functorch_lite's case of each workload with cProfile (for the engine owner).

Usage::

    python benchmarks/profile_fl.py                 # every workload, top 12 functions each
    python benchmarks/profile_fl.py mlp hvp --top 25

For each workload it reports the time per call (without the profiler), the
number of Python function calls per call (the interpretive overhead: at
~0.05-0.1 µs each), and the functions with the largest own time. Prints
markdown (the runner pastes it into docs/benchmarks.md).
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import argparse
import cProfile
import importlib
import io
import os
import pstats
import re
import time

# workload -> (module, case name, calls per profile)
TARGETS = {
    "dispatch-eager": ("bench_dispatch", "functorch_lite", 300),
    "dispatch-grad": ("bench_dispatch", "functorch_lite grad", 100),
    "mlp": ("bench_mlp", "functorch_lite grad", 20),
    "mlp-nn": ("bench_mlp", "functorch_lite nn+optim", 20),
    "per-example": ("bench_per_example", "functorch_lite vmap(grad)", 5),
    "hvp": ("bench_hvp", "functorch_lite jvp(grad) fwd-over-rev", 200),
    "digits": ("bench_digits", "functorch_lite grad + Adam", 1),
    "digits-nn": ("bench_digits", "functorch_lite nn + optim.Adam", 1),
    "conv": ("bench_conv", "functorch_lite nn + optim.SGD", 10),
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _short(path: str) -> str:
    if path.startswith(ROOT):
        return path[len(ROOT) + 1 :]
    i = path.find("site-packages/")
    return path[i + 14 :] if i >= 0 else path


def profile(workload: str, top: int) -> str:
    mod_name, case_name, n = TARGETS[workload]
    mod = importlib.import_module(mod_name)
    case = next((c for c in mod.setup() if c.name == case_name), None)
    if case is None or case.error:
        return f"#### {workload}: `{case_name}`\n\nnot available ({case.error if case else 'no such case'}).\n"
    for _ in range(2):
        case.run()
    t0 = time.process_time()
    for _ in range(n):
        case.run()
    per_call = (time.process_time() - t0) / n
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        case.run()
    pr.disable()
    st = pstats.Stats(pr, stream=io.StringIO())
    total_calls = sum(v[1] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    tot = sum(v[2] for v in st.stats.values()) or 1.0  # type: ignore[attr-defined]
    out = [
        f"#### {workload}: `{case_name}` ({mod_name}.py)\n",
        f"{H.fmt_time(per_call)} per call without the profiler; "
        f"{total_calls / n:,.0f} Python function calls per call.\n",
        "| own time % | calls / call | function |",
        "|---:|---:|---|",
    ]
    for (path, line, func), (_, ncalls, tt, _ct, _) in rows:
        where = f"{_short(path)}:{line}" if path != "~" else "builtin"
        func = re.sub(r" at 0x[0-9a-f]+", "", func)
        out.append(f"| {100 * tt / tot:.1f} | {ncalls / n:,.1f} | `{func}` ({where}) |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=list(TARGETS), help=f"any of {', '.join(TARGETS)}")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    for w in a.workloads:
        print(profile(w, a.top))


if __name__ == "__main__":
    main()
