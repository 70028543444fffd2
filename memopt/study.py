"""The 12 MP pipeline study: every variant on every real scene at phone resolution, in one run.

For each variant (memopt.naming): convert the model at the variant's input size, benchmark the
.tflite alone (model-only figures: what benchmark_model reports on a phone), then run the whole
pipeline (``python -m memopt.pipeline_worker``: F uint8 frames in, one out) on every scene,
recording its peak memory and latency, and the output's RGB PSNR against the ground truth and
against the baseline's (``fp32``) output. Rows are written after each variant, so an interrupted
study resumes. Scene frames are resized to the study size in a scratch folder that is removed at
the end.
"""
from __future__ import annotations

import csv
import math
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text

STUDY_COLUMNS = ("variant", "model_hw", "quant", "model_peak_mb", "model_overall_delta_mb",
                 "model_inference_ms", "predicted_peak_mb", "pipeline_peak_mb", "pipeline_ms",
                 "psnr_gt", "psnr_vs_baseline", "scenes")


def _prepare(data, ev_tenths, height, width, scratch: Path, names=None) -> list[Path]:
    import cv2

    from memopt.data import scan_dataset
    from memopt.yuv import read_rgb
    from memopt.yuv import rgb_to_yuv420, write_yuv

    out = []
    for s in scan_dataset(data):
        if s.gt is None or (names and s.name not in names):
            continue
        d = scratch / s.name
        if not (d / "gt.yuv").exists():
            for ev, f in zip(ev_tenths, s.select(ev_tenths)):
                rgb = cv2.resize(read_rgb(f.path, None), (width, height), interpolation=cv2.INTER_AREA)
                write_yuv(d / f"ev{ev}.yuv", rgb_to_yuv420(rgb))
            rgb = cv2.resize(read_rgb(s.gt, None), (width, height), interpolation=cv2.INTER_AREA)
            write_yuv(d / "gt.yuv", rgb_to_yuv420(rgb))
        out.append(d)
    if not out:
        raise MemoptError(f"{data}: no scenes with ground truth to study")
    return out


def _pipeline(model: Path, frames: Sequence[Path], out: Path, variant, threads: int) -> dict:
    cmd = [sys.executable, "-m", "memopt.pipeline_worker", str(model), *map(str, frames), "-o", str(out),
           "--threads", str(threads)]
    if variant.tile:
        cmd += ["--halo", str(variant.tile.halo)]
    if variant.split:
        cmd += ["--split", variant.split.name]
    from memopt.bench import run_worker

    return run_worker(cmd, f"{variant.name}: pipeline", 3600.0)


def _rgb(path):
    from memopt.yuv import read_yuv, yuv420_to_rgb

    return yuv420_to_rgb(read_yuv(path))


def pipeline_study(model, data, variants: Sequence[str], out, height: int = 3024, width: int = 4032,
                   scenes: Sequence[str] | None = None, threads: int = 2, rep_data: Sequence[str] = (),
                   ev_tenths=None) -> list[dict]:
    """Run the study; returns the rows (STUDY_COLUMNS) and writes rows.csv and table.md to ``out``."""
    from tqdm import tqdm

    from memopt.bench import BenchConfig, bench_host
    from memopt.config import ModelConfig, recorded_evs
    from memopt.convert import ConvertConfig, convert_cached
    from memopt.evaluate import psnr
    from memopt.naming import parse_variant

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    evs = tuple(ev_tenths or recorded_evs(model) or ModelConfig().ev_tenths)
    parsed = [parse_variant(v) for v in variants]
    if "fp32" not in [v.name for v in parsed]:
        parsed.insert(0, parse_variant("fp32"))  # the baseline every row is compared with
    parsed.sort(key=lambda v: v.name != "fp32")
    table = out / "rows.csv"
    rows = list(csv.DictReader(open(table, newline=""))) if table.exists() else []
    done = {r["variant"] for r in rows}
    if all(v.name in done for v in parsed):
        return rows  # finished earlier: nothing to prepare or run
    scratch = out / "scratch"
    dirs = _prepare(data, evs, height, width, scratch, scenes)
    for v in tqdm(parsed, desc="study", unit="variant"):
        base_missing = any(not (d / "out-fp32.yuv").exists() for d in dirs)
        if v.name in done and not (v.name == "fp32" and base_missing):
            continue
        mh, mw = v.model_size(height, width)
        # Whole-frame calibration samples are heavy (12 MP each); tiles are cheap and need many.
        samples = 4 if (mh, mw) == (height, width) else 64
        path = convert_cached(model, ConvertConfig(mh, mw, v.quant, samples=samples), out / "models",
                              rep_data or (str(data),), evs)
        b = bench_host(path, BenchConfig(threads=threads, runs=2))
        peaks, times, p_gt, p_base = [], [], [], []
        for d in dirs:
            o = d / f"out-{v.name}.yuv"
            res = _pipeline(path, [d / f"ev{e}.yuv" for e in evs], o, v, threads)
            peaks.append(res["pipeline_peak_mb"])
            times.append(res["pipeline_ms"])
            got = _rgb(o)
            p_gt.append(psnr(got, _rgb(d / "gt.yuv")))
            p_base.append(psnr(got, _rgb(d / "out-fp32.yuv")))
            if v.name != "fp32":
                o.unlink()
        finite = [p for p in p_base if math.isfinite(p)]
        if not finite:
            vs_base = "identical"
        else:
            same = len(p_base) - len(finite)
            vs_base = f"{np.mean(finite):.2f}" + (f" ({same} identical)" if same else "")
        row = {"variant": v.name, "model_hw": f"{mh}x{mw}", "quant": v.quant,
               "model_peak_mb": b["peak_mb"], "model_overall_delta_mb": b["mem_overall_delta_mb"],
               "model_inference_ms": round(b["inference_avg_us"] / 1000, 1),
               "predicted_peak_mb": b["predicted_peak_mb"], "pipeline_peak_mb": max(peaks),
               "pipeline_ms": round(float(np.mean(times))), "psnr_gt": round(float(np.mean(p_gt)), 2),
               "psnr_vs_baseline": vs_base, "scenes": len(dirs)}
        order = {p.name: i for i, p in enumerate(parsed)}
        rows = sorted([r for r in rows if r["variant"] != v.name] + [row],
                      key=lambda r: order.get(r["variant"], len(order)))
        _write(rows, out)
    shutil.rmtree(scratch, ignore_errors=True)
    return rows


def _write(rows, out: Path) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=STUDY_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "rows.csv", buf.getvalue())
    lines = ["| variant | model input | model-only peak (MB) | model overall delta (MB) | predicted (MB) | "
             "pipeline peak (MB) | pipeline time (ms) | RGB PSNR vs GT (dB) | PSNR vs fp32 output (dB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['model_hw']} | {float(r['model_peak_mb']):.0f} | "
                     f"{float(r['model_overall_delta_mb']):.0f} | {float(r['predicted_peak_mb']):.0f} | "
                     f"{float(r['pipeline_peak_mb']):.0f} | {r['pipeline_ms']} | {r['psnr_gt']} | {r['psnr_vs_baseline']} |")
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
