"""The team's model as it arrives: fixed-size exports and dynamic builders, and every copy memopt
rebuilds from them checked against the source (a copy with other weights fails, with the figure)."""
import textwrap

import numpy as np
import pytest

import memopt.tfenv  # noqa: F401,I001  (TensorFlow set up as memopt runs it, before Keras 3 loads)
import keras  # Keras 3: what TF >= 2.16 saves with, and the team's networks are written in
from memopt.errors import MemoptError
from memopt.network.layout import PACKED


def _packed_net(hw=None, seed=0, aux=False, gate_op="mul"):
    """A small packed-contract net written as teams write it: tf ops on the functional graph (a
    slice of the EV 0 frame, a multiply by a gate), a fixed input size when ``hw`` is given, and
    (``aux``) a second head before the frame (a 4-channel map the app does not use)."""
    from memopt.tfenv import keras, tf

    shape = (hw[0] // 2, hw[1] // 2, 18) if hw else (None, None, 18)
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    gate = keras.layers.Conv2D(8, 1, activation="sigmoid")(x)
    x = x * gate if gate_op == "mul" else x + gate
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    out = tf.clip_by_value(inp[:, :, :, 6:12] + 0.1 * x, 0.0, 1.0)
    m = keras.Model(inp, [keras.layers.Conv2D(4, 1)(gate), out] if aux else out)
    rng = np.random.default_rng(seed)
    m.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in m.get_weights()])
    return m


def test_a_fixed_size_export_rebuilt_at_another_size_keeps_its_weights():
    from memopt.network.source import at_size

    fixed = _packed_net((48, 64))
    dynamic = _packed_net()
    dynamic.set_weights(fixed.get_weights())
    resized = at_size(fixed, PACKED, (64, 96), "team.keras")
    assert tuple(resized.inputs[0].shape) == (None, 32, 48, 18)
    x = np.random.default_rng(1).uniform(0, 1, (1, 32, 48, 18)).astype(np.float32)
    assert np.abs(np.asarray(resized(x)) - np.asarray(dynamic(x))).max() < 1e-6


def test_a_copy_with_other_weights_is_refused_with_the_figure(monkeypatch):
    from memopt.network import source

    clone_at = source._clone_at

    def drifted(*a, **k):  # what Keras's clone_model alone gives: other weights
        m = clone_at(*a, **k)
        w = m.get_weights()
        w[0] = w[0] + 0.25
        m.set_weights(w)
        return m

    monkeypatch.setattr(source, "_clone_at", drifted)
    with pytest.raises(MemoptError, match=r"rebuilt at 96x64: weight tensor 0 differs from the source's "
                                          r"\(max \|diff\| 0\.25\)"):
        source.at_size(_packed_net((48, 64)), PACKED, (64, 96), "team.keras")


def test_check_compares_outputs_too():
    from memopt.network.check import check_copy, outputs_diff

    a, b = _packed_net((32, 32), seed=0), _packed_net((32, 32), seed=0)
    assert outputs_diff(a, b, [(1, 16, 16, 18)]) == 0.0
    check_copy(a, b, [(1, 16, 16, 18)], "copy")
    other = _packed_net((32, 32), seed=0, gate_op="add")  # the same weights in another graph
    with pytest.raises(MemoptError, match="its output differs from the source's by"):
        check_copy(a, other, [(1, 16, 16, 18)], "copy")


def test_a_fixed_size_export_that_bakes_its_size_in_is_refused():
    """A global average pool written as a pool over the whole (fixed) tensor would average a corner
    of a larger frame: the rebuild is refused, not measured."""
    from memopt.network.source import at_size
    from memopt.tfenv import keras

    inp = keras.Input((24, 32, 18))
    x = keras.layers.Conv2D(6, 3, padding="same")(inp)
    g = keras.layers.AveragePooling2D(pool_size=(24, 32))(x)  # 1x1: the frame's mean, at this size only
    m = keras.Model(inp, x * g)
    with pytest.raises(MemoptError, match=r"holds it \(pool_size\).*give a builder"):
        at_size(m, PACKED, (64, 96), "team.keras")


