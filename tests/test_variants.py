"""The variant registry: names parse, model-side steps really change the model, bad names fail."""
from pathlib import Path

import numpy as np
import pytest

from memopt.errors import MemoptError
from memopt.variants import REGISTRY, Context, FineTuneConfig, build, parse_variant

NAMES = ["ft", "ft+int8", "fp32", "fp16", "dyn8", "int8", "int16x8", "int8-pt", "int8-s64", "int8-f2", "prune50", "prune2of4",
         "slim0.75", "slim0.5", "slim0.5+int8", "poly2", "guided2", "int8+tile384h48",
         "tile256h16+int8+slim0.5+prune50"]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_parses_and_round_trips(name):
    v = parse_variant(name)
    kinds = [k for k, _ in v.steps]
    assert kinds == [k for k in REGISTRY if k in kinds]  # application order, whatever the name's
    for kind, cfg in v.steps:
        again = REGISTRY[kind].parse(cfg.name)
        assert again == cfg


def test_names_are_canonical():
    assert parse_variant("tile256h16+INT8+slim0.5").name == "slim0.5+int8+tile256h16"
    assert parse_variant("fp32+tile512h16").name == "tile512h16" and parse_variant("fp32").name == "fp32"
    assert parse_variant("prune2of4+ft").name == "ft+prune2of4"


def test_variant_fields():
    v = parse_variant("int8+tile384h48")
    assert v.quant.mode == "int8" and v.tile.tile == 384 and v.tile.halo == 48 and v.split is None
    assert v.model_size(3024, 4032) == (384, 384)
    assert parse_variant("poly2").model_size(3024, 4032) == (1512, 2016)
    assert parse_variant("fp32").is_baseline and not parse_variant("slim0.5").is_baseline
    q = parse_variant("int8-pt-s32-f1").quant
    assert (q.per_channel, q.samples, q.float_layers) == (False, 32, 1)
    assert parse_variant("prune2of4").get("prune").target_sparsity == 0.5


@pytest.mark.parametrize("bad,match", [
    ("int9", "unknown part"), ("int8+fp16", "two quant"), ("", "empty"), ("tile384h48+tile256h48", "two tile"),
    ("tile100h7", "multiple of 2"), ("slim1.5", "slim<m>"), ("slim0.0", r"\(0, 1\)"), ("prune100", r"\(0, 1\)"),
    ("prune4of2", "0 < m < n"), ("prunex", "prune<p>"), ("fp16-pt", "int8 / int16x8 only"),
    ("int8-z3", "unknown quantization option"), ("int16x8-f1", "int8 only"), ("int8-s0", ">= 1"),
    ("int8-auto-f2", "drop -f<k>"), ("fp16-auto", "int8 only"), ("int8-q200", "PSNR in dB"),
])
def test_bad_names_are_clear(bad, match):
    with pytest.raises(MemoptError, match=match):
        parse_variant(bad)


def test_unknown_name_lists_the_grammar():
    with pytest.raises(MemoptError) as e:
        parse_variant("quantize-all")
    for t in REGISTRY.values():
        assert t.forms in str(e.value)


def test_finetune_config_validates():
    with pytest.raises(ValueError, match="learning_rate"):
        FineTuneConfig(learning_rate=2.0)
    with pytest.raises(ValueError, match="crop"):
        FineTuneConfig(crop=20)


def _ctx(tmp_path, data):
    return Context(tmp_path / "work", FineTuneConfig(epochs=1, steps_per_epoch=4, batch=2, crop=32,
                                                     data=(str(data),), long_side=None), verbose=0)


def test_slimmed_model_is_smaller_and_on_contract(tiny_run, tiny_synth, tmp_path):
    from memopt.frames.contract import check_shapes
    from memopt.train import load_keras

    base = load_keras(tiny_run / "model.keras")
    b = build(parse_variant("slim0.5+int8"), tiny_run / "model.keras", _ctx(tmp_path, tiny_synth))
    slim = load_keras(b.model.model)
    assert b.quant.mode == "int8" and Path(b.model.model).parent.name == "slim0.5"
    assert slim.get_layer("enc0_0").filters == 2 and slim.get_layer("enc1_1").filters == 4  # widths (4, 8) halved
    assert slim.count_params() < base.count_params() / 2.5
    assert check_shapes(slim.input_shape, slim.output_shape) == 3
    x = np.random.default_rng(0).random((1, 16, 24, 18), np.float32)
    assert slim(x).shape == (1, 16, 24, 6)
    again = build(parse_variant("slim0.5"), tiny_run / "model.keras", _ctx(tmp_path, tiny_synth))
    assert again.model == b.model  # the fine-tuned model is cached, not trained twice


