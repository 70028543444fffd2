"""The channel dependency graph of a tf_keras functional model: which channels must go together.

After Torch-Pruning's DepGraph (Fang et al., CVPR 2023), for Keras: every channel of every tensor
is a node; layers tie nodes together:
  producers   Conv2D, SeparableConv2D, Conv2DTranspose, Dense: new channels (removable)
  per-channel BatchNormalization, activations, pooling, upsampling, padding, cropping, dropout,
              DepthwiseConv2D with depth multiplier 1, global pooling: channel i out is channel i in
  merges      Add / Subtract / Multiply / Average / Maximum / Minimum: channel i of every input and of
              the output are one (a 1-channel input is broadcast and stays whole)
  concat      Concatenate on the channel axis: the inputs' channels side by side
  tf.* ops    elementwise ones (tf.nn.gelu, tf.sigmoid, x * 0.1, tf.image.resize) pass channels;
              x * se, a + b tie them like the merges; tf.concat on the channel axis concatenates;
              tf.reduce_* over the spatial axes keeps them, over the channel axis reduces them to
              a new one (fewer inputs, the same op); a channel slice (``t[..., 0]``) or tf.stack
              freezes what it reads (positions are baked in)
  Lambda      its code is not read but probed on a random input: f(x[..., perm]) equal to
              f(x)[..., perm] passes channels, equal to f(x) with one channel out is a channel
              reduction (``K.mean(t, axis=3)``); anything else freezes
Anything else (tf.* ops not listed, Reshape, custom layers, nested models, a depth multiplier above 1,
a layer called twice) freezes the channels it touches, as do the model's inputs and outputs. A
**group** is a set of producers whose output channels are tied one to one (a residual chain, an
SE block's scale and its trunk): slimming removes the same channel positions from all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from memopt.network.tfops import op_axis, spatial_axes

PRODUCERS = ("Conv2D", "SeparableConv2D", "Conv2DTranspose", "Dense")
PASS = ("BatchNormalization", "ReLU", "LeakyReLU", "PReLU", "ELU", "Activation", "Dropout", "SpatialDropout2D",
        "MaxPooling2D", "AveragePooling2D", "UpSampling2D", "ZeroPadding2D", "Cropping2D", "Softmax",
        "GlobalAveragePooling2D", "GlobalMaxPooling2D", "LayerNormalization", "GaussianNoise", "Resizing")
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


class _UF:
    def __init__(self):
        self.parent: list[int] = []

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Group:
    """Producers whose output channels are tied one to one; ``size`` channels each."""

    producers: list[str]
    size: int
    frozen: str = ""                       # why it cannot be slimmed ("" when it can)
    units: list[int] = field(default_factory=list)  # the channel nodes (roots), one per channel


@dataclass
class ChannelGraph:
    groups: list[Group]
    nodes: dict[str, list[int]]            # layer name -> node ids of its output channels (roots)
    inputs_of: dict[str, list[str]]        # layer name -> names of the layers feeding it
    reduces: set[str] = field(default_factory=set)  # layers reducing over channels (a mean of fewer differs)

    def describe(self) -> list[str]:
        out = []
        for g in self.groups:
            state = f"frozen: {g.frozen}" if g.frozen else "slimmable"
            out.append(f"{g.size:4d} ch  {', '.join(g.producers)}  ({state})")
        return out


def _inbound(layer) -> list:
    """The layers feeding ``layer``'s (only) call."""
    node = layer.inbound_nodes[0]
    ls = node.inbound_layers
    return list(ls) if isinstance(ls, (list, tuple)) else [ls]


