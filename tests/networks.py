"""Tiny networks memopt did not write, in the layouts published phone networks use (tests only).

Each function returns (model or builder spec, the [baseline.io] layout as a dict). Widths are a few
channels: they exist to exercise layouts, graphs and variants, not to enhance well.
"""
from __future__ import annotations

from pathlib import Path

EVS = (-20, 0, 4)


def split_planes_se():
    """Per frame: Y at full resolution and V,U at 1/4, OpenCV's YUV, in [0, 1]; outputs Y at 1/2
    and UV at 1/8; a squeeze-excitation block (global average pooling): non-local."""
    from memopt.tfenv import keras

    L = keras.layers
    ys = [keras.Input((None, None, 1), name=f"y_{i}") for i in range(3)]
    uvs = [keras.Input((None, None, 2), name=f"vu_{i}") for i in range(3)]
    inputs = [t for pair in zip(ys, uvs) for t in pair]   # y@-20, uv/4@-20, y@0, ...
    y = L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="y_down")(L.Concatenate()(ys))
    c = L.Conv2D(6, 3, padding="same", activation="relu", name="uv_body")(L.Concatenate()(uvs))
    h = L.Concatenate()([y, L.UpSampling2D(2, name="uv_up")(c)])
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="body")(h)
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(h)
    s = L.Dense(4, activation="relu", name="se_fc1")(s)
    s = L.Dense(8, activation="sigmoid", name="se_fc2")(s)
    h = L.Multiply(name="se_scale")([h, s])
    y_out = L.Add(name="y_res")([L.Conv2D(1, 1, name="y_head")(h), L.AveragePooling2D(2)(ys[1])])
    uv_out = L.Conv2D(2, 1, name="uv_head")(L.AveragePooling2D(4, name="uv_pool")(h))
    io = {"inputs": ["y@-20", "uv/4@-20", "y@0", "uv/4@0", "y@4", "uv/4@4"], "outputs": ["y/2", "uv/8"],
          "range": [0.0, 1.0], "chroma": "vu", "matrix": "opencv"}
    return keras.Model(inputs, [y_out, uv_out], name="split_se"), io


def _se(h, name: str, channels: int):
    from memopt.tfenv import keras

    L = keras.layers
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(h)
    s = L.Dense(max(2, channels // 2), activation="relu", name=f"{name}_fc1")(s)
    s = L.Dense(channels, activation="sigmoid", name=f"{name}_fc2")(s)
    return L.Multiply(name=f"{name}_scale")([h, s])


def two_se_global():
    """The layout of ``split_planes_se`` with two squeeze-excitation blocks in sequence (the second
    depends on the first: two levels) and a global illumination branch (a tf.reduce_mean of the EV-0
    frame's Y through a Dense gain): three global reductions."""
    from memopt.tfenv import keras, tf

    L = keras.layers
    ys = [keras.Input((None, None, 1), name=f"y_{i}") for i in range(3)]
    uvs = [keras.Input((None, None, 2), name=f"vu_{i}") for i in range(3)]
    inputs = [t for pair in zip(ys, uvs) for t in pair]
    y = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="y_down")(L.Concatenate()(ys))
    c = L.Conv2D(8, 3, padding="same", activation="relu", name="uv_body")(L.Concatenate()(uvs))
    h = L.Concatenate()([y, L.UpSampling2D(2, name="uv_up")(c)])
    h = _se(L.Conv2D(8, 3, padding="same", activation="relu", name="body1")(h), "se1", 8)
    h = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="down")(h)
    h = _se(L.Conv2D(8, 3, padding="same", activation="relu", name="body2")(h), "se2", 8)
    light = tf.reduce_mean(ys[1], axis=[1, 2], keepdims=True)  # the EV-0 frame's mean brightness
    gain = L.Dense(8, activation="sigmoid", name="light_gain")(L.Dense(4, activation="relu", name="light_fc")(light))
    h = L.UpSampling2D(2, name="up")(L.Multiply(name="light_scale")([h, gain]))
    y_out = L.Add(name="y_res")([L.Conv2D(1, 1, name="y_head")(h), L.AveragePooling2D(2)(ys[1])])
    uv_out = L.Conv2D(2, 1, name="uv_head")(L.AveragePooling2D(4, name="uv_pool")(h))
    io = {"inputs": ["y@-20", "uv/4@-20", "y@0", "uv/4@0", "y@4", "uv/4@4"], "outputs": ["y/2", "uv/8"],
          "range": [0.0, 1.0], "chroma": "vu", "matrix": "opencv"}
    return keras.Model(inputs, [y_out, uv_out], name="two_se_global"), io


