"""The runtime's own memory settings (memopt.lite.runtime): grammar, that they reach LiteRT, the host
bench, the phone command, the predictor and the pick. Memory and time are measured in benchmarks,
not asserted here."""
import json
import subprocess
import sys

import numpy as np
import pytest

from memopt.lite.bench import BenchConfig, bench_host
from memopt.cli.commands import main
from memopt.errors import MemoptError
from memopt.lite.runtime import DEFAULT, LoadedModel, RuntimeConfig
from memopt.variants import parse_variant

from test_device import fake_adb  # noqa: F401  (the fake adb fixture)


@pytest.mark.parametrize("part, tib, wcache, xnn, flags", [
    ("tib", True, False, True, 0x23),          # QS8 | QU8 kept: the flags replace the default 0x3
    ("wcache", False, True, True, None),
    ("tib-wcache", True, True, True, 0x23),
    ("wcache-tib", True, True, True, 0x23),
    ("noxnn", False, False, False, None),
])
def test_runtime_parts_parse_and_round_trip(part, tib, wcache, xnn, flags):
    cfg = RuntimeConfig.parse(part)
    assert (cfg.transient_indirection, cfg.weight_cache, cfg.xnnpack, cfg.xnnpack_flags) == (tib, wcache, xnn, flags)
    assert RuntimeConfig.parse(cfg.name) == cfg


@pytest.mark.parametrize("part, match", [
    ("tib-tib", "repeated"), ("tib-fast", "unknown runtime option 'fast'"), ("tib-noxnn", "combines with no other"),
])
def test_bad_runtime_parts(part, match):
    with pytest.raises(ValueError, match=match):
        RuntimeConfig.parse(part)
    with pytest.raises(MemoptError, match=match):
        parse_variant("int8+" + part)


def test_runtime_config_validates():
    with pytest.raises(ValueError, match="do not combine with noxnn"):
        RuntimeConfig(xnnpack=False, transient_indirection=True)


@pytest.mark.parametrize("name, canonical, file", [
    ("tib", "fp32+tib", "fp32"),
    ("tib+tile256h16+int8", "int8+tile256h16+tib", "int8+tile256h16"),
    ("slim0.5+tib-wcache+int8", "slim0.5+int8+tib-wcache", "slim0.5+int8"),
    ("int8", "int8", "int8"),
])
def test_runtime_part_in_the_variant_grammar(name, canonical, file):
    v = parse_variant(name)
    assert v.name == canonical and v.file_name == file  # one .tflite, with or without the setting
    assert parse_variant(v.name) == v
    assert not v.is_baseline


def test_two_runtime_parts_say_how_to_join():
    with pytest.raises(MemoptError, match="two runtime parts.*tib-wcache"):
        parse_variant("int8+tib+wcache")
    with pytest.raises(MemoptError, match="int16x8.*cannot set tib"):
        parse_variant("int16x8+tib")


def test_weight_cache_that_cannot_be_written_is_an_error(tiny_tflite):
    x = np.zeros((1, 16, 16, 18), np.float32)
    m = LoadedModel(tiny_tflite, 1, RuntimeConfig.parse("wcache"), "/proc/no-such-dir/w.xnnpack_cache")
    with pytest.raises(MemoptError, match="wrote no weight cache"):
        m.run([x])


def test_default_weight_cache_is_named_after_the_model(tiny_tflite, tmp_path, monkeypatch):
    from memopt.lite.runtime import default_cache_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = default_cache_file(tiny_tflite)
    b = default_cache_file(tiny_tflite.with_name("tiny-int8.tflite"))
    assert a.parent == tmp_path / "memopt" / "xnnpack" and a != b  # never beside the model, one per model


def test_settings_reach_the_compiled_model(tiny_tflite, tmp_path, monkeypatch):
    """CpuOptions carries the flags and the cache path; the cache file is written; outputs equal."""
    from ai_edge_litert import compiled_model

    seen = []
    real = compiled_model.CompiledModel.from_file.__func__

    def spy(cls, path, hardware_accel=None, environment=None, options=None):
        seen.append(options.cpu_options)
        return real(cls, path, hardware_accel, environment, options)

    monkeypatch.setattr(compiled_model.CompiledModel, "from_file", classmethod(spy))
    x = np.random.default_rng(0).random((1, 16, 16, 18), dtype=np.float32)
    ref = LoadedModel(tiny_tflite, 1).run([x])[0]
    cache = tmp_path / "w.xnnpack_cache"
    got = LoadedModel(tiny_tflite, 1, RuntimeConfig.parse("tib-wcache"), str(cache)).run([x])[0]
    assert seen[0].xnnpack_flags is None and seen[0].xnnpack_weight_cache_path == ""
    assert seen[1].xnnpack_flags == 0x23 and seen[1].xnnpack_weight_cache_path == str(cache)
    assert seen[1].num_threads == 1
    assert cache.is_file() and cache.stat().st_size > 0  # XNNPACK packed the weights into the file
    np.testing.assert_array_equal(got, ref)
    off = LoadedModel(tiny_tflite, 1, RuntimeConfig(xnnpack=False))  # the Interpreter's built-in kernels
    assert off._interp is not None and len(seen) == 2
    np.testing.assert_allclose(off.run([x])[0], ref, atol=1e-4)


