"""Enhance one scene: F frames in (raw NV21/NV12 or images), one frame out (raw YUV or image)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError


def enhance_files(model, frame_paths: Sequence[str], out, width: int | None = None,
                  height: int | None = None, fmt: str | None = None, out_fmt: str | None = None,
                  threads: int | None = None, halo: int | None = None, align: int = 8,
                  split: str | None = None, blend: str = "none", runtime: str | None = None,
                  layout=None, context: str | None = None) -> Path:
    """Run ``model`` (.keras / SavedModel / .tflite) on frames given in increasing-EV order.

    A fixed-shape .tflite smaller than the frames runs tile by tile (memopt.lite.tiling): its input is
    the window, ``halo`` px of it on each side are context (default 48: at least the baseline
    U-Net's 47 px receptive-field radius), ``align`` is the model's pooling grid. ``split``
    (``poly2``, ``guided2``, ...) runs it on lower-resolution pieces (memopt.lite.splitting).
    ``runtime`` (``tib``, ``wcache``, ``tib-wcache``, ``noxnn``) sets how LiteRT runs a .tflite
    (memopt.lite.runtime); a weight cache lives in the user cache folder (memopt.lite.runtime.default_cache_file).
    Frames named ``ev<N>.*`` are checked to be in increasing EV order. ``model`` may be a
    memopt.network.source.NetworkSource (any network through its tensor layout); a .tflite carries its
    layout, ``layout`` overrides it. A window model split at its global reductions (a .tflite
    converted with a ``stream`` / ``ctx<f>`` variant) gets its global values first: ``context``
    says how (``stream``, the default: exact; ``ctx4``: from a 4x smaller frame; memopt.lite.context).
    A file memopt deployed (``memopt pick``) says in its metadata how it must be run: its split, halo,
    context and runtime setting are the defaults here (memopt.lite.embed.run_settings).
    Returns the output path.
    """
    from memopt.frames.yuv import read_frame, write_frame
    from memopt.lite.context import with_context
    from memopt.lite.runner import load_runner, run_frames
    from memopt.lite.runtime import RuntimeConfig

    if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".tflite" and Path(model).is_file():
        from memopt.lite.embed import run_settings

        told = run_settings(model)  # a deployed file: how it was measured
        split = split if split is not None else told.get("split") or None
        context = context if context is not None else told.get("context") or None
        runtime = runtime if runtime is not None else told.get("runtime") or None
        halo = halo if halo is not None else told.get("halo")
    halo = 48 if halo is None else halo
    rt = RuntimeConfig.from_name(runtime)

    evs = [re.match(r"^ev([+-]?\d+)", Path(p).name.lower()) for p in frame_paths]
    if all(evs) and [int(m.group(1)) for m in evs] != sorted(int(m.group(1)) for m in evs):
        raise MemoptError("frames must be given in increasing-EV order, got "
                          + ", ".join(Path(p).name for p in frame_paths))
    is_tflite = isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".tflite"
    if rt.name and not is_tflite:
        raise MemoptError(f"--runtime {rt.name} sets how LiteRT runs a .tflite; {getattr(model, 'name', model)} is not one")
    runner = load_runner(model, threads=threads, runtime=rt, layout=layout)
    if len(frame_paths) != runner.frames:
        raise MemoptError(f"the model takes {runner.frames} frames (increasing EV), got {len(frame_paths)}")
    frames = [read_frame(p, width=width, height=height, fmt=fmt) for p in frame_paths]

    if split and runner.fixed_hw:  # a piece-sized model: the frame it serves is k times its input
        from memopt.lite.splitting import SplitConfig

        k = SplitConfig.parse(split).factor
        fh, fw = runner.fixed_hw
        h, w = frames[0].height, frames[0].width
        if (h // k, w // k) != (fh, fw):
            raise MemoptError(f"{getattr(model, 'name', model)}: this {split} model takes {fw * k}x{fh * k} frames "
                              f"(pieces of {fw}x{fh}), got {w}x{h}; make one for {w}x{h}: `memopt deploy RESULTS "
                              f"--size {h}x{w}` (the variant of a study, from its results folder)")
    file_evs = tuple(int(m.group(1)) for m in evs) if all(evs) else None
    try:
        runner = with_context(runner, frames, context, halo, align, runner.evs or file_evs, progress=True)
    except MemoptError as e:
        raise MemoptError(f"{getattr(model, 'name', model)}: {e}") from None

    def run(fs):
        try:
            return run_frames(runner, fs, halo, align, blend, evs=runner.evs or file_evs)
        except MemoptError as e:
            raise MemoptError(f"{getattr(model, 'name', model)}: {e}") from None

    if split:
        from memopt.lite.splitting import SplitConfig, enhance_split

        ref = int(np.argmin([abs(int(m.group(1))) for m in evs])) if all(evs) else len(frames) // 2
        result = enhance_split(run, frames, SplitConfig.parse(split), ref)
    else:
        result = run(frames)
    write_frame(out, result, out_fmt)
    return Path(out)
