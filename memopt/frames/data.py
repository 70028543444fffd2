"""Datasets: the scene-folder layout, frame choice by EV, merge/check, and the numpy crop stream that training (memopt.train) batches with tf.data.

Layout (documented in docs/datasets.md)::

    DATASET/
      yuv.json                  optional: {"width": W, "height": H, "format": "nv21"} for .yuv files
      <scene>/
        ev-20.yuv ev0.yuv ev4.yuv   one frame per exposure, named ev<EV in tenths of a stop>
        gt.yuv                      the ground truth (gt.* or label.*), same size as the frames

Frames may be .yuv/.nv21/.nv12 or images (.jpg/.png/...). A scene whose frames are not named by
EV (e.g. SICE: 1.JPG ... 7.JPG) is ordered by mean luma, and rank - middle rank is taken as the
approximate EV in stops; a ``manifest.csv`` with ``scene,file,mean_luma`` columns in the dataset
root supplies the luma without decoding the frames.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.frames.yuv import IMAGE_SUFFIXES, YUV420, YUV_SUFFIXES, read_frame, yuv_geometry

FRAME_SUFFIXES = YUV_SUFFIXES + IMAGE_SUFFIXES
GT_STEMS = ("gt", "label")
_EV_NAME = re.compile(r"^ev([+-]?\d+)$", re.IGNORECASE)
_SIZE = re.compile(r"[_.-]\d+x\d+$", re.IGNORECASE)  # a raw frame's WxH in its name (ev0_4032x3024.yuv)


def _bare(stem: str) -> str:
    """A frame name without the WxH that raw YUV files may carry."""
    return _SIZE.sub("", stem)


@dataclass(frozen=True)
class Frame:
    path: Path
    ev_tenths: int
    approximate: bool  # True: EV from luma rank, not from the file name


@dataclass(frozen=True)
class Scene:
    name: str
    path: Path
    frames: tuple[Frame, ...]  # increasing EV
    gt: Path | None

    def select(self, ev_tenths: Sequence[int]) -> list[Frame]:
        """The frame nearest each configured EV (ties go to the darker frame)."""
        if not self.frames:
            raise MemoptError(f"scene {self.name}: no frames ({self.path})")
        return [min(self.frames, key=lambda f: (abs(f.ev_tenths - ev), f.ev_tenths)) for ev in ev_tenths]


def _is_frame_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")


def _manifest_luma(root: Path) -> dict[tuple[str, str], float]:
    m = root / "manifest.csv"
    if not m.is_file():
        return {}
    try:
        with open(m, newline="") as fh:
            return {(r["scene"], r["file"]): float(r["mean_luma"]) for r in csv.DictReader(fh)}
    except (KeyError, ValueError, OSError):
        return {}  # a manifest of another shape: fall back to measuring


def mean_luma(path: Path) -> float:
    """Mean Y of a frame, cheaply (reduced JPEG decode, Y plane only for raw YUV)."""
    if path.suffix.lower() in YUV_SUFFIXES:
        w, h, _ = yuv_geometry(path)
        with open(path, "rb") as fh:
            y = np.frombuffer(fh.read(w * h), dtype=np.uint8)
        return float(y.mean()) if y.size else 0.0
    import cv2

    g = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if g is None:
        raise MemoptError(f"{path}: not a readable image")
    return float(g.mean())


def scan_scene(path: Path, manifest: dict | None = None) -> Scene:
    """Read one scene folder's file names (and, for unnamed exposures, their mean luma)."""
    path = Path(path)
    files = sorted((p for p in path.iterdir() if _is_frame_file(p)), key=lambda p: p.name)
    gt = next((p for p in files if _bare(p.stem).lower() in GT_STEMS), None)
    frames = [p for p in files if p is not gt]
    named = [(p, _EV_NAME.match(_bare(p.stem))) for p in frames]
    if frames and all(m for _, m in named):
        out = [Frame(p, int(m.group(1)), False) for p, m in named]
    else:
        manifest = manifest or {}
        lum = [(manifest.get((path.name, p.name)) or mean_luma(p), p) for p in frames]
        lum.sort(key=lambda t: t[0])
        mid = (len(lum) - 1) // 2
        out = [Frame(p, (rank - mid) * 10, True) for rank, (_, p) in enumerate(lum)]
    out.sort(key=lambda f: f.ev_tenths)
    return Scene(path.name, path, tuple(out), gt)


