"""``int8-auto``: int8 that keeps the network's quality, the fewest operations kept in float.

Plain int8 can wreck a network's output while every layer looks fine alone: an operation whose
kernel forces one scale on tensors of very different ranges (a concatenation of a wide-range branch
and a fine one, a channel max and the concat after it) rounds the narrow one away, and the error
shows at that operation's *producers* (they are quantized to its scale), so error-by-tensor ranks
the wrong ones. TFLite's QuantizationDebugger ranks that way, and fails on some graphs. memopt
measures each operation's sensitivity itself, with AI Edge Quantizer on the float .tflite (which
keeps the float file's tensor names, so per-op recipes address operations by their outputs):

1. sensitivity: the outputs' PSNR against the float model's when that one operation alone is int8
   (every other in float), on held-out samples (other crops or scenes than the calibration's: a
   judge on the calibration's own samples is in-sample, and read 4 dB high at 12 MP);
2. the operations by sensitivity, and a bisection on k, the number of the most sensitive kept in
   float (the rest int8): the smallest k whose model reaches the target PSNR, with that PSNR. An
   operation alone costs nothing when it is not sensitive; the search keeps coupled ones (a concat
   and the convolution reading it) together because each alone is as bad.

Runs on the runtime side (no TensorFlow): AI Edge Quantizer and LiteRT's Interpreter.
"""
from __future__ import annotations

import contextlib
import io
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError, first_line


@dataclass(frozen=True)
class Mixed:
    flatbuffer: bytes
    float_ops: tuple[str, ...]   # output tensor names of the operations kept in float
    ops: int                     # operations ranked
    psnr_db: float               # the outputs vs the float model's, on the judge's samples
    plain_db: float              # the same for plain int8 (k = 0)
    trials: int
    held_out: bool = False       # judged on other samples than the calibration's

    def to_meta(self) -> dict:
        """The file's ``mixed`` metadata entry: what the search kept in float and reached."""
        return {"float_ops": list(self.float_ops), "ops": self.ops, "psnr_db": round(self.psnr_db, 2),
                "plain_db": round(self.plain_db, 2), "trials": self.trials, "held_out": self.held_out,
                "note": self.describe()}

    def describe(self) -> str:
        kept = f"{len(self.float_ops)} of {self.ops} operations in float" if self.float_ops else "no operation in float"
        on = "held-out samples" if self.held_out else "the calibration samples"
        return (f"int8-auto: {kept}, {self.psnr_db:.1f} dB vs the float model on {on} "
                f"(plain int8 {self.plain_db:.1f} dB; {self.trials} quantization{'s' * (self.trials != 1)})")


