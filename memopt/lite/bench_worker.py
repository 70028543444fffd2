"""The host benchmark's measuring process. Imports only the LiteRT runtime and numpy, never
TensorFlow (which alone costs ~900 MB of RSS), and prints one JSON object.

It measures what TFLite's benchmark_model measures (tensorflow/lite/tools/benchmark/
benchmark_model.cc): Init, First inference, Warmup (avg) and Inference (avg) in microseconds;
"memory footprint delta from the start of the tool" at init and overall, where the footprint is
the process's RSS high-water mark, as getrusage's ru_maxrss in profiling/memory_info.cc (read
here as VmHWM, see footprint_mb), and "the start" is after the runtime is imported,
before the model is loaded; and the overall peak from a thread that samples the footprint every
50 ms, as benchmark_model's --report_peak_memory_footprint does (an absolute figure, not a delta).

Usage: python -m memopt.lite.bench_worker MODEL --threads N --runs N --warmup N [--runtime tib|wcache|noxnn]
       [--weight-cache FILE]

The model runs through memopt.lite.runtime: LiteRT's CompiledModel with XNNPACK and its settings, or
the Interpreter's built-in kernels with XNNPACK off.
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


def has_loop(path) -> bool:
    """Whether the file has a WHILE op (an in-graph tile loop)."""
    from memopt.lite.predict import load_flatbuffer

    schema, model, _, _ = load_flatbuffer(path)
    return any(max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
               == schema.BuiltinOperator.WHILE for i in range(model.OperatorCodesLength()))


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
    p = argparse.ArgumentParser(prog="memopt.lite.bench_worker")
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--settle", type=int, default=16,
                   help="a model with a loop: at most this many more runs until the peak is steady (0: none)")
    p.add_argument("--runtime", default="", help="tib, wcache, tib-wcache or noxnn (memopt.lite.runtime)")
    p.add_argument("--weight-cache", help="XNNPACK weight cache file (wcache)")
    a = p.parse_args(argv)

    import numpy as np

    from memopt.errors import MemoptError
    from memopt.lite.runtime import LoadedModel, RuntimeConfig

    try:  # the runtime's libraries load before "the start of the tool", as benchmark_model's do
        import ai_edge_litert.compiled_model  # noqa: F401
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        pass  # LoadedModel says what to install

    try:
        rt = RuntimeConfig.from_name(a.runtime)
    except MemoptError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    loop = has_loop(a.model)
    runtime_mb = footprint_mb()
    monitor = PeakMonitor()
    monitor.start()
    start_mb = footprint_mb()
    t0 = time.perf_counter()
    try:
        # CompiledModel prepares XNNPACK lazily, at the first run: Init is small there, and the
        # first inference carries the setup (benchmark_model's Interpreter does it at Init).
        lm = LoadedModel(a.model, a.threads, rt, a.weight_cache)
    except MemoptError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    init_us = (time.perf_counter() - t0) * 1e6
    init_mb = footprint_mb()
    rng = np.random.default_rng(0)
    # Random inputs, as benchmark_model, made and written one at a time and straight in their dtype:
    # the process holds the runtime's buffers plus one input's array for a moment, never a second copy.
    for i, t in enumerate(lm.inputs):
        if np.issubdtype(t.dtype, np.integer):
            info = np.iinfo(t.dtype)
            x = rng.integers(info.min, info.max, t.shape, dtype=t.dtype, endpoint=True)
        else:
            x = rng.random(t.shape, dtype=np.float32)
            if x.dtype != t.dtype:
                x = x.astype(t.dtype)
        lm.set_input(i, x)
        del x

    def timed(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            lm.invoke()
            out.append((time.perf_counter() - t) * 1e6)
        return out

    warm = timed(max(1, a.warmup))
    runs = timed(a.runs) if a.runs > 0 else []
    # The peak a long benchmark_model run reports (50 runs or 150 s): a WHILE op frees and
    # allocates frame-sized buffers at every run, and under glibc (whose mmap threshold rises to the
    # size of a freed block) the peak climbs for several runs (measured on a 12 MP int8 loop: flat for
    # 3 runs, then +17.4 MB a run up to run 8: 171 -> 259 MB; flat with MALLOC_MMAP_THRESHOLD_ fixed).
    # A model with a loop runs on until 3 runs in a row leave the high-water mark where it was; the
    # timings stay those of the asked runs.
    extra, flat, last = 0, 0, footprint_mb()
    while loop and extra < a.settle and flat < 3:
        lm.invoke()
        extra, now = extra + 1, footprint_mb()
        flat, last = (flat + 1 if now - last < 1.0 else 0), now
    overall_mb = footprint_mb()
    peak_mb = monitor.stop()
    print(json.dumps({
        "init_us": round(init_us), "first_inference_us": round(warm[0]),
        "warmup_avg_us": round(float(np.mean(warm))),
        "inference_avg_us": round(float(np.mean(runs))) if runs else None,
        "mem_init_delta_mb": round(init_mb - start_mb, 2),
        "mem_overall_delta_mb": round(overall_mb - start_mb, 2),
        "peak_mb": round(peak_mb, 2), "runtime_mb": round(runtime_mb, 2),
        "threads": a.threads, "runs": len(runs), "warmup": len(warm), "settle_runs": extra, "xnnpack": rt.xnnpack,
        "runtime": rt.name, "xnnpack_flags": rt.xnnpack_flags, "api": lm.api,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
