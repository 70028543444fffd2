"""Benchmark on Android phones through adb, with TFLite's own benchmark_model.

A phone profile (``devices/<name>.toml``) names the phone and how to run on it; ``bench_device``
pushes benchmark_model and the model to the phone, runs it with the same threads/runs as the
host benchmark and ``--report_peak_memory_footprint=true``, parses its output into a row with
the host row's columns (memopt.lite.bench.ROW_COLUMNS), and removes what it pushed. Several phones run
in parallel, one process per serial. Every adb call has a timeout.

Users get adb from their distribution (Debian/Ubuntu: ``apt-get install adb``) and the
benchmark_model binary for the phone's ABI from TFLite's prebuilt nightlies
(``android_aarch64_benchmark_model``) or ``bazel build -c opt --config=android_arm64
//tensorflow/lite/tools/benchmark:benchmark_model``.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from memopt.errors import MemoptError
from memopt.lite.bench import ROW_COLUMNS, BenchConfig, add_prediction


@dataclass(frozen=True)
class PhoneProfile:
    """One phone: adb serial, ABI, threads, core affinity and where its benchmark_model is here."""

    name: str
    serial: str
    benchmark_model: str             # path on this machine to benchmark_model for the phone's ABI
    abi: str = "arm64-v8a"
    threads: int = 4
    affinity: str | None = None      # hex CPU mask for taskset, e.g. "f0" for the big cores
    remote_dir: str = "/data/local/tmp/memopt"
    timeout_s: float = 900.0         # the benchmark run itself; other adb calls get adb_timeout_s
    adb_timeout_s: float = 60.0

    def __post_init__(self):
        if not self.serial:
            raise ValueError("serial is empty; `adb devices` lists the serials")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.affinity is not None and not re.fullmatch(r"[0-9a-fA-F]+", self.affinity):
            raise ValueError(f"affinity must be a hex CPU mask such as f0, got {self.affinity!r}")
        if not self.remote_dir.startswith("/data/local/tmp"):
            raise ValueError("remote_dir must be under /data/local/tmp (the shell user's writable place)")
        if self.timeout_s <= 0 or self.adb_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


EXAMPLE_PROFILE = ('a profile needs at least serial = "0123456789ABCDEF" (from `adb devices`) and '
                   'benchmark_model = "bin/arm64-v8a/benchmark_model" (the binary on this machine)')


def load_profile(path) -> PhoneProfile:
    from memopt.config import from_dict, read_toml

    p = Path(path)
    raw = read_toml(p, "phone profile (see devices/README.md)")
    raw.setdefault("name", p.stem)
    try:
        prof = from_dict(PhoneProfile, raw, str(p))
    except MemoptError as e:
        raise MemoptError(f"{e}; {EXAMPLE_PROFILE}; copy devices/example-phone.toml") from None
    bm = Path(prof.benchmark_model)
    if not bm.is_absolute():  # relative to the profile's folder
        prof = dataclasses.replace(prof, benchmark_model=str((p.parent / bm).resolve()))
    return prof


# --- parsing benchmark_model's output ------------------------------------------------------------

_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_TIMINGS = re.compile(rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, "
                      rf"Warmup \(avg\): {_NUM}, Inference \(avg\): {_NUM}")
_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\): init={_NUM} overall={_NUM}")
_OLD_PEAK = re.compile(rf"Peak memory footprint \(MB\): init={_NUM} overall={_NUM}")
_MONITOR = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUM}")


def parse_benchmark_output(text: str) -> dict:
    """Figures from benchmark_model's log (tensorflow/lite/tools/benchmark/benchmark_model.cc).

    The lines it prints, as its source writes them::

        "Inference timings in us: " << "Init: " << init_us << ", " << "First inference: "
            << warmup_us.first() << ", " << "Warmup (avg): " << warmup_us.avg() << ", "
            << "Inference (avg): " << inference_us.avg()
        "Memory footprint delta from the start of the tool (MB): " << "init="
            << init_mem_usage.mem_footprint_kb / 1024.0 << " overall="
            << overall_mem_usage.mem_footprint_kb / 1024.0
        "Overall peak memory footprint (MB) via periodic monitoring: " << peak_mem_mb

    and, in releases before the delta wording (TF <= 2.12 or so)::

        "Peak memory footprint (MB): init=" << init_mem_usage.max_rss_kb / 1024.0
            << " overall=" << overall_mem_usage.max_rss_kb / 1024.0

    Numbers come from C++ streams, so they may read ``1.04176e+06``. Lines may carry a logcat or
    ``INFO:`` prefix. Missing figures are None; no timing line at all is an error.
    """
    out = dict.fromkeys(("init_us", "first_inference_us", "warmup_avg_us", "inference_avg_us",
                         "mem_init_delta_mb", "mem_overall_delta_mb", "peak_mb"))
    m = _TIMINGS.search(text)
    if not m:
        tail = " | ".join(text.strip().splitlines()[-2:])[:300]
        raise MemoptError(f"benchmark_model printed no 'Inference timings' line; its output ended: {tail}")
    out.update(zip(("init_us", "first_inference_us", "warmup_avg_us", "inference_avg_us"),
                   (float(g) for g in m.groups())))
    m = _DELTA.search(text) or _OLD_PEAK.search(text)
    if m:
        out["mem_init_delta_mb"], out["mem_overall_delta_mb"] = (float(g) for g in m.groups())
    m = _MONITOR.search(text)
    if m:
        out["peak_mb"] = float(m.group(1))
    return out


# --- adb -------------------------------------------------------------------------------------------

def _adb(prof: PhoneProfile, *args: str, timeout: float | None = None) -> str:
    cmd = ["adb", "-s", prof.serial, *args]
    t = timeout or prof.adb_timeout_s
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=t)
    except subprocess.TimeoutExpired:
        raise MemoptError(f"{prof.name}: `adb {' '.join(args)[:80]}` timed out after {t:.0f} s "
                          "(phone asleep or the run too long? raise timeout_s in the profile)") from None
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        raise MemoptError(f"{prof.name}: `adb {' '.join(args)[:80]}` failed: {(msg or ['exit ' + str(r.returncode)])[-1][:200]}")
    return r.stdout


def check_phone(prof: PhoneProfile) -> None:
    """adb on PATH, the phone connected and authorized, the benchmark binary present here."""
    if shutil.which("adb") is None:
        raise MemoptError("adb not found on PATH; install it (Debian/Ubuntu: apt-get install adb)")
    if not Path(prof.benchmark_model).is_file():
        raise MemoptError(f"{prof.name}: benchmark_model not found at {prof.benchmark_model}; download "
                          f"TFLite's prebuilt benchmark_model for {prof.abi} and set benchmark_model in the profile")
    try:
        r = subprocess.run(["adb", "devices"], capture_output=True, text=True, timeout=prof.adb_timeout_s)
    except subprocess.TimeoutExpired:
        raise MemoptError(f"`adb devices` timed out after {prof.adb_timeout_s:.0f} s; try `adb kill-server`") from None
    states = dict(ln.split()[:2] for ln in r.stdout.splitlines()[1:] if len(ln.split()) >= 2)
    state = states.get(prof.serial)
    if state is None:
        listed = ", ".join(states) or "none"
        raise MemoptError(f"{prof.name}: phone {prof.serial} not connected (adb devices lists: {listed})")
    if state == "unauthorized":
        raise MemoptError(f"{prof.name}: phone {prof.serial} is unauthorized; unlock it and accept the "
                          "USB debugging prompt")
    if state != "device":
        raise MemoptError(f"{prof.name}: phone {prof.serial} is '{state}', not ready")


def bench_device(model, prof: PhoneProfile, cfg: BenchConfig = BenchConfig(), predict: bool = True) -> dict:
    """Run benchmark_model for ``model`` on one phone; returns a row with the host row's columns."""
    from memopt.lite.embed import check_file

    p = Path(model)
    check_file(p)
    check_phone(prof)
    rdir = prof.remote_dir
    rbin, rmodel = f"{rdir}/benchmark_model", f"{rdir}/{p.name}"
    threads = cfg.threads or prof.threads
    try:
        _adb(prof, "shell", "mkdir", "-p", rdir)
        _adb(prof, "push", prof.benchmark_model, rbin)
        _adb(prof, "shell", "chmod", "755", rbin)
        _adb(prof, "push", str(p), rmodel)
        rt = cfg.runtime
        cache = f"{rdir}/{p.stem}.xnnpack_cache" if rt.weight_cache else None

        def cmd(runs: int) -> list[str]:
            return ([] if prof.affinity is None else ["taskset", prof.affinity]) + [
                rbin, f"--graph={rmodel}", f"--num_threads={threads}", f"--num_runs={runs}",
                f"--warmup_runs={cfg.warmup}", *rt.benchmark_model_args(cache),
                "--report_peak_memory_footprint=true"]

        if cache:  # the app's first start writes the cache; measure a later start, which maps it
            _adb(prof, "shell", *cmd(1), timeout=prof.timeout_s)
        text = _adb(prof, "shell", *cmd(cfg.runs), timeout=prof.timeout_s)
    finally:
        try:
            _adb(prof, "shell", "rm", "-rf", rdir)
        except MemoptError:
            pass  # the phone went away; nothing more to clean here
    row = dict.fromkeys(ROW_COLUMNS)
    row.update(parse_benchmark_output(text))
    row.update(model=str(p), device=f"{prof.name} ({prof.serial})", threads=threads,
               xnnpack=cfg.xnnpack, runtime=cfg.runtime.name, xnnpack_flags=cfg.runtime.xnnpack_flags,
               runs=cfg.runs, warmup=cfg.warmup,
               file_mb=round(p.stat().st_size / 1e6, 3))
    if predict:
        add_prediction(row, p, cfg)
    return row


def _one(args):
    model, prof, cfg = args
    try:
        return bench_device(model, prof, cfg)
    except MemoptError as e:
        row = dict.fromkeys(ROW_COLUMNS)
        row.update(model=str(model), device=f"{prof.name} ({prof.serial})", error=str(e))
        return row


def bench_devices(model, profiles, cfg: BenchConfig = BenchConfig()) -> list[dict]:
    """Benchmark on several phones in parallel (one process per serial); failed phones give a row
    with an ``error`` field instead of stopping the others."""
    serials = [p.serial for p in profiles]
    if len(set(serials)) != len(serials):
        raise MemoptError("two profiles name the same serial; one process per phone")
    if len(profiles) == 1:
        return [_one((model, profiles[0], cfg))]
    with ProcessPoolExecutor(max_workers=len(profiles)) as pool:
        return list(pool.map(_one, [(model, p, cfg) for p in profiles]))
