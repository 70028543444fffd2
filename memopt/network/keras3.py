"""Keras 3 networks (TensorFlow >= 2.16 saves them by default) carried over to tf_keras.

memopt's techniques work on tf_keras graphs (tfmot prunes tf_keras layers only, slimming edits
their channels), and tf_keras cannot read a Keras 3 file. So a Keras 3 ``.keras`` / ``.h5`` is
loaded with Keras 3 and rebuilt layer by layer as a tf_keras functional model: each layer from its
config, its weights copied; each Keras 3 operation on tensors (``x * se``, ``t[..., 0]``,
``keras.ops.mean``) re-run on the tf_keras tensors, where TensorFlow's ops become tf_keras's own
TFOpLambda layers. The copy is then checked against the Keras 3 model on a random input
(memopt.network.check); a layer or operation that does not carry over is one line naming it.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from memopt.errors import MemoptError, first_line

# Keras 3 config keys that tf_keras's layers do not take (LoRA, quantization, optional inputs).
_DROP = {"lora_rank", "lora_alpha", "quantization_config", "optional"}


def keras_version(path) -> str | None:
    """The Keras version that saved a .keras / .h5 file, or None (a folder, or not said)."""
    p = Path(path)
    try:
        if p.suffix.lower() == ".keras" and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                return json.loads(z.read("metadata.json")).get("keras_version")
        if p.suffix.lower() == ".h5":
            import h5py

            with h5py.File(p, "r") as f:
                v = f.attrs.get("keras_version")
                return v.decode() if isinstance(v, bytes) else v
    except (OSError, KeyError, ValueError):
        return None
    return None


def is_keras3(path) -> bool:
    v = keras_version(path)
    return bool(v) and str(v).split(".")[0] == "3"


def load(path, trust: bool, hint: str, layout=None):
    """A Keras 3 file as a checked tf_keras model (checked on a frame in ``layout`` when given)."""
    import keras as k3  # Keras 3, installed beside tf_keras with TensorFlow
    import numpy as np
    from keras.src.utils import python_utils

    from memopt.tfenv import tf

    # A Lambda's code comes back from the file as bare bytecode, run with Keras's own module
    # globals: give it the names published Keras code calls (keras.ops.mean, tf.reduce_max, np).
    for name, mod in (("keras", k3), ("ops", k3.ops), ("tf", tf), ("np", np)):
        python_utils.__dict__.setdefault(name, mod)
    try:
        model = k3.saving.load_model(str(path), compile=False, safe_mode=not trust)
    except Exception as e:  # noqa: BLE001  Keras raises many types for a bad file
        if "lambda" in str(e).lower() and not trust:
            raise MemoptError(f"{path}: a Keras 3 model with a Lambda layer, whose code Keras runs only when "
                              f"trusted; {hint}") from None
        why = f"{type(e).__name__}: {first_line(e)[:160]}"
        if Path(path).suffix.lower() == ".h5" and "Unknown layer" in str(e):  # ops on tensors (x * se, ops.mean)
            raise MemoptError(f"{path}: Keras 3 cannot read back its own .h5 of this graph ({why}); save it as .keras "
                              "(model.save('team.keras')) or export it (model.export('team_export'))") from None
        raise MemoptError(f"{path}: Keras 3 cannot load it ({why})") from None
    key = (str(Path(path).resolve()), Path(path).stat().st_mtime_ns, repr(layout))
    copy = to_tf_keras(model, str(path), layout, check=key not in _CHECKED)
    _CHECKED.add(key)
    return copy


_CHECKED: set = set()  # files whose copy was checked in this process


def to_tf_keras(model, where: str = "model", layout=None, check: bool = True):
    """A tf_keras functional copy of a Keras 3 functional (or Sequential) model, checked against it
    on a random dark frame (through ``layout`` when given: inputs at their own resolutions)."""
    from memopt.network.check import outputs_diff
    from memopt.tfenv import keras

    fn = getattr(model, "_functional", None) or model  # a built Sequential holds a Functional
    if not hasattr(fn, "operations") or not hasattr(fn, "_inputs"):
        raise MemoptError(f"{where}: a subclassed Keras 3 model has no graph to carry over; save it as a "
                          "functional model, or export it (model.export) and hand over that folder")
    tensors: dict[int, object] = {}
    ins = []
    for t in fn._inputs:
        x = keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=_name(t))
        tensors[id(t)] = x
        ins.append(x)
    built: dict[int, object] = {}
    for op in fn.operations:
        if type(op).__name__ == "InputLayer":
            continue
        for node in op._inbound_nodes:
            if not all(id(t) in tensors for t in node.arguments.keras_tensors):
                continue  # a node of another model sharing this layer
            args, kwargs = _swap(node.arguments.args, tensors), _swap(node.arguments.kwargs, tensors)
            try:
                out = _call(op, built, args, kwargs, where)
            except MemoptError:
                raise
            except Exception as e:  # noqa: BLE001  tf_keras / TensorFlow errors are long
                raise MemoptError(f"{where}: Keras 3 {type(op).__name__} {op.name!r} does not carry over to "
                                  f"tf_keras ({type(e).__name__}: {first_line(e)[:160]})") from None
            outs = out if isinstance(out, (list, tuple)) else [out]
            for k3t, t in zip(node.output_tensors, outs):
                tensors[id(k3t)] = t
    missing = [t for t in fn._outputs if id(t) not in tensors]
    if missing:
        raise MemoptError(f"{where}: {len(missing)} output(s) of the Keras 3 graph were not reached when carrying "
                          "it over to tf_keras")
    outs = [tensors[id(t)] for t in fn._outputs]
    copy = keras.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name=model.name)
    if not check:
        return copy
    if layout is not None and len(layout.inputs) == len(fn._inputs):
        from memopt.network.check import layout_shapes

        shapes = layout_shapes(copy, layout, None)
    else:
        shapes = [tuple(d if d is not None else (1 if i == 0 else 64) for i, d in enumerate(t.shape)) for t in fn._inputs]
    d = outputs_diff(model, copy, shapes)
    if not d <= 1e-5:
        raise MemoptError(f"{where}: the tf_keras copy of the Keras 3 model differs from it by {d:.3g} of the output's "
                          "range on a random input; memopt will not measure a copy that is not the network")
    return copy


def _name(t) -> str | None:
    h = getattr(t, "_keras_history", None)
    return h[0].name if h else None


def _swap(obj, tensors):
    """``obj`` with every Keras 3 tensor replaced by its tf_keras counterpart."""
    if id(obj) in tensors:
        return tensors[id(obj)]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_swap(o, tensors) for o in obj)
    if isinstance(obj, dict):
        return {k: _swap(v, tensors) for k, v in obj.items()}
    return obj


def _call(op, built: dict, args, kwargs, where: str):
    """Run one Keras 3 layer (as a tf_keras layer with its weights, built once) or operation (its
    TensorFlow ops, on tf_keras tensors) on the tf_keras inputs."""
    import keras as k3

    if not isinstance(op, k3.layers.Layer):  # an operation on tensors: x * se, t[..., 0], ops.mean
        return op.call(*args, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k != "training"}
    if id(op) not in built:
        built[id(op)] = _layer(op, where)
    layer = built[id(op)]
    out = layer(*args, **kwargs)
    if not getattr(layer, "_memopt_weights_set", False):
        w = [v.numpy() for v in op.weights]
        if len(w) != len(layer.weights):
            raise MemoptError(f"{where}: Keras 3 layer {op.name!r} ({type(op).__name__}) has {len(w)} weights where "
                              f"its tf_keras copy has {len(layer.weights)}")
        layer.set_weights(w)
        layer._memopt_weights_set = True
    return out


def _layer(op, where: str):
    """The tf_keras layer a Keras 3 layer's config describes."""
    import keras as k3

    from memopt.tfenv import keras

    if isinstance(op, k3.Model):
        return to_tf_keras(op, f"{where}/{op.name}", check=False)  # the whole model's check covers it
    if type(op).__name__ == "Lambda":
        return keras.layers.Lambda(op.function, arguments=dict(op.arguments or {}), name=op.name)
    cls = getattr(keras.layers, type(op).__name__, None)
    if cls is None:
        raise MemoptError(f"{where}: Keras 3 layer {op.name!r} is a {type(op).__name__}, which tf_keras has no "
                          "layer for; register a tf_keras twin or hand over a SavedModel (model.export)")
    # Initializers, regularizers and constraints: the weights are copied, and their Keras 3 configs
    # carry arguments tf_keras's do not take.
    cfg = {k: v for k, v in _plain(op.get_config()).items()
           if k not in _DROP and not k.endswith(("_initializer", "_regularizer", "_constraint"))}
    for _ in range(8):  # drop, one by one, the arguments this tf_keras layer does not know
        try:
            return cls.from_config(cfg)
        except TypeError as e:
            m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
            if not m or m.group(1) not in cfg:
                raise
            cfg.pop(m.group(1))
    return cls.from_config(cfg)


def _plain(v):
    """A Keras 3 config with its serialised objects (dtype policies, initializers) in the form
    tf_keras reads: {'class_name', 'config'}, and a dtype policy as its name."""
    if isinstance(v, dict):
        if v.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
            return v.get("config", {}).get("name", "float32")
        if "class_name" in v and "config" in v:
            return {"class_name": v["class_name"], "config": _plain(v["config"])}
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v
