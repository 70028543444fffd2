"""The ``memopt`` command. ``main(argv) -> int``; errors print one line and return non-zero."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memopt.config import EV_UNIT, ModelConfig, recorded_evs
from memopt.errors import MemoptError


def _runtime(a):
    from memopt.lite.runtime import RuntimeConfig

    rt = RuntimeConfig.from_name(getattr(a, "runtime", ""))
    if getattr(a, "no_xnnpack", False):
        if rt.name not in ("", "noxnn"):
            raise MemoptError(f"--no-xnnpack and --runtime {rt.name} contradict each other")
        rt = RuntimeConfig(xnnpack=False)
    return rt


def _bench_config(a):
    from memopt.lite.bench import BenchConfig

    try:
        return BenchConfig(a.threads, a.runs, a.warmup, _runtime(a), a.timeout)
    except ValueError as e:
        raise MemoptError(str(e)) from None


def _source(a):
    """The NetworkSource the command's --model / --builder / --io / --trust name."""
    from memopt.network.layout import PACKED, load_layout
    from memopt.network.source import NetworkSource

    model, builder = getattr(a, "model", None), getattr(a, "builder", None)
    if bool(model) == bool(builder):
        raise MemoptError("give a model (MODEL) or --builder FILE.py:FUNCTION, not both")
    if model:
        p = Path(model)
        model = str(p / "model.keras") if p.is_dir() and (p / "model.keras").is_file() else model
    io = load_layout(a.io) if getattr(a, "io", None) else PACKED
    try:
        return NetworkSource(model=model, builder=builder, io=io, trust=getattr(a, "trust", False))
    except ValueError as e:
        raise MemoptError(str(e)) from None


def _model_or_tflite(a):
    """(a .tflite path and the --io layout it should be read with, or None), or (a NetworkSource, None)."""
    if Path(a.model).suffix.lower() == ".tflite":
        from memopt.network.layout import load_layout

        return a.model, (load_layout(a.io) if a.io else None)
    return _source(a), None


def _model_evs(model, layout):
    """The EVs a model takes when --ev is not given: a .tflite's own, its layout's @ev entries, or the
    model.json beside it."""
    from memopt.network.source import NetworkSource

    if model is None:
        return None
    if isinstance(model, NetworkSource):
        layout = model.io
        if not layout.needs_all_frames:
            return layout.explicit_evs
        return recorded_evs(model.model) if model.model else None
    from memopt.lite import embed

    found = embed.read(model)
    if layout is not None and not layout.needs_all_frames:
        return layout.explicit_evs
    return found[1] if found else recorded_evs(model)


# --- subcommands -------------------------------------------------------------------------------

def cmd_synth(a) -> int:
    from memopt.frames.synth import synthesize

    ModelConfig(frames=len(a.ev), ev_tenths=a.ev)  # validates the EV list
    n = synthesize(a.out, a.scenes, a.seed, a.ev, a.source, a.size)
    print(f"wrote {n} synthetic scenes (EV {list(a.ev)}, {EV_UNIT}) to {a.out}")
    return 0


def cmd_merge(a) -> int:
    from memopt.frames.data import merge_datasets

    n = merge_datasets(a.parts, a.out, a.rename)
    print(f"merged {n} scenes from {len(a.parts)} part(s) into {a.out}")
    return 0


def cmd_check(a) -> int:
    from memopt.frames.data import check_dataset, scan_dataset

    problems = check_dataset(a.dir, a.ev)
    n = len(scan_dataset(a.dir))
    for scene, msg in problems:
        print(f"{scene}: {msg}")
    bad = len({s for s, _ in problems})
    print(f"{n - bad} of {n} scenes OK for EV {list(a.ev)} ({EV_UNIT})")
    return 1 if problems else 0


def cmd_train(a) -> int:
    import dataclasses

    from memopt.config import TrainRecipe, load_train_recipe

    recipe = load_train_recipe(a.config) if a.config else TrainRecipe()
    over = {k: v for k, v in (("epochs", a.epochs), ("steps_per_epoch", a.steps),
                              ("strategy", a.strategy)) if v is not None}
    data_over = {"train": tuple(a.data)} if a.data else {}
    try:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **over),
                                     data=dataclasses.replace(recipe.data, **data_over))
    except ValueError as e:
        raise MemoptError(str(e)) from None
    from memopt.frames.scenes import resolve_train_data
    from memopt.train import train

    recipe = resolve_train_data(recipe, Path(a.out) / "data")  # synthetic:<n>:<seed> specs
    path = train(recipe, a.out, force=a.force, init_model=a.init)
    print(f"saved {path} and {Path(a.out) / 'saved_model'}")
    return 0


