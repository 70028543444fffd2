"""``tib`` | ``wcache`` | ``tib-wcache`` | ``noxnn``: the runtime's own memory settings (memopt.lite.runtime).

The .tflite is the same file with or without them; they change how the phone's runtime runs it:
XNNPACK's transient indirection buffer, its file-backed weight cache, or XNNPACK off.
"""
from __future__ import annotations

from dataclasses import replace

from memopt.lite.runtime import RuntimeConfig


def parse(part: str) -> RuntimeConfig | None:
    return RuntimeConfig.parse(part)


def apply(cfg: RuntimeConfig, build, ctx):
    return replace(build, runtime=cfg)
