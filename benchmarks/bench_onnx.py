"""(10) The demo's digits CNN exported with fl.onnx.export: onnxruntime vs functorch_lite eager and jit.

The model is ``functorch_lite._demo.make_cnn()`` (the demo's CNN, eval mode), exported once
with a dynamic batch axis; each case computes the logits of the same inputs: one image
(latency) and the 360 test images (throughput). onnxruntime runs with one intra-op and one
inter-op thread, as every framework here. The baseline is functorch_lite eager; the first
call of fl.jit and the export itself are timed once and reported.
"""

from __future__ import annotations

# isort: skip_file
import _harness as H  # first: pins every framework to one thread

import os
import tempfile
import time


def main() -> None:
    fl = H.peer("functorch_lite")
    onnx = H.peer("onnx")
    ort = H.peer("onnxruntime")
    from sklearn.datasets import load_digits

    from functorch_lite._demo import make_cnn

    X, _ = load_digits(return_X_y=True)
    fl.random.manual_seed(0)
    model = make_cnn().eval()
    meta: dict = {}
    rows: list = []
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cnn.onnx")
        sess = None
        if onnx is not None and ort is not None:
            t0 = time.perf_counter()
            fl.onnx.export(
                model,
                (fl.asarray(H.f32(X[:2] / 16.0)),),
                path,
                input_names=["pixels"],
                dynamic_axes={"pixels": {0: "batch"}},
            )
            meta["export_s"] = time.perf_counter() - t0
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            t0 = time.perf_counter()
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            meta["ort_session_s"] = time.perf_counter() - t0
        for batch in (1, 360):
            x = H.f32(X[-batch:] / 16.0)
            xf = fl.asarray(x)
            ref = H.to_numpy(model(xf))
            jitted = fl.jit(lambda a: model(a))
            t0 = time.perf_counter()
            jitted(xf)
            meta[f"jit_first_call_s_batch{batch}"] = time.perf_counter() - t0
            cases = [
                H.Case("functorch_lite eager", lambda: model(xf)),
                H.Case("functorch_lite jit", lambda: jitted(xf)),
            ]
            if sess is not None:
                cases.append(H.Case("onnxruntime (fl.onnx.export)", lambda: sess.run(None, {"pixels": x})[0]))
            else:
                cases.append(H.Case("onnxruntime (fl.onnx.export)", lambda: None, error="onnx / onnxruntime missing"))
            cases = H.check_cases(cases, ref)
            H.measure(cases)
            group = f"batch {batch}"
            r = H.summarize(cases, "functorch_lite eager", group)
            H.print_table(f"digits CNN inference, {group}", r)
            rows += r
    meta["versions_onnxruntime"] = getattr(ort, "__version__", None)
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in meta.items()})
    H.emit("onnx", rows, **meta)


if __name__ == "__main__":
    main()
