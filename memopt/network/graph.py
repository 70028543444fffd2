"""What a network's Keras graph says: its non-local operations, MACs per megapixel, parameters.

Non-local operations make an output pixel depend on the whole frame, so a window of the frame is
not the frame: global pooling (squeeze-excitation), a mean / sum / max over both spatial axes,
a Dense after a Flatten or a Reshape that merges the spatial axes, a resize to a fixed size, and
attention (MultiHeadAttention / Attention layers, a matmul or einsum between activations). A
``Lambda`` layer's code cannot be read reliably; it is listed as unknown and the probe
(memopt.network.probe) decides.
"""
from __future__ import annotations

from dataclasses import dataclass

from memopt.errors import MemoptError
from memopt.network.tfops import op_axis, spatial_axes


@dataclass(frozen=True)
class NonLocal:
    layer: str
    kind: str       # "global" (certain) or "unknown" (code memopt cannot read)
    why: str


def _walk(model, prefix: str = ""):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and layer.__class__.__name__ in ("Functional", "Sequential", "Model"):
            yield from _walk(layer, prefix + layer.name + "/")
        else:
            yield prefix, layer


def non_local_ops(model, scaling=()) -> list[NonLocal]:
    """The layers of ``model`` that make its receptive field the whole frame (see the module doc).
    ``scaling``: the resizes (by their order among the model's resizes, ``resizes``) whose output is
    a fixed ratio of their input at every size (``scaling_resizes``): local, like a strided pooling."""
    from memopt.tfenv import keras

    L = keras.layers
    found = []
    flattened = set()
    order = {id(layer): k for k, layer in enumerate(resizes(model))}
    for prefix, layer in _walk(model):
        name, cls = prefix + layer.name, layer.__class__.__name__
        if order.get(id(layer), -1) in scaling:
            continue
        if isinstance(layer, (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D)):
            found.append(NonLocal(name, "global", f"{cls}: one value per channel from the whole frame"))
        elif isinstance(layer, L.Flatten) or (isinstance(layer, L.Reshape) and len(layer.target_shape) < 3):
            flattened.add(layer.name)
        elif isinstance(layer, L.Dense) and any(n.inbound_layers and _names(n) & flattened for n in layer.inbound_nodes):
            found.append(NonLocal(name, "global", "Dense after a Flatten/Reshape: mixes every pixel"))
        elif cls in ("MultiHeadAttention", "Attention", "AdditiveAttention"):
            found.append(NonLocal(name, "global", f"{cls}: attention over all positions"))
        elif isinstance(layer, L.Resizing):  # built per size by a builder it scales with the frame
            found.append(NonLocal(name, "unknown", f"Resizing to a fixed {layer.height}x{layer.width}: the probe "
                                                   "decides whether it scales with the frame"))
        elif cls in ("TFOpLambda", "SlicingOpLambda"):
            why = _tf_op(layer)
            if why:
                found.append(NonLocal(name, "global", why))
        elif isinstance(layer, L.Lambda):
            found.append(NonLocal(name, "unknown", "Lambda: its code is not read; the probe decides"))
    return found


def _names(node) -> set[str]:
    layers = node.inbound_layers
    return {lay.name for lay in (layers if isinstance(layers, (list, tuple)) else [layers])}


