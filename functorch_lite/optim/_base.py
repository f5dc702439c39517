"""The pure core: ``GradientTransformation``, ``chain``, ``apply_updates`` and name-keyed trees.

A gradient transformation is a pair of pure functions (optax style):
``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``.
Trees are matched by the dotted key path of each leaf (``layers.0.weight``),
never by position: a Module, a dict keyed like ``named_parameters()`` and any
other pytree with the same paths are interchangeable. Leaves that are ``None``
(frozen parameters in a gradient Module) are simply absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from .. import _namespace as ops
from .._core import tree_util
from .._core.tensor import Tensor, wrap
from .._errors import ConfigError, ShapeError, TreeMismatchError
from ._eager import ArrayFn, Fallback, array_fn, arrays_of, wrap_all

__all__ = [
    "Params",
    "Updates",
    "OptState",
    "Schedule",
    "ScalarOrSchedule",
    "GradientTransformation",
    "PerParam",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "rebind",
    "global_norm",
]

Params = Any
"""A pytree of Tensors (a Module, a dict keyed by dotted names, nested lists ...)."""
Updates = Any
"""A pytree of updates with the paths of the gradients it came from."""
OptState = Any
"""The state of a transformation: NamedTuples of ints, floats and [`PerParam`][functorch_lite.optim.PerParam] dicts."""
Schedule = Callable[[int], float]
"""A function of the step count (0 for the first update) returning a float."""
ScalarOrSchedule = "float | Schedule"

Flat = dict  # dotted path -> Tensor


class _InitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...


class _UpdateFn(Protocol):
    def __call__(self, updates: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]: ...


class GradientTransformation(NamedTuple):
    """A pair of pure functions: ``init(params)`` and ``update(grads, state, params=None)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.sgd(lr=0.1)
        >>> params = {"w": fl.ones((2,))}
        >>> state = tx.init(params)
        >>> updates, state = tx.update({"w": fl.ones((2,))}, state, params)
        >>> optim.apply_updates(params, updates)["w"].tolist()
        [0.8999999761581421, 0.8999999761581421]
    """

    init: _InitFn
    update: _UpdateFn


class PerParam(dict):
    """A dict keyed by dotted parameter name: the per-parameter part of an optimizer state.

    It is a pytree node (keys sorted), so ``tree_map`` over a state reaches its values.

    Example:
        >>> from functorch_lite import optim
        >>> optim.PerParam({"b": 1, "a": 2})
        PerParam({'b': 1, 'a': 2})
    """

    def __repr__(self) -> str:
        return f"PerParam({dict.__repr__(self)})"


def _perparam_flatten(d: PerParam) -> tuple[list[Any], tuple[str, ...], tuple[str, ...]]:
    keys = tuple(sorted(d))
    return [d[k] for k in keys], keys, keys


tree_util.register_pytree_node(
    PerParam, _perparam_flatten, lambda keys, values: PerParam(zip(keys, values, strict=False))
)


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


# ------------------------------------------------------------------------------------------
# name-keyed flattening
# ------------------------------------------------------------------------------------------
def _leaf_tensor(x: Any, path: str, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return ops.asarray(x)
    except Exception as exc:  # noqa: BLE001 - re-raised as a typed error
        raise TreeMismatchError(
            f"optim: the {what} leaf at {path!r} is a {type(x).__name__}, not a Tensor or array; "
            "pass a pytree whose leaves are Tensors."
        ) from exc


def flatten(tree: Any, what: str = "tree") -> tuple[Flat, Callable[[Flat], Any]]:
    """``tree`` as ``{dotted path: Tensor}`` and a function that rebuilds a tree of that structure."""
    if type(tree) is dict:
        for k, v in tree.items():  # (a loop: cheaper than all() over a generator)
            if type(k) is not str or (v.__class__ is not Tensor and not isinstance(v, Tensor)):
                break
        else:
            return tree, _rebuild_dict(tuple(tree))
    paths, leaves, treedef = tree_util.tree_flatten_with_path(tree)
    flat = {p: _leaf_tensor(v, p, what) for p, v in zip(paths, leaves, strict=False)}
    if len(flat) != len(paths):
        raise TreeMismatchError(
            f"optim: two leaves of the {what} share one dotted path; rename the keys so each leaf has a unique name."
        )

    def rebuild(values: Flat) -> Any:
        return tree_util.tree_unflatten(treedef, [values[p] for p in paths])

    return flat, rebuild


def _rebuild_dict(keys: tuple[str, ...]) -> Callable[[Flat], Any]:
    def rebuild(values: Flat) -> Any:
        return {k: values[k] for k in keys}

    return rebuild


def flat(tree: Any, what: str = "tree") -> Flat:
    """``tree`` as ``{dotted path: Tensor}``."""
    return flatten(tree, what)[0]


def check_match(grads: Flat, params: Flat, *, where: str = "update") -> None:
    """Every gradient has a parameter of the same name and shape, or raise TreeMismatchError."""
    for path, g in grads.items():
        p = params.get(path)
        if p is None:
            known = ", ".join(repr(k) for k in list(params)[:6]) or "none"
            raise TreeMismatchError(
                f"{where}: grads have a leaf at {path!r} but params have none (params paths: "
                f"{known}{', ...' if len(params) > 6 else ''}). Pass grads with the structure "
                "of params, e.g. a dict keyed like named_parameters()."
            )
        if g.shape != p.shape and tuple(g.shape) != tuple(p.shape):
            raise TreeMismatchError(
                f"{where}: the gradient at {path!r} has shape {tuple(g.shape)} but the "
                f"parameter has shape {tuple(p.shape)}; gradients must match their parameters."
            )


def missing_state(path: str, state_keys: Iterable[str], where: str) -> TreeMismatchError:
    keys = list(state_keys)
    known = ", ".join(repr(k) for k in keys[:6]) or "none"
    return TreeMismatchError(
        f"{where}: no optimizer state for the gradient at {path!r} (state holds: {known}"
        f"{', ...' if len(keys) > 6 else ''}). Initialise the state with params whose paths "
        "match the gradients."
    )


def lift(
    init_flat: Callable[[Flat], OptState],
    update_flat: Callable[[Flat, OptState, Flat | None], tuple[Flat, OptState]],
    update_arrays: ArrayFn | None = None,
) -> GradientTransformation:
    """A GradientTransformation from functions on ``{path: Tensor}`` dicts.

    ``update_arrays``, when given, is the same update on backend arrays (see ``_eager``):
    it runs instead of ``update_flat`` when nothing is traced.
    """

    def init(params: Params) -> OptState:
        return init_flat(flat(params, "params"))

    def update(grads: Updates, state: OptState, params: Params | None = None) -> tuple[Updates, OptState]:
        g, rebuild = flatten(grads, "grads")
        p = None if params is None else flat(params, "params")
        if update_arrays is not None and (got := arrays_of(g, p)) is not None:
            ga, pa, xp = got
            try:
                out_a, new_state = update_arrays(ga, state, pa, xp)
            except Fallback:
                pass
            else:
                return rebuild(wrap_all(out_a, xp)), new_state
        if p is not None:
            check_match(g, p)
        out, new_state = update_flat(g, state, p)
        return rebuild(out), new_state

    # chain() calls the flat function directly: its inputs are already flat and checked
    update._flat = update_flat  # type: ignore[attr-defined]
    update._arrays = update_arrays  # type: ignore[attr-defined]
    return GradientTransformation(init, update)  # type: ignore[arg-type]


def need_params(params: Flat | None, name: str) -> Flat:
    if params is None:
        raise TreeMismatchError(
            f"{name}: this transformation needs the current params; call update(grads, state, params)."
        )
    return params


# ------------------------------------------------------------------------------------------
# combinators
# ------------------------------------------------------------------------------------------
def identity() -> GradientTransformation:
    """The transformation that returns the gradients unchanged.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.identity()
        >>> tx.update({"w": fl.ones((1,))}, tx.init({}))[0]["w"].tolist()
        [1.0]
    """
    same = lambda g, state, params, *xp: (dict(g), state)  # noqa: E731
    return lift(lambda params: EmptyState(), same, same)


def chain(*transforms: Any) -> GradientTransformation:
    """Apply ``transforms`` one after the other; the state is the tuple of their states.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> tx = optim.chain(optim.clip(1.0), optim.scale(-0.5))
        >>> tx.update({"w": fl.asarray([4.0])}, tx.init({"w": fl.zeros((1,))}))[0]["w"].tolist()
        [-0.5]
    """
    for i, t in enumerate(transforms):
        if not (callable(getattr(t, "init", None)) and callable(getattr(t, "update", None))):
            raise ConfigError(
                f"chain: argument {i} is a {type(t).__name__}, not a gradient transformation "
                "(an object with init and update); build one with optim.sgd(...), optim.scale(...) ..."
            )

    def init_flat(params: Flat) -> OptState:
        return tuple(t.init(params) for t in transforms)

    def update_flat(g: Flat, state: OptState, params: Flat | None) -> tuple[Flat, OptState]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise TreeMismatchError(
                f"chain: expected a state tuple of {len(transforms)} entries (one per "
                f"transformation); got {type(state).__name__}. Use the state made by this chain's init."
            )
        if fold is not None:  # scale_by_adam + scale: one pass (see below)
            i, post = fold
            new = list(state)
            for j in range(i):
                g, new[j] = updates[j](g, state[j], params)
            g, new[i] = updates[i](g, state[i], params, post)
            for j in range(i + 2, len(updates)):
                g, new[j] = updates[j](g, state[j], params)
            return g, tuple(new)
        new = []
        for up, s in zip(updates, state, strict=False):
            g, s = up(g, s, params)
            new.append(s)
        return g, tuple(new)

    # a lifted transformation's flat function skips re-flattening and re-checking the dicts
    updates = [getattr(t.update, "_flat", None) or t.update for t in transforms]
    arrays = [array_fn(t.update) for t in transforms]
    # scale_by_adam followed by scale(s) (every Adam alias: the learning rate): Adam takes s and
    # ends with m / denom * (s / bc1), as torch's addcdiv does, instead of two passes over the
    # updates; the scale's state (empty) is passed through
    fold = None
    for i in range(len(transforms) - 1):
        post = getattr(transforms[i + 1].update, "_scale", None)
        if getattr(transforms[i].update, "_folds_scale", False) and post is not None:
            fold = (i, post)
            break

    def update_arrays(g: dict, state: OptState, params: dict | None, xp: Any) -> tuple[dict, OptState]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise Fallback  # the Tensor path names the problem
        if fold is not None:
            i, post = fold
            if i == 0 and len(arrays) == 2:  # (Adam with a learning rate: the common chain)
                g, s0 = arrays[0](g, state[0], params, xp, post)  # type: ignore[misc,call-arg]
                return g, (s0, state[1])
            new = list(state)
            for j in range(i):
                g, new[j] = arrays[j](g, state[j], params, xp)  # type: ignore[misc]
            g, new[i] = arrays[i](g, state[i], params, xp, post)  # type: ignore[misc,call-arg]
            for j in range(i + 2, len(arrays)):
                g, new[j] = arrays[j](g, state[j], params, xp)  # type: ignore[misc]
            return g, tuple(new)
        new = []
        for fn, s in zip(arrays, state, strict=False):
            g, s = fn(g, s, params, xp)  # type: ignore[misc]
            new.append(s)
        return g, tuple(new)

    return lift(init_flat, update_flat, update_arrays if all(arrays) else None)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates`` leaf by leaf (matched by name); each result keeps its parameter's dtype.

    Parameters without an update are returned unchanged.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> optim.apply_updates({"w": fl.ones((2,))}, {"w": fl.ones((2,))})["w"].tolist()
        [2.0, 2.0]
    """
    p, rebuild = flatten(params, "params")
    u = flat(updates, "updates")
    out = dict(p)
    if (got := arrays_of(u, p)) is not None:  # concrete, one dtype per leaf: add the arrays
        ua, pa, xp = got
        for k, a in ua.items():
            out[k] = wrap(pa[k] + a, xp)  # type: ignore[index]
        return rebuild(out)
    check_match(u, p, where="apply_updates")
    for k, v in u.items():
        out[k] = add_update(p[k], v)
    return rebuild(out)


