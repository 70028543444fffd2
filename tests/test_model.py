import csv

import numpy as np
import pytest

from memopt.config import DataConfig, ModelConfig, TrainConfig, TrainRecipe, from_dict, load_train_recipe
from memopt.errors import MemoptError


@pytest.mark.parametrize("hw", [(8, 8), (10, 14), (17, 9), (24, 40)])
def test_model_accepts_several_even_sizes(hw):
    from memopt.network.unet import build_model

    m = build_model(ModelConfig(widths=(4, 8, 8)))
    x = np.random.default_rng(0).random((2, *hw, 18), dtype=np.float32)
    assert m(x).shape == (2, *hw, 6)


def test_untrained_model_returns_the_reference_frame_plus_a_residual():
    from memopt.network.unet import build_model

    cfg = ModelConfig(widths=(4, 8))
    m = build_model(cfg)
    for layer in m.layers:  # zero every weight: the residual vanishes
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    x = np.random.default_rng(1).random((1, 8, 10, 18), dtype=np.float32)
    np.testing.assert_allclose(m(x).numpy(), x[..., 6:12], atol=1e-6)  # EV 0 is frame 1


@pytest.mark.parametrize("cfg", [
    ModelConfig(frames=1, ev_tenths=(0,), widths=(3, 4, 5)),
    ModelConfig(frames=2, ev_tenths=(-10, 0), widths=(3, 4), convs_per_level=1, kernel=5),
])
def test_receptive_field_matches_impulse_response(cfg):
    from memopt.network.unet import build_model, receptive_field
    from memopt.tfenv import keras

    keras.utils.set_random_seed(0)
    m = build_model(cfg)
    rng = np.random.default_rng(0)
    for layer in m.layers:  # random biases too, so no ReLU is dead everywhere
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    rf = receptive_field(cfg)
    n = 4 * rf.hi + 8 + 2 ** cfg.levels
    base = rng.random((1, n, n, 6 * cfg.frames), dtype=np.float32)
    y0 = m(base).numpy()
    offsets = set()
    for p in range(2 * rf.hi, 2 * rf.hi + 2 ** (cfg.levels - 1)):  # every pooling alignment
        x = base.copy()
        x[0, p, p, :] += 5.0
        changed = np.abs(m(x).numpy() - y0).max(axis=(0, 2, 3)) > 1e-6
        offsets.update((np.nonzero(changed)[0] - p).tolist())
    # Output q is reached from input p when q - p is in [-hi, -lo].
    assert (min(offsets), max(offsets)) == (-rf.hi, -rf.lo)
    assert rf.radius == max(2 * rf.hi + 1, 1 - 2 * rf.lo)


def test_params_and_macs_are_stated():
    from memopt.network.unet import build_model, macs_per_megapixel

    m = build_model(ModelConfig())
    assert 200_000 < m.count_params() < 400_000
    assert 5e9 < macs_per_megapixel(m) < 30e9


@pytest.mark.parametrize("kw, match", [
    ({"ev_tenths": (0, -20, 4)}, "increasing"),
    ({"frames": 2}, "2 frames"),
    ({"widths": (8, 0)}, "positive"),
    ({"kernel": 4}, "odd"),
])
def test_model_config_validates(kw, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kw)


def test_train_config_validates():
    with pytest.raises(ValueError, match="multiple of 16"):
        TrainConfig(crop=100)
    with pytest.raises(ValueError, match="unknown strategy"):
        TrainConfig(strategy="horovod")
    with pytest.raises(ValueError, match="one non-negative value per train folder"):
        DataConfig(train=("a",), weights=(1, 2))


def test_recipe_round_trip_and_unknown_keys(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('[model]\nev_tenths = [-20, 0, 10]\n[train]\nepochs = 2\n')
    r = load_train_recipe(p)
    assert r.model.ev_tenths == (-20, 0, 10) and r.train.epochs == 2 and r.data == DataConfig()
    from memopt.config import to_dict

    assert from_dict(ModelConfig, to_dict(r.model), "x") == r.model
    p.write_text('[model]\nwidth = [8]\n')
    with pytest.raises(MemoptError, match="unknown key.*width.*known:.*widths"):
        load_train_recipe(p)
    p.write_text('[modle]\n')
    with pytest.raises(MemoptError, match="unknown section"):
        load_train_recipe(p)


def _history(run):
    with open(run / "history.csv") as fh:
        return list(csv.DictReader(fh))


def test_training_lowers_the_loss_and_exports(tiny_synth, tmp_path):
    from memopt.train import train

    recipe = TrainRecipe(ModelConfig(widths=(4, 8)), DataConfig(train=(str(tiny_synth),), long_side=None),
                         TrainConfig(epochs=3, steps_per_epoch=8, batch=4, crop=32, learning_rate=3e-3))
    train(recipe, tmp_path, verbose=0)
    losses = [float(r["loss"]) for r in _history(tmp_path)]
    assert losses[-1] < losses[0]
    assert (tmp_path / "model.keras").exists() and (tmp_path / "saved_model" / "saved_model.pb").exists()
    assert "val_psnr" in _history(tmp_path)[0]
    with pytest.raises(MemoptError, match="--force"):
        train(recipe, tmp_path, verbose=0)


def test_interrupted_training_resumes(tiny_synth, tmp_path):
    from memopt.tfenv import keras
    from memopt.train import train

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    recipe = TrainRecipe(ModelConfig(widths=(4, 8)), DataConfig(train=(str(tiny_synth),), long_side=None),
                         TrainConfig(epochs=4, steps_per_epoch=2, batch=2, crop=32))
    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path, verbose=0, callbacks=[Interrupt()])
    assert not (tmp_path / "model.keras").exists()
    train(recipe, tmp_path, verbose=0)
    assert [int(r["epoch"]) for r in _history(tmp_path)] == [0, 1, 2, 3]  # each epoch once


def test_rgb_loss_weighs_chroma_as_rgb_does():
    from memopt.train import l1_rgb_loss

    rng = np.random.default_rng(0)
    y = rng.random((1, 4, 4, 6), dtype=np.float32)
    assert float(l1_rgb_loss(y, y)) == 0.0
    dy, dv = y.copy(), y.copy()
    dy[..., :4] += 0.1
    dv[..., 5] += 0.1
    # 0.1 on Y moves R, G, B by 0.1 each; 0.1 on V moves R by 0.1402 and G by 0.0714.
    np.testing.assert_allclose(float(l1_rgb_loss(y, dy)), 0.1, rtol=1e-5)
    np.testing.assert_allclose(float(l1_rgb_loss(y, dv)), (0.1402 + 0.0714136) / 3, rtol=1e-4)


def test_mirrored_strategy_trains(tiny_synth, tmp_path):
    """tf.distribute's MirroredStrategy (one CPU replica here) runs the same training."""
    from memopt.train import train

    recipe = TrainRecipe(ModelConfig(widths=(4, 8)), DataConfig(train=(str(tiny_synth),), long_side=None),
                         TrainConfig(epochs=1, steps_per_epoch=2, batch=2, crop=32, strategy="mirrored"))
    train(recipe, tmp_path, verbose=0)
    assert (tmp_path / "model.keras").exists() and len(_history(tmp_path)) == 1
