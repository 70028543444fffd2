"""One variant of an experiment, in its own process (``memopt run`` starts one per variant).

Builds the variant (slimming / pruning with fine-tuning, memopt.variants), converts it at its
input size, benchmarks the .tflite on every device of the plan (host: memopt.lite.bench in a fresh
runtime-only process; phones: benchmark_model through adb, in parallel), runs the whole pipeline
on every evaluation scene (memopt.lite.pipeline_worker), scores the output against the ground truth and
against the baseline's output, and writes one row per device, ``rows/<variant>@<device>.json``,
atomically. A crash, an out-of-memory kill or a timeout of this process costs this variant only.

Usage: python -m memopt.study.variant_worker PLAN.json VARIANT
"""
from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np

from memopt.errors import MemoptError
from memopt.fsutil import atomic_write_text
from memopt.study.results import row_path, slug


def _model_facts(src, hw) -> dict:
    from memopt.network.graph import facts

    out = facts(src, hw)
    info = Path(src.weights or src.model or ".").parent / "pruning.json"
    if (src.weights or src.model) and info.is_file():
        left = json.loads(info.read_text())["left_dense"]
        if left:
            out["note"] = (f"pruning left {len(left)} layer(s) dense ({sum(x['weights'] for x in left):,} weights: "
                           f"{', '.join(x['layer'] for x in left[:3])}): tfmot cannot wrap them")
    return out


def exactness(v, net: dict, frame_hw: tuple[int, int] = (0, 0), packed: bool = True):
    """The variant with its tile aligned to the probed grid, and whether its output equals the full
    frame's: "" (no tile or split), "yes", or "no: why". A network with global operations gets its
    tile / split variants only when the name asks for approximation (``-approx``)."""
    import math
    from dataclasses import replace

    from memopt.lite.tiling import TileConfig

    part, cx = v.tile or v.split, v.context
    if part is None:
        return v, ""
    from memopt.errors import some

    ops = some((f"{o['layer']} ({o['why'].split(':')[0]})" for o in net.get("non_local_ops", [])), "global operations")
    if cx and not net.get("non_local"):
        raise MemoptError(f"{cx.name}: the network has no global operations, so its windows need no context; "
                          "drop the part")
    if cx and not net.get("context"):
        raise MemoptError(f"{cx.name}: {net.get('context_error') or 'the network was not split at its global ops'}")
    if net.get("non_local") and not cx:
        why = f"the network looks at the whole frame ({ops or 'probed'})"
        if not part.approx:
            fix = (f"{part.name}+stream (exact global context), {part.name}+ctx4 (from a 4x smaller frame)" if v.tile
                   else f"{part.name}+ctx{part.factor} (global values from a {part.factor}x smaller frame)")
            raise MemoptError(f"{why}: a {'window' if v.tile else 'piece'} of the frame is not the frame, so "
                              f"{part.name} is not exact; name it {fix} or {part.name}-approx (each "
                              f"{'window' if v.tile else 'piece'} its own) to run it (PSNR vs fp32 is reported)")
        note = f"no: {why}"
    elif v.split:
        note = "no: the network sees a sub-sampled or downscaled frame"
    elif cx and cx.mode == "lowres":
        note = f"no: global values from the frame at 1/{cx.factor}"
    else:
        note = "yes"
    if v.tile:
        local = "local_" if cx else ""  # with context, the window model's own (local) grid and field
        align = math.lcm(2, net.get(f"{local}alignment") or 8)  # not probed: the pooling grid of most nets
        try:
            tile = TileConfig(v.tile.tile, v.tile.halo, align, v.tile.approx)
        except ValueError as e:
            raise MemoptError(f"{v.tile.name}: {e} (probed)") from None
        radius = net.get(f"{local}radius")
        if note == "yes" and radius is not None and tile.halo < radius:
            note = f"no: halo {tile.halo} px < receptive field {radius} px (seams)"
        if note == "yes" and cx and (frame_hw[0] % align or frame_hw[1] % align):
            note = f"no: the {frame_hw[1]}x{frame_hw[0]} frame is not a multiple of the {align} px alignment"
        h, w = frame_hw
        if note == "yes" and (h % align or w % align) and not packed:
            # Edge windows past the frame are padded by reflection, as memopt's U-Net pads itself; a
            # network that zero-pads sees something else there.
            note = f"no: the {w}x{h} frame is not a multiple of the {align} px alignment (edge windows padded)"
        steps = tuple((k, tile if k == "tile" else c) for k, c in v.steps)
        v = replace(v, steps=steps)
    return v, note


def _frames_per_model_run(v, h: int, w: int, net: dict | None = None) -> int:
    """How many .tflite invocations one frame takes (tiles, polyphase pieces; one for an in-graph loop)."""
    from memopt.lite.tiling import tile_grid

    if v.ingraph:
        return 1
    if v.tile:
        n = len(tile_grid(h, w, v.tile))
    elif v.split and v.split.mode == "poly":
        n = v.split.factor ** 2
    else:
        n = 1
    return n + _context_runs(v, h, w, net or {})