def channel_graph(model) -> ChannelGraph:
    """Build the channel dependency graph of a functional tf_keras model (see the module doc)."""
    uf = _UF()
    chans: dict[str, list[int]] = {}          # layer -> a node per output channel
    frozen: dict[int, str] = {}               # node -> why
    produced_by: dict[int, str] = {}          # node (as created) -> producer layer
    inputs_of: dict[str, list[str]] = {}
    reduces: set[str] = set()

    def fresh(n: int, why: str = "") -> list[int]:
        ids = [uf.new() for _ in range(n)]
        for i in ids:
            if why:
                frozen[i] = why
        return ids

    def freeze(ids, why):
        for i in ids:
            frozen.setdefault(i, why)

    def merge(ins, n_out: int, what: str) -> list[int]:
        """Channel i of every full-width input is one node; a 1-channel input is broadcast, whole."""
        full = [i for i in ins if len(i) == n_out]
        for i in ins:
            if len(i) not in (1, n_out):
                freeze(i, f"{what} merges unequal widths")
        base = full[0] if full else fresh(n_out, f"{what}: no full-width input")
        for other in full[1:]:
            for a, b in zip(base, other):
                uf.union(a, b)
        return base

    def width(t) -> int:
        return int(t.shape[-1])

    for layer in model.layers:
        cls, name = layer.__class__.__name__, layer.name
        if cls == "InputLayer":
            chans[name] = fresh(width(layer.output), "a model input")
            continue
        if len(layer.inbound_nodes) != 1:
            out = layer.output if len(layer.inbound_nodes) == 1 else layer.get_output_at(0)
            srcs = [lay for n in layer.inbound_nodes for lay in
                    (n.inbound_layers if isinstance(n.inbound_layers, (list, tuple)) else [n.inbound_layers])]
            for s in srcs:
                freeze(chans.get(s.name, []), f"{name} is called more than once")
            chans[name] = fresh(width(out), f"{name} is called more than once")
            inputs_of[name] = [s.name for s in srcs]
            continue
        srcs = _inbound(layer)
        inputs_of[name] = [s.name for s in srcs]
        ins = [chans.get(s.name, []) for s in srcs]
        out_t = layer.output
        if isinstance(out_t, (list, tuple)):
            for i in ins:
                freeze(i, f"{name} ({cls}) has several outputs")
            chans[name] = fresh(width(out_t[0]), f"{name} ({cls}) has several outputs")
            continue
        n_out = width(out_t)
        if cls in PRODUCERS:
            chans[name] = fresh(n_out)
            for i in chans[name]:
                produced_by[i] = name
        elif (cls in PASS or (cls == "DepthwiseConv2D" and layer.depth_multiplier == 1)) and len(ins[0]) == n_out:
            chans[name] = ins[0]
        elif cls in MERGES:
            chans[name] = merge(ins, n_out, f"{name} ({cls})")
        elif cls == "Concatenate" and layer.axis in (-1, len(out_t.shape) - 1):
            chans[name] = [i for part in ins for i in part]
        elif cls in ("TFOpLambda", "SlicingOpLambda", "Lambda"):
            kind, why = _op_channels(layer, ins, n_out)
            if kind == "pass":
                chans[name] = ins[0]
            elif kind == "merge":
                chans[name] = merge(ins, n_out, name)
            elif kind == "concat":
                chans[name] = [i for part in ins for i in part]
            elif kind == "reduce":  # a new channel computed from all of them: fewer is the same op
                chans[name] = fresh(n_out)
                reduces.add(name)
            else:
                for i in ins:
                    freeze(i, why)
                chans[name] = fresh(n_out, why)
        else:
            why = f"{name} ({cls}) is not understood" if cls not in ("DepthwiseConv2D",) else \
                f"{name}: depth multiplier {layer.depth_multiplier}"
            for i in ins:
                freeze(i, why)
            chans[name] = fresh(n_out, why)
    for t in model.outputs:
        freeze(chans[t._keras_history.layer.name], "a model output")
    # Groups: roots of the union-find, with the producers whose channels they hold.
    by_root: dict[int, list[int]] = {}
    for i in range(len(uf.parent)):
        by_root.setdefault(uf.find(i), []).append(i)
    unit_producers: dict[int, tuple[str, ...]] = {}
    unit_frozen: dict[int, str] = {}
    for root, ids in by_root.items():
        unit_producers[root] = tuple(sorted({produced_by[i] for i in ids if i in produced_by}))
        unit_frozen[root] = next((frozen[i] for i in ids if i in frozen), "")
    groups: dict[tuple[str, ...], Group] = {}
    for root, prods in unit_producers.items():
        if not prods:
            continue
        g = groups.setdefault(prods, Group(list(prods), 0))
        g.size += 1
        g.units.append(root)
        if unit_frozen[root] and not g.frozen:
            g.frozen = unit_frozen[root]
    roots = {name: [uf.find(i) for i in ids] for name, ids in chans.items()}
    return ChannelGraph(list(groups.values()), roots, inputs_of, reduces)


