"""memopt run / pick on tiny models: end to end, resume after kill -9, bad recipes, the notebook."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memopt.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]

TINY_FT = """
[finetune]
epochs = 1
steps_per_epoch = 3
batch = 2
crop = 32
long_side = 64
data = ["{data}"]
"""


def write_recipe(path: Path, model, variants, data, size="64x64", budget=700, extra="") -> Path:
    path.write_text(f"""variants = {json.dumps(variants)}
[baseline]
model = "{model}"
[data]
eval = ["{data}"]
max_scenes = 2
[deploy]
size = "{size}"
runs = 1
budget_mb = {budget}
""" + TINY_FT.format(data=data) + extra)
    return path


@pytest.fixture(scope="session")
def foreign_model(tmp_path_factory):
    """A model on the I/O contract that memopt did not build: two plain convolutions."""
    from memopt.tfenv import keras

    inp = keras.Input((None, None, 18), name="frames")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="body")(inp)
    out = keras.layers.Conv2D(6, 1, name="to_frame")(h)
    path = tmp_path_factory.mktemp("foreign") / "team.keras"
    keras.Model(inp, out).save(path)
    return path


@pytest.fixture(scope="session")
def foreign_results(tmp_path_factory, foreign_model, tiny_synth):
    d = tmp_path_factory.mktemp("exp")
    # fp16 and prune50 on networks memopt did not write: tests/test_networks.py
    recipe = write_recipe(d / "team.toml", foreign_model, ["int8", "slim0.5", "int8+tile32h8", "int8+tib", "poly2"],
                          tiny_synth)
    assert main(["run", str(recipe), "--out", str(d / "results"), "--quiet"]) == 0
    return d / "results"


def test_foreign_model_runs_end_to_end(foreign_results, capsys):
    df = pd.read_csv(foreign_results / "results.csv")
    assert list(df.variant) == ["fp32", "int8", "slim0.5", "int8+tile32h8", "int8+tib", "poly2"]
    ok = df[df.status == "ok"]
    assert set(ok.variant) == set(df.variant)  # memopt's packed layout on a network it did not write: all rows
    tib, int8 = ok[ok.variant == "int8+tib"].iloc[0], ok[ok.variant == "int8"].iloc[0]
    assert tib.runtime == "tib" and tib.xnnpack_flags == 0x23 and tib.tflite == int8.tflite  # one file
    assert tib.psnr_gt == int8.psnr_gt  # the setting changes memory, not the output
    slim = df[df.variant == "slim0.5"].iloc[0]
    assert slim.params == 3 * 3 * 18 * 4 + 4 + 4 * 6 + 6  # the generic slimmer halved the hidden conv
    full = ok[ok.variant != "slim0.5"]
    assert (ok.model_peak_mb > 0).all() and (ok.psnr_gt > 0).all() and (full.params == 3 * 3 * 18 * 8 + 8 + 8 * 6 + 6).all()
    assert ok[ok.variant == "int8+tile32h8"].memory_basis.item() == "pipeline"
    assert ok[ok.variant == "int8"].memory_basis.item() == "model-only"
    assert ok[ok.variant == "int8"].psnr_vs_baseline.item() > 25  # int8 close to its float model
    for f in ("results.md", "quality.csv", "memory_vs_psnr.png", "latency_vs_memory.png", "run.log"):
        assert (foreign_results / f).stat().st_size > 0
    assert "| fp32 | host | yes |" in (foreign_results / "results.md").read_text()
    md = (foreign_results / "results.md").read_text()
    assert "trained the baseline" not in md  # no training record
    # but the recipe fine-tunes and calibrates on its quality data (TINY_FT): the note says so
    assert "fine-tuning (slim0.5) read the quality scenes" in md and "int8 calibration read the quality" in md
    assert main(["pick", str(foreign_results), "--budget", "700MB"]) == 0
    card = json.loads((foreign_results / "deploy" / "model_card.json").read_text())
    # in-sample quality data (the note above): ranked by fidelity, the fp32 model itself fits and wins
    assert card["ranked_by"].startswith("PSNR vs the fp32 output") and card["variant"] == "fp32"
    assert abs(card["quality"]["rgb_psnr_db"] - ok[ok.variant == "fp32"].psnr_gt.item()) < 0.011
    assert card["exposures"] == {"ev_tenths": [-20, 0, 4], "unit": "tenths of a stop",
                                 "order": "increasing EV, one frame each"}
    assert (foreign_results / "deploy" / card["file"]).is_file()
    assert "adb push" in (foreign_results / "deploy" / "MODEL_CARD.md").read_text()


def test_the_pick_deploys_at_the_phones_own_size_and_runs_without_flags(foreign_results, tmp_path, capsys):
    """A 64x64 study deployed for 80x48 frames: the wrong size is one line naming the command that makes
    the file; `memopt deploy` makes it; the file says how it runs (a poly2 split here), so `memopt
    enhance` needs no flags and gives what the explicit flags give. The card carries the ARM margin."""
    from memopt.frames.yuv import YUV420, read_frame, write_frame

    assert main(["pick", str(foreign_results), "--budget", "700MB"]) == 0
    card = json.loads((foreign_results / "deploy" / "model_card.json").read_text())
    m = card["phone_margin"]
    assert m["arm_with_sme_mb"] == round(card["memory"]["judged_mb"] * 1.16, 1) and m["fits_with_sme"]
    assert "SME" in (foreign_results / "deploy" / "MODEL_CARD.md").read_text()
    rng = np.random.default_rng(2)
    frames = []
    for e in (-20, 0, 4):
        f = tmp_path / f"ev{e}_80x48.yuv"
        write_frame(f, YUV420(rng.integers(0, 120, (48, 80), np.uint8), rng.integers(100, 150, (24, 40), np.uint8),
                              rng.integers(100, 150, (24, 40), np.uint8)))
        frames.append(str(f))
    capsys.readouterr()
    assert main(["enhance", "--model", str(foreign_results / "deploy" / card["file"]), *frames,
                 "-o", str(tmp_path / "x.yuv")]) != 0
    err = capsys.readouterr().err
    assert "takes 64x64 frames only, got 80x48" in err and "memopt deploy RESULTS --size 48x80" in err
    assert len(err.strip().splitlines()) == 1
    for variant in (None, "poly2", "tile32h8+ingraph"):
        capsys.readouterr()
        assert main(["deploy", str(foreign_results), "--size", "48x80"] + (["--variant", variant] if variant else [])) == 0
        assert ("has no row" in capsys.readouterr().out) == (variant == "tile32h8+ingraph")  # the study never ran it
    files = {p.name for p in (foreign_results / "deploy").glob("*-80x48.tflite")}
    assert files == {"fp32-80x48.tflite", "poly2-80x48.tflite", "tile32h8_ingraph-80x48.tflite"}
    # the in-graph loop (a variant the study did not run) takes the whole frame: no flags, the float
    # full frame's output up to a byte's rounding
    for name, out in (("fp32", "full"), ("tile32h8_ingraph", "loop")):
        assert main(["enhance", "--model", str(foreign_results / "deploy" / f"{name}-80x48.tflite"), *frames,
                     "-o", str(tmp_path / f"{out}.yuv")]) == 0
    a, b = (read_frame(tmp_path / f"{n}.yuv", width=80, height=48) for n in ("full", "loop"))
    assert np.abs(a.y.astype(int) - b.y).max() <= 1 and np.abs(a.v.astype(int) - b.v).max() <= 1
    poly = foreign_results / "deploy" / "poly2-80x48.tflite"
    assert main(["enhance", "--model", str(poly), *frames, "-o", str(tmp_path / "told.yuv")]) == 0
    assert main(["enhance", "--model", str(poly), "--split", "poly2", *frames, "-o", str(tmp_path / "flag.yuv")]) == 0
    a, b = (read_frame(tmp_path / f"{n}.yuv", width=80, height=48) for n in ("told", "flag"))
    assert np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u)


def test_nothing_fits_is_a_report(foreign_results, capsys):
    capsys.readouterr()
    assert main(["pick", str(foreign_results), "--budget", "1MB"]) == 1
    assert "nothing fits 1 MB" in capsys.readouterr().out
    assert main(["pick", str(foreign_results), "--device", "devices/none.toml"]) == 2
    assert "no rows for device 'none'" in capsys.readouterr().err
    assert main(["pick", str(foreign_results), "--budget", "lots"]) == 2


def test_nothing_fits_in_the_table(foreign_results, foreign_model, tiny_synth, tmp_path, capsys):
    import shutil

    shutil.copytree(foreign_results, tmp_path / "r")  # its rows are kept: the run only writes the report
    recipe = write_recipe(tmp_path / "tight.toml", foreign_model, ["fp32"], tiny_synth, budget=1)
    assert main(["run", str(recipe), "--out", str(tmp_path / "r"), "--quiet"]) == 0  # not an error
    assert "**Nothing fits 1 MB.**" in capsys.readouterr().out


@pytest.mark.parametrize("body,match", [
    ('variants = ["fp32"]\nspeed = 1\n[baseline]\nmodel = "MODEL"\n', "unknown key"),
    ('variants = ["fp32"]\n[baseline]\nmodel = "MODEL"\n[deploy]\nbudget = 700\n', r"\[deploy\]: unknown key"),
    ('variants = ["int9"]\n[baseline]\nmodel = "MODEL"\n', "unknown part 'int9'"),
    ('variants = ["fp32"]\n[baseline]\nmodel = "nowhere/model.keras"\n', "does not exist"),
    ('variants = ["fp32"]\n[baseline]\ntrain = "nowhere.toml"\n', "does not exist"),
    ('variants = ["fp32"]\n[baseline]\n', "exactly one of model"),
    ('variants = []\n[baseline]\nmodel = "MODEL"\n', "non-empty list"),
    ('variants = ["fp32"]\n[baseline]\nmodel = "MODEL"\n[deploy]\nsize = "100x"\n', "HxW"),
    ('variants = ["fp32"]\n[baseline]\nmodel = "MODEL"\n[deploy]\ndevices = ["pixel9"]\n', "neither 'host'"),
    ('variants = ["fp32"]\n[baseline]\nmodel = "MODEL"\n[data]\neval = ["synthetic:x"]\n', "synthetic:<scenes>:<seed>"),
    ('variants = ["fp32"\n', "not valid TOML"),
])
def test_bad_recipes_are_one_line(body, match, foreign_model, tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text(body.replace("MODEL", str(foreign_model)))
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("memopt: error:")
    assert pytest.importorskip("re").search(match, err), err


def test_missing_recipe_and_results(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.toml")]) == 2
    assert main(["pick", str(tmp_path)]) == 2
    assert "run `memopt run" in capsys.readouterr().err


def test_resume_after_kill(tiny_run, tiny_synth, tmp_path):
    """kill -9 mid-variant; the rerun finishes with every row exactly once."""
    variants = ["fp32", "int8"]
    recipe = write_recipe(tmp_path / "r.toml", tiny_run / "model.keras", variants, tiny_synth)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "memopt", "run", str(recipe), "--out", str(out), "--quiet"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until fp32 is done and the next variant is running
        if (out / "rows" / "fp32@host.json").exists() and (out / "logs" / "int8.log").exists():
            break
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)
    else:
        pytest.fail("the run never reached its second variant")
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker, mid-variant
    proc.wait()
    done_before = sorted(p.name for p in (out / "rows").glob("*.json"))
    assert "fp32@host.json" in done_before and len(done_before) < len(variants)
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    df = pd.read_csv(out / "results.csv")
    assert sorted(df.variant) == sorted(variants) and (df.status == "ok").all()
    assert not list((out / "rows").glob(".*"))  # no temporary files left behind
    log = (out / "run.log").read_text()
    assert log.count("fp32: started") == 1  # the finished row was kept, not rerun
    trained = set(json.loads((tiny_run / "model.json").read_text())["train_scenes"])
    k = len(trained & {"s0000", "s0001"})  # max_scenes = 2: the first two scenes are scored
    md = (out / "results.md").read_text()
    assert (f"**In-sample:** {k} of the 2 quality scenes trained the baseline" in md) == (k > 0)


def test_notebook_executes(foreign_results, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "memory_vs_psnr.ipynb", as_version=4)
    os.environ["MEMOPT_RESULTS"] = str(foreign_results)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        del os.environ["MEMOPT_RESULTS"]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert any("dB" in o.get("text", "") for o in outputs)  # the pick line