def add_update(p: Tensor, u: Tensor) -> Tensor:
    if p.__class__ is not Tensor and p._t is None:  # a Parameter: a plain alias takes the operators' fast path
        q = _new(Tensor)
        q._a, q._xp, q._t = p._a, p._xp, None
        p = q
    out = p + u
    if out._t is None and p._t is None:
        if out._a.dtype == p._a.dtype:
            return out
    if out.dtype != p.dtype:
        out = ops.astype(out, p.dtype)
    return out


_new = object.__new__


def rebind(target: Tensor, value: Tensor) -> Tensor:
    """Make ``target`` hold ``value`` in place (the same Tensor object, a new value); returns it.

    This is how the class optimizers update a module's parameters without replacing
    the Parameter objects the module holds.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> w = fl.zeros((2,))
        >>> _ = optim.rebind(w, fl.ones((2,)))
        >>> w.tolist()
        [1.0, 1.0]
    """
    if not isinstance(target, Tensor) or not isinstance(value, Tensor):
        raise TypeError(
            f"rebind: both arguments must be Tensors; got {type(target).__name__} and {type(value).__name__}."
        )
    if tuple(target.shape) != tuple(value.shape):
        raise ShapeError(
            f"rebind: the new value has shape {tuple(value.shape)} but the Tensor has shape "
            f"{tuple(target.shape)}; a parameter keeps its shape."
        )
    target._a, target._xp, target._t = value._a, value._xp, value._t
    return target


