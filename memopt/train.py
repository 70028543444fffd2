"""Training: Keras ``fit`` under a tf.distribute strategy, resumable, with per-epoch validation PSNR.

A run folder holds everything: ``recipe.json`` (the configs used), ``backup/`` (Keras
BackupAndRestore: an interrupted run resumes from its last finished epoch), ``history.csv``,
``best.keras`` (best validation PSNR), and at the end ``model.keras``, ``saved_model/`` and
``model.json`` (config, params, MACs per megapixel, receptive field).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.config import EV_UNIT, TrainRecipe, to_dict
from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text


def get_strategy(name: str):
    """tf.distribute strategy by name: TensorFlow's engine does the scale-out."""
    from memopt.tfenv import tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":  # all local GPUs (or the CPU), synchronous
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":  # several machines; each reads TF_CONFIG (see docs/datasets.md)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise MemoptError(f"unknown strategy {name!r}; known: default, mirrored, multi-worker")


def psnr_metric(y_true, y_pred):
    from memopt.tfenv import tf

    return tf.image.psnr(tf.clip_by_value(y_pred, 0.0, 1.0), y_true, max_val=1.0)


psnr_metric.__name__ = "psnr"


def l1_rgb_loss(y_true, y_pred):
    """Mean absolute RGB error (BT.601 full range) of packed frames.

    Each of the four Y sub-pixels is combined with its block's U, V, so chroma errors count as
    much as they do in an RGB PSNR (R = Y + 1.402 V', B = Y + 1.772 U'), where the packed-YUV L1
    gives chroma only 2 of 6 channels.
    """
    from memopt.tfenv import tf

    m = tf.constant([[1.0, 1.0, 1.0], [0.0, -0.344136, 1.772], [1.402, -0.714136, 0.0]])

    def rgb(t):
        uv = t[..., 4:6] - 0.5
        return [t[..., i:i + 1] + tf.matmul(uv, m[1:]) for i in range(4)]

    return tf.reduce_mean([tf.reduce_mean(tf.abs(a - b)) for a, b in zip(rgb(y_true), rgb(y_pred))])


LOSS_FUNCTIONS = {"l1": "mean_absolute_error", "l1-rgb": l1_rgb_loss}


def make_dataset(pairs, crop: int, batch: int, seed: int, weights: Sequence[float] = ()):
    """tf.data pipeline of random crops and flips, batched and prefetched."""
    from memopt.frames.data import crop_stream
    from memopt.tfenv import tf

    c = crop // 2
    fx, fy = pairs[0][0].shape[-1], pairs[0][1].shape[-1]
    ds = tf.data.Dataset.from_generator(
        lambda: crop_stream(pairs, crop, seed, weights),
        output_signature=(tf.TensorSpec((c, c, fx), tf.float32), tf.TensorSpec((c, c, fy), tf.float32)))
    options = tf.data.Options()
    # Each worker draws its own random crops; no file sharding to do.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(options)


def _split(recipe: TrainRecipe, val_pairs=None):
    from memopt.frames.data import load_pairs

    d, m = recipe.data, recipe.model
    if not d.train:
        raise MemoptError("the recipe's [data] train list is empty: name at least one dataset folder")
    pairs = load_pairs(d.train, m.ev_tenths, d.long_side, d.exclude, desc="train data",
                       ev_shifts=d.ev_shifts)
    if val_pairs is not None:
        val = val_pairs
    elif d.val:
        val = load_pairs(d.val, m.ev_tenths, d.long_side, d.exclude, desc="val data")
    else:
        if len(pairs) <= d.val_scenes:
            raise MemoptError(f"only {len(pairs)} training scenes; cannot hold out {d.val_scenes} for "
                              "validation (add [data] val folders or lower val_scenes)")
        rng = np.random.default_rng(recipe.train.seed)
        idx = set(rng.choice(len(pairs), d.val_scenes, replace=False).tolist()) if d.val_scenes else set()
        val = [p for i, p in enumerate(pairs) if i in idx]
        pairs = [p for i, p in enumerate(pairs) if i not in idx]
    return pairs, val


def _val_dataset(val):
    from memopt.tfenv import tf

    c_in, c_out = val[0][0].shape[-1], val[0][1].shape[-1]
    # Whole scenes (various sizes), crop to the pooling grid of 8 packed px so no padding is measured.
    def gen():
        for x, y, *_ in val:
            h, w = x.shape[0] // 8 * 8, x.shape[1] // 8 * 8
            yield x[None, :h, :w], y[None, :h, :w]

    return tf.data.Dataset.from_generator(gen, output_signature=(
        tf.TensorSpec((1, None, None, c_in), tf.float32), tf.TensorSpec((1, None, None, c_out), tf.float32)))


