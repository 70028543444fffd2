"""A narrower copy of a tf_keras functional network: the channels a slimming plan removes, gone.

``rebuild`` removes channel nodes of the network's channel graph (memopt.network.channels) from
every layer and slices the weights to the survivors. A plan (``plan``/``apply_plan``) records the
survivors by producer layer position, so that a builder network, which builds a new graph at every
size, is narrowed the same way at each (memopt.network.source loads a slimmed builder so).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from memopt.errors import MemoptError


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


def plan(model, graph, removed: set[int]) -> dict:
    """The survivors of every producer (by its position among the model's layers), with its class and
    full width so that another build can be checked to be the same network."""
    from memopt.network.channels import PRODUCERS

    out = []
    for k, layer in enumerate(model.layers):
        cls = layer.__class__.__name__
        if cls in PRODUCERS and layer.name in graph.nodes:
            roots = graph.nodes[layer.name]
            out.append({"layer": k, "class": cls, "width": len(roots),
                        "keep": [j for j, r in enumerate(roots) if r not in removed]})
    return {"producers": out}


def apply_plan(model, spec: dict | str | Path):
    """``model`` (a build of the network the plan was made on, at any size) narrowed by the plan."""
    from memopt.network.channels import channel_graph

    if not isinstance(spec, dict):
        spec = json.loads(Path(spec).read_text())
    graph = channel_graph(model)
    removed: set[int] = set()
    for p in spec["producers"]:
        k = p["layer"]
        layer = model.layers[k] if k < len(model.layers) else None
        roots = graph.nodes.get(layer.name, []) if layer is not None else []
        if layer is None or layer.__class__.__name__ != p["class"] or len(roots) != p["width"]:
            raise MemoptError(f"the slimming plan does not fit this build: layer {k} is not a {p['class']} of "
                              f"{p['width']} channels (the builder builds another graph at this size?)")
        keep = set(p["keep"])
        removed |= {r for j, r in enumerate(roots) if j not in keep}
    return rebuild(model, graph, removed)
