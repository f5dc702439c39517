"""The class facade (MLX style): ``opt = optim.Adam(lr=1e-3); opt.update(model, grads)``.

A class optimizer wraps a named pure optimizer under [`inject_hyperparams`][functorch_lite.optim.inject_hyperparams],
so ``opt.lr`` can be read and set between steps. Modules reach it as pytrees
(``optim`` never imports ``nn``): parameters are matched with gradients by
dotted name, and ``update`` rebinds each parameter Tensor to its new value.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .. import _namespace as ops
from .._core import tree_util
from .._core.tensor import Tensor, wrap
from .._errors import COMING_FROM_PYTORCH, PyTorchHabitError, StateDictError
from ._base import (
    GradientTransformation,
    OptState,
    Params,
    PerParam,
    add_update,
    check_lr,
    check_match,
    flat,
    flatten,
    rebind,
)
from ._eager import Fallback, array_fn, arrays_of
from ._wrappers import InjectHyperparamsState, inject_hyperparams

__all__ = ["Optimizer", "STATE_DICT_FORMAT", "split_state_dict", "join_state_dict"]

STATE_DICT_FORMAT = "functorch_lite.optim/1"


class Optimizer:
    """Base class of the class optimizers (``SGD``, ``Adam``, ...); a stateful wrapper of a pure one.

    Subclasses set ``factory`` (a function returning a [`GradientTransformation`][functorch_lite.optim.GradientTransformation]).

    Example:
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> opt = optim.SGD(lr=0.5)
        >>> params = opt.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})
        >>> params["w"].tolist(), opt.step
        ([0.5, 0.5], 1)
    """

    factory: Callable[..., GradientTransformation]

    def __init__(self, **hparams: Any) -> None:
        self._hparams: dict[str, Any] = dict(hparams)
        check_lr(self._hparams.get("lr", 0.0), type(self).__name__)
        self._tx = self._build(self._hparams)
        self._state: InjectHyperparamsState | None = None
        self._known: dict[str, tuple[tuple[int, ...], Any, str]] = {}
        self._verify_pending = False

    # -- construction -------------------------------------------------------------
    def _build(self, hparams: dict[str, Any]) -> GradientTransformation:
        now = {k: (v(0) if callable(v) else v) for k, v in hparams.items()}
        type(self).factory(**now)  # raises ConfigError for bad settings, before anything changes
        static = tuple(k for k, v in hparams.items() if k != "lr" and not callable(v))
        return inject_hyperparams(type(self).factory, static_args=static)(**hparams)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hparams.items())
        return f"{type(self).__name__}({args})"

    # -- hyperparameters ------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate of the next step; setting it replaces a schedule by a constant."""
        v = self._hparams["lr"]
        if callable(v):
            return float(v(self._count()))
        if self._state is not None:
            return self._state.hyperparams["lr"]
        return v

    @lr.setter
    def lr(self, value: Any) -> None:
        v = check_lr(value, f"{type(self).__name__}.lr")
        hp = dict(self._hparams, lr=v)
        tx = self._build(hp)
        self._hparams, self._tx = hp, tx
        if self._state is not None and not callable(v):
            self._state = self._state._replace(hyperparams=dict(self._state.hyperparams, lr=v))

    @property
    def hyperparams(self) -> dict[str, Any]:
        """The settings this optimizer was made with (schedules included)."""
        return dict(self._hparams)

    @property
    def step(self) -> int:
        """The number of updates applied so far (an int; calling it, PyTorch's ``opt.step()``, explains).

        One optimizer step is ``opt.update(model, grads)``.
        """
        count = self._count()
        return StepCount(count, type(self).__name__) if type(count) is int else count

    def _count(self) -> Any:
        return 0 if self._state is None else self._state.count

    @property
    def zero_grad(self) -> Any:
        """Not here: gradients are returned, never accumulated (raises PyTorchHabitError)."""
        raise PyTorchHabitError(
            f"{type(self).__name__}.zero_grad: there are no accumulated gradients to clear; each call of "
            "nn.value_and_grad(model, loss_fn)(x, y) returns fresh ones. Drop the zero_grad() call: a step is "
            f"loss, grads = nn.value_and_grad(model, loss_fn)(x, y); opt.update(model, grads). See {COMING_FROM_PYTORCH}"
        )

    @property
    def state(self) -> OptState:
        """The pure optimizer state (None before the first update or [`init`][functorch_lite.optim.Optimizer.init])."""
        return self._state

    @property
    def transformation(self) -> GradientTransformation:
        """The pure transformation behind this optimizer (its state is [`state`][functorch_lite.optim.Optimizer.state])."""
        return self._tx

    # -- state --------------------------------------------------------------------------
    def init(self, params: Params) -> None:
        """Create the state for ``params`` (a Module uses its ``named_parameters()``)."""
        p = _trainable(params)
        state = self._tx.init(p)
        self._state, self._known = state, _describe(p)
        self._verify_pending = False

    def _prepared(self, p: dict[str, Tensor], g: dict[str, Tensor]) -> tuple[Any, dict[str, Any]]:
        check_match(g, p, where=f"{type(self).__name__}.update")
        if self._state is not None and self._verify_pending:
            _verify_fit(self._known, p, type(self).__name__)
        if self._state is None:
            sub = {k: p[k] for k in g}
            return self._tx.init(sub), _describe(sub)
        known = self._known
        if known.keys() >= g.keys():  # every gradient has its state already (every step but the first)
            return self._state, known
        new = {k: p[k] for k in g if k not in known}
        known = dict(known)
        known.update(_describe(new))
        return _merge(self._state, self._tx.init(new)), known

    def _step_arrays(self, p: dict[str, Tensor], g: dict[str, Tensor]) -> dict[str, Any] | None:
        """The step on backend arrays (see ``_eager``): the new parameter arrays, or None."""
        fa = array_fn(self._tx.update)
        if fa is None or self._state is None or self._verify_pending or not self._known.keys() >= g.keys():
            return None  # the first step, new parameters or a loaded state: the general path
        got = arrays_of(g, p)
        if got is None:
            return None
        ga, pa, xp = got
        try:
            updates, new_state = fa(ga, self._state, pa, xp)
        except Fallback:
            return None
        self._state = new_state
        return {k: pa[k] + u for k, u in updates.items()}  # type: ignore[index]

    def _step(self, p: dict[str, Tensor], grads: Any) -> dict[str, Tensor]:
        g = flat(grads, "grads")
        new = self._step_arrays(p, g)
        if new is not None:
            xp = next(iter(p.values()))._xp
            return {k: wrap(a, xp) for k, a in new.items()}
        state, known = self._prepared(p, g)
        for k, v in g.items():  # gradients take their parameter's dtype, as in PyTorch
            pk = p[k]
            if v._t is None and pk._t is None and v._a.dtype == pk._a.dtype:
                continue
            if v.dtype != pk.dtype:
                g = {**g, k: ops.astype(v, pk.dtype)}
        sub = p if p.keys() == g.keys() else {k: p[k] for k in g}
        up = self._tx.update
        updates, new_state = getattr(up, "_flat", up)(g, state, sub)  # (g and sub: flat dicts, checked)
        out = {k: add_update(p[k], u) for k, u in flat(updates, "updates").items()}
        self._state, self._known, self._verify_pending = new_state, known, False
        return out

    def apply(self, params: Params, grads: Any) -> Params:
        """One step on a plain pytree: returns the new params (same structure); updates the state.

        ``grads`` may hold fewer leaves than ``params`` (those are left unchanged);
        leaves are matched by dotted name.
        """
        p, rebuild = flatten(params, "params")
        new = self._step(p, grads)
        return rebuild({**p, **new})

    def update(self, model: Any, grads: Any) -> None:
        """One step in place: rebind each parameter Tensor of ``model`` that has a gradient.

        ``grads`` is a pytree of the model's structure (None leaves are skipped) or a dict
        keyed by dotted parameter name, such as ``nn.value_and_grad`` returns.
        """
        named = getattr(model, "named_parameters", None)
        cached = getattr(model, "_flat_parameters", None)
        if cached is not None and not isinstance(model, dict):  # an nn.Module: kept flat while unchanged
            targets = cached()
        elif callable(named) and not isinstance(model, dict):  # a Module: its names are its pytree paths
            targets = {k: v for k, v in named() if isinstance(v, Tensor)}
        else:
            paths, leaves, _ = tree_util.tree_flatten_with_path(model)
            targets = {k: v for k, v in zip(paths, leaves, strict=False) if isinstance(v, Tensor)}
        g = flat(grads, "grads")
        arrays = self._step_arrays(targets, g)
        if arrays is not None:  # concrete: each parameter keeps its backend, dtype and shape
            for k, a in arrays.items():
                targets[k]._a = a
            return
        new = self._step(targets, g)
        for k, v in new.items():
            rebind(targets[k], v)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state keyed by parameter name: JSON-ready metadata plus Tensors.

        ``state`` maps each parameter name to its entries (``step``, ``exp_avg``, ...);
        [`split_state_dict`][functorch_lite.optim.split_state_dict] separates Tensors from JSON metadata for safetensors.
        """
        hp = {k: _jsonable(v) for k, v in self._hparams.items() if not callable(v)}
        scheduled = sorted(k for k, v in self._hparams.items() if callable(v))
        out: dict[str, Any] = {
            "format": STATE_DICT_FORMAT,
            "optimizer": type(self).__name__,
            "hyperparams": hp,
            "scheduled": scheduled,
            "step": self._count(),
            "params": {},
            "state": {},
            "globals": {},
        }
        if self._state is None:
            return out
        out["params"] = {
            k: {"shape": list(shape), "dtype": dtype.name} for k, (shape, dtype, _) in sorted(self._known.items())
        }
        per, glob = _walk(self._state)
        labels = _labels([loc for loc, _ in per])
        state: dict[str, dict[str, Any]] = {k: {} for k in out["params"]}
        for loc, d in per:
            for name, v in d.items():
                state.setdefault(name, {})[labels[loc]] = v
        out["state"] = state
        out["globals"] = {".".join(loc): v for loc, v in glob}
        return out

    def load_state_dict(self, state_dict: dict[str, Any], params: Params | None = None) -> None:
        """Restore a [`state_dict`][functorch_lite.optim.Optimizer.state_dict]; a mismatch raises StateDictError and changes nothing.

        The state is checked against ``params`` when given, else against the parameters
        this optimizer already knows, else at the first update.
        """
        name = type(self).__name__
        sd = state_dict
        if not isinstance(sd, dict) or sd.get("format") != STATE_DICT_FORMAT:
            raise StateDictError(
                f"{name}.load_state_dict: not an optimizer state dict of format {STATE_DICT_FORMAT!r}; "
                "pass what state_dict() (or join_state_dict) returned."
            )
        if sd.get("optimizer") != name:
            raise StateDictError(
                f"{name}.load_state_dict: the state dict was saved by {sd.get('optimizer')!r}, "
                f"not {name}; load it into an optimizer of that class."
            )
        known = _describe(_trainable(params)) if params is not None else dict(self._known)
        saved = {k: (tuple(v["shape"]), _dtype(v["dtype"], name)) for k, v in sd["params"].items()}
        if known:
            _verify_fit({k: (s, d, "") for k, (s, d) in saved.items()}, known, name)
        hp = dict(self._hparams)
        for k, v in sd["hyperparams"].items():
            if k not in hp:
                raise StateDictError(f"{name}.load_state_dict: unknown hyperparameter {k!r} in the state dict.")
            if k in sd["scheduled"] and callable(hp[k]):
                continue
            hp[k] = tuple(v) if isinstance(hp[k], tuple) else v
        tx = self._build(hp)
        if not saved:
            self._hparams, self._tx, self._state, self._known = hp, tx, None, {}
            return
        like = {k: _zeros(shape, dtype, known[k][2] if k in known else None) for k, (shape, dtype) in saved.items()}
        template = tx.init(like)
        state = _fill(template, sd, name)
        if state.count != sd["step"]:
            raise StateDictError(
                f"{name}.load_state_dict: step {sd['step']} disagrees with the saved count {state.count}."
            )
        new_known = {k: (shape, dtype, like[k].backend) for k, (shape, dtype) in saved.items()}
        self._hparams, self._tx, self._state, self._known = hp, tx, state, new_known
        self._verify_pending = not known


class StepCount(int):
    """``opt.step``: the number of updates so far, an int; calling it (PyTorch's ``opt.step()``) explains.

    It stays an int (comparisons, arithmetic, JSON, schedules) so code that reads the counter keeps
    working; only the PyTorch call ``opt.step()`` fails, with what to write instead.

    Example:
        >>> from functorch_lite import optim
        >>> opt = optim.SGD(lr=0.1)
        >>> opt.step == 0, opt.step + 1
        (True, 1)
    """

    owner: str

    def __new__(cls, count: int, owner: str = "Optimizer") -> StepCount:
        self = super().__new__(cls, count)
        self.owner = owner
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise PyTorchHabitError(
            f"{self.owner}.step is the number of updates made so far (an int, now {int(self)}), not a method. "
            "One optimizer step is opt.update(model, grads), with loss, grads = nn.value_and_grad(model, "
            "loss_fn)(x, y) (or new_params = opt.apply(params, grads) for a pytree of parameters); there is no "
            f"zero_grad() and no loss.backward(). See {COMING_FROM_PYTORCH}"
        )

    def __reduce__(self) -> Any:
        return (int, (int(self),))  # a checkpoint or copy holds a plain int


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _trainable(params: Params) -> dict[str, Tensor]:
    named = getattr(params, "named_parameters", None)
    if callable(named) and not isinstance(params, dict):
        return {k: v for k, v in named()}
    return flat(params, "params")


def _describe(p: dict[str, Tensor]) -> dict[str, tuple[tuple[int, ...], Any, str]]:
    return {k: (tuple(v.shape), v.dtype, v.backend) for k, v in p.items()}


def _verify_fit(
    state_side: dict[str, tuple[tuple[int, ...], Any, str]],
    model: dict[str, Any],
    name: str,
) -> None:
    for k, (shape, _, _) in state_side.items():
        if k not in model:
            raise StateDictError(
                f"{name}: optimizer state for parameter {k!r}, which the model does not have "
                f"(model parameters: {', '.join(repr(x) for x in list(model)[:6])}"
                f"{', ...' if len(model) > 6 else ''}); this state belongs to another model."
            )
        m = model[k]
        mshape = m[0] if isinstance(m, tuple) else tuple(m.shape)
        if tuple(mshape) != tuple(shape):
            raise StateDictError(
                f"{name}: optimizer state for {k!r} has shape {tuple(shape)} but the parameter has "
                f"shape {tuple(mshape)}; this state belongs to another model."
            )


def _merge(old: Any, new: Any) -> Any:
    """``new`` with every entry ``old`` has taken from ``old`` (extends a state with new params)."""
    if isinstance(old, PerParam):
        out = PerParam(new)
        out.update(old)
        return out
    if isinstance(old, tuple) and hasattr(old, "_fields"):
        return type(old)(*(_merge(o, n) for o, n in zip(old, new, strict=False)))
    if isinstance(old, (tuple, list)):
        return type(old)(_merge(o, n) for o, n in zip(old, new, strict=False))
    if isinstance(old, dict):
        return {k: _merge(old[k], new[k]) if k in new else old[k] for k in old}
    return old


def _walk(
    obj: Any, loc: tuple[str, ...] = ()
) -> tuple[list[tuple[tuple[str, ...], PerParam]], list[tuple[tuple[str, ...], Any]]]:
    per: list[tuple[tuple[str, ...], PerParam]] = []
    glob: list[tuple[tuple[str, ...], Any]] = []

    def go(o: Any, at: tuple[str, ...]) -> None:
        if isinstance(o, PerParam):
            per.append((at, o))
        elif isinstance(o, tuple) and hasattr(o, "_fields"):
            for f in o._fields:
                go(getattr(o, f), (*at, f))
        elif isinstance(o, (tuple, list)):
            for i, x in enumerate(o):
                go(x, (*at, str(i)))
        elif isinstance(o, dict):
            for k in o:
                go(o[k], (*at, str(k)))
        else:
            glob.append((at, o))

    go(obj, loc)
    return per, glob


def _labels(locs: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    last = [loc[-1] for loc in locs]
    return {loc: (loc[-1] if last.count(loc[-1]) == 1 else ".".join(loc)) for loc in locs}


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _dtype(name: str, where: str) -> Any:
    from .. import _dtypes as D

    for dt in D.ALL_DTYPES:
        if dt.name == name:
            return dt
    raise StateDictError(f"{where}.load_state_dict: unknown dtype {name!r} in the state dict.")


def _zeros(shape: tuple[int, ...], dtype: Any, backend: str | None) -> Tensor:
    z = ops.zeros(shape, dtype=dtype)
    if backend is not None and z.backend != backend:
        from .._namespace import to_backend

        z = to_backend(z, backend)
    return z


def _fill(template: Any, sd: dict[str, Any], where: str) -> Any:
    per, glob = _walk(template)
    labels = _labels([loc for loc, _ in per])
    expected: dict[str, set[str]] = {k: set() for k in sd["params"]}
    for loc, d in per:
        for k in d:
            expected[k].add(labels[loc])
    saved_state = sd["state"]
    problems = []
    for k, want in expected.items():
        got = set(saved_state.get(k, {}))
        if got != want:
            problems.append(f"{k!r}: missing {sorted(want - got)}, unexpected {sorted(got - want)}")
    extra = sorted(set(saved_state) - set(expected))
    if extra:
        problems.append(f"unexpected parameters {extra}")
    want_glob = {".".join(loc) for loc, _ in glob}
    got_glob = set(sd["globals"])
    if want_glob != got_glob:
        problems.append(f"globals: missing {sorted(want_glob - got_glob)}, unexpected {sorted(got_glob - want_glob)}")
    if problems:
        raise StateDictError(
            f"{where}.load_state_dict: the state dict does not fit this optimizer's state ("
            + "; ".join(problems)
            + "). It was saved with different settings or another optimizer."
        )

    def conv(value: Any, like: Any, what: str) -> Any:
        if isinstance(like, Tensor):
            t = value if isinstance(value, Tensor) else ops.asarray(value)
            if t.backend != like.backend:
                from .._namespace import to_backend

                t = to_backend(t, like.backend)
            if tuple(t.shape) != tuple(like.shape) or t.dtype != like.dtype:
                raise StateDictError(
                    f"{where}.load_state_dict: {what} has shape {tuple(t.shape)} and dtype {t.dtype.name}; "
                    f"expected shape {tuple(like.shape)} and dtype {like.dtype.name}."
                )
            return t
        if like is None or isinstance(value, type(like)):
            return tuple(value) if isinstance(like, tuple) else value
        if isinstance(like, bool):
            return bool(value)
        if isinstance(like, (int, float)) and isinstance(value, (int, float)):
            return type(like)(value)
        if isinstance(like, tuple):
            return tuple(value)
        raise StateDictError(
            f"{where}.load_state_dict: {what} is a {type(value).__name__}; expected {type(like).__name__}."
        )

    def go(o: Any, at: tuple[str, ...]) -> Any:
        if isinstance(o, PerParam):
            lab = labels[at]
            return PerParam({k: conv(saved_state[k][lab], v, f"state[{k!r}][{lab!r}]") for k, v in o.items()})
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            return type(o)(*(go(getattr(o, f), (*at, f)) for f in o._fields))
        if isinstance(o, (tuple, list)):
            return type(o)(go(x, (*at, str(i))) for i, x in enumerate(o))
        if isinstance(o, dict):
            return {k: go(v, (*at, str(k))) for k, v in o.items()}
        key = ".".join(at)
        return conv(sd["globals"][key], o, f"globals[{key!r}]")

    return go(template, ())


def optimizer_class(name: str, factory: Callable[..., GradientTransformation], example: str) -> type[Optimizer]:
    """A class optimizer whose constructor takes ``factory``'s arguments (PyTorch names and defaults)."""
    sig = inspect.signature(factory)

    def __init__(self: Optimizer, *args: Any, **kwargs: Any) -> None:
        first = args[0] if args else None
        if args and not isinstance(first, (int, float)) and (not callable(first) or hasattr(first, "named_parameters")):
            check_lr(args[0], name)  # PyTorch habit optim.Adam(model.parameters(), ...): explain
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
        bound.apply_defaults()
        Optimizer.__init__(self, **bound.arguments)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *sig.parameters.values()]
    __init__.__signature__ = sig.replace(parameters=params, return_annotation=None)  # type: ignore[attr-defined]
    doc = (
        f"The class form of [`{factory.__name__}`][functorch_lite.optim.{factory.__name__}]: same arguments, PyTorch's names and defaults.\n\n"
        f"    Example:\n{example}"
    )
    cls = type(name, (Optimizer,), {"__init__": __init__, "__doc__": doc, "factory": staticmethod(factory)})
    cls.__module__ = "functorch_lite.optim"
    return cls


