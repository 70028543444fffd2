"""Tensor layouts: how a network's input and output tensors hold the frames.

Every place that feeds or reads a network (evaluation, int8 calibration, fine-tuning, ``enhance``,
the tile runner, splitting, the pipeline worker) goes through an ``IOLayout``. One entry per
tensor, in the model's order, written ``<planes>[/<k>][@<frames>]``:

  planes   ``packed`` memopt's 4:2:0 packing (Y 2x2 space-to-depth + U + V, 6 channels at 1/2),
           ``y``, ``uv``, ``u``, ``v`` (one plane or the chroma pair), ``yuv`` (4:4:4, 3 channels),
           ``rgb`` (3 channels)
  /k       the tensor's resolution is the frame's divided by k (a power of two); default: the
           plane's own (``y``, ``yuv``, ``rgb``: 1; ``uv``/``u``/``v``/``packed``: 2)
  @frames  ``@<ev>`` one frame by its EV in tenths of a stop (``y@-20``); ``@all`` every frame
           stacked on channels in increasing EV (the default); ``@batch`` frames on the batch axis

Outputs are one enhanced frame (no ``@``) and together hold Y, U and V once each. An output at a
lower resolution than its plane is brought back to the frame bilinearly (``upsample``; OpenCV's
INTER_LINEAR, pixel centres aligned as ``tf.image.resize``); a higher one is box-averaged down.
``range`` is what pixel values 0..255 map to (linearly); ``chroma`` the order inside a ``uv``/
``yuv``/``packed`` tensor; ``matrix`` the colour matrix the network was trained on: ``bt601``
(full-range YCbCr, JFIF, memopt's own) or ``opencv`` (``cv2.COLOR_BGR2YUV``: U = 0.492 (B - Y),
V = 0.877 (R - Y), chroma gains 0.872 and 1.230 over BT.601's).

Numpy only: the runtime side uses it without TensorFlow. Frames are anything with ``y``, ``u``,
``v`` planes (``memopt.frames.yuv.YUV420`` or float ``Planes``); values 0..255.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from memopt.errors import MemoptError

CHANNELS = {"packed": 6, "y": 1, "uv": 2, "u": 1, "v": 1, "yuv": 3, "rgb": 3}
NATIVE_K = {"packed": 2, "y": 1, "uv": 2, "u": 2, "v": 2, "yuv": 1, "rgb": 1}
# Chroma gain of each matrix over BT.601 full range: OpenCV's U = 0.492 (B - Y) vs Cb = (B - Y) / 1.772.
MATRICES = {"bt601": (1.0, 1.0), "opencv": (0.492 * 1.772, 0.877 * 1.402)}
IGNORE = "ignore"  # an output entry for a tensor that is not the frame (an auxiliary head): never read
_ENTRY = re.compile(r"^(packed|yuv|rgb|uv|y|u|v)(?:/(\d+))?(?:@(all|batch|[+-]?\d+))?$")
_YUV2RGB = np.linalg.inv(np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                                   [0.5, -0.418688, -0.081312]])).astype(np.float32)
_RGB2YUV = np.linalg.inv(_YUV2RGB).astype(np.float32)


class Planes(NamedTuple):
    """A frame as float (or uint8) planes: y (H, W), u and v (H/2, W/2), values 0..255."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def height(self) -> int:
        return self.y.shape[0]

    @property
    def width(self) -> int:
        return self.y.shape[1]


