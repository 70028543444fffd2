"""Variants: one technique per module, one name grammar, one order of application.

A variant name is parts joined by ``+``, at most one part per technique, in any order:

  control       ``ft``               the model fine-tuned unchanged: what the fine-tuning of
                                     slimming / pruning gives by itself
  slimming      ``slim<m>``          width multiplier m in (0, 1): whole channels removed, fine-tuned
                                     (``slim0.75``, ``slim0.5``); ``slimmem<m>``: per-group widths
                                     chosen to cut the predicted peak by m (``slimmem0.5``)
  pruning       ``prune<p>``         magnitude pruning to p % zero weights, fine-tuned (``prune50``);
                ``prune<m>of<n>``    structured m:n sparsity, m zeros in every n weights (``prune2of4``)
  quantization  ``fp32`` (default) | ``fp16`` | ``dyn8`` | ``int8`` | ``int16x8``; int8 takes
                remedies after dashes: ``-pt`` per-tensor weights (default per-channel),
                ``-s<N>`` N calibration samples, ``-f<k>`` keep the k most sensitive layers in
                float (``int8-s64``, ``int8-f2``)
  splitting     ``poly<k>`` | ``guided<k>``: the network runs at 1/k resolution
  tiling        ``tile<T>h<H>``: T px windows with an H px halo; both take ``-approx`` to run a
                network with global operations anyway (``tile256h32-approx``): not exact
  context       ``stream`` | ``ctx<f>``: a network with global reductions split at them, their values
                computed over the whole frame (exact streaming, K extra passes) or over the frame
                box-averaged by f, and fed to every window or piece (``tile256h32+stream``, ``poly2+ctx2``)
  in-graph      ``ingraph``: a tile variant's window loop inside the .tflite, which then takes and returns
                the whole frame (``tile256h24+ingraph``; memopt.variants.ingraph)
  runtime       ``tib`` (XNNPACK's transient indirection buffer), ``wcache`` (XNNPACK's weight
                cache file), both as ``tib-wcache``, or ``noxnn`` (XNNPACK off): how the runtime
                runs the same .tflite (memopt.lite.runtime)

Parts apply in a fixed order whatever the name's order: ft -> slim -> prune -> quantize -> split -> tile
-> context -> ingraph -> runtime
(channels are removed before the survivors are pruned; both change the Keras model, which is then
converted once; splitting and tiling only change how the .tflite is run). ``fp32`` alone is the
baseline. Every technique module exports a frozen config with ``parse(part)`` (None when the part
is not its form) and one ``apply(cfg, build, ctx) -> Build`` (the ``Apply`` protocol).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol

from memopt.errors import MemoptError
from memopt.lite.runtime import DEFAULT as DEFAULT_RUNTIME
from memopt.lite.runtime import RuntimeConfig
from memopt.variants import context, finetune, ingraph, pruning, quantization, runtime, slimming, splitting, tiling
from memopt.variants.finetune import FineTuneConfig
from memopt.variants.quantization import QuantConfig


@dataclass(frozen=True)
class Build:
    """What a variant has produced so far: the Keras model to convert, how to convert and run it."""

    model: Any                                  # memopt.network.source.NetworkSource
    quant: QuantConfig = QuantConfig()
    tile: Any = None                            # memopt.lite.tiling.TileConfig
    split: Any = None                           # memopt.lite.splitting.SplitConfig
    context: Any = None                         # memopt.lite.context.ContextConfig
    runtime: RuntimeConfig = DEFAULT_RUNTIME    # how the runtime runs the .tflite
    ingraph: bool = False                       # the tile loop inside the .tflite (memopt.variants.ingraph)

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) the .tflite is converted at, for frames of height x width."""
        if self.tile:
            return self.tile.tile, self.tile.tile
        if self.split:
            return height // self.split.factor, width // self.split.factor
        return height, width


@dataclass(frozen=True)
class Context:
    """What model-side steps need: a cache folder and how to fine-tune."""

    work: Path                                  # fine-tuned models are cached under work/<prefix>/
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    verbose: int = 1
    evs: tuple[int, ...] = ()                   # the frames the network takes (tenths of a stop)


class Apply(Protocol):
    def __call__(self, cfg: Any, build: Build, ctx: Context) -> Build: ...


