"""Tiled inference: a full frame goes through a tile-sized model piece by piece.

Variant name ``tile<T>h<H>``: windows of T x T full-resolution pixels, of which a border of H
pixels on each side is halo (context only) and the inner T-2H x T-2H is kept. The model is
converted at the window's shape; the runner reads three uint8 YUV 4:2:0 frames, packs each window
on the fly, runs it, and writes the kept core into a uint8 output frame, so no full-frame float
tensor ever exists (only one window's).

Exactness: with H >= the model's receptive-field radius and T, H multiples of its tile alignment
(the pooling grid, 8 px for the 3-level U-Net), the output equals the full-frame model's. Windows
are clamped inside the frame, so a window at the frame's edge sees the same zero padding the
full-frame convolutions see; a frame whose size is not a multiple of the alignment is extended
at the bottom/right by the same reflection the full-frame model applies inside (PadToMultiple).
With a smaller halo the output is approximate: seams appear where a core's context was cut.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.frames.yuv import YUV420
from memopt.network.layout import PACKED, IOLayout

_NAME = re.compile(r"^tile(\d+)h(\d+)(-approx)?$")


@dataclass(frozen=True)
class TileConfig:
    """Window T and halo H in full-resolution pixels; ``align``: the model's tile alignment."""

    tile: int
    halo: int
    align: int = 8
    approx: bool = False   # run a network with global operations anyway (not exact; see memopt.network)

    def __post_init__(self):
        if self.align < 2 or self.align % 2:
            raise ValueError(f"align must be even and >= 2, got {self.align}")
        for name, v in (("tile", self.tile), ("halo", self.halo)):
            if v % self.align:
                raise ValueError(f"{name} {v} must be a multiple of {self.align} px (the model's pooling grid)")
        if self.halo < 0 or self.tile - 2 * self.halo < self.align:
            raise ValueError(f"tile {self.tile} leaves no core after a halo of {self.halo} on each side")

    @property
    def name(self) -> str:
        return f"tile{self.tile}h{self.halo}" + ("-approx" if self.approx else "")

    @property
    def core(self) -> int:
        return self.tile - 2 * self.halo

    @classmethod
    def parse(cls, name: str, align: int = 8) -> "TileConfig":
        m = _NAME.match(name)
        if not m:
            raise MemoptError(f"{name!r} is not a tile variant name; the grammar is tile<T>h<H>[-approx], e.g. tile512h48")
        try:
            return cls(int(m.group(1)), int(m.group(2)), align, bool(m.group(3)))
        except ValueError as e:
            raise MemoptError(f"{name}: {e}") from None


def _starts(length: int, core: int, halo: int, tile: int) -> list[tuple[int, int, int]]:
    """(window start, core start, core end) along one axis, in full-res pixels."""
    out = []
    for cs in range(0, length, core):
        ce = min(cs + core, length)
        ws = min(max(cs - halo, 0), length - tile)
        out.append((ws, cs, ce))
    return out


