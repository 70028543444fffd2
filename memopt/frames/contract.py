"""The model I/O contract every model memopt handles follows (the team's own included).

Input: one float32 tensor ``[N, H/2, W/2, 6*F]`` for F frames in increasing-EV order. Per frame,
six channels: the 2x2 space-to-depth of Y in ``tf.nn.space_to_depth`` order (y00, y01, y10, y11:
row-major inside each 2x2 block), then U and V at half resolution; all scaled to [0, 1] (/255).
Output: ``[N, H/2, W/2, 6]`` in the same packing, for the one enhanced frame.

These helpers are numpy-only so that runtime-side code never needs TensorFlow.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.frames.yuv import YUV420

CHANNELS_PER_FRAME = 6


def pack_frame(frame: YUV420, dtype=np.float32) -> np.ndarray:
    """One YUV420 frame -> ``[H/2, W/2, 6]``; float dtypes are scaled to [0, 1], uint8 kept."""
    h2, w2 = frame.height // 2, frame.width // 2
    out = np.empty((h2, w2, CHANNELS_PER_FRAME), dtype=dtype)
    # (H/2, dy, W/2, dx) -> (H/2, W/2, dy, dx): channel = 2*dy + dx, as tf.nn.space_to_depth.
    out[..., :4] = frame.y.reshape(h2, 2, w2, 2).transpose(0, 2, 1, 3).reshape(h2, w2, 4)
    out[..., 4] = frame.u
    out[..., 5] = frame.v
    if np.issubdtype(dtype, np.floating):
        out *= np.asarray(1.0 / 255.0, dtype=dtype)
    return out


def pack(frames: Sequence[YUV420], dtype=np.float32) -> np.ndarray:
    """F frames (increasing EV) -> ``[H/2, W/2, 6F]`` (no batch axis; add one with ``[None]``)."""
    if not frames:
        raise MemoptError("pack needs at least one frame")
    size = (frames[0].width, frames[0].height)
    for i, f in enumerate(frames):
        if (f.width, f.height) != size:
            raise MemoptError(f"frame {i} is {f.width}x{f.height}, frame 0 is {size[0]}x{size[1]}: "
                              "all frames of a scene must have the same size")
    return np.concatenate([pack_frame(f, dtype) for f in frames], axis=-1)


def unpack(tensor: np.ndarray) -> YUV420:
    """``[H/2, W/2, 6]`` (or ``[1, H/2, W/2, 6]``) in [0, 1] (float) or 0..255 (uint8) -> YUV420."""
    t = np.asarray(tensor)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise MemoptError(f"unpack takes one frame, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3 or t.shape[-1] != CHANNELS_PER_FRAME:
        raise MemoptError(f"output tensor has shape {t.shape}; the contract is [H/2, W/2, 6]")
    if t.dtype != np.uint8:
        t = np.clip(np.rint(t.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    h2, w2 = t.shape[:2]
    y = t[..., :4].reshape(h2, w2, 2, 2).transpose(0, 2, 1, 3).reshape(h2 * 2, w2 * 2)
    return YUV420(np.ascontiguousarray(y), np.ascontiguousarray(t[..., 4]),
                  np.ascontiguousarray(t[..., 5]))


def check_shapes(input_shape, output_shape, frames: int | None = None, source: str = "model") -> int:
    """Check a model's I/O shapes against the contract; return its frame count F.

    Shapes may hold None for dynamic axes. Raises MemoptError naming what is off.
    """
    ins, outs = tuple(input_shape), tuple(output_shape)
    if len(ins) != 4 or ins[-1] is None or ins[-1] % CHANNELS_PER_FRAME:
        raise MemoptError(f"{source}: input shape {ins} is off the I/O contract "
                          "[N, H/2, W/2, 6*F] (see docs/io-contract.md)")
    if len(outs) != 4 or outs[-1] != CHANNELS_PER_FRAME:
        raise MemoptError(f"{source}: output shape {outs} is off the I/O contract [N, H/2, W/2, 6]")
    f = ins[-1] // CHANNELS_PER_FRAME
    if frames is not None and f != frames:
        raise MemoptError(f"{source}: takes {f} frames, but {frames} were given")
    return f
