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
- an input tensor that is a plain plane of bytes (``packed``, ``y``, ``uv``, ``u``, ``v`` at its
  own resolution) is uint8 (the camera's bytes, scale 1/255 of the layout's range, cast to float
  window by window); when every output is, the outputs are int8 (byte - 128): the loop carries the
  output at 1 byte per value, which keeps the file's peak near input + 4 x output (the WHILE op
  keeps its loop-carried tensors in the caller, the body's input and its output); other tensors
  stay float. What the bytes mean travels in the file's metadata (memopt.lite.embed.byte_io).

The body is the window model in float, float16 or dynamic-range int8 (the converter's own
quantization of the loop model), or in full-integer int8: the TF converter cannot calibrate a loop
model, so the window model is quantized on its own (the host tile loop's very file) and its graph
spliced into the loop in place of a placeholder (memopt.lite.splice). Each file is checked against
the host tile loop of the same window model (``check_loop``) before it is measured; with ``stream``,
the network's global values are streamed over the windows inside the graph too (``stream_loop``), one
loop per level before the output loop (float, fp16 or dyn8 bodies).
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


def byte_entries(layout) -> tuple[list[bool], bool]:
    """Which input tensors hold plain bytes (one plane, or the chroma pair, or memopt's packing, at its
    own resolution, in BT.601 for chroma: a conversion or a resize makes values that are not bytes), and
    whether every output does; both need a range whose zero is a whole byte ([0, 1], [0, 255]; [-1, 1]
    keeps float I/O)."""
    from memopt.network.layout import NATIVE_K

    lo, hi = layout.range
    zero = -lo * 255.0 / (hi - lo)  # the byte of value 0: a whole number, or a byte would be half a step off
    whole = abs(zero - round(zero)) < 1e-6

    def plain(e) -> bool:
        return whole and e.planes in BYTE_PLANES and e.k == NATIVE_K[e.planes] and \
            (layout.matrix == "bt601" or e.planes == "y")

    return [plain(e) for e in layout.in_entries], all(plain(e) for e in layout.out_entries)


def byte_io(layout) -> bool:
    """Whether every tensor of the layout holds plain bytes (``byte_entries``): a loop fed the frames'
    bytes as they are, returning bytes."""
    ins, outs = byte_entries(layout)
    return all(ins) and outs


def io_quant(layout) -> tuple[float, int, int]:
    """(scale, uint8 input zero point, int8 output zero point): byte b is the value lo + b * scale."""
    lo, hi = layout.range
    scale = (hi - lo) / 255.0
    return scale, int(round(-lo / scale)), int(round(-lo / scale)) - 128


def windows(height: int, width: int, tile) -> np.ndarray:
    """The loop's table, one row per window in the order the loop runs them (last first): window origin
    (y, x) and the block's origin (y, x), full-resolution px of the frame padded to the alignment."""
    from memopt.lite.tiling import padded, tile_grid

    hp, wp = padded(height, width, tile.align)
    rows = [(wy, wx, min(cy0, hp - tile.core), min(cx0, wp - tile.core))
            for wy, wx, cy0, _, cx0, _ in tile_grid(height, width, tile)]
    return np.array(rows[::-1], np.int32)


def loop_converter(model, layout, n_frames: int, height: int, width: int, tile, name: str = "model", values=(),
                   quantized=None):
    """(a TFLiteConverter for the whole-frame loop model around ``model`` (the window model, built at
    tile x tile), its input specs, whether its I/O is bytes). ``values``: the global values of a window
    model split at its global reductions (memopt.network.context; ``model`` is then the split's): each
    level is streamed over the windows by a loop of its own before the output loop (``stream_loop``).
    ``quantized``: the (inputs, outputs) of a quantized window .tflite (memopt.lite.runtime.TensorInfo, in
    the layout's order): the
    loop then runs a placeholder in its place, which memopt.lite.splice.inline replaces by that file's
    graph; windows are handed over in its input types and its outputs read back from its own scales."""
    from tensorflow.compiler.tf2xla.python import xla  # DYNAMIC_UPDATE_SLICE's only TF spelling

    from memopt.lite.tiling import padded
    from memopt.tfenv import tf

    byte_in, byte_out = byte_entries(layout)  # uint8 inputs (each its own), int8 outputs (all or none)
    as_bytes = any(byte_in) or byte_out
    scale, zin, zout = io_quant(layout)
    lo = layout.range[0]
    T, core = tile.tile, tile.core
    hp, wp = padded(height, width, tile.align)
    table = windows(height, width, tile)
    n = len(table)
    in_shapes = layout.input_shapes(height, width, n_frames)
    out_entries = layout.out_entries
    out_ch = [int(t.shape[-1]) for t in layout.kept(list(model.outputs))]
    specs = [tf.TensorSpec(s, tf.uint8 if b else tf.float32, name=f"in{i}") for i, (s, b) in
             enumerate(zip(in_shapes, byte_in))]
    in_k = [e.k for e in layout.in_entries]

    def serve(*xs):
        # frames off the alignment grid: reflect past the bottom/right edge, as the host loop pads windows
        xs = [tf.pad(x, [[0, 0], [0, (hp - height) // k], [0, (wp - width) // k], [0, 0]], mode="REFLECT")
              if (hp, wp) != (height, width) else x for x, k in zip(xs, in_k)]
        zero = tf.cast(tf.cast(xs[0][0, 0, 0, 0], tf.float32) * 0.0, tf.int8 if byte_out else tf.float32)  # not a
        outs0 = [tf.fill([1, hp // e.k, wp // e.k, c], zero)             # constant: no frame-sized buffer in the file
                 for e, c in zip(out_entries, out_ch)]
        tab = tf.constant(table)

        def window(wy, wx):
            wins = [tf.slice(x, tf.stack([0, wy // k, wx // k, 0]), [x.shape[0], T // k, T // k, x.shape[3]])
                    for x, k in zip(xs, in_k)]
            if quantized is not None:
                return [_handed(x, b, d, scale, zin, lo) for x, b, d in zip(wins, byte_in, quantized[0])]
            # bytes to values per window: a float copy of the whole frame would be the largest tensor of all
            wins = [tf.cast(x, tf.float32) * scale + lo if b else x for x, b in zip(wins, byte_in)]
            return wins

        got = stream_loop(model, layout, values, window, height, width, tile) if values else []

        def body(i, *outs):
            g = tf.gather(tab, i)
            wins = window(g[0], g[1])
            if quantized is None:
                y = model(wins + got if len(wins) + len(got) > 1 else wins[0], training=False)
                y = layout.kept((list(y) if isinstance(y, (list, tuple)) else [y])[:len(layout.outputs)])
            else:  # the placeholder of the quantized window graph, in an IF that splice.inline replaces
                y = tf.cond(i >= 0, lambda: _placeholder(wins, quantized[1]),
                            lambda: [tf.zeros(d.shape, d.dtype) for d in quantized[1]])
                y = list(y) if isinstance(y, (list, tuple)) else [y]
                y = [tf.cast(t, tf.float32) if not d.scale else (tf.cast(t, tf.float32) - d.zero_point) * d.scale
                     for t, d in zip(y, quantized[1])]
                if len(y) != len(out_entries):  # a window file that kept the outputs the layout ignores
                    y = layout.kept(y[:len(layout.outputs)])
            new = []
            for o, t, e in zip(outs, y, out_entries):
                k = e.k
                blk = tf.slice(t, tf.stack([0, (g[2] - g[0]) // k, (g[3] - g[1]) // k, 0]),
                               [1, core // k, core // k, t.shape[3]])
                if byte_out:
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


def _handed(x, is_byte: bool, desc, scale: float, zin: int, lo: float):
    """A window of a loop input in the type the quantized window graph takes (``desc``: its TensorInfo):
    the camera's bytes as they are when the scales agree, else values quantized to it."""
    from memopt.tfenv import tf

    dtype, s, z = np.dtype(desc.dtype), desc.scale, desc.zero_point
    if is_byte and dtype == np.uint8 and abs(s - scale) <= 1e-6 * scale and z == zin:
        return x
    v = tf.cast(x, tf.float32) * scale + lo if is_byte else x
    if dtype == np.float32:
        return v
    info = np.iinfo(dtype)
    return tf.cast(tf.clip_by_value(tf.round(v / s + z), float(info.min), float(info.max)), dtype)


def _placeholder(wins, outs):
    """Stands in for the window graph: every input's maximum times its marker (which tells, once converted,
    which IF operand is which input), filled into outputs of the window graph's types and shapes."""
    from memopt.lite.splice import marker
    from memopt.tfenv import tf

    acc = None
    for k, w in enumerate(wins):
        t = tf.reduce_max(tf.cast(w, tf.float32)) * marker(k)
        acc = t if acc is None else acc + t
    return [tf.cast(tf.fill(d.shape, acc), d.dtype) for d in outs]


def stream_loop(model, layout, values, window, height: int, width: int, tile) -> list:
    """The global values of the split window ``model`` over the frame, as the host's exact streaming
    computes them (memopt.lite.context.stream_values): level by level, one WHILE loop over the context
    grid each, every window's core reduced at its tensor's resolution (a mask, so shapes stay static:
    the last window's core is shorter), a sum or a max accumulated, means divided by the count."""
    from memopt.lite.context import context_grid
    from memopt.network.values import reduced_tensors
    from memopt.tfenv import tf

    T = tile.tile
    for v in values:
        if tile.align % v.scale:
            raise MemoptError(f"the window grid ({tile.align} px) does not fit {v.layer}'s tensor at 1/{v.scale}")
    grid = context_grid(height, width, (T, T), tile.halo, tile.align)
    cores = [(wy, wx, cy0, min(cy1, height), cx0, min(cx1, width)) for wy, wx, cy0, cy1, cx0, cx1 in grid]
    tab = tf.constant(np.array(cores, np.int32))
    n_net = len(layout.outputs)
    got = [tf.zeros(v.shape, tf.float32) for v in values]
    for level in sorted({v.level for v in values}):
        idx = [i for i, v in enumerate(values) if v.level == level]

        def body(j, *acc, idx=idx, fixed=list(got)):
            g = tf.gather(tab, j)
            wins = window(g[0], g[1])
            if all(values[i].input >= 0 for i in idx):  # reductions of a network input: no model run
                outs = []
            else:
                y = model(wins + fixed, training=False)
                y = list(y) if isinstance(y, (list, tuple)) else [y]
                outs = layout.kept(y[:n_net]) + y[n_net:]
            xs = reduced_tensors(values, wins, outs, len(layout.out_entries)) if outs else \
                [wins[v.input] if v.input >= 0 else None for v in values]
            new = []
            for i, a in zip(idx, acc):
                v, x = values[i], xs[i]
                s = v.scale
                rows = tf.range(x.shape[1]) * s + g[0]
                cols = tf.range(x.shape[2]) * s + g[1]
                # whole elements of the clipped core only, as the host's slice (end // scale) takes them
                mask = ((rows >= g[2]) & (rows + s <= g[3]))[:, None] & ((cols >= g[4]) & (cols + s <= g[5]))[None, :]
                mask = mask[None, :, :, None]
                if v.reduce in ("mean", "sum"):
                    r = tf.reduce_sum(tf.where(mask, x, 0.0), axis=(1, 2))
                    a = a + tf.reshape(r, a.shape)
                else:
                    far = float("-inf") if v.reduce == "max" else float("inf")
                    r = (tf.reduce_max if v.reduce == "max" else tf.reduce_min)(tf.where(mask, x, far), axis=(1, 2))
                    a = (tf.maximum if v.reduce == "max" else tf.minimum)(a, tf.reshape(r, a.shape))
                new.append(a)
            return (j + 1, *new)

        init = [tf.zeros(values[i].shape, tf.float32) if values[i].reduce in ("mean", "sum") else
                tf.fill(values[i].shape, float("-inf") if values[i].reduce == "max" else float("inf"))
                for i in idx]
        res = tf.while_loop(lambda j, *a: j < len(grid), body, [tf.constant(0), *init])[1:]
        for i, r in zip(idx, res):
            v = values[i]
            if v.reduce == "mean":
                count = sum(max(0, (cy1c - cy0) // v.scale) * max(0, (cx1c - cx0) // v.scale)
                            for _, _, cy0, cy1c, cx0, cx1c in cores)
                r = r / float(max(count, 1))
            got[i] = tf.reshape(r, v.shape)
    return got


def convert_ingraph(model_path, cfg, out, frame_hw: tuple[int, int], tile, rep_data=(), ev_tenths=None,
                    network: dict | None = None, context: bool = False) -> dict:
    """Convert the variant's window model (``cfg``: its tile size and quantization) and the loop model
    around it for ``frame_hw`` frames; the loop model is written to ``out`` only once it equals the host
    tile loop of that window model on a dark random frame (memopt.lite.tiling; +-1 in a byte)."""
    import math
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from memopt.convert import convert, network_evs, weight_quantization
    from memopt.errors import first_line
    from memopt.fsutil import atomic_write_bytes
    from memopt.lite.embed import embed
    from memopt.network.source import as_source

    integer = cfg.quant in ("int8", "int16x8")  # quantized on its own, then spliced into the loop
    if integer and context:
        raise MemoptError(f"{cfg.quant} with stream and ingraph: the streamed passes would need a quantized "
                          "split of the window model, which memopt does not build; use a float, fp16 or dyn8 body")
    h, w = frame_hw
    src = as_source(model_path)
    try:
        tile = replace(tile, align=math.lcm(tile.align, src.io.step))
    except ValueError as e:
        raise MemoptError(f"{tile.name}: {e} (the network's layout steps by {src.io.step} px)") from None
    with tempfile.TemporaryDirectory(prefix="memopt-ingraph-") as tmp:
        window = Path(tmp) / "window.tflite"
        # the window model, checked against the network (and its split, for context)
        convert(src, cfg, window, rep_data, ev_tenths, network=network, context=context)
        model = src.load((cfg.height, cfg.width))
        evs = network_evs(src, model, ev_tenths)
        values = ()
        if context:
            from memopt.network.context import split_for

            split = split_for(model, src.io, evs, (cfg.height, cfg.width), src.name,
                              tuple((network or {}).get("scaling_resizes", ())))
            model, values = split.model, split.values
        body = pos = None
        if integer:
            from memopt.lite.embed import io_order
            from memopt.lite.runtime import graph_io
            from memopt.lite.splice import inline

            ins, outs = graph_io(window)
            pos = io_order(window, len(ins), len(outs))
            body = [ins[p] for p in pos[0]], [outs[p] for p in pos[1]]
        converter, specs, as_bytes = loop_converter(model, src.io, len(evs), h, w, tile, src.name, values, body)
        if not integer:
            weight_quantization(converter, cfg.quant)
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # noqa: BLE001  the converter's errors are long logs
            raise MemoptError(f"{src.name}: cannot convert the in-graph tile loop: {first_line(e)[:200]}") from None
        if integer:
            flatbuffer = inline(flatbuffer, window.read_bytes(), *pos)
        scale, zin, zout = io_quant(src.io)
        n_windows = len(windows(h, w, tile))
        extra = {"ingraph": {"tile": tile.tile, "halo": tile.halo, "align": tile.align,
                             "windows": n_windows, "context": "stream" if context else ""}}
        if as_bytes:
            extra["bytes"] = {"scale": scale, "in_zero": zin, "out_zero": zout}
        if cfg.target_db:  # what int8-auto kept in float in the window graph
            from memopt.lite.embed import entry

            extra["mixed"] = entry(window, "mixed")
        flatbuffer = embed(flatbuffer, src.io.used(), evs, network, extra=extra)
        loop = Path(tmp) / "loop.tflite"
        loop.write_bytes(flatbuffer)
        worst = check_loop(loop, window, tile, evs)
        if worst > 1:
            raise MemoptError(f"{src.name}: the in-graph tile loop differs from the host tile loop of its window model "
                              f"by {worst} (of 255) on a random frame; memopt will not measure a file that is not "
                              "the network")
        atomic_write_bytes(out, flatbuffer)
    return {"path": str(out), "bytes": len(flatbuffer), "windows": n_windows, "byte_io": as_bytes}


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
