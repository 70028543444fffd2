"""``tile<T>h<H>``: run the .tflite on T x T windows with an H px halo (see memopt.lite.tiling)."""
from __future__ import annotations

from dataclasses import replace

from memopt.errors import MemoptError
from memopt.lite.tiling import TileConfig


def parse(part: str, align: int = 2) -> TileConfig | None:
    """A tile part; its sizes are checked against the network's probed alignment when the variant
    runs (memopt.study.variant_worker.exactness): a name only has to be even here."""
    if not part.startswith("tile"):
        return None
    try:
        return TileConfig.parse(part, align)
    except MemoptError as e:
        raise ValueError(str(e).split(": ", 1)[-1]) from None


def apply(cfg: TileConfig, build, ctx):
    """The model is converted at the window size; the runner walks the frame (memopt.lite.tiling)."""
    return replace(build, tile=cfg)
