"""A window model's global values as data: what the network split (memopt.network.context) writes
into the .tflite and what the runtime side (memopt.lite.context) reads back, without TensorFlow."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GlobalValue:
    """One global reduction of the network, as the window model takes it."""

    layer: str
    reduce: str                 # mean | max | min | sum
    level: int                  # passes before it: 0 = from the frame alone
    scale: int                  # its input tensor is at 1/scale of the frame (full-res px per element)
    shape: tuple[int, ...]      # the value's shape, batch axis included: [1, C] or [1, 1, 1, C]
    input: int = -1             # the network input it reduces directly (the runner reads that tensor;
                                # a .tflite cannot output its own input), else -1: an extra output

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GlobalValue":
        return cls(str(d["layer"]), str(d["reduce"]), int(d["level"]), int(d["scale"]),
                   tuple(int(x) for x in d["shape"]), int(d.get("input", -1)))


def reduced_tensors(values, inputs: list, outputs: list, n_out: int) -> list:
    """Each value's reduced tensor from a window model call: a network input it reduces directly, or
    the next extra output."""
    extra = iter(outputs[n_out:])
    return [inputs[v.input] if v.input >= 0 else next(extra) for v in values]
