"""Leave-scenes-out cross-validation: train one model per fold, test each on its held-out scenes.

Scenes of the evaluation folder are dealt round-robin (natural name order) into ``folds`` folds.
Each fold's model trains on everything in the recipe's train folders except that fold's scenes,
watches the held-out scenes' PSNR per epoch for monitoring only, and exports its last epoch (no
model selection on test scenes). Finished folds are kept: a rerun resumes at the first fold
without a model.

Variants (memopt.variants) can be scored the same way: each fold's model is slimmed / pruned and
fine-tuned on that fold's training scenes only, quantized (calibrated on those scenes only, at each
test scene's size) and run with its runtime setting, and tested on its held-out scenes (rows named
after the variant). This is the held-out quality a 12 MP study on its own training scenes cannot
show. Tiling and splitting are not scored here (they run through the 12 MP study's pipeline).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from memopt.config import TrainRecipe
from memopt.errors import MemoptError


def assign_folds(names, folds: int) -> list[list[str]]:
    from memopt.frames.data import _natural

    if folds < 2 or folds > len(names):
        raise MemoptError(f"--folds must be between 2 and the scene count ({len(names)}), got {folds}")
    ordered = sorted(names, key=_natural)
    return [ordered[k::folds] for k in range(folds)]


def crossval(recipe: TrainRecipe, data: str, folds: int, out, long_side: int | None = None,
             mertens_all: bool = False, variants=(), finetune=None, only=None):
    """Returns the per-scene DataFrame of every fold (column ``fold`` added); ``variants`` adds
    rows for variants of each fold's model, fine-tuned with ``finetune``; ``only``: run just that
    fold (0-based)."""
    import pandas as pd

    from memopt.variants import Context, FineTuneConfig, build, parse_variant

    parsed = [parse_variant(v) for v in variants]
    for v in parsed:
        if v.is_baseline:
            raise MemoptError("--variants fp32: the fold models themselves are the fp32 rows")
        if v.tile or v.split:
            raise MemoptError(f"--variants {v.name}: cross-validation scores model-side, quantization and "
                              "runtime parts (ft, slim<m>, prune<...>, fp16, int8, tib, ...), not tiles or splits")

    from memopt.frames.data import load_pairs, scan_dataset
    from memopt.study.evaluate import evaluate
    from memopt.train import train

    if str(Path(data)) not in {str(Path(t)) for t in recipe.data.train}:
        raise MemoptError(f"{data} must be one of the recipe's [data] train folders, so each fold "
                          "trains on the other scenes")
    names = [s.name for s in scan_dataset(data) if s.gt is not None]
    evs = recipe.model.ev_tenths
    frames = []
    assigned = assign_folds(names, folds)
    if only is not None and not 0 <= only < folds:
        raise MemoptError(f"--fold must be between 0 and {folds - 1}, got {only}")
    for k, held in enumerate(assigned):
        if only is not None and k != only:
            continue
        run = Path(out) / f"fold{k}"
        print(f"fold {k + 1}/{folds}: held out {', '.join(held)}")
        if not (run / "model.keras").exists():
            r = dataclasses.replace(recipe, data=dataclasses.replace(
                recipe.data, exclude=recipe.data.exclude + tuple(held)))
            r = dataclasses.replace(r, train=dataclasses.replace(r.train, keep="last"))
            val = load_pairs([data], evs, recipe.data.long_side, only=held, desc="held-out")
            train(r, run, val_pairs=val)
        df = evaluate(run / "model.keras", data, evs, long_side, held, mertens_all)
        for v in parsed:
            ctx = Context(run / "variants", finetune or FineTuneConfig(), verbose=2)
            b = build(v, run / "model.keras", ctx)
            model = b.model
            if b.quant.mode != "none" or v.runtime.name:
                model = converting_runner(b, v, run / "variants" / "tflite", [data], evs, held, long_side)
            vd = evaluate(model, data, evs, long_side, held)
            df = pd.concat([df, vd[vd.method == "model"].assign(method=v.name)], ignore_index=True)
        df.insert(0, "fold", k)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def converting_runner(b, v, folder: Path, calib, evs, held, long_side):
    """A runner that converts the variant's Keras model at each input size it meets (a test scene's
    size), calibrated on the fold's training scenes only, and runs the .tflite with the variant's
    runtime setting: the full-frame variant, as deployed, at the test size."""
    from memopt.convert import ConvertConfig, convert
    from memopt.lite.runner import Runner, load_runner

    loaded = {}

    def run(packed):
        h, w = 2 * packed.shape[1], 2 * packed.shape[2]
        if (h, w) not in loaded:
            q = b.quant
            out = Path(folder) / f"{v.file_name.replace('+', '_')}-{w}x{h}.tflite"
            if not out.exists():
                cfg = ConvertConfig(h, w, q.mode, samples=q.samples or 8, calib_long_side=long_side or max(h, w),
                                    per_channel=q.per_channel, float_layers=q.float_layers)
                convert(b.model, cfg, out, calib, evs, exclude=held)
            loaded[(h, w)] = load_runner(out, runtime=v.runtime)
        return loaded[(h, w)](packed)

    return Runner(run, len(evs), "tflite")  # convert() checks the model's own frame count
