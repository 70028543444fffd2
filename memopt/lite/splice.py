"""Put one .tflite's graph inside another's: the quantized window model as the body of an in-graph tile
loop (memopt.variants.ingraph).

The TF converter cannot calibrate a loop model for full-integer quantization, so the loop is converted
around a placeholder instead: an IF op whose branches stand in for the window network. ``inline``
replaces that IF by the operators of a window .tflite quantized on its own (its tensors, weights and
opcodes copied in, its inputs and outputs wired to the IF's operands and results), then drops the
branches, the dead ops left behind and the buffers no tensor reads. The result is one flatbuffer with
builtin ops only; the caller checks it against the host tile loop of the same window file before use.

Which IF operand is which window input: the placeholder multiplies each input's maximum by a marker
constant (``marker(k)``); the branch's graph shows which operand reaches which marker.
"""
from __future__ import annotations

import numpy as np

from memopt.errors import MemoptError
from memopt.lite.flatbuf import pack, unpack


def marker(k: int) -> float:
    """The constant the placeholder multiplies window input k's maximum by (never 1: x * 1 is folded)."""
    return float(k + 2)


def _code(m, op) -> int:
    c = m.operatorCodes[op.opcodeIndex]
    return max(c.builtinCode, c.deprecatedBuiltinCode)


def _markers(m, sg) -> list[int]:
    """For each input of the placeholder branch ``sg``, the window input k whose marker it reaches."""
    from ai_edge_litert import schema_py_generated as schema

    consumers: dict[int, list] = {}
    for op in sg.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(op)
    found = []
    for t in sg.inputs:
        t, k = int(t), None
        for _ in range(4):  # input -> [CAST] -> REDUCE_MAX -> MUL(marker)
            ops = consumers.get(t, [])
            if len(ops) != 1:
                break
            op = ops[0]
            if _code(m, op) == schema.BuiltinOperator.MUL:
                const = [int(x) for x in op.inputs if int(x) != t]
                data = m.buffers[sg.tensors[const[0]].buffer].data if const else None
                if data is not None and len(data) == 4:
                    k = int(round(float(np.frombuffer(bytes(bytearray(data)), np.float32)[0]))) - 2
                break
            t = int(op.outputs[0])
        found.append(k)
    if None in found or sorted(found) != list(range(len(found))):
        raise MemoptError("the in-graph loop's placeholder lost its markers in conversion: cannot tell which "
                          "window input is which")
    return found


