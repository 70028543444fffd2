"""Tile autotune: the largest window whose predicted memory fits a budget, checked by measuring it.

Bigger windows mean fewer windows and less recomputed halo, so the largest one that fits is the
fastest. The predicted peak grows with the window (memopt.lite.predict), so the candidates are
bisected: each probe converts the model at one window size and predicts its peak from the file.

Budget figures: ``model`` is the tile model's overall peak as the host benchmark measures it
(runtime included; benchmark_model's own figure on a phone); ``pipeline`` adds the uint8 frames
the tile loop holds (F inputs + 1 output, W*H*3/2 bytes each).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from memopt.errors import MemoptError

MB = 1024.0 * 1024.0


@dataclass
class TuneResult:
    tile: int
    halo: int
    predicted_mb: float
    measured_mb: float | None
    model_path: Path
    probes: list[tuple[int, float]]


def frames_mb(width: int, height: int, frames: int) -> float:
    return (frames + 1) * width * height * 1.5 / MB


def autotune(model, budget_mb: float, out_dir, frame_hw: tuple[int, int] = (3024, 4032),
             quant: str = "int8", halo: int = 48, align: int = 8, figure: str = "model",
             rep_data: Sequence[str] = (), ev_tenths=None, measure: bool = True, step: int = 64,
             runtime=None) -> TuneResult:
    """Find the largest square window T (multiple of ``step`` and ``align``) that fits ``budget_mb``;
    ``runtime`` (memopt.lite.runtime.RuntimeConfig, e.g. tib) is predicted and measured with the window."""
    from memopt.convert import ConvertConfig, convert_cached
    from memopt.lite.bench import BenchConfig, bench_host
    from memopt.lite.predict import predict

    if figure not in ("model", "pipeline"):
        raise MemoptError(f"--figure must be model or pipeline, got {figure!r}")
    h, w = frame_hw
    out_dir = Path(out_dir)
    smallest = max(step, -(-(2 * halo + align) // step) * step)
    candidates = list(range(smallest, min(h, w) + 1, step))
    if not candidates:
        raise MemoptError(f"no window of at least {smallest} px fits a {w}x{h} frame")
    probes: dict[int, float] = {}
    paths: dict[int, Path] = {}
    extra = 0.0
    if figure == "pipeline":
        from memopt.train import load_keras

        extra = frames_mb(w, h, load_keras(model).input_shape[-1] // 6)

    def predicted(t: int) -> float:
        if t not in probes:
            paths[t] = convert_cached(model, ConvertConfig(t, t, quant, samples=64), out_dir, rep_data, ev_tenths)
            probes[t] = predict(paths[t], runtime=runtime).peak_mb + extra
        return probes[t]

    lo, hi = 0, len(candidates) - 1
    if predicted(candidates[0]) > budget_mb:
        raise MemoptError(f"even a {candidates[0]} px window is predicted at {probes[candidates[0]]:.0f} MB, "
                          f"over the {budget_mb:.0f} MB budget: lower the halo, quantize, or slim the model")
    while lo < hi:  # the largest index whose prediction fits
        mid = (lo + hi + 1) // 2
        if predicted(candidates[mid]) <= budget_mb:
            lo = mid
        else:
            hi = mid - 1
    best = candidates[lo]
    path = paths[best]
    measured = None
    if measure:
        cfg = BenchConfig(runs=2, runtime=runtime) if runtime is not None else BenchConfig(runs=2)
        measured = bench_host(path, cfg, predict=False)["peak_mb"] + extra
    return TuneResult(best, halo, probes[best], measured, path, sorted(probes.items()))
