"""The demo behind ``functorch-lite demo``: a CNN and an MLP on scikit-learn's bundled digits.

Everything a first training run needs, in one file: data (scikit-learn's 1797 8x8 digits,
bundled, no download; a stratified 80/20 split with ``random_state=0``, pixels scaled by
1/16), two models built with [`functorch_lite.nn`][functorch_lite.nn], AdamW with a cosine learning-rate
decay from [`functorch_lite.optim`][functorch_lite.optim], a [`functorch_lite.data.DataLoader`][functorch_lite.data.DataLoader], a tqdm
progress bar per epoch, loss and accuracy curves drawn with matplotlib, and a safetensors
checkpoint that is reloaded into a fresh model and evaluated again.

With ``jit=True`` (``functorch-lite demo --jit``) the training step (forward, backward and
the AdamW update) runs under [`functorch_lite.jit`][functorch_lite.transforms.jit], the model and the optimizer threaded
through the program (``inputs=`` / ``outputs=``), and the demo prints the median time of a
training step eager and jitted.

Example:
    >>> from functorch_lite._demo import run_demo
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = run_demo(epochs=1, out=out, progress=False, models=("mlp",), max_train=64, verbose=False)
    >>> result.ok, sorted(result.test_accuracy)
    (True, ['mlp'])
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import functorch_lite as fl
from functorch_lite import data, nn, optim

__all__ = ["MODELS", "DemoResult", "History", "ModelSpec", "load_digits_split", "run_demo"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How one of the demo's models is built and trained."""

    description: str
    make: Callable[[], nn.Module]
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int


def make_mlp() -> nn.Module:
    """64 -> 256 -> 10 with ReLU."""
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))


def make_cnn() -> nn.Module:
    """Two 3x3 convolutions (16 and 32 channels) with ReLU, a 2x2 max-pool, a linear classifier."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),  # (batch, 64) -> (batch, channels=1, 8, 8)
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # -> (batch, 32, 4, 4)
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("MLP 64-256-10", make_mlp, epochs=20, lr=1e-2, weight_decay=1e-2, batch_size=32),
    "cnn": ModelSpec("CNN conv16-conv32-pool-linear", make_cnn, epochs=12, lr=1e-2, weight_decay=1e-2, batch_size=32),
}


@dataclasses.dataclass
class History:
    """Per-epoch curves of one model."""

    train_loss: list[float] = dataclasses.field(default_factory=list)
    train_acc: list[float] = dataclasses.field(default_factory=list)
    test_loss: list[float] = dataclasses.field(default_factory=list)
    test_acc: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    step_time: dict[str, float] = dataclasses.field(default_factory=dict)
    """Median seconds per training step: ``"eager"``, and ``"jit"`` when the step ran under fl.jit."""
    traces: int = 0
    """How many times fl.jit traced the training step (0 when it ran eagerly)."""


@dataclasses.dataclass
class DemoResult:
    """What `run_demo` did: curves, accuracies, files written."""

    backend: str
    seed: int
    histories: dict[str, History]
    test_accuracy: dict[str, float]
    reloaded_accuracy: dict[str, float]
    checkpoints: dict[str, Path]
    plot: Path | None
    seconds: float
    jit: bool = False
    onnx: Path | None = None  # the CNN exported with fl.onnx.export (when the onnx package is installed)
    onnx_max_diff: float | None = None  # its largest logit difference in onnxruntime (when installed)

    @property
    def ok(self) -> bool:
        """True when every reloaded checkpoint gave exactly the accuracy of the trained model, and the
        exported CNN (where onnxruntime checked it) matched the model within 1e-4."""
        same = all(self.reloaded_accuracy.get(k) == v for k, v in self.test_accuracy.items())
        return same and (self.onnx_max_diff is None or self.onnx_max_diff <= 1e-4)


def load_digits_split(
    backend: str | None = None, max_train: int | None = None
) -> tuple[fl.Tensor, fl.Tensor, fl.Tensor, fl.Tensor]:
    """scikit-learn's digits as float32 pixels in [0, 1]: ``(x_train, y_train, x_test, y_test)``.

    A stratified 80/20 split with ``random_state=0`` (1437 training, 360 test images), on
    ``backend`` (default: the current default backend).

    Example:
        >>> from functorch_lite._demo import load_digits_split
        >>> x_train, y_train, x_test, y_test = load_digits_split()
        >>> x_train.shape, x_test.shape, y_test.dtype
        ((1437, 64), (360, 64), functorch_lite.int64)
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError(
            'the demo needs scikit-learn: pip install "functorch_lite[examples]" (or pip install scikit-learn)'
        ) from None
    name = backend or fl.default_backend_name()
    images, labels = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    if max_train is not None:
        x_tr, y_tr = x_tr[:max_train], y_tr[:max_train]

    def pixels(a: Any) -> fl.Tensor:
        return fl.to_backend(fl.astype(fl.asarray(a), fl.float32) / 16.0, name)

    def targets(a: Any) -> fl.Tensor:
        return fl.to_backend(fl.astype(fl.asarray(a), fl.int64), name)

    return pixels(x_tr), targets(y_tr), pixels(x_te), targets(y_te)


