"""The host benchmark's measuring process. Imports only the LiteRT runtime and numpy, never
TensorFlow (which alone costs ~900 MB of RSS), and prints one JSON object.

It measures what TFLite's benchmark_model measures (tensorflow/lite/tools/benchmark/
benchmark_model.cc): Init, First inference, Warmup (avg) and Inference (avg) in microseconds;
"memory footprint delta from the start of the tool" at init and overall, where the footprint is
the process's RSS high-water mark, as getrusage's ru_maxrss in profiling/memory_info.cc (read
here as VmHWM, see footprint_mb), and "the start" is after the runtime is imported,
before the model is loaded; and the overall peak from a thread that samples the footprint every
50 ms, as benchmark_model's --report_peak_memory_footprint does (an absolute figure, not a delta).

Usage: python -m memopt.bench_worker MODEL --threads N --runs N --warmup N [--no-xnnpack]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time


def footprint_mb() -> float:
    """The process's RSS high-water mark in MB: what ru_maxrss reports for benchmark_model.

    Read as VmHWM from /proc/self/status, not from getrusage: Linux carries ru_maxrss over
    fork+exec, so a worker started by a process holding TensorFlow would inherit ~900 MB in its
    ru_maxrss; VmHWM belongs to the new address space and starts fresh at exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class PeakMonitor(threading.Thread):
    """Samples the footprint every ``interval`` seconds (benchmark_model's default: 50 ms)."""

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.interval, self.peak, self._halt = interval, footprint_mb(), threading.Event()

    def run(self):
        while not self._halt.wait(self.interval):
            self.peak = max(self.peak, footprint_mb())

    def stop(self) -> float:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, footprint_mb())
        return self.peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="memopt.bench_worker")
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-xnnpack", action="store_true")
    a = p.parse_args(argv)

    import numpy as np

    from memopt.runner import load_interpreter_class

    Interpreter = load_interpreter_class()
    kwargs = {}
    if a.no_xnnpack:  # the built-in kernels only, as benchmark_model --use_xnnpack=false
        from ai_edge_litert.interpreter import OpResolverType

        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    runtime_mb = footprint_mb()
    monitor = PeakMonitor()
    monitor.start()
    start_mb = footprint_mb()
    t0 = time.perf_counter()
    try:
        interp = Interpreter(model_path=a.model, num_threads=a.threads, **kwargs)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        print(json.dumps({"error": f"{a.model}: not a loadable .tflite model ({str(e).splitlines()[0][:200]})"}))
        return 2
    init_us = (time.perf_counter() - t0) * 1e6
    init_mb = footprint_mb()
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():  # random inputs, as benchmark_model
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, d["shape"], dtype=d["dtype"], endpoint=True)
        else:
            x = rng.random(d["shape"], dtype=np.float32).astype(d["dtype"])
        interp.set_tensor(d["index"], x)
        del x

    def timed(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            interp.invoke()
            out.append((time.perf_counter() - t) * 1e6)
        return out

    warm = timed(max(1, a.warmup))
    runs = timed(a.runs) if a.runs > 0 else []
    overall_mb = footprint_mb()
    peak_mb = monitor.stop()
    print(json.dumps({
        "init_us": round(init_us), "first_inference_us": round(warm[0]),
        "warmup_avg_us": round(float(np.mean(warm))),
        "inference_avg_us": round(float(np.mean(runs))) if runs else None,
        "mem_init_delta_mb": round(init_mb - start_mb, 2),
        "mem_overall_delta_mb": round(overall_mb - start_mb, 2),
        "peak_mb": round(peak_mb, 2), "runtime_mb": round(runtime_mb, 2),
        "threads": a.threads, "runs": len(runs), "warmup": len(warm), "xnnpack": not a.no_xnnpack,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
