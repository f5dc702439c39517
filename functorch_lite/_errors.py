"""The exception hierarchy of functorch_lite.

Each class subclasses the builtin that fits, so code that catches the builtin
keeps working. Messages name the op or argument, the constraint, the value
received and a fix.
"""

from __future__ import annotations

__all__ = [
    "FunctorchLiteError",
    "BackendError",
    "BackendMismatchError",
    "DTypeError",
    "ShapeError",
    "TransformError",
    "EscapedTracerError",
    "ConcretizationError",
    "LeakedGradientError",
    "NonScalarOutputError",
    "BatchAxisError",
    "RandomnessError",
    "DataDependentShapeError",
    "TreeMismatchError",
    "CheckpointError",
    "StateDictError",
    "ConfigError",
    "ControlFlowError",
    "ExportError",
    "CompilerError",
    "PyTorchHabitError",
]


class FunctorchLiteError(Exception):
    """Base class of every error functorch_lite raises on purpose."""


class BackendError(FunctorchLiteError, ValueError):
    """An unknown, uninstalled or unusable array backend."""


class BackendMismatchError(FunctorchLiteError, TypeError):
    """Arrays of two different backends met in one op."""


class DTypeError(FunctorchLiteError, TypeError):
    """An unsupported dtype or dtype combination."""


class ShapeError(FunctorchLiteError, ValueError):
    """Shapes that do not broadcast, multiply or match."""


class TransformError(FunctorchLiteError, ValueError):
    """Bad arguments to a transform (argnums, in_axes, has_aux, cotangents)."""


class EscapedTracerError(FunctorchLiteError, RuntimeError):
    """A tracer was used after the transform that made it returned."""


class ConcretizationError(TransformError):
    """A traced value with no concrete data was used where Python needs one (under jit or
    make_program: ``bool(x)``, ``float(x)``, ``.item()``, ``if x > 0``)."""


class LeakedGradientError(TransformError):
    """A tracer that carries a gradient or tangent was exported out of the graph
    (``np.asarray(t)``, ``t.__array__()``, ``t.__dlpack__()``), which would drop its derivative."""


class NonScalarOutputError(TransformError):
    """grad / value_and_grad of a function whose output is not a scalar."""


class BatchAxisError(TransformError):
    """vmap axis sizes that disagree, or in_axes / out_axes that do not fit."""


class RandomnessError(FunctorchLiteError, RuntimeError):
    """A random op under vmap(randomness="error")."""


class DataDependentShapeError(FunctorchLiteError, RuntimeError):
    """An op whose output shape depends on values, used under vmap."""


class TreeMismatchError(FunctorchLiteError, ValueError):
    """Two pytrees that should have one structure do not."""


class ControlFlowError(TransformError):
    """A control-flow primitive (cond, switch, while_loop, fori_loop, scan, map) got bodies or
    operands that do not fit: a carry whose structure, shape or dtype changes, branches that
    return different structures, a predicate that is not a boolean scalar."""


class ExportError(TransformError):
    """A program that cannot be saved, loaded or exported: a primitive or param a format cannot
    express (a Python callable, an opaque object), a path that cannot be written, or a file of
    another format or a newer format version."""


class CompilerError(TransformError):
    """A ``jit`` compiler that does not exist, does not fit the program's backend, is not
    installed, or cannot compile this program."""


class ConfigError(FunctorchLiteError, ValueError):
    """An invalid setting (learning rate, betas, layer sizes, ...)."""


class StateDictError(FunctorchLiteError, KeyError):
    """Missing, unexpected or misshapen keys in a state dict."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


CheckpointError = StateDictError


COMING_FROM_PYTORCH = "docs/coming-from-pytorch.md#gradients-without-backward"
"""The page (and section) that PyTorchHabitError messages link."""


class PyTorchHabitError(FunctorchLiteError, AttributeError, TypeError):
    """A PyTorch spelling with no counterpart here (``loss.backward()``, ``x.grad``,
    ``opt.zero_grad()``, ``opt.step()``); the message says what to write instead. It is an
    AttributeError, so ``hasattr(x, "grad")`` stays False, and a TypeError, what calling the
    int ``opt.step`` raised before."""
