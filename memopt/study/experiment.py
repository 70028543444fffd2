"""``memopt run RECIPE``: baseline -> variants -> convert -> benchmark -> evaluate -> table.

Stages, in order:
  1. data      eval / calibration specs resolved (synthetic ones synthesised once)
  2. baseline  the team's model, or one trained from the recipe's training recipe (resumable)
  3. scenes    every eval scene resized to the deployment size, as NV21 frames, in scratch/
  4. variants  one ``python -m memopt.study.variant_worker`` process per variant (memopt.study.variant_worker):
               a crash, an out-of-memory kill or a timeout becomes a failed row with its reason
  5. report    results.csv, quality.csv, results.md and the plots (memopt.study.report)

Everything lands in ``results/<recipe>/``: rows/ holds one JSON per variant and device, written
atomically when the variant finishes, so a run stopped at any point (even kill -9) resumes where
it stopped when started again: finished rows are kept and never duplicated. ``run.log`` records
the run; ``logs/<variant>.log`` holds each worker's output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from memopt.errors import MemoptError, some
from memopt.frames.scenes import in_sample, prepare_scenes, resolve_data, resolve_train_data
from memopt.fsutil import atomic_write_text
from memopt.network.report import network_report
from memopt.study.recipe import RunRecipe
from memopt.study import tflite_baseline
from memopt.study.results import row_path, slug
from memopt.variants import REGISTRY, parse_variant


class Log:
    """Lines to run.log (always) and to the terminal (unless quiet)."""

    def __init__(self, path: Path, quiet: bool = False):
        self.path, self.quiet = path, quiet

    def __call__(self, msg: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(msg)


def _baseline(recipe: RunRecipe, scratch: Path, log):
    """The baseline's NetworkSource and its EVs (tenths of a stop)."""
    from memopt.config import load_train_recipe
    from memopt.network.source import NetworkSource

    b = recipe.baseline
    src = b.source()
    if src is not None:
        src = src.pinned()
    if src is not None and tflite_baseline.is_tflite(src.model):
        return src, _tflite_evs(src, b.ev_tenths)
    if src is not None:
        from memopt.convert import network_evs

        return src, network_evs(src, src.load(), b.ev_tenths or None)
    tr = load_train_recipe(b.train)
    run = scratch / "baseline"
    if not (run / "model.keras").exists():
        log(f"baseline: training {b.train} into {run}")
        from memopt.train import train

        train(resolve_train_data(tr, scratch), run, verbose=2)
    return NetworkSource(model=str(run / "model.keras")), tr.model.ev_tenths


def _tflite_evs(src, ev_tenths) -> tuple[int, ...]:
    """The EVs a .tflite baseline takes: the recipe's, the file's own (memopt_io), the layout's, or
    the default list when its frame count fits."""
    from memopt.config import model_evs
    from memopt.lite.embed import read
    from memopt.lite.runner import load_runner

    if ev_tenths:
        return src.io.resolve_evs(tuple(ev_tenths))
    found = read(src.model)
    if found and found[1]:
        return tuple(found[1])
    if not src.io.needs_all_frames:
        return src.io.explicit_evs
    return src.io.resolve_evs(model_evs(src.model, load_runner(src.model, layout=src.io).frames))


def _quality_note(recipe: RunRecipe, out: Path) -> str:
    """What of the quality data (the first eval source) is in-sample: scenes that trained the
    baseline, fine-tuning data or calibration data that read the quality scenes; or ''."""
    plan = out / "scratch" / "plan.json"
    if not plan.is_file():
        return ""
    p = json.loads(plan.read_text())
    sources = list(recipe.data.eval) + [x for x in recipe.data.eval_if_present if Path(x).is_dir()]
    folder = (p.get("eval_folders") or sources)[0]  # plans from before eval_folders: the recipe's
    dirs = next(iter(p["eval"].values()))
    if not Path(folder).is_dir():
        return ""
    model = p["model"]["model"] if isinstance(p["model"], dict) else p["model"]
    k = len(in_sample(Path(model), folder) & {Path(d).name for d in dirs}) if model else 0
    notes = [f"{k} of the {len(dirs)} quality scenes trained the baseline: PSNR/SSIM vs ground truth is "
             "in-sample there, and favours fine-tuned variants; PSNR vs fp32 is the variant's own cost."] if k else []
    same = Path(folder).resolve()
    variants = [parse_variant(v) for v in recipe.variants]
    tuned = [v.name for v in variants if any(REGISTRY[kind].model_side for kind, _ in v.steps)]
    if tuned and any(Path(f).resolve() == same for f in _finetune_folders(p)):
        notes.append(f"fine-tuning ({', '.join(tuned[:3])}{', ...' if len(tuned) > 3 else ''}) read the quality "
                     "scenes themselves ([finetune] data, else the baseline's training folders): their PSNR/SSIM vs ground truth is in-sample; judge them "
                     "by PSNR vs fp32 or on held-out scenes.")
    calibrated = [v.name for v in variants if v.quant.mode in ("int8", "int16x8")]
    if calibrated and any(Path(f).resolve() == same for f in p.get("calibration") or ()):
        notes.append("int8 calibration read the quality scenes (the default without [data] calibration): "
                     "their ranges are in-sample.")
    return " ".join(notes)


