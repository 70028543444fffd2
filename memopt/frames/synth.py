"""Synthetic multi-exposure bursts from clean photos, written in the dataset layout.

For each scene: take a clean sRGB photo (scikit-image's bundled samples by default, or any
folder of images), random crop/flip, linearise (sRGB EOTF), darken it by a random scene exposure
so that EV 0 is 1-3 stops under, scale by 2^EV per frame, add heteroscedastic shot + read noise
with the sensor-noise ranges of Brooks et al. 2019, "Unprocessing Images for Learned Raw
Denoising" (Sec. 3.3: log shot ~ U(log 1e-4, log 1.2e-2), log read ~ N(2.18 log shot + 1.2, 0.26)),
clip, re-encode to sRGB, convert to YUV 4:2:0 and save NV21 frames ``ev<t>.yuv`` plus ``gt.yuv``
(the clean photo). One noise level per scene: a bracket is shot at one ISO, exposure time varies.
Deterministic for a seed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError
from memopt.frames.yuv import IMAGE_SUFFIXES, even_crop, read_image, rgb_to_yuv420, write_yuv
from memopt.fsutil import atomic_write_text

# A dataset spec that names a synthetic dataset: synthetic:<scenes>:<seed>.
SYNTH_SPEC = re.compile(r"^synthetic:(\d+):(\d+)$")

# Colour photographs that scikit-image ships inside its wheel (no download needed).
SKIMAGE_SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")


def load_sources(folder: str | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) clean photos: a folder of images, or scikit-image's samples."""
    if folder:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise MemoptError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to synthesise from")
        return [(p.stem, read_image(p)) for p in paths]
    import skimage.data as skd

    out = []
    for name in SKIMAGE_SAMPLES:
        if name.startswith("motorcycle"):
            left, right, _ = skd.stereo_motorcycle()
            img = left if name.endswith("left") else right
        else:
            img = getattr(skd, name)()
        out.append((name, img[..., :3]))
    return out


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def random_noise_levels(rng) -> tuple[float, float]:
    """Shot and read noise variances (linear, [0, 1] signal), Brooks et al. 2019."""
    log_shot = rng.uniform(np.log(1e-4), np.log(1.2e-2))
    log_read = 2.18 * log_shot + 1.20 + rng.normal(0.0, 0.26)
    return float(np.exp(log_shot)), float(np.exp(log_read))


def synth_scene(clean: np.ndarray, ev_tenths: Sequence[int], rng, size: int | None = None):
    """One burst: returns (frames as RGB uint8 in increasing EV, ground truth RGB, parameters)."""
    img = clean
    h, w = img.shape[:2]
    if size and max(h, w) > size:  # random crop of at most size x size
        ch, cw = min(h, size), min(w, size)
        i, j = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
        img = img[i:i + ch, j:j + cw]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = even_crop(np.ascontiguousarray(img))
    lin = srgb_to_linear(img.astype(np.float32) / 255.0)
    under = float(rng.uniform(1.0, 3.0))  # stops the EV 0 frame is under-exposed
    shot, read = random_noise_levels(rng)
    frames = []
    for ev in ev_tenths:
        x = lin * 2.0 ** (ev / 10.0 - under)
        x = x + rng.normal(size=x.shape).astype(np.float32) * np.sqrt(shot * np.clip(x, 0, None) + read)
        frames.append(np.rint(linear_to_srgb(x) * 255.0).astype(np.uint8))
    params = {"under_stops": under, "shot": shot, "read": read}
    return frames, img, params


def synthesize(out, scenes: int, seed: int = 0, ev_tenths: Sequence[int] = (-20, 0, 4),
               source: str | None = None, size: int | None = 512) -> int:
    """Write ``scenes`` synthetic scenes to ``out`` (built in a temp folder, renamed at the end)."""
    from tqdm import tqdm

    if scenes < 1:
        raise MemoptError(f"--scenes must be >= 1, got {scenes}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MemoptError(f"{out}: already exists and is not empty; choose a new --out or remove it")
    sources = load_sources(source)
    tmp = out.with_name(f".{out.name}.synth")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k in tqdm(range(scenes), desc="synth", unit="scene", leave=False):
        rng = np.random.default_rng([seed, k])
        name, clean = sources[k % len(sources)]
        frames, gt, params = synth_scene(clean, ev_tenths, rng, size)
        d = tmp / f"s{k:04d}"
        for ev, f in zip(ev_tenths, frames):
            write_yuv(d / f"ev{ev}.yuv", rgb_to_yuv420(f))
        write_yuv(d / "gt.yuv", rgb_to_yuv420(gt))
        params.update(source=name, seed=seed, ev_tenths=list(ev_tenths), ev_unit="tenths of a stop")
        atomic_write_text(d / "scene.json", json.dumps(params, indent=1))
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return scenes
