"""Enhance one scene: F frames in (raw NV21/NV12 or images), one frame out (raw YUV or image)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from memopt.errors import MemoptError


def enhance_files(model, frame_paths: Sequence[str], out, width: int | None = None,
                  height: int | None = None, fmt: str | None = None, out_fmt: str | None = None,
                  threads: int | None = None) -> Path:
    """Run ``model`` (.keras / SavedModel / .tflite) on frames given in increasing-EV order.

    Frames named ``ev<N>.*`` are checked to be in increasing EV order. Returns the output path.
    """
    from memopt.contract import pack, unpack
    from memopt.runner import load_runner
    from memopt.yuv import read_frame, write_frame

    evs = [re.match(r"^ev([+-]?\d+)", Path(p).name.lower()) for p in frame_paths]
    if all(evs) and [int(m.group(1)) for m in evs] != sorted(int(m.group(1)) for m in evs):
        raise MemoptError("frames must be given in increasing-EV order, got "
                          + ", ".join(Path(p).name for p in frame_paths))
    runner = load_runner(model, threads=threads)
    if len(frame_paths) != runner.frames:
        raise MemoptError(f"the model takes {runner.frames} frames (increasing EV), got {len(frame_paths)}")
    frames = [read_frame(p, width=width, height=height, fmt=fmt) for p in frame_paths]
    result = unpack(runner(pack(frames)[None]))
    write_frame(out, result, out_fmt)
    return Path(out)
