"""Every example runs (with a tiny budget), and so does the demo and the command line.

Each script in ``examples/`` is enrolled in ``TINY`` with the arguments that keep it short; a
new script that is not enrolled fails ``test_every_example_is_enrolled``. The scripts run in
a subprocess on the backend under test (``FUNCTORCH_LITE_BACKEND`` is inherited) and check
their own results (a loss that must fall, gradients that must agree), exiting non-zero
otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import functorch_lite as fl
from functorch_lite._demo import run_demo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BACKEND = os.environ.get("FUNCTORCH_LITE_BACKEND", "numpy")

# The quick backends for the backend-swapping example (jax compiles every new op: ~25 s).
_SWAP = ["numpy", "array_api_strict"] + (["torch"] if importlib.util.find_spec("torch") else [])

TINY: dict[str, list[str]] = {
    "01_mlp_grad.py": ["--steps", "5"],
    "02_per_example_grads.py": ["--steps", "3"],
    "03_maml.py": ["--steps", "2", "--tasks", "4"],
    "04_newton_hvp.py": ["--steps", "2"],
    "05_char_lm.py": ["--steps", "6", "--batch", "8", "--length", "16", "--sample-length", "10"],
    "06_swap_backends.py": ["--steps", "3", "--backends", *_SWAP],
    "07_ensembles.py": ["--steps", "3", "--models", "2", "--synthetic"],
    "08_ode_while_loop.py": ["--steps", "2"],
}

# Further runs of enrolled scripts with other flags: (script, extra arguments, a line its output must match).
VARIANTS: list[tuple[str, list[str], str]] = [
    ("01_mlp_grad.py", ["--jit"], r"step time: eager [\d.]+ ms, jit [\d.]+ ms \([\d.]+x\)"),
]
_STEP_TIMES = re.compile(r"step time: eager (?P<eager>[\d.]+) ms, jit (?P<jit>[\d.]+) ms \((?P<ratio>[\d.]+)x")


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_example_is_enrolled() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(TINY), f"enrol every example in TINY: scripts {scripts}, enrolled {sorted(TINY)}"


@pytest.mark.parametrize("script", sorted(TINY))
def test_example_runs(script: str, tmp_path: Path) -> None:
    source = (EXAMPLES / script).read_text(encoding="utf-8")
    assert source.lstrip().startswith('"""'), f"{script} needs a module docstring"
    assert "--steps" in source, f"{script} needs a --steps flag (a tiny budget for the tests)"
    proc = _run([str(EXAMPLES / script), *TINY[script]], cwd=tmp_path)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip(), f"{script} printed nothing"


@pytest.mark.parametrize(("script", "extra", "expect"), VARIANTS, ids=[f"{v[0]} {' '.join(v[1])}" for v in VARIANTS])
def test_example_variant_runs(script: str, extra: list[str], expect: str, tmp_path: Path) -> None:
    assert script in TINY
    proc = _run([str(EXAMPLES / script), *TINY[script], *extra], cwd=tmp_path)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert re.search(expect, proc.stdout), proc.stdout


def test_demo_jit_matches_eager(tmp_path: Path) -> None:
    kwargs = dict(epochs=3, progress=False, models=("mlp", "cnn"), max_train=256, verbose=False, seed=0)
    eager = run_demo(out=tmp_path / "eager", **kwargs)
    jitted = run_demo(out=tmp_path / "jit", jit=True, **kwargs)
    assert jitted.ok and jitted.jit and not eager.jit
    for name in ("mlp", "cnn"):
        h = jitted.histories[name]
        assert set(h.step_time) == {"eager", "jit"} and all(t > 0 for t in h.step_time.values()), h.step_time
        assert 1 <= h.traces <= 4, h.traces  # first step (optimizer state created), the next, a ragged batch
        assert jitted.test_accuracy[name] >= 0.8, (name, jitted.test_accuracy[name])
        assert abs(jitted.test_accuracy[name] - eager.test_accuracy[name]) <= 0.02, (name, jitted, eager)
        assert h.train_loss[-1] < h.train_loss[0]
        assert set(eager.histories[name].step_time) == {"eager"} and eager.histories[name].traces == 0


