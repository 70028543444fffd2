"""Global context for windows and pieces of a network that looks at the whole frame.

A network with global reductions (squeeze-excitation, a global illumination branch) converted as
a window model (memopt.network.context: each reduction's value is an extra input, each reduced
tensor an extra output) is run in two steps: first its global values, then the output pass over
the windows with those values fed to every window. Two ways to get the values (variant parts):

- ``stream`` (exact streaming): values of level 0 are accumulated over the window cores in one
  pass (each core's part of the reduced tensor, at that tensor's resolution: a sum or a max),
  then level 1 with level 0 fixed, and so on: K levels cost K extra passes over the windows.
  With a halo covering the window model's receptive field and a frame on the alignment, every
  value equals the full frame's up to float rounding, so the output does too.
- ``ctx<f>`` (low-resolution context): the same streaming on the frame box-averaged by f, one
  window or a few: one small extra pass per level, approximate (a mean over a smaller frame
  is close to the mean; a max is lower). Splitting variants (``poly2+ctx2``) use it: their pieces
  are not the frame either.

Imports numpy (and OpenCV for the downscale) only: it runs in the pipeline's runtime process.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.lite.tiling import TileConfig, _starts

_NAME = re.compile(r"^(?:(stream)|ctx(\d+))$")


@dataclass(frozen=True)
class ContextConfig:
    mode: str = "stream"   # stream | lowres
    factor: int = 4        # lowres: the frame is box-averaged by this factor

    def __post_init__(self):
        if self.mode not in ("stream", "lowres"):
            raise ValueError(f"unknown context mode {self.mode!r}; known: stream, lowres (ctx<f>)")
        if self.mode == "lowres" and not 2 <= self.factor <= 64:
            raise ValueError(f"the low-resolution factor must be in 2..64, got {self.factor}")

    @property
    def name(self) -> str:
        return "stream" if self.mode == "stream" else f"ctx{self.factor}"

    file_name = "gctx"  # both modes run the same window .tflite (split at its global reductions)

    @classmethod
    def parse(cls, part: str) -> "ContextConfig | None":
        if not (part == "stream" or part.startswith("ctx")):
            return None
        m = _NAME.match(part)
        if not m:
            raise ValueError("global context is 'stream' (exact, extra passes) or ctx<f> (from the frame "
                             "box-averaged by f, e.g. ctx4)")
        return cls("stream") if m.group(1) else cls("lowres", int(m.group(2)))


def _axis(length: int, size: int, halo: int, align: int) -> list[tuple[int, int, int]]:
    """(window start, core start, core end) along one axis; one window when the axis is shorter."""
    padded = -(-length // align) * align
    if padded <= size:
        return [(0, 0, padded)]
    return _starts(padded, size - 2 * halo, halo, size)


def context_grid(h: int, w: int, window: tuple[int, int], halo: int, align: int) -> list[tuple[int, ...]]:
    """The windows a context pass walks over an h x w frame: (wy, wx, cy0, cy1, cx0, cx1); the halo
    only along an axis longer than the window."""
    th, tw = window
    return [(wy, wx, cy0, cy1, cx0, cx1) for wy, cy0, cy1 in _axis(h, th, halo if h > th else 0, align)
            for wx, cx0, cx1 in _axis(w, tw, halo if w > tw else 0, align)]


def _reduce(acc, x: np.ndarray, how: str):
    if how in ("mean", "sum"):
        s = x.sum(axis=(1, 2), dtype=np.float64)
        return s if acc is None else acc + s
    r = x.max(axis=(1, 2)) if how == "max" else x.min(axis=(1, 2))
    return r if acc is None else (np.maximum(acc, r) if how == "max" else np.minimum(acc, r))


def stream_values(fn: Callable, values, n_out: int, layout, frames: Sequence, evs, window: tuple[int, int],
                  halo: int, align: int, progress: bool = False, area_scale: float = 1.0) -> list[np.ndarray]:
    """Every global value of the window model ``fn`` over ``frames`` (see the module doc), level by
    level. ``values``: memopt.network.values.GlobalValue list; ``window``: the model's (H, W)."""
    from memopt.network.layout import call
    from memopt.network.values import reduced_tensors

    h, w = frames[0].height, frames[0].width
    th, tw = window
    for v in values:
        if align % v.scale:
            raise MemoptError(f"the window grid ({align} px) does not fit {v.layer}'s tensor at 1/{v.scale}: windows "
                              f"and halos must be multiples of {v.scale}")
    grid = context_grid(h, w, window, halo, align)
    got = [np.zeros(v.shape, np.float32) for v in values]
    levels = sorted({v.level for v in values})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(grid) * len(levels), desc="global context", unit="window", leave=False)
    for level in levels:
        idx = [i for i, v in enumerate(values) if v.level == level]
        acc: dict[int, object] = {i: None for i in idx}
        count = {i: 0 for i in idx}
        for wy, wx, cy0, cy1, cx0, cx1 in grid:
            ins = layout.window_inputs(frames, evs, wy, wx, th, tw)[0]
            # values that reduce a network input read the window's tensor: no model run for them
            outs = ins if all(values[i].input >= 0 for i in idx) else call(fn, ins + got)
            xs = reduced_tensors(values, ins, outs, n_out)
            for i in idx:
                s, x = values[i].scale, np.asarray(xs[i])
                core = x[:, (cy0 - wy) // s:(min(cy1, h) - wy) // s, (cx0 - wx) // s:(min(cx1, w) - wx) // s]
                if core.shape[1] and core.shape[2]:  # a core clipped at the frame's end may hold no element
                    acc[i] = _reduce(acc[i], core, values[i].reduce)
                    count[i] += core.shape[1] * core.shape[2]
            if bar is not None:
                bar.update(1)
        for i in idx:
            r = np.asarray(acc[i], np.float64)
            if values[i].reduce == "mean":
                r = r / max(count[i], 1)
            elif values[i].reduce == "sum":
                r = r * area_scale
            got[i] = r.astype(np.float32).reshape(values[i].shape)
    if bar is not None:
        bar.close()
    return got


def _lowres(frames: Sequence, k: int, step: int):
    """The whole frames area-averaged to about 1/k (each side a multiple of ``step``, which the layout
    needs), and the ratio of the frame's area to theirs (what a ``sum`` value scales by)."""
    import cv2

    from memopt.frames.yuv import YUV420

    h, w = frames[0].height, frames[0].width
    lh, lw = (max(step, round(n / k / step) * step) for n in (h, w))

    def shrink(p, ph, pw):
        return cv2.resize(np.ascontiguousarray(p), (pw, ph), interpolation=cv2.INTER_AREA)

    small = [YUV420(shrink(f.y, lh, lw), shrink(f.u, lh // 2, lw // 2), shrink(f.v, lh // 2, lw // 2)) for f in frames]
    return small, (h * w) / (lh * lw)


def global_values(runner, frames: Sequence, cfg: ContextConfig, halo: int, align: int, evs=None,
                  progress: bool = False) -> list[np.ndarray]:
    """The global values ``runner`` (memopt.lite.runner.Runner of a window model) needs for ``frames``."""
    values, n_out = runner.context, len(runner.layout.outputs)
    window = tuple(runner.fixed_hw or (frames[0].height, frames[0].width))
    if cfg.mode == "stream":
        return stream_values(runner.fn, values, n_out, runner.layout, frames, evs, window, halo, align, progress)
    small, area = _lowres(frames, cfg.factor, runner.layout.step)
    return stream_values(runner.fn, values, n_out, runner.layout, small, evs, window, halo, align, progress, area)


def with_context(runner, frames: Sequence, spec: str | None, halo: int, align: int, evs=None,
                 progress: bool = False):
    """``runner`` ready for ``frames``: a window model's global values computed (``spec``: stream,
    the default, or ctx<f>) and bound; a plain model as it is (a ``spec`` for it is an error)."""
    import math

    if not runner.context:
        if spec:
            raise MemoptError(f"--context {spec}: the model takes no global values (convert it with a stream / "
                              "ctx<f> variant)")
        return runner
    try:
        cfg = ContextConfig.parse(spec or "stream")
    except ValueError as e:
        raise MemoptError(f"--context {spec}: {e}") from None
    if cfg is None:
        raise MemoptError(f"--context {spec}: expected stream or ctx<f> (ctx4)")
    align = math.lcm(runner.alignment or align, runner.layout.step)
    fixed = runner.fixed_hw
    if fixed and fixed[0] == fixed[1] and tuple(fixed) != (frames[0].height, frames[0].width):
        try:  # the tile loop's own checks, before any pass over the frame
            TileConfig(fixed[0], halo, align)
        except ValueError as e:
            raise MemoptError(f"{e} (halo {halo} px)") from None
    return bind(runner, global_values(runner, frames, cfg, halo, align, evs, progress))


def bind(runner, values: list[np.ndarray]):
    """The runner with ``values`` fed beside the network's tensors: a plain network runner again."""
    from dataclasses import replace

    fn, n_out = runner.fn, len(runner.layout.outputs)

    def run(x):
        xs = x if isinstance(x, list) else [x]
        out = fn(list(xs) + list(values))
        out = out if isinstance(out, (list, tuple)) else [out]
        return out[0] if n_out == 1 else list(out[:n_out])

    return replace(runner, fn=run, context=())
