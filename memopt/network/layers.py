"""The custom Keras layers memopt's networks are built from, registered for loading.

They live apart from the U-Net that uses them because loading any saved network
(memopt.network.source) needs them registered, while the U-Net itself needs the graph tools that
load networks (memopt.network.graph): one module each keeps the imports one-way.
"""
from __future__ import annotations

from memopt.tfenv import keras, tf


@keras.utils.register_keras_serializable(package="memopt")
class PadToMultiple(keras.layers.Layer):
    """Reflect-pad H and W at the bottom/right up to a multiple of ``multiple``."""

    def __init__(self, multiple: int, **kw):
        super().__init__(**kw)
        self.multiple = int(multiple)

    def call(self, x):
        m = self.multiple
        h, w = x.shape[1], x.shape[2]
        if m == 1 or (h is not None and w is not None and h % m == 0 and w % m == 0):
            return x  # static and aligned: no op in the graph (the usual deployed case)
        dh = (-tf.shape(x)[1]) % m
        dw = (-tf.shape(x)[2]) % m
        return tf.pad(x, [[0, 0], [0, dh], [0, dw], [0, 0]], mode="REFLECT")

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.utils.register_keras_serializable(package="memopt")
class CropLike(keras.layers.Layer):
    """Crop the first input to the spatial size of the second (undoes PadToMultiple)."""

    def call(self, inputs):
        x, ref = inputs
        if x.shape[1] is not None and x.shape[1] == ref.shape[1] and x.shape[2] == ref.shape[2]:
            return x
        return x[:, : tf.shape(ref)[1], : tf.shape(ref)[2], :]


@keras.utils.register_keras_serializable(package="memopt")
class FrameSlice(keras.layers.Layer):
    """The six packed channels of one input frame."""

    def __init__(self, index: int, **kw):
        super().__init__(**kw)
        self.index = int(index)

    def call(self, x):
        return x[..., 6 * self.index: 6 * self.index + 6]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


class _Keras3:
    """Keras 3 (``keras``, or ``keras.ops`` as ``ops``) imported when a Lambda's code first uses it."""

    def __init__(self, attr: str = ""):
        self._attr = attr

    def __getattr__(self, name):
        import keras

        return getattr(getattr(keras, self._attr) if self._attr else keras, name)


# The names a Lambda's code may call when it comes back from a file as bytecode (published Keras 3
# code: keras.ops.mean; tf_keras code: tf.reduce_max, np): tf_keras runs such code with its own
# module globals plus the custom objects, so in every process that loads one they are here.
LAMBDA_GLOBALS = {"keras": _Keras3(), "ops": _Keras3("ops"), "tf": tf, "np": __import__("numpy")}

CUSTOM_OBJECTS = {"PadToMultiple": PadToMultiple, "CropLike": CropLike, "FrameSlice": FrameSlice, **LAMBDA_GLOBALS}
