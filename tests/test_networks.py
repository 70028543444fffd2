"""Any network: tensor layouts, loading (Lambda, builders), the probe, non-local operations, tiles."""
import networks
import numpy as np
import pytest
from conftest import smooth_rgb

from memopt.errors import MemoptError
from memopt.network.layout import PACKED, IOLayout, Planes, propose


def _frames(h, w, n=3, seed=0):
    from memopt.frames.yuv import rgb_to_yuv420

    return [rgb_to_yuv420(smooth_rgb(h, w, seed + k)) for k in range(n)]


@pytest.mark.parametrize("bad", ["yy", "y/3", "packed/4", "uv@x", "rgb/128"])
def test_bad_entries_are_refused(bad):
    with pytest.raises(ValueError):
        IOLayout((bad,), ("packed",))


def test_layout_checks_itself():
    with pytest.raises(ValueError, match="Y, U and V"):
        IOLayout(("y",), ("y", "y"))
    with pytest.raises(ValueError, match="chroma"):
        IOLayout(chroma="uvw")
    with pytest.raises(ValueError, match="matrix"):
        IOLayout(matrix="bt709x")
    assert IOLayout(("y/2@-20", "uv/8@-20"), ("y/2", "uv/8")).step == 8
    assert IOLayout(("y@batch",), ("y",)).luma_only


def test_packed_layout_is_memopts_contract():
    from memopt.frames.contract import pack

    fr = _frames(16, 24)
    (x,) = PACKED.feed(fr)
    assert np.array_equal(x, pack(fr)[None])


@pytest.mark.parametrize("io", [
    dict(inputs=("y@-20", "uv@-20", "y@0", "uv@0", "y@4", "uv@4"), outputs=("y", "uv")),
    dict(inputs=("yuv@all",), outputs=("yuv",), range=(-1.0, 1.0), chroma="vu", matrix="opencv"),
    dict(inputs=("y/2@0", "u/4@0", "v/4@0"), outputs=("y/2", "u/4", "v/4"), range=(0.0, 255.0)),
])
def test_feed_then_read_gives_the_frame_back(io):
    """An identity network in each layout returns the reference frame (at the layout's resolution)."""
    layout = IOLayout(**io)
    fr = _frames(32, 48)
    ins = layout.feed(fr, (-20, 0, 4))
    if "yuv@all" in layout.inputs:
        outs = [ins[0][..., 3:6]]  # the EV 0 frame's three channels
    else:
        outs = ins[-len(layout.outputs):] if layout.inputs[0] == "y/2@0" else ins[2:4]
    got = layout.read(outs, 32, 48)
    ref = PACKED.feed([fr[1]])[0][0]
    # /k tensors lose detail; OpenCV's V gain (1.23) saturates 8-bit chroma of strong colours
    tol = 0.08 if "/" in "".join(layout.inputs) else 2e-3 if layout.matrix == "opencv" else 1e-5
    assert np.abs(got - ref).mean() < tol


def test_shapes_are_checked_and_proposed():
    model, io = networks.split_planes_se()
    layout = IOLayout(**io)
    ins = [tuple(t.shape) for t in model.inputs]
    outs = [tuple(t.shape) for t in model.outputs]
    layout.check(ins, outs, 3)
    with pytest.raises(MemoptError, match="input and"):
        PACKED.check(ins, outs, 3)
    guess = propose([(1, 64, 64, 1), (1, 16, 16, 2)] * 3, [(1, 32, 32, 1), (1, 8, 8, 2)])
    assert guess.inputs == ("y@-20", "uv/4@-20", "y@0", "uv/4@0", "y@4", "uv/4@4")
    assert guess.outputs == ("y/2", "uv/8")
    assert propose([(1, 8, 8, 18)], [(1, 8, 8, 6)]) == PACKED


