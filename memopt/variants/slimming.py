"""``slim<m>``: channel slimming of any tf_keras functional network, whole channels removed, then
fine-tuned.

The channel dependency graph (memopt.network.channels) ties the channels that must go together
(residual adds, squeeze-excitation scales, concatenations); each slimmable group keeps
``round(m * size)`` channel positions (a multiple of 8 from 16 channels up, 4 from 8: XNNPACK's
output-channel tiles, measured in results/channel-rounding), ranked by BatchNorm |gamma| where a BatchNorm follows the
group's producers, else by the producers' filter L1 norms (each producer's norms divided by its
mean, so layers of different scales count alike). The result is a genuinely narrower model
rebuilt from the same graph with sliced weights, on the same tensor layout, so params, MACs,
activations and scratch all shrink. memopt's U-Net goes through the same code (its groups are
single convolutions; the result is the former U-Net-only ``slim0.5``). Frozen groups (inputs,
outputs, code memopt cannot read) keep their width. A builder network is slimmed at the
fine-tuning crop; the plan (memopt.network.narrow) narrows the builder's graph at every other size
the same way, and the fine-tuned weights load into it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from memopt.errors import MemoptError
from memopt.network.narrow import rebuild
from memopt.variants.finetune import fine_tune

_PART = re.compile(r"^slim(mem)?(0?\.\d+)$")
PROXY_HW = (384, 512)  # the memory cost model's frame: the resolution-dependent part scales with pixels


@dataclass(frozen=True)
class SlimConfig:
    width: float = 0.5    # slim<m>: the fraction of channels each group keeps; slimmem<m>: of the memory cost
    memory: bool = False  # slimmem<m>: per-group widths chosen to cut the predicted peak by m

    def __post_init__(self):
        if not 0.0 < self.width < 1.0:
            raise ValueError(f"the multiplier must be in (0, 1), got {self.width}")

    @property
    def name(self) -> str:
        return f"slim{'mem' if self.memory else ''}{self.width:g}"

    @classmethod
    def parse(cls, part: str) -> "SlimConfig | None":
        m = _PART.match(part)
        if not m:
            if part.startswith("slim"):
                raise ValueError("slimming is slim<m> (uniform width multiplier, e.g. slim0.5) or slimmem<m> (the "
                                 "predicted peak cut by m, e.g. slimmem0.5), 0 < m < 1")
            return None
        return cls(float(m.group(2)), bool(m.group(1)))


def keep_count(size: int, multiplier: float) -> int:
    """round(m * size), to a multiple of 8 from 16 channels up (4 from 8): XNNPACK computes output
    channels in tiles (8 for int8 and 16 for fp32 on x86, 8 for fp32 and 16 for int8 on ARM64), so a
    width between two multiples costs about what the next one does (results/channel-rounding)."""
    k = max(1, round(size * multiplier))
    if k >= 16:  # the nearest multiple of 8, or the whole group when that is nearer
        return min({*range(16, size + 1, 8), size}, key=lambda o: (abs(o - k), -o))
    return max(4, round(k / 4) * 4) if k >= 8 else k


def _out_axis(layer) -> int:
    return 2 if layer.__class__.__name__ == "Conv2DTranspose" else -1


def _kernel(layer):
    w = layer.get_weights()
    return w[1] if layer.__class__.__name__ == "SeparableConv2D" else w[0]  # pointwise kernel


def importance(model, graph) -> tuple[dict[int, float], str]:
    """Per channel node (root): its importance, and what ranked it."""
    score: dict[int, float] = {}
    bn_roots = set()
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization" and layer.scale:
            gamma = np.abs(layer.get_weights()[0])
            for r, g in zip(graph.nodes[layer.name], gamma):
                score[r] = score.get(r, 0.0) + float(g)
                bn_roots.add(r)
    for g in graph.groups:
        for p in g.producers:
            layer = model.get_layer(p)
            k = _kernel(layer)
            ax = _out_axis(layer) % k.ndim
            norms = np.abs(k).sum(axis=tuple(a for a in range(k.ndim) if a != ax))
            norms = norms / (norms.mean() or 1.0)
            for r, n in zip(graph.nodes[p], norms):
                if r not in bn_roots:
                    score[r] = score.get(r, 0.0) + float(n)
    how = "BatchNorm |gamma|" if bn_roots else "filter L1 norm"
    if bn_roots and len(bn_roots) < len(score):
        how = "BatchNorm |gamma| where present, filter L1 norm elsewhere"
    return score, how


def plan_removal(model, graph, multiplier: float) -> tuple[set[int], str]:
    """The channel nodes to remove: the weakest of every slimmable group."""
    score, how = importance(model, graph)
    removed: set[int] = set()
    for g in graph.groups:
        if g.frozen:
            continue
        keep = keep_count(g.size, multiplier)
        ranked = sorted(g.units, key=lambda r: (-score.get(r, 0.0), r))
        removed |= set(ranked[keep:])
    return removed, how


def slim_network(model, multiplier: float):
    """(narrower model, the graph, how channels were ranked, the removed channels) for ``model``."""
    from memopt.network.channels import channel_graph

    graph = channel_graph(model)
    removed, how = plan_removal(model, graph, multiplier)
    if not removed:
        frozen = "; ".join(sorted({g.frozen for g in graph.groups if g.frozen}))[:200]
        raise MemoptError(f"no channel group can be slimmed ({frozen or 'no producers'})")
    return rebuild(model, graph, removed), graph, how, removed


def memory_cost(model, layout, n_frames: int, hw: tuple[int, int] = PROXY_HW) -> float:
    """The predicted peak's parts that channels move (MB): the activations arena and the packed
    weights of the model's float32 .tflite at ``hw`` (memopt.lite.predict). XNNPACK's indirection buffers
    (a pointer per output pixel and tap) do not depend on channels and the runtime is fixed: both
    are left out, so the factor is one slimming can reach."""
    import tempfile
    from pathlib import Path

    from memopt.convert import keras_converter
    from memopt.lite.predict import predict

    converter, _ = keras_converter(model, layout, n_frames, *hw)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.tflite"
        path.write_bytes(converter.convert())
        p = predict(path)
    return p.arena_mb + p.packed_weights_mb


def slim_for_memory(model, factor: float, cost, log=None):
    """(narrower model, the graph, a line on what it chose, the removed channels): per-group widths, one step at a time, each
    step taken where the predicted memory falls most per unit of importance lost (lazy greedy: a
    step's gain is measured again only when it comes to the top), until ``cost`` (a function of a
    model) is at most ``factor`` of the original's. Steps are about 1/8 of a group (4 channels from 16
    up); no group goes below 1/8 of its width."""
    import heapq

    from memopt.network.channels import channel_graph

    graph = channel_graph(model)
    score, _ = importance(model, graph)
    groups = [g for g in graph.groups if not g.frozen]
    if not groups:
        raise MemoptError("no channel group can be slimmed")
    ranked = [sorted(g.units, key=lambda r: (-score.get(r, 0.0), r)) for g in groups]
    keep = [g.size for g in groups]
    floor = [max(1, round(g.size / 8)) for g in groups]
    step = [4 * max(1, round(g.size / 32)) if g.size >= 16 else max(1, g.size // 4) for g in groups]

    def removed(k):
        return set().union(*(set(r[n:]) for r, n in zip(ranked, k)))

    def c(k):
        return cost(rebuild(model, graph, removed(k)))

    def ratio(i, cur):
        n = keep[i] - step[i]
        if n < floor[i]:
            return None
        new = c(keep[:i] + [n] + keep[i + 1:])
        lost = sum(score.get(r, 0.0) for r in ranked[i][n:keep[i]])
        return (cur - new) / (lost + 1e-9), new

    start = cur = c(keep)
    target = factor * start
    heap = []
    for i in range(len(groups)):
        r = ratio(i, cur)
        if r is not None:
            heapq.heappush(heap, (-r[0], i, r[1]))
    evaluations = len(groups) + 1
    while cur > target and heap:
        _, i, _ = heapq.heappop(heap)
        r = ratio(i, cur)  # measured again at the current widths
        evaluations += 1
        if r is None:
            continue
        if heap and -heap[0][0] > r[0]:  # no longer the best: back in the queue with its new gain
            heapq.heappush(heap, (-r[0], i, r[1]))
            continue
        if r[1] >= cur:
            continue  # this group's step no longer frees anything
        keep[i] -= step[i]
        cur = r[1]
        if log:
            log(f"slimmem: {'+'.join(groups[i].producers)} -> {keep[i]} of {groups[i].size}: {cur:.1f} MB")
        nxt = ratio(i, cur)
        evaluations += 1
        if nxt is not None:
            heapq.heappush(heap, (-nxt[0], i, nxt[1]))
    widths = ", ".join(f"{'+'.join(g.producers)} {k}/{g.size}" for g, k in zip(groups, keep) if k < g.size)
    note = (f"activations + weights predicted {start:.1f} -> {cur:.1f} MB at {PROXY_HW[1]}x{PROXY_HW[0]} fp32 "
            f"(target {target:.1f}, {evaluations} conversions); kept {widths or 'all'}")
    return rebuild(model, graph, removed(keep)), graph, note, removed(keep)


def apply(cfg: SlimConfig, build, ctx):
    """Slim the build's model and fine-tune it; the smaller model replaces it."""
    src = build.model
    # A builder builds a new graph at every size: it is slimmed at the fine-tuning crop, and the
    # plan (the survivors of every producer) narrows each later build the same way.
    base = src.load((ctx.finetune.crop, ctx.finetune.crop)) if src.builder else src.load()
    try:
        if cfg.memory:
            from memopt.convert import network_evs

            n = len(ctx.evs or network_evs(src, base))
            slim, graph, note, removed = slim_for_memory(base, cfg.width, lambda m: memory_cost(m, src.io, n),
                                                         log=lambda line: print(line, flush=True))  # the log
            (ctx.work / "slimming.txt").parent.mkdir(parents=True, exist_ok=True)
            (ctx.work / "slimming.txt").write_text(note + "\n")
        else:
            slim, graph, _, removed = slim_network(base, cfg.width)
        check_slimmed(base, slim, graph, removed, src.io, len(ctx.evs) if ctx.evs else None)
    except MemoptError as e:
        raise MemoptError(f"{src.name}: {e}") from None
    if not (ctx.work / "model.keras").exists():
        n = _reestimate(slim, src, ctx)
        if n:
            print(f"slimming: BatchNorm statistics re-estimated on {n} crops", flush=True)
    out = fine_tune(lambda: slim, src, ctx.finetune, ctx.work, verbose=ctx.verbose, evs=ctx.evs)
    if src.builder:
        import json

        from memopt.fsutil import atomic_write_text
        from memopt.network.narrow import plan

        spec = ctx.work / "slim_plan.json"
        if not spec.exists():
            atomic_write_text(spec, json.dumps(plan(base, graph, removed)))
        out = replace(out, slim=str(spec))
    return replace(build, model=out)


