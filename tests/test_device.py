"""Phones through adb, against a fake `adb` that records its commands and replays
benchmark_model output written from the format strings in benchmark_model.cc."""
import json
import os
import stat
import sys

import pytest

from memopt.lite.bench import ROW_COLUMNS, BenchConfig
from memopt.cli.commands import main
from memopt.lite.device import PhoneProfile, bench_device, bench_devices, load_profile, parse_benchmark_output
from memopt.errors import MemoptError

NEW_OUTPUT = """INFO: STARTING!
INFO: Num threads: [4]
INFO: Loaded model /data/local/tmp/memopt/tiny.tflite
INFO: The input model file size (MB): 0.0431
INFO: Initialized session in 12.5ms.
INFO: count=50 first=2881 curr=2703 min=2605 max=20356 avg=2942.27 std=1190
INFO: Inference timings in us: Init: 12503, First inference: 2.04176e+06, Warmup (avg): 3243.58, Inference (avg): 2942.27
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=39.4531 overall=40.8281
INFO: Overall peak memory footprint (MB) via periodic monitoring: 47.6211
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 45 MB
"""

OLD_OUTPUT = """count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442
Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586, Inference (avg): 249684
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=4.92969 overall=138.809
"""

FAKE_ADB = r'''#!{python}
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as fh:
    fh.write(json.dumps(args) + "\n")
states = json.loads(os.environ.get("FAKE_ADB_STATES", "{{}}"))
if args == ["devices"]:
    print("List of devices attached")
    for serial, state in states.items():
        print(f"{{serial}}\t{{state}}")
    sys.exit(0)
serial = args[1]
if states.get(serial) != "device":
    print(f"adb: device '{{serial}}' not found", file=sys.stderr)
    sys.exit(1)
if "shell" in args and any("benchmark_model" in a for a in args) and not args[-1].startswith("755"):
    if any(a == "chmod" for a in args):
        sys.exit(0)
    if os.environ.get("FAKE_ADB_SLEEP"):
        time.sleep(float(os.environ["FAKE_ADB_SLEEP"]))
    sys.stdout.write(open(os.environ["FAKE_ADB_OUTPUT"]).read())
sys.exit(0)
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "adb.log"
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    out = tmp_path / "bm.txt"
    out.write_text(NEW_OUTPUT)
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(out))
    monkeypatch.setenv("FAKE_ADB_STATES", json.dumps({"SER1": "device", "SER2": "device", "SER3": "unauthorized"}))
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")

    class Fake:
        def calls(self):
            return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

        def profile(self, serial="SER1", **kw):
            return PhoneProfile(name=f"phone-{serial}", serial=serial, benchmark_model=str(binary),
                                threads=4, affinity="f0", **kw)

        output = out
    return Fake()


def test_parse_current_format():
    r = parse_benchmark_output(NEW_OUTPUT)
    assert r["init_us"] == 12503 and r["first_inference_us"] == 2.04176e6
    assert r["warmup_avg_us"] == 3243.58 and r["inference_avg_us"] == 2942.27
    assert (r["mem_init_delta_mb"], r["mem_overall_delta_mb"], r["peak_mb"]) == (39.4531, 40.8281, 47.6211)


def test_parse_older_format():
    r = parse_benchmark_output(OLD_OUTPUT)
    assert r["inference_avg_us"] == 249684
    assert (r["mem_init_delta_mb"], r["mem_overall_delta_mb"], r["peak_mb"]) == (4.92969, 138.809, None)


def test_parse_failure_is_clear():
    with pytest.raises(MemoptError, match="no 'Inference timings' line.*Segmentation fault"):
        parse_benchmark_output("INFO: STARTING!\nSegmentation fault\n")


def test_full_device_run(fake_adb, tiny_tflite):
    row = bench_device(tiny_tflite, fake_adb.profile(), BenchConfig(runs=7, warmup=2))
    assert set(ROW_COLUMNS) <= set(row)
    assert row["device"] == "phone-SER1 (SER1)" and row["threads"] == 4
    assert row["inference_avg_us"] == 2942.27 and row["peak_mb"] == 47.6211
    assert row["predicted_peak_mb"] > 0 and row["prediction_error_pct"] is not None
    calls = fake_adb.calls()
    assert calls[0] == ["devices"]
    assert ["-s", "SER1", "push", str(tiny_tflite), "/data/local/tmp/memopt/tiny.tflite"] in calls
    run = next(c for c in calls if "--report_peak_memory_footprint=true" in c)
    assert run[:5] == ["-s", "SER1", "shell", "taskset", "f0"]
    assert {"--num_threads=4", "--num_runs=7", "--warmup_runs=2", "--use_xnnpack=true",
            "--graph=/data/local/tmp/memopt/tiny.tflite"} <= set(run)
    assert calls[-1] == ["-s", "SER1", "shell", "rm", "-rf", "/data/local/tmp/memopt"]  # cleaned up


def test_older_binary_output_gives_the_same_columns(fake_adb, tiny_tflite):
    fake_adb.output.write_text(OLD_OUTPUT)
    row = bench_device(tiny_tflite, fake_adb.profile())
    assert row["mem_overall_delta_mb"] == 138.809 and row["peak_mb"] is None


def test_no_adb_on_path(fake_adb, tiny_tflite, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MemoptError, match="adb not found on PATH.*apt-get install adb"):
        bench_device(tiny_tflite, fake_adb.profile())


def test_phone_not_connected(fake_adb, tiny_tflite):
    with pytest.raises(MemoptError, match="SER9 not connected.*lists: SER1, SER2, SER3"):
        bench_device(tiny_tflite, fake_adb.profile("SER9"))


def test_unauthorized_phone(fake_adb, tiny_tflite):
    with pytest.raises(MemoptError, match="unauthorized.*accept the USB debugging prompt"):
        bench_device(tiny_tflite, fake_adb.profile("SER3"))


def test_missing_benchmark_binary(fake_adb, tiny_tflite, tmp_path):
    prof = PhoneProfile(name="p", serial="SER1", benchmark_model=str(tmp_path / "nope"))
    with pytest.raises(MemoptError, match="benchmark_model not found at"):
        bench_device(tiny_tflite, prof)


def test_run_that_times_out_is_reported_and_cleaned_up(fake_adb, tiny_tflite, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_SLEEP", "5")
    with pytest.raises(MemoptError, match="timed out after 1 s"):
        bench_device(tiny_tflite, fake_adb.profile(timeout_s=1.0))
    assert fake_adb.calls()[-1][-3:] == ["rm", "-rf", "/data/local/tmp/memopt"]


def test_several_phones_in_parallel(fake_adb, tiny_tflite):
    rows = bench_devices(tiny_tflite, [fake_adb.profile("SER1"), fake_adb.profile("SER2"), fake_adb.profile("SER3")])
    assert [r["device"] for r in rows] == ["phone-SER1 (SER1)", "phone-SER2 (SER2)", "phone-SER3 (SER3)"]
    assert rows[0]["peak_mb"] == rows[1]["peak_mb"] == 47.6211
    assert "unauthorized" in rows[2]["error"]
    serials = {c[1] for c in fake_adb.calls() if c[0] == "-s"}
    assert serials == {"SER1", "SER2"}


def test_profile_file_and_cli(fake_adb, tiny_tflite, tmp_path, capsys):
    prof = tmp_path / "pixel.toml"
    prof.write_text('serial = "SER1"\nbenchmark_model = "benchmark_model"\nthreads = 3\n')
    p = load_profile(prof)
    assert p.name == "pixel" and p.benchmark_model == str(tmp_path / "benchmark_model")
    assert main(["bench", str(tiny_tflite), "--device", str(prof), "--json", str(tmp_path / "rows.json")]) == 0
    assert "Overall peak memory footprint (MB) via periodic monitoring: 47.6211" in capsys.readouterr().out
    assert json.loads((tmp_path / "rows.json").read_text())[0]["threads"] == 3
    bad = tmp_path / "bad.toml"
    bad.write_text('serial = "SER1"\nbenchmark_model = "x"\naffinity = "big"\n')
    assert main(["bench", str(tiny_tflite), "--device", str(bad)]) == 2
    assert "hex CPU mask" in capsys.readouterr().err


def test_run_recipe_on_host_and_phones(fake_adb, tiny_run, tiny_synth, tmp_path, capsys):
    """A recipe with the host and two phones: phone rows share the columns; a phone that fails
    gives a failed row for that phone only."""
    import pandas as pd

    from test_experiment import write_recipe

    (tmp_path / "pixel.toml").write_text('serial = "SER1"\nbenchmark_model = "benchmark_model"\nthreads = 4\n')
    (tmp_path / "locked.toml").write_text('serial = "SER3"\nbenchmark_model = "benchmark_model"\n')
    devices = json.dumps(["host", str(tmp_path / "pixel.toml"), str(tmp_path / "locked.toml")])
    recipe = write_recipe(tmp_path / "r.toml", tiny_run / "model.keras", ["int8+tile32h8"], tiny_synth)
    recipe.write_text(recipe.read_text().replace("[deploy]\n", f"[deploy]\ndevices = {devices}\n"))
    assert main(["run", str(recipe), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(zip(df.variant, df.device)) == sorted(
        (v, d) for v in ("fp32", "int8+tile32h8") for d in ("host", "pixel", "locked"))
    phone = df[(df.device == "pixel") & (df.variant == "int8+tile32h8")].iloc[0]
    assert phone.status == "ok" and phone.model_peak_mb == pytest.approx(47.6211)  # benchmark_model's figure
    assert phone.memory_basis == "model-only" and phone.threads == 4
    assert phone.frame_ms == round(2.94227 * phone.runs_per_frame)  # model time x windows per frame
    assert phone.psnr_gt == df[(df.device == "host") & (df.variant == "int8+tile32h8")].psnr_gt.item()
    locked = df[df.device == "locked"]
    assert (locked.status == "failed").all() and locked.reason.str.contains("unauthorized").all()
    assert main(["pick", str(tmp_path / "out"), "--device", str(tmp_path / "pixel.toml")]) == 0
    assert "on pixel" in capsys.readouterr().out