@dataclass(frozen=True)
class Entry:
    """One tensor of a layout."""

    planes: str
    k: int
    frames: str = "all"   # all | batch | an EV in tenths of a stop

    @classmethod
    def parse(cls, text: str, output: bool = False) -> "Entry":
        m = _ENTRY.match(str(text).strip().lower())
        if not m:
            raise ValueError(f"{text!r} is not a tensor entry; the form is <planes>[/<k>][@<frames>] with planes "
                             f"{'|'.join(CHANNELS)}, e.g. y@-20, uv/4@0, rgb@all, y@batch"
                             + ("; an output that is not the frame (an auxiliary head) is 'ignore'" if output else ""))
        planes, k, frames = m.group(1), m.group(2), m.group(3)
        k = int(k) if k else NATIVE_K[planes]
        if k < 1 or k > 64 or k & (k - 1):
            raise ValueError(f"{text}: /k must be a power of two from 1 to 64, got {k}")
        if planes == "packed" and k != 2:
            raise ValueError(f"{text}: packed tensors are at half resolution (/2) by definition")
        if output and frames:
            raise ValueError(f"{text}: outputs hold the one enhanced frame; drop @{frames}")
        return cls(planes, k, frames or "all")

    @property
    def ev(self) -> int | None:
        return None if self.frames in ("all", "batch") else int(self.frames)

    def channels(self, n_frames: int) -> int:
        return CHANNELS[self.planes] * (n_frames if self.frames == "all" else 1)

    def batch(self, n_frames: int) -> int:
        return n_frames if self.frames == "batch" else 1

    def shape(self, height: int, width: int, n_frames: int) -> tuple[int, int, int, int]:
        return (self.batch(n_frames), height // self.k, width // self.k, self.channels(n_frames))


@dataclass(frozen=True)
class IOLayout:
    """The model's tensors, in its order, and how pixel values map into them (see the module doc)."""

    inputs: tuple[str, ...] = ("packed",)
    outputs: tuple[str, ...] = ("packed",)
    range: tuple[float, float] = (0.0, 1.0)
    chroma: str = "uv"
    matrix: str = "bt601"
    upsample: str = "bilinear"

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(str(x) for x in _seq(self.inputs)))
        object.__setattr__(self, "outputs", tuple(str(x) for x in _seq(self.outputs)))
        object.__setattr__(self, "range", tuple(float(x) for x in _seq(self.range)))
        if not self.inputs or not self.outputs:
            raise ValueError("a layout needs at least one input and one output entry")
        ins = [Entry.parse(e) for e in self.inputs]
        ignored = tuple(i for i, e in enumerate(self.outputs) if e.strip().lower() == IGNORE)
        outs = [Entry.parse(e, output=True) for i, e in enumerate(self.outputs) if i not in ignored]
        if not outs:
            raise ValueError(f"outputs {list(self.outputs)}: every output is ignored; name the frame's tensors")
        covered = [p for e in outs for p in {"packed": "yuv", "yuv": "yuv", "rgb": "yuv", "uv": "uv"}.get(
            e.planes, e.planes)]
        if sorted(covered) not in (["u", "v", "y"], ["y"]):
            raise ValueError(f"outputs {list(self.outputs)} must hold Y, U and V once each, or Y alone (chroma "
                             "then comes from the frame nearest EV 0), e.g. [\"packed\"], [\"y/2\", \"uv/8\"], [\"y\"]")
        if len(self.range) != 2 or self.range[0] == self.range[1]:
            raise ValueError(f"range is [low, high] for pixel values 0..255, e.g. [0.0, 1.0]; got {list(self.range)}")
        if self.chroma not in ("uv", "vu"):
            raise ValueError(f"chroma must be 'uv' or 'vu', got {self.chroma!r}")
        if self.matrix not in MATRICES:
            raise ValueError(f"unknown matrix {self.matrix!r}; known: {', '.join(MATRICES)}")
        if self.upsample not in ("bilinear", "nearest"):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {self.upsample!r}")
        evs = [e.ev for e in ins if e.ev is not None]
        if len(set((e.planes, e.ev) for e in ins if e.ev is not None)) != len(evs):
            raise ValueError("an input entry is repeated (same planes, same EV)")
        object.__setattr__(self, "_in", tuple(ins))
        object.__setattr__(self, "_out", tuple(outs))
        object.__setattr__(self, "_ignored", ignored)

    @property
    def in_entries(self) -> tuple[Entry, ...]:
        return self._in  # type: ignore[attr-defined]

    @property
    def out_entries(self) -> tuple[Entry, ...]:
        return self._out  # type: ignore[attr-defined]

    @property
    def ignored(self) -> tuple[int, ...]:
        """Positions (in the model's output order) of the outputs marked ``ignore``."""
        return self._ignored  # type: ignore[attr-defined]

    def used(self) -> "IOLayout":
        """This layout for the model without its ignored outputs (what a converted .tflite keeps)."""
        from dataclasses import replace

        return replace(self, outputs=tuple(e for i, e in enumerate(self.outputs) if i not in self.ignored))

    def kept(self, outputs: Sequence) -> list:
        """The model's outputs (or their shapes) that the layout reads: ignored ones dropped."""
        return [o for i, o in enumerate(outputs) if i not in self.ignored]

    @property
    def is_packed(self) -> bool:
        """memopt's own contract: one packed input of all frames, one packed output, [0, 1], BT.601."""
        return self == PACKED

    @property
    def luma_only(self) -> bool:
        """The network enhances Y only: chroma is the reference frame's (the one nearest EV 0)."""
        return all(e.planes == "y" for e in self.out_entries)

    @property
    def explicit_evs(self) -> tuple[int, ...]:
        return tuple(sorted({e.ev for e in self.in_entries if e.ev is not None}))

    @property
    def needs_all_frames(self) -> bool:
        return any(e.ev is None for e in self.in_entries)

    @property
    def step(self) -> int:
        """Frame sizes must be multiples of this (every tensor at its own resolution; 4:2:0 even)."""
        return math.lcm(2, *(e.k for e in self.in_entries + self.out_entries))

    def resolve_evs(self, hint: Sequence[int] | None) -> tuple[int, ...]:
        """The frames the model takes (EVs, tenths of a stop, increasing): the layout's @ev entries,
        else ``hint`` (the model's recorded EVs); both when the layout also has @all/@batch tensors."""
        explicit = self.explicit_evs
        if not self.needs_all_frames:
            if hint and set(hint) != set(explicit):
                raise MemoptError(f"the layout's frames are EV {list(explicit)} but {list(hint)} were asked for")
            return explicit
        if not hint:
            raise MemoptError("the layout stacks frames (@all/@batch): say which EVs the model takes (--ev)")
        missing = sorted(set(explicit) - set(hint))
        if missing:
            raise MemoptError(f"the layout names EV {missing}, not among the model's frames {list(hint)}")
        return tuple(hint)

    def frames_from_shapes(self, in_shapes) -> int | None:
        """How many frames the @all/@batch tensors hold, read off their static shapes."""
        for e, s in zip(self.in_entries, in_shapes):
            if e.frames == "all" and s[-1]:
                return int(s[-1]) // CHANNELS[e.planes]
            if e.frames == "batch" and s[0]:
                return int(s[0])
        return len(self.explicit_evs) or None

    def input_shapes(self, height: int, width: int, n_frames: int) -> list[tuple[int, ...]]:
        return [e.shape(height, width, n_frames) for e in self.in_entries]

    def output_shapes(self, height: int, width: int) -> list[tuple[int, ...]]:
        return [e.shape(height, width, 1) for e in self.out_entries]

    def frame_hw(self, in_shapes) -> tuple[int, int] | None:
        """The frame size a fixed-shape model takes, from its first input's static H, W."""
        e, s = self.in_entries[0], in_shapes[0]
        if len(s) != 4 or not s[1] or not s[2]:
            return None
        return int(s[1]) * e.k, int(s[2]) * e.k

    def check(self, in_shapes, out_shapes, n_frames: int, source: str = "model") -> None:
        """Raise one line naming the first tensor whose shape the layout does not fit."""
        if len(in_shapes) != len(self.inputs) or len(out_shapes) != len(self.outputs):
            raise MemoptError(f"{source}: has {len(in_shapes)} input and {len(out_shapes)} output tensors; the layout "
                              f"names {len(self.inputs)} and {len(self.outputs)} (memopt inspect {source} proposes one)")
        hw = self.frame_hw(in_shapes)
        out_shapes, out_names = self.kept(out_shapes), self.kept(self.outputs)
        for kind, entries, shapes, nf in (("input", self.in_entries, in_shapes, n_frames),
                                          ("output", self.out_entries, out_shapes, 1)):
            for i, (e, s) in enumerate(zip(entries, shapes)):
                s = tuple(s)
                want = e.shape(*(hw or (0, 0)), nf)
                ok = len(s) == 4 and s[3] == want[3] and (s[0] in (None, -1) or s[0] == want[0] or
                                                          (e.frames != "batch" and s[0] == 1))
                if ok and hw:
                    ok = all(s[a] in (None, -1) or s[a] == want[a] for a in (1, 2))
                if not ok:
                    text = (self.inputs if kind == "input" else out_names)[i]
                    frame = f"a {hw[1]}x{hw[0]} frame" if hw else "a frame"
                    raise MemoptError(f"{source}: {kind} {i} has shape {list(s)}; '{text}' for {frame} and "
                                      f"{n_frames} frame(s) is {list(want) if hw else ['N', 'H', 'W', want[3]]} "
                                      f"(memopt inspect {source} proposes a layout)")

    def describe(self) -> str:
        return (f"inputs {list(self.inputs)}, outputs {list(self.outputs)}, range {list(self.range)}, chroma "
                f"{self.chroma}, matrix {self.matrix}")

    # --- numpy side: frames -> tensors -> frame ---------------------------------------------

    def _scale(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.range
        if (lo, hi) == (0.0, 255.0):
            return x
        return x * np.float32((hi - lo) / 255.0) + np.float32(lo)

    def _unscale(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.range
        return (np.asarray(x, np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))

    def _chroma_pair(self, f, k: int) -> tuple[np.ndarray, np.ndarray]:
        """U, V at 1/k of the frame in the layout's matrix (0..255 float)."""
        u, v = (_resize(np.asarray(p, np.float32), f.height // k, f.width // k, "bilinear") for p in (f.u, f.v))
        gu, gv = MATRICES[self.matrix]
        if (gu, gv) != (1.0, 1.0):  # an 8-bit pipeline saturates, so the network saw clipped values
            u = np.clip((u - 128.0) * np.float32(gu) + 128.0, 0, 255)
            v = np.clip((v - 128.0) * np.float32(gv) + 128.0, 0, 255)
        return u, v

    def _tensor(self, f, e: Entry) -> np.ndarray:
        """One frame's channels of entry ``e``: [h, w, c] float32 in the layout's range."""
        h, w = f.height // e.k, f.width // e.k
        if e.planes == "rgb":
            y = np.asarray(f.y, np.float32)
            u, v = (_resize(np.asarray(p, np.float32), f.height, f.width, "bilinear") - 128.0 for p in (f.u, f.v))
            rgb = np.clip(np.stack([y, u, v], -1) @ _YUV2RGB.T, 0, 255)
            return self._scale(_resize(rgb, h, w, "bilinear"))
        chans = []
        if e.planes in ("y", "yuv"):
            chans.append(_resize(np.asarray(f.y, np.float32), h, w, "bilinear"))
        if e.planes == "packed":
            y = np.asarray(f.y, np.float32)
            chans += [y[dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]  # tf.nn.space_to_depth order
        if e.planes in ("uv", "u", "v", "yuv", "packed"):
            u, v = self._chroma_pair(f, e.k)
            pair = {"u": [u], "v": [v]}.get(e.planes, [u, v] if self.chroma == "uv" else [v, u])
            chans += pair
        return self._scale(np.stack(chans, -1))

    def _bytes(self, f, e: Entry) -> np.ndarray:
        """One frame's channels of a plain-plane entry as the frame's own bytes: [h, w, c] uint8."""
        chans = [f.y] if e.planes == "y" else [f.y[dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)] \
            if e.planes == "packed" else []
        if e.planes != "y":
            chans += {"u": [f.u], "v": [f.v]}.get(e.planes, [f.u, f.v] if self.chroma == "uv" else [f.v, f.u])
        return np.stack([np.asarray(c, np.uint8) for c in chans], -1)

    def feed(self, frames: Sequence, evs: Sequence[int] | None = None, raw: bool = False) -> list[np.ndarray]:
        """The model's input tensors for F frames in increasing EV (``evs`` their EVs, needed by @ev
        entries), batch axis included; ``raw``: the frames' bytes (uint8), for a model whose inputs are
        plain planes at their own resolution (an in-graph tile loop), with no float copy of the frame."""
        step = self.step
        h, w = frames[0].height, frames[0].width
        if h % step or w % step:
            raise MemoptError(f"a {w}x{h} frame does not fit this layout: width and height must be multiples of "
                              f"{step} (its tensors are at 1/{step} of the frame at the least)")
        by_ev = dict(zip(evs, frames)) if evs is not None else {}
        out = []
        for e in self.in_entries:
            if e.ev is None:
                chosen = list(frames)
            elif e.ev in by_ev:
                chosen = [by_ev[e.ev]]
            else:
                raise MemoptError(f"input '{e.planes}@{e.ev}' needs the EV {e.ev} frame; the frames given are EV "
                                  f"{list(evs) if evs is not None else '(unknown)'}")
            parts = [self._bytes(f, e) if raw else self._tensor(f, e) for f in chosen]
            out.append(np.stack(parts) if e.frames == "batch" else np.concatenate(parts, -1)[None])
        return out

    def read(self, outputs: Sequence[np.ndarray], height: int, width: int, chroma=None) -> np.ndarray:
        """The model's outputs as memopt's packed frame: float32 [H/2, W/2, 6] in [0, 1] (unclipped).
        ``chroma``: the (U, V) planes a luma-only network's output takes (the reference frame's)."""
        if self.ignored and len(outputs) == len(self.outputs):
            outputs = self.kept(outputs)
        if len(outputs) != len(self.out_entries):
            raise MemoptError(f"the model gave {len(outputs)} outputs; the layout names {len(self.out_entries)}")
        if self.is_packed:  # memopt's own contract: the tensor is the packed frame already
            t = np.asarray(outputs[0], np.float32)
            return t[0] if t.ndim == 4 else t
        y = u = v = None
        gu, gv = MATRICES[self.matrix]
        for e, t in zip(self.out_entries, outputs):
            t = np.asarray(t)
            if t.ndim == 4:
                if t.shape[0] != 1:
                    raise MemoptError(f"output '{e.planes}' has a batch of {t.shape[0]}; one frame is expected")
                t = t[0]
            x = self._unscale(t)
            if e.planes == "rgb":
                rgb = _resize(x, height, width, self.upsample)
                yuv = rgb @ _RGB2YUV.T
                y = yuv[..., 0]
                u, v = (_resize(yuv[..., c] + 128.0, height // 2, width // 2, "bilinear") for c in (1, 2))
                continue
            cs = [x[..., c] for c in range(x.shape[-1])]
            if e.planes == "packed":
                y = np.empty((2 * x.shape[0], 2 * x.shape[1]), np.float32)
                for c, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                    y[dy::2, dx::2] = cs[c]
                y = _resize(y, height, width, self.upsample)
                cs = cs[4:]
            elif e.planes in ("y", "yuv"):
                y = _resize(cs.pop(0), height, width, self.upsample)
            if e.planes in ("uv", "yuv", "packed"):
                a, b = (_resize(c, height // 2, width // 2, self.upsample) for c in cs)
                u, v = (a, b) if self.chroma == "uv" else (b, a)
            elif e.planes == "u":
                u = _resize(cs[0], height // 2, width // 2, self.upsample)
            elif e.planes == "v":
                v = _resize(cs[0], height // 2, width // 2, self.upsample)
            if e.planes != "y" and (gu, gv) != (1.0, 1.0):
                if e.planes in ("uv", "yuv", "packed", "u"):
                    u = (u - 128.0) / np.float32(gu) + 128.0
                if e.planes in ("uv", "yuv", "packed", "v"):
                    v = (v - 128.0) / np.float32(gv) + 128.0
        if u is None:
            if chroma is None:
                raise MemoptError("the layout's outputs hold luma only; its chroma comes from the reference frame")
            u, v = (np.asarray(c, np.float32) for c in chroma)
        out = np.empty((height // 2, width // 2, 6), np.float32)
        for c, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            out[..., c] = y[dy::2, dx::2]
        out[..., 4], out[..., 5] = u, v
        out *= np.float32(1.0 / 255.0)
        return out

    def run(self, fn: Callable, frames: Sequence, evs: Sequence[int] | None = None, raw: bool = False) -> np.ndarray:
        """Feed ``frames`` to ``fn`` (the model; ``raw``: as bytes) and read its output as a packed float frame."""
        ref = frames[reference(evs, len(frames))]
        return self.read(call(fn, self.feed(frames, evs, raw)), frames[0].height, frames[0].width,
                         (ref.u, ref.v) if self.luma_only else None)

    def window(self, fn: Callable, frames: Sequence, evs, wy: int, wx: int, size: int) -> np.ndarray:
        """The packed float output of the ``size`` px window at (wy, wx) (see ``window_inputs``)."""
        ins, chroma = self.window_inputs(frames, evs, wy, wx, size, size)
        return self.read(call(fn, ins), size, size, chroma and [c[0, ..., 0] for c in chroma])

    def window_inputs(self, frames: Sequence, evs, wy: int, wx: int, th: int, tw: int):
        """(the model's tensors for the th x tw window at (wy, wx), a luma-only network's chroma or
        None). The frame is cut, fed, and each tensor reflect-padded at its own resolution past the
        frame's bottom/right edge (as a network that pads to its pooling grid does, tf.pad REFLECT)."""
        h, w = frames[0].height, frames[0].width
        vh, vw = min(th, h - wy), min(tw, w - wx)
        cut = [Planes(f.y[wy:wy + vh, wx:wx + vw], f.u[wy // 2:(wy + vh) // 2, wx // 2:(wx + vw) // 2],
                      f.v[wy // 2:(wy + vh) // 2, wx // 2:(wx + vw) // 2]) for f in frames]
        ins = self.feed(cut, evs)
        chroma = None
        if self.luma_only:
            ref = cut[reference(evs, len(cut))]
            chroma = [np.asarray(c, np.float32)[None, ..., None] for c in (ref.u, ref.v)]
        if (vh, vw) != (th, tw):
            ins = [_reflect_pad(t, th // e.k, tw // e.k) for t, e in zip(ins, self.in_entries)]
            chroma = chroma and [_reflect_pad(c, th // 2, tw // 2) for c in chroma]
        return ins, chroma


def reference(evs, n: int) -> int:
    """Index of the frame nearest EV 0 (the middle one when the EVs are unknown)."""
    return int(np.argmin(np.abs(np.asarray(evs)))) if evs is not None else n // 2


def call(fn: Callable, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Call a model function: one input tensor is passed as an array, several as a list; one output
    may come back as an array."""
    out = fn(inputs[0] if len(inputs) == 1 else inputs)
    return [out] if isinstance(out, np.ndarray) else list(out)


def _seq(v) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


PACKED = IOLayout()


def _resize(x: np.ndarray, h: int, w: int, how: str) -> np.ndarray:
    """To (h, w): box average by an integer factor going down, bilinear / nearest going up."""
    ih, iw = x.shape[:2]
    if (ih, iw) == (h, w):
        return x
    if ih >= h and iw >= w and ih % h == 0 and iw % w == 0:
        fy, fx = ih // h, iw // w
        return x.reshape(h, fy, w, fx, *x.shape[2:]).mean(axis=(1, 3), dtype=np.float32)
    import cv2  # local: keeps the runtime side's imports light

    interp = cv2.INTER_LINEAR if how == "bilinear" else cv2.INTER_NEAREST
    return cv2.resize(np.ascontiguousarray(x, np.float32), (w, h), interpolation=interp)


def _reflect_pad(t: np.ndarray, h: int, w: int) -> np.ndarray:
    dh, dw = h - t.shape[1], w - t.shape[2]
    if (dh and t.shape[1] < 2) or (dw and t.shape[2] < 2):  # numpy reflects repeatedly past a small tensor
        raise MemoptError(f"the frame is too small for a {w}x{h} window at this tensor's resolution")
    return np.pad(t, ((0, 0), (0, dh), (0, dw), (0, 0)), mode="reflect")


def parse_layout(values: dict[str, Any], where: str) -> IOLayout:
    """An ``[baseline.io]`` table (or an --io file's) -> IOLayout, one clear error for a bad key or value."""
    from memopt.config import from_dict

    return from_dict(IOLayout, values, where)


def load_layout(path) -> IOLayout:
    """A TOML file with the layout's keys at the top level or under [io] / [baseline.io]."""
    from memopt.config import read_toml

    raw = read_toml(path, "layout file")
    raw = raw.get("baseline", raw)
    raw = raw.get("io", raw)
    return parse_layout(raw, str(path))


def layout_dict(layout: IOLayout) -> dict[str, Any]:
    return {"inputs": list(layout.inputs), "outputs": list(layout.outputs), "range": list(layout.range),
            "chroma": layout.chroma, "matrix": layout.matrix, "upsample": layout.upsample}


def propose(in_shapes, out_shapes, default_evs: Sequence[int] = (-20, 0, 4)) -> IOLayout | None:
    """A layout that fits the shapes (the planes guessed from channel counts and relative sizes);
    None when no guess fits. EVs, range, chroma order and matrix cannot be read off shapes."""
    ins, outs = [tuple(s) for s in in_shapes], [tuple(s) for s in out_shapes]
    if len(ins) == 1 and ins[0][-1] and ins[0][-1] % 6 == 0 and [s[-1] for s in outs].count(6) == 1:
        # memopt's packed contract; any other output is an auxiliary head
        return PACKED if len(outs) == 1 else IOLayout(("packed",), tuple("packed" if s[-1] == 6 else IGNORE
                                                                        for s in outs))
    frame_h = max((s[1] * (2 if s[-1] == 2 else 1) for s in ins if s[1]), default=None)
    names, count = [], {}
    for s in ins:
        c = s[-1]
        planes = {1: "y", 2: "uv", 3: "rgb"}.get(c) or ("rgb" if c and c % 3 == 0 else "y" if c else None)
        if planes is None:
            return None
        k = (frame_h // s[1]) if frame_h and s[1] else NATIVE_K[planes]
        n = count.get(planes, 0)
        count[planes] = n + 1
        if c in (1, 2, 3) and s[0] and s[0] > 1:
            frames = "@batch"
        elif c in (1, 2, 3) and len(ins) > 1:
            frames = f"@{default_evs[min(n, len(default_evs) - 1)]}"
        else:
            frames = ""
        kk = "" if k == NATIVE_K[planes] else f"/{k}"
        names.append(f"{planes}{kk}{frames}")
    # The frame: a tensor that holds all its planes (packed / rgb), else Y and UV; of several
    # candidates the finest; the other outputs (auxiliary heads) ignored. A tie is not guessed.
    planes_of = [{1: "y", 2: "uv", 3: "rgb", 6: "packed"}.get(s[-1]) if len(s) == 4 else None for s in outs]

    def finest(kinds):
        cands = [i for i, p in enumerate(planes_of) if p in kinds]
        if not cands:
            return None
        best = max(outs[i][1] or 0 for i in cands)
        top = [i for i in cands if (outs[i][1] or 0) == best]
        return top[0] if len(top) == 1 else -1

    full = finest(("packed", "rgb"))
    chosen = [full] if full is not None else [finest(("y",)), finest(("uv",))]
    if -1 in chosen or chosen == [None, None] or (full is None and chosen[0] is None):
        return None  # no frame, or two tensors that could each be it
    onames = []
    for i, s in enumerate(outs):
        if i not in chosen:
            onames.append(IGNORE)
            continue
        planes = planes_of[i]
        k = (frame_h // s[1]) if frame_h and s[1] else NATIVE_K[planes]
        onames.append(f"{planes}" + ("" if k == NATIVE_K[planes] else f"/{k}"))
    try:
        return IOLayout(tuple(names), tuple(onames))
    except ValueError:
        return None
