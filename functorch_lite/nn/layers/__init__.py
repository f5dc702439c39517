"""Layer modules of functorch_lite.nn (re-exported by ``functorch_lite.nn``)."""
