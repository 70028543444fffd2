"""Frozen, self-validating configs, and the TOML loader that fills them.

Exposures are always written in **tenths of a stop** (the team's spec "ev -20, 0 and 4" is
EV -2.0, 0, +0.4); the field names say so (``ev_tenths``).
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memopt.errors import MemoptError

EV_UNIT = "tenths of a stop"


def _tuple(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


@dataclass(frozen=True)
class ModelConfig:
    """The baseline network: a U-Net on the packed contract tensor (see memopt.network.unet)."""

    frames: int = 3
    ev_tenths: tuple[int, ...] = (-20, 0, 4)  # EV of each input frame, tenths of a stop, increasing
    widths: tuple[int, ...] = (24, 48, 96)    # channels per U-Net level; len = number of levels
    convs_per_level: int = 2
    kernel: int = 3

    def __post_init__(self):
        object.__setattr__(self, "ev_tenths", tuple(int(e) for e in self.ev_tenths))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if len(self.ev_tenths) != self.frames:
            raise ValueError(f"ev_tenths has {len(self.ev_tenths)} values for {self.frames} frames")
        if list(self.ev_tenths) != sorted(set(self.ev_tenths)):
            raise ValueError(f"ev_tenths must be strictly increasing ({EV_UNIT}), got {self.ev_tenths}")
        if not self.widths or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be positive channel counts, got {self.widths}")
        if self.convs_per_level < 1:
            raise ValueError(f"convs_per_level must be >= 1, got {self.convs_per_level}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 1, got {self.kernel}")

    @property
    def levels(self) -> int:
        return len(self.widths)

    @property
    def reference_frame(self) -> int:
        """Index of the frame nearest EV 0: the output is a residual on it."""
        return min(range(self.frames), key=lambda i: (abs(self.ev_tenths[i]), i))


@dataclass(frozen=True)
class DataConfig:
    """Where scenes come from and how they are read."""

    train: tuple[str, ...] = ()          # dataset folders (scene folders inside), combined
    val: tuple[str, ...] = ()            # validation folders; empty: hold out val_scenes of train
    val_scenes: int = 2                  # scenes held out of train when val is empty
    long_side: int | None = 1024         # scenes are loaded at this size (px, long side); None: full
    exclude: tuple[str, ...] = ()        # scene names (folder names) to leave out, e.g. a test fold
    weights: tuple[float, ...] = ()      # sampling weight per train folder; empty: by scene count
    ev_shifts: tuple[int, ...] = (0,)    # also train on the frames nearest EV+shift (tenths of a
                                         # stop) with the same ground truth: exposure robustness

    def __post_init__(self):
        for name in ("train", "val", "exclude"):
            object.__setattr__(self, name, tuple(str(x) for x in _tuple(getattr(self, name))))
        object.__setattr__(self, "weights", tuple(float(w) for w in _tuple(self.weights)))
        object.__setattr__(self, "ev_shifts", tuple(int(e) for e in _tuple(self.ev_shifts)))
        if not self.ev_shifts:
            raise ValueError("ev_shifts needs at least one value (0: the configured EVs)")
        if self.weights and (len(self.weights) != len(self.train) or min(self.weights) < 0
                             or sum(self.weights) <= 0):
            raise ValueError(f"weights needs one non-negative value per train folder ({len(self.train)}), "
                             f"not all zero; got {list(self.weights)}")
        if self.val_scenes < 0:
            raise ValueError(f"val_scenes must be >= 0, got {self.val_scenes}")
        if self.long_side is not None and (self.long_side < 16 or self.long_side % 2):
            raise ValueError(f"long_side must be an even number >= 16, got {self.long_side}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    epochs: int = 10
    steps_per_epoch: int = 100
    batch: int = 8
    crop: int = 128                      # training crop, full-resolution pixels (even)
    learning_rate: float = 1e-3
    seed: int = 0
    strategy: str = "default"            # default | mirrored | multi-worker (tf.distribute)
    keep: str = "best"                   # export the best-validation epoch, or the last one
    loss: str = "l1"                     # l1: on the packed YUV tensor; l1-rgb: on RGB (see train.py)


    def __post_init__(self):
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch < 1:
            raise ValueError("epochs, steps_per_epoch and batch must be >= 1")
        if self.crop < 16 or self.crop % 16:
            raise ValueError(f"crop must be a multiple of 16 (>= 16) px, got {self.crop}")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")


STRATEGIES = ("default", "mirrored", "multi-worker")
LOSSES = ("l1", "l1-rgb")


@dataclass(frozen=True)
class TrainRecipe:
    """A training recipe file: [model], [data], [train] sections, each only what differs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def from_dict(cls, values: dict[str, Any], where: str):
    """Build dataclass ``cls`` from a dict, refusing unknown keys by name."""
    if not isinstance(values, dict):
        raise MemoptError(f"{where}: expected a table, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise MemoptError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise MemoptError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        return cls(**{k: _tuple(v) for k, v in values.items()})
    except (ValueError, TypeError) as e:
        raise MemoptError(f"{where}: {e}") from None


def read_toml(path, what: str = "recipe file") -> dict[str, Any]:
    """Parse a TOML file with the safe loader; a missing or malformed file is one clear error."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise MemoptError(f"{p}: no such {what}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MemoptError(f"{p}: not valid TOML ({e})") from None


def load_train_recipe(path) -> TrainRecipe:
    """Load a TOML training recipe (safe loader; relative paths are relative to the working dir)."""
    p = Path(path)
    raw = read_toml(p)
    sections = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise MemoptError(f"{p}: unknown section(s) {', '.join(unknown)}; known: {', '.join(sections)}")
    parts = {name: from_dict(cls, raw.get(name, {}), f"{p} [{name}]") for name, cls in sections.items()}
    return TrainRecipe(**parts)


def to_dict(obj) -> dict[str, Any]:
    """Dataclass -> plain dict with lists (TOML/JSON friendly)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def recorded_evs(model_path) -> tuple[int, ...] | None:
    """The EVs (tenths of a stop) in the model.json that memopt writes beside a trained model."""
    import json

    p = Path(model_path)
    for cand in (p.parent / "model.json", p / "model.json", p.parent.parent / "model.json"):
        if cand.is_file():
            try:
                return tuple(int(e) for e in json.loads(cand.read_text())["model"]["ev_tenths"])
            except (ValueError, KeyError, TypeError):
                return None
    return None


def model_evs(model_path, frames: int) -> tuple[int, ...]:
    """The model's recorded EVs, else the default list when the frame count fits, else 1-stop steps."""
    evs = recorded_evs(model_path)
    if evs and len(evs) == frames:
        return evs
    default = ModelConfig().ev_tenths
    if frames == len(default):
        return default
    return tuple(range(-10 * (frames // 2), 10 * (frames - frames // 2), 10))