def _finetune_folders(plan: dict) -> tuple[str, ...]:
    """The folders fine-tuning reads: [finetune] data, else the baseline's own training data."""
    from memopt.network.source import NetworkSource
    from memopt.variants.finetune import FineTuneConfig, finetune_data

    try:
        src = NetworkSource.from_dict(plan["model"]) if isinstance(plan["model"], dict) else None
        return finetune_data(src, FineTuneConfig(**plan["finetune"]))[0] if src else ()
    except (MemoptError, KeyError, TypeError, ValueError):
        return tuple((plan.get("finetune") or {}).get("data") or ())


def device_keys(recipe: RunRecipe) -> list[str]:
    return [d if d == "host" else Path(d).stem for d in recipe.deploy.devices]


def run_experiment(recipe: RunRecipe, out=None, quiet: bool = False, retry_failed: bool = False) -> Path:
    """Run (or resume) the recipe; returns the results folder. Failed rows are final unless
    ``retry_failed``."""
    from tqdm import tqdm

    from memopt.study.report import write_report

    out = Path(out or Path("results") / recipe.name)
    scratch = out / "scratch"
    for sub in ("rows", "logs", "models"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    scratch.mkdir(exist_ok=True)
    log = Log(out / "run.log", quiet)
    log(f"run {recipe.name}: {len(recipe.variants)} variants at {recipe.deploy.size}, budget "
        f"{recipe.deploy.budget_mb:g} MB, devices {', '.join(recipe.deploy.devices)}")
    keys = device_keys(recipe)
    if retry_failed:
        for p in (out / "rows").glob("*.json"):
            if json.loads(p.read_text()).get("status") != "ok":
                p.unlink()
    todo = [v for v in recipe.variants if not all(row_path(out, v, k).exists() for k in keys)]
    if todo:
        src, evs = _baseline(recipe, scratch, log)
        net = network_report(src, evs, scratch)
        ops = net["non_local_ops"]
        glob = [o["layer"] for o in ops if o["kind"] != "unknown"]
        probed = [o["layer"] for o in ops if o["kind"] == "unknown"]  # Lambdas: the window's probe decides
        log(f"network: {net['probe']}" + (f"; global: {some(glob, 'global operations', 8)}" if glob else "")
            + (f"; the probe decides: {some(probed, 'Lambdas', 8)}" if probed else ""))
        h, w = recipe.deploy.hw
        sources = list(recipe.data.eval) + [s for s in recipe.data.eval_if_present if Path(s).is_dir()]
        skipped = [s for s in recipe.data.eval_if_present if not Path(s).is_dir()]
        if skipped:
            log(f"eval data not present, skipped: {', '.join(skipped)}")
        if not sources:
            raise MemoptError("no eval data present: the recipe's [data] eval_if_present folders are all missing")
        eval_dirs, eval_folders = {}, []
        for spec in sources:
            folder = resolve_data(spec, scratch, evs)
            eval_folders.append(folder)
            tag = Path(spec).name if not spec.startswith("synthetic") else spec.replace(":", "-")
            eval_dirs[tag] = [str(d) for d in prepare_scenes(folder, evs, h, w, scratch / "eval" / tag,
                                                             recipe.data.max_scenes)]
        calib = [resolve_data(s, scratch, evs) for s in recipe.data.calibration] or \
                [resolve_data(s, scratch, evs) for s in sources]
        from memopt.config import to_dict

        plan = {"out": str(out), "model": src.to_dict(), "network": net, "ev_tenths": list(evs), "height": h, "width": w,
                "threads": recipe.deploy.threads, "runs": recipe.deploy.runs, "devices": list(recipe.deploy.devices),
                "eval": eval_dirs, "eval_folders": eval_folders, "calibration": calib,
                "finetune": {**to_dict(recipe.finetune),
                             "data": [resolve_data(s, scratch, evs) for s in recipe.finetune.data]}}
        atomic_write_text(scratch / "plan.json", json.dumps(plan, indent=1))
        for v in tqdm(todo, desc=f"run {recipe.name}", unit="variant", disable=quiet):
            _run_one(v, out, scratch / "plan.json", keys, recipe.deploy.timeout_s, log)
    rows = []
    for v in recipe.variants:
        for k in keys:
            p = row_path(out, v, k)
            if p.exists():
                rows.append(json.loads(p.read_text()))
    write_report(rows, out, recipe.deploy.budget_mb, recipe.name, _quality_note(recipe, out))
    log(f"results: {out / 'results.md'}")
    return out


def _run_one(variant: str, out: Path, plan: Path, keys, timeout_s: float, log) -> None:

    log(f"{variant}: started")
    t0 = time.time()
    logfile = out / "logs" / f"{slug(variant)}.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    with open(logfile, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "memopt.study.variant_worker", str(plan), variant],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            rc = proc.wait(timeout=timeout_s)
            reason = "" if rc == 0 else ("killed by signal %d (out of memory?)" % -rc if rc < 0 else _last_error(logfile))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reason = f"timed out after {timeout_s:.0f} s (raise [deploy] timeout_s)"
    if reason:
        for k in keys:
            if not row_path(out, variant, k).exists():
                atomic_write_text(row_path(out, variant, k), json.dumps(
                    {"variant": variant, "device": k, "status": "failed", "reason": reason}, indent=1))
        log(f"{variant}: FAILED: {reason} (log: {logfile})")
    else:
        log(f"{variant}: done in {time.time() - t0:.0f} s")


def _last_error(logfile: Path) -> str:
    lines = [ln.strip() for ln in logfile.read_text(errors="replace").splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("memopt: error:")]
    msg = errs[-1][len("memopt: error:"):].strip() if errs else (lines[-1] if lines else "no output")
    return msg[:300]