def cmd_test(a) -> int:
    from memopt.fsutil import atomic_write_text
    from memopt.study.evaluate import evaluate, format_table, summarize

    scenes = [s for s in a.scenes.split(",") if s] if a.scenes else None
    model, layout = _model_or_tflite(a) if a.model else (None, None)
    evs = a.ev or _model_evs(model, layout) or ModelConfig().ev_tenths
    if layout is not None:
        from memopt.lite.runner import load_runner

        model = load_runner(model, layout=layout)
    df = evaluate(model, a.data, evs, a.long_side, scenes, a.mertens_all, a.halo)
    summary = summarize(df)
    out = Path(a.out) if a.out else None
    if out:
        atomic_write_text(out / "per_scene.csv", df.to_csv(index=False, float_format="%.4f"))
        atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.4f"))
        atomic_write_text(out / "summary.md", format_table(summary))
    size = f"{a.long_side} px long side" if a.long_side else "full size"
    print(f"test: {a.data}, EV {list(evs)} ({EV_UNIT}), {size}")
    print(format_table(summary), end="")
    if out:
        print(f"per-scene rows: {out / 'per_scene.csv'}")
    return 0


def cmd_crossval(a) -> int:
    from memopt.config import load_train_recipe
    from memopt.fsutil import atomic_write_text
    from memopt.study.crossval import crossval
    from memopt.study.evaluate import format_table, summarize

    recipe = load_train_recipe(a.config)
    finetune = None
    if a.finetune_from:
        from memopt.study.recipe import load_recipe

        finetune = load_recipe(a.finetune_from).finetune
    variants = [v for v in (a.variants or "").split(",") if v]
    df = crossval(recipe, a.data, a.folds, a.out, a.long_side, a.mertens_all, variants, finetune, a.fold)
    summary = summarize(df)
    out = Path(a.out)
    atomic_write_text(out / "per_scene.csv", df.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out / "summary.md", format_table(summary))
    which = f"fold {a.fold} of {a.folds}" if a.fold is not None else f"{a.folds} folds"
    print(f"cross-validation: {which} over {a.data}, held-out scenes only")
    print(format_table(summary), end="")
    return 0


def cmd_enhance(a) -> int:
    from memopt.lite.enhance import enhance_files

    model, layout = _model_or_tflite(a)
    out = enhance_files(model, a.frames, a.output, a.width, a.height, a.format, a.out_format,
                        a.threads, a.halo, split=a.split, blend=a.blend, runtime=a.runtime, layout=layout,
                        context=a.context)
    print(f"wrote {out}")
    return 0


def cmd_convert(a) -> int:
    from memopt.convert import ConvertConfig, convert, parse_size

    h, w = parse_size(a.size)
    try:
        cfg = ConvertConfig(h, w, a.quant, a.io_type, a.samples, a.calib_long_side)
    except ValueError as e:
        raise MemoptError(str(e)) from None
    info = convert(_source(a), cfg, a.output, a.data or (), a.ev)
    print(f"wrote {info['path']}: {info['bytes'] / 1e6:.2f} MB, {cfg.quant}, input {info['input_shape']} "
          f"({w}x{h} frames), I/O {info['io_type']}")
    return 0


def cmd_bench(a) -> int:
    import json

    from memopt.fsutil import atomic_write_text
    from memopt.lite.bench import bench_host, format_row, rows_to_csv

    cfg = _bench_config(a)
    if a.device:
        from memopt.lite.device import bench_devices, load_profile

        profiles = [load_profile(d) for d in a.device]
        rows = [r for m in a.models for r in bench_devices(m, profiles, cfg)]
    else:
        rows = [bench_host(m, cfg) for m in a.models]
    failed = [r for r in rows if r.get("error")]
    for r in rows:
        if r.get("error"):
            print(f"memopt: error: {r['error']}", file=sys.stderr)
        else:
            print(format_row(r))
    if a.csv:
        atomic_write_text(a.csv, rows_to_csv(rows))
    if a.json:
        atomic_write_text(a.json, json.dumps(rows, indent=1))
    return 1 if failed else 0


def cmd_grid(a) -> int:
    from memopt.study.grid import format_grid, run_grid

    cfg = _bench_config(a)
    rows = run_grid(a.model, a.sizes.split(","), a.quant.split(","), a.out, cfg, a.data or (), a.ev,
                    a.samples)
    print(format_grid(rows), end="")
    return 0


