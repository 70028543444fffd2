"""memopt: make a multi-frame low-light enhancement network fit in a phone's memory.

The workflow, in the order a user calls it::

    synthesize(out, scenes)            # or the team's own scene folders (memopt.frames.data)
    check_dataset(root, ev_tenths)
    train(recipe, run_dir)             # -> run_dir/model.keras, run_dir/saved_model
    evaluate(model, data, ev_tenths)   # per-scene PSNR/SSIM with middle-frame and Mertens rows
    enhance_files(model, frames, out)
    run_experiment(load_recipe("experiments/quick.toml"))   # variants -> convert -> bench -> table
    pick("results/quick", budget_mb=700)                    # -> results/quick/deploy/ + model card

Names that need TensorFlow are imported on first use, so ``import memopt`` stays light for the
runtime-only side (running a .tflite must never import TensorFlow).
"""
import importlib

from memopt.config import DataConfig, ModelConfig, TrainConfig, TrainRecipe, load_train_recipe
from memopt.errors import MemoptError
from memopt.frames.contract import pack, unpack
from memopt.frames.yuv import YUV420, read_frame, write_frame

_LAZY = {
    "synthesize": "memopt.frames.synth",
    "scan_dataset": "memopt.frames.data",
    "check_dataset": "memopt.frames.data",
    "merge_datasets": "memopt.frames.data",
    "build_model": "memopt.network.unet",
    "receptive_field": "memopt.network.unet",
    "train": "memopt.train",
    "evaluate": "memopt.study.evaluate",
    "enhance_files": "memopt.lite.enhance",
    "load_runner": "memopt.lite.runner",
    "parse_variant": "memopt.variants",
    "load_recipe": "memopt.study.recipe",
    "run_experiment": "memopt.study.experiment",
    "pick": "memopt.study.pick",
}

__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "TrainRecipe", "load_train_recipe", "pack",
           "unpack", "MemoptError", "YUV420", "read_frame", "write_frame", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memopt' has no attribute {name!r}")