@dataclass(frozen=True)
class Technique:
    kind: str
    parse: Callable[[str], Any]                 # part -> config, or None when not this technique's form
    apply: Apply
    forms: str                                  # the names it accepts, for error messages
    model_side: bool                            # changes the Keras model (needs fine-tuning data)


# Explicit registration, in the order the parts apply.
REGISTRY: dict[str, Technique] = {}


def register(t: Technique) -> None:
    assert t.kind not in REGISTRY, f"technique {t.kind} registered twice"
    REGISTRY[t.kind] = t


register(Technique("ft", finetune.ControlConfig.parse, finetune.apply_control, "ft (fine-tune only)", True))
register(Technique("slim", slimming.SlimConfig.parse, slimming.apply, "slim<m> | slimmem<m> (slim0.5, slimmem0.5)", True))
register(Technique("prune", pruning.PruneConfig.parse, pruning.apply, "prune<p> | prune<m>of<n> (prune50, prune2of4)", True))
register(Technique("quant", quantization.QuantConfig.parse, quantization.apply,
                   "fp32|fp16|dyn8|int8|int16x8, int8 remedies -pt -s<N> -f<k> (int8-s64)", False))
register(Technique("split", splitting.parse, splitting.apply, "poly<k> | guided<k>, -approx for networks with global ops (poly2)", False))
register(Technique("tile", tiling.parse, tiling.apply, "tile<T>h<H>, -approx for networks with global ops (tile384h48)", False))
register(Technique("context", context.parse, context.apply,
                   "stream | ctx<f>, global context for tiles / pieces of a network with global ops (tile256h32+stream)",
                   False))
register(Technique("ingraph", ingraph.InGraphConfig.parse, ingraph.apply,
                   "ingraph, a tile part's loop inside the .tflite (tile256h24+ingraph)", False))
register(Technique("runtime", runtime.parse, runtime.apply, "tib | wcache | tib-wcache | noxnn (runtime settings)", False))

GRAMMAR = "parts joined by '+': " + "; ".join(t.forms for t in REGISTRY.values())


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: one config per technique it uses, in application order."""

    name: str
    steps: tuple[tuple[str, Any], ...] = ()

    def get(self, kind: str):
        return dict(self.steps).get(kind)

    @property
    def quant(self) -> QuantConfig:
        return self.get("quant") or QuantConfig()

    @property
    def tile(self):
        return self.get("tile")

    @property
    def split(self):
        return self.get("split")

    @property
    def context(self):
        return self.get("context")

    @property
    def runtime(self) -> RuntimeConfig:
        return self.get("runtime") or DEFAULT_RUNTIME

    @property
    def ingraph(self) -> bool:
        return self.get("ingraph") is not None

    @property
    def file_name(self) -> str:
        """The name of the variant's .tflite: runtime settings do not change the file."""
        return "+".join(cfg.file_name if k == "context" else cfg.name for k, cfg in self.steps
                        if k != "runtime" and not (k == "quant" and cfg == QuantConfig())) or "fp32"

    @property
    def model_steps(self) -> tuple[tuple[str, Any], ...]:
        return tuple(s for s in self.steps if REGISTRY[s[0]].model_side)

    @property
    def is_baseline(self) -> bool:
        return self.quant.mode == "none" and not self.model_steps and not self.tile and not self.split \
            and not self.context and self.runtime == DEFAULT_RUNTIME

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        return Build(None, tile=self.tile, split=self.split).model_size(height, width)


