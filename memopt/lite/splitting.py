"""Input-resolution splitting: run the network on lower-resolution pieces of the frame.

Two modes (variant names ``poly<k>`` and ``guided<k>``):

- **Polyphase** (``poly2``): the k x k sub-sampled sub-images (pixels (k*i + a, k*j + b) for each
  phase a, b; the chroma planes split the same way, so each piece is again YUV 4:2:0) go through
  the network one at a time and are re-interleaved. Every output pixel is computed, but the
  network sees a k-times sparser image than it was trained on.
- **Guided** (``guided2``): the network runs once on a k-times smaller frame (box-averaged), and
  its output is brought back to full resolution by a fast guided filter (He & Sun 2015,
  arXiv:1505.00996, as MEF-Net does for exposure fusion): per plane, local linear coefficients
  output ~ a * guide + b are fitted at low resolution against the reference frame's luma, then
  upsampled bilinearly and applied to the full-resolution luma, which restores the detail.

Both take any runner on the contract (a full-frame model at the piece size, or a tiled one).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.frames.yuv import YUV420

_NAME = re.compile(r"^(poly|guided)(\d+)(-approx)?$")


@dataclass(frozen=True)
class SplitConfig:
    mode: str           # poly | guided
    factor: int = 2
    radius: int = 8     # guided: box radius at low resolution (px)
    eps: float = 1e-3   # guided: regulariser on [0, 1] signals
    approx: bool = False  # run a network with global operations anyway (see memopt.network)

    def __post_init__(self):
        if self.mode not in ("poly", "guided"):
            raise ValueError(f"unknown split mode {self.mode!r}; known: poly, guided")
        if self.factor < 2:
            raise ValueError(f"factor must be >= 2, got {self.factor}")
        if self.radius < 1 or self.eps <= 0:
            raise ValueError("radius must be >= 1 and eps > 0")

    @property
    def name(self) -> str:
        return f"{self.mode}{self.factor}" + ("-approx" if self.approx else "")

    @classmethod
    def parse(cls, name: str) -> "SplitConfig":
        m = _NAME.match(name)
        if not m:
            raise MemoptError(f"{name!r} is not a split variant; the grammar is poly<k> or guided<k>, e.g. poly2")
        try:
            return cls(m.group(1), int(m.group(2)), approx=bool(m.group(3)))
        except ValueError as e:
            raise MemoptError(f"{name}: {e}") from None


def _check(frame: YUV420, k: int) -> None:
    if frame.height % (2 * k) or frame.width % (2 * k):
        raise MemoptError(f"a {frame.width}x{frame.height} frame cannot be split by {k}: width and "
                          f"height must be multiples of {2 * k}")


def polyphase_split(frame: YUV420, k: int) -> list[YUV420]:
    """The k*k phase sub-images, row-major by phase (views, no copies)."""
    _check(frame, k)
    return [YUV420(frame.y[a::k, b::k], frame.u[a::k, b::k], frame.v[a::k, b::k])
            for a in range(k) for b in range(k)]


def polyphase_merge(pieces: Sequence[YUV420], k: int) -> YUV420:
    """Inverse of polyphase_split."""
    if len(pieces) != k * k:
        raise MemoptError(f"polyphase merge needs {k * k} pieces, got {len(pieces)}")
    h, w = pieces[0].height * k, pieces[0].width * k
    out = YUV420(np.empty((h, w), np.uint8), np.empty((h // 2, w // 2), np.uint8),
                 np.empty((h // 2, w // 2), np.uint8))
    for idx, p in enumerate(pieces):
        a, b = divmod(idx, k)
        out.y[a::k, b::k], out.u[a::k, b::k], out.v[a::k, b::k] = p.y, p.u, p.v
    return out


def downscale(frame: YUV420, k: int) -> YUV420:
    """Box-average every plane by k (the frame stays 4:2:0)."""
    import cv2

    _check(frame, k)
    shrink = lambda p: cv2.resize(np.ascontiguousarray(p), (p.shape[1] // k, p.shape[0] // k),  # noqa: E731
                                  interpolation=cv2.INTER_AREA)
    return YUV420(shrink(frame.y), shrink(frame.u), shrink(frame.v))


def guided_upsample(low: np.ndarray, guide_low: np.ndarray, guide_full: np.ndarray,
                    radius: int, eps: float) -> np.ndarray:
    """Fast guided filter: fit low ~ a*guide_low + b locally, apply a, b at full resolution.

    Arrays are float32 in [0, 1]; returns float32 at guide_full's size.
    """
    import cv2

    box = lambda x: cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1))  # noqa: E731
    mi, mp = box(guide_low), box(low)
    cov = box(guide_low * low) - mi * mp
    var = box(guide_low * guide_low) - mi * mi
    a = cov / (var + eps)
    b = mp - a * mi
    size = (guide_full.shape[1], guide_full.shape[0])
    a = cv2.resize(box(a), size, interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(box(b), size, interpolation=cv2.INTER_LINEAR)
    return a * guide_full + b


def enhance_split(run_frames: Callable[[Sequence[YUV420]], YUV420], frames: Sequence[YUV420],
                  cfg: SplitConfig, reference: int) -> YUV420:
    """Enhance by splitting. ``run_frames`` maps F frames to one enhanced frame (any size);
    ``reference`` is the index of the EV-0 frame (the guide for ``guided``)."""
    k = cfg.factor
    if cfg.mode == "poly":
        phases = [polyphase_split(f, k) for f in frames]
        return polyphase_merge([run_frames([p[i] for p in phases]) for i in range(k * k)], k)
    low = run_frames([downscale(f, k) for f in frames])
    ref, ref_low = frames[reference], downscale(frames[reference], k)
    g_full = ref.y.astype(np.float32) / 255
    g_low = ref_low.y.astype(np.float32) / 255
    import cv2

    half = lambda g: cv2.resize(g, (g.shape[1] // 2, g.shape[0] // 2), interpolation=cv2.INTER_AREA)  # noqa: E731
    to8 = lambda x: np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)  # noqa: E731
    y = guided_upsample(low.y.astype(np.float32) / 255, g_low, g_full, cfg.radius, cfg.eps)
    gc_low, gc_full = half(g_low), half(g_full)
    u = guided_upsample(low.u.astype(np.float32) / 255, gc_low, gc_full, max(1, cfg.radius // 2), cfg.eps)
    v = guided_upsample(low.v.astype(np.float32) / 255, gc_low, gc_full, max(1, cfg.radius // 2), cfg.eps)
    return YUV420(to8(y), to8(u), to8(v))
