"""The rows a study gets when the team's network arrives as a .tflite only.

Without the source there is no graph to fine-tune, prune, slim, split at global reductions or
rebuild at another size. What can exist: the file itself at its own size, its runtime settings
(the same file run with XNNPACK's memory options), fp16 / dyn8 / int8 / int16x8 made from it by
AI Edge Quantizer (memopt.lite.quantize), and tiles when the file is a square window smaller than
the frame. Every other row fails with one line saying what it needs.
"""
from __future__ import annotations

from pathlib import Path

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_bytes

NEEDS_SOURCE = "hand over the network's source (.keras / SavedModel / builder) for it"


def is_tflite(model) -> bool:
    return bool(model) and Path(str(model)).suffix.lower() == ".tflite"


def own_size(src) -> tuple[int, int] | None:
    """The frame (H, W) the .tflite takes, through its layout."""
    from memopt.lite.embed import io_order
    from memopt.lite.runtime import graph_io

    ins, outs = graph_io(src.model)
    in_pos, _ = io_order(src.model, len(ins), len(outs))  # the layout's order, as the runner feeds it
    return src.io.frame_hw([ins[p].shape for p in in_pos[: len(src.io.inputs)]])


def refuse(v, src, model_hw: tuple[int, int]) -> None:
    """One line if the variant ``v`` cannot be made from the .tflite alone."""
    from memopt.variants import REGISTRY

    tuned = [cfg.name for kind, cfg in v.steps if REGISTRY[kind].model_side]
    if tuned:
        raise MemoptError(f"{v.name}: fine-tuning, pruning and slimming train the network's weights, which a .tflite "
                          f"alone does not let memopt do; {NEEDS_SOURCE}")
    if v.ingraph:
        raise MemoptError(f"{v.name}: the in-graph loop is built around the network's window model in TensorFlow; "
                          f"{NEEDS_SOURCE}")
    if v.context:
        raise MemoptError(f"{v.name}: global context splits the network's graph at its reductions; {NEEDS_SOURCE}")
    if v.quant.float_layers or not v.quant.per_channel or v.quant.samples:
        raise MemoptError(f"{v.name}: int8 remedies (-f, -pt, -s) are the TF converter's; a .tflite is quantized by "
                          "AI Edge Quantizer's recipes (plain int8)")
    own = own_size(src)
    if own is None:  # a window row would silently run the whole frame; benchmark_model needs one shape too
        raise MemoptError(f"{v.name}: the .tflite has dynamic input sizes; memopt measures fixed-size files: convert "
                          "it at the phone's frame size (and at the window size for tile rows)")
    if tuple(own) != tuple(model_hw):
        what = "its windows" if v.tile else "its pieces" if v.split else "the deploy size"
        window = f", name tile{own[0]}h<H> rows if the file is a window" if own[0] == own[1] else ""
        raise MemoptError(f"{v.name}: the .tflite takes {own[1]}x{own[0]} frames; this row needs a "
                          f"{model_hw[1]}x{model_hw[0]} model ({what}); deploy at {own[1]}x{own[0]}{window}, or "
                          f"{NEEDS_SOURCE}")


def derive(v, src, evs, network: dict | None, out: Path, samples=(), judge=()) -> None:
    """The variant's .tflite from the baseline file: the layout and EVs embedded, quantized by AI
    Edge Quantizer when the variant asks (calibrated on ``samples``; int8-auto judged on ``judge``)."""
    from memopt.lite.embed import embed
    from memopt.lite.quantize import quantize_tflite
    from memopt.lite.runtime import graph_io

    ins, _ = graph_io(src.model)
    if any(t.dtype.__name__ != "float32" for t in ins) and v.quant.mode != "none":
        raise MemoptError(f"{v.name}: {src.model} is quantized already; quantizing it again needs the float file")
    base = embed(Path(src.model).read_bytes(), src.io, evs, network)
    if v.quant.mode == "none":
        atomic_write_bytes(out, base)
        return
    float_file = out.with_name(out.stem + ".float.tflite")
    atomic_write_bytes(float_file, base)
    try:  # the quantizer keeps the float file's metadata (the layout and EVs) in what it writes
        if v.quant.target_db:  # int8-auto: the fewest float operations for the target (memopt.lite.mixed)
            from memopt.lite.embed import merge
            from memopt.lite.mixed import auto_int8

            m = auto_int8(float_file, samples, v.quant.target_db, judge)
            atomic_write_bytes(out, m.flatbuffer)
            atomic_write_bytes(out, merge(out, {"mixed": {**m.to_meta(), "target_db": v.quant.target_db}}))
        else:
            atomic_write_bytes(out, quantize_tflite(float_file, v.quant.mode, samples))
    finally:
        float_file.unlink(missing_ok=True)


def facts(path) -> dict:
    """Params of a .tflite (elements of its constant tensors); MACs are not counted from a file."""
    from memopt.lite.predict import load_flatbuffer

    _, model, sg, _ = load_flatbuffer(path)
    graph_in = set(int(x) for x in sg.InputsAsNumpy())
    params = 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        b = model.Buffers(t.Buffer()) if t.Buffer() else None
        if i in graph_in or b is None or not (b.DataLength() or b.Size()):  # inline, or stored at an offset
            continue
        n = 1
        for d in t.ShapeAsNumpy() if t.ShapeLength() else ():
            n *= int(d)
        params += n
    return {"params": params, "macs_per_mp": None}
