"""A study's data: dataset specs resolved to folders (``synthetic:<n>:<seed>`` synthesised once),
every scene with ground truth prepared at the study's frame size, and which scenes trained the
baseline (quality measured on those is in-sample)."""
from __future__ import annotations

import json
from pathlib import Path

from memopt.errors import MemoptError
from memopt.frames.data import scan_dataset
from memopt.frames.synth import SYNTH_SPEC, synthesize
from memopt.frames.yuv import read_rgb, rgb_to_yuv420, write_yuv


def prepare_scenes(data, ev_tenths, height: int, width: int, scratch: Path, max_scenes=None) -> list[Path]:
    """Each scene with ground truth, resized to height x width, as ev<t>.yuv + gt.yuv (gt last: a
    scene folder with gt.yuv is complete)."""
    import cv2

    out = []
    scenes = [s for s in scan_dataset(data) if s.gt is not None][:max_scenes]
    for s in scenes:
        d = scratch / s.name
        if not (d / "gt.yuv").exists():
            for ev, f in zip(ev_tenths, s.select(ev_tenths)):
                rgb = cv2.resize(read_rgb(f.path, None), (width, height), interpolation=cv2.INTER_AREA)
                write_yuv(d / f"ev{ev}.yuv", rgb_to_yuv420(rgb))
            rgb = cv2.resize(read_rgb(s.gt, None), (width, height), interpolation=cv2.INTER_AREA)
            write_yuv(d / "gt.yuv", rgb_to_yuv420(rgb))
        out.append(d)
    if not out:
        raise MemoptError(f"{data}: no scenes with ground truth to evaluate on")
    return out


def resolve_data(spec: str, scratch: Path, ev_tenths) -> str:
    """A dataset spec -> a folder; ``synthetic:<n>:<seed>`` is synthesised once under scratch/."""
    m = SYNTH_SPEC.match(spec)
    if not m:
        if not Path(spec).is_dir():
            raise MemoptError(f"dataset {spec} does not exist (paths are relative to the working directory)")
        return spec
    n, seed = int(m.group(1)), int(m.group(2))
    folder = scratch / f"synthetic-{n}-{seed}-ev{'_'.join(map(str, ev_tenths))}"
    if not folder.exists():
        synthesize(folder, n, seed, tuple(ev_tenths))  # built aside and renamed: never half there
    return str(folder)


def resolve_train_data(tr, scratch: Path):
    """A TrainRecipe whose synthetic:<n>:<seed> data specs are synthesised folders under scratch."""
    from dataclasses import replace

    ev = tr.model.ev_tenths
    return replace(tr, data=replace(tr.data, train=tuple(resolve_data(s, scratch, ev) for s in tr.data.train),
                                    val=tuple(resolve_data(s, scratch, ev) for s in tr.data.val)))


def in_sample(model: Path, folder: str) -> set[str]:
    """Scenes of ``folder`` the baseline trained on (its model.json and recipe.json say which):
    quality measured on them is in-sample."""
    meta, rec = model.parent / "model.json", model.parent / "recipe.json"
    if not (meta.is_file() and rec.is_file()):
        return set()
    trained = set(json.loads(meta.read_text()).get("train_scenes", []))
    folders = {Path(f).resolve() for f in json.loads(rec.read_text())["data"]["train"]}
    if Path(folder).resolve() not in folders:
        return set()
    return {s.name for s in scan_dataset(folder)} & trained
