"""``prune<p>`` and ``prune<m>of<n>``: magnitude pruning with tensorflow-model-optimization.

``prune50``: every conv kernel is pruned to 50 % zeros by magnitude, ramped up over the first 60 %
of a fine-tuning run (tfmot's PolynomialDecay schedule), then ``strip_pruning`` leaves a plain
tf_keras model. ``prune2of4``: structured sparsity, at most 2 non-zero weights in every block of 4
along the input channels (tfmot's ``sparsity_m_by_n``), the pattern sparse hardware kernels want.

What it buys on a phone: TFLite's dense kernels (XNNPACK, the built-in ones) multiply the zeros
like any weight, so peak memory and latency do not move and the .tflite is as large; only the
compressed (gzip) size shrinks. XNNPACK's sparse inference covers 1x1 convolutions in NCHW
sub-graphs only (MobileNet-style nets), not this network's 3x3 convolutions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from memopt.errors import MemoptError
from memopt.variants.finetune import fine_tune

_PART = re.compile(r"^prune(?:(\d+)|(\d+)of(\d+))$")


@dataclass(frozen=True)
class PruneConfig:
    sparsity: float = 0.5                  # fraction of zero weights (magnitude pruning)
    m_by_n: tuple[int, int] | None = None  # (m, n): at most m non-zero weights in every n instead

    def __post_init__(self):
        if self.m_by_n is None and not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.m_by_n is not None:
            m, n = self.m_by_n
            if not 0 < m < n:
                raise ValueError(f"m:n sparsity needs 0 < m < n, got {m}of{n}")

    @property
    def name(self) -> str:
        if self.m_by_n:
            return f"prune{self.m_by_n[0]}of{self.m_by_n[1]}"
        return f"prune{round(self.sparsity * 100)}"

    @property
    def target_sparsity(self) -> float:
        return 1.0 - self.m_by_n[0] / self.m_by_n[1] if self.m_by_n else self.sparsity

    @classmethod
    def parse(cls, part: str) -> "PruneConfig | None":
        m = _PART.match(part)
        if not m:
            if part.startswith("prune"):
                raise ValueError("pruning is prune<p> (percent zeros, e.g. prune50) or prune<m>of<n> (e.g. prune2of4)")
            return None
        if m.group(1):
            return cls(sparsity=int(m.group(1)) / 100)
        return cls(m_by_n=(int(m.group(2)), int(m.group(3))))


def wrap(model, cfg: PruneConfig, total_steps: int, skipped: list | None = None):
    """The model with every layer tfmot can prune wrapped (convolutions, Dense); the names and weight
    counts of layers with kernels it cannot wrap go to ``skipped`` (they stay dense)."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    sp = tfmot.sparsity.keras
    if cfg.m_by_n:
        kw = {"sparsity_m_by_n": tuple(cfg.m_by_n)}
    else:
        # Masks update every `freq` steps up to `end`, which must land on an update step, or the
        # final sparsity is never applied.
        end = max(1, int(0.6 * total_steps))
        freq = max(1, end // 10)
        kw = {"pruning_schedule": sp.PolynomialDecay(0.0, cfg.sparsity, begin_step=0,
                                                     end_step=end // freq * freq, frequency=freq)}
    skipped = skipped if skipped is not None else []

    def clone(layer):  # the layer itself (its trained weights), wrapped where tfmot can
        weights = sum(int(w.shape.num_elements()) for w in layer.weights if "kernel" in w.name)
        if not weights:
            return layer
        ok = not hasattr(layer, "layers") and PruneRegistry.supports(layer)
        if ok and cfg.m_by_n:  # m:n sparsity runs along input channels: plain convolutions and Dense only
            ok = layer.__class__.__name__ in ("Conv2D", "Conv2DTranspose", "Dense")
        if ok:
            return sp.prune_low_magnitude(layer, **kw)
        skipped.append((layer.name, weights))
        return layer

    from memopt.tfenv import keras

    return keras.models.clone_model(model, clone_function=clone)


def kernel_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each conv kernel."""
    import numpy as np

    return {layer.name: float(np.mean(layer.kernel.numpy() == 0)) for layer in model.layers
            if hasattr(layer, "kernel") and layer.kernel is not None}


def apply(cfg: PruneConfig, build, ctx):
    """Prune and fine-tune the build's model; the stripped result replaces it. Layers tfmot cannot
    wrap (nested models, custom layers) stay dense; ``pruning.json`` beside the model says which."""
    import json

    import tensorflow_model_optimization as tfmot

    from memopt.fsutil import atomic_write_text

    src = build.model
    steps = ctx.finetune.epochs * ctx.finetune.steps_per_epoch
    skipped: list = []

    def make():
        from memopt.network.check import layout_shapes, outputs_diff

        base = src.load((ctx.finetune.crop, ctx.finetune.crop))
        skipped.clear()
        wrapped = wrap(base, cfg, steps, skipped)
        # Before the first step every mask is 1: the wrapped copy must still be the network.
        d = outputs_diff(base, wrapped, layout_shapes(base, src.io, len(ctx.evs) if ctx.evs else None,
                                                      (ctx.finetune.crop, ctx.finetune.crop)))
        if not d <= 1e-5:
            raise MemoptError(f"{src.name}: the copy wrapped for pruning differs from the network by {d:.3g} of the "
                              "output's range before any pruning step; memopt will not fine-tune it")
        return wrapped

    out = fine_tune(make, src, ctx.finetune, ctx.work, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
                    finish=tfmot.sparsity.keras.strip_pruning, verbose=ctx.verbose, evs=ctx.evs)
    info = ctx.work / "pruning.json"
    if not info.exists():
        atomic_write_text(info, json.dumps({"left_dense": [{"layer": n, "weights": w} for n, w in skipped]}))
    return replace(build, model=out)
