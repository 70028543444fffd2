"""Receptive field, alignment and non-locality of any network, probed through its tensor layout.

The probe treats the network as a function frame -> frame (layout feed, model, layout read) on a
small random frame:
  radius     a strong change of one pixel (all planes, all frames), at a few positions and at
             every offset within the largest grid the network may have, changes output pixels up
             to ``radius`` px away (Chebyshev distance): the halo a window needs. An unchanged
             pixel is bit-for-bit unchanged, so any difference counts.
  alignment  the smallest shift s (a power of two, at least the layout's step) under which a
             shifted frame gives the shifted output away from the borders: the pooling grid and
             the /k tensors; tile origins and sizes must be multiples of it.
  non-local  a change in one corner reaches the opposite corner: global pooling, attention, a
             resize to a fixed size. Such a network has no finite halo; tiles are not exact.
For memopt's U-Net it agrees with the interval arithmetic of memopt.network.unet.receptive_field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from memopt.network.layout import IOLayout, Planes


@dataclass(frozen=True)
class Probe:
    radius: int | None        # None: non-local (or wider than the probe frame)
    alignment: int | None     # None when non-local
    non_local: bool
    size: int                 # the probe frame's side (px)

    @property
    def halo(self) -> int | None:
        """The smallest halo (multiple of the alignment) that covers the radius."""
        if self.radius is None or not self.alignment:
            return None
        return -(-self.radius // self.alignment) * self.alignment

    def describe(self) -> str:
        if self.non_local:
            return (f"receptive field: the whole frame (non-local: a change in one corner reaches the opposite "
                    f"one on a {self.size} px frame); windows and pieces are not exact")
        return (f"receptive field: radius {self.radius} px (halo >= {self.halo} px); alignment {self.alignment} px "
                f"(probed on a {self.size} px frame)")


def _frames(rng, n: int, h: int, w: int) -> list[Planes]:
    return [Planes(rng.uniform(60, 190, (h, w)).astype(np.float32), rng.uniform(90, 160, (h // 2, w // 2)).astype(
        np.float32), rng.uniform(90, 160, (h // 2, w // 2)).astype(np.float32)) for _ in range(n)]


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full-resolution map of output pixels that differ (packed [H/2, W/2, 6] -> [H, W])."""
    d = a != b
    y = np.zeros((2 * a.shape[0], 2 * a.shape[1]), bool)
    for c, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        y[dy::2, dx::2] = d[..., c]
    chroma = np.repeat(np.repeat(d[..., 4] | d[..., 5], 2, 0), 2, 1)
    return y | chroma


def _poke(frames, y: int, x: int, size: int = 1, amount: float = 60.0):
    out = []
    for f in frames:
        fy, fu, fv = f.y.copy(), f.u.copy(), f.v.copy()
        fy[y:y + size, x:x + size] += amount
        fu[y // 2:(y + size + 1) // 2, x // 2:(x + size + 1) // 2] += amount / 2
        fv[y // 2:(y + size + 1) // 2, x // 2:(x + size + 1) // 2] -= amount / 2
        out.append(Planes(fy, fu, fv))
    return out


def probe(fn: Callable, layout: IOLayout, n_frames: int, evs=None, size: int = 256, max_grid: int = 64,
          seed: int = 0) -> Probe:
    """Probe ``fn`` (the model on its tensors) through ``layout`` on ``size`` px random frames."""
    rng = np.random.default_rng(seed)
    s = size - size % layout.step
    base = _frames(rng, n_frames, s, s)
    out0 = layout.run(fn, base, evs)
    # Non-local: a corner block changes the opposite corner.
    far = _changed(out0, layout.run(fn, _poke(base, 0, 0, 8), evs))
    q = s // 8
    if far[-q:, -q:].any():
        return Probe(None, None, True, s)
    # Radius: one pixel at every offset of the coarsest grid that fits, near the centre.
    grid = min(max_grid, s // 8)
    radius = 0
    c = s // 2 - grid // 2
    for o in range(grid):
        ch = _changed(out0, layout.run(fn, _poke(base, c + o, c + o), evs))
        ys, xs = np.nonzero(ch)
        if len(ys):
            radius = max(radius, int(np.max(np.maximum(np.abs(ys - (c + o)), np.abs(xs - (c + o))))))
    if radius >= s // 2 - grid:
        return Probe(None, None, True, s)
    # Alignment: the smallest shift under which the output shifts with the frame.
    align = layout.step
    while align <= max_grid:
        sh = [Planes(np.roll(f.y, -align, (0, 1)), np.roll(f.u, -align // 2, (0, 1)), np.roll(f.v, -align // 2, (0, 1)))
              for f in base]
        out1 = layout.run(fn, sh, evs)
        m = radius + align + 2
        a = out0[(m + align) // 2:(s - m) // 2, (m + align) // 2:(s - m) // 2]
        b = out1[m // 2:(s - m - align) // 2, m // 2:(s - m - align) // 2]
        if a.size and np.allclose(a, b, rtol=1e-5, atol=1e-6):
            return Probe(radius, align, False, s)
        align *= 2
    return Probe(radius, None, False, s)
