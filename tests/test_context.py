"""Global context for tiles of a network with global reductions (memopt.lite.context, memopt.network.context)."""
import networks
import numpy as np
import pytest

from memopt.errors import MemoptError

EVS = (-20, 0, 4)


def _frames(h, w, seed=1):
    from memopt.frames.yuv import YUV420

    rng = np.random.default_rng(seed)
    # smooth content with a bright corner: windows see different means than the frame does
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for ev in EVS:
        base = 60 + 0.4 * xx + 0.3 * yy + 6 * ev / 10 + rng.normal(0, 8, (h, w))
        base[: h // 3, : w // 3] += 90
        y = np.clip(base, 0, 255).astype(np.uint8)
        c = np.clip(rng.normal(128, 20, (h // 2, w // 2)), 0, 255).astype(np.uint8)
        out.append(YUV420(y, c, np.flipud(c).copy()))
    return out


def _tiled(fn, layout, frames, cfg):
    from memopt.lite.tiling import run_tiled

    h, w = frames[0].height, frames[0].width
    out = np.full((h // 2, w // 2, 6), np.nan, np.float32)

    def sink(core, y, x):
        out[y // 2:y // 2 + core.shape[0], x // 2:x // 2 + core.shape[1]] = core

    run_tiled(fn, frames, cfg, sink, layout=layout, evs=EVS)
    return out


@pytest.fixture(scope="module")
def net():
    from memopt.network.context import local_probe, split_for
    from memopt.network.layout import parse_layout
    from memopt.lite.runner import Runner, keras_runner

    from memopt.tfenv import keras

    keras.utils.set_random_seed(3)  # the same weights every run
    model, io = networks.two_se_global()
    layout = parse_layout(io, "test")
    split = split_for(model, layout, EVS, (64, 64))
    pr = local_probe(split, layout, EVS, 128)

    def window_fn(xs):
        return [np.asarray(o) for o in split.model(xs, training=False)]

    def runner(hw):
        return Runner(window_fn, 3, "keras", hw, None, layout, EVS, pr.alignment, tuple(split.values))

    return model, layout, split, pr, runner, keras_runner(model, layout, EVS)


def test_the_split_finds_every_reduction_and_its_level(net):
    _, _, split, pr, _, _ = net
    got = {v.layer: (v.reduce, v.level, v.scale, v.shape) for v in split.values}
    assert got["se1_pool"] == ("mean", 0, 2, (1, 1, 1, 8))
    assert got["se2_pool"] == ("mean", 1, 4, (1, 1, 1, 8))      # needs se1's value first
    # Keras numbers auto-named layers per process: tf.math.reduce_mean, or _<n> after other tests
    assert next(v for k, v in got.items() if k.startswith("tf.math.reduce_mean")) == ("mean", 0, 1, (1, 1, 1, 1))
    assert split.passes == 2 and pr.radius < 64 and pr.alignment == 8


def test_exact_streaming_equals_the_full_frame_and_plain_tiles_do_not(net):
    """At a size that is not a multiple of the window, streaming the global values over the window
    cores gives the full-frame output (float); low-resolution context is close; plain tiles are not."""
    from memopt.lite.context import ContextConfig, bind, global_values
    from memopt.study.evaluate import psnr
    from memopt.lite.tiling import TileConfig

    model, layout, split, pr, runner, full_runner = net
    frames = _frames(136, 200)
    full = full_runner.enhance(frames)
    cfg = TileConfig(64, pr.halo, pr.alignment)
    truth = split.global_values(layout.feed(frames, EVS))
    r = runner((64, 64))

    values = global_values(r, frames, ContextConfig("stream"), cfg.halo, cfg.align, EVS)
    assert max(float(np.abs(a - b).max()) for a, b in zip(values, truth)) < 1e-5
    stream = _tiled(bind(r, values).fn, layout, frames, cfg)
    err = float(np.abs(stream - full).max())
    assert err <= 1e-4

    low = _tiled(bind(r, global_values(r, frames, ContextConfig("lowres", 2), cfg.halo, cfg.align, EVS)).fn,
                 layout, frames, cfg)
    plain = _tiled(full_runner.fn, layout, frames, cfg)   # each window its own global values
    p_low, p_plain = psnr(low, full, 1.0), psnr(plain, full, 1.0)
    assert p_low > 40 and p_low > p_plain + 3, (p_low, p_plain)
    gap = float(np.abs(plain - full).max())                 # the gap plain tiling leaves
    assert gap > 1e-4 and gap > 100 * err, (gap, err)


def test_context_parts_parse_and_refuse_what_cannot_work():
    from memopt.variants import parse_variant

    v = parse_variant("stream+int8+tile256h32")
    assert v.name == "int8+tile256h32+stream" and v.context.mode == "stream" and v.file_name == "int8+tile256h32+gctx"
    assert parse_variant("tile256h32+ctx4").file_name == parse_variant("tile256h32+stream").file_name
    assert parse_variant("poly2+ctx2").context.factor == 2
    for bad, why in (("int8+stream", "add a tile"), ("poly2+stream", "ctx<f>"), ("tile256h32-approx+ctx4", "drop it"),
                     ("tile256h32+ctx1", "2..64"), ("tile256h32+ctxx", "ctx<f>"), ("guided2+ctx2", "guided")):
        with pytest.raises(MemoptError, match=why.replace("<", ".").replace(">", ".")):
            parse_variant(bad)


def test_networks_without_splittable_globals_say_why():
    from memopt.network.context import split_for
    from memopt.network.layout import PACKED
    from memopt.tfenv import keras

    L = keras.layers
    x = keras.Input((8, 8, 18))
    flat = L.Dense(6)(L.Flatten()(L.Conv2D(4, 3, padding="same")(x)))
    m = keras.Model(x, L.Reshape((1, 1, 6))(flat))
    with pytest.raises(MemoptError, match="not a reduction memopt can split"):
        split_for(m, PACKED, EVS, (16, 16), "flat.keras")
    local = keras.Model(x, L.Conv2D(6, 3, padding="same")(x))
    with pytest.raises(MemoptError, match="no global reduction"):
        split_for(local, PACKED, EVS, (16, 16))


def test_a_window_tflite_carries_its_values_and_enhance_asks_how(net, tmp_path):
    """The converted window model names its global values in its metadata; `memopt enhance` streams
    them (or takes ctx<f>), refuses a bad --context in one line, and a plain model refuses any."""
    from memopt.convert import ConvertConfig, convert
    from memopt.lite.enhance import enhance_files
    from memopt.network.source import NetworkSource
    from memopt.lite.runner import load_runner
    from memopt.frames.yuv import read_frame, write_yuv

    model, layout, split, pr, _, full_runner = net
    model.save(tmp_path / "se.keras")
    src = NetworkSource(model=str(tmp_path / "se.keras"), io=layout)
    info = {"local_radius": pr.radius, "local_alignment": pr.alignment}
    convert(src, ConvertConfig(64, 64), tmp_path / "w.tflite", (), EVS, network=info, context=True)
    convert(src, ConvertConfig(144, 208), tmp_path / "full.tflite", (), EVS)
    r = load_runner(tmp_path / "w.tflite")
    assert [v.layer for v in r.context] == [v.layer for v in split.values] and r.alignment == pr.alignment
    frames = _frames(144, 208)
    paths = []
    for ev, f in zip(EVS, frames):
        paths.append(tmp_path / f"ev{ev}.yuv")
        write_yuv(paths[-1], f)
    halo = pr.halo
    enhance_files(str(tmp_path / "full.tflite"), paths, tmp_path / "full.yuv", 208, 144)
    enhance_files(str(tmp_path / "w.tflite"), paths, tmp_path / "s.yuv", 208, 144, halo=halo, context="stream")
    full, got = (read_frame(tmp_path / n, width=208, height=144) for n in ("full.yuv", "s.yuv"))
    assert np.abs(full.y.astype(int) - got.y).max() <= 1 and np.abs(full.u.astype(int) - got.u).max() <= 1
    enhance_files(str(tmp_path / "w.tflite"), paths, tmp_path / "c.yuv", 208, 144, halo=halo, context="ctx2")
    with pytest.raises(MemoptError, match="--context foo"):
        enhance_files(str(tmp_path / "w.tflite"), paths, tmp_path / "x.yuv", 208, 144, halo=halo, context="foo")
    with pytest.raises(MemoptError, match="takes no global values"):
        enhance_files(str(tmp_path / "full.tflite"), paths, tmp_path / "x.yuv", 208, 144, context="stream")


def _branchy(shared_pool: bool):
    """Packed frames; the output path is one 3x3 conv, scaled by a gate computed from a branch of three
    stride-2 convolutions (1/16 of the frame, a wide field) that only feeds a global pooling; with
    ``shared_pool`` one GlobalAveragePooling2D layer object serves two gates in sequence."""
    from memopt.tfenv import keras

    keras.utils.set_random_seed(5)
    L = keras.layers
    x = keras.Input((None, None, 18))
    h = L.Conv2D(6, 3, padding="same", name="main")(x)
    b = x
    for i in range(3):
        b = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name=f"branch{i}")(b)
    pool = L.GlobalAveragePooling2D(keepdims=True, name="pool")
    gate = L.Dense(6, activation="sigmoid", name="gate")(pool(b))
    h = L.Multiply()([h, gate])
    if shared_pool:
        gate2 = L.Dense(6, activation="sigmoid", name="gate2")(pool(h))   # needs the first value
        h = L.Multiply()([h, gate2])
    return keras.Model(x, h)


def test_the_halo_and_grid_cover_branches_that_only_feed_a_reduction():
    from memopt.lite.context import ContextConfig, global_values
    from memopt.network.context import local_probe, split_for
    from memopt.network.layout import PACKED
    from memopt.lite.runner import Runner

    model = _branchy(False)
    split = split_for(model, PACKED, EVS, (64, 64))
    pr = local_probe(split, PACKED, EVS, 128)
    assert split.values[0].scale == 16 and pr.alignment == 16 and pr.radius > 8  # the branch's, not main's 2 px
    frames = _frames(192, 256)
    truth = split.global_values(PACKED.feed(frames, EVS))

    def fn(xs):
        return [np.asarray(o) for o in split.model(xs, training=False)]

    r = Runner(fn, 3, "keras", (64, 64), None, PACKED, EVS, pr.alignment, tuple(split.values))
    halo = -(-pr.radius // 16) * 16
    got = global_values(Runner(fn, 3, "keras", (halo * 2 + 32, halo * 2 + 32), None, PACKED, EVS, 16,
                               tuple(split.values)), frames, ContextConfig("stream"), halo, 16, EVS)
    assert float(np.abs(got[0] - truth[0]).max()) < 1e-5
    with pytest.raises(MemoptError, match="multiples of 16"):
        global_values(r, frames, ContextConfig("stream"), 8, 8, EVS)


def test_one_pooling_layer_used_twice_gives_two_values_in_two_levels():
    from memopt.network.context import split_for
    from memopt.network.layout import PACKED

    split = split_for(_branchy(True), PACKED, EVS, (64, 64))
    assert [(v.layer, v.level) for v in split.values] == [("pool#0", 0), ("pool#1", 1)] and split.passes == 2
