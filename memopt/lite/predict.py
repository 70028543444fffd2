"""Predict a .tflite's peak memory from the flatbuffer alone (no interpreter run).

peak = runtime + file + packed weights + activations arena + kernel scratch, where

- runtime: the measuring process before the model loads (Python, numpy, LiteRT: RUNTIME_MB);
- file: the .tflite is read into memory;
- packed weights: XNNPACK repacks every conv's weights into its own layout (float32 for
  float16 models, whose weights it dequantizes);
- activations arena: every non-constant tensor, with its lifetime from the op order (produced by
  op i, last read by op j; graph inputs and outputs live throughout, inputs are never shared),
  placed greedily by size at the lowest offset free over its lifetime, as TFLite's
  ArenaPlanner does with its greedy-by-size strategy (and XNNPACK's memory planner for the
  values inside a delegated graph);
- kernel scratch, which grows with the resolution like the activations do and must be modelled:
  XNNPACK's indirection buffers (a pointer per output pixel per kernel tap, for every
  convolution with a kernel larger than 1x1, every transposed convolution and every pooling;
  they live as long as the operator, i.e. the whole run; with the transient indirection buffer
  (runtime setting ``tib``) XNNPACK rebuilds the convolutions' buffers at each run in the one
  workspace all operators share, so only the largest convolution's is held, while transposed
  convolutions and poolings keep theirs), or, for the built-in kernels, the
  per-op temporaries planned in the arena with the activations: the im2col matrix of each
  quantized convolution (output pixels x kh x kw x Cin bytes; float convolutions run without one),
  the col2im columns of each transposed convolution and, quantized, its int32 accumulator; and
  outside the arena ruy's packed copies of the largest im2col matrix.

The constants were fitted to host measurements (see docs/measuring.md); XNNPACK's fixed
cost is that of LiteRT's CompiledModel (its environment and accelerator registry add ~12 MB over
the Interpreter's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memopt.errors import MemoptError

RUNTIME_MB = 42.5          # python + numpy + ai_edge_litert, measured before the model loads
# Per kernel path: a fixed cost (thread pools, code pages, caches) and factors on the modelled
# scratch, fitted to host measurements at 256, 512 and 1024 px (docs/measuring.md).
CALIBRATION = {
    # CompiledModel; "transient": the share of the largest convolution's indirection buffer the
    # shared workspace holds with tib, fitted on 1024 px and 12 MP float32/int8 U-Nets (0.77-0.97
    # keeps every one within 10 %)
    "xnnpack": {"fixed_mb": 21.0, "indirection": 1.0, "transient": 0.85, "ruy": 0.0, "col2im": 0.0},
    "builtin-float": {"fixed_mb": 24.0, "transient": 0.0, "indirection": 0.0, "ruy": 0.0, "col2im": 1.0},
    "builtin-int8": {"fixed_mb": 9.0, "transient": 0.0, "indirection": 0.0, "ruy": 2.0, "col2im": 0.0},
}
POINTER_BYTES = 8
MB = 1024.0 * 1024.0

_DTYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 2, 17: 1}  # TensorType


@dataclass
class TensorUse:
    index: int
    name: str
    shape: tuple[int, ...]
    nbytes: int
    first: int
    last: int


@dataclass
class Prediction:
    peak_mb: float
    runtime_mb: float
    file_mb: float
    packed_weights_mb: float
    arena_mb: float
    scratch_mb: float
    largest: list[tuple[str, tuple[int, ...], float]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"Predicted peak memory footprint (MB): {self.peak_mb:.1f}",
               f"  runtime {self.runtime_mb:.1f} + file {self.file_mb:.1f} + packed weights "
               f"{self.packed_weights_mb:.1f} + activations arena {self.arena_mb:.1f} + kernel scratch "
               f"{self.scratch_mb:.1f}",
               "  largest tensors live at the busiest step:"]
        out += [f"    {mb:9.1f} MB  {list(shape)}  {name}" for name, shape, mb in self.largest]
        return out


def load_flatbuffer(path):
    """(schema module, Model, first SubGraph, file bytes) of a .tflite; clear errors for bad files."""
    from ai_edge_litert import schema_py_generated as schema

    p = Path(path)
    if not p.is_file():
        raise MemoptError(f"{p}: no such .tflite file")
    buf = p.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise MemoptError(f"{p}: not a .tflite flatbuffer (no TFL3 identifier); convert with memopt convert")
    try:
        model = schema.Model.GetRootAs(buf, 0)
        sg = model.Subgraphs(0)
        sg.TensorsLength(), sg.OperatorsLength()
    except Exception:  # a truncated flatbuffer fails anywhere inside the generated accessors
        raise MemoptError(f"{p}: corrupt or truncated .tflite") from None
    return schema, model, sg, len(buf)


def _op_name(schema, model, op) -> str:
    code = model.OperatorCodes(op.OpcodeIndex())
    c = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(c, str(c))


def greedy_by_size(tensors: list[TensorUse]) -> int:
    """Arena size (bytes) for tensors with lifetimes, placed largest first at the lowest free offset."""
    placed: list[tuple[int, int, TensorUse]] = []  # (offset, end, tensor)
    top = 0
    for t in sorted(tensors, key=lambda t: (-t.nbytes, t.first)):
        busy = sorted((o, e) for o, e, u in placed if not (u.last < t.first or t.last < u.first))
        offset = 0
        for o, e in busy:
            if offset + t.nbytes <= o:
                break
            offset = max(offset, e)
        placed.append((offset, offset + t.nbytes, t))
        top = max(top, offset + t.nbytes)
    return top


@dataclass
class _Usage:
    """One subgraph's share: its arena's tensors and the kernels' scratch."""

    uses: list
    packed: int = 0         # XNNPACK's repacked weights
    indirection: int = 0    # XNNPACK: a pointer per output pixel per tap, for the operator's lifetime
    transient_max: int = 0  # ... or, transient (tib), only the largest convolution's, in the shared workspace
    ruy_max: int = 0        # built-in kernels: ruy's packed copy of the largest im2col matrix
    col2im_max: int = 0     # built-in float transposed convolution: columns kept beside the arena
    quantized: bool = False
    n_ops: int = 0