def _context_runs(v, h: int, w: int, net: dict) -> int:
    """Extra .tflite invocations for the global values: each level's pass over its windows."""
    from memopt.lite.context import context_grid

    if not v.context:
        return 0
    levels = len({c["level"] for c in net.get("context") or []})
    th, tw = (v.tile.tile, v.tile.tile) if v.tile else (h // v.split.factor, w // v.split.factor)
    halo = v.tile.halo if v.tile else 48  # a piece-sized model walking a larger frame: enhance's default halo
    align = v.tile.align if v.tile else 8
    if v.context.mode == "lowres":
        h, w = h // v.context.factor, w // v.context.factor
    return levels * len(context_grid(h, w, (th, tw), halo, align))


def _quality(v, tflite: Path, plan: dict, threads: int) -> tuple[list[dict], list[float], list[float]]:
    """Per source: mean PSNR/SSIM vs GT and PSNR vs the baseline output; plus pipeline peaks/times."""
    from memopt.frames.yuv import read_rgb
    from memopt.lite.bench import pipeline_run
    from memopt.study.evaluate import psnr, ssim

    evs = plan["ev_tenths"]
    quality, peaks, times = [], [], []
    if v.runtime.weight_cache:  # the app's first start writes the cache; measure the later ones
        d = Path(next(iter(plan["eval"].values()))[0])
        pipeline_run(tflite, [d / f"ev{e}.yuv" for e in evs], d / "out-wcache.yuv", v, threads)
        (d / "out-wcache.yuv").unlink()
    for source, dirs in plan["eval"].items():
        p_gt, s_gt, p_base = [], [], []
        for d in map(Path, dirs):
            o = d / f"out-{slug(v.name)}.yuv"
            res = pipeline_run(tflite, [d / f"ev{e}.yuv" for e in evs], o, v, threads)
            peaks.append(res["pipeline_peak_mb"])
            times.append(res["pipeline_ms"])
            got, gt = read_rgb(o), read_rgb(d / "gt.yuv")
            p_gt.append(psnr(got, gt))
            s_gt.append(ssim(got, gt))
            base = d / "out-fp32.yuv"
            if base.exists() and not v.is_baseline:
                p_base.append(psnr(got, read_rgb(base)))
            if not v.is_baseline:
                o.unlink()
                Path(f"{o}.json").unlink(missing_ok=True)  # its geometry sidecar
        finite = [p for p in p_base if math.isfinite(p)]
        quality.append({"source": source, "scenes": len(dirs), "psnr_gt": round(float(np.mean(p_gt)), 3),
                        "ssim_gt": round(float(np.mean(s_gt)), 4),
                        "psnr_vs_baseline": (None if v.is_baseline or not p_base else
                                             round(float(np.mean(finite)), 2) if finite else math.inf)})
    return quality, peaks, times


def make_tflite(plan: dict, v, h: int, w: int, tflite: Path, ctx):
    """Build the variant (fine-tuned models come from the study's cache) and convert it for h x w frames
    into ``tflite``, unless it is there; returns the Build. Every conversion is checked against its
    source (memopt.convert, memopt.variants.ingraph)."""
    from memopt.convert import ConvertConfig, convert, representative_batches
    from memopt.network.source import NetworkSource
    from memopt.study import tflite_baseline
    from memopt.variants import build

    src = NetworkSource.from_dict(plan["model"])
    only_file = tflite_baseline.is_tflite(src.model)
    if only_file:  # the team handed over a .tflite alone: the rows that need no source
        from memopt.variants import Build

        tflite_baseline.refuse(v, src, Build(src, tile=v.tile, split=v.split).model_size(h, w))
    b = build(v, plan["model"], ctx)
    mh, mw = b.model_size(h, w)
    q = b.quant
    # Whole 12 MP calibration samples are ~0.4 GB each; tiles are cheap and need many (see docs/variants.md).
    samples = q.samples or (64 if (mh, mw) != (h, w) else 4 if h * w > 4e6 else 8)
    if tflite.exists():
        return b
    if only_file:
        def batches(held_out=False):
            return list(representative_batches(plan["calibration"], plan["ev_tenths"], mh, mw, samples, max(h, w),
                                               layout=src.io, held_out=held_out))
        calib = batches() if q.mode in ("int8", "int16x8") else []
        tflite_baseline.derive(v, src, plan["ev_tenths"], plan.get("network"), tflite, calib,
                               batches(held_out=True) if q.target_db else [])
        return b
    cfg = ConvertConfig(mh, mw, q.mode, samples=samples, calib_long_side=max(h, w),
                        per_channel=q.per_channel, float_layers=q.float_layers, target_db=q.target_db)
    if v.ingraph:
        from memopt.variants.ingraph import convert_ingraph

        convert_ingraph(b.model, cfg, tflite, (h, w), v.tile, plan["calibration"], plan["ev_tenths"],
                        plan.get("network"), context=bool(v.context))
    else:
        convert(b.model, cfg, tflite, plan["calibration"], plan["ev_tenths"], network=plan.get("network"),
                context=bool(v.context))
    return b


def plan_variant(plan: dict, name: str, hw: tuple[int, int], verbose: int = 2):
    """(the variant ``name`` with its tile aligned to the probed grid, whether it is exact at ``hw``, the
    Context its model-side steps use: the study's cache of fine-tuned models)."""
    from memopt.network.source import NetworkSource
    from memopt.variants import Context, FineTuneConfig, parse_variant

    packed = NetworkSource.from_dict(plan["model"]).io.is_packed if isinstance(plan["model"], dict) else True
    v, exact = exactness(parse_variant(name), plan.get("network", {}), hw, packed)
    ctx = Context(Path(plan["out"]) / "scratch" / "models", FineTuneConfig(**plan["finetune"]), verbose=verbose,
                  evs=tuple(plan["ev_tenths"]))
    return v, exact, ctx


def run_variant(plan: dict, name: str) -> list[dict]:
    from memopt.lite.bench import BenchConfig, bench_host
    from memopt.network.source import NetworkSource
    from memopt.study import tflite_baseline

    out = Path(plan["out"])
    h, w = plan["height"], plan["width"]
    v, exact, ctx = plan_variant(plan, name, (h, w))
    src = NetworkSource.from_dict(plan["model"])
    only_file = tflite_baseline.is_tflite(src.model)
    tflite = out / "models" / f"{slug(v.file_name)}.tflite"  # runtime settings share the file
    b = make_tflite(plan, v, h, w, tflite, ctx)
    mh, mw = b.model_size(h, w)
    q = b.quant
    data = tflite.read_bytes()
    note = ""
    if v.ingraph:  # one invocation takes the frame: the file's figures are the pipeline's
        from memopt.lite.embed import ingraph

        mh, mw, note = h, w, f"{ingraph(tflite).get('windows')} windows in the graph's loop"
    if q.target_db:  # which operations int8-auto kept in float, and what that reached on its samples
        from memopt.lite.embed import entry

        note = "; ".join(filter(None, [note, entry(tflite, "mixed").get("note", "")]))
    common = {"variant": v.name, "status": "ok", "reason": "", "model_hw": f"{mh}x{mw}", "quant": q.name,
              "tile": v.tile.name if v.tile else "", "split": v.split.name if v.split else "",
              "runtime": v.runtime.name, "xnnpack_flags": v.runtime.xnnpack_flags,
              "context": v.context.name if v.context else "",
              "runs_per_frame": _frames_per_model_run(v, h, w, plan.get("network")), "exact": exact,
              "note": note,
              **(tflite_baseline.facts(src.model) if only_file else _model_facts(b.model, (mh, mw))),
              "file_mb": round(len(data) / 1e6, 3), "gzip_mb": round(len(gzip.compress(data, 6)) / 1e6, 3),
              "tflite": str(tflite), "frame_hw": f"{h}x{w}", "ev_tenths": list(plan["ev_tenths"])}
    bcfg = BenchConfig(threads=plan["threads"], runs=plan["runs"], warmup=1, runtime=v.runtime)
    quality, peaks, times = _quality(v, tflite, plan, plan["threads"])
    first = quality[0]
    qcols = {"quality_data": first["source"], "psnr_gt": first["psnr_gt"], "ssim_gt": first["ssim_gt"],
             "psnr_vs_baseline": first["psnr_vs_baseline"], "scenes": first["scenes"], "quality": quality}
    def figures(r):
        return dict(model_peak_mb=r.get("peak_mb"), model_overall_delta_mb=r.get("mem_overall_delta_mb"),
                    model_init_delta_mb=r.get("mem_init_delta_mb"), predicted_peak_mb=r.get("predicted_peak_mb"),
                    model_inference_ms=round(r["inference_avg_us"] / 1000, 2) if r.get("inference_avg_us") else None,
                    threads=r.get("threads"))

    rows = []
    if "host" in plan["devices"]:
        r = bench_host(tflite, bcfg)
        rows.append({**common, **qcols, "device": "host", "pipeline_peak_mb": max(peaks),
                     "pipeline_ms": round(float(np.mean(times))), **figures(r)})
    phones = [d for d in plan["devices"] if d != "host"]
    if phones:
        from dataclasses import replace as dc_replace

        from memopt.lite.device import bench_devices, load_profile

        # All phones at once, one process each (memopt.lite.device); each uses its profile's threads.
        for d, r in zip(phones, bench_devices(tflite, [load_profile(d) for d in phones],
                                              dc_replace(bcfg, threads=None))):
            if r.get("error"):
                rows.append({"variant": v.name, "device": Path(d).stem, "status": "failed", "reason": r["error"]})
            else:
                rows.append({**common, **qcols, "device": Path(d).stem, **figures(r)})
    for row in rows:
        atomic_write_text(row_path(out, v.name, row["device"]), json.dumps(row, indent=1))
    return rows


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m memopt.study.variant_worker PLAN.json VARIANT", file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    try:
        run_variant(plan, argv[1])
    except MemoptError as e:
        print(f"memopt: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
