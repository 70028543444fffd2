"""Fine-tuning after a model-side step (slimming, pruning): a short run of memopt.train.

Data and loss come from the baseline's own run (its ``recipe.json``) unless the config names
them, so a pruned model is fine-tuned on what the baseline learned from. A model memopt did not
train has no recipe: the experiment recipe must then name ``[finetune] data``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from memopt.errors import MemoptError


@dataclass(frozen=True)
class FineTuneConfig:
    epochs: int = 4
    steps_per_epoch: int = 100
    learning_rate: float = 5e-4       # a quarter of the baseline's: the weights are already close
    batch: int = 8
    crop: int = 128
    data: tuple[str, ...] = ()        # dataset folders; empty: the baseline's training data
    long_side: int | None = None      # None: the baseline's
    loss: str | None = None           # None: the baseline's (l1 when unknown)

    def __post_init__(self):
        object.__setattr__(self, "data", tuple(str(d) for d in self.data))
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch < 1:
            raise ValueError("finetune epochs, steps_per_epoch and batch must be >= 1")
        if not 0.0 < self.learning_rate < 1.0:
            raise ValueError(f"finetune learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.crop < 16 or self.crop % 16:
            raise ValueError(f"finetune crop must be a multiple of 16 px, got {self.crop}")


def baseline_recipe(model_path: Path):
    """The TrainRecipe a memopt run folder recorded beside the model, or None."""
    from memopt.config import DataConfig, ModelConfig, TrainConfig, TrainRecipe, from_dict

    for cand in (model_path.parent / "recipe.json", model_path / "recipe.json"):
        if cand.is_file():
            raw = json.loads(cand.read_text())
            return TrainRecipe(from_dict(ModelConfig, raw["model"], str(cand)),
                               from_dict(DataConfig, raw["data"], str(cand)),
                               from_dict(TrainConfig, raw["train"], str(cand)))
    return None


def finetune_data(src, cfg: FineTuneConfig) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
    """(dataset folders, long side, scenes to exclude) fine-tuning reads: the config's, else the
    baseline's run's; the baseline's excluded scenes (a cross-validation fold's held-out ones) stay
    excluded."""
    base = baseline_recipe(Path(src.model)) if src.model else None
    data = cfg.data or (base.data.train if base else ())
    if not data:
        raise MemoptError(f"{src.name}: no recipe.json beside the model to take fine-tuning data from; "
                          "name dataset folders in the recipe's [finetune] data")
    exclude = tuple(base.data.exclude) if base and not cfg.data else ()
    return tuple(data), cfg.long_side or (base.data.long_side if base else 1024), exclude


def fine_tune(make_model: Callable, src, cfg: FineTuneConfig, out: Path, callbacks=(),
              finish: Callable | None = None, verbose: int = 1, evs=()):
    """Train ``make_model()`` (the network at the crop size) briefly, through its tensor layout;
    returns the NetworkSource of the result (``out/model.keras``; skipped when already there)."""
    from memopt.config import DataConfig, ModelConfig, TrainConfig, TrainRecipe
    from memopt.network.adapter import unwrap, wrap
    from memopt.train import train

    final = out / "model.keras"
    if final.exists():
        return src.with_model(final)  # fine-tuned by an earlier (interrupted) run
    base = baseline_recipe(Path(src.model)) if src.model else None
    data, long_side, exclude = finetune_data(src, cfg)
    loss = cfg.loss or (base.train.loss if base else "l1")
    first = make_model()
    model_cfg = model_config(first, Path(src.model)) if src.model else None
    if model_cfg is None:
        from memopt.convert import network_evs

        evs = network_evs(src, first, evs or None)
        model_cfg = ModelConfig(frames=len(evs), ev_tenths=evs)
    layout = src.io
    if cfg.crop % layout.step:
        raise MemoptError(f"{src.name}: [finetune] crop {cfg.crop} is not a multiple of {layout.step} px, which the "
                          "network's tensor layout needs")
    # Frames on the batch axis: the network may reduce over the whole batch, so one scene per step.
    batch = 1 if any(e.frames == "batch" for e in layout.in_entries) else cfg.batch
    recipe = TrainRecipe(model_cfg, DataConfig(train=data, val=(), val_scenes=0, long_side=long_side,
                                               exclude=exclude),
                         TrainConfig(epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch, batch=batch,
                                     crop=cfg.crop, learning_rate=cfg.learning_rate, loss=loss, keep="last"))
    made = [first]

    def init():
        return wrap(made.pop() if made else make_model(), layout, model_cfg.ev_tenths, cfg.crop)

    def done(m):
        inner = unwrap(m)
        return finish(inner) if finish else inner

    train(recipe, out, init_model=init, callbacks=callbacks, finish=done, verbose=verbose)
    return src.with_model(final)


def model_config(model, model_path: Path):
    """memopt's ModelConfig for a Keras model: from model.json when memopt wrote one, else read off
    the layers of memopt's U-Net (``enc<i>_<j>``, ``up<i>``, ``dec<i>_<j>``, ``head``), else None."""
    from memopt.config import ModelConfig, model_evs

    names = {layer.name: layer for layer in model.layers}
    levels = 0
    while f"enc{levels}_0" in names:
        levels += 1
    convs = 0
    while f"enc0_{convs}" in names:
        convs += 1
    if not levels or "head" not in names:
        return None
    frames = model.input_shape[-1] // 6
    try:
        return ModelConfig(frames=frames, ev_tenths=model_evs(model_path, frames),
                           widths=tuple(names[f"enc{i}_0"].filters for i in range(levels)),
                           convs_per_level=convs, kernel=names["enc0_0"].kernel_size[0])
    except (ValueError, AttributeError):
        return None



@dataclass(frozen=True)
class ControlConfig:
    """``ft``: fine-tune the model unchanged, with the same settings slimming and pruning get.

    The control for those variants: their fine-tuning is extra training, so their quality is
    compared with ``ft``'s, not only with the baseline's.
    """

    @property
    def name(self) -> str:
        return "ft"

    @classmethod
    def parse(cls, part: str) -> "ControlConfig | None":
        return cls() if part == "ft" else None


def apply_control(cfg: ControlConfig, build, ctx):
    from dataclasses import replace

    src = build.model
    out = fine_tune(lambda: src.load((ctx.finetune.crop, ctx.finetune.crop)), src, ctx.finetune, ctx.work,
                    verbose=ctx.verbose, evs=ctx.evs)
    return replace(build, model=out)
