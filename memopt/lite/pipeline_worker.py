"""The end-to-end pipeline's measuring process: F uint8 frames in, one frame out, through a
.tflite (tiled when the model is smaller than the frames). Imports only LiteRT and numpy.
Prints one JSON object: peak memory of the whole process (VmHWM, MB), its delta from the start,
and the latency for the whole frame, reading and writing included.

Usage: python -m memopt.lite.pipeline_worker MODEL FRAME... -o OUT [--threads N] [--halo H] [--runtime R]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from memopt.lite.bench_worker import PeakMonitor, footprint_mb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="memopt.lite.pipeline_worker")
    p.add_argument("model")
    p.add_argument("frames", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--halo", type=int, default=48)
    p.add_argument("--align", type=int, default=8)
    p.add_argument("--split", help="poly<k> or guided<k>")
    p.add_argument("--blend", default="none")
    p.add_argument("--runtime", default="", help="tib, wcache, tib-wcache or noxnn (memopt.lite.runtime)")
    p.add_argument("--context", help="stream or ctx<f>: global values of a window model (memopt.lite.context)")
    a = p.parse_args(argv)

    from memopt.errors import MemoptError
    from memopt.lite.enhance import enhance_files

    monitor = PeakMonitor()
    monitor.start()
    start = footprint_mb()
    t0 = time.perf_counter()
    try:
        enhance_files(a.model, a.frames, a.output, threads=a.threads, halo=a.halo, align=a.align, split=a.split, blend=a.blend,
                      runtime=a.runtime, context=a.context)
    except MemoptError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    latency = time.perf_counter() - t0
    peak = monitor.stop()
    print(json.dumps({"pipeline_peak_mb": round(peak, 1), "pipeline_delta_mb": round(peak - start, 1),
                      "pipeline_ms": round(latency * 1000), "runtime_mb": round(start, 1),
                      "tensorflow_imported": "tensorflow" in sys.modules}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
