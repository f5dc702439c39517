"""Composable transforms: grad, vjp, jvp, linearize, linear_transpose, vmap, jacobians, custom rules, checkpoint.

How the transforms modules import each other (so that no import order matters and ruff may sort
them): as in ``_ops`` (see its docstring), imports at the top of a module only point down. Below
the transforms lie core, ops and ``_backend``; among the transforms modules, the top-level imports
form a graph without cycles: the tape side ``_payloads``, ``_fit`` and ``_batch`` < ``_backward``,
``_forward_mode`` < ``_ad`` < ``_grad`` < ``_jvp``, ``_vmap``, ``_stop`` < ``_jac`` < ``api``; the
staging side ``_weak`` < ``_program`` < ``_passes``, ``_replay``, ``_staging`` < the compilers
< ``_compile`` < ``_jit`` (with ``_jit_state`` < ``_jit_guard`` < ``_jit_plan``), and
``control_flow`` on ``_program`` and ``_staging``; ``custom`` imports no transforms module at
import time. So any module may be imported first. A module that needs one above it at call time
(the cycles: ``_program`` -> ``_passes``/``_compile``, ``_jit`` -> ``api``/``custom``/``_ad``/
``_batch``, ``custom`` -> ``api``/``_ad``, ``control_flow`` -> ``api``/``_ad``/``_compile``,
``_compiler_xla`` -> ``control_flow``) imports it inside the function that uses it; a new one goes
there too, or in a "Sibling transforms modules" block at the END of the module (module objects,
``# noqa: E402``, read at call time), never in the sorted block at the top.
"""

from __future__ import annotations

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
from .control_flow import cond, fori_loop, map, scan, switch, while_loop
from .custom import checkpoint, custom_jvp, custom_vjp, remat

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
