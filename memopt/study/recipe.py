"""Experiment recipes: a TOML file that states what differs from the defaults, loaded into frozen
dataclasses with the safe loader (never exec'd).

Sections (all optional but ``variants``)::

    variants = ["fp32", "int8", "slim0.5+int8+tile256h16"]   # memopt.variants grammar

    [baseline]   model = "path/model.keras"   the team's model (.keras / SavedModel)
                 builder = "models/net.py:build"   or: a function build(height, width) -> tf_keras model
                 train = "experiments/x.toml" or: train one with this training recipe
                 weights = "runs/x/weights.h5"  weights loaded into the model or the builder's network
                 trust = true                 let Keras load Lambda code / memopt import the builder
                 ev_tenths = [-20, 0, 4]      the frames the network takes (default: its model.json)
    [baseline.io] inputs, outputs, range, chroma, matrix   its tensor layout (memopt.network.layout;
                 default memopt's packed contract), or io = "layout.toml"
    [data]       eval, eval_if_present, calibration   dataset specs (below)
    [deploy]     size, budget_mb, threads, devices, runs, timeout_s
    [finetune]   memopt.variants.FineTuneConfig (slimming / pruning)

A dataset spec is a folder of scene folders, or ``synthetic:<scenes>:<seed>`` for bursts that
memopt synthesises into the run's scratch folder (scikit-image's photos, the recipe's EVs).
Relative paths are relative to the working directory (run recipes from the repository root).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memopt.config import from_dict, read_toml
from memopt.errors import MemoptError
from memopt.frames.synth import SYNTH_SPEC
from memopt.variants import FineTuneConfig, parse_variant


def check_spec(spec: str) -> None:
    if spec.startswith("synthetic") and not SYNTH_SPEC.match(spec):
        raise ValueError(f"{spec!r}: a synthetic dataset is synthetic:<scenes>:<seed>, e.g. synthetic:8:1")


@dataclass(frozen=True)
class BaselineConfig:
    model: str | None = None     # .keras / .h5 / SavedModel
    builder: str | None = None   # FILE.py:FUNCTION, called as FUNCTION(height, width)
    train: str | None = None     # a training recipe (memopt train) to make the baseline with
    weights: str | None = None   # a weights file (.h5) loaded into the model or the builder's network
    trust: bool = False          # Keras may run Lambda code; memopt may import the builder
    io: Any = None               # the tensor layout: a table, or a TOML file holding one
    ev_tenths: tuple[int, ...] = ()  # the frames the network takes; empty: its model.json / layout / default

    def __post_init__(self):
        if sum(bool(x) for x in (self.model, self.builder, self.train)) != 1:
            raise ValueError("give exactly one of model (the team's trained model), builder (FILE.py:FUNCTION) "
                             "or train (a training recipe)")
        object.__setattr__(self, "ev_tenths", tuple(int(e) for e in self.ev_tenths))
        if list(self.ev_tenths) != sorted(set(self.ev_tenths)):
            raise ValueError(f"ev_tenths must be strictly increasing (tenths of a stop), got {list(self.ev_tenths)}")
        if self.builder and ":" not in self.builder:
            raise ValueError(f"builder {self.builder!r} is FILE.py:FUNCTION, e.g. models/team_net.py:build")
        if self.weights and not Path(self.weights).is_file():
            raise ValueError(f"weights {self.weights}: no such file (paths are relative to the working directory)")
        if self.train and (self.io or self.builder or self.weights):
            raise ValueError("io and weights apply to the team's model or builder; a trained baseline is memopt's own "
                             "network")
        try:
            object.__setattr__(self, "io", self.layout())
        except MemoptError as e:
            raise ValueError(str(e)) from None

    def layout(self):
        from memopt.network.layout import PACKED, IOLayout, load_layout, parse_layout

        if isinstance(self.io, IOLayout):
            return self.io
        if isinstance(self.io, str):
            return load_layout(self.io)
        return parse_layout(dict(self.io), "[baseline.io]") if self.io else PACKED

    def source(self):
        """The NetworkSource of the team's model or builder (None for a trained baseline)."""
        from memopt.network.source import NetworkSource

        if self.train:
            return None
        return NetworkSource(model=self.model, builder=self.builder, weights=self.weights, io=self.io, trust=self.trust)


