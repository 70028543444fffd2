"""Where a network comes from, and loading it at the size memopt needs.

A ``NetworkSource`` is one of
  ``model``    a ``.keras`` / ``.h5`` file or a SavedModel folder (Keras or plain TensorFlow);
  ``builder``  ``"models/team_net.py:build"``: a Python function called as ``build(height, width)``
               (the frame's full-resolution size) that returns a tf_keras model with its weights
               loaded, for networks built for one input size (static resizes and reshapes);
plus ``weights`` (a weights file loaded after building: what fine-tuned variants of a builder
network save), the tensor ``io`` layout (memopt.network.layout) and ``trust``. Keras refuses to
deserialise ``Lambda`` layers (arbitrary code) and memopt never imports a builder unless
``trust`` is on (``trust = true`` in the recipe, ``--trust`` on the command line).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memopt.errors import MemoptError
from memopt.network.layout import PACKED, IOLayout, layout_dict, parse_layout

TRUST_HINT = "set trust = true under [baseline] (or pass --trust) if you trust its code"


@dataclass(frozen=True)
class NetworkSource:
    model: str | None = None
    builder: str | None = None
    weights: str | None = None
    io: IOLayout = field(default_factory=IOLayout)
    trust: bool = False
    # A builder's weights as it built them once (memopt.network.check.weights_digest): every build at
    # another size must carry the same trained weights, or the rows would measure other networks.
    weights_digest: str | None = None
    # A slimming plan (memopt.network.narrow): every build of the builder narrowed by it before the
    # weights load, so a slimmed builder network is built at any size.
    slim: str | None = None

    def __post_init__(self):
        if bool(self.model) == bool(self.builder):
            raise ValueError("give exactly one of model (a .keras / SavedModel) or builder (file.py:function)")
        if self.builder and ":" not in self.builder:
            raise ValueError(f"builder {self.builder!r} is FILE.py:FUNCTION, e.g. models/team_net.py:build")

    @property
    def name(self) -> str:
        return self.model or self.builder or "?"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "builder": self.builder, "weights": self.weights,
                "io": layout_dict(self.io), "trust": self.trust, "weights_digest": self.weights_digest,
                "slim": self.slim}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkSource":
        return cls(d.get("model"), d.get("builder"), d.get("weights"),
                   parse_layout(d.get("io") or {}, "network io"), bool(d.get("trust")), d.get("weights_digest"),
                   d.get("slim"))

    def pinned(self) -> "NetworkSource":
        """This source with a builder's weights fingerprinted at 256x256, so that every later build
        (windows, crops, calibration, in any process) is checked to carry the same weights."""
        if not self.builder or self.weights or self.weights_digest:
            return self
        from memopt.network.check import weights_digest

        return replace(self, weights_digest=weights_digest(self.load((256, 256))))

    def with_model(self, path) -> "NetworkSource":
        """The source of a variant saved by memopt (a .keras file; weights for a builder network)."""
        p = Path(path)
        if self.builder:
            return replace(self, weights=str(p.parent / "weights.h5"))
        return replace(self, model=str(p), weights=None)

    def load(self, hw: tuple[int, int] | None = None):
        """The tf_keras model; ``hw`` (full-resolution H, W) for a builder or a fixed-size model."""
        if self.builder:
            h, w = hw or (256, 256)
            m = call_builder(self.builder, (h, w), self.trust)
            if self.weights_digest and not self.weights:
                from memopt.network.check import weights_digest

                if weights_digest(m) != self.weights_digest:
                    raise MemoptError(f"builder {self.builder} returned other weights at {w}x{h} than at 256x256 (a "
                                      "freshly initialised network on each call?); build() must load the same trained "
                                      "weights at every size, or each row would measure another network")
            if self.slim:
                from memopt.network.narrow import apply_plan

                m = apply_plan(m, self.slim)
        else:
            m = load_keras(self.model, self.trust, self.io)
            if hw is not None:
                m = at_size(m, self.io, hw, self.model)
        if self.weights:
            try:
                m.load_weights(self.weights)
            except Exception as e:  # noqa: BLE001  Keras raises many types for a mismatch
                raise MemoptError(f"{self.weights}: weights do not fit {self.name} ({str(e)[:160]})") from None
        return m


def as_source(model, io: IOLayout | None = None, trust: bool = False) -> NetworkSource:
    """A path (or a source) -> NetworkSource; a memopt run folder means its model.keras."""
    if isinstance(model, NetworkSource):
        return model
    p = Path(model)
    if p.is_dir() and (p / "model.keras").is_file():
        p = p / "model.keras"
    return NetworkSource(model=str(p), io=io or PACKED, trust=trust)


def load_keras(path, trust: bool = False, layout: IOLayout | None = None):
    """A .keras/.h5 file or a SavedModel folder as a tf_keras model (memopt's layers known).

    ``trust`` lets Keras deserialise Lambda layers (their code runs). A plain SavedModel (not
    Keras) loads as a callable without layers."""
    from memopt.network.layers import CUSTOM_OBJECTS
    from memopt.tfenv import keras

    p = Path(path)
    if not p.exists():
        raise MemoptError(f"{p}: no such model file or folder")
    if p.suffix.lower() == ".tflite":
        raise MemoptError(f"{p}: a .tflite holds no Keras graph to train, prune, slim or rebuild; hand over the "
                          "network's source (.keras / SavedModel / builder) for that")
    import warnings

    from memopt.network import keras3

    if keras3.is_keras3(p):  # TF >= 2.16 saves Keras 3 by default; tf_keras cannot read it
        return keras3.load(p, trust, TRUST_HINT, layout)
    try:
        with warnings.catch_warnings():  # Keras warns about Lambda code before refusing it; the error says it
            warnings.simplefilter("ignore")
            m = keras.models.load_model(str(p), custom_objects=CUSTOM_OBJECTS, compile=False, safe_mode=not trust)
    except Exception as e:  # noqa: BLE001  Keras raises many types for a bad file; one line is enough
        if "Lambda" in str(e) and not trust:
            raise MemoptError(f"{p}: holds a Lambda layer, whose code Keras runs only when trusted; "
                              f"{TRUST_HINT}") from None
        if p.is_dir() and (p / "saved_model.pb").exists():
            return _plain_savedmodel(p)
        raise MemoptError(f"{p}: cannot load as a Keras model ({type(e).__name__}: {str(e)[:200]})") from None
    if not hasattr(m, "inputs"):  # tf_keras loads a plain TF SavedModel as an object without layers
        return _plain_savedmodel(p)
    return m


def _plain_savedmodel(p: Path):
    """A non-Keras SavedModel wrapped as a Keras model (its serving signature), fixed shapes kept."""
    from memopt.tfenv import keras, tf

    sm = tf.saved_model.load(str(p))
    sigs = dict(sm.signatures)
    # serving_default where there is one (tf.saved_model.save, Keras 3's export), else the only one
    sig = sigs.get("serving_default") or (next(iter(sigs.values())) if len(sigs) == 1 else None)
    if sig is None:
        raise MemoptError(f"{p}: a SavedModel with {'no signature' if not sigs else 'signatures ' + ', '.join(sigs)} "
                          "and none called serving_default; save it with one (tf.saved_model.save(m, dir, "
                          "signatures=m.__call__.get_concrete_function(...)))")
    specs = sig.structured_input_signature[1]
    names = sorted(specs)
    onames = sorted(sig.structured_outputs)
    ins = [keras.Input(specs[n].shape[1:], batch_size=specs[n].shape[0], name=n) for n in names]

    class SavedModelCall(keras.layers.Layer):
        def call(self, xs):
            out = sig(**dict(zip(names, xs if isinstance(xs, list) else [xs])))
            return [out[o] for o in onames] if len(onames) > 1 else out[onames[0]]

    layer = SavedModelCall(name="saved_model", trainable=False)
    layer._sm = sm  # keep the loaded object alive
    return keras.Model(ins if len(ins) > 1 else ins[0], layer(ins if len(ins) > 1 else ins[0]))


def is_plain_savedmodel_folder(path) -> bool:
    """A SavedModel folder without Keras's own metadata (tf.Module, Keras 3's export()): it loads as
    a call of its signature, with no layers."""
    p = Path(path)
    return p.is_dir() and (p / "saved_model.pb").is_file() and not (p / "keras_metadata.pb").is_file()


def is_plain_savedmodel(model) -> bool:
    """A model that only calls a plain SavedModel's signature: no layers to count, prune or slim."""
    return any(type(layer).__name__ == "SavedModelCall" for layer in getattr(model, "layers", ()))