def zeroed_copy(model, graph, removed):
    """A copy of ``model`` (its weights) in which every layer that mixes channels (convolutions,
    Dense) reads the removed channels with zero weights: what the slimmed model must compute. Zeroing
    at the readers, not the producers, keeps it exact whatever sits between (a sigmoid, a BN beta)."""
    from memopt.tfenv import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        cls, ins = layer.__class__.__name__, graph.inputs_of.get(layer.name, [])
        if cls not in ("Conv2D", "Dense", "Conv2DTranspose", "SeparableConv2D") or not ins:
            continue
        idx = [j for j, r in enumerate(graph.nodes.get(ins[0], [])) if r in removed]
        if not idx:
            continue
        w = layer.get_weights()
        k = w[0]
        if cls == "Conv2DTranspose":  # (kh, kw, out, in)
            k[:, :, :, idx] = 0
        else:  # Conv2D / Dense (..., in, out); SeparableConv2D's depthwise part (kh, kw, in, multiplier)
            k[..., idx, :] = 0
        layer.set_weights([k, *w[1:]])
    return copy


def check_slimmed(model, slim, graph, removed, layout, n_frames: int | None) -> None:
    """Before fine-tuning: the slimmed model must equal ``model`` with the removed channels zeroed
    (within float rounding) on a random frame in the layout, else the row fails with the figure."""
    from memopt.network.check import layout_shapes, outputs_diff

    renorm = [lay.name for lay in model.layers if (lay.__class__.__name__ in ("LayerNormalization", "Softmax")
                                                   or lay.name in graph.reduces)
              and any(r in removed for i in graph.inputs_of.get(lay.name, []) for r in graph.nodes.get(i, []))]
    if renorm:  # they normalise or reduce across channels: with fewer they compute something else, by design
        return
    d = outputs_diff(zeroed_copy(model, graph, removed), slim, layout_shapes(model, layout, n_frames))
    if not d <= 1e-4:
        raise MemoptError(f"the slimmed model differs from the original with its removed channels zeroed by {d:.3g} "
                          "of the output's range on a random frame; memopt will not fine-tune a copy that is not the "
                          "network")