def split_state_dict(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Separate an optimizer state dict into Tensors (for safetensors) and JSON-ready metadata.

    A checkpoint: ``tensors, meta = optim.split_state_dict(opt.state_dict())``, then
    ``nn.save(tensors, path, metadata={"optimizer": meta})``; to resume,
    ``t, m = nn.load(path, with_metadata=True)`` and
    ``opt.load_state_dict(optim.join_state_dict(t, m["optimizer"]), params=model)``.

    Example:
        >>> import json
        >>> import functorch_lite as fl
        >>> from functorch_lite import optim
        >>> opt = optim.Adam(lr=0.1)
        >>> _ = opt.apply({"w": fl.ones((2,))}, {"w": fl.ones((2,))})
        >>> tensors, meta = optim.split_state_dict(opt.state_dict())
        >>> sorted(tensors)
        ['state/w/exp_avg', 'state/w/exp_avg_sq']
        >>> opt.load_state_dict(optim.join_state_dict(tensors, json.loads(json.dumps(meta))))
    """
    tensors: dict[str, Tensor] = {}

    def go(o: Any, key: str) -> Any:
        if isinstance(o, Tensor):
            tensors[key] = o
            return {"__tensor__": key}
        if isinstance(o, dict):
            return {k: go(v, f"{key}/{k}" if key else k) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [go(v, f"{key}/{i}") for i, v in enumerate(o)]
        return o

    meta = go(state_dict, "")
    return tensors, meta


def join_state_dict(tensors: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """The inverse of [`split_state_dict`][functorch_lite.optim.split_state_dict] (arrays from any backend become Tensors).

    Example:
        >>> from functorch_lite import optim
        >>> optim.join_state_dict({}, {"step": 3})
        {'step': 3}
    """

    def go(o: Any) -> Any:
        if isinstance(o, dict):
            if set(o) == {"__tensor__"}:
                key = o["__tensor__"]
                if key not in tensors:
                    raise StateDictError(f"join_state_dict: the metadata names tensor {key!r}, which is missing.")
                v = tensors[key]
                return v if isinstance(v, Tensor) else ops.asarray(v)
            return {k: go(v) for k, v in o.items()}
        if isinstance(o, list):
            return [go(v) for v in o]
        return o

    return go(metadata)
