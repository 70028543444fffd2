"""``int8-auto``: int8 that keeps the network's quality, the fewest operations kept in float.

Plain int8 can wreck a network's output while every layer looks fine alone: an operation whose
kernel forces one scale on tensors of very different ranges (a concatenation of a wide-range branch
and a fine one, a channel max and the concat after it) rounds the narrow one away, and the error
shows at that operation's *producers* (they are quantized to its scale), so error-by-tensor ranks
the wrong ones. TFLite's QuantizationDebugger ranks that way, and fails on some graphs. memopt
measures each operation's sensitivity itself, with AI Edge Quantizer on the float .tflite (which
keeps the float file's tensor names, so per-op recipes address operations by their outputs):

1. sensitivity: the outputs' PSNR against the float model's when that one operation alone is int8
   (every other in float), on calibration samples;
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
    psnr_db: float               # the outputs vs the float model's, on the samples
    plain_db: float              # the same for plain int8 (k = 0)
    trials: int

    def describe(self) -> str:
        kept = f"{len(self.float_ops)} of {self.ops} operations in float" if self.float_ops else "no operation in float"
        return (f"int8-auto: {kept}, {self.psnr_db:.1f} dB vs the float model on the calibration samples "
                f"(plain int8 {self.plain_db:.1f} dB; {self.trials} quantizations)")


def _run_all(buf: bytes, samples, in_pos) -> list[dict[str, np.ndarray]]:
    """Each sample's outputs (dequantized to float) under '__out<i>'."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf, num_threads=2)
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    got = []
    for s in samples:
        for x, p in zip(s, in_pos):
            d = ins[p]
            it.set_tensor(d["index"], _quantize(np.asarray(x, np.float32), d))
        it.invoke()
        got.append({f"__out{i}": _dequantize(it.get_tensor(d["index"]), d) for i, d in enumerate(outs)})
    return got


def _quantize(x, d):
    scale, zero = d["quantization"]
    if not np.issubdtype(d["dtype"], np.integer) or not scale:
        return x.astype(d["dtype"])
    info = np.iinfo(d["dtype"])
    return np.clip(np.rint(x / scale + zero), info.min, info.max).astype(d["dtype"])


def _dequantize(v, d):
    scale, zero = d["quantization"]
    if np.issubdtype(v.dtype, np.integer) and scale:
        return (v.astype(np.float32) - zero) * scale
    return v.astype(np.float32)


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
    from memopt.lite.splice import unpack

    sg = unpack(float_buf).subgraphs[0]
    names = []
    for op in sg.operators:
        outs = [int(t) for t in op.outputs if int(t) >= 0]
        if outs:
            n = sg.tensors[outs[0]].name
            names.append(n.decode() if isinstance(n, bytes) else n)
    return names


IO_OPS = ("INPUT", "OUTPUT")  # AI Edge Quantizer's names for the graph's inputs and outputs


def fix_signature(buf: bytes) -> bytes:
    """AI Edge Quantizer quantizes a graph output that other operations also read (a split window's
    reduced tensors) into a new tensor ``<name>_quantized`` and makes that the graph's output, but its
    signature keeps naming the old tensor, which LiteRT then cannot map: point it at the new one."""
    from memopt.lite.splice import pack, unpack

    m = unpack(buf)
    sg = m.subgraphs[0]

    def name(i):
        n = sg.tensors[i].name
        return n.decode() if isinstance(n, bytes) else n

    changed = False
    for sd in m.signatureDefs or []:
        for group, graph in ((sd.inputs or [], [int(x) for x in sg.inputs]), (sd.outputs or [], [int(x) for x in sg.outputs])):
            for t in group:
                if t.tensorIndex in graph:
                    continue
                new = [g for g in graph if name(g) == f"{name(t.tensorIndex)}_quantized"]
                if len(new) == 1:
                    t.tensorIndex, changed = new[0], True
    return pack(m, len(buf) + 4096) if changed else buf


def _scope(name: str) -> str:
    return f"(^|;){re.escape(name)}($|;)"


def auto_int8(float_path, samples: Sequence[list[np.ndarray]], target_db: float = 40.0) -> Mixed:
    """The float .tflite at ``float_path`` in int8 with the fewest operations kept in float for its outputs
    to reach ``target_db`` against the float model's on ``samples`` (each the model's inputs in its
    layout's order); see the module doc."""
    from ai_edge_quantizer import quantizer, recipe

    from memopt.lite.embed import io_order
    from memopt.lite.quantize import signature_inputs

    if not samples:
        raise MemoptError("int8-auto calibrates and judges on samples; none were given")
    float_buf = Path(float_path).read_bytes()
    key, names = signature_inputs(float_path)
    in_pos, _ = io_order(float_path, len(names), 1)
    data = {key: [{names[p]: np.asarray(x, np.float32) for p, x in zip(in_pos, s)} for s in samples]}
    ref = _run_all(float_buf, samples, in_pos)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():  # sizes, timings, progress bars, and
            warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": its calibration's way
            q = quantizer.Quantizer(float_buf, recipe.static_wi8_ai8())
            calib = q.calibrate(data)
    except Exception as e:  # noqa: BLE001  the quantizer raises many types on ops it cannot handle
        raise MemoptError(f"{float_path}: AI Edge Quantizer cannot calibrate it ({type(e).__name__}: "
                          f"{first_line(e)[:200]})") from None
    trials = 0

    # An operation by its outputs' scope; the graph's inputs and outputs by AI Edge Quantizer's
    # INPUT / OUTPUT pseudo-operations.
    def where(n):
        return (".*", n) if n in IO_OPS else (_scope(n), "*")

    def static(n=None):
        regex, op = where(n) if n else (".*", "*")
        return [{**entry, "regex": regex, "operation": op} for entry in recipe.static_wi8_ai8()]

    def no(n=None):
        regex, op = where(n) if n else (".*", "*")
        return [{"regex": regex, "operation": op, "algorithm_key": "no_quantize"}]

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
        with tempfile.TemporaryDirectory() as d:  # the quantized file's own input order
            p = Path(d) / "q.tflite"
            p.write_bytes(buf)
            pos, _ = io_order(p, len(names), 1)
        return buf, _psnr(ref, _run_all(buf, samples, pos))

    def mixed(float_ops):
        # The graph's inputs and outputs stay float: AI Edge Quantizer renames an int8 output that other
        # operations also read ("..._quantized") without its signature following (a split window's
        # reduced tensors), and a window's float I/O is small.
        rec = static() + no("INPUT") + no("OUTPUT")
        for n in float_ops:
            rec += no(n)
        return make(rec, f"{len(float_ops)} operations in float")

    plain, plain_db = mixed(())
    if plain_db >= target_db:
        return Mixed(plain, (), 0, plain_db, plain_db, trials)
    ops = quantized_ops(float_buf)
    alone = {n: make(no() + no("INPUT") + no("OUTPUT") + static(n), f"{n} alone")[1] for n in ops}
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
    return Mixed(best[0], tuple(order[:hi]), len(order), best[1], plain_db, trials)
