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


def test_a_seasonal_feature_is_compared_with_the_same_months_of_the_training_data():
    """A meter ratio that sits low every autumn and high every summer: a few weeks of October
    rows are a shift against the whole year, and none against the training Octobers."""
    rng = np.random.default_rng(1)
    months = np.repeat(np.arange(1, 13), 1000)
    level = np.where(np.isin(months, [6, 7, 8]), 1.08, np.where(np.isin(months, [10, 11]), 0.93, 1.0))
    X = (level + rng.normal(0, 0.02, months.size)).reshape(-1, 1)
    ref = reference_bins(X, ["ratio"], months=months)["ratio"]
    assert set(ref["shares_by_month"]) == {str(m) for m in range(1, 13)}
    october = 0.93 + rng.normal(0, 0.02, 2000)
    assert psi(ref, october) > 0.25                          # against the whole year
    assert psi(ref, october, [10] * 2000) < 0.05             # against the training Octobers
    assert psi(ref, october, [7] * 2000) > 1.0               # and an October in July is drift
    mixed = np.concatenate([october, 1.0 + rng.normal(0, 0.02, 1000)])
    assert psi(ref, mixed, [10] * 2000 + [12] * 1000) < 0.05  # two months, mixed as they come


def test_months_the_reference_lacks_count_at_the_whole_years_shares():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 1))
    ref = reference_bins(X, ["a"], months=[1] * 2000 + [2] * 600 + [3] * 400)["a"]
    assert set(ref["shares_by_month"]) == {"1", "2"}         # March has too few rows of its own
    values = rng.normal(size=1000)
    assert psi(ref, values, [3] * 1000) == psi(ref, values)
    # A card written before the months were kept: the whole year's shares.
    old = {"edges": ref["edges"], "shares": ref["shares"]}
    assert psi(old, values, [1] * 1000) == psi(old, values)
