"""The ``memopt`` command line: every subcommand and its options (the commands are memopt.cli.commands's)."""
from __future__ import annotations

import argparse

from memopt.config import EV_UNIT, ModelConfig


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


def _runtime_arg(p, default: str | None = ""):
    p.add_argument("--runtime", default=default, metavar="SETTING",
                   help="how LiteRT runs the .tflite: tib (XNNPACK transient indirection buffer), wcache "
                        "(XNNPACK weight cache file), tib-wcache, noxnn (XNNPACK off); default: XNNPACK's defaults")


def _network_args(p, model_required: bool = True):
    """--io, --trust (and --builder): the network's tensor layout and whether its code may run."""
    p.add_argument("--io", metavar="FILE.toml", help="the network's tensor layout (keys inputs, outputs, range, chroma, "
                                                    "matrix; docs/bring-your-own-network.md); default: memopt's packed")
    p.add_argument("--trust", action="store_true", help="let Keras load Lambda layers / memopt import --builder code")
    if not model_required:
        p.add_argument("--builder", metavar="FILE.py:FUNCTION", help="build(height, width) -> tf_keras model with "
                                                                      "its weights, for networks built for one size")


# --- parser --------------------------------------------------------------------------------------

def build_parser(commands: dict) -> argparse.ArgumentParser:
    """The `memopt` parser; ``commands`` maps cmd_<name> to the functions in memopt.cli.commands."""
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
    s.set_defaults(func=commands["cmd_synth"])
    m = d.add_parser("merge", help="combine downloaded dataset parts into one folder")
    m.add_argument("parts", nargs="+", metavar="PART")
    m.add_argument("--out", required=True)
    m.add_argument("--rename", help="rename rule for every scene, e.g. '{part}-{scene}' (needed when names clash)")
    m.set_defaults(func=commands["cmd_merge"])
    c = d.add_parser("check", help="validate a dataset: exposures, ground truth, sizes")
    c.add_argument("dir")
    _ev_arg(c, ModelConfig().ev_tenths)
    c.set_defaults(func=commands["cmd_check"])

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
    t.set_defaults(func=commands["cmd_train"])

    e = sub.add_parser("test", help="quality of a model vs ground truth, with reference rows")
    e.add_argument("--model", help=".keras / SavedModel / .tflite (omit for reference rows only)")
    e.add_argument("--data", required=True)
    _ev_arg(e)
    e.add_argument("--long-side", type=int, help="evaluate at this size, e.g. 1024 (default: full size)")
    e.add_argument("--scenes", help="comma-separated scene names (default: all)")
    e.add_argument("--mertens-all", action="store_true", help="add Mertens fusion of every frame")
    e.add_argument("--halo", type=int, default=48, help="halo for a tile .tflite smaller than the scenes (px)")
    e.add_argument("--out", help="folder for per_scene.csv, summary.csv, summary.md")
    _network_args(e)
    e.set_defaults(func=commands["cmd_test"])

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
    x.set_defaults(func=commands["cmd_crossval"])

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
    n.add_argument("--halo", type=int,
                   help="a .tflite smaller than the frames runs in tiles with this halo (px; default: the one a "
                        "deployed file carries, else 48)")
    n.add_argument("--context", help="a window model of a network with global ops: its global values by exact "
                                     "streaming (stream, the default) or from a smaller frame (ctx4)")
    _runtime_arg(n, None)  # not given: a deployed file's own setting
    _network_args(n)
    n.set_defaults(func=commands["cmd_enhance"])

    cv = sub.add_parser("convert", help="convert a model to .tflite at a fixed size")
    cv.add_argument("--model", help=".keras, SavedModel folder, or a memopt run folder")
    _network_args(cv, model_required=False)
    cv.add_argument("--size", required=True, help="full-resolution HxW, e.g. 3024x4032")
    cv.add_argument("--quant", default="none", help="none | float16 | dynamic | int8 | int16x8")
    cv.add_argument("--io-type", help="int8: uint8 (default) | int8 | float32; int16x8: int16 | float32")
    cv.add_argument("--data", nargs="+", help="dataset folders for int8 calibration (default: synthetic)")
    cv.add_argument("--samples", type=int, default=8, help="calibration samples (default 8; tiles want ~64)")
    cv.add_argument("--calib-long-side", type=int, default=4032,
                    help="calibration scenes are read at this size and cropped to a tile (default 4032)")
    _ev_arg(cv)
    cv.add_argument("-o", "--output", required=True)
    cv.set_defaults(func=commands["cmd_convert"])

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
    b.set_defaults(func=commands["cmd_bench"])

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
    g.set_defaults(func=commands["cmd_grid"])

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
    tl.set_defaults(func=commands["cmd_tile"])

    r = sub.add_parser("run", help="run an experiment recipe: variants -> convert -> benchmark -> evaluate -> table")
    r.add_argument("recipe", help="TOML recipe, e.g. experiments/quick.toml")
    r.add_argument("--out", help="results folder (default results/<recipe name>)")
    r.add_argument("--retry-failed", action="store_true", help="run failed variants again (finished ones are kept)")
    r.add_argument("--quiet", action="store_true", help="no progress output (run.log still written)")
    r.set_defaults(func=commands["cmd_run"])

    pk = sub.add_parser("pick", help="choose the best variant within a memory budget; copy it with a model card")
    pk.add_argument("results", help="a results folder, e.g. results/phone-12mp")
    pk.add_argument("--budget", default="700MB", help="memory budget, e.g. 700MB (default)")
    pk.add_argument("--device", help="phone profile (devices/*.toml) or 'host' (default)")
    pk.set_defaults(func=commands["cmd_pick"])

    dp = sub.add_parser("deploy", help="the picked variant converted for another frame size (the phone's own)")
    dp.add_argument("results", help="a results folder memopt run wrote, e.g. results/phone-12mp")
    dp.add_argument("--size", required=True, nargs="+", help="full-resolution HxW, e.g. 3000x4000 (several allowed)")
    dp.add_argument("--variant", help="a variant of the study (default: the pick in deploy/model_card.json)")
    dp.set_defaults(func=commands["cmd_deploy"])

    pr = sub.add_parser("predict", help="predict a .tflite's peak memory from the file alone")
    pr.add_argument("model")
    pr.add_argument("--no-xnnpack", action="store_true")
    _runtime_arg(pr)
    pr.add_argument("--top", type=int, default=5, help="largest tensors to list")
    pr.set_defaults(func=commands["cmd_predict"])

    ins = sub.add_parser("inspect", help="any network: tensors, layout (checked or proposed), params, MACs, "
                                          "receptive field, alignment, non-local operations")
    ins.add_argument("model", nargs="?", help=".keras / .h5 / SavedModel folder / .tflite")
    _network_args(ins, model_required=False)
    _ev_arg(ins)
    ins.add_argument("--probe-size", type=int, default=256, help="probe frame side in px (default 256)")
    ins.set_defaults(func=commands["cmd_inspect"])

    i = sub.add_parser("info", help="params, MACs per megapixel and receptive field of memopt's U-Net")
    i.add_argument("--config", help="TOML recipe (default: the built-in ModelConfig)")
    i.set_defaults(func=commands["cmd_info"])
    return p


