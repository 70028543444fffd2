"""``slim<m>``: channel slimming, whole channels removed, then fine-tuned.

Every conv layer of memopt's U-Net keeps the ``round(m * width)`` output channels whose filters
have the largest L1 norm (the network has no batch norm whose scales could rank them); the
layers that read a slimmed output keep the matching input channels, through the skip
concatenations. The result is a genuinely smaller tf_keras model, ``build_model`` with narrower
widths on the same I/O contract, so params, MACs, activations and scratch all shrink.
Needs memopt's U-Net layout (a model.json, or layers named ``enc<i>_<j>``/``up<i>``/``dec<i>_<j>``/
``head``); any other architecture gets a clear error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from memopt.errors import MemoptError
from memopt.variants.finetune import fine_tune, model_config

_PART = re.compile(r"^slim(0?\.\d+)$")


@dataclass(frozen=True)
class SlimConfig:
    width: float = 0.5  # width multiplier: the fraction of channels each layer keeps

    def __post_init__(self):
        if not 0.0 < self.width < 1.0:
            raise ValueError(f"width multiplier must be in (0, 1), got {self.width}")

    @property
    def name(self) -> str:
        return f"slim{self.width:g}"

    @classmethod
    def parse(cls, part: str) -> "SlimConfig | None":
        m = _PART.match(part)
        if not m:
            if part.startswith("slim"):
                raise ValueError("slimming is slim<m> with a width multiplier 0 < m < 1, e.g. slim0.5")
            return None
        return cls(float(m.group(1)))


def slim_widths(widths, multiplier: float) -> tuple[int, ...]:
    return tuple(max(1, round(w * multiplier)) for w in widths)


def _top(kernel: np.ndarray, out_axis: int, keep: int) -> np.ndarray:
    """Indices (sorted) of the ``keep`` output channels with the largest L1 norm."""
    norms = np.abs(kernel).sum(axis=tuple(a for a in range(kernel.ndim) if a != out_axis % kernel.ndim))
    return np.sort(np.argsort(-norms, kind="stable")[:keep])


def slim_model(model, cfg, new_cfg):
    """A model built for ``new_cfg`` (narrower widths) holding the strongest channels' weights."""
    from memopt.model import build_model

    new = build_model(new_cfg)
    L, C = cfg.levels, cfg.convs_per_level
    layer = {lay.name: lay for lay in model.layers}
    keep: dict[str, np.ndarray] = {}

    def copy(name, in_idx, out_idx, transpose=False):
        kernel, bias = layer[name].get_weights()
        if transpose:  # Conv2DTranspose kernels are (kh, kw, out, in)
            kernel = kernel[:, :, out_idx][:, :, :, in_idx]
        else:
            kernel = kernel[:, :, in_idx][:, :, :, out_idx]
        new.get_layer(name).set_weights([kernel, bias[out_idx]])
        keep[name] = out_idx

    prev = np.arange(model.input_shape[-1])
    for i in range(L):
        for j in range(C):
            name = f"enc{i}_{j}"
            out_idx = _top(layer[name].get_weights()[0], -1, new_cfg.widths[i])
            copy(name, prev, out_idx)
            prev = out_idx
    for i in reversed(range(L - 1)):
        out_idx = _top(layer[f"up{i}"].get_weights()[0], 2, new_cfg.widths[i])
        copy(f"up{i}", prev, out_idx, transpose=True)
        # dec<i>_0 reads concat([up<i>, enc<i>_last]): the skip's channels sit after up's.
        prev = np.concatenate([keep[f"up{i}"], cfg.widths[i] + keep[f"enc{i}_{C - 1}"]])
        for j in range(C):
            name = f"dec{i}_{j}"
            out_idx = _top(layer[name].get_weights()[0], -1, new_cfg.widths[i])
            copy(name, prev, out_idx)
            prev = out_idx
    copy("head", prev, np.arange(layer["head"].filters))
    return new


def apply(cfg: SlimConfig, build, ctx):
    """Slim the build's model and fine-tune it; the smaller model replaces it."""
    from pathlib import Path

    src = build.model
    base = src.load()
    mcfg = model_config(base, Path(src.model)) if src.model and src.io.is_packed else None
    if mcfg is None:
        raise MemoptError(f"{src.name}: slimming needs memopt's U-Net layout (layers enc<i>_<j>, up<i>, "
                          "dec<i>_<j>, head); use prune/quantization variants for other architectures")
    new_cfg = replace(mcfg, widths=slim_widths(mcfg.widths, cfg.width))
    out = fine_tune(lambda: slim_model(base, mcfg, new_cfg), src, ctx.finetune, ctx.work, verbose=ctx.verbose,
                    evs=ctx.evs)
    return replace(build, model=out)
