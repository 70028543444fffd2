"""Run any model on the I/O contract: .keras / SavedModel (TensorFlow) or .tflite (LiteRT only).

``load_runner(path)`` returns a callable ``packed [1, H/2, W/2, 6F] float32 -> [1, H/2, W/2, 6]``
plus its frame count. TensorFlow is imported only for Keras/SavedModel files, so running a
.tflite never pays TensorFlow's ~900 MB.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from memopt.contract import check_shapes
from memopt.errors import MemoptError


@dataclass
class Runner:
    fn: Callable[[np.ndarray], np.ndarray]
    frames: int
    kind: str
    fixed_hw: tuple[int, int] | None = None  # packed (H/2, W/2) a fixed-shape model needs
    runtime: object = None                   # memopt.runtime.RuntimeConfig of a .tflite

    def __call__(self, packed: np.ndarray) -> np.ndarray:
        if packed.ndim == 3:
            packed = packed[None]
        if self.fixed_hw and tuple(packed.shape[1:3]) != self.fixed_hw:
            h, w = self.fixed_hw
            raise MemoptError(f"this {self.kind} model takes {2 * w}x{2 * h} frames only, got "
                              f"{2 * packed.shape[2]}x{2 * packed.shape[1]}; convert it at this size")
        return self.fn(packed.astype(np.float32, copy=False))


def _tflite_runner(path: Path, threads: int | None, runtime=None) -> Runner:
    from memopt.runtime import DEFAULT, LoadedModel, dequantize, quantize

    lm = LoadedModel(path, threads, runtime or DEFAULT)
    if len(lm.inputs) != 1 or len(lm.outputs) != 1:
        raise MemoptError(f"{path}: has {len(lm.inputs)} inputs and {len(lm.outputs)} outputs; the contract is one each")
    i, o = lm.inputs[0], lm.outputs[0]
    frames = check_shapes(i.shape, o.shape, source=str(path))

    def run(x):
        return dequantize(lm.run([quantize(x, i)])[0], o)

    return Runner(run, frames, "tflite", (int(i.shape[1]), int(i.shape[2])), lm.runtime)


def _keras_runner(path: Path) -> Runner:
    from memopt.train import load_keras

    try:
        model = load_keras(path)
    except MemoptError:
        if not (path / "saved_model.pb").exists():
            raise
        return _savedmodel_runner(path)
    frames = check_shapes(model.input_shape, model.output_shape, source=str(path))
    return Runner(lambda x: np.asarray(model(x, training=False)), frames, "keras")


def _savedmodel_runner(path: Path) -> Runner:
    """A plain TF SavedModel (not Keras): call its serving signature."""
    from memopt.tfenv import tf

    sm = tf.saved_model.load(str(path))
    sig = sm.signatures.get("serving_default")
    if sig is None:
        raise MemoptError(f"{path}: SavedModel has no serving_default signature")
    (name, spec), = sig.structured_input_signature[1].items()
    (oname, ospec), = sig.structured_outputs.items()
    frames = check_shapes(spec.shape, ospec.shape, source=str(path))
    return Runner(lambda x: sig(**{name: tf.constant(x)})[oname].numpy(), frames, "savedmodel")


def load_runner(path, threads: int | None = None, runtime=None) -> Runner:
    """A callable for the model at ``path`` (.tflite, .keras/.h5, or a SavedModel folder);
    ``runtime`` (memopt.runtime.RuntimeConfig) sets XNNPACK's memory settings for a .tflite."""
    p = Path(path)
    if not p.exists():
        raise MemoptError(f"{p}: no such model file or folder")
    if p.suffix.lower() == ".tflite":
        return _tflite_runner(p, threads, runtime)
    if p.is_dir() or p.suffix.lower() in (".keras", ".h5"):
        return _keras_runner(p)
    raise MemoptError(f"{p}: unknown model type; expected .keras, .h5, a SavedModel folder or .tflite")
