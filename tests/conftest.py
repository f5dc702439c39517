"""Test configuration: hypothesis profiles and the backend under test.

The suite runs once on the default backend (numpy) and once with
``FUNCTORCH_LITE_BACKEND=array_api_strict``; ``HYPOTHESIS_PROFILE=thorough``
draws more examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast",
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile(
    "thorough",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

BACKEND = os.environ.get("FUNCTORCH_LITE_BACKEND", "numpy")

if BACKEND == "jax":
    # The suite's oracles and many of its cases are float64; jax has float64 only in x64 mode
    # (without it the backend raises DTypeError rather than silently computing in float32).
    # It must be set before jax is imported.
    os.environ.setdefault("JAX_ENABLE_X64", "1")
