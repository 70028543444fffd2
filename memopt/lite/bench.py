"""Benchmark a .tflite on the host: benchmark_model's figures, one row with fixed columns.

The measurement runs in a fresh ``python -m memopt.lite.bench_worker`` process that imports only the
LiteRT runtime and numpy (see bench_worker), so TensorFlow's own ~900 MB never lands in the
figures. Host rows and phone rows (memopt.lite.device) share ``ROW_COLUMNS``.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from memopt.errors import MemoptError
from memopt.lite.runtime import DEFAULT, RuntimeConfig

HOST_THREADS = 2  # this machine's cores
ROW_COLUMNS = (
    "model", "device", "threads", "xnnpack", "runtime", "xnnpack_flags", "api", "runs", "warmup", "settle_runs",
    "init_us", "first_inference_us", "warmup_avg_us", "inference_avg_us",
    "mem_init_delta_mb", "mem_overall_delta_mb", "peak_mb",
    "file_mb", "predicted_peak_mb", "prediction_error_pct",
)


@dataclass(frozen=True)
class BenchConfig:
    threads: int | None = None  # None: 2 on the host, the profile's on a phone
    runs: int = 10
    warmup: int = 1
    runtime: RuntimeConfig = DEFAULT  # XNNPACK on/off and its memory settings (memopt.lite.runtime)
    timeout_s: float = 1800.0

    @property
    def xnnpack(self) -> bool:
        return self.runtime.xnnpack

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.runs < 0 or self.warmup < 0:
            raise ValueError("runs and warmup must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout must be positive")


def bench_host(model, cfg: BenchConfig = BenchConfig(), predict: bool = True) -> dict:
    """Measure ``model`` in a fresh runtime-only process; returns one row (ROW_COLUMNS)."""
    from memopt.lite.embed import check_file

    p = Path(model)
    check_file(p)  # a missing or corrupt file fails here, before a process starts
    rt = cfg.runtime
    hint = "lower --runs or raise --timeout"

    def cmd(runs: int, cache: str | None = None) -> list[str]:
        return [sys.executable, "-m", "memopt.lite.bench_worker", str(p), "--threads", str(cfg.threads or HOST_THREADS),
                "--runs", str(runs), "--warmup", str(cfg.warmup), "--runtime", rt.name] \
            + (["--weight-cache", cache] if cache else [])

    if rt.weight_cache:
        import tempfile

        # The app's first start writes the cache; every later start maps it. Measure a later
        # start: one process writes the cache, a fresh one is measured.
        with tempfile.TemporaryDirectory(prefix="memopt-wcache-") as tmp:
            cache = str(Path(tmp) / f"{p.stem}.xnnpack_cache")
            run_worker(cmd(0, cache), f"{p}: writing the weight cache", cfg.timeout_s, hint, MODEL_ENV)
            res = run_worker(cmd(cfg.runs, cache), f"{p}: benchmark", cfg.timeout_s, hint, MODEL_ENV)
    else:
        res = run_worker(cmd(cfg.runs), f"{p}: benchmark", cfg.timeout_s, hint, MODEL_ENV)
    row = {k: res.get(k) for k in ROW_COLUMNS}
    row.update(model=str(p), device="host", file_mb=round(p.stat().st_size / 1e6, 3))
    if predict:
        add_prediction(row, p, cfg)
    return row


# glibc raises its mmap threshold to the size of each large block freed, after which blocks of that
# size come from the heap and the heap fragments: a WHILE op, which frees its body's arena at the end
# of every run (LiteRT tflite/kernels/while.cc: ReleaseMemory), then climbs by one output frame a run
# for several runs (a 12 MP int8 loop: 171 -> 259 MB over 8 runs). A phone's allocator maps and unmaps
# large blocks; a fixed threshold makes glibc do the same (full-frame models: the same peak, measured).
MODEL_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def run_worker(cmd: list[str], what: str, timeout_s: float, hint: str = "", env: dict | None = None) -> dict:
    """Run a measuring worker process and return the JSON object it prints last.

    A timeout, a crash (a negative return code: killed, e.g. by the OOM killer) or an error the
    worker reports each become one MemoptError naming ``what``.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise MemoptError(f"{what} did not finish in {timeout_s:.0f} s" + (f"; {hint}" if hint else "")) from None
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        why = "killed (out of memory?)" if r.returncode < 0 else (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise MemoptError(f"{what} process failed: {why[:300]}")
    res = json.loads(lines[-1])
    if "error" in res:
        raise MemoptError(res["error"])
    return res


def add_prediction(row: dict, path: Path, cfg: BenchConfig) -> None:
    """Fill predicted_peak_mb and prediction_error_pct (vs the measured peak)."""
    from memopt.lite.predict import predict

    pred = predict(path, runtime=cfg.runtime)
    row["predicted_peak_mb"] = round(pred.peak_mb, 1)
    if row.get("peak_mb"):
        row["prediction_error_pct"] = round(100.0 * (pred.peak_mb - row["peak_mb"]) / row["peak_mb"], 1)


def format_row(row: dict) -> str:
    """One line per figure, in benchmark_model's words."""
    def us(k):
        return "n/a" if row.get(k) is None else f"{row[k]:.0f}"
    out = [
        f"Model: {row['model']} ({row['file_mb']} MB) on {row['device']}, {row['threads']} threads, "
        f"XNNPACK {'on' if row['xnnpack'] else 'off'}"
        + (f", runtime {row['runtime']}" if row.get("runtime") else "")
        + (f" (xnnpack flags 0x{row['xnnpack_flags']:x})" if row.get("xnnpack_flags") else ""),
        f"Inference timings in us: Init: {us('init_us')}, First inference: {us('first_inference_us')}, "
        f"Warmup (avg): {us('warmup_avg_us')}, Inference (avg): {us('inference_avg_us')}",
        f"Memory footprint delta from the start of the tool (MB): init={row['mem_init_delta_mb']} "
        f"overall={row['mem_overall_delta_mb']}",
        f"Overall peak memory footprint (MB) via periodic monitoring: {row['peak_mb']}",
    ]
    if row.get("predicted_peak_mb") is not None:
        out.append(f"Predicted peak memory footprint (MB): {row['predicted_peak_mb']} "
                   f"(error {row.get('prediction_error_pct')} %)")
    return "\n".join(out)


def rows_to_csv(rows, columns=ROW_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def pipeline_run(model: Path, frames: Sequence[Path], out: Path, variant, threads: int) -> dict:
    """Run the whole pipeline (F uint8 frames in, one out) in a runtime-only process; its figures."""
    cmd = [sys.executable, "-m", "memopt.lite.pipeline_worker", str(model), *map(str, frames), "-o", str(out),
           "--threads", str(threads)]
    inside = variant.ingraph  # the file holds its tile loop and context passes
    if variant.tile and not inside:
        cmd += ["--halo", str(variant.tile.halo), "--align", str(variant.tile.align)]
    if variant.split:
        cmd += ["--split", variant.split.name]
    if variant.runtime.name:
        cmd += ["--runtime", variant.runtime.name]
    if variant.context and not inside:
        cmd += ["--context", variant.context.name]
    return run_worker(cmd, f"{variant.name}: pipeline", 3600.0)