def _run_all(path, samples) -> list[dict[str, np.ndarray]]:
    """Each sample's outputs (dequantized to float) under '__out<i>'; ``samples`` in the layout's order
    (the file's in<i> / out<i> signature names say where each goes)."""
    from ai_edge_litert.interpreter import Interpreter

    from memopt.lite.embed import io_order
    from memopt.lite.runtime import dequantize, graph_io, quantize

    ins, outs = graph_io(path)
    in_pos, out_pos = io_order(path, len(ins), len(outs))
    it = Interpreter(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    got = []
    for s in samples:
        for x, p in zip(s, in_pos):
            it.set_tensor(ins[p].index, quantize(np.asarray(x, np.float32), ins[p]))
        it.invoke()
        got.append({f"__out{j}": dequantize(it.get_tensor(outs[p].index), outs[p]) for j, p in enumerate(out_pos)})
    return got


def _psnr(ref: list[dict], got: list[dict]) -> float:
    """The worst output's PSNR against the reference, peak = the reference output's range."""
    worst = np.inf
    for key in [k for k in ref[0] if k.startswith("__out")]:
        a = np.concatenate([r[key].ravel() for r in ref])
        b = np.concatenate([g[key].ravel() for g in got])
        peak = float(a.max() - a.min()) or 1.0
        mse = float(np.mean((a - b) ** 2))
        worst = min(worst, np.inf if mse == 0 else 10 * np.log10(peak * peak / mse))
    return worst


def quantized_ops(float_buf: bytes) -> list[str]:
    """The first output tensor name of every operation of the float model's main graph, in order."""
    from memopt.lite.flatbuf import tensor_name, unpack

    sg = unpack(float_buf).subgraphs[0]
    firsts = ([int(t) for t in op.outputs if int(t) >= 0][:1] for op in sg.operators)
    return [tensor_name(sg, o[0]) for o in firsts if o]


def fix_signature(buf: bytes) -> bytes:
    """AI Edge Quantizer quantizes a graph output that other operations also read (a split window's
    reduced tensors) into a new tensor ``<name>_quantized`` and makes that the graph's output, but its
    signature keeps naming the old tensor, which LiteRT then cannot map: point it at the new one."""
    from memopt.lite.flatbuf import pack, tensor_name, unpack

    m = unpack(buf)
    sg = m.subgraphs[0]
    changed = False
    for sd in m.signatureDefs or []:
        for group, graph in ((sd.inputs or [], [int(x) for x in sg.inputs]), (sd.outputs or [], [int(x) for x in sg.outputs])):
            for t in group:
                if t.tensorIndex in graph:
                    continue
                new = [g for g in graph if tensor_name(sg, g) == f"{tensor_name(sg, t.tensorIndex)}_quantized"]
                if len(new) == 1:
                    t.tensorIndex, changed = new[0], True
    return pack(m, len(buf) + 4096) if changed else buf


def _scope(name: str) -> str:
    return f"(^|;){re.escape(name)}($|;)"


def auto_int8(float_path, samples: Sequence[list[np.ndarray]], target_db: float = 40.0,
              judge: Sequence[list[np.ndarray]] = ()) -> Mixed:
    """The float .tflite at ``float_path`` in int8, calibrated on ``samples`` (each the model's inputs in
    its layout's order), with the fewest operations kept in float for its outputs to reach ``target_db``
    against the float model's on ``judge`` (held-out samples; without them, ``samples``: in-sample);
    see the module doc."""
    from ai_edge_quantizer import quantizer, recipe

    from memopt.lite.embed import io_order
    from memopt.lite.quantize import calibrate, signature_inputs

    if not samples:
        raise MemoptError("int8-auto calibrates and judges on samples; none were given")
    float_buf = Path(float_path).read_bytes()
    key, names = signature_inputs(float_path)
    in_pos, _ = io_order(float_path, len(names), 1)
    data = {key: [{names[p]: np.asarray(x, np.float32) for p, x in zip(in_pos, s)} for s in samples]}
    judge = list(judge)
    held_out = bool(judge)
    judge = judge or list(samples)
    ref = _run_all(float_path, judge)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():  # sizes, timings, progress bars, and
            warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": its calibration's way
            q = quantizer.Quantizer(float_buf, recipe.static_wi8_ai8())
            calib = calibrate(float_buf, recipe.static_wi8_ai8(), data)
    except Exception as e:  # noqa: BLE001  the quantizer raises many types on ops it cannot handle
        raise MemoptError(f"{float_path}: AI Edge Quantizer cannot calibrate it ({type(e).__name__}: "
                          f"{first_line(e)[:200]})") from None
    trials = 0

    def static(scope=".*"):
        return [{**entry, "regex": scope} for entry in recipe.static_wi8_ai8()]

    def no(scope=".*"):
        return [{"regex": scope, "operation": "*", "algorithm_key": "no_quantize"}]

    # The graph's inputs and outputs stay float (AI Edge Quantizer's INPUT / OUTPUT pseudo-operations):
    # it renames an int8 output that other operations also read ("..._quantized") without its
    # signature following (a split window's reduced tensors), and a window's float I/O is small.
    float_io = [{"regex": ".*", "operation": op, "algorithm_key": "no_quantize"} for op in ("INPUT", "OUTPUT")]

    def make(rec, what: str) -> tuple[bytes, float]:
        nonlocal trials
        trials += 1
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q.load_quantization_recipe(rec)
                buf = bytes(q.quantize(calib).quantized_model)
        except Exception as e:  # noqa: BLE001
            raise MemoptError(f"{float_path}: AI Edge Quantizer cannot make it int8 ({what}: {type(e).__name__}: "
                              f"{first_line(e)[:200]})") from None
        buf = fix_signature(buf)
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "q.tflite"
            p.write_bytes(buf)
            return buf, _psnr(ref, _run_all(p, judge))

    def mixed(float_ops):
        rec = static() + float_io
        for n in float_ops:
            rec += no(_scope(n))
        return make(rec, f"{len(float_ops)} operations in float")

    plain, plain_db = mixed(())
    if plain_db >= target_db:
        return Mixed(plain, (), 0, plain_db, plain_db, trials, held_out)
    ops = quantized_ops(float_buf)
    alone = {n: make(no() + float_io + static(_scope(n)), f"{n} alone")[1] for n in ops}
    order = sorted(ops, key=lambda n: (alone[n], ops.index(n)))  # the worst alone first
    lo, hi, best = 0, len(order), None
    while hi - lo > 1:  # lo fails, hi passes (all in float is the float model)
        mid = (lo + hi) // 2
        buf, db = mixed(order[:mid])
        if db >= target_db:
            hi, best = mid, (buf, db)
        else:
            lo = mid
    if best is None:
        buf, db = mixed(order[:hi])
        if db < target_db:
            raise MemoptError(f"int8-auto: {db:.1f} dB vs the float model with all {hi} operations in float "
                              f"(target {target_db:g}); AI Edge Quantizer's int8 cannot reach it")
        best = (buf, db)
    return Mixed(best[0], tuple(order[:hi]), len(order), best[1], plain_db, trials, held_out)