def test_a_dynamic_builder_counts_its_macs(tmp_path):
    from memopt.network.graph import facts
    from memopt.network.source import NetworkSource

    f = tmp_path / "dyn.py"
    f.write_text(textwrap.dedent("""
        import tf_keras as keras

        def build(height, width):  # ignores the size: dynamic inputs, as many builders are written
            inp = keras.Input((None, None, 18))
            return keras.Model(inp, keras.layers.Conv2D(6, 3, padding="same")(inp))
    """))
    got = facts(NetworkSource(builder=f"{f}:build", trust=True), (64, 64))
    # 3x3x18x6 MACs per packed pixel, a quarter of the frame's pixels
    assert got["params"] == 3 * 3 * 18 * 6 + 6 and got["macs_per_mp"] == pytest.approx(3 * 3 * 18 * 6 / 4, rel=1e-3)


FAULT = """
import numpy as np
from memopt.network import source

_clone_at = source._clone_at

def _drifted(*a, **k):
    m = _clone_at(*a, **k)
    w = m.get_weights()
    w[0] = w[0] + np.float32(0.25)
    m.set_weights(w)
    return m

source._clone_at = _drifted
"""


def _recipe(tmp_path, model, variants, data, io=""):
    from conftest import tiny_recipe

    return tiny_recipe(tmp_path / "team.toml", f'model = "{model}"\nev_tenths = [-20, 0, 4]\n{io}', variants, data)


def _results(out):
    import pandas as pd

    return pd.read_csv(out / "results.csv").set_index("variant")


def test_a_fixed_size_export_runs_every_technique_with_its_own_weights(tmp_path, tiny_synth):
    """Exported at 48x64 with an auxiliary head, run at 64x64: every copy (full frame, windows,
    fine-tuning crops) is the network, so the tile of this local net equals its full frame."""
    from memopt.cli.commands import main

    _packed_net((48, 64), aux=True).save(tmp_path / "team.keras")
    # eval data named as raw camera frames are (ev0_64x64.yuv, no sidecars)
    data = _named_copy(tiny_synth, tmp_path / "named")
    recipe = _recipe(tmp_path, tmp_path / "team.keras", ["prune50", "tile48h8", "int8+tile48h8"], data,
                     '[baseline.io]\ninputs = ["packed"]\noutputs = ["ignore", "packed"]')
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    df = _results(tmp_path / "run")
    for v, r in df.iterrows():
        assert r.status == "ok", (v, r.reason)
    assert df.loc["tile48h8"].exact == "yes" and df.loc["tile48h8"].psnr_vs_baseline > 60
    assert df.loc["int8+tile48h8"].psnr_vs_baseline > 30  # the window rebuilt with the export's weights
    assert df.loc["fp32"].params == _packed_net((48, 64), aux=True).count_params()
    # the recipe fine-tunes and calibrates on its quality data: the table and the pick's card say so
    md = (tmp_path / "run" / "results.md").read_text()
    assert "fine-tuning (prune50) read the quality scenes" in md and "int8 calibration read the quality scenes" in md
    main(["pick", str(tmp_path / "run"), "--budget", "700MB"])
    import json

    card = json.loads((tmp_path / "run" / "deploy" / "model_card.json").read_text())
    assert "fine-tuning (prune50) read the quality scenes" in card["in_sample"]


def test_a_derived_copy_with_other_weights_fails_its_row(tmp_path, tiny_synth, monkeypatch):
    """The check inside the variant worker: a rebuild that drifts from the source's weights (injected
    into every memopt process through sitecustomize) is a failed row with the figure, not a row."""
    from memopt.cli.commands import main

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULT)
    monkeypatch.setenv("PYTHONPATH", str(hook))
    _packed_net((48, 64)).save(tmp_path / "team.keras")
    recipe = _recipe(tmp_path, tmp_path / "team.keras", ["tile48h8"], tiny_synth)
    main(["run", str(recipe), "--out", str(tmp_path / "run"), "--quiet"])
    df = _results(tmp_path / "run")
    for v in ("fp32", "tile48h8"):
        r = df.loc[v]
        assert r.status == "failed", v
        assert "weight tensor 0 differs from the source's (max |diff| 0.25)" in r.reason, r.reason
        assert "\n" not in r.reason


