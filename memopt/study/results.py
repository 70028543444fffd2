"""The study's result files: one JSON row per variant and device under rows/, results.csv with
fixed columns, and what a finished row carries (memory_mb and its basis, frame_ms, fits).

Both the table (memopt.study.report) and the pick (memopt.study.pick) read rows through here.
"""
from __future__ import annotations

import math
from pathlib import Path

RESULT_COLUMNS = (
    "variant", "device", "threads", "status", "reason", "fits", "memory_mb", "memory_basis",
    "model_peak_mb", "model_overall_delta_mb", "predicted_peak_mb", "pipeline_peak_mb",
    "model_inference_ms", "runs_per_frame", "frame_ms", "model_hw", "quant", "tile", "split", "context",
    "runtime", "xnnpack_flags", "params", "macs_per_mp", "file_mb", "gzip_mb", "quality_data", "scenes", "psnr_gt", "ssim_gt",
    "psnr_vs_baseline", "exact", "note", "frame_hw", "ev_tenths", "tflite",
)
QUALITY_COLUMNS = ("variant", "source", "scenes", "psnr_gt", "ssim_gt", "psnr_vs_baseline")


def num(x):
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f


def in_graph(r: dict) -> bool:
    """A row of an in-graph tile loop (``+ingraph``): one .tflite for the whole frame."""
    return "ingraph" in str(r.get("variant") or "").split("+")


def whole_frame(r: dict) -> bool:
    """The row's model runs once on the whole frame: the app needs no tile loop and no split (an empty
    cell may come as None, '' or, from pandas, NaN); an in-graph tile loop is such a model."""
    return in_graph(r) or not any(isinstance(r.get(k), str) and r.get(k) for k in ("tile", "split"))


def finish_row(r: dict, budget_mb: float) -> dict:
    """Add memory_mb / memory_basis / frame_ms / fits to a worker's row."""
    r = dict(r)
    if r.get("status") != "ok":
        r["fits"] = ""
        return r
    # a whole-frame model (an in-graph tile loop too): benchmark_model's figure is the pipeline's
    if not whole_frame(r) and num(r.get("pipeline_peak_mb")) is not None:
        r["memory_mb"], r["memory_basis"] = r["pipeline_peak_mb"], "pipeline"
    else:
        r["memory_mb"], r["memory_basis"] = r.get("model_peak_mb"), "model-only"
    if num(r.get("pipeline_ms")) is not None:
        r["frame_ms"] = r["pipeline_ms"]
    elif num(r.get("model_inference_ms")) is not None:
        r["frame_ms"] = round(float(r["model_inference_ms"]) * int(r.get("runs_per_frame") or 1))
    m = num(r.get("memory_mb"))
    r["fits"] = "yes" if m is not None and m <= budget_mb else "no"
    return r


def slug(name: str) -> str:
    return name.replace("+", "_")


def row_path(out: Path, variant: str, device: str) -> Path:
    return Path(out) / "rows" / f"{slug(variant)}@{device}.json"


def load_results(folder):
    """results.csv as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(folder) / "results.csv", keep_default_na=True)


def sort_key(r):
    psnr = num(r.get("psnr_gt"))
    return (r.get("status") != "ok", r.get("fits") != "yes", -(psnr if psnr is not None else -math.inf),
            num(r.get("frame_ms")) or math.inf)
