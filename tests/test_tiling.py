import numpy as np
import pytest

from memopt.config import ModelConfig
from memopt.frames.contract import pack
from memopt.errors import MemoptError
from memopt.lite.tiling import TileConfig, enhance_tiled, run_tiled, tile_grid
from memopt.frames.yuv import YUV420


def frames(h, w, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [YUV420(rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (h // 2, w // 2), np.uint8),
                   rng.integers(0, 256, (h // 2, w // 2), np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def net():
    from memopt.network.unet import build_model, receptive_field
    from memopt.tfenv import keras

    cfg = ModelConfig(widths=(4, 8))
    keras.utils.set_random_seed(3)
    m = build_model(cfg)
    rng = np.random.default_rng(1)
    for layer in m.layers:  # non-trivial biases so zero padding is visible if mishandled
        layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    return m, receptive_field(cfg)


@pytest.mark.parametrize("hw", [(90, 70), (64, 100), (50, 146)])
def test_tiled_equals_full_frame_with_enough_halo(net, hw):
    m, rf = net
    halo = -(-rf.radius // rf.alignment) * rf.alignment
    cfg = TileConfig(2 * halo + 2 * rf.alignment, halo, rf.alignment)
    fr = frames(*hw)
    full = m(pack(fr)[None]).numpy()[0]
    tiled = np.full_like(full, np.nan)

    def sink(core, y, x):
        assert np.isnan(tiled[y // 2:y // 2 + core.shape[0], x // 2:x // 2 + core.shape[1]]).all()  # once
        tiled[y // 2:y // 2 + core.shape[0], x // 2:x // 2 + core.shape[1]] = core

    n = run_tiled(lambda x: m(x).numpy(), fr, cfg, sink)
    assert n > 4 and not np.isnan(tiled).any()
    assert np.abs(tiled - full).max() <= 1e-4


def test_small_halo_is_approximate(net):
    m, rf = net
    fr = frames(96, 96)
    full = m(pack(fr)[None]).numpy()[0]
    out = np.zeros_like(full)

    def sink(core, y, x):
        out[y // 2:y // 2 + core.shape[0], x // 2:x // 2 + core.shape[1]] = core

    run_tiled(lambda x: m(x).numpy(), fr, TileConfig(24, 4, rf.alignment), sink)
    assert np.abs(out - full).max() > 1e-3  # context was cut: seams


def test_uint8_output_matches_full_frame(net):
    from memopt.frames.contract import unpack

    m, rf = net
    fr = frames(66, 82)
    halo = -(-rf.radius // rf.alignment) * rf.alignment
    got = enhance_tiled(lambda x: m(x).numpy(), fr, TileConfig(2 * halo + 8, halo, rf.alignment), progress=False)
    want = unpack(m(pack(fr)[None]).numpy())
    assert np.abs(got.y.astype(int) - want.y).max() <= 1 and np.abs(got.u.astype(int) - want.u).max() <= 1


def test_tile_names_and_bad_configs():
    assert TileConfig.parse("tile512h48") == TileConfig(512, 48)
    assert TileConfig(512, 48).name == "tile512h48" and TileConfig(512, 48).core == 416
    for bad in ("tile512", "tile12h4x", "tiles"):
        with pytest.raises(MemoptError, match="tile<T>h<H>"):
            TileConfig.parse(bad)
    with pytest.raises(MemoptError, match="multiple of 8"):
        TileConfig.parse("tile500h48")
    with pytest.raises(ValueError, match="no core"):
        TileConfig(64, 32)
    with pytest.raises(MemoptError, match="smaller than"):
        tile_grid(32, 32, TileConfig(64, 16))


def test_enhance_runs_a_small_tflite_in_tiles(tiny_run, tiny_synth, tmp_path):
    """A 32x32 .tflite on 64x64 frames: tiled, and equal to the full-frame Keras model where the
    halo covers the receptive field (the tiny net's radius is 19 px; halo 8 does not, so compare loosely)."""
    from memopt.cli.commands import main
    from memopt.convert import ConvertConfig, convert
    from memopt.frames.yuv import read_yuv

    convert(tiny_run / "model.keras", ConvertConfig(32, 32, "none"), tmp_path / "t.tflite")
    s = tiny_synth / "s0003"
    fr = [str(s / f"ev{e}.yuv") for e in (-20, 0, 4)]
    assert main(["enhance", "--model", str(tmp_path / "t.tflite"), *fr, "-o", str(tmp_path / "o.yuv"), "--halo", "8"]) == 0
    assert main(["enhance", "--model", str(tiny_run / "model.keras"), *fr, "-o", str(tmp_path / "k.yuv")]) == 0
    a, b = read_yuv(tmp_path / "o.yuv"), read_yuv(tmp_path / "k.yuv")
    assert (a.width, a.height) == (b.width, b.height)
    assert np.abs(a.y.astype(int) - b.y).mean() < 3
    assert main(["enhance", "--model", str(tmp_path / "t.tflite"), *fr, "-o", str(tmp_path / "x.yuv"), "--halo", "12"]) == 2


def test_pipeline_worker_measures_without_tensorflow(tiny_tflite, tiny_synth, tmp_path):
    import json
    import subprocess
    import sys

    s = tiny_synth / "s0004"
    fr = [str(s / f"ev{e}.yuv") for e in (-20, 0, 4)]
    r = subprocess.run([sys.executable, "-m", "memopt.lite.pipeline_worker", str(tiny_tflite), *fr, "-o",
                        str(tmp_path / "o.yuv"), "--halo", "8"], capture_output=True, text=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["tensorflow_imported"] is False and res["pipeline_peak_mb"] > res["runtime_mb"] > 0
    assert (tmp_path / "o.yuv").stat().st_size == 64 * 64 * 3 // 2


def test_autotune_picks_the_largest_fitting_tile(tiny_run, tmp_path, capsys):
    from memopt.study.autotune import autotune
    from memopt.cli.commands import main
    from memopt.lite.runtime import RuntimeConfig

    small = autotune(tiny_run, 1e6, tmp_path, (256, 256), quant="none", halo=16, step=32, measure=False)
    assert small.tile == 256  # everything fits: the whole frame
    sizes = dict(small.probes)
    budget = (sizes[min(sizes)] + sizes[max(sizes)]) / 2
    mid = autotune(tiny_run, budget, tmp_path, (256, 256), quant="none", halo=16, step=32)
    assert mid.predicted_mb <= budget and 64 <= mid.tile < 256 and mid.measured_mb > 0
    assert all(mb > budget for t, mb in mid.probes if t > mid.tile)
    assert main(["tile", "--model", str(tiny_run), "--budget", "1", "--size", "256x256", "--quant", "none",
                 "--out", str(tmp_path)]) == 2
    assert "over the 1 MB budget" in capsys.readouterr().err
    # with the transient indirection buffer the same budget holds a window at least as large
    tib = autotune(tiny_run, budget, tmp_path, (256, 256), quant="none", halo=16, step=32, measure=False,
                   runtime=RuntimeConfig.parse("tib"))
    common = set(dict(tib.probes)) & set(dict(mid.probes))
    assert tib.tile >= mid.tile and common
    assert all(dict(tib.probes)[t] < dict(mid.probes)[t] for t in common)
    assert main(["tile", "--model", str(tiny_run), "--budget", str(budget), "--size", "256x256", "--quant", "none",
                 "--halo", "16", "--step", "32", "--out", str(tmp_path), "--no-measure", "--runtime", "tib"]) == 0
    assert f"tile{tib.tile}h16+tib: predicted" in capsys.readouterr().out


def test_feather_blending_hides_seams_of_a_small_halo(net):
    from memopt.frames.contract import unpack

    m, rf = net
    fr = frames(96, 112, seed=4)
    want = unpack(m(pack(fr)[None]).numpy())
    run = lambda x: m(x).numpy()  # noqa: E731
    cfg = TileConfig(32, 8, rf.alignment)  # halo 8 < radius 19: approximate
    hard = enhance_tiled(run, fr, cfg, progress=False)
    soft = enhance_tiled(run, fr, cfg, progress=False, blend="feather")
    err = lambda f: np.abs(f.y.astype(float) - want.y).mean()  # noqa: E731
    assert err(soft) < err(hard)  # with this little context, blending beats hard cuts
    with pytest.raises(MemoptError, match="unknown blend"):
        enhance_tiled(run, fr, cfg, blend="gauss")


def test_quality_test_of_a_tile_model_runs_tiled(tiny_tflite, tiny_synth, capsys):
    from memopt.cli.commands import main

    args = ["test", "--model", str(tiny_tflite), "--data", str(tiny_synth), "--scenes", "s0000,s0001"]
    assert main(args) == 2  # the default 48 px halo leaves no core in a 32 px tile
    assert "no core" in capsys.readouterr().err
    assert main(args + ["--halo", "8"]) == 0
    out = capsys.readouterr().out
    assert float(out.split("| model |")[1].split("|")[0]) > 5


def test_ingraph_loop_equals_the_host_tile_loop_and_the_full_frame(net, tmp_path, monkeypatch):
    """The tile loop inside one .tflite (uint8 in, int8 out, builtin ops only) at sizes that are not
    multiples of the window nor of the alignment: equal to the full frame's output (+-1 in a byte), and
    its predicted arena holds the frame once (the loop's invariant shares the caller's buffer)."""
    from memopt.convert import ConvertConfig
    from memopt.lite import embed
    from memopt.lite.predict import load_flatbuffer, predict
    from memopt.lite.runner import load_runner, run_frames
    from memopt.lite.runtime import graph_io
    from memopt.variants.ingraph import convert_ingraph

    m, rf = net
    m.save(tmp_path / "u.keras")
    halo = -(-rf.radius // rf.alignment) * rf.alignment
    tile = TileConfig(2 * halo + 2 * rf.alignment, halo, rf.alignment)
    for hw, quant in (((90, 146), "none"), ((2 * tile.tile + 6, tile.tile + 2), "dynamic")):
        out = tmp_path / f"ig-{quant}.tflite"
        info = convert_ingraph(tmp_path / "u.keras", ConvertConfig(tile.tile, tile.tile, quant), out, hw, tile,
                               ev_tenths=(-20, 0, 4))
        assert info["byte_io"] and info["windows"] > 4
        ins, outs = graph_io(out)
        assert [t.dtype for t in ins] == [np.uint8] and [t.dtype for t in outs] == [np.int8]
        assert ins[0].shape == (1, hw[0] // 2, hw[1] // 2, 18) and embed.ingraph(out)["halo"] == halo
        schema, model, _, _ = load_flatbuffer(out)
        ops = {model.OperatorCodes(model.Subgraphs(g).Operators(i).OpcodeIndex()).BuiltinCode()
               for g in range(model.SubgraphsLength()) for i in range(model.Subgraphs(g).OperatorsLength())}
        assert schema.BuiltinOperator.WHILE in ops and schema.BuiltinOperator.CUSTOM not in ops
        fr = frames(*hw, seed=4)
        got = run_frames(load_runner(out), fr, progress=False)
        if quant == "none":
            want = np.clip(np.rint(m(pack(fr)[None]).numpy()[0] * 255), 0, 255)
        else:  # dyn8: the host tile loop of the same dyn8 window model
            from memopt.convert import convert

            convert(tmp_path / "u.keras", ConvertConfig(tile.tile, tile.tile, quant), tmp_path / "w.tflite",
                    ev_tenths=(-20, 0, 4))
            want = pack([enhance_tiled(load_runner(tmp_path / "w.tflite").fn, fr, tile, False)]) * 255
        assert np.abs(pack([got]).astype(np.float32) * 255 - want).max() <= 1.01
    # a loop's peak is read once a run no longer raises it (a WHILE frees its body's arena every run);
    # a window model's after the asked runs
    from memopt.lite.bench import BenchConfig, bench_host

    assert bench_host(out, BenchConfig(runs=1), predict=False)["settle_runs"] >= 3
    assert bench_host(tmp_path / "w.tflite", BenchConfig(runs=1), predict=False)["settle_runs"] == 0
    # the frame (18 uint8 channels at 1/2) is planned once, not again as the loop's output, its
    # condition's and its body's input; the condition's unread copy of the output (6 int8 at 1/2) not at all
    import memopt.lite.predict as P

    hp, wp = (-(-d // tile.align) * tile.align for d in hw)  # the loop reads the frame padded to the grid
    frame_mb, out_mb = hp * wp * 4.5 / 2**20, hp * wp * 1.5 / 2**20
    shared = predict(out).arena_mb
    monkeypatch.setattr(P, "_invariants", lambda s, model: {g: set() for g in range(model.SubgraphsLength())})
    assert abs(P.predict(out).arena_mb - shared - 3 * frame_mb - out_mb) < 0.1 * frame_mb


def test_ingraph_names_need_a_tile_and_a_body_the_loop_can_carry():
    from memopt.variants import parse_variant

    v = parse_variant("tile64h16+ingraph+dyn8")
    assert v.name == "dyn8+tile64h16+ingraph" and v.ingraph and v.file_name == "dyn8+tile64h16+ingraph"
    assert parse_variant("tile64h16+ingraph+int8").name == "int8+tile64h16+ingraph"
    for bad, match in (("ingraph", "add its tile"), ("int16x8+tile64h16+ingraph", "reference kernels"),
                       ("int8+tile64h16+stream+ingraph", "int8 body streams no global"),
                       ("tile64h16+ctx4+ingraph", "streams the exact global values")):
        with pytest.raises(MemoptError, match=match):
            parse_variant(bad)


@pytest.mark.parametrize("io", [{}, {"inputs": ["y@all", "uv@all"], "outputs": ["y", "uv"], "chroma": "vu"},
                                {"inputs": ["y@-20", "u@0", "v@4"], "outputs": ["y"], "range": [-1.0, 1.0]}])
def test_raw_feed_is_the_frames_own_bytes(io):
    """What an in-graph loop with uint8 inputs is fed: the planes' bytes, the float feed's values exactly."""
    from memopt.network.layout import parse_layout

    layout = parse_layout(io, "test")
    fr = frames(16, 24)
    lo, hi = layout.range
    for raw, flt in zip(layout.feed(fr, (-20, 0, 4), raw=True), layout.feed(fr, (-20, 0, 4))):
        assert raw.dtype == np.uint8 and raw.shape == flt.shape
        assert np.array_equal(raw, np.rint((flt - lo) * 255 / (hi - lo)).astype(np.uint8))