def cmd_tile(a) -> int:
    from memopt.convert import parse_size
    from memopt.study.autotune import autotune

    rt = _runtime(a)
    res = autotune(a.model, a.budget, a.out, parse_size(a.size), a.quant, a.halo, a.align, a.figure,
                   a.data or (), a.ev, measure=not a.no_measure, step=a.step, runtime=rt)
    for t, mb in res.probes:
        print(f"  tile {t:5d} px: predicted {mb:8.1f} MB {'fits' if mb <= a.budget else 'over'}")
    check = "" if res.measured_mb is None else f", measured {res.measured_mb:.1f} MB"
    print(f"tile{res.tile}h{res.halo}{'+' + rt.name if rt.name else ''}: predicted {res.predicted_mb:.1f} MB{check} ({a.figure} figure, "
          f"budget {a.budget:.0f} MB) -> {res.model_path}")
    if res.measured_mb is not None and res.measured_mb > a.budget:
        print(f"memopt: error: the measurement ({res.measured_mb:.1f} MB) is over the budget; "
              "the prediction was optimistic here: pick the next smaller tile", file=sys.stderr)
        return 1
    return 0


def cmd_run(a) -> int:
    from memopt.study.experiment import run_experiment
    from memopt.study.recipe import load_recipe

    recipe = load_recipe(a.recipe)
    out = run_experiment(recipe, a.out, quiet=a.quiet, retry_failed=a.retry_failed)
    print((out / "results.md").read_text(), end="")
    return 0


def cmd_deploy(a) -> int:
    from memopt.convert import parse_size
    from memopt.study.deploy import deploy_size

    from memopt.study.deploy import measured

    for size in a.size:
        path = deploy_size(a.results, parse_size(size), a.variant)
        print(f"wrote {path}: runs as measured with `memopt enhance --model {path} FRAMES... -o OUT`")
    if a.variant and not measured(a.results, a.variant):
        print(f"note: {a.variant} has no row in {a.results}: its file is checked against its source, but its memory and "
              "quality were not measured here (memopt bench FILE; or add it to the recipe's variants)")
    return 0


def cmd_pick(a) -> int:
    from memopt.study.pick import parse_budget, pick

    budget = parse_budget(a.budget)
    device = "host" if not a.device or a.device == "host" else Path(a.device).stem
    card = pick(a.results, budget, device)
    if card is None:
        return 1
    m, q = card["memory"], card["quality"]
    print(f"picked {card['variant']} for {budget:g} MB on {device}: {m['judged_mb']:.0f} MB ({m['basis']}), "
          f"{card['latency']['ms_per_frame']} ms/frame, RGB PSNR {q['rgb_psnr_db']} dB "
          f"({q['psnr_vs_fp32_output_db']} dB vs fp32) -> {Path(a.results) / 'deploy' / card['file']}")
    if card["runtime"]["setting"] != "default":
        print(f"  runtime setting: {card['runtime']['setting']}: {card['runtime']['app']}")
    f = card.get("full_frame_alternative")
    if f:
        print(f"best full-frame variant (no tile loop in the app): {f['variant']}: {f['memory_mb']:.0f} MB (model-only), "
              f"{f['ms_per_frame']} ms/frame, RGB PSNR {f['rgb_psnr_db']} dB -> {Path(a.results) / 'deploy' / f['file']}")
    elif not card["tile"] and not card["split"]:
        print("the pick runs on the whole frame: no tile loop in the app")
    else:
        print(f"no full-frame variant fits {budget:g} MB: the app needs the tile loop (devices/ANDROID.md)")
    return 0


def cmd_predict(a) -> int:
    from memopt.lite.predict import predict

    for line in predict(a.model, top=a.top, runtime=_runtime(a)).lines():
        print(line)
    return 0


def cmd_inspect(a) -> int:
    from memopt.network.inspect import inspect

    lines = inspect(_source(a), a.ev, layout_given=bool(a.io), probe_size=a.probe_size)
    for line in lines:
        print(line)
    # no layout that fits: the network cannot be run as it stands, so the command fails
    return 1 if any(ln.startswith("layout: none proposed") or "does NOT fit" in ln for ln in lines) else 0


def cmd_info(a) -> int:
    from memopt.config import load_train_recipe
    from memopt.network.unet import build_model, macs_per_megapixel, receptive_field

    cfg = load_train_recipe(a.config).model if a.config else ModelConfig()
    m = build_model(cfg)
    rf = receptive_field(cfg)
    print(f"frames {cfg.frames} at EV {list(cfg.ev_tenths)} ({EV_UNIT}); widths {list(cfg.widths)}")
    print(f"params {m.count_params():,}; {macs_per_megapixel(m) / 1e9:.2f} GMAC per output megapixel")
    print(f"receptive field: radius {rf.radius} px (full resolution); tile origins multiple of {rf.alignment} px")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from memopt.cli.parser import build_parser as build

    return build(globals())


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its usage line
        return int(e.code or 0)
    from memopt.console import quiet_native

    if args.verbose:
        import os

        os.environ["MEMOPT_VERBOSE"] = "1"  # tfenv (absl) and the workers read it
    try:
        with quiet_native(args.verbose, restore=argv is not None):  # the command itself: quiet to the end
            return int(args.func(args) or 0)
    except MemoptError as e:
        print(f"memopt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memopt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `memopt ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
