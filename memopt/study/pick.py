"""``memopt pick RESULTS --budget 700MB [--device PROFILE]``: the phone's model, with a model card.

Among a device's finished rows whose memory fits the budget (memory_mb: the pipeline figure for
tiled/split variants on the host, benchmark_model's model-only peak otherwise; see memopt.study.report),
the best RGB PSNR wins; within 0.01 dB, the faster one. Its .tflite is copied to
``RESULTS/deploy/`` beside ``model_card.json`` and ``MODEL_CARD.md``.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text
from memopt.study.results import in_graph, load_results, whole_frame


def parse_budget(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(mb|MB|MiB|M)?\s*", str(text))
    if not m:
        raise MemoptError(f"budget {text!r} is not a size in MB, e.g. 700MB")
    return float(m.group(1))


is_full_frame = whole_frame  # the name the pick and the table use


RANKS = {"gt": "RGB PSNR vs ground truth",
         "fidelity": "PSNR vs the fp32 output (the quality data is in-sample, so its ground-truth scores favour "
                     "variants fine-tuned on it)"}


def fidelity(r: dict) -> float:
    """PSNR vs the fp32 output: 'identical' and the fp32 row itself are infinite, a missing one -inf."""
    v = r.get("psnr_vs_baseline")
    if v in (None, "") or (isinstance(v, float) and math.isnan(v)):
        return math.inf if r.get("variant") == "fp32" else -math.inf
    return math.inf if v == "identical" else float(v)


def choose(rows: list[dict], budget_mb: float, device: str, full_frame: bool = False,
           by: str = "gt") -> tuple[dict | None, list[dict]]:
    """(the pick or None, the device's finished rows); ``full_frame``: among full-frame variants only;
    ``by``: rank by PSNR vs ground truth ("gt") or, when that is in-sample, by fidelity to the fp32
    output ("fidelity"); ties (within 0.01 dB) go to the faster variant."""
    mine = [r for r in rows if r.get("device") == device and r.get("status") == "ok"
            and r.get("memory_mb") not in (None, "") and r.get("psnr_gt") not in (None, "")]
    fits = [r for r in mine if float(r["memory_mb"]) <= budget_mb and (is_full_frame(r) or not full_frame)]
    if not fits:
        return None, mine
    score = (lambda r: float(r["psnr_gt"])) if by == "gt" else fidelity
    best = max(score(r) for r in fits)
    close = [r for r in fits if score(r) >= best - 0.01]
    return min(close, key=lambda r: float(r.get("frame_ms") or math.inf)), mine


def rank_for(note: str) -> str:
    """How the pick ranks: by fidelity when the quality data is in-sample (results.md says so)."""
    return "fidelity" if note else "gt"


def _io(tflite: Path) -> dict:
    from memopt.lite import embed
    from memopt.lite.runtime import graph_io
    from memopt.network.layout import PACKED, layout_dict

    ins, outs = graph_io(tflite)
    in_pos, out_pos = embed.io_order(tflite, len(ins), len(outs))
    found = embed.read(tflite)

    def d(x):
        return {"name": x.name, "shape": [int(v) for v in x.shape], "dtype": x.dtype.__name__,
                **({"scale": float(x.scale), "zero_point": int(x.zero_point)} if x.scale else {})}

    layout = found[0] if found else PACKED
    frame = [p for i, p in enumerate(out_pos[: len(layout.outputs)]) if i not in layout.ignored] or out_pos
    return {"input": d(ins[in_pos[0]]), "output": d(outs[frame[0]]),
            "inputs": [d(ins[p]) for p in in_pos], "outputs": [d(outs[p]) for p in out_pos],
            "layout": layout_dict(layout)}


def model_card(r: dict, budget_mb: float, tflite_name: str, io: dict, full: dict | None = None) -> tuple[dict, str]:
    """The card of the pick ``r``; ``full``: the best full-frame variant within the budget, when the
    pick is not one (``{"row": ..., "file": ...}``)."""
    from memopt.network.layout import PACKED, layout_dict

    io = {"layout": layout_dict(PACKED), "inputs": [io["input"]], "outputs": [io["output"]], **io}
    rt = _runtime_of(r)
    h, w = (int(t) for t in str(r["frame_hw"]).split("x"))
    evs = json.loads(r["ev_tenths"]) if isinstance(r["ev_tenths"], str) else list(r["ev_tenths"])
    tile = r.get("tile") or ""
    card = {
        "variant": r["variant"], "file": tflite_name, "device": r["device"],
        "frame": {"height": h, "width": w, "format": "NV21 (YUV 4:2:0, BT.601 full range)"},
        "exposures": {"ev_tenths": evs, "unit": "tenths of a stop", "order": "increasing EV, one frame each"},
        "io_contract": {"pack": "each frame Y (2x2 space-to-depth, 4 ch) + U + V at half resolution -> 6 ch; "
                                "frames concatenated: [1, H/2, W/2, 6F]; output [1, H/2, W/2, 6] (one frame)"
                        if io["layout"]["inputs"] == ["packed"] else
                        "the network's own tensors, in this order (docs/bring-your-own-network.md): inputs "
                        f"{io['layout']['inputs']}, outputs {io['layout']['outputs']}, range {io['layout']['range']}, "
                        f"chroma {io['layout']['chroma']}, matrix {io['layout']['matrix']}",
                        **io},
        "tile": tile, "split": r.get("split") or "",
        "runtime": {"setting": rt.name or "default", "xnnpack": rt.xnnpack, "xnnpack_flags": rt.xnnpack_flags,
                    "benchmark_model_args": rt.benchmark_model_args(f"/data/local/tmp/{Path(tflite_name).stem}.xnnpack_cache"),
                    "app": rt.app_settings()},
        "memory": {"budget_mb": budget_mb, "judged_mb": float(r["memory_mb"]), "basis": r["memory_basis"],
                   "model_only_peak_mb": r.get("model_peak_mb"), "model_overall_delta_mb": r.get("model_overall_delta_mb"),
                   "predicted_peak_mb": r.get("predicted_peak_mb"), "pipeline_peak_mb": r.get("pipeline_peak_mb")},
        "latency": {"ms_per_frame": r.get("frame_ms"), "ms_per_model_run": r.get("model_inference_ms"),
                    "model_runs_per_frame": r.get("runs_per_frame")},
        "quality": {"data": r.get("quality_data"), "scenes": r.get("scenes"), "rgb_psnr_db": r.get("psnr_gt"),
                    "ssim": r.get("ssim_gt"), "psnr_vs_fp32_output_db": r.get("psnr_vs_baseline")},
        "size": {"file_mb": r.get("file_mb"), "params": r.get("params"), "mmac_per_mp": r.get("macs_per_mp")},
    }
    judged = float(r["memory_mb"])
    # The same .tflite files under ARM64 emulation of phone cores peak 1-3 % above this host, and
    # 6-16 % above it on cores with SME (KleidiAI kernels): the phone figure carries that margin.
    card["phone_margin"] = {
        "basis": "the same .tflite files measured under QEMU ARM64 emulation (the aarch64 LiteRT wheel): "
                 "Cortex-A76, Neoverse-N1 and an Armv9 core without SME peak 1-3 % above x86; cores with SME "
                 "(KleidiAI kernels) 6-16 % above",
        "arm_without_sme_mb": round(judged * 1.03, 1), "arm_with_sme_mb": round(judged * 1.16, 1),
        "fits_without_sme": judged * 1.03 <= budget_mb, "fits_with_sme": judged * 1.16 <= budget_mb}
    card["host_command"] = enhance_command(r, tflite_name, evs)
    alt = ""
    if full:
        f = full["row"]
        card["full_frame_alternative"] = {"variant": f["variant"], "file": full["file"], "memory_mb": float(f["memory_mb"]),
                                          "ms_per_frame": f.get("frame_ms"), "rgb_psnr_db": f.get("psnr_gt"),
                                          "psnr_vs_fp32_output_db": f.get("psnr_vs_baseline"), "runtime": f.get("runtime") or "default"}
        alt = (f"\n## Without a tile loop\n\nThe best **full-frame** variant within {budget_mb:g} MB is "
               f"`{f['variant']}` (`{full['file']}`, beside this one): {float(f['memory_mb']):.0f} MB model-only peak, "
               f"{f.get('frame_ms') or 'n/a'} ms per frame, RGB PSNR {f.get('psnr_gt')} dB ({f.get('psnr_vs_baseline')} dB vs "
               "the fp32 output). It runs once per frame, the cheapest integration; its runtime setting: "
               f"{_runtime_of(f).app_settings()}"
               f"\n\n    {enhance_command(f, full['file'], evs)}\n")
        card["full_frame_alternative"]["host_command"] = enhance_command(f, full["file"], evs)
    elif not tile and not r.get("split"):
        alt = "\nThis pick runs on the whole frame: the app needs no tile loop.\n"
    split = r.get("split") or ""
    if in_graph(r):
        run = (f"The model takes the whole {w}x{h} frame and returns the whole enhanced frame: the tile loop "
               f"({tile} windows, {r.get('note') or 'in the graph'}) runs inside the .tflite (a WHILE loop of "
               "builtin ops), so the app calls it once and benchmark_model measures the whole pipeline. Its "
               "uint8 inputs are the camera's bytes; its int8 outputs are the bytes minus 128 (the layout's "
               "range: the file's memopt_io metadata, key \"bytes\").")
    elif tile:
        run = (f"The app runs the tile loop of devices/ANDROID.md: {tile} windows "
               f"({r.get('runs_per_frame')} model runs per {w}x{h} frame), keeping each window's core.")
    elif split.startswith("poly"):
        run = (f"The app runs the split of memopt/lite/splitting.py ({split}): the frame's {r.get('runs_per_frame')} "
               "polyphase pieces (every k-th pixel from each offset) through the model one after the other, "
               "each output written back to its offset.")
    elif split:
        run = (f"The app runs the split of memopt/lite/splitting.py ({split}): the model once on the frame shrunk "
               "k times, then the guided filter brings the result back to full resolution.")
    else:
        run = "The app runs the model once per frame: no tile loop."
    if isinstance(r.get("context"), str) and r["context"]:
        run += (f" First it computes the network's global values ({r['context']}: "
                + ("exactly, one pass over the windows per level" if r["context"] == "stream" else
                   f"from the frame box-averaged by {r['context'][3:]}")
                + ") and feeds them to every run: devices/ANDROID.md, step 5.")
    md = f"""# Model card: {r['variant']}

`{tflite_name}`: picked for a {budget_mb:g} MB budget on {r['device']}.

| | |
|---|---|
| frames | {len(evs)} x NV21 {w}x{h}, EV {evs} (tenths of a stop), increasing |
| model inputs | {'; '.join(f"{t['shape']} {t['dtype']}" for t in io['inputs'])} |
| model outputs | {'; '.join(f"{t['shape']} {t['dtype']}" for t in io['outputs'])} |
| tile / halo | {tile or (f"{split}: the model runs at {io['input']['shape'][2] * 2}x{io['input']['shape'][1] * 2}" if split else 'whole frame')} |
| runtime | {rt.name or 'default'}{f" (XNNPACK flags 0x{rt.xnnpack_flags:x})" if rt.xnnpack_flags else ""} |
| memory judged | {float(r['memory_mb']):.0f} MB ({r['memory_basis']}) vs budget {budget_mb:g} MB |
| on a phone | ~{card['phone_margin']['arm_without_sme_mb']:.0f} MB on ARM cores without SME (+3 %), ~{card['phone_margin']['arm_with_sme_mb']:.0f} MB with SME / KleidiAI (+16 %): {'fits' if card['phone_margin']['fits_with_sme'] else 'fits without SME only' if card['phone_margin']['fits_without_sme'] else 'does not fit'} {budget_mb:g} MB (margins measured under ARM64 emulation) |
| model-only peak | {r.get('model_peak_mb')} MB (overall delta {r.get('model_overall_delta_mb')} MB, predicted {r.get('predicted_peak_mb')} MB) |
| pipeline peak | {r.get('pipeline_peak_mb') or 'n/a'} MB |
| time | {r.get('frame_ms')} ms per frame ({r.get('runs_per_frame')} model runs of {r.get('model_inference_ms')} ms) |
| quality | RGB PSNR {r.get('psnr_gt')} dB, SSIM {r.get('ssim_gt')} on {r.get('quality_data')} ({r.get('scenes')} scenes); {r.get('psnr_vs_baseline')} dB vs the fp32 output |
| size | {r.get('file_mb')} MB file, {r.get('params')} params, {r.get('macs_per_mp')} MMAC per megapixel |

Tensors: {card['io_contract']['pack']}. {run}

Runtime settings the app must use to get the memory measured here: {rt.app_settings()}

On this machine, the same pipeline on three NV21 frames (run from the results folder):

    {card['host_command']}

On the phone (benchmark_model with the same settings{"; run it twice: the first start writes the weight cache, the second, which maps it, is what was measured" if rt.weight_cache else ""}):

    adb push {tflite_name} /data/local/tmp/
    adb shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/{tflite_name} \\
        --num_threads=4 {' '.join(card['runtime']['benchmark_model_args'])} --report_peak_memory_footprint=true
{alt}"""
    return card, md


def _runtime_of(r: dict):
    """A row's runtime setting (an empty cell, None or pandas' NaN: the default)."""
    from memopt.lite.runtime import RuntimeConfig

    return RuntimeConfig.from_name(r.get("runtime") if isinstance(r.get("runtime"), str) else "")


def enhance_command(r: dict, tflite_name: str, evs) -> str:
    """The ``memopt enhance`` line that runs a row's variant as measured (split, halo, runtime)."""
    from memopt.study.deploy import run_settings
    from memopt.variants import parse_variant

    run = run_settings(parse_variant(r["variant"]))  # what the deployed file carries, spelled as flags
    args = [f"memopt enhance --model deploy/{tflite_name}"]
    args += [f"--{k} {run[k]}" for k in ("split", "halo", "runtime", "context") if run[k]]
    return " ".join(args + [f"ev{e}.yuv" for e in evs] + ["-o", "out.yuv"])