def _evaluate(model: nn.Module, x: fl.Tensor, y: fl.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on the whole of ``x``, ``y``."""
    model.eval()
    logits = model(x)
    loss = float(nn.functional.cross_entropy(logits, y))
    acc = float(fl.mean(fl.astype(fl.argmax(logits, axis=1) == y, fl.float32)))
    return loss, acc


_TIMED_STEPS = 20  # steps timed on a throwaway model (after the warm-up steps)


def _make_step(
    model: nn.Module, spec: ModelSpec, total_steps: int, jit: bool
) -> tuple[Callable[[fl.Tensor, fl.Tensor], tuple[fl.Tensor, fl.Tensor]], fl.Jitted | None]:
    """The training step ``(x, y) -> (loss, number correct)``, eager or under ``fl.jit``."""
    schedule = optim.cosine_decay(spec.lr, total_steps)
    # Under jit the learning rate is computed outside the program and set before each step:
    # a schedule called inside fl.jit gets a traced step count, which the optim schedules
    # cannot use yet (int(count) raises fl.ConcretizationError). The values are the same.
    opt = optim.AdamW(lr=schedule(0) if jit else schedule, weight_decay=spec.weight_decay)

    def loss_fn(x: fl.Tensor, y: fl.Tensor) -> tuple[fl.Tensor, fl.Tensor]:
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits

    value_and_grad = nn.value_and_grad(model, loss_fn)  # -> ((loss, logits), grads keyed by parameter name)

    def train_step(x: fl.Tensor, y: fl.Tensor) -> tuple[fl.Tensor, fl.Tensor]:
        (loss, logits), grads = value_and_grad(x, y)
        opt.update(model, grads)
        return loss, fl.sum(fl.astype(fl.argmax(logits, axis=1) == y, fl.int64))

    if not jit:
        return train_step, None
    jitted = fl.jit(train_step, inputs=[model, opt], outputs=[model, opt])  # model and optimizer state threaded

    def step(x: fl.Tensor, y: fl.Tensor) -> tuple[fl.Tensor, fl.Tensor]:
        opt.lr = schedule(opt.step)  # a Python float: a weak input of the program, so no retrace
        return jitted(x, y)

    return step, jitted


def _time_steps(spec: ModelSpec, splits: tuple[fl.Tensor, ...], total_steps: int, jit: bool) -> float:
    """Median seconds of a few training steps (eager or jitted) on a throwaway copy of the model."""
    model = spec.make()
    model.train()
    step, jitted = _make_step(model, spec, total_steps, jit)
    batches = list(data.DataLoader(data.TensorDataset(splits[0], splits[1]), batch_size=spec.batch_size))
    times: list[float] = []
    i = 0
    while len(times) < _TIMED_STEPS:
        xb, yb = batches[i % len(batches)]
        traces = jitted.traces if jitted is not None else 0
        t0 = time.perf_counter()
        loss, correct = step(xb, yb)
        float(loss), int(correct)
        if i >= 2 and (jitted is None or jitted.traces == traces):  # not the warm-up, nor a step that traced
            times.append(time.perf_counter() - t0)
        i += 1
    return statistics.median(times)


def _train(
    name: str,
    spec: ModelSpec,
    splits: tuple[fl.Tensor, fl.Tensor, fl.Tensor, fl.Tensor],
    epochs: int,
    seed: int,
    progress: bool,
    jit: bool = False,
) -> tuple[nn.Module, History]:
    x_tr, y_tr, x_te, y_te = splits
    loader = data.DataLoader(data.TensorDataset(x_tr, y_tr), batch_size=spec.batch_size, shuffle=True, seed=seed)
    history = History()
    fl.manual_seed(seed)
    model = spec.make()
    step, jitted = _make_step(model, spec, epochs * len(loader), jit)
    times: list[float] = []  # per step, without the steps that traced
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = _progress(len(loader), desc=f"{name} epoch {epoch + 1:>2}/{epochs}", enabled=progress)
        for xb, yb in loader:
            traces = jitted.traces if jitted is not None else 0
            t0 = time.perf_counter()
            loss, n_correct = step(xb, yb)
            batch_loss, batch_correct = float(loss), int(n_correct)
            if jitted is None or jitted.traces == traces:
                times.append(time.perf_counter() - t0)
            n = int(yb.shape[0])
            total_loss += batch_loss * n
            correct += batch_correct
            seen += n
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.2%}", refresh=False)
            bar.update(1)
        test_loss, test_acc = _evaluate(model, x_te, y_te)
        history.train_loss.append(total_loss / seen)
        history.train_acc.append(correct / seen)
        history.test_loss.append(test_loss)
        history.test_acc.append(test_acc)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.2%}", test_acc=f"{test_acc:.2%}")
        bar.close()
    history.seconds = time.perf_counter() - start
    history.traces = jitted.traces if jitted is not None else 0
    if jit:  # eager steps to compare with, timed after the training: warm caches, as for most jitted steps
        history.step_time["eager"] = _time_steps(spec, splits, epochs * len(loader), jit=False)
    if len(times) < 3:  # a budget too small to time (most steps traced): time a throwaway model instead
        history.step_time["jit" if jit else "eager"] = _time_steps(spec, splits, epochs * len(loader), jit)
    else:
        history.step_time["jit" if jit else "eager"] = statistics.median(times)
    return model, history


def _step_time_line(history: History) -> str:
    """``step time: eager 1.23 ms, jit 0.45 ms (2.7x)`` (just the eager time without jit)."""
    eager = history.step_time["eager"]
    if "jit" not in history.step_time:
        return f"step time: eager {eager * 1e3:.2f} ms"
    jitted = history.step_time["jit"]
    return (
        f"step time: eager {eager * 1e3:.2f} ms, jit {jitted * 1e3:.2f} ms ({eager / jitted:.1f}x; "
        f"{history.traces} trace{'s' if history.traces != 1 else ''})"
    )


def _plural(n: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _interactive() -> bool:
    """True when progress bars can redraw in place: tqdm's stream is a terminal, or a notebook runs us."""
    if "ipykernel" in sys.modules:  # Jupyter: tqdm.auto draws a widget
        return True
    isatty = getattr(sys.stderr, "isatty", None)  # tqdm writes to stderr
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over ``total`` batches (updated by hand); without a terminal (a log file, CI),
    one line per epoch when it ends instead of a redrawn bar; or a silent stand-in."""
    if not enabled:
        return _Quiet()
    if not _interactive():
        return _LogLine(desc)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError('the demo needs tqdm: pip install "functorch_lite[examples]" (or pip install tqdm)') from None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True)


class _Quiet:
    """A stand-in for a tqdm bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class _LogLine(_Quiet):
    """A stand-in for a tqdm bar that prints one line when it closes: ``mlp epoch  1/20: loss=...``.

    For output that is not a terminal, where a bar's carriage-return redraws would pile up in
    the log (one line per refresh)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.postfix: dict[str, Any] = {}
        self.start = time.perf_counter()
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **kwargs: Any) -> None:
        kwargs.pop("refresh", None)
        self.postfix = kwargs

    def close(self) -> None:
        stats = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        seconds = time.perf_counter() - self.start
        batches = f"{self.n} batch{'' if self.n == 1 else 'es'}"
        print(
            f"{self.desc}: {batches} in {seconds:.1f} s" + (f", {stats}" if stats else ""), file=sys.stderr, flush=True
        )


def _plot(histories: dict[str, History], path: Path, title: str) -> Path:
    """Loss and accuracy curves of every model, written to ``path`` (PNG, Agg canvas)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError(
            'the demo needs matplotlib: pip install "functorch_lite[examples]" (or pip install matplotlib)'
        ) from None
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    colors = {"mlp": "tab:blue", "cnn": "tab:orange"}
    for name, h in histories.items():
        epochs = list(range(1, len(h.train_loss) + 1))
        c = colors.get(name)
        ax_loss.plot(epochs, h.train_loss, "-o", ms=3, color=c, label=f"{name} train")
        ax_loss.plot(epochs, h.test_loss, "--s", ms=3, color=c, label=f"{name} test")
        ax_acc.plot(epochs, [100 * a for a in h.train_acc], "-o", ms=3, color=c, label=f"{name} train")
        ax_acc.plot(epochs, [100 * a for a in h.test_acc], "--s", ms=3, color=c, label=f"{name} test")
    ax_loss.set(title="Cross-entropy loss", xlabel="epoch", ylabel="loss", yscale="log", ylim=_decades(histories))
    ax_acc.axhline(97.0, color="gray", lw=0.8, ls=":", label="97%")
    lowest = min((min(h.test_acc + h.train_acc) for h in histories.values()), default=0.9)
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)", ylim=(max(0.0, 100 * lowest - 2), 100.5))
    n_epochs = max((len(h.train_loss) for h in histories.values()), default=1)
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        # whole epochs only, also for a one-epoch run (whose autoscaled axis spans 0.95..1.05)
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend(fontsize=8)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _decades(histories: dict[str, History]) -> tuple[float, float]:
    """Log-axis limits at the powers of ten around every loss, so that both ends carry a label
    (an axis cut between two powers of ten leaves its lowest curve without one)."""
    losses = [v for h in histories.values() for v in h.train_loss + h.test_loss if v > 0 and math.isfinite(v)]
    if not losses:
        return 0.1, 10.0
    low, high = math.floor(math.log10(min(losses))), math.ceil(math.log10(max(losses)))
    return 10.0**low, 10.0 ** max(high, low + 1)


