"""The baseline network: a small U-Net on the packed contract tensor, built with tf_keras.

Input ``[N, H/2, W/2, 6F]`` -> output ``[N, H/2, W/2, 6]`` (see memopt.frames.contract). Fully
convolutional: any even H, W. Inside, the packed tensor is reflect-padded at the bottom/right to a
multiple of 2^(levels-1) so the pooling pyramid lines up, and the output is cropped back. The
output is a residual on the frame nearest EV 0, which starts training from "return that frame".

Built with tf_keras (Keras 2) because tensorflow-model-optimization needs it; set
``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported (memopt.tfenv does this).
"""
from __future__ import annotations

from dataclasses import dataclass

from memopt.config import ModelConfig
from memopt.network.layers import CropLike, FrameSlice, PadToMultiple
from memopt.tfenv import keras


def build_model(cfg: ModelConfig, packed_hw: tuple[int | None, int | None] = (None, None),
                name: str = "memopt_unet") -> "keras.Model":
    """Build the U-Net for ``cfg``; ``packed_hw`` fixes the packed input size (H/2, W/2) or not."""
    L, k = cfg.levels, cfg.kernel
    conv = lambda c, n: keras.layers.Conv2D(c, k, padding="same", activation="relu", name=n)  # noqa: E731
    inp = keras.Input((*packed_hw, 6 * cfg.frames), name="frames")
    x = PadToMultiple(2 ** (L - 1), name="pad")(inp)
    h, skips = x, []
    for i, width in enumerate(cfg.widths):
        if i:
            h = keras.layers.MaxPool2D(2, name=f"down{i}")(h)
        for j in range(cfg.convs_per_level):
            h = conv(width, f"enc{i}_{j}")(h)
        skips.append(h)
    for i in reversed(range(L - 1)):
        h = keras.layers.Conv2DTranspose(cfg.widths[i], 2, strides=2, activation="relu", name=f"up{i}")(h)
        h = keras.layers.Concatenate(name=f"cat{i}")([h, skips[i]])
        for j in range(cfg.convs_per_level):
            h = conv(cfg.widths[i], f"dec{i}_{j}")(h)
    delta = keras.layers.Conv2D(6, 1, name="head")(h)
    ref = FrameSlice(cfg.reference_frame, name="reference")(x)
    out = keras.layers.Add(name="residual")([delta, ref])
    out = CropLike(name="crop")([out, inp])
    return keras.Model(inp, out, name=name)


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels can change one output pixel.

    ``lo``/``hi``: offsets in packed pixels: output packed pixel q depends on input packed pixels
    q+lo .. q+hi (worst case over the pooling alignment). ``radius``: the same in full-resolution
    pixels, the halo a tile needs on each side. ``alignment``: full-res pixels a tile origin must
    be a multiple of for tiled output to equal full-frame output (the pooling grid).
    """

    lo: int
    hi: int
    radius: int
    alignment: int

    @property
    def size(self) -> int:
        return 2 * self.radius + 1


def receptive_field(cfg: ModelConfig) -> ReceptiveField:
    """Receptive field of ``build_model(cfg)`` by interval arithmetic along the graph."""
    r = cfg.kernel // 2
    lo = hi = 0
    jump = 1
    enc = []
    for i in range(cfg.levels):
        if i:  # 2x2 max-pool: output p reads anchors 2p and 2p+1
            hi += jump
            jump *= 2
        lo, hi = lo - cfg.convs_per_level * r * jump, hi + cfg.convs_per_level * r * jump
        enc.append((lo, hi))
    for i in reversed(range(cfg.levels - 1)):
        jump //= 2
        lo -= jump  # 2x2 stride-2 transposed conv: output q reads input floor(q/2)
        lo, hi = min(lo, enc[i][0]), max(hi, enc[i][1])  # concatenation with the skip
        lo, hi = lo - cfg.convs_per_level * r * jump, hi + cfg.convs_per_level * r * jump
    # Full resolution: output pixel 2q+a (a in {0,1}) reads input pixels 2(q+lo) .. 2(q+hi)+1.
    radius = max(2 * hi + 1, 1 - 2 * lo)
    return ReceptiveField(lo, hi, radius, 2 ** cfg.levels)


def macs_per_megapixel(model: "keras.Model", full_hw: tuple[int, int] = (1024, 1024)) -> float:
    """Multiply-accumulates per output megapixel of a packed-contract Keras model (memopt.network.graph
    counts them on a static-size clone)."""
    from memopt.network.graph import macs

    fixed = keras.models.clone_model(model, input_tensors=keras.Input((full_hw[0] // 2, full_hw[1] // 2,
                                                                      model.input_shape[-1])))
    return macs(fixed) / (full_hw[0] * full_hw[1] / 1e6)