def _keras3_net(local: bool = True):
    """A Keras 3 network (TF >= 2.16's default Keras) in published style: Ellipsis slicing of the
    EV 0 frame, a gate multiplied in (``x * gate``), a Lambda channel attention of channel means
    and maxima, and (``local=False``) a squeeze-excitation by ``keras.ops.mean`` over H and W."""
    k3 = keras
    inp = k3.Input((None, None, 18))
    x = k3.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    att = keras.layers.Concatenate()([keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=3, keepdims=True))(x),
                                      keras.layers.Lambda(lambda t: keras.ops.max(t, axis=3, keepdims=True))(x)])
    x = x * k3.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(att)
    if not local:
        se = k3.ops.mean(x, axis=(1, 2), keepdims=True)
        x = x * k3.layers.Dense(8, activation="sigmoid")(k3.layers.Dense(4, activation="relu")(se))
    x = k3.layers.BatchNormalization()(x)
    out = k3.layers.Add()([inp[..., 6:12], 0.1 * k3.layers.Conv2D(6, 3, padding="same")(x)])
    m = k3.Model(inp, out)
    rng = np.random.default_rng(0)
    m.set_weights([rng.normal(0.5 if "variance" in w.path else 0.0, 0.3, w.shape).astype(np.float32) if
                   "variance" not in w.path else np.abs(rng.normal(1.0, 0.2, w.shape)).astype(np.float32)
                   for w in m.weights])
    return m


def test_keras3_files_and_exports_load_as_the_same_network(tmp_path):
    from memopt.network.source import NetworkSource

    m = _keras3_net(local=False)
    m.save(tmp_path / "team.keras")
    m.save(tmp_path / "team.h5")
    m.export(str(tmp_path / "team_export"), verbose=False)
    x = np.random.default_rng(3).uniform(0, 1, (1, 24, 32, 18)).astype(np.float32)
    want = np.asarray(m(x, training=False))
    for f in ("team.keras", "team_export"):
        got = NetworkSource(model=str(tmp_path / f), trust=True).load()
        assert np.abs(np.asarray(got(x, training=False)) - want).max() < 1e-5, f
    with pytest.raises(MemoptError, match="Keras 3 model with a Lambda layer.*trust = true"):
        NetworkSource(model=str(tmp_path / "team.keras")).load()
    # Keras 3's .h5 keeps layers only: its own loader refuses the ops on tensors (x * se)
    with pytest.raises(MemoptError, match=r"cannot read back its own \.h5.*save it as \.keras"):
        NetworkSource(model=str(tmp_path / "team.h5"), trust=True).load()
    inp = keras.Input((None, None, 18))
    x1 = keras.layers.BatchNormalization()(keras.layers.Conv2D(6, 3, padding="same")(inp))
    layers_only = keras.Model(inp, keras.layers.Add()([x1, keras.layers.Lambda(lambda t: t[..., 6:12])(inp)]))
    layers_only.save(tmp_path / "layers.h5")
    got = NetworkSource(model=str(tmp_path / "layers.h5"), trust=True).load()
    assert np.abs(np.asarray(got(x)) - np.asarray(layers_only(x, training=False))).max() < 1e-5


def test_plain_tf_module_savedmodels_load_fixed_or_dynamic(tmp_path):
    from memopt.network.source import NetworkSource
    from memopt.tfenv import tf

    class Net(tf.Module):
        def __init__(self, shape):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal((3, 3, 18, 6), (1, 2)) * 0.1)
            self.__call__ = tf.function(self._run, input_signature=[tf.TensorSpec(shape, tf.float32)])

        def _run(self, x):
            return tf.nn.conv2d(x, self.w, 1, "SAME") + x[..., 6:12]

    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 18)).astype(np.float32)
    for name, shape in (("dynamic", [None, None, None, 18]), ("fixed", [1, 16, 16, 18])):
        net = Net(shape)
        tf.saved_model.save(net, str(tmp_path / name))
        got = NetworkSource(model=str(tmp_path / name)).load()
        assert np.abs(np.asarray(got(x)) - np.asarray(net.__call__(x))).max() < 1e-6, name