def test_slimming_keeps_the_strongest_channels(tiny_run):
    """Before fine-tuning, a slimmed layer holds exactly the kept filters of the original."""
    from memopt.train import load_keras
    from memopt.variants.slimming import slim_network

    base = load_keras(tiny_run / "model.keras")
    new, _, how, _ = slim_network(base, 0.5)
    k = base.get_layer("enc0_0").get_weights()[0]
    top = np.sort(np.argsort(-np.abs(k).sum(axis=(0, 1, 2)))[:2])
    np.testing.assert_array_equal(new.get_layer("enc0_0").get_weights()[0], k[..., top])
    assert how == "filter L1 norm" and new.get_layer("enc1_1").filters == 4


def test_slimming_refuses_a_network_with_nothing_to_slim(tmp_path, tiny_synth):
    from memopt.tfenv import keras

    inp = keras.Input((None, None, 18))
    m = keras.Model(inp, keras.layers.Conv2D(6, 3, padding="same")(inp))  # its only conv is the output
    m.save(tmp_path / "foreign.keras")
    with pytest.raises(MemoptError, match="no channel group can be slimmed .*a model output"):
        build(parse_variant("slim0.5"), tmp_path / "foreign.keras", _ctx(tmp_path, tiny_synth))


@pytest.mark.parametrize("name", ["prune50", "prune2of4"])
def test_pruned_model_reaches_its_sparsity(name, tiny_run, tiny_synth, tmp_path):
    from memopt.train import load_keras
    from memopt.variants.pruning import kernel_sparsity

    ctx = _ctx(tmp_path, tiny_synth)
    b = build(parse_variant(name), tiny_run / "model.keras", ctx)
    model = load_keras(b.model.model)  # stripped: a plain tf_keras model loads without tfmot
    assert not any("prune" in layer.name for layer in model.layers)
    sp = kernel_sparsity(model)
    assert len(sp) == 8  # widths (4, 8): 2 levels x 2 convs, up0, 2 decoder convs, head
    assert all(s >= 0.49 for name_, s in sp.items() if name_ != "enc0_0")  # 18 inputs: 4-blocks don't divide
    if name == "prune2of4":
        for layer in model.layers:
            if layer.name.startswith(("enc", "dec")) and layer.kernel.shape[2] % 4 == 0:
                k = layer.kernel.numpy()  # (kh, kw, in, out): at most 2 non-zeros in every 4 inputs
                blocks = np.moveaxis(k, 2, -1).reshape(-1, 4)
                assert (np.count_nonzero(blocks, axis=1) <= 2).all(), layer.name


def test_int8_remedies_convert(tiny_run, tmp_path):
    from memopt.convert import ConvertConfig, convert
    from memopt.lite.runner import load_runner

    x = np.random.default_rng(0).random((1, 16, 16, 18), np.float32)
    outs = {}
    for name, cfg in (("pc", ConvertConfig(32, 32, "int8", samples=2)),
                      ("pt", ConvertConfig(32, 32, "int8", samples=2, per_channel=False)),
                      ("f2", ConvertConfig(32, 32, "int8", samples=2, float_layers=2))):
        convert(tiny_run / "model.keras", cfg, tmp_path / f"{name}.tflite")
        outs[name] = load_runner(tmp_path / f"{name}.tflite")(x)
        assert outs[name].shape == (1, 16, 16, 6)
    assert (tmp_path / "f2.tflite").stat().st_size > (tmp_path / "pc.tflite").stat().st_size  # float weights
    with pytest.raises(ValueError, match="int8 only"):
        ConvertConfig(32, 32, "float16", float_layers=1)


def test_ft_control_is_the_same_network_trained_further(tiny_run, tiny_synth, tmp_path):
    from memopt.train import load_keras

    b = build(parse_variant("ft"), tiny_run / "model.keras", _ctx(tmp_path, tiny_synth))
    base, ft = load_keras(tiny_run / "model.keras"), load_keras(b.model.model)
    assert ft.count_params() == base.count_params()
    assert not np.allclose(ft.get_layer("head").get_weights()[0], base.get_layer("head").get_weights()[0])


def test_finetuning_keeps_the_baselines_held_out_scenes_out(tiny_run, tmp_path):
    """A cross-validation fold's model is fine-tuned on its training scenes only."""
    import json
    import shutil

    base = tmp_path / "fold"
    shutil.copytree(tiny_run, base)
    recipe = json.loads((base / "recipe.json").read_text())
    recipe["data"]["exclude"] = ["s0000"]
    recipe["data"]["long_side"] = 64
    (base / "recipe.json").write_text(json.dumps(recipe))
    ctx = Context(tmp_path / "work", FineTuneConfig(epochs=1, steps_per_epoch=2, batch=2, crop=32), verbose=0)
    b = build(parse_variant("ft"), base / "model.keras", ctx)
    used = json.loads((Path(b.model.model).parent / "recipe.json").read_text())["data"]
    assert used["exclude"] == ["s0000"] and used["train"] == recipe["data"]["train"]