def _invariants(schema, model) -> dict[int, set[int]]:
    """Per subgraph, the tensors that hold no memory of their own: a WHILE loop's invariant (a body
    input it passes through unchanged: the frame a tile loop reads), whose WHILE output and condition
    and body inputs share the caller's buffer (measured: the frame is held once), and the condition's
    inputs it never reads (tflite/kernels/while.cc removes them)."""
    out: dict[int, set[int]] = {g: set() for g in range(model.SubgraphsLength())}
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for j in range(sg.OperatorsLength()):
            op = sg.Operators(j)
            if _op_name(schema, model, op) != "WHILE" or op.BuiltinOptions() is None:
                continue
            opts = schema.WhileOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            cond, body = model.Subgraphs(opts.CondSubgraphIndex()), model.Subgraphs(opts.BodySubgraphIndex())
            b_in, b_out = body.InputsAsNumpy(), body.OutputsAsNumpy()
            same = [i for i in range(min(len(b_in), len(b_out))) if b_in[i] == b_out[i]]
            out[g] |= {int(op.Outputs(i)) for i in same if i < op.OutputsLength()}
            out[opts.CondSubgraphIndex()] |= {int(cond.Inputs(i)) for i in same if i < cond.InputsLength()}
            out[opts.BodySubgraphIndex()] |= {int(b_in[i]) for i in same}
            # the kernel removes the condition's unused inputs (the frames it does not read) before planning
            read = {int(cond.Operators(j).Inputs(k)) for j in range(cond.OperatorsLength())
                    for k in range(cond.Operators(j).InputsLength())}
            out[opts.CondSubgraphIndex()] |= {int(x) for x in cond.InputsAsNumpy()} - read
    return out


