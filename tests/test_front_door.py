"""What a newcomer meets first: the install extras, the command line, the demo's output and plot.

* every extra that an error message, the README or a docs page tells the user to install
  (``pip install "functorch_lite[jax]"``, ``pip install -e ".[torch]"``) exists in
  pyproject.toml, spelled as written there;
* ``functorch-lite`` answers a bad option or a missing backend with one line (no traceback)
  naming the valid choices, has ``--version``, and its ``demo --help`` states the defaults
  the demo really uses;
* the demo says "1 epoch", prints one line per epoch instead of a redrawn bar when its
  output is not a terminal, and plots whole epochs and labelled loss decades.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import functorch_lite as fl
from functorch_lite import _backend, _demo
from functorch_lite.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SOURCES = sorted((ROOT / "functorch_lite").rglob("*.py"))

# pip install "functorch_lite[jax]" / functorch-lite[a,b]  and  pip install -e ".[torch]" / `.[docs]`
_NAMED = re.compile(r"functorch[_-]lite\[(?P<extras>[^\]\n]*)\]")
_LOCAL = re.compile(r"(?<![\w)\]])\.\[(?P<extras>[A-Za-z0-9_,\- ]+)\]")


def _suggested(text: str, local: bool) -> list[tuple[int, str]]:
    """(line, extra) for every extra ``text`` suggests; f-string placeholders are skipped."""
    found = []
    for pattern in (_NAMED, _LOCAL) if local else (_NAMED,):
        for m in pattern.finditer(text):
            if "{" in m.group("extras"):  # a message built at run time: checked below, by running it
                continue
            line = text.count("\n", 0, m.start()) + 1
            found.extend((line, e.strip()) for e in m.group("extras").split(","))
    return found


def _unknown_extras(paths: list[Path], local: bool) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: [{extra}]"
        for path in paths
        for line, extra in _suggested(path.read_text(encoding="utf-8"), local)
        if extra not in EXTRAS
    ]


def test_the_extra_scan_finds_suggestions() -> None:
    assert _suggested('pip install "functorch_lite[array-api-strict]"', local=False) == [(1, "array-api-strict")]
    assert _suggested("pip install functorch-lite[torch,jax]", local=False) == [(1, "torch"), (1, "jax")]
    assert _suggested('pip install -e ".[examples]" or `.[gpu]`', local=True) == [(1, "examples"), (1, "gpu")]
    assert _suggested("x[:, 0].[1]", local=True) == []  # indexing is no suggestion
    # the docs do suggest extras (the scan would pass vacuously otherwise)
    assert len([e for p in DOC_FILES for e in _suggested(p.read_text(encoding="utf-8"), local=True)]) >= 8


def test_extras_suggested_by_the_package_exist() -> None:
    assert not _unknown_extras(SOURCES, local=False), "extras missing from pyproject.toml"


def test_extras_suggested_by_readme_and_docs_exist() -> None:
    assert not _unknown_extras(DOC_FILES, local=True), "extras missing from pyproject.toml"


@pytest.mark.parametrize("name", [n for n in _backend.BACKEND_NAMES if n != "numpy"])
def test_missing_backend_message_names_an_extra_that_exists(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fail(module: str, *args: object) -> object:
        if module in (_backend._LIBRARY_MODULES[name], _backend._NAMESPACE_MODULES[name]):
            raise ImportError(f"No module named {module!r}")
        return real_import(module, *args)

    monkeypatch.delitem(_backend._BY_NAME, name, raising=False)  # as if it had never been imported
    monkeypatch.setattr(_backend.importlib, "import_module", fail)
    with pytest.raises(fl.BackendError) as info:
        _backend.get_backend(name)
    message = str(info.value)
    extras = [extra for _, extra in _suggested(message, local=False)]
    assert len(extras) == 1, message
    assert extras[0] in EXTRAS, f"{message!r} suggests an extra that pyproject.toml lacks"
    assert "numpy" in message.split("installed here:")[1], message  # names what can be used instead


def test_backend_extras_install_their_library() -> None:
    deps = PYPROJECT["project"]["optional-dependencies"]
    assert deps["torch"] == ["torch==2.13.0"]
    assert any(d.startswith("jax") for d in deps["jax"])
    assert any(d.startswith("array-api-strict") for d in deps["array-api-strict"])
    assert "array_api_strict" not in EXTRAS  # one spelling: the hyphenated one


def test_readme_demo_install_brings_what_the_readme_demonstrates() -> None:
    """The README's demo install is ``.[examples]``; its Backends block and ``--backend
    array_api_strict`` then need array-api-strict, which that extra must therefore bring."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[examples]" && .venv/bin/functorch-lite demo' in readme
    assert 'fl.default_backend("array_api_strict")' in readme and "--backend array_api_strict" in readme
    examples = PYPROJECT["project"]["optional-dependencies"]["examples"]
    for package in ("array-api-strict", "tqdm", "matplotlib", "scikit-learn"):
        assert any(re.match(rf"{package}\b", d) for d in examples), f"the examples extra lacks {package}"


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "functorch_lite", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


