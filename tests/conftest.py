import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SICE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sice-subset"


def smooth_rgb(h, w, seed=0):
    """A smooth colourful test image (uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [np.sin(xx / (7 + 5 * k) + rng.uniform(0, 6)) * np.cos(yy / (9 + 3 * k)) for k in range(3)]
    return np.clip(np.rint((np.stack(chans, -1) * 0.45 + 0.5) * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """Six small synthetic scenes at EV -20, 0, 4 (tenths of a stop)."""
    from memopt.frames.synth import synthesize

    out = tmp_path_factory.mktemp("data") / "synth"
    synthesize(out, scenes=6, seed=1, ev_tenths=(-20, 0, 4), size=64)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_synth):
    """A tiny trained model (seconds), shared by the CLI tests."""
    from memopt.config import DataConfig, ModelConfig, TrainConfig, TrainRecipe
    from memopt.train import train

    recipe = TrainRecipe(ModelConfig(widths=(4, 8)), DataConfig(train=(str(tiny_synth),), long_side=None),
                         TrainConfig(epochs=1, steps_per_epoch=3, batch=2, crop=32))
    run = tmp_path_factory.mktemp("run")
    train(recipe, run, verbose=0)
    return run


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory, tiny_run):
    """The tiny model converted to float32 .tflite at 32x32 (and int8 beside it)."""
    from memopt.convert import ConvertConfig, convert

    out = tmp_path_factory.mktemp("tflite")
    convert(tiny_run / "model.keras", ConvertConfig(32, 32, "none"), out / "tiny.tflite")
    convert(tiny_run / "model.keras", ConvertConfig(32, 32, "int8", samples=2), out / "tiny-int8.tflite")
    return out / "tiny.tflite"


def tiny_recipe(path, baseline: str, variants, data, size: str = "64x64"):
    """A quick recipe: ``baseline`` holds the [baseline] lines (and any [baseline.io] table), one
    eval scene, one benchmark run, a two-step fine-tuning on the same data."""
    import json

    path.write_text(f"""variants = {json.dumps(variants)}
[baseline]
{baseline}
[data]
eval = ["{data}"]
max_scenes = 1
[deploy]
size = "{size}"
runs = 1
[finetune]
epochs = 1
steps_per_epoch = 2
batch = 2
crop = 32
long_side = 64
data = ["{data}"]
""")
    return path