def global_norm(updates: Updates) -> Tensor:
    """The L2 norm of all leaves together, ``sqrt(sum of squares)``.

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> float(optim.global_norm({"a": fl.asarray([3.0]), "b": fl.asarray([4.0])}))
        5.0
    """
    leaves = list(flat(updates, "updates").values())
    if not leaves:
        return ops.asarray(0.0)
    sums = [ops.sum(leaf * leaf) for leaf in leaves]
    dt = ops.result_type(*sums) if len(sums) > 1 else sums[0].dtype
    total = sums[0] if sums[0].dtype == dt else ops.astype(sums[0], dt)
    for s in sums[1:]:
        total = total + (s if s.dtype == dt else ops.astype(s, dt))
    return ops.sqrt(total)


# ------------------------------------------------------------------------------------------
# argument checks (PyTorch's constraints, as typed errors)
# ------------------------------------------------------------------------------------------
def _traced_scalar(v: Any) -> bool:
    """A 0-d value traced by jit (a weak Python number): it is checked when given, not now."""
    return isinstance(v, Tensor) and v.is_tracer and v.ndim == 0


def check_number(name: str, value: Any, where: str) -> float:
    if _traced_scalar(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {name} must be a number; got {value!r}.") from exc
    value = float(value)
    if math.isnan(value):
        raise ConfigError(f"{where}: {name} must be a number; got nan.")
    return value


def check_nonneg(name: str, value: Any, where: str) -> float:
    v = check_number(name, value, where)
    if _traced_scalar(v):
        return v
    if v < 0:
        raise ConfigError(f"{where}: {name} must be >= 0; got {value!r}. Pass a non-negative value.")
    return v


def check_lr(value: Any, where: str) -> Any:
    if callable(value) and not hasattr(value, "named_parameters"):
        return value
    if _traced_scalar(value):
        return value  # a learning rate traced by jit (checked when it was set, as a number)
    if not isinstance(value, (int, float)) and (hasattr(value, "__iter__") or hasattr(value, "named_parameters")):
        raise ConfigError(
            f"{where}: lr must be a float or a schedule; got a {type(value).__name__}. Optimizers here "
            "take no parameters (MLX style): opt = optim.Adam(lr=1e-3), then opt.update(model, grads)."
        )
    return check_nonneg("lr", value, where)


def check_beta(name: str, value: Any, where: str) -> float:
    v = check_number(name, value, where)
    if not 0.0 <= v < 1.0:
        raise ConfigError(f"{where}: {name} must be in [0, 1); got {value!r}.")
    return v


def check_betas(betas: Any, where: str) -> tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: betas must be a pair (beta1, beta2); got {betas!r}.") from exc
    return check_beta("betas[0]", b1, where), check_beta("betas[1]", b2, where)


def schedule_value(schedule: Any, count: int, name: str = "lr") -> float:
    """Evaluate a float-or-schedule at ``count`` and check it is a non-negative number."""
    v = schedule(count) if callable(schedule) else schedule
    if _traced_scalar(v):
        return v  # type: ignore[no-any-return]
    v = check_number(name, v, "schedule")
    if v < 0:
        raise ConfigError(f"schedule: {name} evaluated to {v} at step {count}; a learning rate must be >= 0.")
    return v
