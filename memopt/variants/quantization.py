"""Post-training quantization at conversion: ``fp16``, ``dyn8``, ``int8``, ``int16x8``.

int8 quality remedies, the standard ones the TFLite converter offers, as dash options:
  ``-pt``    per-tensor weight scales instead of per-channel (the converter's default); here to
             measure what per-channel buys
  ``-s<N>``  N representative samples (default 8; tiles get 64: small windows need many to see a
             frame's brightest and darkest parts)
  ``-f<k>``  selective quantization: the k layers with the largest int8 error (rmse / scale from
             TFLite's QuantizationDebugger on the calibration data) stay in float; the rest int8
  ``-auto``  the fewest operations kept in float for >= 40 dB against the float model on the
             calibration samples (``-q<N>``: N dB), found by memopt's own per-op sensitivity and
             bisection with AI Edge Quantizer (memopt.lite.mixed)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

MODES = {"fp32": "none", "fp16": "float16", "dyn8": "dynamic", "int8": "int8", "int16x8": "int16x8"}
_PART = re.compile(r"^(fp32|fp16|dyn8|int8|int16x8)((?:-[a-z]+\d*)*)$")


@dataclass(frozen=True)
class QuantConfig:
    mode: str = "none"              # memopt.convert mode: none | float16 | dynamic | int8 | int16x8
    per_channel: bool = True
    samples: int | None = None      # None: 8 for whole frames, 64 for tiles
    float_layers: int = 0           # int8: keep this many most sensitive layers in float
    target_db: float = 0.0          # int8-auto / -q<N>: the PSNR vs float the mixed model must reach

    def __post_init__(self):
        if self.mode not in MODES.values():
            raise ValueError(f"unknown quantization {self.mode!r}; known: {', '.join(MODES)}")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"calibration samples must be >= 1, got {self.samples}")
        if self.float_layers < 0:
            raise ValueError(f"float layers must be >= 0, got {self.float_layers}")
        calibrated = self.mode in ("int8", "int16x8")
        if not calibrated and (not self.per_channel or self.samples or self.float_layers):
            raise ValueError("-pt, -s<N> and -f<k> apply to int8 / int16x8 only")
        if (self.float_layers or self.target_db) and self.mode != "int8":
            raise ValueError("-f<k>, -auto and -q<N> apply to int8 only")
        if self.target_db and (self.float_layers or not self.per_channel):
            raise ValueError("-auto / -q<N> choose the float operations themselves: drop -f<k> and -pt")
        if self.target_db < 0 or self.target_db > 120:
            raise ValueError(f"-q<N> is a PSNR in dB, 1..120, got {self.target_db:g}")

    @property
    def name(self) -> str:
        short = {v: k for k, v in MODES.items()}[self.mode]
        return short + ("-pt" if not self.per_channel else "") + (f"-s{self.samples}" if self.samples else "") \
            + (f"-f{self.float_layers}" if self.float_layers else "") \
            + ("" if not self.target_db else "-auto" if self.target_db == 40.0 else f"-q{self.target_db:g}")

    @classmethod
    def parse(cls, part: str) -> "QuantConfig | None":
        m = _PART.match(part)
        if not m:
            return None
        kw: dict = {"mode": MODES[m.group(1)]}
        for opt in filter(None, m.group(2).split("-")):
            if opt == "pt":
                kw["per_channel"] = False
            elif re.fullmatch(r"s\d+", opt):
                kw["samples"] = int(opt[1:])
            elif re.fullmatch(r"f\d+", opt):
                kw["float_layers"] = int(opt[1:])
            elif opt == "auto":
                kw["target_db"] = 40.0
            elif re.fullmatch(r"q\d+", opt):
                kw["target_db"] = float(opt[1:])
            else:
                raise ValueError(f"unknown quantization option -{opt}; known: -pt, -s<N>, -f<k>, -auto, -q<N>")
        return cls(**kw)


def apply(cfg: QuantConfig, build, ctx):
    """Quantization happens at conversion (memopt.convert); the build records how."""
    return replace(build, quant=cfg)