_UNARY = ("nn.gelu", "nn.relu", "nn.relu6", "nn.silu", "nn.swish", "nn.elu", "nn.leaky_relu", "nn.sigmoid",
          "math.sigmoid", "math.tanh", "nn.tanh", "math.abs", "math.exp", "math.log", "math.sqrt", "math.square",
          "math.negative", "math.softplus", "image.resize", "clip_by_value", "identity", "math.reciprocal")
_BINARY = ("__operators__.add", "math.add", "math.multiply", "math.subtract", "math.truediv", "math.divide",
           "math.maximum", "math.minimum", "math.pow", "__operators__.sub", "math.multiply_no_nan")
_REDUCE = ("math.reduce_mean", "math.reduce_max", "math.reduce_min", "math.reduce_sum", "reduce_mean",
           "reduce_max", "reduce_min", "reduce_sum")


def _op_channels(layer, ins, n_out):
    """How a tf.* op, a slicing op or a Lambda treats channels: (kind, why) with kind pass | merge |
    concat | reduce | freeze."""
    cls = layer.__class__.__name__
    if cls == "Lambda":
        return _probe_lambda(layer, ins, n_out)
    fn = getattr(layer, "symbol", "") or ""
    name = layer.name
    n_in = [len(i) for i in ins]
    if cls == "SlicingOpLambda":
        return ("pass", "") if _channels_untouched(layer) and n_in[0] == n_out else \
            ("freeze", f"{name} selects channels by position")
    base = fn.split(".")[-1]
    if fn in _UNARY or base in ("gelu", "relu", "sigmoid", "tanh"):
        return ("pass", "") if len(ins) == 1 and n_in[0] == n_out else ("freeze", f"{name} ({fn}) changes widths")
    if fn in _BINARY:
        if len(ins) == 1:  # a tensor and a constant
            return ("pass", "") if n_in[0] == n_out else ("freeze", f"{name} ({fn}) broadcasts a constant's channels")
        return "merge", ""
    if fn in ("concat", "concat_v2") or fn.endswith(".concat"):
        axis = op_axis(layer)
        rank = len(layer.output.shape)
        return ("concat", "") if axis in (-1, rank - 1) else ("freeze", f"{name} concatenates on axis {axis}")
    if fn in _REDUCE:
        axis = op_axis(layer)
        rank = len(layer.output.shape) if layer.output.shape.rank else 0
        axes = set(axis) if isinstance(axis, (list, tuple)) else {axis}
        if axis is not None and spatial_axes(axis) and len(axes) == 2 and n_in[0] == n_out:
            return "pass", ""
        if axes in ({-1}, {3}) and n_out == 1 and rank == 4:
            return "reduce", ""
    return "freeze", f"{name} ({fn}) is not understood"


def _channels_untouched(layer) -> bool:
    """A slice whose channel part is the whole axis (``t[:, ::2, ::2, :]``, ``t[..., :]``)."""
    for node in layer.inbound_nodes:
        args = getattr(node, "call_args", ()) or ()
        spec = args[1] if len(args) > 1 else (getattr(node, "call_kwargs", {}) or {}).get("slice_spec")
        spec = spec if isinstance(spec, (list, tuple)) else [spec]
        last = spec[-1] if spec else None
        whole = isinstance(last, slice) and last == slice(None, None, None)
        if not whole and not (isinstance(last, dict) and all(last.get(k) is None for k in ("start", "stop", "step"))):
            return False
    return True


def _probe_lambda(layer, ins, n_out):
    """A Lambda's code is not read: it is run on a random input, and on that input with its channels
    permuted."""
    import numpy as np

    name = layer.name
    why = f"{name} (Lambda) is not per-channel nor a channel reduction"
    if len(ins) != 1:
        return "freeze", f"{name} (Lambda) reads several tensors"
    shape = [d if d is not None else 8 for d in layer.input.shape]
    if len(shape) != 4:
        return "freeze", why
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    perm = rng.permutation(shape[-1])
    try:
        y, yp = (np.asarray(layer(t)) for t in (x, x[..., perm]))
    except Exception:  # noqa: BLE001  the Lambda's own code refusing: frozen
        return "freeze", why
    if y.shape == x.shape and np.allclose(yp, y[..., perm], atol=1e-5):
        return "pass", ""
    if y.shape[-1] == 1 and n_out == 1 and y.shape[:-1] == x.shape[:-1] and np.allclose(yp, y, atol=1e-5):
        return "reduce", ""
    return "freeze", why
