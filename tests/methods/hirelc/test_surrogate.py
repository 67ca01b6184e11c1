"""The surrogate's cross-validated rho predicts every row with a fit that never saw it."""

import numpy as np

from hirelc.methods.hirelc.surrogate import Surrogate, cross_validated_rho, spearman


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
