"""Helpers the table-driven test files share: Tensors on the run's default backend and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import functorch_lite as fl


def T(a: Any, dtype: Any = None) -> fl.Tensor:
    """A Tensor on the run's default backend (``FUNCTORCH_LITE_BACKEND``), of ``dtype`` if given."""
    t = fl.asarray(np.asarray(a))
    if t.backend != fl.default_backend_name():
        t = fl.to_backend(t, fl.default_backend_name())
    return t if dtype is None else fl.astype(t, dtype)


def N(t: Any) -> np.ndarray:
    """A numpy array of ``t``."""
    return np.asarray(t)


def torch_module(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """A maker of the float64 ``torch.nn.<name>(*args, **kwargs)`` (torch imported when called)."""

    def make() -> Any:
        import torch

        return getattr(torch.nn, name)(*args, **kwargs).double()

    return make
