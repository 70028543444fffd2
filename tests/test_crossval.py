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
