import pytest

from memopt.crossval import assign_folds
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
    from memopt.crossval import crossval
    from memopt.evaluate import summarize
    from memopt.variants import FineTuneConfig

    recipe = TrainRecipe(ModelConfig(widths=(4, 8)), DataConfig(train=(str(tiny_synth),), long_side=None),
                         TrainConfig(epochs=1, steps_per_epoch=2, batch=2, crop=32))
    ft = FineTuneConfig(epochs=1, steps_per_epoch=2, batch=2, crop=32)
    df = crossval(recipe, str(tiny_synth), 2, tmp_path, variants=["ft", "slim0.5"], finetune=ft)
    for fold in (0, 1):
        f = df[df.fold == fold]
        assert set(f[f.method == "slim0.5"].scene) == set(f[f.method == "model"].scene)  # same held-out scenes
    assert list(summarize(df).method[:3]) == ["model", "ft", "slim0.5"]
    with pytest.raises(MemoptError, match="model-side variants only"):
        crossval(recipe, str(tiny_synth), 2, tmp_path, variants=["int8"])