def test_unet_probe_equals_the_analytic_receptive_field():
    from memopt.config import ModelConfig
    from memopt.network.unet import build_model, receptive_field
    from memopt.network.probe import probe
    from memopt.lite.runner import keras_runner

    cfg = ModelConfig()  # memopt's U-Net: 47 px, 8 px
    r = keras_runner(build_model(cfg), PACKED)
    p = probe(r.fn, PACKED, 3)
    rf = receptive_field(cfg)
    assert (p.radius, p.alignment, p.non_local) == (rf.radius, rf.alignment, False) == (47, 8, False)


def _tiled_equals_full(model, layout, halo, align, size=(56, 72), tile=40):
    from memopt.lite.runner import keras_runner
    from memopt.lite.tiling import TileConfig, enhance_tiled

    fr = _frames(*size)
    r = keras_runner(model, layout, networks.EVS)
    full = layout.run(r.fn, fr, networks.EVS)
    got = np.zeros_like(full)

    def sink(core, y, x):
        got[y // 2:y // 2 + core.shape[0], x // 2:x // 2 + core.shape[1]] = core

    from memopt.lite.tiling import run_tiled

    run_tiled(r.fn, fr, TileConfig(tile, halo, align), sink, layout=layout, evs=networks.EVS)
    enhance_tiled(r.fn, fr, TileConfig(tile, halo, align), progress=False, layout=layout, evs=networks.EVS)
    return float(np.abs(got - full).max())


@pytest.mark.parametrize("make", [networks.rgb_bn_dw, networks.luma_batch])
def test_local_networks_probe_finite_and_tile_exactly(make):
    from memopt.network.graph import non_local_ops
    from memopt.network.probe import probe
    from memopt.lite.runner import keras_runner

    model, io = make()
    layout = IOLayout(**io)
    p = probe(keras_runner(model, layout, networks.EVS).fn, layout, 3, networks.EVS, size=128)
    assert not p.non_local and 0 < p.radius < 30 and p.alignment in (2, 4)
    assert not [o for o in non_local_ops(model) if o.kind == "global"]
    halo = p.halo + p.alignment  # bilinear chroma upsampling reads one more pixel at a window's edge
    assert _tiled_equals_full(model, layout, halo, p.alignment) <= 1e-4


def test_squeeze_excitation_is_found_and_probed_non_local():
    from memopt.network.graph import non_local_ops
    from memopt.network.probe import probe
    from memopt.lite.runner import keras_runner

    model, io = networks.split_planes_se()
    layout = IOLayout(**io)
    ops = non_local_ops(model)
    assert [o.layer for o in ops if o.kind == "global"] == ["se_pool"]
    p = probe(keras_runner(model, layout, networks.EVS).fn, layout, 3, networks.EVS, size=128)
    assert p.non_local and p.radius is None
    assert _tiled_equals_full(model, layout, 16, 8, size=(64, 96), tile=48) > 1e-5  # windows are not the frame


def test_lambda_model_needs_trust(tmp_path):
    from memopt.network.source import load_keras

    model, _ = networks.rgb_bn_dw(with_lambda=True)
    model.save(tmp_path / "lam.keras")
    with pytest.raises(MemoptError, match="trust = true") as e:
        load_keras(tmp_path / "lam.keras")
    assert "\n" not in str(e.value)
    assert load_keras(tmp_path / "lam.keras", trust=True).count_params() == model.count_params()


def test_builder_needs_trust_and_refuses_sizes_in_one_line(tmp_path):
    from memopt.network.source import NetworkSource

    spec, io = networks.static_builder(tmp_path / "b")
    src = NetworkSource(builder=spec, io=IOLayout(**io))
    with pytest.raises(MemoptError, match="trust"):
        src.load((64, 64))
    trusted = NetworkSource(builder=spec, io=IOLayout(**io), trust=True)
    assert trusted.load((64, 96)).input_shape == (1, 64, 96, 9)
    with pytest.raises(MemoptError, match=r"refused 100x100 \(ValueError: sizes must be multiples of 16"):
        trusted.load((100, 100))


def test_multi_tensor_network_converts_and_runs_as_tflite(tmp_path):
    """Per-tensor resolutions, the signature order and the layout inside the .tflite."""
    from memopt.convert import ConvertConfig, convert
    from memopt.lite import embed
    from memopt.network.source import NetworkSource
    from memopt.lite.runner import keras_runner, load_runner

    model, io = networks.split_planes_se()
    model.save(tmp_path / "se.keras")
    src = NetworkSource(model=str(tmp_path / "se.keras"), io=IOLayout(**io))
    convert(src, ConvertConfig(32, 48, "none"), tmp_path / "se.tflite")
    layout, evs = embed.read(tmp_path / "se.tflite")
    assert layout == IOLayout(**io) and evs == networks.EVS
    fr = _frames(32, 48)
    r = load_runner(tmp_path / "se.tflite")
    assert r.fixed_hw == (32, 48) and r.layout == layout
    want = keras_runner(model, layout, networks.EVS).enhance(fr)
    assert np.abs(r.enhance(fr) - want).max() < 1e-4


def test_planes_accept_float_frames():
    fr = [Planes(np.full((8, 8), 100.0, np.float32), np.full((4, 4), 128.0, np.float32),
                 np.full((4, 4), 128.0, np.float32))]
    (x,) = IOLayout(("rgb@all",), ("rgb",)).feed(fr)
    assert x.shape == (1, 8, 8, 3) and np.allclose(x, 100 / 255, atol=1e-5)


def _run(tmp_path, name, baseline: str, io: dict, variants, data, size="64x64"):
    import json

    from memopt.cli.commands import main

    from conftest import tiny_recipe

    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in io.items())
    recipe = tiny_recipe(tmp_path / f"{name}.toml", f"{baseline}\n[baseline.io]\n{table}", variants, data, size)
    assert main(["run", str(recipe), "--out", str(tmp_path / name), "--quiet"]) == 0
    import pandas as pd

    return pd.read_csv(tmp_path / name / "results.csv").set_index("variant")


