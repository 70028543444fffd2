"""The variant-name grammar, parsed in one place.

A name is parts joined by ``+``, at most one of each kind, in any order:

  quantization  ``fp32`` (the default), ``fp16``, ``dyn8``, ``int8``, ``int16x8``
  tiling        ``tile<T>h<H>``: windows of T px with an H px halo, e.g. ``tile384h48``
  splitting     ``poly<k>`` (polyphase) or ``guided<k>`` (low-res pass + guided filter)

``fp32`` alone is the baseline: the float32 model on the whole frame. Examples: ``int8``,
``int8+tile384h48``, ``poly2+tile512h48``. The model-side variants (pruning, slimming) join this
grammar with their own parts.
"""
from __future__ import annotations

from dataclasses import dataclass

from memopt.errors import MemoptError
from memopt.splitting import SplitConfig
from memopt.tiling import TileConfig

QUANT_PARTS = {"fp32": "none", "fp16": "float16", "dyn8": "dynamic", "int8": "int8", "int16x8": "int16x8"}
GRAMMAR = "parts joined by '+': fp32|fp16|dyn8|int8|int16x8, tile<T>h<H>, poly<k>|guided<k>"


@dataclass(frozen=True)
class Variant:
    name: str
    quant: str = "none"                 # memopt.convert mode
    tile: TileConfig | None = None
    split: SplitConfig | None = None

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) the .tflite is converted at for frames of height x width."""
        if self.tile:
            return self.tile.tile, self.tile.tile
        if self.split:
            k = self.split.factor
            return height // k, width // k
        return height, width


def parse_variant(name: str, align: int = 8) -> Variant:
    """Turn a variant name into its parts; an unknown or repeated part is an error naming the grammar."""
    parts = [p for p in name.strip().lower().split("+") if p]
    if not parts:
        raise MemoptError(f"empty variant name; {GRAMMAR}")
    quant, tile, split = None, None, None
    for p in parts:
        if p in QUANT_PARTS:
            if quant is not None:
                raise MemoptError(f"{name}: two quantization parts")
            quant = QUANT_PARTS[p]
        elif p.startswith("tile"):
            if tile is not None:
                raise MemoptError(f"{name}: two tiling parts")
            tile = TileConfig.parse(p, align)
        elif p.startswith(("poly", "guided")):
            if split is not None:
                raise MemoptError(f"{name}: two splitting parts")
            split = SplitConfig.parse(p)
        else:
            raise MemoptError(f"{name}: unknown part {p!r}; {GRAMMAR}")
    return Variant(name, quant or "none", tile, split)
