"""``memopt pick RESULTS --budget 700MB [--device PROFILE]``: the phone's model, with a model card.

Among a device's finished rows whose memory fits the budget (memory_mb: the pipeline figure for
tiled/split variants on the host, benchmark_model's model-only peak otherwise; see memopt.report),
the best RGB PSNR wins; within 0.01 dB, the faster one. Its .tflite is copied to
``RESULTS/deploy/`` beside ``model_card.json`` and ``MODEL_CARD.md``.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text


def parse_budget(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(mb|MB|MiB|M)?\s*", str(text))
    if not m:
        raise MemoptError(f"budget {text!r} is not a size in MB, e.g. 700MB")
    return float(m.group(1))


def choose(rows: list[dict], budget_mb: float, device: str) -> tuple[dict | None, list[dict]]:
    """(the pick or None, the device's finished rows)."""
    mine = [r for r in rows if r.get("device") == device and r.get("status") == "ok"
            and r.get("memory_mb") not in (None, "") and r.get("psnr_gt") not in (None, "")]
    fits = [r for r in mine if float(r["memory_mb"]) <= budget_mb]
    if not fits:
        return None, mine
    best = max(float(r["psnr_gt"]) for r in fits)
    close = [r for r in fits if float(r["psnr_gt"]) >= best - 0.01]
    return min(close, key=lambda r: float(r.get("frame_ms") or math.inf)), mine


def _io(tflite: Path) -> dict:
    from memopt.runner import load_interpreter_class

    it = load_interpreter_class()(model_path=str(tflite))
    i, o = it.get_input_details()[0], it.get_output_details()[0]

    def d(x):
        scale, zero = x["quantization"]
        return {"shape": [int(v) for v in x["shape"]], "dtype": x["dtype"].__name__,
                **({"scale": float(scale), "zero_point": int(zero)} if scale else {})}

    return {"input": d(i), "output": d(o)}


def model_card(r: dict, budget_mb: float, tflite_name: str, io: dict) -> tuple[dict, str]:
    h, w = (int(t) for t in str(r["frame_hw"]).split("x"))
    evs = json.loads(r["ev_tenths"]) if isinstance(r["ev_tenths"], str) else list(r["ev_tenths"])
    tile = r.get("tile") or ""
    card = {
        "variant": r["variant"], "file": tflite_name, "device": r["device"],
        "frame": {"height": h, "width": w, "format": "NV21 (YUV 4:2:0, BT.601 full range)"},
        "exposures": {"ev_tenths": evs, "unit": "tenths of a stop", "order": "increasing EV, one frame each"},
        "io_contract": {"pack": "each frame Y (2x2 space-to-depth, 4 ch) + U + V at half resolution -> 6 ch; "
                                "frames concatenated: [1, H/2, W/2, 6F]; output [1, H/2, W/2, 6] (one frame)",
                        **io},
        "tile": tile, "split": r.get("split") or "",
        "memory": {"budget_mb": budget_mb, "judged_mb": float(r["memory_mb"]), "basis": r["memory_basis"],
                   "model_only_peak_mb": r.get("model_peak_mb"), "model_overall_delta_mb": r.get("model_overall_delta_mb"),
                   "predicted_peak_mb": r.get("predicted_peak_mb"), "pipeline_peak_mb": r.get("pipeline_peak_mb")},
        "latency": {"ms_per_frame": r.get("frame_ms"), "ms_per_model_run": r.get("model_inference_ms"),
                    "model_runs_per_frame": r.get("runs_per_frame")},
        "quality": {"data": r.get("quality_data"), "scenes": r.get("scenes"), "rgb_psnr_db": r.get("psnr_gt"),
                    "ssim": r.get("ssim_gt"), "psnr_vs_fp32_output_db": r.get("psnr_vs_baseline")},
        "size": {"file_mb": r.get("file_mb"), "params": r.get("params"), "mmac_per_mp": r.get("macs_per_mp")},
    }
    run = (f"The app runs the tile loop of devices/ANDROID.md: {tile} windows "
           f"({r.get('runs_per_frame')} per {w}x{h} frame), keeping each window's core."
           if tile else "The app runs the model once per frame" + (f" ({r['split']} split)" if r.get("split") else "") + ".")
    md = f"""# Model card: {r['variant']}

`{tflite_name}`: picked for a {budget_mb:g} MB budget on {r['device']}.

| | |
|---|---|
| frames | {len(evs)} x NV21 {w}x{h}, EV {evs} (tenths of a stop), increasing |
| model input | {io['input']['shape']} {io['input']['dtype']} |
| model output | {io['output']['shape']} {io['output']['dtype']} |
| tile / halo | {tile or 'whole frame'} |
| memory judged | {float(r['memory_mb']):.0f} MB ({r['memory_basis']}) vs budget {budget_mb:g} MB |
| model-only peak | {r.get('model_peak_mb')} MB (overall delta {r.get('model_overall_delta_mb')} MB, predicted {r.get('predicted_peak_mb')} MB) |
| pipeline peak | {r.get('pipeline_peak_mb') or 'n/a'} MB |
| time | {r.get('frame_ms')} ms per frame ({r.get('runs_per_frame')} model runs of {r.get('model_inference_ms')} ms) |
| quality | RGB PSNR {r.get('psnr_gt')} dB, SSIM {r.get('ssim_gt')} on {r.get('quality_data')} ({r.get('scenes')} scenes); {r.get('psnr_vs_baseline')} dB vs the fp32 output |
| size | {r.get('file_mb')} MB file, {r.get('params')} params, {r.get('macs_per_mp')} MMAC per megapixel |

Packing (the I/O contract): per frame, Y is split 2x2 space-to-depth into 4 channels, U and V are
added at half resolution: 6 channels; frames are concatenated in increasing EV. The output is one
packed frame; unpack the same way. {run}

On the phone:

    adb push {tflite_name} /data/local/tmp/
    adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/{tflite_name} \\
        --num_threads=4 --use_xnnpack=true --report_peak_memory_footprint=true
"""
    return card, md


def pick(results, budget_mb: float, device: str = "host") -> dict | None:
    """Choose, copy and document; returns the card, or None when nothing fits (a report is printed)."""
    from memopt.report import load_results

    folder = Path(results)
    if not (folder / "results.csv").is_file():
        raise MemoptError(f"{folder}: no results.csv; run `memopt run <recipe>` first")
    df = load_results(folder)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]
    devices = sorted({str(r["device"]) for r in rows})
    if device not in devices:
        raise MemoptError(f"{folder}: no rows for device {device!r}; it has {', '.join(devices)}")
    best, mine = choose(rows, budget_mb, device)
    if best is None:
        if mine:
            small = min(mine, key=lambda r: float(r["memory_mb"]))
            print(f"nothing fits {budget_mb:g} MB on {device}: the smallest variant, {small['variant']}, needs "
                  f"{float(small['memory_mb']):.0f} MB ({small['memory_basis']}); add tiled variants "
                  "(e.g. int8+tile256h16) to the recipe or raise the budget")
        else:
            print(f"nothing fits {budget_mb:g} MB on {device}: no variant finished (see results.md)")
        return None
    md = (folder / "results.md").read_text() if (folder / "results.md").is_file() else ""
    if "**In-sample:**" in md:
        print("note: " + md.split("**In-sample:**", 1)[1].strip().splitlines()[0] +
              " Check the pick on held-out scenes (memopt crossval --variants).")
    src = Path(best["tflite"])
    if not src.is_file():
        raise MemoptError(f"{src}: the picked variant's .tflite is missing; rerun `memopt run` to rebuild it")
    deploy = folder / "deploy"
    deploy.mkdir(exist_ok=True)
    name = src.name
    tmp = deploy / f".{name}.tmp"
    shutil.copyfile(src, tmp)
    tmp.replace(deploy / name)
    card, md = model_card(best, budget_mb, name, _io(deploy / name))
    atomic_write_text(deploy / "model_card.json", json.dumps(card, indent=1))
    atomic_write_text(deploy / "MODEL_CARD.md", md)
    return card
