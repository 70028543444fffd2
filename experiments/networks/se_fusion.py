"""A published-style phone fusion network with global operations, memopt's stand-in for one (untrained).

Per frame: Y at full resolution and V,U at 1/4 (OpenCV's YUV), in [0, 1]; outputs Y at 1/2 and
UV at 1/4. A 3-level encoder-decoder with a squeeze-excitation block at every encoder level (each
depends on the one before: three levels of global values) and a global illumination branch (the
frames' mean brightness through two Dense layers scales the decoder): four global reductions, so
its receptive field is the whole frame and plain tiles change its output everywhere.

The weights are seeded, not trained (the same at every size the builder is called for): the 12 MP
study measures how far tiled outputs are from this network's own full-frame output, not image
quality. Give memopt a trained network of your own the same way (experiments/my-model.toml).
"""
import tf_keras as keras


def _se(h, name, channels):
    L = keras.layers
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(h)
    s = L.Dense(max(4, channels // 4), activation="relu", name=f"{name}_fc1")(s)
    s = L.Dense(channels, activation="sigmoid", name=f"{name}_fc2")(s)
    return L.Multiply(name=f"{name}_scale")([h, s])


def build(height, width):
    if height % 8 or width % 8:  # three stride-2 levels
        raise ValueError(f"sizes must be multiples of 8, got {width}x{height}")
    keras.utils.set_random_seed(7)  # seeded weights: every size gets the same network
    L = keras.layers
    conv = lambda n, name, s=1: L.Conv2D(n, 3, strides=s, padding="same", activation="relu", name=name)  # noqa: E731
    ys = [keras.Input((height, width, 1), batch_size=1, name=f"y_{i}") for i in range(3)]
    vus = [keras.Input((height // 4, width // 4, 2), batch_size=1, name=f"vu_{i}") for i in range(3)]
    y = conv(16, "y_stem", 2)(L.Concatenate(name="ys")(ys))                          # 1/2
    c = conv(16, "uv_stem")(L.Concatenate(name="vus")(vus))                          # 1/4
    e1 = _se(conv(16, "enc1")(y), "se1", 16)
    e2 = conv(32, "down2", 2)(e1)
    e2 = _se(conv(32, "enc2")(L.Concatenate(name="cat2")([e2, c])), "se2", 32)     # 1/4
    e3 = _se(conv(64, "enc3")(conv(64, "down3", 2)(e2)), "se3", 64)                 # 1/8
    light = L.GlobalAveragePooling2D(keepdims=True, name="light_pool")(L.Concatenate(name="ys_light")(ys))
    light = L.Dense(32, activation="sigmoid", name="light_gain")(L.Dense(8, activation="relu", name="light_fc")(light))
    d2 = conv(32, "dec2")(L.Concatenate(name="cat_d2")([L.UpSampling2D(2, name="up2")(e3), e2]))
    d2 = L.Multiply(name="light_scale")([d2, light])
    d1 = conv(16, "dec1")(L.Concatenate(name="cat_d1")([L.UpSampling2D(2, name="up1")(d2), e1]))
    y_out = L.Add(name="y_res")([L.Conv2D(1, 1, name="y_head")(d1), L.AveragePooling2D(2, name="y_ref")(ys[1])])
    uv_out = L.Add(name="uv_res")([L.Conv2D(2, 1, name="uv_head")(L.AveragePooling2D(2, name="uv_pool")(d1)),
                                   vus[1]])
    return keras.Model([t for pair in zip(ys, vus) for t in pair], [y_out, uv_out], name="se_fusion")
