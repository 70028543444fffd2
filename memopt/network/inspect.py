"""``memopt inspect MODEL``: a network's tensors, its layout checked (or proposed), params, MACs per
megapixel, receptive field and alignment (probed), non-local operations, and what that means for
tiles and splits."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from memopt.errors import MemoptError


def _shape(s) -> str:
    return "[" + ", ".join("?" if d in (None, -1) else str(int(d)) for d in s) + "]"


def inspect(src, evs=None, layout_given: bool = True, probe_size: int = 256) -> list[str]:
    """Report lines for the network behind ``src`` (memopt.network.source.NetworkSource, or a .tflite
    path with ``src.model``). ``layout_given``: the user named a layout (else one is proposed)."""
    from memopt.network.layout import propose

    lines = []
    tflite = bool(src.model) and Path(src.model).suffix.lower() == ".tflite"
    if tflite:
        from memopt.lite import embed
        from memopt.lite.runtime import graph_io

        ins, outs = graph_io(src.model)
        ip, op = embed.io_order(src.model, len(ins), len(outs))  # the layout's order, not the graph's
        ins, outs = [ins[p] for p in ip], [outs[p] for p in op]
        in_shapes, out_shapes = [t.shape for t in ins], [t.shape for t in outs]
        names = [(t.name, t.shape, t.dtype.__name__) for t in ins], [(t.name, t.shape, t.dtype.__name__) for t in outs]
        found = embed.read(src.model)
        if found and not layout_given:
            src = replace(src, io=found[0])
            evs = evs or found[1]
            layout_given = True
        model = None
    else:
        model = src.load((probe_size, probe_size)) if src.builder else src.load()
        in_shapes = [tuple(t.shape) for t in model.inputs]
        out_shapes = [tuple(t.shape) for t in model.outputs]
        names = ([(t.name, tuple(t.shape), t.dtype.name) for t in model.inputs],
                 [(t.name, tuple(t.shape), t.dtype.name) for t in model.outputs])
    lines.append(f"network: {src.name}" + (f" (weights {src.weights})" if src.weights else ""))
    for kind, group in (("inputs", names[0]), ("outputs", names[1])):
        lines.append(f"{kind} (the model's order):")
        lines += [f"  {i}  {n:<32} {_shape(s):<22} {d}" for i, (n, s, d) in enumerate(group)]
    layout = src.io
    if not layout_given:
        guess = propose(in_shapes, out_shapes)
        if guess is None:
            lines.append("layout: none proposed (channel counts fit no planes); write one "
                         "(docs/bring-your-own-network.md)")
            return lines
        layout = guess
        lines.append(f"layout (proposed from the shapes: check EVs, range, chroma order and matrix): {layout.describe()}"
                     + (f"; output(s) {', '.join(map(str, layout.ignored))} ignored: not the frame's planes"
                        if layout.ignored else ""))
        lines.append("  as a recipe table: [baseline.io] inputs = " + _toml(layout.inputs) + ", outputs = "
                     + _toml(layout.outputs))
    else:
        lines.append(f"layout: {layout.describe()}")
    src = replace(src, io=layout)
    n = layout.frames_from_shapes(in_shapes) or (len(evs) if evs else None)
    try:
        if evs:
            evs = layout.resolve_evs(tuple(evs))
        elif not layout.needs_all_frames:
            evs = layout.explicit_evs
        elif n:
            from memopt.config import model_evs

            evs = layout.resolve_evs(model_evs(src.model or ".", n))
        layout.check(in_shapes, out_shapes, len(evs) if evs else (n or 1), src.name)
        lines.append(f"  fits the tensors; frames: EV {list(evs) if evs else '?'} (tenths of a stop); frame sizes "
                     f"multiples of {layout.step} px")
    except MemoptError as e:
        lines.append(f"  does NOT fit: {e}")
        return lines
    if model is not None:
        from memopt.network.graph import facts, non_local_ops, resizes, scaling_resizes

        try:
            f = facts(src, (512, 512))
            lines.append(f"params {f['params']:,}; {f['macs_per_mp'] / 1e3:.2f} GMAC per frame megapixel"
                         if f["params"] is not None else
                         "params and MACs: not counted (a plain SavedModel: its graph has no Keras layers)")
        except MemoptError as e:
            lines.append(f"params {model.count_params():,}; MACs not counted ({e})")
        scaling = scaling_resizes(src) if resizes(model) else ()
        ops = non_local_ops(model, scaling)
        if scaling:
            lines.append(f"resizes that follow the frame (the same ratio built at two sizes: local): {len(scaling)} of "
                         f"{len(resizes(model))}")
    else:
        ops, scaling = [], ()
    from memopt.lite.runner import keras_runner, load_runner
    from memopt.network.probe import probe

    r = load_runner(src.model, layout=layout) if tflite else keras_runner(model, layout, evs, src.name)
    own = r.fixed_hw
    if own and own[0] != own[1]:
        lines.append(f"receptive field: not probed (the model is fixed to a non-square {own[1]}x{own[0]} frame)")
        pr = None
    else:
        try:
            pr = probe(r.fn, layout, len(evs), evs, own[0] if own else probe_size)
            lines.append(pr.describe())
        except Exception as e:  # noqa: BLE001  the network's own code refuses the tensors
            if isinstance(e, MemoptError):
                raise
            raise MemoptError(f"{src.name} refused the layout's tensors ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160]}); check the layout's /k and channel counts") from None
    if model is not None:
        from memopt.network.channels import channel_graph

        groups = channel_graph(model).describe()
        lines.append(f"channel groups ({len(groups)}; slim<m> keeps round(m x size) of each slimmable one):")
        lines += [f"  {g}" for g in groups]
    if ops:
        lines.append("non-local operations:")
        lines += [f"  {o.layer}: {o.why}" + ("" if o.kind == "global" else " (unknown)") for o in ops]
    else:
        lines.append("non-local operations: none found in the graph" + (" (a .tflite: graph not read)" if tflite else ""))
    if (pr and pr.non_local) or any(o.kind == "global" for o in ops):
        lines += _context_lines(model, layout, evs, probe_size, scaling) if model is not None else [
            "tiles / splits: NOT exact (global operations); variants need -approx, e.g. tile512h64-approx"]
    elif pr:
        t = max(4 * pr.halo, 256) // pr.alignment * pr.alignment
        lines.append(f"tiles: exact with a halo >= {pr.halo} px and window sizes, halos multiples of {pr.alignment} px "
                     f"(e.g. tile{t}h{pr.halo}" + (f"; a {t} px window .tflite: memopt enhance --halo {pr.halo} "
                                                   f"--align {pr.alignment})" if tflite else ")"))
    return lines


def _context_lines(model, layout, evs, size: int, scaling=()) -> list[str]:
    """How the network splits at its global reductions, and what tiles with global context need."""
    from memopt.network.context import analyse

    try:
        split, pr = analyse(model, layout, evs, size, scaling=scaling)
    except MemoptError as e:
        return [f"global context: cannot split ({e})",
                "tiles / splits: NOT exact (global operations); variants need -approx, e.g. tile512h64-approx"]
    lines = [f"global context: {len(split.values)} reduction(s) in {split.passes} level(s) (exact streaming: "
             f"{split.passes} extra pass(es) over the windows):"]
    lines += [f"  level {v.level}: {v.layer} ({v.reduce} of a 1/{v.scale} tensor, value {list(v.shape)})"
              for v in split.values]
    t = max(4 * pr.halo, 256) // pr.alignment * pr.alignment
    lines.append(f"  the window model's {pr.describe()}")
    lines.append(f"tiles: exact with global context, e.g. tile{t}h{pr.halo}+stream; approximate and cheaper: "
                 f"tile{t}h{pr.halo}+ctx4; splits: poly2+ctx2")
    return lines


def _toml(items) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"
