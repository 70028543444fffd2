"""The one place TensorFlow is imported, with Keras 2 (tf_keras) selected for tfmot.

Import this module only where a Keras model is handled: importing TensorFlow costs ~900 MB of
RSS, so anything that runs a .tflite must never import it.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot needs Keras 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep oneDNN/CUDA banners off the console

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.get_logger().setLevel("ERROR")
try:  # absl's Python warnings ("Compiled the loaded model, but ...") unless asked for
    from absl import logging as _absl_logging

    if not os.environ.get("MEMOPT_VERBOSE"):
        _absl_logging.set_verbosity(_absl_logging.ERROR)
except ImportError:
    pass



def _ellipsis_serialisable() -> None:
    """Let tf_keras's .keras format save ``t[..., 6:12]``, as its legacy formats do.

    Teams slice tensors with Ellipsis (a SlicingOpLambda whose call arguments hold ``...``); the
    .keras serialiser has no entry for it, so saving, and tfmot's cloning (a get_config/from_config
    round trip), raised ``Cannot serialize object Ellipsis``. The legacy json_utils writes it as
    ``{"class_name": "__ellipsis__"}``: the same here, and the slicing layer reads it back.
    """
    from tf_keras.src.layers.core import tf_op_layer
    from tf_keras.src.saving import serialization_lib

    if getattr(serialization_lib, "_memopt_ellipsis", False):
        return
    serialize, to_slice = serialization_lib.serialize_keras_object, tf_op_layer._dict_to_slice

    def serialize_keras_object(obj):
        return {"class_name": "__ellipsis__", "config": {}} if obj is Ellipsis else serialize(obj)

    def _dict_to_slice(x):
        return Ellipsis if isinstance(x, dict) and x.get("class_name") == "__ellipsis__" else to_slice(x)

    serialization_lib.serialize_keras_object = serialize_keras_object
    tf_op_layer._dict_to_slice = _dict_to_slice
    serialization_lib._memopt_ellipsis = True


_ellipsis_serialisable()

__all__ = ["tf", "keras"]