def test_host_bench_reports_its_setting(tiny_tflite):
    row = bench_host(tiny_tflite, BenchConfig(runs=1, runtime=RuntimeConfig.parse("tib-wcache")))
    assert row["runtime"] == "tib-wcache" and row["xnnpack_flags"] == 0x23 and row["xnnpack"] is True
    assert row["peak_mb"] > 0 and row["predicted_peak_mb"] > 0
    off = bench_host(tiny_tflite, BenchConfig(runs=1, runtime=RuntimeConfig(xnnpack=False)))
    assert off["runtime"] == "noxnn" and off["xnnpack"] is False


def test_bench_worker_imports_no_tensorflow(tiny_tflite):
    r = subprocess.run([sys.executable, "-m", "memopt.lite.bench_worker", str(tiny_tflite), "--runs", "1",
                        "--runtime", "tib"], capture_output=True, text=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["tensorflow_imported"] is False and res["api"] == "CompiledModel" and res["xnnpack_flags"] == 0x23


def test_phone_command_carries_the_flags(fake_adb, tiny_tflite):  # noqa: F811
    from memopt.lite.device import bench_device

    row = bench_device(tiny_tflite, fake_adb.profile(), BenchConfig(runs=3, runtime=RuntimeConfig.parse("tib-wcache")))
    runs = [c for c in fake_adb.calls() if "--report_peak_memory_footprint=true" in c]
    assert len(runs) == 2  # the first start writes the weight cache; the second is measured
    cache = "--xnnpack_weight_cache_file_path=/data/local/tmp/memopt/tiny.xnnpack_cache"
    for c in runs:
        assert {"--use_xnnpack=true", "--xnnpack_runtime_flags=32", cache} <= set(c)
    assert "--num_runs=1" in runs[0] and "--num_runs=3" in runs[1]
    assert row["runtime"] == "tib-wcache"
    off = bench_device(tiny_tflite, fake_adb.profile(), BenchConfig(runtime=RuntimeConfig(xnnpack=False)))
    last = [c for c in fake_adb.calls() if "--report_peak_memory_footprint=true" in c][-1]
    assert "--use_xnnpack=false" in last and not any(a.startswith("--xnnpack") for a in last)
    assert off["runtime"] == "noxnn"


def test_profile_missing_key_names_it(tmp_path, capsys, tiny_tflite):
    bad = tmp_path / "p.toml"
    bad.write_text('serial = "SER1"\n')
    assert main(["bench", str(tiny_tflite), "--device", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing key(s) benchmark_model" in err and "devices/example-phone.toml" in err
    assert "__init__" not in err and len(err.strip().splitlines()) == 1


def test_predictor_models_the_transient_buffer(tiny_tflite):
    from memopt.lite.predict import predict

    default, tib = predict(tiny_tflite), predict(tiny_tflite, runtime=RuntimeConfig.parse("tib"))
    assert tib.scratch_mb < default.scratch_mb  # only the largest convolution's buffer is held
    assert tib.arena_mb == default.arena_mb and tib.packed_weights_mb == default.packed_weights_mb
    off = predict(tiny_tflite, runtime=RuntimeConfig(xnnpack=False))
    assert off.packed_weights_mb == 0


def test_enhance_with_a_runtime_setting_equals_default(tiny_tflite, tmp_path, capsys):
    from conftest import smooth_rgb
    from memopt.frames.yuv import read_frame, rgb_to_yuv420, write_yuv

    frames = []
    for k in range(3):
        p = tmp_path / f"ev{(-20, 0, 4)[k]}.yuv"
        write_yuv(p, rgb_to_yuv420(smooth_rgb(48, 64, seed=k)))
        frames.append(str(p))
    outs = {}
    for rt in ("", "tib", "noxnn"):
        o = tmp_path / f"out-{rt or 'default'}.yuv"
        assert main(["enhance", "--model", str(tiny_tflite), *frames, "-o", str(o), "--halo", "8",
                     *(["--runtime", rt] if rt else [])]) == 0
        outs[rt] = read_frame(o)
    assert np.array_equal(outs[""].y, outs["tib"].y)
    assert np.abs(outs[""].y.astype(int) - outs["noxnn"].y).max() <= 1
    assert main(["enhance", "--model", str(tiny_tflite), *frames, "-o", str(tmp_path / "x.yuv"),
                 "--runtime", "fast"]) == 2
    assert "--runtime fast: unknown setting" in capsys.readouterr().err


def test_quiet_terminal(tiny_run, tmp_path):
    """A command prints memopt's lines only; --verbose lets the frameworks speak."""
    cmd = [sys.executable, "-m", "memopt", "convert", "--model", str(tiny_run / "model.keras"), "--size", "32x32",
           "--quant", "int8", "--samples", "1", "-o", str(tmp_path / "q.tflite")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout.startswith("wrote ")
    assert len(r.stdout.strip().splitlines()) == 1
    bad = subprocess.run(cmd[:4] + ["--model", str(tmp_path / "nope.keras"), "--size", "32x32", "-o", "x.tflite"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("memopt: error:")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_default_is_the_plain_runtime():
    assert DEFAULT.name == "" and DEFAULT.xnnpack_flags is None
    assert DEFAULT.benchmark_model_args() == ["--use_xnnpack=true"]


def test_pick_reports_the_best_full_frame_variant(tmp_path):
    """The pick (a tile variant) and, beside it, the best variant that needs no tile loop; the card
    says which runtime settings the app must use."""
    from memopt.study.pick import choose, is_full_frame, model_card

    assert is_full_frame({"tile": float("nan"), "split": None}) and not is_full_frame({"tile": "tile256h16"})

    base = {"device": "host", "status": "ok", "frame_hw": "3024x4032", "ev_tenths": [-20, 0, 4],
            "memory_basis": "model-only", "split": "", "runtime": ""}
    rows = [{**base, "variant": "int8+tile256h16+tib", "tile": "tile256h16", "memory_mb": 120, "psnr_gt": 27.2,
             "memory_basis": "pipeline", "runtime": "tib", "frame_ms": 2000},
            {**base, "variant": "slim0.5+int8+tib", "tile": "", "memory_mb": 650, "psnr_gt": 27.0, "runtime": "tib"},
            {**base, "variant": "slim0.5+int8", "tile": "", "memory_mb": 1400, "psnr_gt": 27.0},
            {**base, "variant": "int8", "tile": "", "memory_mb": 1600, "psnr_gt": 27.1}]
    best, _ = choose(rows, 700, "host")
    full, _ = choose(rows, 700, "host", full_frame=True)
    assert best["variant"] == "int8+tile256h16+tib" and full["variant"] == "slim0.5+int8+tib"
    assert choose(rows, 600, "host", full_frame=True)[0] is None
    io = {"input": {"shape": [1, 128, 128, 18], "dtype": "uint8"}, "output": {"shape": [1, 128, 128, 6], "dtype": "uint8"}}
    card, md = model_card(best, 700, "int8_tile256h16.tflite", io, {"row": full, "file": "slim0.5_int8.tflite"})
    assert card["runtime"]["xnnpack_flags"] == 0x23
    assert "--xnnpack_runtime_flags=32" in card["runtime"]["benchmark_model_args"]
    assert card["full_frame_alternative"]["variant"] == "slim0.5+int8+tib"
    assert "--xnnpack_runtime_flags=32" in md and "cannot set" in md and "Without a tile loop" in md
    plain, md2 = model_card(rows[3], 2000, "int8.tflite", io)
    assert plain["runtime"]["setting"] == "default" and "no tile loop" in md2


def test_the_pick_ranks_by_fidelity_when_the_quality_data_is_in_sample():
    """An in-sample better-ground-truth variant (fine-tuned on the quality scenes) that is less
    faithful to the baseline: picked by ground truth, passed over by fidelity, which the pick uses
    whenever results.md carries an in-sample note."""
    from memopt.study.pick import choose, rank_for
    from memopt.study.report import markdown

    base = {"device": "host", "status": "ok", "split": "", "runtime": "", "tile": "", "memory_basis": "model-only"}
    rows = [{**base, "variant": "fp32", "memory_mb": 2800, "psnr_gt": 27.9, "psnr_vs_baseline": None},
            {**base, "variant": "prune50", "memory_mb": 600, "psnr_gt": 28.6, "psnr_vs_baseline": 31.0, "frame_ms": 900},
            {**base, "variant": "int8+tib", "memory_mb": 650, "psnr_gt": 27.8, "psnr_vs_baseline": 47.7, "frame_ms": 1000},
            {**base, "variant": "int8+tile256h16", "tile": "tile256h16", "memory_mb": 140, "psnr_gt": 27.8,
             "psnr_vs_baseline": "identical", "frame_ms": 6000}]
    assert choose(rows, 700, "host")[0]["variant"] == "prune50"
    assert choose(rows, 700, "host", by="fidelity")[0]["variant"] == "int8+tile256h16"
    assert choose(rows, 700, "host", full_frame=True, by="fidelity")[0]["variant"] == "int8+tib"
    assert rank_for("") == "gt" and rank_for("fine-tuning (prune50) read the quality scenes") == "fidelity"
    md = markdown([{**r, "fits": "yes" if r["memory_mb"] <= 700 else "no"} for r in rows], 700, "t",
                  note="fine-tuning (prune50) read the quality scenes")
    assert "**int8+tib**" in md  # the table's best full-frame line follows the pick's rule
