"""What a tf.* op layer inside a Keras graph (TFOpLambda, SlicingOpLambda) was called with."""
from __future__ import annotations


def spatial_axes(axis) -> bool:
    """Whether a reduction over ``axis`` (None: every axis) covers both spatial axes of an NHWC map."""
    if axis is None:
        return True
    axes = {int(a) % 4 if isinstance(a, int) else a for a in (axis if isinstance(axis, (list, tuple)) else [axis])}
    return {1, 2} <= {a if a >= 0 else a + 4 for a in axes if isinstance(a, int)}


def op_axis(layer):
    """The ``axis`` a tf.reduce_* op was called with, by keyword or by position (its second argument)."""
    for node in layer.inbound_nodes:
        kw = getattr(node, "call_kwargs", {}) or {}
        if "axis" in kw:
            return kw["axis"]
        args = getattr(node, "call_args", ()) or ()
        if len(args) > 1 and not hasattr(args[1], "_keras_history"):
            return args[1]
    return None
