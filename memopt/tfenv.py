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

__all__ = ["tf", "keras"]