def _usage(schema, model, sg, xnnpack: bool, transient: bool, shared: set[int]) -> _Usage:
    """The tensors one subgraph plans in its own arena (TFLite gives every subgraph one) and its scratch;
    ``shared``: tensors that live in another subgraph's buffers (a loop's invariants)."""
    n_ops = sg.OperatorsLength()
    shapes, sizes, names, const = {}, {}, {}, set()
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        shapes[i] = shape
        sizes[i] = int(np.prod(shape, dtype=np.int64)) * _DTYPE_BYTES.get(t.Type(), 4)
        names[i] = t.Name().decode(errors="replace") if t.Name() else f"t{i}"
        b = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        if b is not None and (b.DataLength() > 0 or b.Size() > 0):
            const.add(i)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    ops = []
    for j in range(n_ops):
        op = sg.Operators(j)
        ins = [int(x) for x in (op.InputsAsNumpy() if op.InputsLength() else []) if x >= 0]
        outs = [int(x) for x in (op.OutputsAsNumpy() if op.OutputsLength() else []) if x >= 0]
        ops.append((_op_name(schema, model, op), ins, outs))
        for x in ins:
            last[x] = j
        for x in outs:
            first.setdefault(x, j)
            last.setdefault(x, j)
    graph_in = [int(x) for x in sg.InputsAsNumpy()] if sg.InputsLength() else []
    graph_out = [int(x) for x in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    for x in graph_in:
        first[x], last[x] = -1, n_ops  # inputs are set before Invoke and never shared
    for x in graph_out:
        last[x] = n_ops
    uses = [TensorUse(i, names[i], shapes[i], sizes[i], first[i], last.get(i, first[i]))
            for i in first if i not in const and i not in shared and sizes[i] > 0]
    u = _Usage(uses, n_ops=n_ops)
    temps: list[TensorUse] = []  # built-in kernels: per-op temporaries, planned in the arena
    for j, (name, ins, outs) in enumerate(ops):
        if not outs:
            continue
        out_shape = shapes[outs[0]]
        out_px = int(np.prod(out_shape[1:3])) if len(out_shape) == 4 else 0
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
            wshape = shapes[ins[1]]  # CONV_2D/DEPTHWISE: (in, w, ...); TRANSPOSE_CONV: (shape, w, in)
            data = ins[2] if name == "TRANSPOSE_CONV" else ins[0]
            kh, kw = (wshape[1], wshape[2]) if len(wshape) == 4 else (1, 1)
            cin = wshape[3] if len(wshape) == 4 else 1
            elem = _DTYPE_BYTES.get(sg.Tensors(data).Type(), 4)
            if xnnpack:
                u.packed += int(np.prod(wshape)) * 4
                if kh * kw > 1:  # 1x1 convolutions run as a GEMM without indirection
                    buf = out_px * kh * kw * POINTER_BYTES
                    # XNNPACK's runtime makes only convolutions (and depthwise ones) transient
                    if transient and name != "TRANSPOSE_CONV":
                        u.transient_max = max(u.transient_max, buf)
                    else:
                        u.indirection += buf
            elif name == "CONV_2D" and kh * kw > 1 and elem == 1:  # float convs run im2col-free (Eigen)
                im2col = out_px * kh * kw * cin * elem
                temps.append(TensorUse(-1, f"{names[outs[0]]} (im2col)", (out_px, kh * kw * cin), im2col, j, j))
                u.ruy_max = max(u.ruy_max, im2col)
            elif name == "TRANSPOSE_CONV":
                in_px = int(np.prod(shapes[data][1:3]))
                col2im = in_px * kh * kw * wshape[0] * 4  # float or int32 columns
                temps.append(TensorUse(-1, f"{names[outs[0]]} (col2im)", (in_px, kh * kw * wshape[0]), col2im, j, j))
                u.col2im_max = max(u.col2im_max, col2im)
                if elem == 1:  # quantized: an int32 accumulator of the whole output
                    temps.append(TensorUse(-1, f"{names[outs[0]]} (acc)", tuple(out_shape), out_px * out_shape[3] * 4, j, j))
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D") and xnnpack:
            u.indirection += out_px * 4 * POINTER_BYTES
    u.uses += temps
    u.quantized = any(_DTYPE_BYTES.get(sg.Tensors(i).Type(), 4) == 1 for i in first if i not in const)
    return u


def predict(path, xnnpack: bool = True, top: int = 5, runtime=None) -> Prediction:
    """Predicted peak memory of running ``path`` (see the module docstring); ``runtime``
    (memopt.lite.runtime.RuntimeConfig) overrides ``xnnpack`` and adds its memory settings.
    Every subgraph (a tile loop's body and condition) has its own arena; their scratch adds up."""
    transient = False
    if runtime is not None:
        xnnpack, transient = runtime.xnnpack, runtime.transient_indirection
    schema, model, _, file_bytes = load_flatbuffer(path)
    shared = _invariants(schema, model)
    subs = [_usage(schema, model, model.Subgraphs(g), xnnpack, transient, shared[g])
            for g in range(model.SubgraphsLength())]
    arena = sum(greedy_by_size(u.uses) for u in subs)
    packed = sum(u.packed for u in subs)
    quantized = any(u.quantized for u in subs)
    path = "xnnpack" if xnnpack else ("builtin-int8" if quantized else "builtin-float")
    c = CALIBRATION[path]
    scratch = c["indirection"] * sum(u.indirection for u in subs) \
        + c["transient"] * max(u.transient_max for u in subs) + c["ruy"] * max(u.ruy_max for u in subs) \
        + c["col2im"] * max(u.col2im_max for u in subs)
    fixed = c["fixed_mb"] * MB
    # The op step of the main graph where the most activation bytes are live, and what is live then.
    uses = subs[0].uses
    steps = range(-1, subs[0].n_ops + 1)
    live = lambda k: [u for u in uses if u.first <= k <= u.last]  # noqa: E731
    peak_step = max(steps, key=lambda k: sum(u.nbytes for u in live(k))) if uses else 0
    largest = sorted(live(peak_step), key=lambda u: -u.nbytes)[:top]
    runtime = RUNTIME_MB
    total = runtime + (file_bytes + packed + arena + scratch + fixed) / MB
    return Prediction(total, runtime, file_bytes / MB, packed / MB, arena / MB, (scratch + fixed) / MB,
                      [(u.name, u.shape, u.nbytes / MB) for u in largest])