def call_builder(spec: str, hw: tuple[int, int], trust: bool):
    """Import FILE.py and call FUNCTION(height, width); refusals are one line."""
    if not trust:
        raise MemoptError(f"builder {spec}: memopt imports a builder's code only when trusted; {TRUST_HINT}")
    file, _, fn = spec.rpartition(":")
    p = Path(file)
    if not p.is_file():
        raise MemoptError(f"builder {spec}: no such file {p} (paths are relative to the working directory)")
    name = f"memopt_builder_{abs(hash(str(p.resolve())))}"
    mod = sys.modules.get(name)
    if mod is None:
        spec_ = importlib.util.spec_from_file_location(name, p)
        mod = importlib.util.module_from_spec(spec_)
        try:
            spec_.loader.exec_module(mod)
        except Exception as e:  # noqa: BLE001  the user's code may raise anything
            raise MemoptError(f"builder {spec}: importing {p} failed ({type(e).__name__}: {str(e)[:160]})") from None
        sys.modules[name] = mod
    build = getattr(mod, fn, None)
    if not callable(build):
        raise MemoptError(f"builder {spec}: {p} has no function {fn}")
    h, w = hw
    try:
        m = build(h, w)
    except Exception as e:  # noqa: BLE001
        raise MemoptError(f"builder {spec} refused {w}x{h} ({type(e).__name__}: {str(e)[:160]})") from None
    if not hasattr(m, "inputs") or not hasattr(m, "predict"):
        raise MemoptError(f"builder {spec} returned {type(m).__name__}, not a tf_keras model")
    return m


