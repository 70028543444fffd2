"""YUV 4:2:0 frames: raw NV21/NV12 files, JPEG/PNG images, and conversion to and from RGB.

Colour: BT.601 full range (the JFIF/camera convention): Y, U, V all span 0..255, U and V centred
on 128. Chroma is subsampled by a 2x2 box average (centred siting) and upsampled bilinearly with
half-pixel centres, which is the inverse of that siting.

Raw layouts (Android names): both hold the full-resolution Y plane (W*H bytes) followed by one
interleaved half-resolution chroma plane (W*H/2 bytes): NV21 interleaves V,U (Android's camera
default), NV12 interleaves U,V.

The geometry of a raw .yuv file comes from, in this order: explicit arguments, a sidecar
``<file>.json`` holding ``{"width": W, "height": H, "format": "nv21"}``, a ``yuv.json`` of the same
form in the file's folder or the folder above (one for a whole dataset), or a ``WxH`` in the file
name (``frame_4032x3024.nv21.yuv``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_bytes

YUV_FORMATS = ("nv21", "nv12")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
YUV_SUFFIXES = (".yuv", ".nv21", ".nv12")

# BT.601 full range (JFIF), rows give Y, U, V from R, G, B.
_RGB2YUV = np.array([[0.299, 0.587, 0.114],
                     [-0.168736, -0.331264, 0.5],
                     [0.5, -0.418688, -0.081312]], dtype=np.float32)
_YUV2RGB = np.linalg.inv(_RGB2YUV).astype(np.float32)


@dataclass(frozen=True)
class YUV420:
    """One 8-bit YUV 4:2:0 frame as three planes: y (H, W), u and v (H/2, W/2), all uint8."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def __post_init__(self):
        h, w = self.y.shape
        if h % 2 or w % 2:
            raise MemoptError(f"YUV 4:2:0 needs even width and height, got {w}x{h}")
        for name, plane in (("u", self.u), ("v", self.v)):
            if plane.shape != (h // 2, w // 2):
                raise MemoptError(f"{name} plane is {plane.shape[::-1]}, expected {(w // 2, h // 2)} "
                                  f"for a {w}x{h} frame")
        for plane in (self.y, self.u, self.v):
            if plane.dtype != np.uint8:
                raise MemoptError(f"YUV planes must be uint8, got {plane.dtype}")

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    def to_bytes(self, fmt: str = "nv21") -> bytes:
        """Serialise as NV21 (Y then VU interleaved) or NV12 (Y then UV interleaved)."""
        import io

        buf = io.BytesIO()
        self.write_to(buf, fmt)
        return buf.getvalue()

    def write_to(self, fh, fmt: str = "nv21", rows: int = 256) -> None:
        """Stream NV21/NV12 to a binary file in row blocks, never holding a second full copy."""
        fmt = _check_format(fmt)
        first, second = (self.v, self.u) if fmt == "nv21" else (self.u, self.v)
        for r in range(0, self.height, rows):
            fh.write(np.ascontiguousarray(self.y[r:r + rows]).tobytes())
        block = np.empty((rows, self.width), dtype=np.uint8)
        for r in range(0, self.height // 2, rows):
            n = min(rows, self.height // 2 - r)
            block[:n, 0::2] = first[r:r + n]
            block[:n, 1::2] = second[r:r + n]
            fh.write(block[:n].tobytes())

    @classmethod
    def from_bytes(cls, data, width: int, height: int, fmt: str = "nv21",
                   source: str = "buffer") -> "YUV420":
        """Parse NV21/NV12 bytes (or a uint8 array). ``source`` names the file in error messages.

        The planes are views into ``data``, not copies: a 12 MP frame costs its 18 MB once,
        which the tiled pipeline's memory budget counts on.
        """
        fmt = _check_format(fmt)
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise MemoptError(f"{source}: YUV 4:2:0 needs positive even width and height, "
                              f"got {width}x{height}")
        expected = width * height * 3 // 2
        if len(data) != expected:
            kind = "truncated" if len(data) < expected else "too large"
            raise MemoptError(f"{source}: {kind}: {len(data)} bytes, expected {expected} for "
                              f"{fmt.upper()} {width}x{height} (W*H*3/2)")
        buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        y = buf[: width * height].reshape(height, width)
        chroma = buf[width * height:].reshape(height // 2, width)
        first, second = chroma[:, 0::2], chroma[:, 1::2]
        u, v = (second, first) if fmt == "nv21" else (first, second)
        return cls(y, u, v)


def _check_format(fmt: str) -> str:
    f = (fmt or "").lower()
    if f not in YUV_FORMATS:
        raise MemoptError(f"unknown YUV format {fmt!r}; known: {', '.join(YUV_FORMATS)}")
    return f


# --- colour conversion -------------------------------------------------------------------------

def rgb_to_yuv420(rgb: np.ndarray, rows: int = 128) -> YUV420:
    """RGB uint8 (H, W, 3) with even H, W -> YUV420 (BT.601 full range, box-averaged chroma).

    Converted ``rows`` rows at a time straight into the uint8 planes: a 12 MP frame never exists
    as float (which took ~400 MB of transients per frame); every pixel's arithmetic is unchanged.
    """
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise MemoptError(f"RGB image is {w}x{h}; YUV 4:2:0 needs even width and height")
    out = YUV420(np.empty((h, w), np.uint8), np.empty((h // 2, w // 2), np.uint8),
                 np.empty((h // 2, w // 2), np.uint8))
    rows += rows % 2
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        yuv = rgb[r0:r1].astype(np.float32) @ _RGB2YUV.T
        yuv[..., 1:] += 128.0
        c = yuv[..., 1:].reshape((r1 - r0) // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
        out.y[r0:r1] = _to8(yuv[..., 0])
        out.u[r0 // 2:r1 // 2] = _to8(c[..., 0])
        out.v[r0 // 2:r1 // 2] = _to8(c[..., 1])
    return out


def _to8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def upsample_chroma(plane: np.ndarray) -> np.ndarray:
    """Half-resolution chroma (float or uint8) -> full resolution float32, bilinear, centred."""
    import cv2  # local: keeps `import memopt.frames.yuv` light for the runtime-only benchmark process

    h, w = plane.shape
    return cv2.resize(plane.astype(np.float32), (w * 2, h * 2), interpolation=cv2.INTER_LINEAR)


def yuv420_to_rgb(frame: YUV420) -> np.ndarray:
    """YUV420 -> RGB uint8 (H, W, 3)."""
    yuv = np.stack([frame.y.astype(np.float32), upsample_chroma(frame.u) - 128.0,
                    upsample_chroma(frame.v) - 128.0], axis=-1)
    return np.clip(np.rint(yuv @ _YUV2RGB.T), 0, 255).astype(np.uint8)


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image as float32 0..255."""
    return rgb.astype(np.float32) @ _RGB2YUV[0]


# --- files -------------------------------------------------------------------------------------

# A WxH in a file name stands alone (ev0_4032x3024.yuv), not inside a word (out-int16x8.yuv).
_NAMED_SIZE = re.compile(r"(?<![A-Za-z0-9])(\d+)x(\d+)(?![A-Za-z0-9])")


def yuv_geometry(path: str | os.PathLike, width: int | None = None, height: int | None = None,
                 fmt: str | None = None) -> tuple[int, int, str]:
    """Width, height and layout of a raw .yuv file: arguments, then sidecar, then the file name."""
    p = Path(path)
    side = p.with_name(p.name + ".json")
    meta = {}
    cand = _sidecar(p)  # per-file sidecar first, then a folder-wide yuv.json (scene folder or dataset root)
    if cand:
        try:
            meta = json.loads(cand.read_text())
        except (OSError, ValueError) as e:
            raise MemoptError(f"{cand}: unreadable sidecar ({e}); expected "
                              '{"width": W, "height": H, "format": "nv21"}') from None
    m = _NAMED_SIZE.search(p.name)
    w = width or meta.get("width") or (int(m.group(1)) if m else None)
    h = height or meta.get("height") or (int(m.group(2)) if m else None)
    if m and w and h and (int(m.group(1)), int(m.group(2))) != (int(w), int(h)):
        raise MemoptError(f"{p}: the name says {m.group(1)}x{m.group(2)} but "
                          f"{'the arguments' if width or height or cand is None else cand.name} "
                          f"say {w}x{h}; rename the file or fix the sidecar")
    if not w or not h:
        raise MemoptError(f"{p}: size unknown; give --width/--height, a sidecar {side.name} "
                          '({"width": W, "height": H, "format": "nv21"}), or WxH in the file name')
    f = fmt or meta.get("format") or ("nv12" if ".nv12" in p.name.lower() else "nv21")
    return int(w), int(h), _check_format(f)


def read_yuv(path, width: int | None = None, height: int | None = None,
             fmt: str | None = None) -> YUV420:
    """Read a raw NV21/NV12 file (geometry as described in the module docstring). A size read off
    the file name (``WxH``) must also fit the picture: its rows must line up (see _rows_misaligned)."""
    w, h, f = yuv_geometry(path, width, height, fmt)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # one buffer; the planes are views into it
    except OSError as e:
        raise MemoptError(f"{path}: cannot read ({e.strerror})") from None
    frame = YUV420.from_bytes(data, w, h, f, source=str(path))
    named = not (width and height) and not _sidecar(Path(path))
    if named and w != h and _rows_misaligned(frame.y) and not _rows_misaligned(data[: w * h].reshape(w, h)):
        raise MemoptError(f"{path}: the name says {w}x{h} (width x height), but the picture's rows line up only as "
                          f"{h}x{w}; rename it {Path(path).name.replace(f'{w}x{h}', f'{h}x{w}')} or give a sidecar")
    return frame


def _sidecar(p: Path) -> Path | None:
    return next((c for c in (p.with_name(p.name + ".json"), p.parent / "yuv.json", p.parent.parent / "yuv.json")
                 if c.is_file()), None)


def _rows_misaligned(y: np.ndarray) -> bool:
    """Whether a Y plane read at a wrong width: each row then starts where the true picture's row
    does not, so vertical neighbours differ far more than horizontal ones. A band of rows in the
    middle is enough; a flat or noise-only picture says nothing (False)."""
    mid = y.shape[0] // 2
    band = y[max(0, mid - 32): mid + 32].astype(np.int16)
    dv = float(np.abs(np.diff(band, axis=0)).mean())
    dh = float(np.abs(np.diff(band, axis=1)).mean())
    return dv > 2.5 * dh + 2.0


def write_yuv(path, frame: YUV420, fmt: str = "nv21", sidecar: bool = True) -> None:
    """Write a raw NV21/NV12 file atomically, with a ``<file>.json`` sidecar giving its geometry."""
    fmt = _check_format(fmt)
    atomic_write_bytes(path, lambda fh: frame.write_to(fh, fmt))
    if sidecar:
        meta = {"width": frame.width, "height": frame.height, "format": fmt}
        atomic_write_bytes(str(path) + ".json", json.dumps(meta).encode())


def read_image(path, long_side: int | None = None) -> np.ndarray:
    """Read JPEG/PNG/... as RGB uint8. ``long_side`` resizes (area filter) so max(H, W) == it.

    Large JPEGs are decoded at a reduced scale first (libjpeg's DCT scaling), which is much
    faster than decoding 24 MP and then shrinking.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise MemoptError(f"{p}: no such image file")
    flag = cv2.IMREAD_COLOR
    if long_side:
        # Largest reduction that still leaves at least long_side pixels on the long side.
        info = _image_size(p)
        if info:
            for factor, f in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                              (2, cv2.IMREAD_REDUCED_COLOR_2)):
                if max(info) // factor >= long_side:
                    flag = f
                    break
    bgr = cv2.imread(str(p), flag)
    if bgr is None:
        raise MemoptError(f"{p}: not a readable image (expected JPEG/PNG/BMP/TIFF)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)  # in place: no second copy of the frame
    if long_side and max(rgb.shape[:2]) > long_side:
        rgb = resize_rgb(rgb, long_side)
    return np.ascontiguousarray(rgb)


def _image_size(p: Path) -> tuple[int, int] | None:
    """(H, W) of an image from its header when cheap to get (JPEG/PNG), else None."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(2)
            if head == b"\xff\xd8":  # JPEG: scan markers for a start-of-frame
                while True:
                    marker = fh.read(2)
                    if len(marker) < 2 or marker[0] != 0xFF:
                        return None
                    length = int.from_bytes(fh.read(2), "big")
                    if marker[1] in (0xC0, 0xC1, 0xC2):
                        fh.read(1)
                        h = int.from_bytes(fh.read(2), "big")
                        w = int.from_bytes(fh.read(2), "big")
                        return h, w
                    fh.seek(length - 2, 1)
            if head == b"\x89P":
                fh.seek(16)
                w = int.from_bytes(fh.read(4), "big")
                h = int.from_bytes(fh.read(4), "big")
                return h, w
    except OSError:
        return None
    return None


def write_image(path, rgb: np.ndarray) -> None:
    """Write RGB uint8 as an image (format from the suffix), atomically."""
    import cv2

    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise MemoptError(f"{path}: unknown image suffix {suffix!r}; use one of "
                          f"{', '.join(IMAGE_SUFFIXES)} or .yuv")
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise MemoptError(f"{path}: could not encode image")
    atomic_write_bytes(path, buf.tobytes())


def even_crop(rgb: np.ndarray) -> np.ndarray:
    """Drop a last odd row/column so the image can become YUV 4:2:0."""
    h, w = rgb.shape[:2]
    return rgb[: h - h % 2, : w - w % 2]


def is_yuv_path(path) -> bool:
    name = str(path).lower()
    return name.endswith(YUV_SUFFIXES)


def read_rgb(path, long_side: int | None = None, width: int | None = None,
             height: int | None = None, fmt: str | None = None) -> np.ndarray:
    """One frame as even-sized RGB uint8 from a raw .yuv file or an image, shrunk so that its
    long side is at most ``long_side``."""
    if is_yuv_path(path):
        rgb = yuv420_to_rgb(read_yuv(path, width, height, fmt))
        if long_side and max(rgb.shape[:2]) > long_side:
            rgb = resize_rgb(rgb, long_side)
    else:
        rgb = read_image(path, long_side)
    return even_crop(rgb)


def read_frame(path, long_side: int | None = None, width: int | None = None,
               height: int | None = None, fmt: str | None = None) -> YUV420:
    """Read one frame as YUV420 from a raw .yuv file or an image (odd image sizes lose one edge
    row/column; raw .yuv files must already be even). A raw file that needs no resizing keeps
    its planes exactly."""
    if is_yuv_path(path):
        frame = read_yuv(path, width, height, fmt)
        if not long_side or max(frame.width, frame.height) <= long_side:
            return frame
    return rgb_to_yuv420(read_rgb(path, long_side, width, height, fmt))


def resize_rgb(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so that max(H, W) == long_side (area filter when shrinking)."""
    import cv2

    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    return cv2.resize(rgb, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)


def write_frame(path, frame: YUV420, fmt: str | None = None) -> None:
    """Write a frame as raw YUV (suffix .yuv/.nv21/.nv12) or as an image (other suffixes)."""
    if is_yuv_path(path):
        name = str(path).lower()
        write_yuv(path, frame, fmt or ("nv12" if name.endswith(".nv12") else "nv21"))
    else:
        write_image(path, yuv420_to_rgb(frame))
