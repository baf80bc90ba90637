"""The held-out validation part of a training list."""
import pytest

from avtoolkit.datasets.holdout import holdout_indices


def test_holdout_indices_disjoint_stratified_deterministic():
    labels = [i % 4 for i in range(40)]
    train, val = holdout_indices(labels, 0.2, seed=3)
    assert set(train).isdisjoint(val)
    assert sorted(train + val) == list(range(40))
    assert sorted(labels[i] for i in val) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert holdout_indices(labels, 0.2, seed=3) == (train, val)
    assert holdout_indices(labels, 0.2, seed=4)[1] != val
    # unlabelled or multi-label entries: one stratum
    multi = [[0, 1], [2], [1, 3], [0, 2], [3, 1]] * 4
    train, val = holdout_indices(multi, 0.25, seed=0)
    assert len(val) == 5 and set(train).isdisjoint(val)
    with pytest.raises(ValueError, match='empty'):
        holdout_indices([0, 1, 2], 0.1)
    with pytest.raises(ValueError, match='val_fraction'):
        holdout_indices(labels, 0.0)
