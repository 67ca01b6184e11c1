"""The surrogate's cross-validated rho predicts every row with a fit that never saw it."""

import numpy as np

import pytest

from hirelc.methods.hirelc.surrogate import ForestSurrogate, Surrogate, cross_validated_rho, make_surrogate, spearman


def _make():
    return Surrogate(n_members=3, hidden=32, epochs=300, seed=0)


def test_on_noise_the_fit_ranks_its_own_rows_but_held_out_rows_not():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.normal(size=40)
    in_sample = spearman(list(_make().fit(x, y).predict(x)[0]), list(y))
    held_out = cross_validated_rho(x, y, _make, folds=5)
    assert in_sample > 0.7 and abs(held_out) < 0.3  # a leak of held-out rows would score like in_sample


def test_a_learnable_target_is_ranked_on_held_out_rows_and_too_few_rows_give_none():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = x[:, 0] - 0.5 * x[:, 1] ** 2
    assert cross_validated_rho(x, y, _make, folds=5) > 0.8
    assert cross_validated_rho(x[:9], y[:9], _make, folds=5) is None and cross_validated_rho(x, y, _make, 1) is None


def test_the_forest_ranks_a_cliff_among_many_near_constant_inputs():
    """What it was chosen for: accuracy falls off a cliff when one kernel is squeezed too far,
    and most of ~150 plan features barely vary across a search's evaluations."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(size=(50, 2)), 1e-4 * rng.normal(size=(50, 40))], axis=1).astype(np.float32)
    y = np.where(x[:, 0] > 0.5, 0.3, 0.95) - 0.02 * x[:, 1] + 0.005 * rng.normal(size=50)
    assert cross_validated_rho(x, y, lambda: ForestSurrogate(100, seed=0), folds=5) > 0.8
    mean, spread = ForestSurrogate(100, seed=0).fit(x, y).predict(x[:5])
    assert spread.max() > 0 and mean.shape == (5,)  # trees on bootstrap rows disagree: acquisition has a spread


def test_make_surrogate_names_the_kinds():
    assert isinstance(make_surrogate("mlp", 2, 8, 10, seed=0), Surrogate)
    with pytest.raises(ValueError, match="unknown surrogate 'svm'"):
        make_surrogate("svm", 2, 8, 10, seed=0)