def inline(loop: bytes, window: bytes, in_pos: list[int], out_pos: list[int]) -> bytes:
    """``loop`` with its one IF op (the placeholder) replaced by ``window``'s graph. ``in_pos``/``out_pos``:
    for each window input k / output j in the placeholder's order, its position among the window
    graph's inputs / outputs."""
    from ai_edge_litert import schema_py_generated as schema

    m, q = unpack(loop), unpack(window)
    IF = schema.BuiltinOperator.IF
    sites = [(s, i) for s, g in enumerate(m.subgraphs) for i, op in enumerate(g.operators) if _code(m, op) == IF]
    if len(sites) != 1:
        raise MemoptError(f"the in-graph loop has {len(sites)} IF ops, not the one placeholder")
    s, at = sites[0]
    g = m.subgraphs[s]
    op = g.operators[at]
    then_i, else_i = op.builtinOptions.thenSubgraphIndex, op.builtinOptions.elseSubgraphIndex
    order = _markers(m, m.subgraphs[then_i])
    args, results = [int(x) for x in op.inputs[1:]], [int(x) for x in op.outputs]
    qs = q.subgraphs[0]
    q_in, q_out = [int(x) for x in qs.inputs], [int(x) for x in qs.outputs]
    if len(args) != len(q_in) or len(results) != len(q_out):
        raise MemoptError(f"the window model has {len(q_in)} inputs and {len(q_out)} outputs; the loop's "
                          f"placeholder {len(args)} and {len(results)}")
    wire = {q_in[in_pos[k]]: args[j] for j, k in enumerate(order)}
    wire.update({q_out[out_pos[j]]: results[j] for j in range(len(results))})
    for qt, lt in wire.items():
        a, b = qs.tensors[qt], g.tensors[lt]
        if a.type != b.type or list(a.shape) != list(b.shape):
            raise MemoptError(f"window tensor {a.name!r} ({list(a.shape)}, type {a.type}) does not match the loop's "
                              f"({list(b.shape)}, type {b.type})")
        b.quantization = a.quantization  # the window's kernels read their own I/O scales from these tensors
    # the window's buffers, opcodes and tensors, appended
    buf_map = {0: 0}
    for t in qs.tensors:
        if t.buffer and t.buffer not in buf_map:
            buf_map[t.buffer] = len(m.buffers)
            m.buffers.append(q.buffers[t.buffer])
    code_key = [(c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version) for c in m.operatorCodes]
    code_map = {}
    for i, c in enumerate(q.operatorCodes):
        key = (c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version)
        if key not in code_key:
            code_key.append(key)
            m.operatorCodes.append(c)
        code_map[i] = code_key.index(key)
    t_map = dict(wire)
    for i, t in enumerate(qs.tensors):
        if i not in t_map:
            t.buffer = buf_map.get(t.buffer, 0)
            t_map[i] = len(g.tensors)
            g.tensors.append(t)
    new_ops = []
    for qop in qs.operators:
        qop.opcodeIndex = code_map[qop.opcodeIndex]
        qop.inputs = [t_map[int(x)] if int(x) >= 0 else -1 for x in qop.inputs]
        qop.outputs = [t_map[int(x)] for x in qop.outputs]
        if qop.intermediates is not None:
            qop.intermediates = [t_map[int(x)] for x in qop.intermediates]
        new_ops.append(qop)
    g.operators = g.operators[:at] + new_ops + g.operators[at + 1:]
    _drop_subgraphs(m, {then_i, else_i})
    for sub in m.subgraphs:
        _drop_dead(sub)
    _drop_buffers(m)
    return pack(m, len(loop) + len(window) + (1 << 16))


def _drop_subgraphs(m, gone: set[int]) -> None:
    """Remove subgraphs nobody calls any more, renumbering the WHILE / IF / CALL_ONCE references."""
    if 0 in gone:
        raise MemoptError("cannot drop the main subgraph")
    keep = [i for i in range(len(m.subgraphs)) if i not in gone]
    new = {old: n for n, old in enumerate(keep)}
    m.subgraphs = [m.subgraphs[i] for i in keep]
    fields = ("condSubgraphIndex", "bodySubgraphIndex", "thenSubgraphIndex", "elseSubgraphIndex",
              "initSubgraphIndex")
    for sub in m.subgraphs:
        for op in sub.operators:
            opt = op.builtinOptions
            for f in fields:
                if opt is not None and hasattr(opt, f):
                    old = getattr(opt, f)
                    if old in gone:
                        raise MemoptError("a dropped subgraph is still called")
                    setattr(opt, f, new[old])
    for sd in m.signatureDefs or []:
        sd.subgraphIndex = new[sd.subgraphIndex]


def _drop_dead(g) -> None:
    """Operators none of whose outputs anything reads (the placeholder's predicate), until none is left."""
    while True:
        read = {int(x) for op in g.operators for x in op.inputs} | {int(x) for x in g.outputs}
        live = [op for op in g.operators if any(int(x) in read for x in op.outputs)]
        if len(live) == len(g.operators):
            return
        g.operators = live


def _drop_buffers(m) -> None:
    """Keep only the buffers a tensor or a metadata entry reads (buffer 0 is the empty one, by convention)."""
    used = {0} | {t.buffer for sub in m.subgraphs for t in sub.tensors} | {md.buffer for md in m.metadata or []}
    keep = sorted(used)
    new = {old: n for n, old in enumerate(keep)}
    m.buffers = [m.buffers[i] for i in keep]
    for sub in m.subgraphs:
        for t in sub.tensors:
            t.buffer = new[t.buffer]
    for md in m.metadata or []:
        md.buffer = new[md.buffer]
