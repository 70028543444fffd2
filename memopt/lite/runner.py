"""Run any model through its tensor layout: .keras / SavedModel / builder (TensorFlow) or .tflite
(LiteRT only).

``load_runner(path)`` returns a ``Runner``: ``runner.enhance(frames)`` feeds F frames (increasing
EV) through the layout (memopt.network.layout) and returns the enhanced frame as memopt's packed
float tensor ``[H/2, W/2, 6]``; ``runner(x)`` calls the model on its own tensors. TensorFlow is
imported only for Keras/SavedModel files, so running a .tflite never pays TensorFlow's ~900 MB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from memopt.errors import MemoptError, first_line
from memopt.frames.contract import unpack
from memopt.frames.yuv import YUV420
from memopt.lite.context import with_context
from memopt.lite.tiling import TileConfig, enhance_tiled
from memopt.network.layout import PACKED, IOLayout


@dataclass
class Runner:
    fn: Callable                              # model tensors -> outputs (one array, or lists)
    frames: int
    kind: str
    fixed_hw: tuple[int, int] | None = None   # the frame (H, W) a fixed-shape model takes
    runtime: object = None                    # memopt.lite.runtime.RuntimeConfig of a .tflite
    layout: IOLayout = PACKED
    evs: tuple[int, ...] | None = None        # the frames' EVs (tenths of a stop), when known
    alignment: int | None = None              # the probed tile alignment a .tflite carries
    context: tuple = ()                       # a window model's global values it takes beside the
                                              # network's tensors (memopt.network.values.GlobalValue)
    whole_frame: bool = False                 # a file with its tile loop inside: never a window
    raw_in: bool = False                      # it takes the frames' bytes (uint8 planes) as they are

    def __call__(self, x):
        if isinstance(x, np.ndarray):
            if x.ndim == 3:
                x = x[None]
            if self.fixed_hw and self.layout.is_packed and (2 * x.shape[1], 2 * x.shape[2]) != self.fixed_hw:
                h, w = self.fixed_hw
                raise MemoptError(f"this {self.kind} model takes {w}x{h} frames only, got "
                                  f"{2 * x.shape[2]}x{2 * x.shape[1]}; convert it at this size")
            x = x.astype(np.float32, copy=False)
        return self.fn(x)

    def enhance(self, frames: Sequence) -> np.ndarray:
        """F frames -> the packed float output frame [H/2, W/2, 6] in [0, 1]."""
        if self.fixed_hw and (frames[0].height, frames[0].width) != tuple(self.fixed_hw):
            h, w = self.fixed_hw
            raise MemoptError(f"this {self.kind} model takes {w}x{h} frames only, got "
                              f"{frames[0].width}x{frames[0].height}")
        return self.layout.run(self.fn, frames, self.evs)


def _tflite_runner(path: Path, threads: int | None, runtime=None, layout: IOLayout | None = None) -> Runner:
    from memopt.lite import embed
    from memopt.lite.runtime import DEFAULT, LoadedModel, dequantize, quantize

    lm = LoadedModel(path, threads, runtime or DEFAULT)
    found = embed.read(path)
    evs = None
    if layout is None:
        layout, evs = found if found else (PACKED, None)
    if evs is None and not layout.needs_all_frames:
        evs = layout.explicit_evs
    extra = sum(v.input < 0 for v in embed.context(path))
    if layout.ignored and len(lm.outputs) == len(layout.outputs) - len(layout.ignored) + extra:
        layout = layout.used()  # the recipe's layout on a converted file, which left the ignored outputs out
    context = embed.context(path)
    in_pos, out_pos = embed.io_order(path, len(lm.inputs), len(lm.outputs))
    ins = [lm.inputs[i] for i in in_pos]
    outs = [lm.outputs[i] for i in out_pos]
    raw = embed.byte_io(path)
    if raw:  # raw uint8 in / int8 out of an in-graph tile loop: their scale lives in the metadata
        from dataclasses import replace

        def marked(t, zero):
            return replace(t, scale=float(raw["scale"]), zero_point=int(raw[zero])) \
                if np.issubdtype(t.dtype, np.integer) and not t.scale else t

        ins, outs = [marked(t, "in_zero") for t in ins], [marked(t, "out_zero") for t in outs]
    n_in, n_out = len(ins) - len(context), len(outs) - sum(v.input < 0 for v in context)
    frames = layout.frames_from_shapes([t.shape for t in ins[:n_in]]) or 1
    layout.check([t.shape for t in ins[:n_in]], [t.shape for t in outs[:n_out]], frames, str(path))

    def run(x):
        xs = x if isinstance(x, list) else [x]
        graph = [None] * len(xs)
        for t, p, a in zip(ins, in_pos, xs):
            raw_bytes = raw and isinstance(a, np.ndarray) and a.dtype == np.uint8 == t.dtype
            graph[p] = a if raw_bytes else quantize(np.asarray(a, np.float32), t)
        got = lm.run(graph)
        res = [dequantize(got[p], t) for t, p in zip(outs, out_pos)]
        return res if len(res) > 1 else res[0]

    net = embed.network(path)
    return Runner(run, frames, "tflite", layout.frame_hw([t.shape for t in ins[:n_in]]), lm.runtime, layout, evs,
                  net.get("local_alignment") if context else net.get("alignment"), context, _whole_frame(path),
                  bool(raw) and all(t.dtype == np.uint8 for t in ins))


def _whole_frame(path) -> bool:
    """A file that is never a window: its tile loop is inside, or memopt deployed it as a whole-frame
    (or split-piece) model; a square whole-frame model would otherwise look like a window."""
    from memopt.lite import embed

    run = embed.run_settings(path)
    return bool(embed.ingraph(path)) or (bool(run) and not run.get("window", True))


def keras_runner(model, layout: IOLayout = PACKED, evs=None, source: str = "model") -> Runner:
    """A Runner for a loaded tf_keras model."""
    in_shapes = [tuple(t.shape) for t in model.inputs]
    out_shapes = [tuple(t.shape) for t in model.outputs]
    frames = layout.frames_from_shapes(in_shapes) or (len(evs) if evs else 1)
    layout.check(in_shapes, out_shapes, frames, source)

    def run(x):
        try:
            out = model(x, training=False)
        except Exception as e:  # noqa: BLE001  TensorFlow's shape errors are long; one line is enough
            raise MemoptError(f"{source} refused the layout's tensors ({type(e).__name__}: {first_line(e)}); "
                              "check the layout's /k and channel counts (memopt inspect)") from None
        return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else np.asarray(out)

    if evs is None and not layout.needs_all_frames:
        evs = layout.explicit_evs
    return Runner(run, frames, "keras", layout.frame_hw(in_shapes), None, layout, evs)


def _builder_runner(src) -> Runner:
    """A builder network built at each frame size it meets (and cached)."""
    built: dict = {}
    first = src.io.in_entries[0]

    def run(x):
        t = x if isinstance(x, np.ndarray) else x[0]
        hw = (t.shape[1] * first.k, t.shape[2] * first.k)
        if hw not in built:
            built.clear()  # one size at a time: frames of a dataset usually share it
            built[hw] = keras_runner(src.load(hw), src.io, source=src.name)
        return built[hw].fn(x)

    probe = keras_runner(src.load(), src.io, source=src.name)  # checks the layout once
    return Runner(run, probe.frames, "keras", None, None, src.io, probe.evs)


def load_runner(path, threads: int | None = None, runtime=None, layout: IOLayout | None = None,
                trust: bool = False) -> Runner:
    """A Runner for the model at ``path`` (.tflite, .keras/.h5, a SavedModel folder, or a
    memopt.network.source.NetworkSource); ``runtime`` (memopt.lite.runtime.RuntimeConfig) sets XNNPACK's
    memory settings for a .tflite; ``layout`` overrides the one a .tflite carries (default: packed)."""
    from memopt.network.source import NetworkSource

    if isinstance(path, NetworkSource):
        return _builder_runner(path) if path.builder else keras_runner(path.load(), path.io, source=path.name)
    p = Path(path)
    if not p.exists():
        raise MemoptError(f"{p}: no such model file or folder")
    if p.suffix.lower() == ".tflite":
        return _tflite_runner(p, threads, runtime, layout)
    if p.is_dir() or p.suffix.lower() in (".keras", ".h5"):
        from memopt.network.source import load_keras

        return keras_runner(load_keras(p, trust, layout), layout or PACKED, source=str(p))
    raise MemoptError(f"{p}: unknown model type; expected .keras, .h5, a SavedModel folder or .tflite")


def run_frames(runner, frames: Sequence[YUV420], halo: int = 48, align: int = 8, blend: str = "none",
               progress: bool = True, evs=None) -> YUV420:
    """Enhance ``frames`` with ``runner`` (memopt.lite.runner.Runner): on the whole frame, or window by
    window when the runner is a fixed-shape model (a tile .tflite) smaller than the frames."""
    evs = evs if evs is not None else runner.evs
    runner = with_context(runner, frames, None, halo, align, evs, progress)  # a window model: values streamed
    fixed = runner.fixed_hw
    layout = runner.layout
    if not fixed or tuple(fixed) == (frames[0].height, frames[0].width):
        raw = runner.raw_in and all(np.asarray(f.y).dtype == np.uint8 for f in frames)  # camera bytes as they are
        return unpack(layout.run(runner.fn, frames, evs, raw=raw))
    h, w = frames[0].height, frames[0].width
    if fixed[0] != fixed[1] or runner.whole_frame:
        raise MemoptError(f"this model takes {fixed[1]}x{fixed[0]} frames only, got {w}x{h}; it is not a window a "
                          f"tile loop can walk: make one for {w}x{h}: `memopt deploy RESULTS --size {h}x{w}` (the "
                          f"variant of a study, from its results folder) or `memopt convert --size {h}x{w}`")
    try:
        cfg = TileConfig(fixed[0], halo, math.lcm(runner.alignment or align, layout.step))
    except ValueError as e:
        raise MemoptError(str(e)) from None
    return enhance_tiled(runner.fn, frames, cfg, progress, blend, layout, evs)
