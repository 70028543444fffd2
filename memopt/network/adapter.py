"""Training any network on memopt's data: its tensor layout as TensorFlow ops around it.

memopt's training pairs are packed frames (memopt.frames.contract); ``wrap(model, layout, n_frames)``
returns a Keras model packed -> packed whose inside feeds ``model`` its own tensors (planes,
resolutions, range, chroma order and matrix, frames on channels or on the batch axis) and turns
its outputs back into a packed frame, so fine-tuning uses the same loss and data as memopt's own
network. The same arithmetic as memopt.network.layout's numpy side, with TensorFlow's bilinear
resize (half-pixel centres). Only the inner model is saved (``unwrap``).
"""
from __future__ import annotations

from memopt.network.layout import _RGB2YUV, _YUV2RGB, MATRICES, IOLayout
from memopt.tfenv import keras, tf

C = 128.0 / 255.0  # the chroma centre on the [0, 1] scale (memopt.frames.yuv: U, V centred on 128)


def _to_size(x, h: int, w: int, method: str = "bilinear"):
    ih, iw = x.shape[1], x.shape[2]
    if (ih, iw) == (h, w):
        return x
    if ih >= h and iw >= w and ih % h == 0 and iw % w == 0:
        return tf.nn.avg_pool2d(x, (ih // h, iw // w), (ih // h, iw // w), "VALID")
    return tf.image.resize(x, (h, w), method=method)


class LayoutFeed(keras.layers.Layer):
    """packed [N, H/2, W/2, 6F] -> the model's input tensors; ``read`` turns its outputs back into a
    packed [N, H/2, W/2, 6] (two layers around the network, so the network stays a nested model
    Keras callbacks such as tfmot's pruning step can find)."""

    def __init__(self, layout: IOLayout, evs, **kw):
        super().__init__(**kw)
        self.layout, self.evs = layout, tuple(int(e) for e in evs)
        self.n_frames = len(self.evs)

    def _frame(self, p, f: int):
        y = tf.nn.depth_to_space(p[..., 6 * f:6 * f + 4], 2)
        return y, p[..., 6 * f + 4:6 * f + 5], p[..., 6 * f + 5:6 * f + 6]

    def _tensor(self, planes, e):
        lay = self.layout
        y, u, v = planes
        h, w = y.shape[1] // e.k, y.shape[2] // e.k
        lo, hi = lay.range
        if e.planes == "rgb":
            up = [_to_size(c, y.shape[1], y.shape[2]) - C for c in (u, v)]
            rgb = tf.clip_by_value(tf.concat([y, *up], -1) @ tf.constant(_YUV2RGB.T), 0.0, 1.0)
            return lo + _to_size(rgb, h, w) * (hi - lo)
        gu, gv = MATRICES[lay.matrix]
        cu = tf.clip_by_value((_to_size(u, h, w) - C) * gu + C, 0.0, 1.0) if e.planes != "y" else None
        cv = tf.clip_by_value((_to_size(v, h, w) - C) * gv + C, 0.0, 1.0) if e.planes != "y" else None
        chans = []
        if e.planes in ("y", "yuv"):
            chans.append(_to_size(y, h, w))
        if e.planes == "packed":
            chans.append(tf.nn.space_to_depth(y, 2))
        if e.planes in ("uv", "yuv", "packed"):
            chans += [cu, cv] if lay.chroma == "uv" else [cv, cu]
        elif e.planes == "u":
            chans.append(cu)
        elif e.planes == "v":
            chans.append(cv)
        return lo + tf.concat(chans, -1) * (hi - lo)

    def call(self, packed):
        lay, F = self.layout, self.n_frames
        frames = [self._frame(packed, f) for f in range(F)]
        evs = list(self.evs)
        ins = []
        for e in lay.in_entries:
            chosen = frames if e.ev is None else [frames[evs.index(e.ev)]]
            parts = [self._tensor(fr, e) for fr in chosen]
            if e.frames == "batch":
                t = tf.stack(parts, 1)  # scene-major: [N, F, h, w, c] -> [N*F, h, w, c]
                ins.append(tf.reshape(t, [-1, *t.shape[2:]]))
            else:
                ins.append(tf.concat(parts, -1))
        return ins


class LayoutRead(LayoutFeed):
    def call(self, inputs):
        packed, outs = inputs[0], inputs[1:]
        evs = list(self.evs)
        ref = min(range(self.n_frames), key=lambda i: (abs(evs[i]), i))
        ref_uv = (packed[..., 6 * ref + 4:6 * ref + 5], packed[..., 6 * ref + 5:6 * ref + 6])
        return self._read(outs, 2 * packed.shape[1], 2 * packed.shape[2], ref_uv)

    def _read(self, outs, H: int, W: int, ref_uv):
        lay = self.layout
        lo, hi = lay.range
        gu, gv = MATRICES[lay.matrix]
        how = lay.upsample
        y = u = v = None
        for e, t in zip(lay.out_entries, lay.kept(outs) if len(outs) == len(lay.outputs) else outs):
            x = (t - lo) / (hi - lo)
            if e.planes == "rgb":
                yuv = _to_size(x, H, W, how) @ tf.constant(_RGB2YUV.T)
                y, u, v = yuv[..., :1], _to_size(yuv[..., 1:2] + C, H // 2, W // 2), _to_size(yuv[..., 2:] + C, H // 2, W // 2)
                continue
            cs = [x[..., c:c + 1] for c in range(x.shape[-1])]
            if e.planes == "packed":
                y = _to_size(tf.nn.depth_to_space(x[..., :4], 2), H, W, how)
                cs = cs[4:]
            elif e.planes in ("y", "yuv"):
                y = _to_size(cs.pop(0), H, W, how)
            half = [_to_size(c, H // 2, W // 2, how) for c in cs]
            if e.planes in ("uv", "yuv", "packed"):
                u, v = half if lay.chroma == "uv" else half[::-1]
                u, v = (u - C) / gu + C, (v - C) / gv + C
            elif e.planes == "u":
                u = (half[0] - C) / gu + C
            elif e.planes == "v":
                v = (half[0] - C) / gv + C
        if u is None:  # a luma-only network: chroma is the reference frame's
            u, v = ref_uv
        return tf.concat([tf.nn.space_to_depth(y, 2), u, v], -1)


def wrap(inner, layout: IOLayout, evs, crop: int) -> "keras.Model":
    """A packed -> packed Keras model around ``inner`` for ``crop`` px training crops (see the module doc)."""
    if layout.is_packed:
        return inner
    x = keras.Input((crop // 2, crop // 2, 6 * len(evs)), name="packed")
    ins = LayoutFeed(layout, evs, name="layout_feed")(x)
    out = inner(ins if len(ins) > 1 else ins[0])
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return keras.Model(x, LayoutRead(layout, evs, name="layout_read")([x, *outs]), name="adapted")


def unwrap(model):
    """The inner model of ``wrap``'s result (the model itself when it was not wrapped)."""
    if any(isinstance(layer, LayoutFeed) for layer in model.layers):
        return next(layer for layer in model.layers if isinstance(layer, keras.Model))
    return model
