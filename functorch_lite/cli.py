"""The ``functorch-lite`` command line: ``demo`` trains on digits, ``info`` describes this install.

Example:
    >>> from functorch_lite.cli import build_parser
    >>> build_parser().parse_args(["demo", "--epochs", "2"]).epochs
    2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["build_parser", "info_lines", "main"]


def _device_names(backend: str) -> list[str]:
    """The devices backend ``backend`` reports, as strings (empty when it cannot say)."""
    import functorch_lite as fl

    try:
        with fl.default_backend(backend):
            devices = fl.__array_namespace_info__().devices()
    except Exception:  # a backend that imports but cannot list its devices
        return []
    names = []
    for d in devices:
        if d is None:
            continue
        text = str(d)
        if text.startswith("array_api_strict.Device("):  # array_api_strict.Device('CPU_DEVICE')
            text = text[len("array_api_strict.Device(") : -1].strip("'")
        names.append(text)
    return names


def info_lines() -> list[str]:
    """What ``functorch-lite info`` prints: version, array API version, backends and devices.

    Returns:
        The lines of the report, without trailing newlines.

    Example:
        >>> from functorch_lite.cli import info_lines
        >>> info_lines()[0].startswith("functorch_lite ")
        True
    """
    import functorch_lite as fl
    from functorch_lite._backend import BACKEND_NAMES

    lines = [
        f"functorch_lite {fl.__version__}",
        f"array API version: {fl.__array_api_version__}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"default backend: {fl.default_backend_name()}"
        + (" (from FUNCTORCH_LITE_BACKEND)" if os.environ.get("FUNCTORCH_LITE_BACKEND") else ""),
        f"default float dtype: {fl.get_default_dtype().name}",
        "backends:",
    ]
    with warnings.catch_warnings():  # importing jax warns about x64 dtypes; that is not news here
        warnings.simplefilter("ignore")
        available = set(fl.available_backends())
        for name in BACKEND_NAMES:
            if name not in available:
                lines.append(f"  {name:<17} not installed")
                continue
            devices = _device_names(name)
            lines.append(f"  {name:<17} {_library_version(name):<12} devices: {', '.join(devices) or '?'}")
    return lines


def _library_version(backend: str) -> str:
    """The installed version of the library behind ``backend`` (from package metadata)."""
    from importlib import metadata

    dist = {
        "numpy": "numpy",
        "cupy": "cupy",
        "torch": "torch",
        "jax": "jax",
        "dask": "dask",
        "array_api_strict": "array-api-strict",
    }.get(backend, backend)
    candidates = [dist] + ([f"cupy-cuda{v}x" for v in (11, 12, 13)] if backend == "cupy" else [])
    for name in candidates:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "?"


def _cmd_info(args: argparse.Namespace) -> int:
    print("\n".join(info_lines()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._backend import get_backend
    from ._demo import run_demo

    if args.backend is not None:
        get_backend(args.backend)  # an uninstalled backend fails here, before any output
    result = run_demo(
        backend=args.backend,
        epochs=args.epochs,
        seed=args.seed,
        out=args.out,
        progress=not args.no_progress,
        models=tuple(args.models),
        max_train=args.max_train,
        jit=args.jit,
    )
    return 0 if result.ok else 1


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, naming the fix (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``functorch-lite`` (subcommands ``demo`` and ``info``).

    Example:
        >>> from functorch_lite.cli import build_parser
        >>> build_parser().parse_args(["info"]).command
        'info'
    """
    import functorch_lite as fl
    from functorch_lite._backend import BACKEND_NAMES

    from ._demo import MODELS

    parser = _Parser(
        prog="functorch-lite",
        description="functorch_lite: composable grad and vmap over any array API backend.",
    )
    parser.add_argument("--version", action="version", version=f"functorch-lite {fl.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,info}", parser_class=_Parser)
    per_model = ", ".join(f"{spec.epochs} for the {name.upper()}" for name, spec in MODELS.items())
    demo = sub.add_parser(
        "demo",
        help="train a small CNN and an MLP on scikit-learn's digits; plot and checkpoint them",
        description=(
            "Train a small CNN and an MLP on scikit-learn's bundled 8x8 digits (stratified 80/20 split) "
            "with functorch_lite.nn and functorch_lite.optim, plot the curves to OUT/training.png and "
            "save, reload and re-evaluate a safetensors checkpoint. With --jit the training step runs under "
            "functorch_lite.jit and the eager and jitted step times are printed."
        ),
    )
    demo.add_argument(
        "--backend",
        default=None,
        choices=BACKEND_NAMES,
        metavar="NAME",
        help=f"array backend: {', '.join(BACKEND_NAMES)} (default: the default backend, now "
        f"{fl.default_backend_name()}; set FUNCTORCH_LITE_BACKEND to change it)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"epochs for every model (default: each model its own, {per_model})",
    )
    demo.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed; the run is deterministic for a seed (default: 0)"
    )
    demo.add_argument("--out", default="demo-results", metavar="DIR", help="output folder (default: demo-results)")
    demo.add_argument(
        "--models",
        nargs="+",
        choices=tuple(MODELS),
        default=list(MODELS),
        help=f"which models to train (default: {' '.join(MODELS)})",
    )
    demo.add_argument(
        "--jit",
        action="store_true",
        help="run the training step under fl.jit (traced, then replayed) and print the eager and jit step times",
    )
    demo.add_argument("--max-train", type=_positive_int, default=None, help=argparse.SUPPRESS)
    demo.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (without a terminal, each epoch prints one line instead of a bar)",
    )
    demo.set_defaults(func=_cmd_demo)
    info = sub.add_parser("info", help="version, available backends and devices, array API version")
    info.set_defaults(func=_cmd_info)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``functorch-lite`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Example:
        >>> from functorch_lite.cli import main
        >>> main(["info"]) == 0  # doctest: +ELLIPSIS
        functorch_lite ...
        True
    """
    from ._errors import FunctorchLiteError

    parser = build_parser()
    args: Any = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (FunctorchLiteError, ImportError) as exc:  # a missing backend or package: one line, no traceback
        print(f"functorch-lite {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"functorch-lite {args.command}: interrupted", file=sys.stderr)
        return 130