def train(recipe: TrainRecipe, run_dir, force: bool = False, init_model=None,
          callbacks=(), verbose: int = 1, val_pairs=None, finish=None) -> Path:
    """Train the baseline described by ``recipe`` into ``run_dir``; returns the .keras path.

    Args:
        recipe: model, data and training configs.
        run_dir: folder for checkpoints, logs and exports.
        force: start afresh even if the folder holds a finished model.
        init_model: a .keras file, or a callable returning a Keras model, to start from
            (fine-tuning) instead of random weights; called inside the strategy's scope.
        callbacks: extra Keras callbacks (tests use one to interrupt a run).
        verbose: Keras verbosity (1: progress bar).
        val_pairs: validation pairs to use instead of the recipe's (cross-validation passes the
            held-out fold here, for monitoring only, with ``keep = "last"``).
        finish: applied to the trained model before export (pruning strips its wrappers here).
    """
    from memopt.network.unet import build_model, macs_per_megapixel, receptive_field
    from memopt.tfenv import keras

    run = Path(run_dir)
    final = run / "model.keras"
    if final.exists() and not force:
        raise MemoptError(f"{run} already holds a trained model.keras; pass --force to retrain, or "
                          "choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    if force:
        for stale in ("backup", "history.csv"):
            p = run / stale
            if p.is_dir():
                import shutil

                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    atomic_write_text(run / "recipe.json", json.dumps(to_dict(recipe), indent=1))
    cfg, tc = recipe.model, recipe.train
    keras.utils.set_random_seed(tc.seed)
    pairs, val = _split(recipe, val_pairs)
    strategy = get_strategy(tc.strategy)
    global_batch = tc.batch * strategy.num_replicas_in_sync
    ds = make_dataset(pairs, tc.crop, global_batch, tc.seed, recipe.data.weights)
    total_steps = tc.epochs * tc.steps_per_epoch
    with strategy.scope():
        if callable(init_model):
            model = init_model()
        elif init_model:
            model = load_keras(init_model)
        else:
            model = build_model(cfg)
        schedule = keras.optimizers.schedules.CosineDecay(tc.learning_rate, total_steps, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=LOSS_FUNCTIONS[tc.loss],
                      metrics=[psnr_metric])
    cbs = [
        keras.callbacks.BackupAndRestore(str(run / "backup")),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
    ]
    if val:
        cbs.insert(1, keras.callbacks.ModelCheckpoint(str(run / "best.keras"), monitor="val_psnr",
                                                      mode="max", save_best_only=True))
    model.fit(ds, epochs=tc.epochs, steps_per_epoch=tc.steps_per_epoch,
              validation_data=_val_dataset(val) if val else None, callbacks=cbs, verbose=verbose)
    best = run / "best.keras"
    if tc.keep == "best" and best.exists():  # export the best validation epoch, not merely the last
        model = load_keras(best)
    if finish is not None:
        model = finish(model)
    tmp = run / ".model.keras.tmp.keras"
    model.save(tmp)
    model.save_weights(str(run / "weights.h5"))  # what a builder network's variants load
    try:
        model.save(str(run / "saved_model"), save_format="tf")
    except Exception:  # noqa: BLE001  a convenience export; some custom layers cannot be traced
        pass
    tmp.replace(final)
    meta = {"model": to_dict(cfg), "ev_unit": EV_UNIT, "params": int(model.count_params()),
            "train_scenes": [p[2] for p in pairs], "val_scenes": [p[2] for p in val]}
    from memopt.network.layers import PadToMultiple

    if any(isinstance(layer, PadToMultiple) for layer in model.layers):  # memopt's U-Net: its analytic figures
        rf = receptive_field(cfg)
        meta.update({"macs_per_megapixel": macs_per_megapixel(model), "receptive_field_px": rf.radius,
                     "tile_alignment_px": rf.alignment})
    atomic_write_text(run / "model.json", json.dumps(meta, indent=1))
    return final


def load_keras(path, trust: bool = False):
    """Load a .keras/.h5 file or a SavedModel folder as a Keras model (memopt.network.source)."""
    from memopt.network.source import load_keras as load

    return load(path, trust)