def test_a_keras3_model_runs_every_technique(tmp_path, tiny_synth):
    """The Keras 3 file through memopt run: int8, pruning (Ellipsis slicing through tfmot's clone and
    the saves) and an exact tile (runtime settings are the file's: tests/test_runtime.py); the plain
    SavedModel it exports gets
    the rows that need no Keras layers, and one line for the rest."""
    from memopt.cli.commands import main

    m = _keras3_net()
    m.save(tmp_path / "team.keras")
    recipe = _recipe(tmp_path, tmp_path / "team.keras", ["int8", "prune50", "tile48h8"], tiny_synth)
    recipe.write_text(recipe.read_text().replace("[baseline]\n", "[baseline]\ntrust = true\n"))
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    df = _results(tmp_path / "run")
    for v, r in df.iterrows():
        assert r.status == "ok", (v, r.reason)
    assert df.loc["fp32"].params == m.count_params()
    assert df.loc["tile48h8"].exact == "yes" and df.loc["tile48h8"].psnr_vs_baseline > 60

    m.export(str(tmp_path / "team_export"), verbose=False)
    recipe = _recipe(tmp_path, tmp_path / "team_export", ["int8", "prune50", "tile48h8"], tiny_synth)
    assert main(["run", str(recipe), "--out", str(tmp_path / "export"), "--quiet"]) == 0
    df = _results(tmp_path / "export")
    assert df.loc["prune50"].status == "failed" and "plain TensorFlow SavedModel" in df.loc["prune50"].reason
    for v in ("fp32", "int8", "tile48h8"):
        assert df.loc[v].status == "ok", (v, df.loc[v].reason)
    assert df.loc["tile48h8"].exact == "yes" and df.loc["tile48h8"].psnr_vs_baseline > 60


def _named_copy(src, dst, swap: bool = False):
    """The dataset's raw frames renamed <stem>_<W>x<H>.yuv without sidecars, as cameras write them
    (``swap``: the numbers in the wrong order)."""
    from memopt.frames.yuv import read_yuv, write_yuv

    for scene in sorted(p for p in src.iterdir() if p.is_dir()):
        for f in sorted(scene.glob("*.yuv")):
            fr = read_yuv(f)
            w, h = (fr.height, fr.width) if swap else (fr.width, fr.height)
            write_yuv(dst / scene.name / f"{f.stem}_{w}x{h}.yuv", fr, sidecar=False)
    return dst


def test_frame_names_with_their_size_are_scenes_with_ground_truth(tmp_path, tiny_synth):
    from memopt.cli.commands import main
    from memopt.frames.data import scan_dataset

    data = _named_copy(tiny_synth, tmp_path / "named")
    s = scan_dataset(data)[0]
    assert [f.ev_tenths for f in s.frames] == [-20, 0, 4] and not s.frames[0].approximate
    assert s.gt is not None and s.gt.name.startswith("gt_")
    assert main(["data", "check", str(data), "--ev=-20,0,4"]) == 0


def test_a_size_in_the_wrong_order_is_an_error_not_a_sheared_frame(tmp_path):
    from conftest import smooth_rgb

    from memopt.frames.yuv import read_yuv, rgb_to_yuv420, write_yuv

    fr = rgb_to_yuv420(smooth_rgb(48, 64, 0))  # 64 wide, 48 high
    write_yuv(tmp_path / "ok_64x48.yuv", fr, sidecar=False)
    write_yuv(tmp_path / "bad_48x64.yuv", fr, sidecar=False)
    assert np.array_equal(read_yuv(tmp_path / "ok_64x48.yuv").y, fr.y)
    with pytest.raises(MemoptError, match=r"says 48x64 \(width x height\).*line up only as 64x48.*bad_64x48\.yuv"):
        read_yuv(tmp_path / "bad_48x64.yuv")
    write_yuv(tmp_path / "side_48x64.yuv", fr)  # a sidecar that contradicts the name
    with pytest.raises(MemoptError, match="the name says 48x64 but side_48x64.yuv.json say 64x48"):
        read_yuv(tmp_path / "side_48x64.yuv")


def test_an_auxiliary_output_is_ignored_by_the_layout_and_left_out_of_the_tflite(tmp_path, capsys):
    """A network with a second head (an illumination map, 4 channels): inspect proposes 'ignore'
    for it, the layout reads the frame alone, and the converted .tflite keeps only the frame."""
    from memopt.cli.commands import main
    from memopt.convert import ConvertConfig, convert
    from memopt.lite.embed import read
    from memopt.lite.runner import load_runner
    from memopt.network.layout import IOLayout
    from memopt.network.source import NetworkSource
    from memopt.tfenv import keras

    inp = keras.Input((None, None, 18))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    frame = keras.layers.Conv2D(6, 3, padding="same", name="frame")(x)
    aux = keras.layers.Conv2D(4, 1, name="illumination")(x)
    keras.Model(inp, [aux, frame]).save(tmp_path / "two.keras")
    assert main(["inspect", str(tmp_path / "two.keras")]) == 0
    out = capsys.readouterr().out
    assert "outputs = [\"ignore\", \"packed\"]" in out and "output(s) 0 ignored" in out
    io = IOLayout(("packed",), ("ignore", "packed"))
    src = NetworkSource(model=str(tmp_path / "two.keras"), io=io)
    convert(src, ConvertConfig(32, 32, "none"), tmp_path / "two.tflite", ev_tenths=(-20, 0, 4))
    layout, _ = read(tmp_path / "two.tflite")
    assert layout.outputs == ("packed",)  # the auxiliary head is not in the file
    from conftest import smooth_rgb

    from memopt.frames.yuv import rgb_to_yuv420

    frames = [rgb_to_yuv420(smooth_rgb(32, 32, k)) for k in range(3)]
    got = load_runner(tmp_path / "two.tflite").enhance(frames)
    want = load_runner(src).enhance(frames)
    assert np.abs(got - want).max() < 1e-4
    with pytest.raises(ValueError, match="'ignore'"):
        IOLayout(("packed",), ("aux", "packed"))