def _export_onnx(model: nn.Module, x: fl.Tensor, path: Path) -> tuple[Path | None, float | None, str]:
    """Export the CNN with a dynamic batch axis; run it in onnxruntime on ``x`` when installed."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return None, None, 'skipped the ONNX export: pip install "functorch_lite[onnx]" to write cnn.onnx'
    fl.onnx.export(
        model,
        (x[:2],),
        path,
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
    )
    line = f"exported the cnn to {path} ({path.stat().st_size / 1024:.0f} KiB, batch axis dynamic)"
    try:
        import onnxruntime as ort
    except ImportError:
        return path, None, line + "; pip install onnxruntime to check it"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = fl.to_backend(x, "numpy")
    (got,) = sess.run(None, {"pixels": pixels.numpy()})
    want = fl.to_backend(model.eval()(x), "numpy")
    model.train()
    diff = float(fl.max(fl.abs(fl.asarray(got) - want)))
    return path, diff, line + f"; onnxruntime on the {x.shape[0]} test images: largest logit difference {diff:.1e}"


def run_demo(
    backend: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    out: str | Path = "demo-results",
    progress: bool = True,
    models: Sequence[str] = ("mlp", "cnn"),
    max_train: int | None = None,
    verbose: bool = True,
    jit: bool = False,
) -> DemoResult:
    """Train the demo's models, plot their curves, save and reload a checkpoint of each.

    Args:
        backend: array backend to train on (default: the current default backend).
        epochs: epochs for every model (default: each model's own, see ``MODELS``).
        seed: seeds the initial weights and the shuffling; the run is deterministic for a seed.
        out: folder for ``training.png`` and the ``<model>.safetensors`` checkpoints.
        progress: show a tqdm progress bar per epoch.
        models: which of ``MODELS`` to train.
        max_train: use only the first ``max_train`` training images (quick checks).
        verbose: print the summary.
        jit: run the training step under [`functorch_lite.jit`][functorch_lite.transforms.jit] (traced a few times: the
            first step creates the optimizer state, a smaller last batch has a new shape; then
            replayed), and time a few eager steps to compare.

    Returns:
        A `DemoResult`; ``result.ok`` says whether every reloaded checkpoint matched.

    Example:
        >>> from functorch_lite._demo import run_demo
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as out:
        ...     r = run_demo(epochs=1, out=out, progress=False, models=("cnn",), max_train=32, verbose=False)
        >>> r.plot.name, r.ok
        ('training.png', True)
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"run_demo: models must be a non-empty subset of {sorted(MODELS)}; got {list(models)}.")
    if epochs is not None and epochs < 1:
        raise ValueError(f"run_demo: epochs must be a positive integer; got {epochs}.")
    name = backend or fl.default_backend_name()
    out_dir = Path(out)
    start = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    with fl.default_backend(name):
        splits = load_digits_split(name, max_train=max_train)
        say(
            f"functorch_lite {fl.__version__} demo: digits, {splits[0].shape[0]} train / {splits[2].shape[0]} test "
            f"images, backend {name}, seed {seed}" + (", training step under fl.jit" if jit else "")
        )
        histories: dict[str, History] = {}
        accuracy: dict[str, float] = {}
        reloaded: dict[str, float] = {}
        checkpoints: dict[str, Path] = {}
        for model_name in models:
            spec = MODELS[model_name]
            n_epochs = epochs or spec.epochs
            model, history = _train(model_name, spec, splits, n_epochs, seed, progress, jit)
            histories[model_name] = history
            accuracy[model_name] = history.test_acc[-1]
            ckpt = out_dir / f"{model_name}.safetensors"
            out_dir.mkdir(parents=True, exist_ok=True)
            nn.save(model, ckpt, metadata={"model": spec.description, "seed": str(seed), "epochs": str(n_epochs)})
            fresh = spec.make()  # new random weights, replaced by the checkpoint's
            fresh.load_state_dict(nn.load(ckpt, backend=name))
            reloaded[model_name] = _evaluate(fresh, splits[2], splits[3])[1]
            checkpoints[model_name] = ckpt
            say(
                f"  {model_name}: {spec.description}, {model.num_parameters():,} parameters, {_plural(n_epochs, 'epoch')} "
                f"in {history.seconds:.1f} s: test accuracy {accuracy[model_name]:.2%}"
            )
            say(f"    {_step_time_line(history)}")
            if model_name == "cnn":
                onnx_path, onnx_diff, onnx_line = _export_onnx(model, splits[2], out_dir / "cnn.onnx")
        plot = _plot(
            histories,
            out_dir / "training.png",
            f"functorch_lite on scikit-learn digits (backend {name}, seed {seed}{', fl.jit' if jit else ''})",
        )
    result = DemoResult(
        name, seed, histories, accuracy, reloaded, checkpoints, plot, time.perf_counter() - start, jit=jit
    )
    if "cnn" in models:
        result.onnx, result.onnx_max_diff = onnx_path, onnx_diff
    say(f"wrote {plot}")
    for model_name, ckpt in checkpoints.items():
        same = "identical" if reloaded[model_name] == accuracy[model_name] else "MISMATCH"
        say(
            f"saved {ckpt} ({ckpt.stat().st_size / 1024:.0f} KiB) and reloaded it into a fresh model: "
            f"test accuracy {reloaded[model_name]:.2%} ({same})"
        )
    if "cnn" in models:
        say(onnx_line)
    final = ", ".join(f"{k} {v:.2%}" for k, v in accuracy.items())
    say(f"final test accuracy: {final} ({result.seconds:.1f} s)")
    return result