def _rows_ok(df, failed=()):
    for v, r in df.iterrows():
        if v in failed:
            assert r.status == "failed" and "\n" not in r.reason, v
        else:
            assert r.status == "ok" and r.model_peak_mb > 0 and r.psnr_gt > 0, (v, r.reason)


def test_any_network_runs_every_technique(tmp_path, tiny_synth):
    """Each published-style layout through memopt run: every row ok, or one clear reason."""
    model, io = networks.rgb_bn_dw(with_lambda=True)
    model.save(tmp_path / "rgb.keras")
    df = _run(tmp_path, "rgb", f'model = "{tmp_path / "rgb.keras"}"\ntrust = true', io,
              ["int8", "prune50", "tile48h16+ingraph", "slim0.5+int8"], tiny_synth)
    _rows_ok(df)  # memory-aimed slimming (many conversions): tests/test_channels.py
    slim = df.loc["slim0.5+int8"]
    assert slim.params < df.loc["fp32"].params and slim.macs_per_mp < df.loc["fp32"].macs_per_mp
    # the windows inside one .tflite, checked against the host tile loop before the row is measured;
    # RGB in [-1, 1] is not bytes: float I/O, the same windows
    loop = df.loc["tile48h16+ingraph"]
    assert loop.exact == "yes" and loop.psnr_vs_baseline > 60 and loop.runs_per_frame == 1
    assert loop.model_hw == df.loc["fp32"].model_hw and "windows in the graph" in loop.note
    assert df.loc["fp32"].params == model.count_params() and df.loc["fp32"].macs_per_mp > 0

    spec, io = networks.static_builder(tmp_path / "builder")
    # the layout-specific paths only (fp16 is layout-blind): built at the window; a builder's pruning
    # and slimming at the crop: test_a_published_style_builder_streams_exactly_and_is_pruned_and_slimmed
    df = _run(tmp_path, "static", f'builder = "{spec}"\ntrust = true', io, ["int8", "tile48h16+ingraph"], tiny_synth)
    _rows_ok(df)  # the builder's window model inside the loop, checked against the host tile loop
    assert df.loc["tile48h16+ingraph"].exact == "yes" and df.loc["tile48h16+ingraph"].psnr_vs_baseline > 60

    model, io = networks.luma_batch()
    model.save(tmp_path / "luma.keras")
    df = _run(tmp_path, "luma", f'model = "{tmp_path / "luma.keras"}"\ntrust = true\nev_tenths = [-20, 0, 4]', io,
              ["int8", "prune50", "tile48h16+ingraph"], tiny_synth)  # fp16 is layout-blind
    _rows_ok(df)  # frames on the batch axis, uint8 in and int8 out; checked against the host tile loop
    assert df.loc["tile48h16+ingraph"].exact == "yes" and df.loc["tile48h16+ingraph"].psnr_vs_baseline > 60


