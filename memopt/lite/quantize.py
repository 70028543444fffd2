"""Quantizing a float .tflite when it is all the team handed over: AI Edge Quantizer.

The TensorFlow converter quantizes a Keras or SavedModel graph, not a .tflite. AI Edge Quantizer
(``ai-edge-quantizer``) reads a float .tflite, calibrates it with LiteRT and writes the quantized
file, with per-op recipes; it needs no TensorFlow, so this module stays on the runtime side.
memopt's modes map to its recipes: ``float16`` (fp16 weights, float compute), ``dynamic`` (int8
weights, activations quantized on the fly), ``int8`` (int8 weights and activations, int8 I/O) and
``int16x8`` (16-bit activations, int8 weights).
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from memopt.errors import MemoptError, first_line

_FP16 = [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
          "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                        "compute_precision": "FLOAT", "explicit_dequantize": True}}]


def _recipe(mode: str):
    from ai_edge_quantizer import recipe

    recipes = {"float16": lambda: _FP16, "dynamic": recipe.dynamic_wi8_afp32, "int8": recipe.static_wi8_ai8,
               "int16x8": recipe.static_wi8_ai16}
    if mode not in recipes:
        raise MemoptError(f"quantization {mode!r} of a .tflite: known modes {', '.join(recipes)}")
    return recipes[mode]()


def signature_inputs(path) -> tuple[str, list[str]]:
    """The .tflite's first signature and its input names in the graph's input order."""
    from memopt.lite.predict import load_flatbuffer

    _, model, sg, _ = load_flatbuffer(path)
    if not model.SignatureDefsLength():
        raise MemoptError(f"{path}: the .tflite has no signature, which AI Edge Quantizer calibrates through; "
                          "convert it with one (the TFLite converter's from_saved_model / from_concrete_functions)")
    sd = model.SignatureDefs(0)
    by_tensor = {sd.Inputs(i).TensorIndex(): sd.Inputs(i).Name().decode() for i in range(sd.InputsLength())}
    return sd.SignatureKey().decode(), [by_tensor[int(t)] for t in sg.InputsAsNumpy()]


def calibrate(float_buf: bytes, rec, data: dict):
    """AI Edge Quantizer's calibration of ``float_buf`` for the recipe ``rec`` on ``data`` ({signature:
    [{input name: array}]}), with each tensor's range the min and max over *all* samples.

    Its default keeps a moving average of the per-sample min / max (weight 0.95 on the past), so a
    range follows the last samples and the rare ones with the extremes (a saturated colour, a
    highlight) are clipped: on the fusion stand-in's window, 64 calibration crops gave 27.8 dB vs the
    float model on other crops and 8 gave 33.0; the union gives 46.1 dB. For min-max recipes only
    (memopt's int8 and int16x8): the merge keeps no other statistic."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rec)
    cal = calibrator.Calibrator(float_buf, num_threads=len(os.sched_getaffinity(0)),
                                qsv_update_func=qsv_utils.min_max_update)
    cal.calibrate(data, manager)
    return cal.get_model_qsvs()


def quantize_tflite(path, mode: str, samples: Sequence[list[np.ndarray]] = ()) -> bytes:
    """The float .tflite at ``path`` quantized in ``mode``; ``samples`` (each the model's input
    tensors in its layout's order, memopt.lite.embed) calibrate the static modes."""
    from ai_edge_quantizer import quantizer

    from memopt.lite.embed import io_order

    key, names = signature_inputs(path)
    in_pos, _ = io_order(path, len(names), 1)
    data = {key: [{names[p]: np.asarray(x, np.float32) for p, x in zip(in_pos, s)} for s in samples]}
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints size ratios and timings
            buf, rec = Path(path).read_bytes(), _recipe(mode)
            q = quantizer.Quantizer(buf, rec)
            if q.need_calibration and not samples:
                raise MemoptError(f"{mode} of a .tflite calibrates on samples; none were given")
            result = q.quantize(calibrate(buf, rec, data) if q.need_calibration else None)
    except MemoptError:
        raise
    except Exception as e:  # noqa: BLE001  the quantizer raises many types on ops it cannot handle
        raise MemoptError(f"{path}: AI Edge Quantizer cannot make it {mode} ({type(e).__name__}: "
                          f"{first_line(e)[:200]})") from None
    return bytes(result.quantized_model)