_CHECKED: set = set()  # (source, size) rebuilds already checked in this process


def at_size(model, io: IOLayout, hw: tuple[int, int], source: str, force: bool = False):
    """``model`` with inputs for a ``hw`` frame: itself when its inputs are dynamic (unless ``force``:
    static shapes wanted) or already that size, else a clone on new inputs with the source's weights.
    The clone is checked against the source before use (memopt.network.check): its weights exactly;
    the same rebuild at a size the source takes, output for output (a fixed-size source at its own
    size, once per process; a dynamic one at 64 px); and no layer may bake the source's own size in
    (a pool, reshape or resize to it would compute something else at another size)."""
    from memopt.network.check import check_copy, layout_shapes, weights_differ

    shapes = [tuple(t.shape) for t in model.inputs]
    fixed = io.frame_hw(shapes)
    if (fixed is None and not force) or (fixed is not None and tuple(fixed) == tuple(hw)):
        return model
    nf = io.frames_from_shapes(shapes) or 1
    own = fixed or ("any", "any")
    if fixed:
        baked = _baked_size(model, fixed, io)
        if baked:
            raise MemoptError(f"{source} is built for {own[1]}x{own[0]} frames and {baked}, so a copy at "
                              f"{hw[1]}x{hw[0]} would compute something else; give a builder (FILE.py:FUNCTION) "
                              "that builds it at any size")
    small = (64 // io.step * io.step or io.step, 64 // io.step * io.step or io.step)
    try:
        clone = _clone_at(model, io, hw, nf)
        probe_hw = fixed or small
        key = (source, tuple(probe_hw))
        probe = None if key in _CHECKED else _clone_at(model, io, probe_hw, nf)
    except Exception as e:  # noqa: BLE001
        raise MemoptError(f"{source} is built for {own[1]}x{own[0]} frames and cannot be rebuilt at "
                          f"{hw[1]}x{hw[0]} ({type(e).__name__}); give a builder (FILE.py:FUNCTION) "
                          "that builds it at any size") from None
    what = f"{source} rebuilt at {hw[1]}x{hw[0]}"
    if probe is not None:
        check_copy(model, probe, layout_shapes(probe, io, nf), what)
        _CHECKED.add(key)
    if why := weights_differ(model, clone):
        raise MemoptError(f"{what}: {why}; memopt will not measure a copy that is not the network")
    return clone


def _baked_size(model, hw: tuple[int, int], io: IOLayout) -> str:
    """Which layer holds the frame's own size (at any of its tensors' resolutions) in its config:
    a pool over the whole tensor, a reshape or resize to it; or ''."""
    dims = {hw[0] // k for k in (1, 2, 4, 8, 16, 32, 64)} | {hw[1] // k for k in (1, 2, 4, 8, 16, 32, 64)}
    dims = {d for d in dims if d >= 8}
    keys = ("pool_size", "target_shape", "height", "width", "size", "shape", "cropping")

    def ints(v):
        if isinstance(v, bool):
            return []
        if isinstance(v, int):
            return [v]
        if isinstance(v, (list, tuple)):
            return [i for x in v for i in ints(x)]
        if isinstance(v, dict):
            return [i for x in v.values() for i in ints(x)]
        return []

    for layer in model.layers:
        cfg = layer.get_config() if not hasattr(layer, "layers") else {}
        found = [k for k in keys if set(ints(cfg.get(k))) & dims]
        if not found and layer.__class__.__name__ in ("TFOpLambda", "SlicingOpLambda"):
            fn = str(cfg.get("function", ""))
            if "resize" in fn or "reshape" in fn:
                node = layer.inbound_nodes[0] if layer.inbound_nodes else None
                args = list(getattr(node, "call_args", ())[1:]) + list(getattr(node, "call_kwargs", {}).values())
                if set(ints(args)) & dims:
                    found = [fn]
        if found:
            return f"{layer.name} ({layer.__class__.__name__}) holds it ({found[0]})"
    return ""


def _clone_at(model, io: IOLayout, hw: tuple[int, int], n_frames: int):
    """A clone of ``model`` on static inputs for a ``hw`` frame, carrying its weights (Keras's
    clone_model gives freshly initialised ones)."""
    from memopt.tfenv import keras

    want = io.input_shapes(hw[0], hw[1], n_frames)
    ins = [keras.Input(s[1:], batch_size=s[0] if e.frames == "batch" else None)
           for s, e in zip(want, io.in_entries)]
    clone = keras.models.clone_model(model, input_tensors=ins if len(ins) > 1 else ins[0])
    clone.set_weights(model.get_weights())
    return clone
