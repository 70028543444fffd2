"""Split a network at its global reductions, so that a window can be given the whole frame's values.

A global reduction (GlobalAveragePooling2D / GlobalMaxPooling2D, ``tf.reduce_mean|max|min|sum``
over both spatial axes) gives one value per channel from the whole frame; squeeze-excitation
blocks and global illumination branches are made of them. ``split_at_globals`` rebuilds the
network (the same layer objects, so the same weights) with each reduction's output replaced by a
new input, and with each reduction's *input* tensor added as an output. The result, the window
model, is local: given the global values, a window with a halo covering its receptive field
computes the frame's output exactly. The reduced tensors let a caller accumulate the values over
window cores (memopt.lite.context).

Each value has a ``level``: 0 when its input depends on no other global value, else one more than
the deepest value it depends on; values of one level are computed in one pass over the windows,
so a network with K reductions in sequence needs K passes before the output pass.

Supported: functional tf_keras models whose reductions sit at the top level (not inside a nested
model). A Dense after a Flatten, attention, or a Lambda whose code makes it global cannot be
split: the error says which layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from memopt.errors import MemoptError
from memopt.network.values import GlobalValue, reduced_tensors

_REDUCE_OPS = {"reduce_mean": "mean", "reduce_max": "max", "reduce_min": "min", "reduce_sum": "sum"}


@dataclass
class Split:
    """The window model (network inputs + one per value -> network outputs + each value's input)."""

    model: Any
    values: list[GlobalValue]
    n_in: int
    n_out: int
    globals_model: Any          # network inputs -> the global values (for calibration and checks)

    def global_values(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The network's global values on ``inputs`` (its tensors for one frame or window)."""
        got = self.globals_model(inputs if len(inputs) > 1 else inputs[0], training=False)
        return [np.asarray(g, np.float32) for g in (got if isinstance(got, (list, tuple)) else [got])]

    @property
    def passes(self) -> int:
        """Passes over the windows to get every value exactly (the output pass not counted)."""
        return 1 + max(v.level for v in self.values) if self.values else 0


def reduction(layer) -> str | None:
    """'mean' / 'max' / 'min' / 'sum' when ``layer`` reduces both spatial axes, else None."""
    from memopt.network.tfops import spatial_axes
    from memopt.tfenv import keras

    L = keras.layers
    if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return None  # memopt's windows are channels-last maps
        return "mean" if isinstance(layer, L.GlobalAveragePooling2D) else "max"
    if layer.__class__.__name__ == "TFOpLambda":
        fn = getattr(layer, "symbol", "") or ""
        op = next((r for k, r in _REDUCE_OPS.items() if k in fn), None)
        kw = {}
        for node in layer.inbound_nodes:
            kw.update(getattr(node, "call_kwargs", {}) or {})
        axis = kw.get("axis")
        if op and axis is not None and spatial_axes(axis) and len(np.atleast_1d(axis)) == 2:
            return op
    return None


def _is_tensor(t) -> bool:
    return hasattr(t, "_keras_history")


def split_at_globals(model, feed: list[np.ndarray], frame_hw: tuple[int, int], scaling=()) -> Split:
    """The window model of ``model`` (see the module doc). ``feed``: the network's input tensors for
    a frame of ``frame_hw`` (memopt.network.layout), used to read each reduced tensor's resolution.
    ``scaling``: the resizes that follow the frame (memopt.network.graph.scaling_resizes): local."""
    from memopt.network.graph import non_local_ops
    from memopt.tfenv import keras, tf

    names = {layer.name: reduction(layer) for layer in model.layers}
    found = {n: r for n, r in names.items() if r}
    ops = non_local_ops(model, scaling)
    nested = [o for o in ops if "/" in o.layer and o.kind == "global"]
    other = [o for o in ops if o.kind == "global" and "/" not in o.layer and o.layer not in found]
    if nested:
        raise MemoptError(f"{nested[0].layer}: a global operation inside a nested model; memopt splits top-level "
                          "layers only (build the network flat)")
    if other:
        raise MemoptError(f"{other[0].layer} ({other[0].why}) is global but not a reduction memopt can split "
                          "(global pooling, tf.reduce_* over the spatial axes)")
    if not found:
        raise MemoptError("the network has no global reduction to split at")
    if not hasattr(model, "_nodes_by_depth"):
        raise MemoptError("only functional tf_keras models can be split at their global reductions")

    new_inputs = [keras.Input(type_spec=t.type_spec, name=f"frame_in{i}") for i, t in enumerate(model.inputs)]
    memo = {id(t): n for t, n in zip(model.inputs, new_inputs)}
    deps: dict[int, frozenset] = {id(t): frozenset() for t in model.inputs}
    g_inputs, reduced, originals, order, value_deps = [], [], [], [], []

    def mapped(t):
        return memo[id(t)] if _is_tensor(t) else t

    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            layer = node.layer
            ins = [t for t in tf.nest.flatten(node.keras_inputs)]
            outs = tf.nest.flatten(node.outputs)
            d = frozenset().union(*(deps[id(t)] for t in ins)) if ins else frozenset()
            if layer.name in found:
                shape = tuple(outs[0].shape[1:])
                g = keras.Input(shape, name=f"global_{len(g_inputs)}")
                g_inputs.append(g)
                reduced.append(memo[id(ins[0])])
                originals.append(outs[0])
                order.append(layer.name)
                value_deps.append(d)
                memo[id(outs[0])] = g
                deps[id(outs[0])] = d | {len(order) - 1}  # by value (a layer may be used twice)
                continue
            args = tf.nest.map_structure(mapped, node.call_args)
            kwargs = tf.nest.map_structure(mapped, node.call_kwargs)
            res = tf.nest.flatten(layer(*args, **kwargs))
            for t, r in zip(outs, res):
                memo[id(t)] = r
                deps[id(t)] = d
    levels: list[int] = []
    for d in value_deps:  # nodes were visited in dependency order
        levels.append(1 + max(levels[x] for x in d) if d else 0)
    order = [n if order.count(n) == 1 else f"{n}#{order[:k].count(n)}" for k, n in enumerate(order)]
    outputs = [memo[id(t)] for t in model.outputs]
    direct = [next((i for i, t in enumerate(new_inputs) if t is x), -1) for x in reduced]
    window = keras.Model(new_inputs + g_inputs, outputs + [x for x, d in zip(reduced, direct) if d < 0],
                         name=f"{model.name}_window")
    gmodel = keras.Model(model.inputs, originals, name=f"{model.name}_globals")
    got = gmodel(list(feed) if len(feed) > 1 else feed[0], training=False)
    got = [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]
    scales = _scales(window, feed, got, len(outputs), frame_hw, direct)
    values = [GlobalValue(n, found[n.split("#")[0]], lv, s, tuple(int(x) for x in g.shape), d)
              for n, lv, s, g, d in zip(order, levels, scales, got, direct)]
    return Split(window, values, len(model.inputs), len(outputs), gmodel)


def split_for(model, layout, evs, hw: tuple[int, int], source: str = "model", scaling=()) -> Split:
    """``split_at_globals`` with a random frame of ``hw`` fed through ``layout``; errors name ``source``."""
    from memopt.network.probe import _frames

    h, w = hw
    try:
        feed = layout.feed(_frames(np.random.default_rng(0), len(evs), h, w), evs)
        split = split_at_globals(model, feed, (h, w), scaling)
        _check_split(model, split, feed)
        return split
    except MemoptError as e:
        raise MemoptError(f"{source}: {e}") from None
    except Exception as e:  # noqa: BLE001  Keras / TensorFlow refusing the rebuilt graph: one line
        from memopt.errors import first_line

        raise MemoptError(f"{source}: cannot be split at its global reductions ({type(e).__name__}: "
                          f"{first_line(e)[:160]})") from None


def _check_split(model, split: Split, feed: list) -> None:
    """The window model given the frame's own global values must be the network on that frame
    (within float rounding): a split is a derived model too."""
    from memopt.network.check import TOLERANCE, relative_diff

    x = feed if len(feed) > 1 else feed[0]
    want = model(x, training=False)
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    got = split.model(list(feed) + split.global_values(feed), training=False)
    worst = relative_diff(want, (list(got) if isinstance(got, (list, tuple)) else [got])[: split.n_out])
    if worst > 10 * TOLERANCE:
        raise MemoptError(f"the window model given the frame's own global values differs from the network by "
                          f"{worst:.3g} of the output's range; memopt will not tile with a split that is not the network")


def analyse(model, layout, evs, size: int = 256, source: str = "model", scaling=()):
    """(the split, the window model's probe) of a network with global operations, probed at its own
    size when it is built for one; every failure is one MemoptError line (inspect and runs report it)."""
    own = layout.frame_hw([tuple(t.shape) for t in model.inputs])
    if own and own[0] != own[1]:
        raise MemoptError("a network fixed to a non-square frame is not probed; give a builder")
    size = own[0] if own else size
    split = split_for(model, layout, evs, (size, size), source, scaling)
    try:
        return split, local_probe(split, layout, evs, size)
    except MemoptError:
        raise
    except Exception as e:  # noqa: BLE001  the network's own code refusing the probe
        from memopt.errors import first_line

        raise MemoptError(f"{source}: probing its window model failed ({type(e).__name__}: {first_line(e)[:160]})") \
            from None


def _scales(window, feed, values: list[np.ndarray], n_out: int, frame_hw, direct: list[int]) -> list[int]:
    """Each reduced tensor's resolution (frame px per element), from a call on ``feed`` with zero values
    shaped as the network's own (``values``)."""
    got = window(list(feed) + [np.zeros_like(v, np.float32) for v in values], training=False)
    extra = iter(got[n_out:])
    shapes = [np.asarray(feed[d] if d >= 0 else next(extra)).shape for d in direct]
    h, w = frame_hw
    if any(len(sh) != 4 or h % sh[1] or w % sh[2] or h // sh[1] != w // sh[2] for sh in shapes):
        raise MemoptError("a reduced tensor is not a [N, H/s, W/s, C] map of the frame; memopt splits "
                          "channels-last spatial reductions only")
    return [h // sh[1] for sh in shapes]


def local_probe(split: Split, layout, evs, size: int = 256):
    """The window model's receptive field and alignment, its global values fixed to those of a random
    frame: the halo and grid exact streaming needs. Both cover the network's outputs (memopt.network.probe)
    and the reduced tensors too (a branch that only feeds a reduction may reach further, or sit on a
    coarser grid: each window's core must map to whole elements of it)."""
    from dataclasses import replace

    from memopt.network.probe import _frames, _poke, probe

    fixed: list = []

    def run(xs):
        if not fixed:
            fixed.extend(split.global_values(xs))
        return [np.asarray(o) for o in split.model(list(xs) + fixed, training=False)]

    def fn(x):
        out = run(x if isinstance(x, list) else [x])[:split.n_out]
        return out[0] if len(out) == 1 else out

    pr = probe(fn, layout, len(evs), evs, size)
    if pr.non_local:
        raise MemoptError("the network still looks at the whole frame with its global reductions given (a Lambda "
                          "or a layer memopt cannot read?); windows cannot be exact")
    # The reduced tensors: one pixel changed at every offset of the coarsest grid near the centre.
    s = pr.size
    base = _frames(np.random.default_rng(1), len(evs), s, s)

    def reduced(frames):
        xs = layout.feed(frames, evs)
        return reduced_tensors(split.values, xs, run(xs), split.n_out)

    x0 = reduced(base)
    radius, grid, c = pr.radius, min(64, s // 8), s // 2 - min(64, s // 8) // 2
    for o in range(grid):
        p = c + o
        for v, a, b in zip(split.values, x0, reduced(_poke(base, p, p))):
            rows, cols = np.nonzero(np.any(np.asarray(a) != np.asarray(b), axis=(0, 3)))
            for r, q in zip(rows, cols):  # element (r, q) covers frame px [r*scale, (r+1)*scale)
                k = v.scale
                radius = max(radius, abs(r * k - p), abs((r + 1) * k - 1 - p), abs(q * k - p), abs((q + 1) * k - 1 - p))
    if radius >= s // 2 - grid:
        raise MemoptError(f"a reduced tensor reaches {radius} px or more on a {s} px frame; windows cannot be exact")
    align = math.lcm(pr.alignment or 2, *(v.scale for v in split.values))
    return replace(pr, radius=int(radius), alignment=int(align))