def _deploy(r: dict, deploy: Path) -> str:
    """Copy a row's .tflite into deploy/ (atomically) with how it must be run in its metadata (split, halo,
    context, runtime setting: what ``memopt enhance`` then needs no flags for); returns its file name."""
    from memopt.study.deploy import run_settings, write_deployed
    from memopt.variants import parse_variant

    src = Path(r["tflite"])
    if not src.is_file():
        raise MemoptError(f"{src}: the .tflite of {r['variant']} is missing; rerun `memopt run` to rebuild it")
    write_deployed(src, deploy / src.name, run_settings(parse_variant(r["variant"])))
    return src.name


def pick(results, budget_mb: float, device: str = "host") -> dict | None:
    """Choose, copy and document; returns the card, or None when nothing fits (a report is printed)."""

    folder = Path(results)
    if not (folder / "results.csv").is_file():
        raise MemoptError(f"{folder}: no results.csv; run `memopt run <recipe>` first")
    df = load_results(folder)
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]
    devices = sorted({str(r["device"]) for r in rows})
    if device not in devices:
        raise MemoptError(f"{folder}: no rows for device {device!r}; it has {', '.join(devices)}")
    md = (folder / "results.md").read_text() if (folder / "results.md").is_file() else ""
    note = md.split("**In-sample:**", 1)[1].strip().splitlines()[0] if "**In-sample:**" in md else ""
    by = rank_for(note)
    best, mine = choose(rows, budget_mb, device, by=by)
    if best is None:
        if mine:
            small = min(mine, key=lambda r: float(r["memory_mb"]))
            print(f"nothing fits {budget_mb:g} MB on {device}: the smallest variant, {small['variant']}, needs "
                  f"{float(small['memory_mb']):.0f} MB ({small['memory_basis']}); add tiled variants "
                  "(e.g. int8+tile256h16) to the recipe or raise the budget")
        else:
            print(f"nothing fits {budget_mb:g} MB on {device}: no variant finished (see results.md)")
        return None
    if note:
        print(f"note: {note} Check the pick on held-out scenes (memopt crossval --variants).")
    print(f"ranked by {RANKS[by]}")
    deploy = folder / "deploy"
    name = _deploy(best, deploy)
    full = None
    if not is_full_frame(best):
        ff, _ = choose(rows, budget_mb, device, full_frame=True, by=by)
        if ff is not None:
            try:
                full = {"row": ff, "file": _deploy(ff, deploy)}
            except MemoptError as e:
                print(f"note: the best full-frame variant is left out of deploy/: {e}")
    card, md = model_card(best, budget_mb, name, _io(deploy / name), full)
    card["ranked_by"] = RANKS[by]  # the card says what the pick rests on, and carries both figures
    md = md.rstrip() + f"\n\nPicked by {RANKS[by]}.\n"
    if note:
        card["in_sample"] = note
        md = md.rstrip() + f"\n\n**In-sample:** {note}\n"
    atomic_write_text(deploy / "model_card.json", json.dumps(card, indent=1))
    atomic_write_text(deploy / "MODEL_CARD.md", md)
    return card