def scan_dataset(root) -> list[Scene]:
    """All scenes under a dataset folder (every sub-folder is a scene), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise MemoptError(f"{root}: no such dataset folder")
    manifest = _manifest_luma(root)
    scenes = [scan_scene(d, manifest) for d in sorted(root.iterdir(), key=lambda d: _natural(d.name))
              if d.is_dir() and not d.name.startswith(".")]
    if not scenes:
        raise MemoptError(f"{root}: no scene folders (expected <scene>/ev<EV>.yuv ... + gt.*)")
    return scenes


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def load_scene(scene: Scene, ev_tenths: Sequence[int], long_side: int | None = None
               ) -> tuple[list[YUV420], YUV420 | None]:
    """Read the chosen frames (increasing EV) and the ground truth as YUV420, optionally resized."""
    frames = [read_frame(f.path, long_side) for f in scene.select(ev_tenths)]
    gt = read_frame(scene.gt, long_side) if scene.gt else None
    sizes = {(f.width, f.height) for f in frames + ([gt] if gt else [])}
    if len(sizes) > 1:
        raise MemoptError(f"scene {scene.name}: frames and ground truth differ in size: {sorted(sizes)}")
    return frames, gt


# --- check and merge ---------------------------------------------------------------------------

def _frame_size(path: Path) -> tuple[int, int]:
    from memopt.frames.yuv import _image_size, is_yuv_path, read_image

    if is_yuv_path(path):
        w, h, _ = yuv_geometry(path)
        expected = w * h * 3 // 2
        size = path.stat().st_size
        if size != expected:
            raise MemoptError(f"{path.name} is {size} bytes, expected {expected} for {w}x{h}")
        return w, h
    hw = _image_size(path)
    if hw is None:
        hw = read_image(path).shape[:2]
    return hw[1], hw[0]


def check_dataset(root, ev_tenths: Sequence[int]) -> list[tuple[str, str]]:
    """Problems of a dataset as (scene, what is wrong); empty when every scene is usable."""
    problems = []
    for scene in scan_dataset(root):
        def bad(msg, s=scene):
            problems.append((s.name, msg))

        if scene.gt is None:
            bad("no ground truth (expected gt.<ext> or label.<ext>)")
        if not scene.frames:
            bad("no exposure frames")
            continue
        chosen = scene.select(ev_tenths)
        if not scene.frames[0].approximate:
            missing = [ev for ev in ev_tenths if ev not in {f.ev_tenths for f in scene.frames}]
            if missing:
                have = ", ".join(str(f.ev_tenths) for f in scene.frames)
                bad(f"missing exposure(s) EV {missing} (tenths of a stop); has {have}")
        elif len({f.path for f in chosen}) < len(chosen):
            bad(f"only {len(scene.frames)} frame(s): not enough distinct exposures for EVs {list(ev_tenths)}")
        else:  # luma-ranked frames step ~1 stop: a request further than that is not covered
            far = [(ev, f.ev_tenths) for ev, f in zip(ev_tenths, chosen) if abs(f.ev_tenths - ev) > 10]
            if far:
                bad("exposure(s) not covered: " + ", ".join(
                    f"EV {ev} -> nearest frame is EV {got} (by luma rank)" for ev, got in far))
        sizes = {}
        for p in [f.path for f in chosen] + ([scene.gt] if scene.gt else []):
            try:
                sizes[p.name] = _frame_size(p)
            except MemoptError as e:
                bad(str(e).replace(str(p.parent) + os.sep, ""))
            except OSError as e:
                bad(f"{p.name}: unreadable ({e.strerror})")
        if len(set(sizes.values())) > 1:
            bad("sizes differ: " + ", ".join(f"{n} {w}x{h}" for n, (w, h) in sizes.items()))
    return problems


def merge_datasets(parts: Sequence[str], out, rename: str | None = None) -> int:
    """Combine dataset parts into ``out`` (hard links where possible, else copies).

    Duplicate scene names are refused unless ``rename`` is a template such as
    ``"{part}-{scene}"``, applied to every scene of every part. Written to a temporary folder
    and renamed at the end, so an interrupted merge leaves nothing half-made. Returns scene count.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MemoptError(f"{out}: already exists and is not empty; choose a new --out")
    plan: dict[str, Path] = {}
    yuv_meta = None
    for part in parts:
        pp = Path(part)
        if not pp.is_dir():
            raise MemoptError(f"{pp}: no such dataset part")
        if (pp / "yuv.json").is_file():
            meta = (pp / "yuv.json").read_text()
            if yuv_meta is not None and meta.strip() != yuv_meta.strip():
                raise MemoptError(f"{pp}/yuv.json differs from an earlier part's; "
                                  "merge parts with one frame geometry, or add per-file sidecars")
            yuv_meta = meta
        for d in sorted(pp.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            try:
                name = rename.format(part=pp.name, scene=d.name) if rename else d.name
            except (KeyError, IndexError) as e:
                raise MemoptError(f"bad --rename template {rename!r} ({e}); use {{part}} and {{scene}}") from None
            if name in plan:
                hint = "" if rename else " (pass --rename '{part}-{scene}' to keep both)"
                raise MemoptError(f"duplicate scene name {name!r}: in {plan[name].parent} and {pp}{hint}")
            plan[name] = d
    if not plan:
        raise MemoptError("no scenes found in the given parts")
    tmp = out.with_name(f".{out.name}.merging")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    from tqdm import tqdm

    for name, src in tqdm(sorted(plan.items()), desc="merge", unit="scene", leave=False):
        shutil.copytree(src, tmp / name, copy_function=_link_or_copy)
    if yuv_meta is not None:
        (tmp / "yuv.json").write_text(yuv_meta)
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return len(plan)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --- training pairs and the tf.data loader -------------------------------------------------------

def load_pairs(folders: Sequence[str], ev_tenths: Sequence[int], long_side: int | None,
               exclude: Sequence[str] = (), desc: str = "load", only: Sequence[str] | None = None,
               ev_shifts: Sequence[int] = (0,)) -> list[tuple[np.ndarray, np.ndarray, str, int]]:
    """Packed (input, target, scene name, folder index) for every scene with a ground truth.

    Each ``ev_shifts`` value adds the pair whose frames are nearest EV+shift (same ground truth);
    a shift that picks the same frames as an earlier one is skipped.
    """
    from tqdm import tqdm

    from memopt.frames.contract import pack, pack_frame

    scenes = [(k, s) for k, f in enumerate(folders) for s in scan_dataset(f)
              if s.name not in set(exclude) and (only is None or s.name in set(only))]
    pairs = []
    for k, s in tqdm(scenes, desc=desc, unit="scene", leave=False):
        if s.gt is None:
            continue
        seen = set()
        for shift in ev_shifts:
            evs = [ev + shift for ev in ev_tenths]
            key = tuple(f.path for f in s.select(evs))
            if key in seen or len(set(key)) < len(key):
                continue
            seen.add(key)
            frames, gt = load_scene(s, evs, long_side)
            pairs.append((pack(frames), pack_frame(gt), s.name, k))
    if not pairs:
        raise MemoptError(f"no scenes with ground truth in {', '.join(folders)}")
    return pairs


# Channel permutations of one packed frame for flips: (y00, y01, y10, y11, u, v).
_FLIP_W = np.array([1, 0, 3, 2, 4, 5])
_FLIP_H = np.array([2, 3, 0, 1, 4, 5])


def flip_packed(t: np.ndarray, axis: int) -> np.ndarray:
    """Flip a packed tensor [h, w, 6k] in full-resolution terms (axis 0: vertical, 1: horizontal)."""
    perm = _FLIP_H if axis == 0 else _FLIP_W
    k = t.shape[-1] // 6
    idx = np.concatenate([perm + 6 * i for i in range(k)])
    return np.flip(t, axis=axis)[..., idx]


def crop_stream(pairs, crop: int, seed: int, weights: Sequence[float] = ()):
    """Endless random crops (crop x crop full-res px) with random flips, as (x, y) float32.

    ``weights`` gives each source folder's share of the samples (uniform over its scenes);
    empty: every scene equally likely.
    """
    rng = np.random.default_rng(seed)
    c = crop // 2
    if weights:
        counts = np.bincount([p[3] for p in pairs], minlength=len(weights))
        w = np.array([weights[p[3]] / counts[p[3]] for p in pairs])
        prob = w / w.sum()
    else:
        prob = None
    while True:
        x, y = pairs[rng.choice(len(pairs), p=prob)][:2]
        h, w = x.shape[:2]
        if h < c or w < c:  # a scene smaller than the crop: pad by reflection
            ph, pw = max(0, c - h), max(0, c - w)
            x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="reflect")
            y = np.pad(y, ((0, ph), (0, pw), (0, 0)), mode="reflect")
            h, w = x.shape[:2]
        i, j = rng.integers(h - c + 1), rng.integers(w - c + 1)
        xs, ys = x[i:i + c, j:j + c], y[i:i + c, j:j + c]
        for axis in (0, 1):
            if rng.random() < 0.5:
                xs, ys = flip_packed(xs, axis), flip_packed(ys, axis)
        yield np.ascontiguousarray(xs), np.ascontiguousarray(ys)
