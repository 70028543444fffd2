"""Conversion to .tflite at a fixed input shape (what the phone runs), in five quantization modes.

Modes (TFLite's post-training options):
  ``none``     float32 weights and activations
  ``float16``  float16 weights, dequantized to float32 at load (XNNPACK may run them in fp16)
  ``dynamic``  int8 weights, float activations quantized on the fly per op ("dynamic range")
  ``int8``     full integer: int8 weights and activations, calibrated on a representative dataset;
               input/output uint8 (the camera's own type), int8 or float32
  ``int16x8``  16-bit activations with int8 weights (TFLite's experimental mode), calibrated;
               input/output int16 or float32

Representative data: whole scenes from the given dataset folders (the real SICE scenes and the
synthetic bursts by default), resized to the conversion size, packed on the I/O contract.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError, first_line
from memopt.fsutil import atomic_write_bytes

QUANT_MODES = ("none", "float16", "dynamic", "int8", "int16x8")
IO_TYPES = {"int8": ("uint8", "int8", "float32"), "int16x8": ("int16", "float32")}


@dataclass(frozen=True)
class ConvertConfig:
    """What to convert to: full-resolution size (H, W), mode, integer I/O type, calibration size."""

    height: int
    width: int
    quant: str = "none"
    io_type: str | None = None   # int8: uint8 (default) | int8 | float32; int16x8: int16 | float32
    samples: int = 8             # representative scenes for int8 / int16x8 calibration
    calib_long_side: int = 4032  # calibration scenes are read at this size; tiles are cropped
    per_channel: bool = True     # int8: per-channel weight scales (the converter's default)
    float_layers: int = 0        # int8: keep the k most sensitive layers in float (selective)
    target_db: float = 0.0       # int8: the fewest float operations reaching this PSNR vs float (int8-auto)

    def __post_init__(self):
        if self.height < 2 or self.width < 2 or self.height % 2 or self.width % 2:
            raise ValueError(f"size must be even (YUV 4:2:0), got {self.width}x{self.height}")
        if self.quant not in QUANT_MODES:
            raise ValueError(f"unknown quant mode {self.quant!r}; known: {', '.join(QUANT_MODES)}")
        allowed = IO_TYPES.get(self.quant, ("float32",))
        if self.io_type is not None and self.io_type not in allowed:
            raise ValueError(f"--io-type {self.io_type} does not fit --quant {self.quant}; "
                             f"choose from {', '.join(allowed)}")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.float_layers < 0 or (self.float_layers and self.quant != "int8"):
            raise ValueError("float_layers is a count >= 0 and applies to int8 only")
        if self.target_db and (self.quant != "int8" or self.float_layers):
            raise ValueError("target_db (int8-auto) applies to int8 without float_layers")

    @property
    def io(self) -> str:
        return self.io_type or IO_TYPES.get(self.quant, ("float32",))[0]


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. 3024x4032) -> (H, W)."""
    try:
        h, w = (int(t) for t in text.lower().split("x"))
    except ValueError:
        raise MemoptError(f"size {text!r} is not HxW, e.g. 3024x4032") from None
    return h, w