def test_a_tflite_alone_gets_every_row_that_needs_no_source(tmp_path, tiny_synth):
    """The team hands over a float .tflite only: the file, its runtime setting, fp16 / dyn8 / int8
    by AI Edge Quantizer; model-side, tile and context rows say in one line what they need."""
    from memopt.cli.commands import main
    from memopt.convert import keras_converter
    from memopt.lite.embed import read

    # the team's own conversion: the TFLite converter, no memopt metadata in the file
    converter, _ = keras_converter(_packed_net(), PACKED, 3, 64, 64)
    (tmp_path / "team.tflite").write_bytes(converter.convert())
    assert read(tmp_path / "team.tflite") is None
    recipe = _recipe(tmp_path, tmp_path / "team.tflite", ["fp16", "dyn8", "int8", "tib", "prune50", "tile48h8"],
                     tiny_synth)
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    df = _results(tmp_path / "run")
    for v in ("fp32", "fp16", "dyn8", "int8", "fp32+tib"):
        assert df.loc[v].status == "ok", (v, df.loc[v].reason)
    assert df.loc["fp16"].psnr_vs_baseline > 50 and df.loc["dyn8"].psnr_vs_baseline > 30
    assert df.loc["int8"].psnr_vs_baseline > 30 and df.loc["int8"].file_mb < df.loc["fp32"].file_mb
    assert df.loc["fp32"].params > 0
    layout, evs = read(tmp_path / "run" / "models" / "int8.tflite")  # the quantizer kept the layout and EVs
    assert layout == PACKED and evs == (-20, 0, 4)
    for v, need in (("prune50", "a .tflite alone does not"), ("tile48h8", "the .tflite takes 64x64 frames; this row needs a 48x48 model")):
        r = df.loc[v]
        assert r.status == "failed" and need in r.reason and "\n" not in r.reason, (v, r.reason)


def test_a_size_inside_a_word_is_not_a_frame_size(tmp_path):
    from conftest import smooth_rgb

    from memopt.frames.yuv import read_yuv, rgb_to_yuv420, write_yuv

    fr = rgb_to_yuv420(smooth_rgb(48, 64, 0))
    write_yuv(tmp_path / "out-int16x8.yuv", fr)  # its sidecar says 64x48: "16x8" is part of a variant name
    assert read_yuv(tmp_path / "out-int16x8.yuv").y.shape == (48, 64)


def test_a_builder_that_forgets_its_weights_is_refused(tmp_path):
    """A builder whose networks differ from call to call (no weights loaded) would give every row
    another network: the fingerprint taken once catches it at the next build, at any size."""
    from memopt.network.source import NetworkSource

    f = tmp_path / "fresh.py"
    f.write_text(textwrap.dedent("""
        import tf_keras as keras

        def build(height, width):  # no load_weights: a fresh random network every call
            inp = keras.Input((height // 2, width // 2, 18))
            return keras.Model(inp, keras.layers.Conv2D(6, 3, padding="same")(inp))
    """))
    src = NetworkSource(builder=f"{f}:build", trust=True)
    with pytest.raises(MemoptError, match=r"returned other weights at 64x64 than at 256x256"):
        src.pinned().load((64, 64))
    g = tmp_path / "seeded.py"
    g.write_text(f.read_text().replace("def build(height, width):  # no load_weights: a fresh random network every "
                                       "call", "def build(height, width):\n    keras.utils.set_random_seed(3)"))
    NetworkSource(builder=f"{g}:build", trust=True).pinned().load((64, 64))  # same weights at every size
