"""Core: Tensor, primitives, bind, the trace stack and pytrees."""