def parse_variant(name: str, align: int = 2) -> Variant:
    """Turn a variant name into its configs; an unknown or repeated part names the grammar."""
    parts = [p for p in name.strip().lower().split("+") if p]
    if not parts:
        raise MemoptError(f"empty variant name; {GRAMMAR}")
    found: dict[str, Any] = {}
    for p in parts:
        for kind, t in REGISTRY.items():
            try:
                cfg = t.parse(p, align) if kind == "tile" else t.parse(p)
            except ValueError as e:
                raise MemoptError(f"{name}: {p}: {e}") from None
            if cfg is not None:
                if kind in found:
                    join = " (join runtime settings with '-': tib-wcache)" if kind == "runtime" else ""
                    raise MemoptError(f"{name}: two {kind} parts{join}")
                found[kind] = cfg
                break
        else:
            raise MemoptError(f"{name}: unknown part {p!r}; {GRAMMAR}")
    cx, part = found.get("context"), found.get("tile") or found.get("split")
    if cx and not part:
        raise MemoptError(f"{name}: {cx.name} gives global values to windows or pieces; add a tile<T>h<H> or "
                          "poly<k> part (tile256h32+stream)")
    if cx and part.approx:
        raise MemoptError(f"{name}: {part.name} with {cx.name}: the context replaces -approx; drop it")
    if cx and cx.mode == "stream" and not found.get("tile"):
        raise MemoptError(f"{name}: stream walks the frame's windows; pieces of a split take ctx<f> (poly2+ctx2)")
    if cx and found.get("split") and found["split"].mode != "poly":
        raise MemoptError(f"{name}: guided splitting runs the network on a downscaled frame, whose own global "
                          "values are the low-resolution context already; drop the ctx part")
    if found.get("ingraph"):
        if not found.get("tile"):
            raise MemoptError(f"{name}: ingraph puts a tile loop inside the .tflite; add its tile<T>h<H> part "
                              "(tile256h24+ingraph)")
        if cx and cx.mode != "stream":
            raise MemoptError(f"{name}: the in-graph loop streams the exact global values (stream); {cx.name} "
                              f"(from a smaller frame) runs on the host loop: {found['tile'].name}+{cx.name}")
        q = found.get("quant")
        if q and q.mode == "int16x8":
            raise MemoptError(f"{name}: the in-graph loop takes a float, fp16, dyn8 or int8 body; int16x8 runs "
                              "TFLite's reference kernels, minutes per 12 MP frame (the loop's uint8 input and int8 "
                              "output are the camera's bytes whatever the body)")
        if q and q.mode == "int8" and cx:
            raise MemoptError(f"{name}: an int8 body streams no global values in the graph (the streamed passes "
                              f"would need a quantized split of the window model); use {name.replace(q.name + '+', '')} "
                              "or dyn8")
    # fp32 is the default quantization: "fp32+tib" and "tib" are one variant with one set of steps
    steps = tuple((k, found[k]) for k in REGISTRY if k in found and not (k == "quant" and found[k] == QuantConfig()))
    rt, q = found.get("runtime"), found.get("quant")
    if rt and rt.name != "noxnn" and q and q.mode == "int16x8":
        raise MemoptError(f"{name}: int16x8 models (int16 I/O) run through LiteRT's Interpreter, which cannot "
                          f"set {rt.name}; drop the runtime part")
    # The canonical name: parts in application order, an explicit fp32 dropped unless alone, so
    # "tile256h16+int8" and "int8+tile256h16" are one variant (one row, one cache entry).
    shown = list(steps)
    if all(k == "runtime" for k, _ in shown):  # "tib" alone is the baseline's file run with it: fp32+tib
        shown.insert(0, ("quant", QuantConfig()))
    canonical = "+".join(cfg.name for _, cfg in shown)
    return Variant(canonical, steps)


def build(variant: Variant, baseline, ctx: Context) -> Build:
    """Apply the variant's steps to the baseline (a path, a NetworkSource or its dict), in order;
    model-side results are cached."""
    from memopt.network.source import NetworkSource, as_source, is_plain_savedmodel_folder

    b = Build(NetworkSource.from_dict(baseline) if isinstance(baseline, dict) else as_source(baseline))
    prefix = []
    for kind, cfg in variant.steps:
        t = REGISTRY[kind]
        if t.model_side and b.model.model and is_plain_savedmodel_folder(b.model.model):
            raise MemoptError(f"{cfg.name}: {b.model.name} is a plain TensorFlow SavedModel (no Keras layers to "
                              "fine-tune, prune or slim); hand over the Keras model (.keras / .h5) or a builder for "
                              "it; quantization, tiles, splits and runtime settings work on this folder")
        if t.model_side:
            prefix.append(cfg.name)
            b = t.apply(cfg, b, replace(ctx, work=Path(ctx.work) / "+".join(prefix)))
        else:
            b = t.apply(cfg, b, ctx)
    return b


__all__ = ["Apply", "Build", "Context", "FineTuneConfig", "GRAMMAR", "QuantConfig", "REGISTRY", "Variant",
           "build", "parse_variant"]
