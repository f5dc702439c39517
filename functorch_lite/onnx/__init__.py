"""ONNX export: ``fl.onnx.export`` lowers a staged program to an ONNX model.

``export(f_or_module, args, path)`` traces with [`make_program`][functorch_lite.transforms.make_program]
(so gradient and training functions export as well as forward passes), optimizes the
program as ``jit`` does, lowers each equation to ONNX operators (see ``coverage()``) and
writes the file. A module's parameters and buffers become the model's initializers, under
their ``state_dict`` names; the control-flow primitives become ``If`` and ``Loop``.

``dynamic_axes`` names input axes whose size may change: the function is traced at a few
sizes of each and the integers that follow the size (a reshape target, a mean's divisor) are
computed from the input's shape at run time (`functorch_lite.onnx._symbolic`).

Requires the ``onnx`` package (``pip install "functorch_lite[onnx]"``, which also brings
``onnxruntime`` to run the result); the rest of functorch_lite never imports it.

Example:
    >>> import functorch_lite as fl
    >>> import pytest; _ = pytest.importorskip("onnx")
    >>> model = fl.onnx.export(lambda x: fl.tanh(x) * 2.0, (fl.ones((3,)),), None)
    >>> [n.op_type for n in model.graph.node]
    ['Tanh', 'Mul', 'Identity']
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core import tree_util as tu
from .._core.tensor import Tensor
from .._errors import ExportError
from .._files import write_atomic
from ..transforms._program import Program, Var
from ..transforms._staging import trace_program
from ._graph import Builder
from ._lower import ONNX_OPS, RULES, UNSUPPORTED, Lowerer, unsupported_error, walk_primitives
from ._symbolic import Dim, Merged, merge_programs, sample_points

__all__ = ["export", "coverage", "coverage_table", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 18
MIN_OPSET = 18  # Reduce* ops with axes as inputs, bitwise ops, ScatterND's reduction


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError(
            'onnx.export: the onnx package is not installed; install it with pip install "functorch_lite[onnx]" '
            "(onnx, and onnxruntime to run the exported model)."
        ) from None
    return onnx


def _arg_names(f: Any, n: int) -> list[str]:
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return [f"input_{i}" for i in range(n)]
    names: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names.extend(f"{p.name}_{i}" for i in range(n - len(names)))
    names = names[:n]
    return names + [f"input_{i}" for i in range(len(names), n)]


def _is_array(x: Any) -> bool:
    if isinstance(x, Tensor):
        return True
    from .._backend import backend_of

    return backend_of(x) is not None


def _is_weak(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _resize(x: Any, axes: Mapping[int, int]) -> Any:
    """``x`` with each axis in ``axes`` tiled (or cut) to the given size."""
    import functorch_lite as fl

    t = x if isinstance(x, Tensor) else fl.asarray(x)
    for a, n in axes.items():
        m = t.shape[a]
        if m == 0:
            raise ExportError("onnx.export: a dynamic axis of size 0 cannot be resized; give an example of size >= 1.")
        idx = fl.remainder(fl.arange(n, dtype=fl.int64), m)
        t = fl.take(t, idx, axis=a)
    return t


def export(
    f_or_module: Callable[..., Any],
    args: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Mapping[int, str] | Sequence[int]] | None = None,
    opset: int | None = None,
) -> Any:
    """Export ``f_or_module(*args)`` to ONNX; write it to ``path`` (unless None); return the ``onnx.ModelProto``.

    Args:
        f_or_module: a function of Tensors (pytrees of them), a ``fl.jit``-ed function, a
            transformed function (``fl.grad(loss)``), or an ``nn.Module`` (exported in eval
            mode, as ``torch.onnx.export`` does; its parameters and buffers become
            initializers named as in its ``state_dict``).
        args: the example arguments (a tuple, or a single Tensor). Their pytrees are flattened;
            each array leaf is a graph input, named after the function's parameter and the
            leaf's path (``params.w1``), and Python scalars and other leaves are baked in.
        path: the file to write (atomically: nothing is left behind on failure), or None.
        input_names / output_names: names for the flat input / output leaves, in order.
        dynamic_axes: ``{name: {axis: symbol}}`` or ``{name: [axis, ...]}`` for inputs (and
            outputs) whose axis sizes vary, as in ``torch.onnx.export``.
        opset: the ONNX opset (default 18; at least 18).

    Raises:
        ExportError: a primitive ONNX cannot express (named, before anything is written), an
            unknown name in ``dynamic_axes``, a size the graph cannot follow symbolically, an
            unwritable ``path``, or a missing ``onnx`` package.
    """
    onnx = _require_onnx()
    opset = DEFAULT_OPSET if opset is None else opset
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < MIN_OPSET:
        raise ExportError(
            f"onnx.export: opset must be an int >= {MIN_OPSET}; got {opset!r}. Use opset={DEFAULT_OPSET}."
        )
    top = int(onnx.defs.onnx_opset_version())
    if opset > top:
        raise ExportError(
            f"onnx.export: opset {opset} is newer than the installed onnx supports ({top}); use <= {top}."
        )
    if path is not None:
        path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise ExportError(f"onnx.export: cannot write {path!r}: the folder {d!r} does not exist; create it first.")
        if not os.access(d, os.W_OK):
            raise ExportError(f"onnx.export: cannot write {path!r}: the folder {d!r} is not writable.")
    if not isinstance(args, tuple):
        args = (args,)

    from ..nn import Module

    module = f_or_module if isinstance(f_or_module, Module) else None
    if module is not None:
        was_training = module.training
        module.eval()
        try:
            return _export(onnx, module, args, path, input_names, output_names, dynamic_axes, opset)
        finally:
            module.train(was_training)
    if not callable(f_or_module):
        raise ExportError(f"onnx.export: expected a function or an nn.Module; got {type(f_or_module).__name__}.")
    return _export(onnx, f_or_module, args, path, input_names, output_names, dynamic_axes, opset)


def _export(
    onnx: Any,
    f: Any,
    args: tuple[Any, ...],
    path: str | None,
    input_names: Sequence[str] | None,
    output_names: Sequence[str] | None,
    dynamic_axes: Mapping[str, Any] | None,
    opset: int,
) -> Any:
    from ..nn import Module, functional_call

    if isinstance(f, Module):
        model = f
        state = dict(model.state_dict())
        n_state = len(state)

        def fn(st: Any, *a: Any) -> Any:
            return functional_call(model, st, *a)

        full = (state, *args)
        arg_names = ["state", *_arg_names(model.forward, len(args))]
        owner = type(model).__name__
    else:
        fn = f
        full = args
        n_state = 0
        arg_names = _arg_names(getattr(f, "__wrapped__", f), len(args))
        owner = getattr(f, "__name__", type(f).__name__)

    # -- flat leaves and their names -----------------------------------------------------------
    paths, leaves, tree = tu.tree_flatten_with_path(tuple(full))
    # arrays and Python int / float leaves (a step count) are inputs, as under fl.jit; the rest is baked in
    kinds = ["array" if _is_array(x) or _is_weak(x) else "static" for x in leaves]
    state_count = len(tu.tree_leaves(full[0])) if n_state else 0
    auto = []
    for p in paths:
        head, _, rest = p.partition(".")
        base = arg_names[int(head)] if head.isdigit() and int(head) < len(arg_names) else head
        auto.append(rest if (n_state and head == "0") else (f"{base}.{rest}" if rest else base))
    in_idx = [i for i, k in enumerate(kinds) if k == "array" and i >= state_count]
    names = {i: auto[i] for i in range(len(leaves))}
    if input_names is not None:
        input_names = list(input_names)
        if len(input_names) != len(in_idx):
            raise ExportError(
                f"onnx.export: input_names has {len(input_names)} name(s), but the inputs have {len(in_idx)} array "
                f"leaves ({[auto[i] for i in in_idx]}); give one name per array leaf, in order."
            )
        for i, n in zip(in_idx, input_names, strict=True):
            names[i] = str(n)

    # -- dynamic axes: symbols, and which (input, axis) defines each -----------------------------
    dyn = dict(dynamic_axes or {})
    by_name = {names[i]: i for i in in_idx}
    sym_of: dict[int, dict[int, str]] = {}
    out_dyn: dict[str, dict[int, str]] = {}
    symbols: list[str] = []
    sizes: dict[str, int] = {}
    for nm, spec in dyn.items():
        axes = dict(spec) if isinstance(spec, Mapping) else {int(a): f"{nm}_dim_{int(a)}" for a in spec}
        if nm not in by_name:
            out_dyn[nm] = {int(a): str(s) for a, s in axes.items()}
            continue
        i = by_name[nm]
        x = leaves[i]
        r = 0 if _is_weak(x) else len(x.shape)
        for a, s in axes.items():
            if not isinstance(a, int) or not -r <= a < r:
                raise ExportError(f"onnx.export: dynamic_axes[{nm!r}] names axis {a!r}, but {nm} has rank {r}.")
            a %= r
            sym_of.setdefault(i, {})[a] = str(s)
            size = int(x.shape[a])
            if str(s) in sizes and sizes[str(s)] != size:
                raise ExportError(
                    f"onnx.export: dynamic axis {s!r} has size {sizes[str(s)]} in one input and {size} in {nm}; "
                    "axes that share a symbol must have the same size in the example."
                )
            sizes[str(s)] = size
            if str(s) not in symbols:
                symbols.append(str(s))

    static_dims = {int(d) for i in in_idx if not _is_weak(leaves[i]) for d in leaves[i].shape}
    points = sample_points(symbols, static_dims)

    def trace_at(pt: tuple[int, ...]) -> Program:
        sz = dict(zip(symbols, pt, strict=True))
        arr_leaves = []
        for i in range(len(leaves)):
            if kinds[i] != "array":
                continue
            x = leaves[i]
            if i in sym_of:
                x = _resize(x, {a: sz[s] for a, s in sym_of[i].items()})
            arr_leaves.append(x)

        def flat_fn(*arrs: Any) -> Any:
            it = iter(arrs)
            vals = [next(it) if k == "array" else leaves[j] for j, k in enumerate(kinds)]
            return fn(*tu.tree_unflatten(tree, vals))

        flat_fn.__name__ = owner
        return trace_program(flat_fn, arr_leaves, kind="make_program").optimized()

    if symbols:
        progs = [trace_at(pt) for pt in points]
    else:
        progs = [trace_at(())]
    merged = Merged(points if symbols else [()], symbols)
    merge_programs(progs, merged)
    prog = progs[0]

    # -- refuse what ONNX cannot express, before anything is built or written ------------------
    bad = sorted({n for n in walk_primitives(prog) if n not in RULES})
    if bad:
        raise unsupported_error(bad[0], f" (in {owner}; also {bad[1:]})" if len(bad) > 1 else f" (in {owner})")

    # -- graph ---------------------------------------------------------------------------------
    b = Builder(onnx, opset)
    h = onnx.helper
    arr_pos = [i for i, k in enumerate(kinds) if k == "array"]
    in_vars = [v for v in prog.in_vars if isinstance(v, Var)]
    graph_inputs = []
    init_names: list[str] = []
    leaf_name: list[str] = []
    for i, v in zip(arr_pos, in_vars, strict=True):
        if i < state_count:
            from .._backend import tensor_to_host

            init_names.append(b.host(tensor_to_host(leaves[i]), names[i]))
            leaf_name.append(names[i])
            continue
        nm = b.reserve(names[i])
        shape: list[Any] = list(v.shape)
        for a, s in sym_of.get(i, {}).items():
            shape[a] = s
        graph_inputs.append(b.value_info(nm, v.dtype.name, shape))
        leaf_name.append(nm)
    # the run-time value of each symbol, from the first input that declares it
    for s in symbols:
        for i, axes in sym_of.items():
            hit = [a for a, s2 in axes.items() if s2 == s]
            if hit:
                src = names[i]
                sh = b.op("Shape", [src], out=[b.fresh(f"shape_{s}")])[0]
                b.symbols[s] = b.op("Gather", [sh, b.const(hit[0], "int64")], out=[b.fresh(f"size_{s}")])[0]
                break
    low = Lowerer(b, merged)
    res = low.lower(prog, leaf_name)

    # -- outputs -------------------------------------------------------------------------------
    out_leaves = prog.outs
    o_paths = tu.tree_flatten_with_path(tu.tree_unflatten(prog.out_tree, list(range(len(out_leaves)))))[0]
    if output_names is not None:
        output_names = list(output_names)
        if len(output_names) != len(out_leaves):
            raise ExportError(
                f"onnx.export: output_names has {len(output_names)} name(s), but the function returns "
                f"{len(out_leaves)} leaves; give one name per output leaf, in order."
            )
        onames = [str(n) for n in output_names]
    elif len(out_leaves) == 1:
        onames = ["output"]
    else:
        onames = [f"output.{p}" if p else f"output_{k}" for k, p in enumerate(o_paths)]
    for nm in out_dyn:
        if nm not in onames:
            raise ExportError(
                f"onnx.export: dynamic_axes names {nm!r}, which is neither an input nor an output; inputs: "
                f"{[names[i] for i in in_idx]}, outputs: {onames}."
            )
    graph_outputs = []
    for o, n, nm in zip(out_leaves, res, onames, strict=True):
        shp: list[Any] = []
        if isinstance(o, Var):
            dt = o.dtype.name
            for d in merged.shape_of(o):
                shp.append((d.single() or None) if isinstance(d, Dim) else d)
            for a, s in out_dyn.get(nm, {}).items():
                a = int(a) % max(len(shp), 1)
                if not isinstance(merged.shape_of(o)[a], Dim) and symbols:
                    raise ExportError(
                        f"onnx.export: dynamic_axes[{nm!r}] names axis {a}, whose size does not depend on any "
                        "dynamic input axis; leave it out."
                    )
                shp[a] = s
        else:
            dt = "bool" if isinstance(o, bool) else "int64" if isinstance(o, int) else "float32"
        b.reserve(nm)
        b.op("Identity", [low.as_name(n, dt)], out=[nm])
        graph_outputs.append(b.value_info(nm, dt, shp))

    used = _used_names(b.nodes)
    inits = [t for t in b.inits if t.name in used]  # constants a simpler lowering made unnecessary
    graph = h.make_graph(b.nodes, owner if owner.isidentifier() else "main", graph_inputs, graph_outputs, inits)
    from .. import __version__

    model = h.make_model(
        graph, opset_imports=[h.make_opsetid("", opset)], producer_name="functorch_lite", producer_version=__version__
    )
    model.ir_version = min(int(model.ir_version), 10)
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - the checker's own error types vary by version
        raise ExportError(f"onnx.export: internal error: the lowered graph of {owner} fails onnx.checker: {e}") from e
    if path is not None:
        write_atomic(path, _write_bytes(model.SerializeToString()), "onnx.export", ExportError)
    return model


def _used_names(nodes: Sequence[Any]) -> set[str]:
    """Every name a node reads, in subgraphs too."""
    out: set[str] = set()
    for n in nodes:
        out.update(n.input)
        for a in n.attribute:
            if a.HasField("g"):
                out |= _used_names(a.g.node)
                out.update(o.name for o in a.g.output)
            for g in a.graphs:
                out |= _used_names(g.node)
    return out


def _write_bytes(data: bytes) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return write


# ---------------------------------------------------------------------------------------
# Coverage
# ---------------------------------------------------------------------------------------
def coverage() -> dict[str, tuple[bool, str]]:
    """``{primitive: (exported?, the ONNX operators used, or why not)}`` for every registered primitive."""
    from .._core.engine import PRIMITIVES

    names = set(PRIMITIVES) | set(RULES) | set(UNSUPPORTED)
    out = {}
    for n in sorted(names):
        if n in RULES:
            out[n] = (True, ONNX_OPS[n])
        else:
            out[n] = (False, UNSUPPORTED.get(n, "no lowering yet"))
    return out


def coverage_table() -> str:
    """The coverage as a Markdown table (the docs page embeds it; a test keeps the two equal)."""
    rows = ["| primitive | ONNX | operators (or why not) |", "|---|---|---|"]
    for n, (ok, what) in coverage().items():
        rows.append(f"| `{n}` | {'yes' if ok else 'no'} | {what} |")
    return "\n".join(rows)
