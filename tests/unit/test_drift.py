import numpy as np

from models.drift import psi, reference_bins


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 2))
    ref = reference_bins(X, ["a", "b"])
    assert len(ref["a"]["shares"]) == len(ref["a"]["edges"]) + 1
    assert abs(sum(ref["a"]["shares"]) - 1) < 1e-6
    assert psi(ref["a"], rng.normal(size=3000)) < 0.05
    assert psi(ref["a"], rng.normal(loc=1.0, size=3000)) > 0.25


def test_constant_features_have_one_bin_and_no_drift_when_unchanged():
    X = np.zeros((100, 1))
    ref = reference_bins(X, ["flag"])
    assert psi(ref["flag"], [0.0] * 50) == 0.0
    assert psi(ref["flag"], [1.0] * 50) > 1.0