def test_int8_window_graph_inside_the_loop(tmp_path, tiny_synth, monkeypatch):
    """An int8 body: the window .tflite quantized on its own, spliced into the loop, equal to the host
    tile loop of that window file (checked before the row is measured) and so as faithful as it; with
    three inputs of one shape (the splice must tell them apart)."""
    model, io = networks.split_frames_local()
    model.save(tmp_path / "split.keras")
    variants = ["int8+tile48h16", "int8+tile48h16+ingraph"]
    df = _run(tmp_path, "split", f'model = "{tmp_path / "split.keras"}"\ntrust = true', io, variants, tiny_synth)
    _rows_ok(df)
    host, inside = df.loc["int8+tile48h16"], df.loc["int8+tile48h16+ingraph"]
    assert inside.exact == "yes" and inside.runs_per_frame == 1 and inside.memory_basis == "model-only"
    assert abs(inside.psnr_vs_baseline - host.psnr_vs_baseline) < 0.5 and inside.psnr_vs_baseline > 30
    # a splice that mixed up two of the three Y inputs would be caught before any row is measured
    import memopt.lite.splice as S
    from memopt.convert import ConvertConfig
    from memopt.lite.tiling import TileConfig
    from memopt.network.layout import parse_layout
    from memopt.network.source import as_source
    from memopt.variants.ingraph import convert_ingraph

    found = S._markers
    monkeypatch.setattr(S, "_markers", lambda m, sg: [{0: 1, 1: 0}.get(k, k) for k in found(m, sg)])
    _, io = networks.split_frames_local()
    src = as_source(tmp_path / "split.keras", parse_layout(io, "test"), trust=True)
    with pytest.raises(MemoptError, match="differs from the host tile loop"):
        convert_ingraph(src, ConvertConfig(48, 48, "int8"), tmp_path / "mixed.tflite", (64, 64), TileConfig(48, 16, 2),
                        ev_tenths=networks.EVS)
    assert not (tmp_path / "mixed.tflite").exists()


def test_squeeze_excitation_network_tiles_with_global_context_or_when_asked(tmp_path, tiny_synth):
    """Two SE blocks and a global branch (Y + VU/4 per frame, OpenCV YUV): plain tiles and pieces are
    refused with the fix in the reason; with exact streaming the tiled output equals the full frame's;
    low-resolution context and a split with context run; slimming narrows it (memory-aimed slimming
    converts a dozen candidates: tests/test_channels.py, on the predictor too)."""
    model, io = networks.two_se_global()
    model.save(tmp_path / "se.keras")
    variants = ["tile96h24", "poly2", "tile96h24+stream", "tile96h24+ctx4",
                "int8+tile96h24+stream", "poly2+ctx2", "slim0.5+int8", "tile96h24+stream+ingraph"]
    df = _run(tmp_path, "se", f'model = "{tmp_path / "se.keras"}"', io, variants, tiny_synth, size="144x208")
    _rows_ok(df, failed=("tile96h24", "poly2"))
    assert "se1_pool" in df.loc["tile96h24"].reason and "tile96h24+stream" in df.loc["tile96h24"].reason
    assert "poly2+ctx2" in df.loc["poly2"].reason
    stream, low = df.loc["tile96h24+stream"], df.loc["tile96h24+ctx4"]
    assert stream.exact == "yes" and stream.psnr_vs_baseline > 55  # uint8 output: equal up to rounding
    assert low.exact.startswith("no: global values from the frame at 1/4") and low.psnr_vs_baseline > 30
    # plain tiles (-approx) of a network with global ops: tests/test_context.py shows their gap
    # two passes over the 15 windows for the values (two levels), then the output pass
    assert stream.runs_per_frame == 3 * 15 and low.runs_per_frame == 15 + 2 * 1
    # the same streaming inside one .tflite: two loops for the values, then the output loop
    inside = df.loc["tile96h24+stream+ingraph"]
    assert inside.exact == "yes" and inside.psnr_vs_baseline > 55 and inside.runs_per_frame == 1
    assert inside.memory_basis == "model-only"
    assert df.loc["poly2+ctx2"].exact.startswith("no: the network sees a sub-sampled")
    assert df.loc["slim0.5+int8"].params < df.loc["fp32"].params


