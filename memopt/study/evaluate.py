"""Quality testing: a model against ground truth, next to the reference rows on the same frames.

Rows per scene:
  ``model``      the network's output (YUV 4:2:0 -> RGB)
  ``middle``     the frame nearest EV 0, as is
  ``mertens``    OpenCV's Mertens exposure fusion of the same frames the model gets
  ``mertens-all`` Mertens of every frame of the scene (optional; an upper reference)
  ``gt-yuv420``  the ground truth through YUV 4:2:0 and back: the ceiling the 4:2:0 output format
                 itself sets on RGB PSNR
Metrics: RGB PSNR and Y PSNR (BT.601 luma) in dB on 0..255, and SSIM on RGB (scikit-image,
Gaussian-weighted as in Wang et al. 2004).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError

METRIC_COLUMNS = ("psnr_rgb", "psnr_y", "ssim")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB; inf for identical images; shapes must match."""
    if a.shape != b.shape:
        raise MemoptError(f"PSNR of images of different shapes {a.shape} and {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    if a.shape != b.shape:
        raise MemoptError(f"SSIM of images of different shapes {a.shape} and {b.shape}")
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def metrics(out_rgb: np.ndarray, gt_rgb: np.ndarray) -> dict[str, float]:
    from memopt.frames.yuv import rgb_to_luma

    return {"psnr_rgb": psnr(out_rgb, gt_rgb), "psnr_y": psnr(rgb_to_luma(out_rgb), rgb_to_luma(gt_rgb)),
            "ssim": ssim(out_rgb, gt_rgb)}


def mertens(frames_rgb: Sequence[np.ndarray]) -> np.ndarray:
    import cv2

    fused = cv2.createMergeMertens().process([np.ascontiguousarray(f[..., ::-1]) for f in frames_rgb])
    return np.clip(np.rint(fused[..., ::-1] * 255.0), 0, 255).astype(np.uint8)


def enhance_rgb(runner, frames_rgb: Sequence[np.ndarray], halo: int = 48, evs=None) -> np.ndarray:
    """Run a contract model on RGB frames (via YUV 4:2:0) and return RGB. A fixed-shape model
    smaller than the frames (a tile .tflite) runs tile by tile with ``halo``."""
    from memopt.frames.yuv import rgb_to_yuv420, yuv420_to_rgb
    from memopt.lite.runner import run_frames

    return yuv420_to_rgb(run_frames(runner, [rgb_to_yuv420(f) for f in frames_rgb], halo, progress=False, evs=evs))


def evaluate(model, data: str, ev_tenths: Sequence[int], long_side: int | None = None,
             scenes: Sequence[str] | None = None, mertens_all: bool = False, halo: int = 48):
    """Per-scene metrics as a pandas DataFrame (columns: scene, method, psnr_rgb, psnr_y, ssim).

    Args:
        model: a path (.keras / SavedModel / .tflite), a loaded Runner, or None for reference rows only.
        data: dataset folder (see memopt.frames.data).
        ev_tenths: which exposures to feed (tenths of a stop, increasing).
        long_side: evaluate at this size (px, long side), e.g. 1024; None: full size.
        scenes: only these scene names.
        mertens_all: add the Mertens-of-all-frames row.
        halo: for a tile .tflite smaller than the scenes, the halo of its tiles (px).
    """
    import pandas as pd
    from tqdm import tqdm

    from memopt.frames.data import scan_dataset
    from memopt.frames.yuv import read_rgb, rgb_to_yuv420, yuv420_to_rgb
    from memopt.lite.runner import load_runner
    from memopt.network.source import NetworkSource

    runner = load_runner(model) if isinstance(model, (str, Path, NetworkSource)) else model
    if runner is not None and runner.frames != len(ev_tenths):
        raise MemoptError(f"the model takes {runner.frames} frames but {len(ev_tenths)} EVs were "
                          f"given ({list(ev_tenths)}, tenths of a stop); pass --ev to match")
    all_scenes = [s for s in scan_dataset(data) if s.gt is not None]
    if scenes:
        unknown = sorted(set(scenes) - {s.name for s in all_scenes})
        if unknown:
            raise MemoptError(f"scene(s) {', '.join(unknown)} not in {data} (or without ground truth)")
        all_scenes = [s for s in all_scenes if s.name in set(scenes)]
    if not all_scenes:
        raise MemoptError(f"{data}: no scene has a ground truth to test against")
    rows = []
    ref = int(np.argmin(np.abs(np.asarray(ev_tenths))))
    for s in tqdm(all_scenes, desc="test", unit="scene", leave=False):
        chosen = s.select(ev_tenths)
        frames = [read_rgb(f.path, long_side) for f in chosen]
        gt = read_rgb(s.gt, long_side)
        shapes = {f.shape for f in frames} | {gt.shape}
        if len(shapes) > 1:
            raise MemoptError(f"scene {s.name}: frames and ground truth differ in size {sorted(shapes)}")
        outs = {"middle": frames[ref], "mertens": mertens(frames),
                "gt-yuv420": yuv420_to_rgb(rgb_to_yuv420(gt))}
        if runner is not None:
            outs["model"] = enhance_rgb(runner, frames, halo, tuple(ev_tenths))
        if mertens_all:
            outs["mertens-all"] = mertens([read_rgb(f.path, long_side) for f in s.frames])
        for method, img in outs.items():
            rows.append({"scene": s.name, "method": method, **metrics(img, gt)})
    return pd.DataFrame(rows)


METHOD_ORDER = ("model", "middle", "mertens", "mertens-all", "gt-yuv420")


def summarize(per_scene):
    """Mean of each metric per method, in a fixed row order, with the scene count."""
    g = per_scene.groupby("method")
    summary = g[list(METRIC_COLUMNS)].mean()
    summary["scenes"] = g.size()
    known = [m for m in METHOD_ORDER if m in summary.index]
    extra = sorted(m for m in summary.index if m not in METHOD_ORDER)  # variants scored by crossval
    order = known[:1] + extra + known[1:] if "model" in known else extra + known
    return summary.loc[order].reset_index()


def format_table(summary) -> str:
    """A Markdown table of the summary."""
    buf = io.StringIO()
    buf.write("| method | RGB PSNR (dB) | Y PSNR (dB) | SSIM | scenes |\n|---|---:|---:|---:|---:|\n")
    for r in summary.itertuples(index=False):
        buf.write(f"| {r.method} | {r.psnr_rgb:.2f} | {r.psnr_y:.2f} | {r.ssim:.4f} | {r.scenes} |\n")
    return buf.getvalue()
