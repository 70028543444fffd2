"""``stream`` / ``ctx<f>``: global context for tiles and pieces of a network with global reductions
(see memopt.lite.context): the network is converted as a window model split at its reductions, and
the runner computes their values over the frame (exactly, or from a downscaled frame) before the
output pass."""
from __future__ import annotations

from dataclasses import replace

from memopt.lite.context import ContextConfig


def parse(part: str) -> ContextConfig | None:
    return ContextConfig.parse(part)


def apply(cfg: ContextConfig, build, ctx):
    return replace(build, context=cfg)