def padded(height: int, width: int, align: int) -> tuple[int, int]:
    """The frame's size rounded up to the alignment (what the windows walk)."""
    return -(-height // align) * align, -(-width // align) * align


def tile_grid(height: int, width: int, cfg: TileConfig) -> list[tuple[int, int, int, int, int, int]]:
    """Windows over a frame padded to the alignment: (wy, wx, cy0, cy1, cx0, cx1)."""
    hp, wp = padded(height, width, cfg.align)
    if hp < cfg.tile or wp < cfg.tile:
        raise MemoptError(f"a {width}x{height} frame is smaller than the {cfg.tile} px window; "
                          "run the model on the whole frame instead")
    rows, cols = _starts(hp, cfg.core, cfg.halo, cfg.tile), _starts(wp, cfg.core, cfg.halo, cfg.tile)
    return [(wy, wx, cy0, cy1, cx0, cx1) for wy, cy0, cy1 in rows for wx, cx0, cx1 in cols]


def run_tiled(model: Callable, frames: Sequence[YUV420], cfg: TileConfig,
              sink: Callable[[np.ndarray, int, int], None], progress: bool = False,
              layout: IOLayout = PACKED, evs=None) -> int:
    """Run ``model`` (its tensors for a T x T window, in ``layout``; packed by default) window by window.

    Each window's tensors are cut at their own resolution (memopt.network.layout); ``sink(core, y, x)``
    receives each kept core as a packed float [h/2, w/2, 6] array and its full-res origin; cores
    cover the frame exactly once. Returns the number of windows.
    """
    h, w = frames[0].height, frames[0].width
    if any((f.height, f.width) != (h, w) for f in frames):
        raise MemoptError("all frames must have the same size")
    if h % layout.step or w % layout.step:
        raise MemoptError(f"a {w}x{h} frame does not fit the network's layout: width and height must be multiples "
                          f"of {layout.step}")
    grid = tile_grid(h, w, cfg)
    it = grid
    if progress:
        from tqdm import tqdm

        it = tqdm(grid, desc=cfg.name, unit="tile", leave=False)
    for wy, wx, cy0, cy1, cx0, cx1 in it:
        y = layout.window(model, frames, evs, wy, wx, cfg.tile)
        cy1, cx1 = min(cy1, h), min(cx1, w)  # drop the alignment padding
        if cy1 <= cy0 or cx1 <= cx0:
            continue
        sink(y[(cy0 - wy) // 2:(cy1 - wy) // 2, (cx0 - wx) // 2:(cx1 - wx) // 2], cy0, cx0)
    return len(grid)


def _write(out: YUV420, packed: np.ndarray, y: int, x: int) -> None:
    from memopt.frames.contract import unpack

    t = unpack(packed)
    out.y[y:y + t.height, x:x + t.width] = t.y
    out.u[y // 2:(y + t.height) // 2, x // 2:(x + t.width) // 2] = t.u
    out.v[y // 2:(y + t.height) // 2, x // 2:(x + t.width) // 2] = t.v


def enhance_tiled(model, frames: Sequence[YUV420], cfg: TileConfig, progress: bool = True,
                  blend: str = "none", layout: IOLayout = PACKED, evs=None) -> YUV420:
    """Tiled enhancement into a uint8 YUV420 frame (the only full-frame buffer besides the inputs).

    ``blend="none"`` keeps each window's core (exact when the halo covers the receptive field);
    ``"feather"`` blends every overlap with complementary linear ramps, which hides the seams a
    halo smaller than the receptive field leaves.
    """
    h, w = frames[0].height, frames[0].width
    out = YUV420(np.empty((h, w), np.uint8), np.empty((h // 2, w // 2), np.uint8),
                 np.empty((h // 2, w // 2), np.uint8))
    if blend == "none":
        run_tiled(model, frames, cfg, lambda core, y, x: _write(out, core, y, x), progress, layout, evs)
    elif blend == "feather":
        _feather(model, frames, cfg, out, progress, layout, evs)
    else:
        raise MemoptError(f"unknown blend {blend!r}; known: none, feather")
    return out


def _ramp(ov: int) -> np.ndarray:
    """Rising weights across an overlap of ``ov`` packed px: 0 over the outer quarter (a window's
    edge is its worst part: least context), linear over the middle half, 1 over the last quarter;
    the mirror image sums with it to one."""
    i = np.arange(ov) + 0.5
    q = ov / 4.0
    return np.clip((i - q) / max(ov - 2 * q, 1e-6), 0.0, 1.0).astype(np.float32)


def _ramps(starts: list[int], size: int) -> list[np.ndarray]:
    """Per-window 1-D weights (packed px), complementary across every overlap with a neighbour."""
    out = []
    for i, s in enumerate(starts):
        wgt = np.ones(size, np.float32)
        if i > 0:
            ov = starts[i - 1] + size - s
            if ov > 0:
                wgt[:ov] = _ramp(ov)
        if i + 1 < len(starts):
            ov = s + size - starts[i + 1]
            if ov > 0:
                wgt[size - ov:] = np.minimum(wgt[size - ov:], _ramp(ov)[::-1])
        out.append(wgt)
    return out


def _feather(model, frames, cfg: TileConfig, out: YUV420, progress: bool, layout: IOLayout = PACKED,
             evs=None) -> None:
    """Feathered tiling with a strip accumulator: one window row of float sums, never the frame."""
    h, w = frames[0].height, frames[0].width
    grid = tile_grid(h, w, cfg)
    rows = sorted({g[0] for g in grid})
    cols = sorted({g[1] for g in grid})
    t2, wp2 = cfg.tile // 2, (cols[-1] + cfg.tile) // 2
    ry, rx = _ramps([r // 2 for r in rows], t2), _ramps([c // 2 for c in cols], t2)
    acc = np.zeros((t2, wp2, 6), np.float32)
    wsum = np.zeros((t2, wp2, 1), np.float32)
    it = enumerate(rows)
    if progress:
        from tqdm import tqdm

        it = tqdm(list(it), desc=cfg.name + "-feather", unit="row", leave=False)
    base = rows[0] // 2  # packed row where acc starts
    for i, wy in it:
        off = wy // 2 - base
        if off:  # rows above this window row are final: write them, shift the rest up
            _write_rows(out, acc[:off] / wsum[:off], 2 * base, h, w)
            acc[:t2 - off], wsum[:t2 - off] = acc[off:], wsum[off:]
            acc[t2 - off:], wsum[t2 - off:] = 0, 0
            base = wy // 2
        for j, wx in enumerate(cols):
            y = layout.window(model, frames, evs, wy, wx, cfg.tile)
            wgt = (ry[i][:, None] * rx[j][None, :])[..., None]
            acc[:, wx // 2:wx // 2 + t2] += y * wgt
            wsum[:, wx // 2:wx // 2 + t2] += wgt
    _write_rows(out, acc / wsum, 2 * base, h, w)


def _write_rows(out: YUV420, packed: np.ndarray, y0: int, h: int, w: int) -> None:
    """Write finished packed rows starting at full-res row y0, clipped to the real frame."""
    n = min(packed.shape[0], (h - y0) // 2)
    if n > 0:
        _write(out, packed[:n, : w // 2], y0, 0)