@pytest.mark.parametrize(
    "args, names",
    [
        (["demo", "--models", "resnet"], ["resnet", "mlp", "cnn"]),
        (["demo", "--backend", "tensorflow"], ["tensorflow", *_backend.BACKEND_NAMES]),
        (["demo", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["demo", "--epochs", "many"], ["--epochs", "'many'"]),
        (["demo", "--bogus"], ["--bogus"]),
        (["train"], ["train", "demo", "info"]),
    ],
)
def test_bad_options_give_one_line(args: list[str], names: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("functorch-lite") and "error:" in lines[0] and "--help" in lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])


def test_missing_backend_gives_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def missing(name: str) -> object:
        raise fl.BackendError(f"backend: {name!r} is not installed here; install it with ...")

    monkeypatch.setattr(_backend, "get_backend", missing)
    assert main(["demo", "--backend", "jax", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("functorch-lite demo: error: backend: 'jax' is not installed here")


@pytest.mark.skipif("cupy" in fl.available_backends(), reason="needs a backend that is not installed")
def test_missing_backend_gives_one_line_end_to_end() -> None:
    proc = _cli("demo", "--backend", "cupy")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "functorch_lite[gpu]"' in proc.stderr and "numpy" in proc.stderr


def test_version() -> None:
    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"functorch-lite {fl.__version__}"


def test_demo_help_states_the_defaults_the_demo_uses() -> None:
    parser = build_parser()
    demo = parser._subparsers._group_actions[0].choices["demo"]  # type: ignore[union-attr]
    text = " ".join(demo.format_help().split())
    for name, spec in _demo.MODELS.items():
        assert f"{spec.epochs} for the {name.upper()}" in text, text
    args = parser.parse_args(["demo"])
    assert f"(default: {' '.join(args.models)})" in text and f"(default: {args.out})" in text
    assert f"(default: {args.seed})" in text and f"now {fl.default_backend_name()}" in text
    assert args.models == list(_demo.MODELS) and args.epochs is None  # None: each model its own


def test_demo_says_one_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _demo.run_demo(epochs=1, out=tmp_path, progress=False, models=("mlp",), max_train=32)
    out = capsys.readouterr().out
    assert "1 epoch in" in out and "1 epochs" not in out, out


def test_progress_without_a_terminal_prints_one_line_per_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    _demo.run_demo(epochs=2, out=tmp_path, progress=True, models=("mlp",), max_train=64, verbose=False)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue(), log.getvalue()
    assert [line.split(":")[0] for line in lines] == ["mlp epoch  1/2", "mlp epoch  2/2"], lines
    assert all("2 batches" in line and "test_acc=" in line for line in lines), lines


def test_progress_on_a_terminal_is_a_tqdm_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = _demo._progress(3, "mlp epoch 1/1", enabled=True)
    try:
        assert type(bar).__module__.startswith("tqdm"), type(bar)
    finally:
        bar.close()
    assert isinstance(_demo._progress(3, "x", enabled=False), _demo._Quiet)


# ------------------------------------------------------------------------------------------------
# the demo's plot
# ------------------------------------------------------------------------------------------------
def _history(losses: list[float]) -> _demo.History:
    return _demo.History(
        train_loss=losses, train_acc=[0.9] * len(losses), test_loss=losses, test_acc=[0.9] * len(losses)
    )


@pytest.mark.parametrize(
    "losses", [[0.8], [0.8, 0.3, 0.1, 0.03, 0.0014], [0.35, 0.31], [2.5, 0.0009]], ids=["1", "5", "flat", "wide"]
)
def test_plot_ticks(losses: list[float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    figures: list[Figure] = []
    real_savefig = Figure.savefig

    def keep(self: Figure, *args: object, **kwargs: object) -> None:
        figures.append(self)
        real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    _demo._plot({"mlp": _history(losses)}, tmp_path / "p.png", "t")
    fig = figures[0]
    fig.canvas.draw()
    ax_loss, ax_acc = fig.axes[:2]
    for ax in (ax_loss, ax_acc):  # epochs are whole numbers, and there is at least one
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert 1 in ticks
    # the loss axis has a labelled tick at or below the smallest loss and at or above the largest
    lo, hi = ax_loss.get_ylim()
    assert lo <= min(losses) and hi >= max(losses)
    labelled = [t.get_position()[1] for t in ax_loss.yaxis.get_majorticklabels() if t.get_text()]
    labelled = [v for v in labelled if lo * 0.999 <= v <= hi * 1.001]
    assert labelled and min(labelled) <= min(losses) and max(labelled) >= max(losses), (labelled, losses)
