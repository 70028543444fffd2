"""A two-frame phone fusion network written the way published phone networks are: memopt's stand-in
for one (issue 20), built for one size.

Per frame: Y at full resolution and V,U at 1/4 (OpenCV's YUV), in [0, 1], two frames (under- and
over-exposed); outputs Y at 1/2 and UV at 1/8. TensorFlow ops inside the functional graph, not
memopt's idiom: inputs resized to H/2 (chroma to H/8) with tf.image.resize, a two-level Laplacian
pyramid by resizes, depthwise 7x7 + BatchNorm + gelu + 1x1 blocks with residual adds, squeeze-
excitation as tf.reduce_mean(x, axis=(1, 2)) -> Dense -> BatchNorm -> relu -> Dense(sigmoid) -> x * se,
Lambda channel attention (K.mean and K.max over channels, a 3x3 conv, sigmoid, multiplied back), a
max-pool encoder with 4x4 separable convs and a transposed-conv decoder with a concatenated skip,
fusion weights |u + eps| * |v + eps| + 1 normalised by tf.reduce_sum, channel slicing (``w[..., 0]``)
and tf.stack. The one global operation is the SE's spatial mean.

The weights are seeded (the same at every size) until experiments/tf-fusion-train.toml fine-tunes
them on the SICE scenes; the recipes load them from runs/tf-fusion/weights.h5.
"""
import tensorflow as tf
import tf_keras as keras
from tf_keras import backend as K

EPS = 1e-3


def _block(h, name, channels):
    """Depthwise 7x7 + BatchNorm + gelu + 1x1, residual."""
    L = keras.layers
    d = L.DepthwiseConv2D(7, padding="same", name=f"{name}_dw")(h)
    d = tf.nn.gelu(L.BatchNormalization(name=f"{name}_bn")(d))
    return h + L.Conv2D(channels, 1, name=f"{name}_pw")(d)


def _se(h, name, channels):
    L = keras.layers
    se = tf.reduce_mean(h, axis=(1, 2), keepdims=True)
    se = tf.nn.relu(L.BatchNormalization(name=f"{name}_bn")(L.Dense(max(4, channels // 4), name=f"{name}_fc1")(se)))
    se = L.Dense(channels, activation="sigmoid", name=f"{name}_fc2")(se)
    return h * se


def _attention(h, name):
    L = keras.layers
    avg = L.Lambda(lambda t: K.mean(t, axis=3, keepdims=True), name=f"{name}_mean")(h)
    mx = L.Lambda(lambda t: K.max(t, axis=3, keepdims=True), name=f"{name}_max")(h)
    a = L.Conv2D(1, 3, padding="same", activation="sigmoid", name=f"{name}_conv")(L.Concatenate(name=f"{name}_cat")([avg, mx]))
    return h * a


def build(height, width):
    if height % 16 or width % 16:
        raise ValueError(f"sizes must be multiples of 16, got {width}x{height}")
    keras.utils.set_random_seed(11)  # seeded weights: every size gets the same network
    L = keras.layers
    y_u = keras.Input((height, width, 1), batch_size=1, name="y_under")
    vu_u = keras.Input((height // 4, width // 4, 2), batch_size=1, name="vu_under")
    y_o = keras.Input((height, width, 1), batch_size=1, name="y_over")
    vu_o = keras.Input((height // 4, width // 4, 2), batch_size=1, name="vu_over")
    h2, w2 = height // 2, width // 2
    yh = tf.image.resize(tf.concat([y_u, y_o], axis=-1), (h2, w2))             # both Y at 1/2
    ch = tf.image.resize(tf.concat([vu_u, vu_o], axis=-1), (height // 8, width // 8))
    low = tf.image.resize(yh, (height // 4, width // 4))
    lap = yh - tf.image.resize(low, (h2, w2))                                   # the pyramid's detail level
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="stem")(tf.concat([yh, lap], axis=-1))
    h = _block(h, "b1", 16)
    h = _se(h, "se1", 16)
    h = _attention(h, "att1")
    e = L.MaxPooling2D(2, name="enc_pool")(h)                                  # 1/4
    e = L.SeparableConv2D(32, 4, padding="same", activation="relu", name="enc_sep1")(e)
    e = _block(e, "b2", 32)
    e = _se(e, "se2", 32)
    u = L.Conv2DTranspose(16, 2, strides=2, padding="same", name="dec_up")(e)  # back to 1/2
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="dec")(tf.concat([h, u], axis=-1))
    w = L.Conv2D(2, 3, padding="same", name="fuse_logits")(h)
    wu, wo = w[..., 0], w[..., 1]
    W = tf.stack([tf.abs(wu + EPS) * tf.abs(wo + EPS) + 1.0, tf.abs(wo + EPS) + 1.0], axis=-1)
    W = W / tf.reduce_sum(W, -1, keepdims=True)
    fused = W[..., 0:1] * yh[..., 0:1] + W[..., 1:2] * yh[..., 1:2]
    y_out = fused + 0.1 * L.Conv2D(1, 3, padding="same", name="y_res")(h)
    c = tf.concat([ch, tf.image.resize(h, (height // 8, width // 8))], axis=-1)
    c = L.Conv2D(16, 3, padding="same", activation="relu", name="uv_body")(c)
    uv_mean = 0.5 * (ch[..., 0:2] + ch[..., 2:4])
    uv_out = uv_mean + 0.1 * L.Conv2D(2, 1, name="uv_head")(c)
    return keras.Model([y_u, vu_u, y_o, vu_o], [y_out, uv_out], name="tf_fusion")