FIXED_RESIZE = '''
import tensorflow as tf
import tf_keras as keras


def build(height, width):
    x = keras.Input((height, width, 1), batch_size=1)
    half = tf.image.resize(x, (height // 2, width // 2))     # follows the frame
    thumb = tf.image.resize(x, (32, 32))                      # a fixed size: global
    g = tf.image.resize(keras.layers.Conv2D(1, 3, padding="same")(thumb), (height // 2, width // 2))
    return keras.Model(x, half + g)
'''


def test_a_published_style_builder_streams_exactly_and_is_pruned_and_slimmed(tmp_path, tiny_synth):
    """A published-style builder (static tf.image.resize to H/2 and H/8 and a resize pyramid, tf-op SE,
    Lambda channel attention, Ellipsis slicing and tf.stack): its resizes follow the frame (the same
    ratio built at two sizes), so the SE's spatial mean is its only global op and streamed tiles equal
    the full frame at a size that is no multiple of the window's core; pruned (fewer non-zeros) and
    slimmed (fewer params: the channel graph reads its tf.* ops and probes its Lambdas; the plan
    narrows the builder's graph at every size), the I/O kept."""
    spec, io = networks.fusion_builder(tmp_path / "fusion")
    df = _run(tmp_path, "fusion", f'builder = "{spec}"\ntrust = true', io,
              ["tile128h40", "tile128h40+stream", "prune50", "slim0.5"], tiny_synth, size="128x160")
    _rows_ok(df, failed=("tile128h40",))
    reason = df.loc["tile128h40"].reason
    assert "reduce_mean" in reason and "resize" not in reason and "tile128h40+stream" in reason
    stream = df.loc["tile128h40+stream"]
    assert stream.exact == "yes" and stream.psnr_vs_baseline > 55
    full, slim = df.loc["fp32"], df.loc["slim0.5"]
    assert slim.params < 0.8 * full.params and slim.macs_per_mp < full.macs_per_mp
    assert _zero_fraction(df.loc["prune50"].tflite) > 0.3 > _zero_fraction(full.tflite)
    # slim0.5 was fine-tuned at the 32 px crop and converted at 128x160: the plan narrowed that build
    assert [int(v) for v in slim.model_hw.split("x")] == [128, 160]


def _zero_fraction(tflite) -> float:
    """The fraction of zeros among a .tflite's float weights (tensors of 64 values or more)."""
    from pathlib import Path

    from memopt.lite.flatbuf import unpack

    m = unpack(Path(tflite).read_bytes())
    vals = [np.frombuffer(bytes(bytearray(b.data)), np.float32) for b in m.buffers
            if b.data is not None and len(b.data) >= 256 and len(b.data) % 4 == 0]
    vals = [v for v in vals if np.isfinite(v).all()]
    return float(np.mean(np.concatenate(vals) == 0)) if vals else 0.0


