"""Does rounding a slimmed layer's width to a multiple of 4 or 8 pay on XNNPACK?

Measures latency and peak memory of a small fully-convolutional stack shaped like our U-Net's
levels (input [1, S, S, 18]; Conv3x3 C, ReLU, Conv3x3 C, ReLU, Conv3x3 C; Conv1x1 to 6) for each
width C, as float32 and as full-int8 .tflite, on the host through memopt.lite.bench.bench_host (a fresh
runtime-only process per measurement), with XNNPACK's default flags and with ``tib``.
Each model is measured ``--repeats`` times (fresh processes, interleaved over the models);
the figure is the median of those processes' per-run averages.

Run from the repository root:
    TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/channel_rounding.py [--size 512] [--runs 8] [--repeats 5]
Models go to a scratch folder under /tmp; results/channel-rounding/{table.md,rows.csv}.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
from importlib.metadata import version
from pathlib import Path

from memopt.lite.bench import BenchConfig, bench_host
from memopt.lite.runtime import RuntimeConfig

OUT = Path("results/channel-rounding")


def build(keras, c: int, size: int):
    x = inp = keras.Input((size, size, 18), batch_size=1)
    for i in range(3):  # the converter fuses each ReLU into its conv, as in the U-Net
        x = keras.layers.Conv2D(c, 3, padding="same", activation="relu" if i < 2 else None)(x)
    return keras.Model(inp, keras.layers.Conv2D(6, 1)(x))


def convert(tf, model, quant: str, size: int) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":  # full int8, int8 I/O: every op on XNNPACK's qs8 kernels
        rng = tf.random.Generator.from_seed(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.uniform((1, size, size, 18))] for _ in range(4))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600
    os.replace(tmp, path)


def conclusions(rows: list[dict]) -> list[str]:
    """Rounding a multiple of m/2 up to the next multiple of m (m = 4, 8, 16): the extra time as a
    fraction of the extra channels' proportional share (0: the added channels are free)."""
    ms = {(r["quant"], r["runtime"], r["C"]): r["ms"] for r in rows}
    out = []
    for (q, rt) in dict.fromkeys((r["quant"], r["runtime"]) for r in rows):
        cs = sorted(c for (q2, rt2, c) in ms if (q2, rt2) == (q, rt))
        steps = sorted(zip(cs, cs[1:]), key=lambda p: ms[q, rt, p[0]] / ms[q, rt, p[1]] * p[1] / p[0])[:2]
        out.append(f"- {q} {rt or 'default'}, steepest steps between neighbouring widths: " + ", ".join(
            f"{a}->{b} +{100 * (ms[q, rt, b] / ms[q, rt, a] - 1):.0f}% time for +{100 * (b / a - 1):.0f}% "
            "channels" for a, b in steps))
        for m in (4, 8, 16):
            pairs = sorted((c, -(-c // m) * m) for (q2, rt2, c) in ms
                           if (q2, rt2) == (q, rt) and c % m and c % (m // 2) == 0)
            pairs = [(c, u) for c, u in pairs if (q, rt, u) in ms]
            if not pairs:
                continue
            f = statistics.median((ms[q, rt, u] / ms[q, rt, c] - 1) / (u / c - 1) for c, u in pairs)
            verdict = ("faster outright: round up" if f < 0 else "nearly free: round up" if f < 0.5
                       else "costs about its share or more: no gain")
            out.append(f"- {q} {rt or 'default'}, multiple of {m // 2} -> {m} "
                       f"({', '.join(f'{c}->{u}' for c, u in pairs)}): adds {f:.2f}x the "
                       f"channel-proportional time ({verdict})")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="12,14,16,20,24,26,28,30,32,34,36,40,48")
    p.add_argument("--size", type=int, default=512, help="H = W of the packed input")
    p.add_argument("--quants", default="fp32,int8")
    p.add_argument("--runtimes", default="default,tib")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per model")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--keep", action="store_true", help="keep the scratch .tflite files")
    a = p.parse_args()
    from memopt.tfenv import keras, tf

    widths = [int(w) for w in a.widths.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="memopt-chround-"))
    models = {}
    for c in widths:
        for q in a.quants.split(","):
            path = scratch / f"stack-c{c}-{q}-{a.size}.tflite"
            path.write_bytes(convert(tf, build(keras, c, a.size), q, a.size))
            models[c, q] = path
    print(f"{len(models)} models in {scratch}", flush=True)

    meas = {}  # interleave repeats over all models so that host drift spreads evenly
    for rep in range(a.repeats):
        for (c, q), path in models.items():
            for rt in a.runtimes.split(","):
                r = bench_host(path, BenchConfig(threads=1, runs=a.runs, warmup=1,
                                                 runtime=RuntimeConfig.from_name(rt)), predict=False)
                meas.setdefault((c, q, r["runtime"]), []).append(r)
                print(f"rep {rep} C={c} {q} {rt}: {r['inference_avg_us'] / 1e3:.1f} ms, "
                      f"{r['peak_mb']} MB", flush=True)

    rows = []
    for (c, q, rt), rs in sorted(meas.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        t = statistics.median(r["inference_avg_us"] for r in rs) / 1e3
        rows.append(dict(C=c, quant=q, runtime=rt, ms=round(t, 2), ms_per_channel=round(t / c, 3),
                         peak_mb=round(statistics.median(r["peak_mb"] for r in rs), 1),
                         spread_pct=round(100 * (max(r["inference_avg_us"] for r in rs) - min(
                             r["inference_avg_us"] for r in rs)) / (t * 1e3), 1),
                         file_mb=rs[0]["file_mb"]))
    cols = list(rows[0])
    buf = [",".join(cols)] + [",".join(str(r[k]) for k in cols) for r in rows]
    write_atomic(a.out / "rows.csv", "\n".join(buf) + "\n")
    md = [f"# Channel rounding on XNNPACK: {a.size}x{a.size}x18 input, 3x Conv3x3(C) + Conv1x1(6)", "",
          f"Latencies measured on a shared 2-core {platform.machine()} host (noisy; ai-edge-litert "
          f"{version('ai-edge-litert')}), 1 thread, {a.runs} runs + 1 warmup per "
          f"process; ms = median over {a.repeats} fresh processes of each process's mean; spread = "
          f"(max - min) / median of those. Peak = process RSS high-water mark (memopt.lite.bench).", "",
          "| C | quant | runtime | ms/run | ms/channel | peak MB | spread % |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['C']} | {r['quant']} | {r['runtime'] or 'default'} | {r['ms']} | {r['ms_per_channel']} | "
           f"{r['peak_mb']} | {r['spread_pct']} |" for r in rows]
    md += ["", "Rounding up (extra time / extra channels; 0 = the extra channels are free, "
           "1 = they cost their share):", *conclusions(rows)]
    write_atomic(a.out / "table.md", "\n".join(md) + "\n")
    print("\n".join(md))
    if not a.keep:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