def representative_batches(folders: Sequence[str], ev_tenths: Sequence[int], height: int,
                           width: int, samples: int, frame_long_side: int = 4032, exclude: Sequence[str] = (),
                           layout=None, held_out: bool = False):
    """Calibration samples: each the model's input tensors (a list) in its ``layout``
    (memopt.network.layout; default memopt's packed [1, H/2, W/2, 6F]), float32.

    Scenes are read at ``frame_long_side`` (the frame the phone runs); a model input smaller than
    that (a tile) gets random crops of its size, so a tile model is calibrated on tiles at the
    deployment scale; otherwise the scene is resized to the input. Scenes named in ``exclude``
    (a cross-validation fold's held-out scenes) are never read. With no folders, scenes are
    synthesised from scikit-image's sample photos. ``held_out``: samples to judge a calibration by,
    not calibrate: the scenes of the same shuffle that calibration did not read, with other crops; a
    tile with no scene left gets other crops of the same scenes, a whole frame none (no samples);
    synthetic scenes are drawn anew.
    """
    import cv2

    from memopt.frames.data import scan_dataset
    from memopt.frames.yuv import read_rgb, rgb_to_yuv420
    from memopt.network.layout import PACKED

    def fit(frames, rng):
        fh, fw = frames[0].shape[:2]
        if fh >= height and fw >= width and max(height, width) < frame_long_side:
            i, j = rng.integers(fh - height + 1), rng.integers(fw - width + 1)
            return [f[i:i + height, j:j + width] for f in frames]
        return [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]

    layout = layout or PACKED
    rng = np.random.default_rng(0)
    crops = height < frame_long_side and width < frame_long_side  # a tile: a crop of each decoded scene
    scenes = [s for f in folders for s in scan_dataset(f) if s.frames and s.name not in set(exclude)]
    order = rng.permutation(len(scenes)) if scenes else []
    if held_out:  # other crops, and the scenes calibration did not read (a tile with none left: its own)
        rng = np.random.default_rng(1)
        if len(order) > samples or not crops:
            order = order[samples:]
    if scenes:
        # Each scene is decoded once and gives several crops: tiles need many samples to see
        # the brightest and darkest parts a whole frame has (the int8 ranges come from them).
        chosen = [scenes[i] for i in order[:samples]]
        if not chosen:
            return  # nothing to hold out: the caller judges on the calibration samples, and says so
        per_scene = -(-samples // len(chosen))
        n = 0
        for scene in chosen:
            frames = [read_rgb(f.path, frame_long_side) for f in scene.select(ev_tenths)]
            for _ in range(per_scene):
                if n == samples:
                    return
                n += 1
                yield layout.feed([rgb_to_yuv420(np.ascontiguousarray(f)) for f in fit(frames, rng)], ev_tenths)
        return
    from memopt.frames.synth import load_sources, synth_scene

    sources = load_sources()
    for k in range(samples):
        frames, _, _ = synth_scene(sources[k % len(sources)][1], ev_tenths, np.random.default_rng([8 if held_out else 7, k]))
        yield layout.feed([rgb_to_yuv420(np.ascontiguousarray(f)) for f in fit(frames, rng)], ev_tenths)


def convert(model_path, cfg: ConvertConfig, out, rep_data: Sequence[str] = (),
            ev_tenths: Sequence[int] | None = None, exclude: Sequence[str] = (), network: dict | None = None,
            context: bool = False) -> dict:
    """Convert a network (.keras / SavedModel / builder, through its tensor layout) to a fixed-shape .tflite.

    Args:
        model_path: the Keras model or SavedModel folder, or a memopt.network.source.NetworkSource.
        cfg: size and quantization.
        out: the .tflite path (written atomically).
        rep_data: dataset folders for calibration (int8 / int16x8); empty: synthetic scenes.
        ev_tenths: which exposures the model takes (default: its model.json, or the layout's @ev entries).
        exclude: scene names calibration must not read (held-out scenes).
        network: the probed radius / alignment / non_local, stored with the layout.
        context: convert the window model, split at the network's global reductions
            (memopt.network.context): their values become extra inputs, the reduced tensors extra
            outputs; int8 calibrates the extra inputs with each sample's own values.
    Returns:
        A dict describing the result (path, bytes, mode, I/O types, shape).

    The .tflite's signature tensors are ``in<i>`` / ``out<i>`` in the layout's order and the layout
    travels inside it (memopt.lite.embed).
    """
    from memopt.lite.embed import embed
    from memopt.network.source import as_source
    from memopt.tfenv import tf

    src = as_source(model_path)
    mp = src.name
    model = src.load((cfg.height, cfg.width))
    layout = src.io
    evs = network_evs(src, model, ev_tenths)
    layout.check([tuple(t.shape) for t in model.inputs], [tuple(t.shape) for t in model.outputs], len(evs), mp)
    if cfg.height % layout.step or cfg.width % layout.step:
        raise MemoptError(f"{mp}: {cfg.width}x{cfg.height} is not a multiple of {layout.step} px, which its tensor "
                          "layout needs")
    split = None
    if context:
        from memopt.network.context import split_for

        split = split_for(model, layout, evs, (cfg.height, cfg.width), mp,
                          tuple((network or {}).get("scaling_resizes", ())))
        if cfg.float_layers:
            raise MemoptError(f"{mp}: int8-f<k> (layers kept in float) and a global-context window model do not "
                              "combine; drop one")
    converter, specs = keras_converter(split.model if split else model, layout, len(evs), cfg.height, cfg.width,
                                       mp, [v.shape for v in split.values] if split else ())
    io = {"uint8": tf.uint8, "int8": tf.int8, "int16": tf.int16, "float32": tf.float32}[cfg.io]
    samples = []
    if cfg.quant in ("float16", "dynamic"):
        weight_quantization(converter, cfg.quant)
    elif cfg.quant in ("int8", "int16x8"):
        samples = list(representative_batches(rep_data, evs, cfg.height, cfg.width, cfg.samples,
                                              cfg.calib_long_side, exclude, layout))
        judge = list(representative_batches(rep_data, evs, cfg.height, cfg.width, cfg.samples, cfg.calib_long_side,
                                            exclude, layout, held_out=True)) if cfg.target_db else []
        if split:  # each sample's own global values: the ranges the extra inputs see
            samples = [s + split.global_values(s) for s in samples]
            judge = [s + split.global_values(s) for s in judge]
    if cfg.quant in ("int8", "int16x8") and not cfg.target_db:  # int8-auto quantizes the float file below
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # By signature name: the converter orders the graph's inputs its own way.
        converter.representative_dataset = lambda: ({f"in{i}": x for i, x in enumerate(s)} for s in samples)
        ops = (tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if cfg.quant == "int8" else
               tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)
        converter.target_spec.supported_ops = [ops]
        converter.inference_input_type = io
        converter.inference_output_type = io
        if not cfg.per_channel:
            converter._experimental_disable_per_channel = True  # the converter's only switch for it
    try:
        with warnings.catch_warnings():  # calibration runs tf.lite.Interpreter, which warns it is deprecated
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            if cfg.float_layers:
                flatbuffer = _selective_int8(model, specs, samples, cfg.float_layers, cfg.per_channel)
            else:
                flatbuffer = converter.convert()
    except Exception as e:  # noqa: BLE001  the converter raises ConverterError and others, with long logs
        first = next((ln for ln in str(e).splitlines() if "error" in ln.lower()), str(e).splitlines()[0] if str(e) else "")
        op = re.search(r"16x8-bit not yet supported for op: '(\w+)'", str(e))
        if op:  # the converter's 16x8 op set lacks a kernel the network uses
            raise MemoptError(f"{mp}: int16x8 has no 16-bit kernel for the network's {op.group(1)} (TFLite's 16x8 op "
                              "set); int8-auto (the operations int8 breaks kept in float) or dyn8 instead") from None
        raise MemoptError(f"{mp}: cannot convert with --quant {cfg.quant}: {first.strip()[:300]}") from None
    extra = {}
    if (cfg.quant == "none" and not cfg.float_layers) or cfg.target_db:
        _check_float(split.model if split else model, flatbuffer, specs, layout, mp, (cfg.height, cfg.width))
    if cfg.target_db:
        if cfg.height * cfg.width > 4e6:  # AI Edge Quantizer's calibration keeps every tensor of a run
            raise MemoptError(f"{mp}: int8-auto searches at the model's own size, and at {cfg.width}x{cfg.height} its "
                              "calibration would hold every tensor of a run (GBs); use it with a tile part "
                              "(int8-auto+tile512h48), whose window it searches")
        flatbuffer, extra["mixed"] = _auto_int8(flatbuffer, samples, judge, cfg.target_db, mp)
    flatbuffer = embed(flatbuffer, layout.used(), evs, network, split.values if split else (), extra)
    atomic_write_bytes(out, flatbuffer)
    return {"path": str(out), "bytes": len(flatbuffer), "quant": cfg.quant, "io_type": cfg.io,
            "input_shape": list(specs[0].shape), "input_shapes": [list(s.shape) for s in specs], "frames": len(evs)}


def _auto_int8(float_flatbuffer: bytes, samples, judge, target_db: float, name: str) -> tuple[bytes, dict]:
    """int8 with the fewest float operations for ``target_db`` vs the float model (memopt.lite.mixed), and
    what it chose (the file's ``mixed`` metadata)."""
    import tempfile

    from memopt.lite.mixed import auto_int8

    with tempfile.TemporaryDirectory(prefix="memopt-auto-") as tmp:
        flt = Path(tmp) / "float.tflite"
        flt.write_bytes(float_flatbuffer)  # its in<i> signature names give the layout's order
        try:
            m = auto_int8(flt, samples, target_db, judge)
        except MemoptError as e:
            raise MemoptError(f"{name}: {e}") from None
    return m.flatbuffer, {**m.to_meta(), "target_db": target_db}


def _check_float(model, flatbuffer: bytes, specs, layout, name: str, hw: tuple[int, int]) -> None:
    """The float .tflite must compute what the Keras model does (within float rounding) on a random
    input: conversion is a derived model too. Frames above 4 MP are checked on a 512 x 512 conversion
    of the same graph when it takes any size (the same converter, a cheaper run)."""
    from ai_edge_litert.interpreter import Interpreter

    from memopt.network.check import TOLERANCE, relative_diff

    dynamic = all(d is None for t in model.inputs for d in t.shape[1:3])
    if hw[0] * hw[1] > 4.2e6 and dynamic:
        n = layout.frames_from_shapes([tuple(s.shape) for s in specs]) or 1
        conv, specs = keras_converter(model, layout, n, 512, 512, name,  # 512: a multiple of every layout step
                                      [tuple(s.shape) for s in specs[len(layout.inputs):]])
        flatbuffer = conv.convert()
    from memopt.network.check import random_inputs

    xs = random_inputs([tuple(s.shape) for s in specs])
    try:
        got = Interpreter(model_content=flatbuffer).get_signature_runner()(**{f"in{i}": x for i, x in enumerate(xs)})
        want = model(xs if len(xs) > 1 else xs[0], training=False)
    except Exception as e:  # noqa: BLE001  LiteRT / TensorFlow errors are long; one line is enough
        raise MemoptError(f"{name}: the check of the converted .tflite against the model could not run "
                          f"({type(e).__name__}: {first_line(e)[:160]})") from None
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    n = len(layout.outputs)
    want = layout.kept(want[:n]) + want[n:]
    worst = relative_diff(want, [got[f"out{i}"] for i in range(len(want))])
    if worst > 100 * TOLERANCE:  # float32 kernels differ in accumulation order, not in value
        raise MemoptError(f"{name}: the converted .tflite differs from the Keras model by {worst:.3g} of the output's "
                          "range on a random input; memopt will not measure a file that is not the network")


def weight_quantization(converter, quant: str) -> None:
    """Set the converter for the modes that need no calibration: ``float16`` weights or ``dynamic``
    (int8 weights, float activations); ``none`` leaves it float."""
    from memopt.tfenv import tf

    if quant in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quant == "float16":
        converter.target_spec.supported_types = [tf.float16]


def keras_converter(model, layout, n_frames: int, height: int, width: int, name: str = "model", extra=()):
    """(a TFLiteConverter for ``model`` at a fixed frame size, its input specs): signature tensors
    ``in<i>`` / ``out<i>`` in the layout's order, then ``extra`` inputs (shapes) after them."""
    from memopt.tfenv import tf

    shapes = layout.input_shapes(height, width, n_frames) + [tuple(s) for s in extra]
    specs = [tf.TensorSpec(s, tf.float32, name=f"in{i}") for i, s in enumerate(shapes)]

    def serve(*xs):
        y = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        y = list(y) if isinstance(y, (list, tuple)) else [y]
        n = len(layout.outputs)  # the network's own outputs, then a split's extra ones: ignored ones left out
        y = layout.kept(y[:n]) + y[n:]
        return {f"out{i}": t for i, t in enumerate(y)}

    fn = tf.function(serve, input_signature=specs)
    try:
        concrete = fn.get_concrete_function()  # traces the network on the layout's tensors
    except Exception as e:  # noqa: BLE001  TensorFlow's shape errors are long; one line is enough
        raise MemoptError(f"{name} refused the layout's tensors ({type(e).__name__}: {first_line(e)}); check the "
                          "layout's /k and channel counts (memopt inspect)") from None
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model), specs


