"""``slim<m>``: channel slimming of any tf_keras functional network, whole channels removed, then
fine-tuned.

The channel dependency graph (memopt.network.channels) ties the channels that must go together
(residual adds, squeeze-excitation scales, concatenations); each slimmable group keeps
``round(m * size)`` channel positions (a multiple of 4 from 8 channels up, which XNNPACK's
kernels tile by; not measured here), ranked by BatchNorm |gamma| where a BatchNorm follows the
group's producers, else by the producers' filter L1 norms (each producer's norms divided by its
mean, so layers of different scales count alike). The result is a genuinely narrower model
rebuilt from the same graph with sliced weights, on the same tensor layout, so params, MACs,
activations and scratch all shrink. memopt's U-Net goes through the same code (its groups are
single convolutions; the result is the former U-Net-only ``slim0.5``). Frozen groups (inputs,
outputs, code memopt cannot read) keep their width; a builder network cannot be rebuilt narrower
(its builder builds the full width) and gets a clear error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from memopt.errors import MemoptError
from memopt.variants.finetune import fine_tune

_PART = re.compile(r"^slim(0?\.\d+)$")


@dataclass(frozen=True)
class SlimConfig:
    width: float = 0.5  # width multiplier: the fraction of channels each group keeps

    def __post_init__(self):
        if not 0.0 < self.width < 1.0:
            raise ValueError(f"width multiplier must be in (0, 1), got {self.width}")

    @property
    def name(self) -> str:
        return f"slim{self.width:g}"

    @classmethod
    def parse(cls, part: str) -> "SlimConfig | None":
        m = _PART.match(part)
        if not m:
            if part.startswith("slim"):
                raise ValueError("slimming is slim<m> with a width multiplier 0 < m < 1, e.g. slim0.5")
            return None
        return cls(float(m.group(1)))


def keep_count(size: int, multiplier: float) -> int:
    k = max(1, round(size * multiplier))
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


def rebuild(model, graph, removed: set[int]):
    """A narrower model: every layer's removed channels gone, its weights sliced to the survivors."""
    from memopt.tfenv import keras

    keep = {name: np.array([j for j, r in enumerate(roots) if r not in removed], dtype=int)
            for name, roots in graph.nodes.items()}

    def clone(layer):
        cls = layer.__class__.__name__
        if hasattr(layer, "layers"):
            return layer  # a nested model: frozen, the same object
        cfg = layer.get_config()
        if not layer.weights:
            try:
                return layer.__class__.from_config(cfg)
            except Exception:  # noqa: BLE001  e.g. code Keras will not rebuild: share the weightless layer
                return layer
        n = len(keep[layer.name])
        if cls in ("Conv2D", "SeparableConv2D", "Conv2DTranspose") and n != cfg["filters"]:
            cfg["filters"] = n
        elif cls == "Dense" and n != cfg["units"]:
            cfg["units"] = n
        return layer.__class__.from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        nl = new.get_layer(layer.name)
        if nl is layer or not layer.weights:
            continue
        ins = graph.inputs_of.get(layer.name, [])
        i_idx = keep[ins[0]] if ins else None
        o_idx = keep[layer.name]
        nl.set_weights(_slice(layer, i_idx, o_idx))
    return new


def _slice(layer, i_idx, o_idx) -> list[np.ndarray]:
    cls = layer.__class__.__name__
    w = layer.get_weights()
    if cls == "Conv2DTranspose":
        return [w[0][:, :, o_idx][:, :, :, i_idx], *([w[1][o_idx]] if len(w) > 1 else [])]
    if cls in ("Conv2D", "Dense"):
        k = w[0][..., i_idx, :][..., o_idx]
        return [k, *([w[1][o_idx]] if len(w) > 1 else [])]
    if cls == "SeparableConv2D":
        m = w[0].shape[-1]
        pw_in = (i_idx[:, None] * m + np.arange(m)[None]).ravel()
        return [w[0][:, :, i_idx], w[1][:, :, pw_in][..., o_idx], *([w[2][o_idx]] if len(w) > 2 else [])]
    if cls == "DepthwiseConv2D":
        return [w[0][:, :, o_idx], *([w[1][o_idx]] if len(w) > 1 else [])]
    if cls in ("BatchNormalization", "LayerNormalization", "PReLU"):
        return [x[o_idx] if x.ndim == 1 else x[..., o_idx] for x in w]
    return w  # a layer whose channels are frozen keeps its weights


def slim_network(model, multiplier: float):
    """(narrower model, the graph, how channels were ranked) for ``model``."""
    from memopt.network.channels import channel_graph

    graph = channel_graph(model)
    removed, how = plan_removal(model, graph, multiplier)
    if not removed:
        frozen = "; ".join(sorted({g.frozen for g in graph.groups if g.frozen}))[:200]
        raise MemoptError(f"no channel group can be slimmed ({frozen or 'no producers'})")
    return rebuild(model, graph, removed), graph, how


def apply(cfg: SlimConfig, build, ctx):
    """Slim the build's model and fine-tune it; the smaller model replaces it."""
    src = build.model
    if src.builder:
        raise MemoptError(f"{src.name}: slimming changes the architecture, which a builder rebuilds at full width; "
                          "give the network as a .keras / SavedModel to slim it")
    base = src.load()
    try:
        slim, _, _ = slim_network(base, cfg.width)
    except MemoptError as e:
        raise MemoptError(f"{src.name}: {e}") from None
    out = fine_tune(lambda: slim, src, ctx.finetune, ctx.work, verbose=ctx.verbose, evs=ctx.evs)
    return replace(build, model=out)
