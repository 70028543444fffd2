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


def _builder_file(folder: Path, name: str, code: str):
    """(the builder file written in ``folder``, the model it builds at 64x64, for its weights)."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"{name}_for_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return path, mod.build(64, 64)


def static_builder(folder: Path):
    """A builder file (and its weights) for a network with static resizes; YUV 4:4:4 in, 4:4:4 out."""
    path, m = _builder_file(folder, "static_net", BUILDER)
    m.save_weights(str(folder / "weights.h5"))
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


FUSION_BUILDER = '''
"""A two-frame fusion network in a published phone network's style, built for one size: Y and VU/4
of two frames in, Y/2 and UV/8 out; static resizes (H/2, H/8, a two-level Laplacian pyramid),
depthwise 7x7 + BatchNorm + gelu blocks, tf-op squeeze-excitation, Lambda channel attention, a
max-pool encoder with a transposed-conv decoder, channel slicing, tf.stack and normalised fusion
weights. Weights from weights.h5 beside this file."""
from pathlib import Path

import tensorflow as tf
import tf_keras as keras
from tf_keras import backend as K


def build(height, width):
    if height % 32 or width % 32:
        raise ValueError(f"sizes must be multiples of 32, got {width}x{height}")
    L = keras.layers
    y1 = keras.Input((height, width, 1), batch_size=1, name="y_under")
    vu1 = keras.Input((height // 4, width // 4, 2), batch_size=1, name="vu_under")
    y2 = keras.Input((height, width, 1), batch_size=1, name="y_over")
    vu2 = keras.Input((height // 4, width // 4, 2), batch_size=1, name="vu_over")
    yh = tf.image.resize(tf.concat([y1, y2], axis=-1), (height // 2, width // 2))
    ch = tf.image.resize(tf.concat([vu1, vu2], axis=-1), (height // 8, width // 8))
    low = tf.image.resize(yh, (height // 4, width // 4))
    lap = yh - tf.image.resize(low, (height // 2, width // 2))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(tf.concat([yh, lap], axis=-1))
    d = L.DepthwiseConv2D(7, padding="same", name="dw7")(h)
    d = L.BatchNormalization(name="dw7_bn")(d)
    d = L.Conv2D(8, 1, name="pw")(tf.nn.gelu(d))
    h = h + d
    se = tf.reduce_mean(h, axis=(1, 2), keepdims=True)
    se = L.Dense(4, name="se_fc1")(se)
    se = tf.nn.relu(L.BatchNormalization(name="se_bn")(se))
    se = L.Dense(8, activation="sigmoid", name="se_fc2")(se)
    h = h * se
    avg = L.Lambda(lambda t: K.mean(t, axis=3, keepdims=True), name="att_mean")(h)
    mx = L.Lambda(lambda t: K.max(t, axis=3, keepdims=True), name="att_max")(h)
    att = L.Conv2D(1, 3, padding="same", activation="sigmoid", name="att_conv")(L.Concatenate()([avg, mx]))
    h = h * att
    e = L.MaxPooling2D(2, name="enc_pool")(h)
    e = L.SeparableConv2D(8, 4, padding="same", activation="relu", name="enc_sep")(e)
    u = L.Conv2DTranspose(8, 2, strides=2, padding="same", name="dec_up")(e)
    h = tf.concat([h, u], axis=-1)
    w = L.Conv2D(2, 3, padding="same", name="weights")(h)
    wu, wv = w[..., 0], w[..., 1]
    W = tf.stack([tf.abs(wu + 1e-3) * tf.abs(wv + 1e-3) + 1.0, tf.abs(wv + 1e-3) + 1.0], axis=-1)
    W = W / tf.reduce_sum(W, -1, keepdims=True)
    y_out = W[..., 0:1] * yh[..., 0:1] + W[..., 1:2] * yh[..., 1:2] + 0.1 * L.Conv2D(1, 3, padding="same", name="y_res")(h)
    c = tf.concat([ch, tf.image.resize(h, (height // 8, width // 8))], axis=-1)
    uv_out = L.Conv2D(2, 1, name="uv_head")(L.Conv2D(6, 3, padding="same", activation="relu", name="uv_body")(c))
    m = keras.Model([y1, vu1, y2, vu2], [y_out, uv_out], name="fusion_net")
    w = Path(__file__).with_name("weights.h5")
    if w.exists():
        m.load_weights(str(w))
    return m
'''

FUSION_IO = {"inputs": ["y@-20", "uv/4@-20", "y@4", "uv/4@4"], "outputs": ["y/2", "uv/8"],
             "range": [0.0, 1.0], "chroma": "vu", "matrix": "opencv"}


def fusion_builder(folder: Path):
    """The fusion builder file and its weights (random, BatchNorm statistics non-trivial)."""
    import numpy as np

    path, m = _builder_file(folder, "fusion_net", FUSION_BUILDER)
    rng = np.random.default_rng(5)
    for layer in m.layers:
        if "bn" in layer.name:  # gamma, beta, mean, variance: variance positive
            g, b, mu, var = layer.get_weights()
            layer.set_weights([1 + 0.2 * rng.standard_normal(g.shape), 0.1 * rng.standard_normal(b.shape),
                               0.1 * rng.standard_normal(mu.shape), 0.5 + rng.random(var.shape)])
    m.save_weights(str(folder / "weights.h5"))
    return f"{path}:build", dict(FUSION_IO)


def wide_range_concat():
    """Two branches of very different ranges concatenated (a fusion network's weights beside its
    features): int8's one scale for a concatenation's inputs wipes the narrow branch out."""
    from memopt.tfenv import keras, tf

    L = keras.layers
    keras.utils.set_random_seed(2)
    x = keras.Input((None, None, 18), name="packed")
    fine = L.Conv2D(8, 3, padding="same", activation="tanh", name="fine")(x)
    gain = L.Conv2D(2, 3, padding="same", name="gain")(x) * 300.0
    h = tf.concat([fine, gain], axis=-1)
    out = L.Conv2D(6, 3, padding="same", name="head")(h)
    m = keras.Model(x, out, name="wide_concat")
    w = m.get_layer("head").get_weights()
    w[0][:, :, 8:, :] *= 1 / 300.0  # the gain branch counts as much as the fine one
    m.get_layer("head").set_weights(w)
    return m, {}
