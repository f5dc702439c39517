#!/usr/bin/env bash
# GPU check: the test suite on the cupy backend (and torch on CUDA, where installed), then the
# MLP step, per-example and digits benchmarks on the GPU against torch CUDA, with the figures
# written to a JSON file. Meant to finish in under 8 minutes on one NVIDIA GPU.
#
#   benchmarks/gpu_check.sh [OUT.json]        # default: benchmarks/gpu_results.json
#
# Without an NVIDIA GPU (or without CuPy) it says so and exits 0. PYTHON picks the
# interpreter (default: .venv/bin/python if present, else python3).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
cd "$ROOT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
OUT="$(realpath -m "${1:-$HERE/gpu_results.json}")"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none); nothing to check."
    exit 0
fi
if ! "$PY" -c "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)" >/dev/null 2>&1; then
    echo "gpu_check: an NVIDIA GPU is here but CuPy is not installed or sees no device (pip install 'functorch_lite[gpu]'); nothing to check."
    exit 0
fi
nvidia-smi -L

status=0
start=$(date +%s)
# deadline: the whole check stays under 8 minutes; each step gets what is left
left() { echo $(( 470 - ($(date +%s) - start) )); }
LOGDIR="$(mktemp -d)"

echo "== tests, FUNCTORCH_LITE_BACKEND=cupy =="
FUNCTORCH_LITE_BACKEND=cupy timeout "$(left)" "$PY" -m pytest -q -x -n 2 tests -p no:cacheprovider >"$LOGDIR/cupy.log" 2>&1
cupy_rc=$?
tail -n 3 "$LOGDIR/cupy.log"
[ $cupy_rc -eq 0 ] || status=1

torch_rc=skipped
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    echo "== tests, FUNCTORCH_LITE_BACKEND=torch on CUDA (torch's default device set to cuda) =="
    FUNCTORCH_LITE_BACKEND=torch timeout "$(( $(left) / 2 ))" "$PY" -c "
import sys, torch, pytest
torch.set_default_device('cuda')
sys.exit(pytest.main(['-q', '-x', 'tests', '-p', 'no:cacheprovider']))
" >"$LOGDIR/torch.log" 2>&1
    torch_rc=$?
    tail -n 3 "$LOGDIR/torch.log"
    [ "$torch_rc" = 0 ] || status=1
fi

echo "== benchmarks (cupy backend vs torch CUDA) =="
(cd "$HERE" && BENCH_CLOCK=wall timeout "$(left)" "$PY" bench_gpu.py "$OUT.bench") || status=1

"$PY" - "$OUT" "$cupy_rc" "$torch_rc" "$LOGDIR" <<'PYEOF'
import json, os, sys
out, cupy_rc, torch_rc, logdir = sys.argv[1:5]
def tail(name):
    p = os.path.join(logdir, name)
    return open(p).read().strip().splitlines()[-1:] if os.path.exists(p) else []
res = {"tests": {"cupy": {"rc": int(cupy_rc), "summary": tail("cupy.log")},
                 "torch_cuda": {"rc": torch_rc if torch_rc == "skipped" else int(torch_rc), "summary": tail("torch.log")}}}
if os.path.exists(out + ".bench"):
    with open(out + ".bench") as f:
        res["benchmarks"] = json.load(f)
    os.remove(out + ".bench")
with open(out, "w") as f:
    json.dump(res, f, indent=1)
print(f"gpu_check: wrote {out}")
PYEOF
echo "gpu_check: $(( $(date +%s) - start )) s, status $status"
exit $status
