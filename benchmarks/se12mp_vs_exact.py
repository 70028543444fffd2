"""The se-12mp study's "PSNR vs exact" column and its float32-mean finding (docs/global-context.md).

After `make se-12mp`, runs the study's window .tflite files through `memopt enhance` on each of
its 12 MP scenes (exact streaming, ctx4/16/64, plain tiles, int8) and prints each output's PSNR
against the streamed (exact) output and against the fp32 full-frame output the run kept; then
compares the illumination branch's global mean as float32 frameworks compute it with the float64
mean and with the streamed value.

    TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/se12mp_vs_exact.py [results/se-12mp]
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROWS = (("stream", "tile512h40_gctx.tflite", "stream"), ("ctx4", "tile512h40_gctx.tflite", "ctx4"),
        ("ctx16", "tile512h40_gctx.tflite", "ctx16"), ("ctx64", "tile512h40_gctx.tflite", "ctx64"),
        ("approx", "tile512h40-approx.tflite", None), ("int8-stream", "int8_tile512h40_gctx.tflite", "stream"),
        ("int8-ctx16", "int8_tile512h40_gctx.tflite", "ctx16"))
EVS = (-20, 0, 10)


def main(run: Path) -> None:
    from memopt.frames.yuv import read_frame, read_rgb
    from memopt.lite.context import ContextConfig, global_values
    from memopt.lite.enhance import enhance_files
    from memopt.lite.runner import load_runner
    from memopt.study.evaluate import psnr

    scenes = sorted(p.parent for p in (run / "scratch").glob("**/gt.yuv"))
    res: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d in scenes:
            paths = [d / f"ev{e}.yuv" for e in EVS]
            outs = {}
            for label, model, ctx in ROWS:
                o = Path(tmp) / f"{label}.yuv"
                enhance_files(str(run / "models" / model), paths, o, 4032, 3024, halo=40, context=ctx)
                outs[label] = read_rgb(o)
            fp32 = read_rgb(d / "out-fp32.yuv")
            for k, v in outs.items():
                res.setdefault(k, []).append((psnr(v, outs["stream"]) if k != "stream" else np.inf, psnr(v, fp32)))
    for k, v in res.items():
        a = np.array(v)
        print(f"{k:12s} vs exact {np.mean(a[:, 0]):6.2f} dB   vs fp32 full frame {np.mean(a[:, 1]):6.2f} dB")
    # The light branch's mean over 12 M pixels per channel: float32 frameworks vs float64 vs streamed.
    frames = [read_frame(scenes[0] / f"ev{e}.yuv", width=4032, height=3024) for e in EVS]
    ys = np.stack([f.y.astype(np.float32) / 255 for f in frames], -1)
    r = load_runner(run / "models" / "tile512h40_gctx.tflite")
    streamed = global_values(r, frames, ContextConfig("stream"), 40, 8, EVS)[[v.layer for v in r.context].index("light_pool")]
    import tensorflow as tf

    print("light_pool mean, float32 tf.reduce_mean:", tf.reduce_mean(ys[None], axis=[1, 2]).numpy().ravel())
    print("light_pool mean, float64:               ", ys.astype(np.float64).mean(axis=(0, 1)))
    print("light_pool mean, streamed (memopt):     ", streamed.ravel())


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/se-12mp"))
