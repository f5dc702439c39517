"""Composable transforms: grad, vjp, jvp, linearize, linear_transpose, vmap, jacobians, custom rules, checkpoint."""

from __future__ import annotations

from .control_flow import cond, fori_loop, map, scan, switch, while_loop
from .custom import checkpoint, custom_jvp, custom_vjp, remat
from ._jit import Jitted, RetraceWarning, jit
from ._make_program import make_program
from ._program import Program
from ._staging import ShapeDtypeStruct
from .api import (
    grad,
    hessian,
    jacfwd,
    jacrev,
    jvp,
    linear_transpose,
    linearize,
    stop_gradient,
    value_and_grad,
    vjp,
    vmap,
)

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "linearize",
    "vmap",
    "jacrev",
    "jacfwd",
    "hessian",
    "linear_transpose",
    "stop_gradient",
    "custom_vjp",
    "custom_jvp",
    "checkpoint",
    "remat",
    "jit",
    "Jitted",
    "RetraceWarning",
    "make_program",
    "Program",
    "ShapeDtypeStruct",
    "cond",
    "switch",
    "while_loop",
    "fori_loop",
    "scan",
    "map",
]
