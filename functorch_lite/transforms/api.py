"""The transforms: grad, value_and_grad, vjp, jvp, linearize, vmap, jacrev, jacfwd, hessian.

One module per transform family: ``_grad`` (reverse mode and its tape), ``_jvp`` (forward
mode, ``linear_transpose``), ``_vmap``, ``_jac`` (Jacobians, Hessians) and ``_stop``
(``stop_gradient``); this module gathers them (``from .api import vjp`` in the rest of the
package).
"""

from __future__ import annotations

from ._grad import (  # noqa: F401
    _argname,
    _argnames,
    _argnums,
    _cotangents,
    _int_leaf_error,
    _is_float,
    _leaf_treedef,
    _nonfloat_error,
    _nonscalar_error,
    _record,
    _run_backward,
    _scalar_grads,
    _size,
    _stack_str,
    _strip,
    _Tape,
    _to_leaf,
    _value_and_grad,
    _value_and_grad_named,
    grad,
    value_and_grad,
    vjp,
)
from ._jac import (  # noqa: F401
    _check_chunk_size,
    _eye_like,
    hessian,
    jacfwd,
    jacrev,
)
from ._jvp import (  # noqa: F401
    _check_linear,
    _concrete,
    _max_abs,
    _outname,
    _random_like,
    jvp,
    linear_transpose,
    linearize,
)
from ._stop import (  # noqa: F401
    stop_gradient,
    stop_gradient_p,
)
from ._vmap import (  # noqa: F401
    _chunked,
    _flat_axes,
    _unbatch,
    _vmap_once,
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
]