def reestimate_batchnorm(model, batches) -> int:
    """Set every BatchNorm's moving mean / variance to the average of its batch statistics over
    ``batches`` (inputs in the model's layout), the other weights untouched: removing channels
    shifts the statistics downstream layers see (the network-slimming recipe recomputes them
    before fine-tuning). Returns the number of batches used; 0 when there is no BatchNorm."""
    from memopt.tfenv import keras

    bns = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization) and lay.trainable]
    if not bns:
        return 0
    momenta = [lay.momentum for lay in bns]
    n = 0
    try:
        for i, x in enumerate(batches):
            for lay in bns:  # moving = m * moving + (1 - m) * batch, with m = i / (i + 1): a running average
                lay.momentum = i / (i + 1)
            model(x if len(x) > 1 else x[0], training=True)
            n += 1
    finally:
        for lay, m in zip(bns, momenta):
            lay.momentum = m
    return n


def _reestimate(model, src, ctx, samples: int = 16) -> int:
    """BatchNorm re-estimation on crops of the fine-tuning data at the fine-tuning crop size."""
    from memopt.convert import representative_batches
    from memopt.variants.finetune import finetune_data

    data, long_side, exclude = finetune_data(src, ctx.finetune)
    crop = ctx.finetune.crop
    evs = ctx.evs or None
    if evs is None:
        from memopt.convert import network_evs

        evs = network_evs(src, model)
    return reestimate_batchnorm(model, representative_batches(data, evs, crop, crop, samples, long_side,
                                                              exclude, src.io))