@dataclass(frozen=True)
class EvalData:
    eval: tuple[str, ...] = ("synthetic:8:1",)     # scenes with ground truth, quality is measured on
    eval_if_present: tuple[str, ...] = ()          # used when they exist (e.g. ../shared/data/sice-subset)
    calibration: tuple[str, ...] = ()              # int8 representative data; empty: the eval data
    max_scenes: int | None = None                  # per eval source; None: all

    def __post_init__(self):
        for name in ("eval", "eval_if_present", "calibration"):
            object.__setattr__(self, name, tuple(str(x) for x in getattr(self, name)))
            for spec in getattr(self, name):
                check_spec(spec)
        if not self.eval and not self.eval_if_present:
            raise ValueError("no eval data: name at least one folder or synthetic:<scenes>:<seed>")
        if self.max_scenes is not None and self.max_scenes < 1:
            raise ValueError(f"max_scenes must be >= 1, got {self.max_scenes}")


@dataclass(frozen=True)
class DeployConfig:
    size: str = "3024x4032"                        # frame H x W the phone runs (full resolution)
    budget_mb: float = 700.0                       # the benchmark's overall memory target
    threads: int = 2                               # host threads; phones use their profile's
    devices: tuple[str, ...] = ("host",)           # "host" and/or phone profiles (devices/*.toml)
    runs: int = 3                                  # benchmark runs after one warm-up
    timeout_s: float = 3600.0                      # per variant: conversion, benchmark, evaluation

    def __post_init__(self):
        object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
        h, w = self.hw
        if h < 16 or w < 16 or h % 2 or w % 2:
            raise ValueError(f"size must be even HxW (YUV 4:2:0), got {self.size}")
        if self.budget_mb <= 0:
            raise ValueError(f"budget_mb must be positive, got {self.budget_mb}")
        if self.threads < 1 or self.runs < 1 or self.timeout_s <= 0:
            raise ValueError("threads and runs must be >= 1, timeout_s positive")
        if not self.devices:
            raise ValueError("devices is empty: name host and/or phone profiles")

    @property
    def hw(self) -> tuple[int, int]:
        try:
            h, w = (int(t) for t in self.size.lower().split("x"))
        except ValueError:
            raise ValueError(f"size {self.size!r} is not HxW, e.g. 3024x4032") from None
        return h, w


@dataclass(frozen=True)
class RunRecipe:
    name: str
    variants: tuple[str, ...]
    baseline: BaselineConfig
    data: EvalData = field(default_factory=EvalData)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)


SECTIONS = {"baseline": BaselineConfig, "data": EvalData, "deploy": DeployConfig, "finetune": FineTuneConfig}


def load_recipe(path) -> RunRecipe:
    """Load and check an experiment recipe: unknown keys, bad values, unknown variants and a missing
    model or training recipe are each one error naming the file."""
    p = Path(path)
    raw = read_toml(p, "experiment recipe")
    unknown = sorted(set(raw) - set(SECTIONS) - {"variants"})
    if unknown:
        raise MemoptError(f"{p}: unknown key(s) {', '.join(unknown)}; known: variants, {', '.join(SECTIONS)}")
    if "baseline" not in raw:
        raise MemoptError(f"{p}: no [baseline]: give model = \"<your .keras>\" or train = \"<training recipe>\"")
    parts = {k: from_dict(cls, raw.get(k, {}), f"{p} [{k}]") for k, cls in SECTIONS.items()}
    names = raw.get("variants")
    if not isinstance(names, list) or not names or not all(isinstance(v, str) for v in names):
        raise MemoptError(f"{p}: variants must be a non-empty list of names, e.g. [\"fp32\", \"int8\"]")
    for v in names:
        try:
            parse_variant(v)
        except MemoptError as e:
            raise MemoptError(f"{p}: variant {e}") from None
    variants = tuple(dict.fromkeys(parse_variant(v).name for v in names))
    if "fp32" not in variants:
        variants = ("fp32", *variants)  # the baseline every row is compared with
    b = parts["baseline"]
    if b.builder and not Path(b.builder.rpartition(":")[0]).is_file():
        raise MemoptError(f"{p}: builder file {b.builder.rpartition(':')[0]} does not exist (paths are relative to "
                          "the working directory)")
    if b.model and not Path(b.model).exists():
        raise MemoptError(f"{p}: baseline model {b.model} does not exist (paths are relative to the working "
                          "directory)")
    if b.train and not Path(b.train).is_file():
        raise MemoptError(f"{p}: baseline training recipe {b.train} does not exist")
    for d in parts["deploy"].devices:
        if d != "host" and not Path(d).is_file():
            raise MemoptError(f"{p}: device {d!r} is neither 'host' nor a phone profile file (devices/*.toml)")
    return RunRecipe(p.stem, variants, **parts)