def test_a_resize_to_a_fixed_size_stays_global(tmp_path):
    from memopt.network.graph import non_local_ops, resizes, scaling_resizes
    from memopt.network.layout import parse_layout
    from memopt.network.source import NetworkSource

    (tmp_path / "thumb.py").write_text(FIXED_RESIZE)
    src = NetworkSource(builder=f"{tmp_path / 'thumb.py'}:build", io=parse_layout(
        {"inputs": ["y@0"], "outputs": ["y/2"]}, "test"), trust=True)
    scaling = scaling_resizes(src)
    assert len(scaling) == 1  # the thumbnail's way back up is no fixed ratio either
    m = src.load((128, 128))
    half = resizes(m)[scaling[0]]
    assert tuple(half.output.shape) == (1, 64, 64, 1) and half.inbound_nodes[0].inbound_layers.__class__.__name__ \
        == "InputLayer"
    assert sorted(o.layer for o in non_local_ops(m, scaling)) == sorted(r.name for r in resizes(m) if r is not half)
    assert len(non_local_ops(m)) == 3  # without the two-size check every resize is global


def test_int8_auto_keeps_the_operations_that_break_int8_in_float(tmp_path, tiny_synth):
    """A concatenation of a wide-range branch and a fine one: plain int8 rounds the fine one away (one
    scale for the concat); int8-auto finds the operations whose int8 alone costs the most and keeps the
    fewest of them in float that reach 40 dB vs the float model (on held-out samples where there are any)."""
    model, io = networks.wide_range_concat()
    model.save(tmp_path / "wide.keras")
    df = _run(tmp_path, "wide", f'model = "{tmp_path / "wide.keras"}"', io, ["int8", "int8-auto"], tiny_synth)
    _rows_ok(df)
    plain, auto = df.loc["int8"], df.loc["int8-auto"]
    assert plain.psnr_vs_baseline < 25  # > 10 dB lost
    assert auto.psnr_vs_baseline > 30 and auto.psnr_vs_baseline > plain.psnr_vs_baseline + 10
    assert "operations in float" in auto.note and "plain int8" in auto.note
    # 6 scenes, 8 whole-frame samples: none is left to hold out, and the note says where it judged
    assert "on the calibration samples" in auto.note
    kept = int(auto.note.split("int8-auto: ")[1].split(" of ")[0])
    assert 1 <= kept < 5  # not everything: the tanh branch and the gain conv stay int8


def test_inspect_reports_layout_receptive_field_and_global_ops(tmp_path, tiny_run, capsys):
    import json

    from memopt.cli.commands import main
    from memopt.config import ModelConfig
    from memopt.network.unet import receptive_field

    assert main(["inspect", str(tiny_run / "model.keras")]) == 0
    out = capsys.readouterr().out
    rf = receptive_field(ModelConfig(widths=(4, 8)))
    assert f"radius {rf.radius} px" in out and f"alignment {rf.alignment} px" in out and "proposed" in out
    model, io = networks.split_planes_se()
    model.save(tmp_path / "se.keras")
    (tmp_path / "io.toml").write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in io.items()))
    assert main(["inspect", str(tmp_path / "se.keras"), "--io", str(tmp_path / "io.toml")]) == 0
    out = capsys.readouterr().out
    assert "fits the tensors" in out and "se_pool: GlobalAveragePooling2D" in out
    assert "global context: 1 reduction(s) in 1 level(s)" in out and "+stream" in out  # how to tile it
    assert "body, se_fc2  (slimmable)" in out and "uv_head  (frozen: a model output)" in out
    (tmp_path / "bad.toml").write_text('inputs = ["rgb@all"]\noutputs = ["rgb"]')
    assert main(["inspect", str(tmp_path / "se.keras"), "--io", str(tmp_path / "bad.toml")]) == 1  # unusable
    assert "does NOT fit" in capsys.readouterr().out


def test_my_model_template_holds_a_valid_layout():
    from pathlib import Path

    from memopt.network.layout import load_layout

    lay = load_layout(Path(__file__).resolve().parents[1] / "experiments" / "my-model.toml")
    assert lay.inputs[1] == "uv/4@-20" and lay.matrix == "opencv" and lay.step == 8