def _tf_op(layer) -> str:
    """Why a tf.* op inside a Keras model is non-local, or ''."""
    fn = getattr(layer, "symbol", "") or getattr(getattr(layer, "function", None), "__name__", "")
    if any(r in fn for r in ("reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "math.reduce")):
        if spatial_axes(op_axis(layer)):
            return f"{fn} over the spatial axes"
    if "matmul" in fn or "einsum" in fn:
        return f"{fn}: products of activations (attention)"
    if "image.resize" in fn or "resize" in fn:
        return f"{fn} to a size that does not follow the frame's (not the same ratio when the network is built " \
               "at two sizes): global"
    return ""


def _is_resize(layer) -> bool:
    from memopt.tfenv import keras

    if isinstance(layer, keras.layers.Resizing):
        return True
    fn = getattr(layer, "symbol", "") or ""
    return layer.__class__.__name__ == "TFOpLambda" and "resize" in fn


def resizes(model) -> list:
    """The model's resize layers (tf.image.resize, Resizing), in graph order."""
    return [layer for _, layer in _walk(model) if _is_resize(layer)]


def _ratio(layer):
    node = layer.inbound_nodes[0]
    from memopt.tfenv import tf

    x = tf.nest.flatten(node.keras_inputs)[0]
    y = tf.nest.flatten(node.outputs)[0]
    (hi, wi), (ho, wo) = tuple(x.shape[1:3]), tuple(y.shape[1:3])
    if None in (hi, wi, ho, wo):
        return None
    return ho / hi, wo / wi


def scaling_resizes(src, sizes=((256, 256), (384, 512))) -> tuple[int, ...]:
    """The resizes (their order, ``resizes``) whose output is the same ratio of their input when the
    network is built at two sizes: they follow the frame, so a window's resize is the frame's resize of
    that window (local); a resize to a fixed size keeps its size and stays global. () when the network
    cannot be built at both sizes."""
    try:
        a, b = (resizes(at_static_size(src, hw)) for hw in sizes)
    except (MemoptError, ValueError, TypeError):
        return ()
    if len(a) != len(b):
        return ()
    return tuple(k for k, (x, y) in enumerate(zip(a, b)) if _ratio(x) is not None and _ratio(x) == _ratio(y))


def at_static_size(src, hw: tuple[int, int]):
    """The network built (or cloned) with static inputs for a ``hw`` frame, for counting."""
    from memopt.network.source import at_size

    # A builder may build with dynamic inputs (None x None) whatever size it is asked for.
    return at_size(src.load(hw), src.io, hw, src.name, force=True)


def macs(model) -> int:
    """Multiply-accumulates of one call of a model with static shapes (convolutions and Dense)."""
    from memopt.tfenv import keras

    if any(d is None for t in model.inputs for d in t.shape[1:]):
        raise MemoptError("counting MACs needs a model with static input sizes")
    L = keras.layers
    total = 0
    for _, layer in _walk(model):
        try:
            out, inp = layer.output_shape, layer.input_shape
        except (AttributeError, RuntimeError):
            continue
        if isinstance(out, list) or isinstance(inp, list):
            continue
        before = total
        if isinstance(layer, L.Conv2DTranspose):
            _, ih, iw, cin = inp
            kh, kw = layer.kernel_size
            total += ih * iw * kh * kw * cin * layer.filters
        elif isinstance(layer, L.SeparableConv2D):
            _, oh, ow, cout = out
            kh, kw = layer.kernel_size
            cin = inp[-1]
            total += oh * ow * (kh * kw * cin * layer.depth_multiplier + cin * layer.depth_multiplier * cout)
        elif isinstance(layer, L.DepthwiseConv2D):
            _, oh, ow, cout = out
            kh, kw = layer.kernel_size
            total += oh * ow * kh * kw * cout
        elif isinstance(layer, L.Conv2D):
            _, oh, ow, cout = out
            kh, kw = layer.kernel_size
            total += oh * ow * kh * kw * inp[-1] * cout // getattr(layer, "groups", 1)
        elif isinstance(layer, L.Dense):
            positions = 1
            for d in out[1:-1]:
                positions *= d or 1
            total += positions * inp[-1] * layer.units
        total += (total - before) * ((out[0] or 1) - 1)  # frames on the batch axis run every layer F times
    return int(total)


def facts(src, hw: tuple[int, int] = (512, 512)) -> dict:
    """Params and MACs per frame megapixel of the network behind ``src`` (measured at ``hw``, else
    at the size the network was built for)."""
    from memopt.network.source import is_plain_savedmodel

    try:
        m = at_static_size(src, hw)
    except MemoptError:
        m = src.load()
        own = src.io.frame_hw([tuple(t.shape) for t in m.inputs])
        if own is None:
            raise
        hw = own
    if is_plain_savedmodel(m):  # its variables sit inside the SavedModel's functions: not counted
        return {"params": None, "macs_per_mp": None}
    return {"params": int(m.count_params()), "macs_per_mp": round(macs(m) / (hw[0] * hw[1] / 1e6) / 1e6, 1)}