def rgb_bn_dw(with_lambda: bool = True):
    """RGB frames stacked on channels in [-1, 1]; BatchNorm, depthwise separable convolutions,
    residual adds, a 2x2 pooling grid; a Lambda layer (the middle frame's slice) when asked."""
    from memopt.tfenv import keras

    L = keras.layers
    x = keras.Input((None, None, 9), name="rgb_frames")
    h = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    h = L.ReLU()(L.BatchNormalization(name="stem_bn")(h))
    d = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    d = L.Conv2D(8, 1, name="pw")(L.ReLU()(L.BatchNormalization(name="dw_bn")(d)))
    h = L.Add(name="res1")([h, d])
    p = L.AveragePooling2D(2, name="pool")(h)
    p = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep")(p)
    h = L.Add(name="res2")([h, L.UpSampling2D(2, name="up")(p)])
    delta = L.Conv2D(3, 3, padding="same", name="head")(h)
    mid = (L.Lambda(lambda t: t[..., 3:6], name="middle") if with_lambda else
           L.Cropping2D(0, name="middle_all"))(x)
    if not with_lambda:
        mid = L.Conv2D(3, 1, name="mid_proj")(mid)
    out = L.Add(name="res_out")([delta, mid])
    io = {"inputs": ["rgb@all"], "outputs": ["rgb"], "range": [-1.0, 1.0]}
    return keras.Model(x, out, name="rgb_dw"), io


BUILDER = '''
"""A network built for one input size (static resizes), weights from weights.h5 beside this file."""
from pathlib import Path

import tensorflow as tf
import tf_keras as keras


def build(height, width):
    if height % 16 or width % 16:
        raise ValueError(f"sizes must be multiples of 16, got {width}x{height}")
    L = keras.layers
    x = keras.Input((height, width, 9), batch_size=1, name="yuv_frames")
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="c1")(x)
    s = L.Resizing(height // 2, width // 2, name="down")(h)
    s = L.Conv2D(6, 3, padding="same", activation="relu", name="c2")(s)
    s = L.Resizing(height, width, name="up")(s)
    h = tf.concat([h, s], axis=-1)  # a tf.* op inside the Keras model (TFOpLambda)
    out = L.Conv2D(3, 3, padding="same", name="head")(h)
    m = keras.Model(x, out, name="static_net")
    w = Path(__file__).with_name("weights.h5")
    if w.exists():
        m.load_weights(str(w))
    return m
'''


def static_builder(folder: Path):
    """A builder file (and its weights) for a network with static resizes; YUV 4:4:4 in, 4:4:4 out."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "static_net.py"
    path.write_text(BUILDER)
    spec = importlib.util.spec_from_file_location("static_net_for_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(64, 64).save_weights(str(folder / "weights.h5"))
    return f"{path}:build", {"inputs": ["yuv@all"], "outputs": ["yuv"]}


def luma_batch():
    """Y only, frames on the batch axis; the frames are merged by a mean over the batch (a tf.* op)."""
    from memopt.tfenv import keras, tf

    L = keras.layers
    x = keras.Input((None, None, 1), name="y_frames")
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="per_frame")(x)
    h = tf.reduce_mean(h, axis=0, keepdims=True)
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="fused")(h)
    out = L.Conv2D(1, 3, padding="same", name="head")(h)
    return keras.Model(x, out, name="luma_batch"), {"inputs": ["y@batch"], "outputs": ["y"]}


def split_frames_local():
    """Three Y planes as three inputs of one shape (which is which only the weights tell) and the
    frame's VU at its own 1/2, BT.601 bytes; tf.* ops in the graph (concat, a mean over channels,
    slicing); outputs Y and UV. Local: no global operation."""
    from memopt.tfenv import keras, tf

    L = keras.layers
    ys = [keras.Input((None, None, 1), name=f"luma_{i}") for i in range(3)]
    vu = keras.Input((None, None, 2), name="vu")
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="fuse")(tf.concat(ys, axis=-1))
    att = tf.sigmoid(tf.reduce_mean(h, axis=-1, keepdims=True))  # channel mean: local
    h = h * att + ys[0] * 0.5 - ys[2] * 0.25                     # the frames weigh differently
    y_out = L.Conv2D(1, 3, padding="same", name="y_head")(h)
    c = L.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="down")(h)
    c = tf.concat([c, vu[..., ::-1]], axis=-1)
    uv_out = L.Conv2D(2, 3, padding="same", name="uv_head")(c)
    io = {"inputs": ["y@-20", "y@0", "y@4", "uv@0"], "outputs": ["y", "uv"], "chroma": "vu"}
    return keras.Model(ys + [vu], [y_out, uv_out], name="split_frames"), io