@pytest.mark.parametrize("io", [
    dict(inputs=("rgb@all",), outputs=("rgb",), range=(-1.0, 1.0)),
    dict(inputs=("y@-20", "uv/4@-20", "y@0", "uv/4@0"), outputs=("y/2", "uv/8"), chroma="vu", matrix="opencv"),
    dict(inputs=("yuv/2@all",), outputs=("yuv",)),
    dict(inputs=("y@batch",), outputs=("y",)),
])
def test_training_adapter_feeds_what_the_numpy_side_feeds(io):
    """Fine-tuning (TensorFlow ops) and inference (numpy) give the network the same tensors."""
    from memopt.frames.contract import pack
    from memopt.network.adapter import LayoutFeed, LayoutRead

    layout = IOLayout(**io)
    fr = _frames(32, 48)
    evs = (-20, 0, 4)
    packed = pack(fr)[None]
    want = layout.feed(fr, evs)
    got = LayoutFeed(layout, evs)(packed)
    for a, b in zip(want, got):
        assert a.shape == tuple(b.shape) and np.abs(a - np.asarray(b)).max() < 2e-3
    # Output tensors of the EV 0 frame, made by the same layout's rules, read back both ways.
    from dataclasses import replace

    outs = replace(layout, inputs=tuple(f"{o}@0" for o in layout.outputs)).feed([fr[1]], (0,))
    back = np.asarray(LayoutRead(layout, evs)([packed, *outs]))[0]
    ref = layout.read(outs, 32, 48, (fr[1].u.astype(np.float32), fr[1].v.astype(np.float32)))
    assert np.abs(back - ref).max() < 2e-3


def test_selective_int8_orders_calibration_by_name(tmp_path):
    """int8-f<k> of a network whose graph orders its inputs differently from its layout."""
    from memopt.convert import ConvertConfig, convert
    from memopt.network.source import NetworkSource
    from memopt.tfenv import keras

    L = keras.layers
    u, v, y = keras.Input((None, None, 1)), keras.Input((None, None, 1)), keras.Input((None, None, 9))
    c = L.UpSampling2D(2)(L.Concatenate()([u, v]))
    m = keras.Model([u, v, y], L.Conv2D(3, 1)(L.Concatenate()([L.Conv2D(4, 3, padding="same")(y), c])))
    m.save(tmp_path / "uvy.keras")
    src = NetworkSource(model=str(tmp_path / "uvy.keras"), io=IOLayout(("u@0", "v@0", "yuv@all"), ("yuv",)))
    info = convert(src, ConvertConfig(32, 48, "int8", samples=2, float_layers=1), tmp_path / "f1.tflite",
                   ev_tenths=(-20, 0, 4))
    assert info["bytes"] > 0


def test_a_layout_the_network_refuses_is_one_line(tmp_path, capsys):
    import json

    from memopt.cli.commands import main

    model, io = networks.split_planes_se()
    model.save(tmp_path / "se.keras")
    io = {**io, "inputs": [e.replace("/4", "") for e in io["inputs"]]}  # chroma at 1/2: the network wants 1/4
    (tmp_path / "io.toml").write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in io.items()))
    assert main(["convert", "--model", str(tmp_path / "se.keras"), "--io", str(tmp_path / "io.toml"),
                 "--size", "64x64", "-o", str(tmp_path / "x.tflite")]) == 2
    err = capsys.readouterr().err
    assert "refused the layout's tensors" in err and err.count("\n") == 1 and not (tmp_path / "x.tflite").exists()


def test_tiles_of_a_frame_off_the_alignment_are_not_called_exact():
    from memopt.study.variant_worker import exactness
    from memopt.variants import parse_variant

    net = {"radius": 10, "alignment": 4, "non_local": False, "non_local_ops": []}
    v = parse_variant("tile48h16")
    assert exactness(v, net, (64, 64), packed=False)[1] == "yes"
    assert exactness(v, net, (66, 64), packed=False)[1].startswith("no: the 64x66 frame")
    assert exactness(v, net, (66, 64), packed=True)[1] == "yes"  # memopt's contract pads by reflection
    assert exactness(parse_variant("tile48h8"), net, (64, 64), packed=False)[1].startswith("no: halo 8 px")