def network_evs(src, model, ev_tenths=None) -> tuple[int, ...]:
    """The EVs (tenths of a stop) a network takes: given, its layout's @ev entries, its model.json,
    or the default list when the frame count fits."""
    from memopt.config import model_evs

    layout = src.io
    if ev_tenths:
        return layout.resolve_evs(tuple(ev_tenths))
    if not layout.needs_all_frames:
        return layout.explicit_evs
    frames = layout.frames_from_shapes([tuple(t.shape) for t in model.inputs])
    if not frames:
        raise MemoptError(f"{src.name}: cannot tell how many frames it takes; pass the EVs (--ev)")
    return layout.resolve_evs(model_evs(src.model or src.builder.split(":")[0], frames))


def _selective_int8(model, specs, samples, k: int, per_channel: bool) -> bytes:
    """int8 with the k layers of largest error kept in float (TFLite's QuantizationDebugger).

    Layers are ranked by rmse / scale, the quantization error in units of the int8 step, on the
    calibration samples. The debugger converts several times, which a converter made from
    concrete functions cannot do, so this one is made from a SavedModel. Float layers need the
    float op set beside the int8 one, and the debugger's model keeps float32 input/output.
    """
    import csv
    import io
    import tempfile

    from memopt.tfenv import tf

    class Serve(tf.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        @tf.function(input_signature=specs)
        def serve(self, *xs):
            y = self.m(list(xs) if len(xs) > 1 else xs[0], training=False)
            return {f"out{i}": t for i, t in enumerate(y if isinstance(y, (list, tuple)) else [y])}

    D = tf.lite.experimental
    with tempfile.TemporaryDirectory() as tmp:
        mod = Serve(model)
        tf.saved_model.save(mod, tmp, signatures=mod.serve)
        # The debugger feeds lists by the graph's input order, which is the converter's choice: read it
        # off a float conversion (the in<i> signature names) and order every sample so.
        from memopt.lite.embed import io_order

        flt = Path(tmp) / "float.tflite"
        flt.write_bytes(tf.lite.TFLiteConverter.from_saved_model(tmp).convert())
        pos, _ = io_order(flt, len(specs), 1)

        def graph_order(s):
            g = [None] * len(s)
            for i, p in enumerate(pos):
                g[p] = s[i]
            return g

        data = lambda: (graph_order(s) for s in samples)  # noqa: E731
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        if not per_channel:
            converter._experimental_disable_per_channel = True
        debugger = D.QuantizationDebugger(converter=converter, debug_dataset=data)
        debugger.run()
        buf = io.StringIO()
        debugger.layer_statistics_dump(buf)
        stats = list(csv.DictReader(io.StringIO(buf.getvalue())))

        def err(r):
            return float(r["mean_squared_error"]) ** 0.5 / (float(r["scale"]) or 1.0)

        worst = [r["tensor_name"] for r in sorted(stats, key=err, reverse=True)[:k]]
        opts = D.QuantizationDebugOptions(denylisted_nodes=worst)
        return D.QuantizationDebugger(converter=converter, debug_dataset=data,
                                      debug_options=opts).get_nondebug_quantized_model()


def convert_cached(model_path, cfg: ConvertConfig, folder, rep_data: Sequence[str] = (),
                   ev_tenths: Sequence[int] | None = None) -> Path:
    """``folder/<quant>-<W>x<H>.tflite``, converted only if it is not there yet (studies resume)."""
    opts = ("-pt" if not cfg.per_channel else "") + (f"-f{cfg.float_layers}" if cfg.float_layers else "")
    path = Path(folder) / f"{cfg.quant}{opts}-s{cfg.samples}-{cfg.width}x{cfg.height}.tflite"
    if not path.exists():
        convert(model_path, cfg, path, rep_data, ev_tenths)
    return path
