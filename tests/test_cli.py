import subprocess
import sys

import numpy as np
import pytest

from conftest import SICE
from memopt.cli.commands import main
from memopt.frames.yuv import read_yuv


def test_cli_returns_nonzero_on_failure(tmp_path, capsys):
    assert main(["enhance", "--model", str(tmp_path / "none.keras"), "a.yuv", "-o", "o.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memopt: error:") and "no such model" in err and "Traceback" not in err
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert main(["no-such-command"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 0\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "epochs" in capsys.readouterr().err


def test_console_script_exit_status_propagates(tmp_path):
    r = subprocess.run([sys.executable, "-m", "memopt", "data", "check", str(tmp_path / "nowhere")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"memopt: error: {tmp_path / 'nowhere'}: no such dataset folder"


def test_data_check_exit_status(tiny_synth, tmp_path, capsys):
    assert main(["data", "check", str(tiny_synth)]) == 0
    assert "6 of 6 scenes OK" in capsys.readouterr().out
    assert main(["data", "check", str(tiny_synth), "--ev=-20,0,10"]) == 1
    out = capsys.readouterr().out
    assert "s0000: missing exposure(s) EV [10]" in out and "0 of 6 scenes OK" in out


def test_test_command_prints_table_and_writes_csv(tiny_run, tiny_synth, tmp_path, capsys):
    assert main(["test", "--model", str(tiny_run / "model.keras"), "--data", str(tiny_synth),
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("| model |", "| middle |", "| mertens |", "| gt-yuv420 |"):
        assert row in out
    import pandas as pd

    df = pd.read_csv(tmp_path / "per_scene.csv")
    assert len(df) == 6 * 4 and set(df.columns) == {"scene", "method", "psnr_rgb", "psnr_y", "ssim"}
    assert (df.psnr_rgb > 5).all()


def test_enhance_yuv_and_image_outputs(tiny_run, tiny_synth, tmp_path):
    s = tiny_synth / "s0000"
    frames = [str(s / f"ev{e}.yuv") for e in (-20, 0, 4)]
    assert main(["enhance", "--model", str(tiny_run / "model.keras"), *frames, "-o", str(tmp_path / "o.nv12"),
                 "--out-format", "nv12"]) == 0
    out = read_yuv(tmp_path / "o.nv12")
    ref = read_yuv(s / "ev0.yuv")
    assert (out.width, out.height) == (ref.width, ref.height)
    assert main(["enhance", "--model", str(tiny_run / "saved_model"), *frames, "-o", str(tmp_path / "o.png")]) == 0
    assert (tmp_path / "o.png").stat().st_size > 0
    assert main(["enhance", "--model", str(tiny_run / "model.keras"), *frames[:2], "-o", str(tmp_path / "x.png")]) == 2


def test_enhance_any_contract_model(tmp_path, tiny_synth):
    """A plain Keras model memopt did not build (mean of the frames) runs through enhance."""
    from memopt.tfenv import keras

    inp = keras.Input((None, None, 18))
    conv = keras.layers.Conv2D(6, 1, use_bias=False)
    model = keras.Model(inp, conv(inp))
    conv.set_weights([np.tile(np.eye(6, dtype=np.float32) / 3, (3, 1))[None, None]])
    model.save(tmp_path / "mean.keras")
    s = tiny_synth / "s0001"
    frames = [str(s / f"ev{e}.yuv") for e in (-20, 0, 4)]
    assert main(["enhance", "--model", str(tmp_path / "mean.keras"), *frames, "-o", str(tmp_path / "m.yuv")]) == 0
    got = read_yuv(tmp_path / "m.yuv").y.astype(int)
    want = np.mean([read_yuv(f).y.astype(int) for f in frames], axis=0)
    assert np.abs(got - want).max() <= 1


def test_off_contract_model_is_refused(tmp_path, tiny_synth, capsys):
    from memopt.tfenv import keras

    inp = keras.Input((None, None, 18))
    keras.Model(inp, keras.layers.Conv2D(3, 1)(inp)).save(tmp_path / "rgb.keras")
    s = tiny_synth / "s0001"
    frames = [str(s / f"ev{e}.yuv") for e in (-20, 0, 4)]
    assert main(["enhance", "--model", str(tmp_path / "rgb.keras"), *frames, "-o", str(tmp_path / "m.yuv")]) == 2
    err = capsys.readouterr().err
    assert "output 0 has shape" in err and "memopt inspect" in err and err.count("\n") == 1


@pytest.mark.skipif(not SICE.is_dir(), reason="../shared/data/sice-subset not present (only on the team's machines)")
def test_sice_reference_rows(capsys):
    """Real data: the reference rows on one SICE scene at a small size, frames chosen by luma rank."""
    assert main(["test", "--data", str(SICE), "--scenes", "4", "--ev=-20,0,10", "--long-side", "256"]) == 0
    out = capsys.readouterr().out
    middle = float(out.split("| middle |")[1].split("|")[0])
    mertens = float(out.split("| mertens |")[1].split("|")[0])
    assert 10 < middle < mertens < 40


def test_enhance_with_tflite_never_imports_tensorflow(tiny_run, tiny_synth, tmp_path):
    """A .tflite runs through LiteRT alone; its output matches the Keras model's."""
    from memopt.tfenv import tf
    from memopt.train import load_keras

    model = load_keras(tiny_run / "model.keras")
    s = tiny_synth / "s0002"
    frames = [str(s / f"ev{e}.yuv") for e in (-20, 0, 4)]
    h, w = read_yuv(frames[0]).height, read_yuv(frames[0]).width
    fn = tf.function(lambda x: model(x), input_signature=[tf.TensorSpec((1, h // 2, w // 2, 18), tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    (tmp_path / "m.tflite").write_bytes(conv.convert())
    code = ("import sys; from memopt.cli.commands import main; "
            f"rc = main(['enhance', '--model', {str(tmp_path / 'm.tflite')!r}, *{frames!r}, '-o', {str(tmp_path / 't.yuv')!r}]); "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert main(["enhance", "--model", str(tiny_run / "model.keras"), *frames, "-o", str(tmp_path / "k.yuv")]) == 0
    a, b = read_yuv(tmp_path / "t.yuv").y.astype(int), read_yuv(tmp_path / "k.yuv").y.astype(int)
    assert np.abs(a - b).max() <= 1