def test_cli_demo_jit(tmp_path: Path) -> None:
    args = ["-m", "functorch_lite", "demo", "--jit", "--epochs", "1", "--max-train", "64", "--no-progress"]
    proc = _run([*args, "--out", "out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "training step under fl.jit" in proc.stdout
    times = _STEP_TIMES.findall(proc.stdout)
    assert len(times) == 2, proc.stdout  # one line per model
    for eager, jit, ratio in times:
        assert float(eager) > 0 and float(jit) > 0 and float(ratio) > 0
    assert "final test accuracy" in proc.stdout and "MISMATCH" not in proc.stdout

    proc = _run(["-m", "functorch_lite", "demo", "--help"], cwd=tmp_path)
    assert proc.returncode == 0 and "--jit" in proc.stdout and "fl.jit" in proc.stdout


def test_demo_tiny_is_deterministic(tmp_path: Path) -> None:
    kwargs = dict(epochs=2, progress=False, models=("mlp", "cnn"), max_train=96, verbose=False)
    first = run_demo(out=tmp_path / "a", seed=3, **kwargs)
    second = run_demo(out=tmp_path / "b", seed=3, **kwargs)
    assert first.ok and second.ok  # each reloaded checkpoint gives exactly the trained accuracy
    assert first.backend == BACKEND
    for name in ("mlp", "cnn"):
        assert first.histories[name].train_loss == second.histories[name].train_loss
        assert first.histories[name].test_acc == second.histories[name].test_acc
        assert first.histories[name].train_loss[-1] < first.histories[name].train_loss[0]
        assert (tmp_path / "a" / f"{name}.safetensors").stat().st_size > 0
    png = (tmp_path / "a" / "training.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_demo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="models"):
        run_demo(models=("resnet",), verbose=False, progress=False)
    with pytest.raises(fl.BackendError, match="unknown backend"):
        run_demo(backend="no-such-backend", verbose=False, progress=False)


@pytest.mark.skipif(BACKEND != "numpy", reason="the full demo runs once, in the numpy run of the suite")
def test_demo_full_reaches_97_percent(tmp_path: Path) -> None:
    result = run_demo(out=tmp_path, progress=False, verbose=False)
    for name, acc in result.test_accuracy.items():
        assert acc >= 0.97, f"{name}: test accuracy {acc:.2%} < 97%"
    assert result.ok


@pytest.mark.skipif(BACKEND != "numpy", reason="the full demo runs once, in the numpy run of the suite")
def test_demo_full_jit_reaches_97_percent(tmp_path: Path) -> None:
    result = run_demo(out=tmp_path, progress=False, verbose=False, jit=True)
    for name, acc in result.test_accuracy.items():
        assert acc >= 0.97, f"{name} under jit: test accuracy {acc:.2%} < 97%"
        assert result.histories[name].traces <= 4
    assert result.ok


def test_cli_demo_and_info(tmp_path: Path) -> None:
    proc = _run(
        ["-m", "functorch_lite", "demo", "--epochs", "1", "--max-train", "64", "--models", "mlp", "--out", "out"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "final test accuracy" in proc.stdout
    assert "mlp epoch  1/1" in proc.stderr  # the tqdm bar
    assert (tmp_path / "out" / "training.png").exists() and (tmp_path / "out" / "mlp.safetensors").exists()

    proc = _run(["-m", "functorch_lite", "info"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"functorch_lite {fl.__version__}" in proc.stdout
    assert f"array API version: {fl.__array_api_version__}" in proc.stdout
    assert "numpy" in proc.stdout and "array_api_strict" in proc.stdout

    proc = _run(["-m", "functorch_lite", "demo", "--epochs", "0"], cwd=tmp_path)
    assert proc.returncode == 2 and "positive integer" in proc.stderr
