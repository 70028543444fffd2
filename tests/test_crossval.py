from pathlib import Path

import pytest

from memopt.study.crossval import assign_folds
from memopt.errors import MemoptError


def test_folds_are_disjoint_cover_all_and_follow_natural_order():
    names = ["1", "4", "5", "6", "8", "9", "11", "12"]
    folds = assign_folds(names, 4)
    assert folds == [["1", "8"], ["4", "9"], ["5", "11"], ["6", "12"]]
    assert sorted(sum(folds, []), key=int) == sorted(names, key=int)


@pytest.mark.parametrize("k", [1, 9])
def test_bad_fold_counts(k):
    with pytest.raises(MemoptError, match="--folds"):
        assign_folds([str(i) for i in range(8)], k)


def test_crossval_scores_model_side_variants_on_held_out_scenes(tiny_synth, tmp_path):
    from memopt.config import DataConfig, ModelConfig, TrainConfig, TrainRecipe
    from memopt.study.crossval import crossval
    from memopt.study.evaluate import summarize
    from memopt.variants import FineTuneConfig

    recipe = TrainRecipe(ModelConfig(widths=(4, 8)), DataConfig(train=(str(tiny_synth),), long_side=None),
                         TrainConfig(epochs=1, steps_per_epoch=2, batch=2, crop=32))
    ft = FineTuneConfig(epochs=1, steps_per_epoch=2, batch=2, crop=32)
    df = crossval(recipe, str(tiny_synth), 2, tmp_path, variants=["ft", "slim0.5", "slim0.5+int8+tib"], finetune=ft)
    for fold in (0, 1):
        f = df[df.fold == fold]
        for v in ("slim0.5", "slim0.5+int8+tib"):
            assert set(f[f.method == v].scene) == set(f[f.method == "model"].scene)  # same held-out scenes
    assert list(summarize(df).method[:4]) == ["model", "ft", "slim0.5", "slim0.5+int8+tib"]
    # the full-frame int8 model was converted at the test scenes' size, from the slimmed fold model
    assert list((tmp_path / "fold0" / "variants" / "tflite").glob("slim0.5_int8-*.tflite"))
    with pytest.raises(MemoptError, match="not tiles or splits"):
        crossval(recipe, str(tiny_synth), 2, tmp_path, variants=["int8+tile32h8"])
    one = crossval(recipe, str(tiny_synth), 2, tmp_path, only=1)  # fold 1 alone (its model is kept)
    assert set(one.fold) == {1} and set(one.scene) == set(df[df.fold == 1].scene)
    with pytest.raises(MemoptError, match="--fold must be between 0 and 1"):
        crossval(recipe, str(tiny_synth), 2, tmp_path, only=2)


def test_calibration_leaves_held_out_scenes_out(tiny_synth):
    from memopt.convert import representative_batches
    from memopt.frames.data import scan_dataset

    import memopt.frames.yuv

    names = sorted(s.name for s in scan_dataset(tiny_synth))
    read = []
    real = memopt.frames.yuv.read_rgb

    def spy(path, *a, **k):
        read.append(path)
        return real(path, *a, **k)

    memopt.frames.yuv.read_rgb = spy
    try:
        got = list(representative_batches([str(tiny_synth)], (-20, 0, 4), 32, 32, 3, 64, exclude=names[1:]))
    finally:
        memopt.frames.yuv.read_rgb = real
    assert len(got) == 3
    assert read and {Path(p).parent.name for p in read} == {names[0]}  # only the scene left was read
