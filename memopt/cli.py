"""The ``memopt`` command. ``main(argv) -> int``; errors print one line and return non-zero."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memopt.config import EV_UNIT, ModelConfig, recorded_evs
from memopt.errors import MemoptError


def _evs(text: str) -> tuple[int, ...]:
    try:
        evs = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"EVs are comma-separated integers in {EV_UNIT}, e.g. -20,0,4") from None
    if not evs:
        raise argparse.ArgumentTypeError("give at least one EV")
    return evs


def _ev_arg(p, default=None):
    p.add_argument("--ev", type=_evs, default=default, metavar="EVS",
                   help=f"exposures in {EV_UNIT}, increasing, e.g. --ev=-20,0,4 (EV -2.0, 0, +0.4)"
                        + ("" if default is None else f"; default {','.join(map(str, default))}"))


def _runtime(a):
    from memopt.runtime import RuntimeConfig

    rt = RuntimeConfig.from_name(getattr(a, "runtime", ""))
    if getattr(a, "no_xnnpack", False):
        if rt.name not in ("", "noxnn"):
            raise MemoptError(f"--no-xnnpack and --runtime {rt.name} contradict each other")
        rt = RuntimeConfig(xnnpack=False)
    return rt


def _bench_config(a):
    from memopt.bench import BenchConfig

    try:
        return BenchConfig(a.threads, a.runs, a.warmup, _runtime(a), a.timeout)
    except ValueError as e:
        raise MemoptError(str(e)) from None


def _runtime_arg(p):
    p.add_argument("--runtime", default="", metavar="SETTING",
                   help="how LiteRT runs the .tflite: tib (XNNPACK transient indirection buffer), wcache "
                        "(XNNPACK weight cache file), tib-wcache, noxnn (XNNPACK off); default: XNNPACK's defaults")


# --- subcommands -------------------------------------------------------------------------------

def cmd_synth(a) -> int:
    from memopt.synth import synthesize

    ModelConfig(frames=len(a.ev), ev_tenths=a.ev)  # validates the EV list
    n = synthesize(a.out, a.scenes, a.seed, a.ev, a.source, a.size)
    print(f"wrote {n} synthetic scenes (EV {list(a.ev)}, {EV_UNIT}) to {a.out}")
    return 0


def cmd_merge(a) -> int:
    from memopt.data import merge_datasets

    n = merge_datasets(a.parts, a.out, a.rename)
    print(f"merged {n} scenes from {len(a.parts)} part(s) into {a.out}")
    return 0


def cmd_check(a) -> int:
    from memopt.data import check_dataset, scan_dataset

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
    from memopt.experiment import resolve_train_data
    from memopt.train import train

    recipe = resolve_train_data(recipe, Path(a.out) / "data")  # synthetic:<n>:<seed> specs
    path = train(recipe, a.out, force=a.force, init_model=a.init)
    print(f"saved {path} and {Path(a.out) / 'saved_model'}")
    return 0


def cmd_test(a) -> int:
    from memopt.evaluate import evaluate, format_table, summarize
    from memopt.fsutil import atomic_write_text

    evs = a.ev or (recorded_evs(a.model) if a.model else None) or ModelConfig().ev_tenths
    scenes = [s for s in a.scenes.split(",") if s] if a.scenes else None
    df = evaluate(a.model, a.data, evs, a.long_side, scenes, a.mertens_all, a.halo)
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
    from memopt.crossval import crossval
    from memopt.evaluate import format_table, summarize
    from memopt.fsutil import atomic_write_text

    recipe = load_train_recipe(a.config)
    finetune = None
    if a.finetune_from:
        from memopt.recipe import load_recipe

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
    from memopt.enhance import enhance_files

    out = enhance_files(a.model, a.frames, a.output, a.width, a.height, a.format, a.out_format,
                        a.threads, a.halo, split=a.split, blend=a.blend, runtime=a.runtime)
    print(f"wrote {out}")
    return 0


def cmd_convert(a) -> int:
    from memopt.convert import ConvertConfig, convert, parse_size

    h, w = parse_size(a.size)
    try:
        cfg = ConvertConfig(h, w, a.quant, a.io_type, a.samples, a.calib_long_side)
    except ValueError as e:
        raise MemoptError(str(e)) from None
    info = convert(a.model, cfg, a.output, a.data or (), a.ev)
    print(f"wrote {info['path']}: {info['bytes'] / 1e6:.2f} MB, {cfg.quant}, input {info['input_shape']} "
          f"({w}x{h} frames), I/O {info['io_type']}")
    return 0


def cmd_bench(a) -> int:
    import json

    from memopt.bench import bench_host, format_row, rows_to_csv
    from memopt.fsutil import atomic_write_text

    cfg = _bench_config(a)
    if a.device:
        from memopt.device import bench_devices, load_profile

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
    from memopt.grid import format_grid, run_grid

    cfg = _bench_config(a)
    rows = run_grid(a.model, a.sizes.split(","), a.quant.split(","), a.out, cfg, a.data or (), a.ev,
                    a.samples)
    print(format_grid(rows), end="")
    return 0


def cmd_tile(a) -> int:
    from memopt.autotune import autotune
    from memopt.convert import parse_size

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
    from memopt.experiment import run_experiment
    from memopt.recipe import load_recipe

    recipe = load_recipe(a.recipe)
    out = run_experiment(recipe, a.out, quiet=a.quiet, retry_failed=a.retry_failed)
    print((out / "results.md").read_text(), end="")
    return 0


def cmd_pick(a) -> int:
    from memopt.pick import parse_budget, pick

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
    from memopt.predict import predict

    for line in predict(a.model, top=a.top, runtime=_runtime(a)).lines():
        print(line)
    return 0


def cmd_info(a) -> int:
    from memopt.config import load_train_recipe
    from memopt.model import build_model, macs_per_megapixel, receptive_field

    cfg = load_train_recipe(a.config).model if a.config else ModelConfig()
    m = build_model(cfg)
    rf = receptive_field(cfg)
    print(f"frames {cfg.frames} at EV {list(cfg.ev_tenths)} ({EV_UNIT}); widths {list(cfg.widths)}")
    print(f"params {m.count_params():,}; {macs_per_megapixel(m) / 1e9:.2f} GMAC per output megapixel")
    print(f"receptive field: radius {rf.radius} px (full resolution); tile origins multiple of {rf.alignment} px")
    return 0


# --- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memopt", description="Fit a multi-frame low-light network in a phone's memory.")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the frameworks' own start-up and log lines (hidden by default)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    d = sub.add_parser("data", help="make, merge and check datasets").add_subparsers(dest="data_cmd", required=True, metavar="ACTION")
    s = d.add_parser("synth", help="synthesise multi-exposure bursts from clean photos")
    s.add_argument("--out", required=True)
    s.add_argument("--scenes", type=int, default=32)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--source", help="folder of clean images (default: scikit-image's sample photos)")
    s.add_argument("--size", type=int, default=512, help="crop scenes to at most SIZE x SIZE px (default 512)")
    _ev_arg(s, ModelConfig().ev_tenths)
    s.set_defaults(func=cmd_synth)
    m = d.add_parser("merge", help="combine downloaded dataset parts into one folder")
    m.add_argument("parts", nargs="+", metavar="PART")
    m.add_argument("--out", required=True)
    m.add_argument("--rename", help="rename rule for every scene, e.g. '{part}-{scene}' (needed when names clash)")
    m.set_defaults(func=cmd_merge)
    c = d.add_parser("check", help="validate a dataset: exposures, ground truth, sizes")
    c.add_argument("dir")
    _ev_arg(c, ModelConfig().ev_tenths)
    c.set_defaults(func=cmd_check)

    t = sub.add_parser("train", help="train the baseline (resumes an interrupted run)")
    t.add_argument("--config", help="TOML recipe with [model], [data], [train] sections")
    t.add_argument("--out", required=True, help="run folder (checkpoints, logs, exports)")
    t.add_argument("--data", nargs="+", help="dataset folders (overrides the recipe's [data] train)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--steps", type=int, help="steps per epoch")
    t.add_argument("--strategy", choices=("default", "mirrored", "multi-worker"),
                   help="tf.distribute strategy (multi-worker reads TF_CONFIG)")
    t.add_argument("--init", help="start from this .keras model (fine-tune)")
    t.add_argument("--force", action="store_true", help="retrain even if the run folder holds a model")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("test", help="quality of a model vs ground truth, with reference rows")
    e.add_argument("--model", help=".keras / SavedModel / .tflite (omit for reference rows only)")
    e.add_argument("--data", required=True)
    _ev_arg(e)
    e.add_argument("--long-side", type=int, help="evaluate at this size, e.g. 1024 (default: full size)")
    e.add_argument("--scenes", help="comma-separated scene names (default: all)")
    e.add_argument("--mertens-all", action="store_true", help="add Mertens fusion of every frame")
    e.add_argument("--halo", type=int, default=48, help="halo for a tile .tflite smaller than the scenes (px)")
    e.add_argument("--out", help="folder for per_scene.csv, summary.csv, summary.md")
    e.set_defaults(func=cmd_test)

    x = sub.add_parser("crossval", help="leave-scenes-out training and testing on a dataset")
    x.add_argument("--config", required=True, help="TOML recipe; its [data] train must include --data")
    x.add_argument("--data", required=True, help="the dataset whose scenes are split into folds")
    x.add_argument("--folds", type=int, default=4)
    x.add_argument("--out", required=True)
    x.add_argument("--long-side", type=int, help="test at this size, e.g. 1024")
    x.add_argument("--mertens-all", action="store_true")
    x.add_argument("--variants", help="variants to score too, e.g. ft,slim0.5,slim0.5+int8+tib (each fold's model, "
                                      "fine-tuned and calibrated on that fold's training scenes; no tiles or splits)")
    x.add_argument("--finetune-from", metavar="RECIPE", help="take [finetune] from this experiment recipe")
    x.add_argument("--fold", type=int, help="run only this fold (0-based): a quicker, smaller held-out check")
    x.set_defaults(func=cmd_crossval)

    n = sub.add_parser("enhance", help="enhance one scene: frames in increasing-EV order -> one frame")
    n.add_argument("--model", required=True)
    n.add_argument("frames", nargs="+", metavar="FRAME")
    n.add_argument("-o", "--output", required=True, help="output .yuv/.nv21/.nv12 or image file")
    n.add_argument("--width", type=int)
    n.add_argument("--height", type=int)
    n.add_argument("--format", choices=("nv21", "nv12"), help="layout of raw input frames")
    n.add_argument("--out-format", choices=("nv21", "nv12"), help="layout of a raw output (default nv21)")
    n.add_argument("--threads", type=int, help="threads for a .tflite model")
    n.add_argument("--split", help="run on lower-resolution pieces: poly<k> (polyphase) or guided<k>")
    n.add_argument("--blend", default="none", choices=("none", "feather"),
                   help="tiles: keep cores (exact when halo >= receptive field) or feather the overlaps")
    n.add_argument("--halo", type=int, default=48,
                   help="a .tflite smaller than the frames runs in tiles with this halo (px, default 48)")
    _runtime_arg(n)
    n.set_defaults(func=cmd_enhance)

    cv = sub.add_parser("convert", help="convert a model to .tflite at a fixed size")
    cv.add_argument("--model", required=True, help=".keras, SavedModel folder, or a memopt run folder")
    cv.add_argument("--size", required=True, help="full-resolution HxW, e.g. 3024x4032")
    cv.add_argument("--quant", default="none", help="none | float16 | dynamic | int8 | int16x8")
    cv.add_argument("--io-type", help="int8: uint8 (default) | int8 | float32; int16x8: int16 | float32")
    cv.add_argument("--data", nargs="+", help="dataset folders for int8 calibration (default: synthetic)")
    cv.add_argument("--samples", type=int, default=8, help="calibration samples (default 8; tiles want ~64)")
    cv.add_argument("--calib-long-side", type=int, default=4032,
                    help="calibration scenes are read at this size and cropped to a tile (default 4032)")
    _ev_arg(cv)
    cv.add_argument("-o", "--output", required=True)
    cv.set_defaults(func=cmd_convert)

    b = sub.add_parser("bench", help="benchmark .tflite files on the host (benchmark_model's figures)")
    b.add_argument("models", nargs="+", metavar="MODEL")
    b.add_argument("--device", nargs="+", metavar="PROFILE",
                   help="phone profile(s) (devices/*.toml): run benchmark_model on the phones via adb, in parallel")
    b.add_argument("--threads", type=int, help="threads (default: 2 on the host, the profile's on a phone)")
    b.add_argument("--runs", type=int, default=10)
    b.add_argument("--warmup", type=int, default=1)
    b.add_argument("--no-xnnpack", action="store_true", help="built-in kernels only (benchmark_model --use_xnnpack=false)")
    _runtime_arg(b)
    b.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    b.add_argument("--csv", help="write the rows as CSV")
    b.add_argument("--json", help="write the rows as JSON")
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("bench-grid", help="convert at several sizes and modes, benchmark each on the host")
    g.add_argument("--model", required=True)
    g.add_argument("--sizes", default="512x512,1024x1024,3024x4032", help="comma-separated HxW")
    g.add_argument("--quant", default="none,float16,dynamic,int8", help="comma-separated modes")
    g.add_argument("--out", required=True, help="folder for rows.csv and table.md (resumes)")
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--runs", type=int, default=3)
    g.add_argument("--warmup", type=int, default=1)
    g.add_argument("--no-xnnpack", action="store_true")
    g.add_argument("--timeout", type=float, default=1800.0)
    g.add_argument("--data", nargs="+", help="calibration dataset folders (default: synthetic)")
    g.add_argument("--samples", type=int, default=4)
    _ev_arg(g)
    g.set_defaults(func=cmd_grid)

    tl = sub.add_parser("tile", help="largest tile whose predicted memory fits a budget, then measured")
    tl.add_argument("--model", required=True, help=".keras / SavedModel / run folder")
    tl.add_argument("--budget", type=float, required=True, help="MB")
    tl.add_argument("--size", default="3024x4032", help="frame HxW (default 3024x4032)")
    tl.add_argument("--quant", default="int8")
    tl.add_argument("--halo", type=int, default=48)
    tl.add_argument("--align", type=int, default=8, help="the model's pooling grid in px")
    tl.add_argument("--step", type=int, default=64, help="candidate tiles are multiples of this")
    tl.add_argument("--figure", default="model", choices=("model", "pipeline"),
                    help="model: the tile model's peak (benchmark_model's figure); pipeline: plus the frames")
    tl.add_argument("--data", nargs="+", help="calibration dataset folders")
    _ev_arg(tl)
    tl.add_argument("--out", default="runs/tile", help="folder for the probed .tflite files")
    tl.add_argument("--no-measure", action="store_true")
    _runtime_arg(tl)
    tl.set_defaults(func=cmd_tile)

    r = sub.add_parser("run", help="run an experiment recipe: variants -> convert -> benchmark -> evaluate -> table")
    r.add_argument("recipe", help="TOML recipe, e.g. experiments/quick.toml")
    r.add_argument("--out", help="results folder (default results/<recipe name>)")
    r.add_argument("--retry-failed", action="store_true", help="run failed variants again (finished ones are kept)")
    r.add_argument("--quiet", action="store_true", help="no progress output (run.log still written)")
    r.set_defaults(func=cmd_run)

    pk = sub.add_parser("pick", help="choose the best variant within a memory budget; copy it with a model card")
    pk.add_argument("results", help="a results folder, e.g. results/phone-12mp")
    pk.add_argument("--budget", default="700MB", help="memory budget, e.g. 700MB (default)")
    pk.add_argument("--device", help="phone profile (devices/*.toml) or 'host' (default)")
    pk.set_defaults(func=cmd_pick)

    pr = sub.add_parser("predict", help="predict a .tflite's peak memory from the file alone")
    pr.add_argument("model")
    pr.add_argument("--no-xnnpack", action="store_true")
    _runtime_arg(pr)
    pr.add_argument("--top", type=int, default=5, help="largest tensors to list")
    pr.set_defaults(func=cmd_predict)

    i = sub.add_parser("info", help="params, MACs per megapixel and receptive field of the network")
    i.add_argument("--config", help="TOML recipe (default: the built-in ModelConfig)")
    i.set_defaults(func=cmd_info)
    return p


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
