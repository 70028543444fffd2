import pandas as pd
import pytest

from memopt.cli import main
from memopt.errors import MemoptError
from memopt.naming import parse_variant


def test_variant_grammar():
    v = parse_variant("int8+tile384h48")
    assert v.quant == "int8" and v.tile.tile == 384 and v.tile.halo == 48 and v.split is None
    assert v.model_size(3024, 4032) == (384, 384)
    assert parse_variant("poly2").model_size(3024, 4032) == (1512, 2016)
    assert parse_variant("fp32").quant == "none" and parse_variant("fp32").model_size(8, 16) == (8, 16)
    for bad, match in (("int9", "unknown part"), ("int8+fp16", "two quantization"), ("", "empty"),
                       ("tile384h48+tile256h48", "two tiling"), ("tile100h8", "multiple of 8")):
        with pytest.raises(MemoptError, match=match):
            parse_variant(bad)


def test_pipeline_study_on_tiny_scenes(tiny_run, tiny_synth, tmp_path, capsys):
    args = ["pipeline-study", "--model", str(tiny_run), "--data", str(tiny_synth), "--variants",
            "int8+tile32h8,poly2", "--size", "64x64", "--scenes", "s0000,s0001", "--out", str(tmp_path)]
    assert main(args) == 0
    df = pd.read_csv(tmp_path / "rows.csv")
    assert list(df.variant) == ["fp32", "int8+tile32h8", "poly2"]  # the baseline is always measured
    assert (df.pipeline_peak_mb > 0).all() and (df.scenes == 2).all()
    assert df.psnr_vs_baseline[0] == "identical" and float(df.psnr_vs_baseline[1]) > 20
    assert not (tmp_path / "scratch").exists()
    assert main(args) == 0  # finished: nothing re-run, no duplicate rows
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 3
