"""``ingraph``: the tile loop inside the .tflite (``tile256h24+ingraph``, ``dyn8+tile512h24+ingraph``).

A tile variant's window model, wrapped in a WHILE loop over the frame's windows: the file takes
the whole frame's tensors (the layout's, at the frame's size) and returns the whole enhanced
frame, so the phone's ``benchmark_model`` measures the whole pipeline and the app needs no tile
loop. Everything is in the graph with builtin ops only (WHILE, LESS, GATHER, SLICE,
DYNAMIC_UPDATE_SLICE, MIRROR_PAD for frames off the alignment grid, the network's own ops):

- the windows are the host tile loop's (memopt.lite.tiling.tile_grid: clamped inside the frame,
  padded by reflection to the alignment), walked last to first; each writes a fixed-size block
  of ``core`` px (the last window of a row or column writes the frame's last ``core`` px), so that
  every pixel ends up written by the window whose core holds it in the host loop: the output is
  the host tile loop's, and equals the full frame's when the halo covers the receptive field;
- where every tensor of the layout is a plain plane of bytes (``packed``, ``y``, ``uv``, ``u``,
  ``v`` at their own resolution), the inputs are uint8 (the camera's bytes, scale 1/255 of the
  layout's range, cast to float window by window) and the outputs int8 (byte - 128): the loop
  carries the output at 1 byte per value, which is what keeps the file's peak near input + 3 x
  output (the WHILE op copies its loop-carried tensors); other layouts keep float I/O. What the
  bytes mean travels in the file's metadata (memopt.lite.embed.byte_io).

The body is the window model in float, float16 or dynamic-range int8 (the converter's own
quantization of the loop model); full-integer int8 of a loop model is not offered: the TF
converter cannot calibrate it. Each file is checked against the host tile loop of the same window
model (memopt.variants.ingraph_check) before it is measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memopt.errors import MemoptError

BYTE_PLANES = ("packed", "y", "uv", "u", "v")


@dataclass(frozen=True)
class InGraphConfig:
    """The part has no parameters: the loop's windows are the tile part's."""

    @property
    def name(self) -> str:
        return "ingraph"

    @classmethod
    def parse(cls, part: str) -> "InGraphConfig | None":
        return cls() if part == "ingraph" else None


def apply(cfg: InGraphConfig, build, ctx):
    from dataclasses import replace

    return replace(build, ingraph=True)


def byte_io(layout) -> bool:
    """Whether every tensor of the layout holds plain bytes: one plane (or the chroma pair, or memopt's
    packing) at its own resolution, in BT.601 (a conversion or a resize makes values that are not bytes)."""
    from memopt.network.layout import NATIVE_K

    entries = list(layout.in_entries) + list(layout.out_entries)
    return layout.matrix == "bt601" and all(e.planes in BYTE_PLANES and e.k == NATIVE_K[e.planes] for e in entries)


def io_quant(layout) -> tuple[float, int, int]:
    """(scale, uint8 input zero point, int8 output zero point): byte b is the value lo + b * scale."""
    lo, hi = layout.range
    scale = (hi - lo) / 255.0
    return scale, int(round(-lo / scale)), int(round(-lo / scale)) - 128


def windows(height: int, width: int, tile) -> np.ndarray:
    """The loop's table, one row per window in the order the loop runs them (last first): window origin
    (y, x) and the block's origin (y, x), full-resolution px of the frame padded to the alignment."""
    from memopt.lite.tiling import tile_grid

    hp, wp = -(-height // tile.align) * tile.align, -(-width // tile.align) * tile.align
    rows = [(wy, wx, min(cy0, hp - tile.core), min(cx0, wp - tile.core))
            for wy, wx, cy0, _, cx0, _ in tile_grid(height, width, tile)]
    return np.array(rows[::-1], np.int32)


def loop_converter(model, layout, n_frames: int, height: int, width: int, tile, name: str = "model"):
    """(a TFLiteConverter for the whole-frame loop model around ``model`` (the window model, built at
    tile x tile), its input specs, whether its I/O is bytes)."""
    from tensorflow.compiler.tf2xla.python import xla  # DYNAMIC_UPDATE_SLICE's only TF spelling

    from memopt.tfenv import tf

    as_bytes = byte_io(layout)
    scale, zin, zout = io_quant(layout)
    lo = layout.range[0]
    T, core = tile.tile, tile.core
    hp, wp = -(-height // tile.align) * tile.align, -(-width // tile.align) * tile.align
    table = windows(height, width, tile)
    n = len(table)
    in_shapes = layout.input_shapes(height, width, n_frames)
    out_entries = layout.out_entries
    out_ch = [int(t.shape[-1]) for t in layout.kept(list(model.outputs))]
    dtype = tf.uint8 if as_bytes else tf.float32
    specs = [tf.TensorSpec(s, dtype, name=f"in{i}") for i, s in enumerate(in_shapes)]
    in_k = [e.k for e in layout.in_entries]

    def serve(*xs):
        # frames off the alignment grid: reflect past the bottom/right edge, as the host loop pads windows
        xs = [tf.pad(x, [[0, 0], [0, (hp - height) // k], [0, (wp - width) // k], [0, 0]], mode="REFLECT")
              if (hp, wp) != (height, width) else x for x, k in zip(xs, in_k)]
        zero = tf.cast(tf.cast(xs[0][0, 0, 0, 0], tf.float32) * 0.0, tf.int8 if as_bytes else tf.float32)  # not a constant: no
        outs0 = [tf.fill([1, hp // e.k, wp // e.k, c], zero)                      # frame-sized buffer in the file
                 for e, c in zip(out_entries, out_ch)]
        tab = tf.constant(table)

        def body(i, *outs):
            g = tf.gather(tab, i)
            wins = [tf.slice(x, tf.stack([0, g[0] // k, g[1] // k, 0]), [x.shape[0], T // k, T // k, x.shape[3]])
                    for x, k in zip(xs, in_k)]
            if as_bytes:  # per window: a float copy of the whole frame would be the largest tensor of all
                wins = [tf.cast(x, tf.float32) * scale + lo for x in wins]
            y = model(wins if len(wins) > 1 else wins[0], training=False)
            y = layout.kept(list(y) if isinstance(y, (list, tuple)) else [y])
            new = []
            for o, t, e in zip(outs, y, out_entries):
                k = e.k
                blk = tf.slice(t, tf.stack([0, (g[2] - g[0]) // k, (g[3] - g[1]) // k, 0]),
                               [1, core // k, core // k, t.shape[3]])
                if as_bytes:
                    blk = tf.cast(tf.round(tf.clip_by_value(blk / scale + zin, 0.0, 255.0)) - 128.0, tf.int8)
                new.append(xla.dynamic_update_slice(o, blk, tf.stack([0, g[2] // k, g[3] // k, 0])))
            return (i + 1, *new)

        res = tf.while_loop(lambda i, *o: i < n, body, [tf.constant(0), *outs0])[1:]
        res = [r[:, :height // e.k, :width // e.k] if (hp, wp) != (height, width) else r
               for r, e in zip(res, out_entries)]
        return {f"out{i}": r for i, r in enumerate(res)}

    fn = tf.function(serve, input_signature=specs)
    try:
        concrete = fn.get_concrete_function()
    except Exception as e:  # noqa: BLE001  TensorFlow's tracing errors are long; one line is enough
        from memopt.errors import first_line

        raise MemoptError(f"{name}: cannot build the in-graph tile loop ({type(e).__name__}: {first_line(e)[:200]})") \
            from None
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model), specs, as_bytes


def convert_ingraph(model_path, cfg, out, frame_hw: tuple[int, int], tile, rep_data=(), ev_tenths=None,
                    network: dict | None = None) -> dict:
    """Convert the variant's window model (``cfg``: its tile size and quantization) and the loop model
    around it for ``frame_hw`` frames; the loop model is written to ``out`` only once it equals the host
    tile loop of that window model on a dark random frame (memopt.lite.tiling; +-1 in a byte)."""
    import math
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from memopt.convert import convert, network_evs
    from memopt.errors import first_line
    from memopt.fsutil import atomic_write_bytes
    from memopt.lite.embed import embed
    from memopt.network.source import as_source

    if cfg.quant in ("int8", "int16x8"):
        raise MemoptError(f"{cfg.quant} with ingraph: the TF converter cannot calibrate a loop model (it crashes "
                          "on the WHILE body); the loop takes a float, fp16 or dyn8 body")
    h, w = frame_hw
    src = as_source(model_path)
    tile = replace(tile, align=math.lcm(tile.align, src.io.step))
    with tempfile.TemporaryDirectory(prefix="memopt-ingraph-") as tmp:
        window = Path(tmp) / "window.tflite"
        convert(src, cfg, window, rep_data, ev_tenths, network=network)  # checked against the network
        model = src.load((cfg.height, cfg.width))
        evs = network_evs(src, model, ev_tenths)
        converter, specs, as_bytes = loop_converter(model, src.io, len(evs), h, w, tile, src.name)
        _quantize_opts(converter, cfg.quant)
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # noqa: BLE001  the converter's errors are long logs
            raise MemoptError(f"{src.name}: cannot convert the in-graph tile loop: {first_line(e)[:200]}") from None
        scale, zin, zout = io_quant(src.io)
        extra = {"ingraph": {"tile": tile.tile, "halo": tile.halo, "align": tile.align,
                             "windows": len(windows(h, w, tile))}}
        if as_bytes:
            extra["bytes"] = {"scale": scale, "in_zero": zin, "out_zero": zout}
        flatbuffer = embed(flatbuffer, src.io.used(), evs, network, extra=extra)
        loop = Path(tmp) / "loop.tflite"
        loop.write_bytes(flatbuffer)
        worst = check_loop(loop, window, tile, evs)
        if worst > 1:
            raise MemoptError(f"{src.name}: the in-graph tile loop differs from the host tile loop of its window model "
                              f"by {worst} (of 255) on a random frame; memopt will not measure a file that is not "
                              "the network")
        atomic_write_bytes(out, flatbuffer)
    return {"path": str(out), "bytes": len(flatbuffer), "windows": len(windows(h, w, tile)), "byte_io": as_bytes}


def _quantize_opts(converter, quant: str) -> None:
    from memopt.tfenv import tf

    if quant in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "float16":
        converter.target_spec.supported_types = [tf.float16]


def dark_frames(height: int, width: int, n: int, seed: int = 0):
    """n random YUV 4:2:0 frames, dark as a low-light burst (a bright random frame saturates most networks'
    outputs, which would hide a wrong window)."""
    from memopt.frames.yuv import YUV420

    rng = np.random.default_rng(seed)
    return [YUV420(rng.integers(0, 96, (height, width), dtype=np.uint8),
                   rng.integers(96, 160, (height // 2, width // 2), dtype=np.uint8),
                   rng.integers(96, 160, (height // 2, width // 2), dtype=np.uint8)) for _ in range(n)]


def check_loop(loop, window, tile, evs) -> int:
    """The largest difference (in bytes, 0..255) between the loop model's output and the host tile loop of
    the window model, on dark random frames of the loop model's size."""
    from memopt.lite.runner import load_runner, run_frames

    full = load_runner(loop)
    h, w = full.fixed_hw
    frames = dark_frames(h, w, full.frames)
    a = run_frames(full, frames, progress=False, evs=evs)
    b = run_frames(load_runner(window), frames, tile.halo, tile.align, progress=False, evs=evs)
    return max(int(np.abs(p.astype(np.int16) - q.astype(np.int16)).max()) for p, q in
               ((a.y, b.y), (a.u, b.u), (a.v, b.v)))
