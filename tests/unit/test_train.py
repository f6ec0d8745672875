"""models.train on a small simulated world: temporal folds, both families tried, calibrated
probabilities, a model that ranks better than chance on the holdout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from config.files import load_configs
from config.settings import CONFIG_DIR
from models.simulate import simulate_world
from models.snapshots import build_snapshots
from models.train import FOLDS, temporal_folds, train

CONFIGS = load_configs(CONFIG_DIR)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder: Path = tmp_path_factory.mktemp("world")
    simulate_world(folder, firms=60, months=14, seed=3)
    snaps = build_snapshots(folder / "enterprises.csv", folder / "signals.jsonl", configs=CONFIGS)
    y, mask = snaps.labels(folder / "disputes.jsonl", 60)
    return snaps, y, mask


@pytest.fixture(scope="module")
def trained(data):
    snaps, y, mask = data
    return train(snaps, y, mask, horizon_days=60, seed=3)


def test_folds_are_consecutive_runs_of_as_of_dates(data):
    snaps, _, mask = data
    folds = temporal_folds(snaps.as_of, mask)
    assert list(folds) == list(FOLDS)
    spans = [(snaps.as_of[idx].min(), snaps.as_of[idx].max()) for idx in folds.values()]
    assert spans[0][1] < spans[1][0] and spans[1][1] < spans[2][0]
    together = np.zeros(len(mask), dtype=int)
    for idx in folds.values():
        together += idx
    assert np.array_equal(together, mask.astype(int))  # every kept row in exactly one fold
    dates = len(np.unique(snaps.as_of[mask]))
    assert abs(len(np.unique(snaps.as_of[folds["train"]])) - 0.6 * dates) <= 1


def test_training_picks_a_calibrated_candidate_of_either_family(data, trained):
    snaps, y, mask = data
    result = trained
    families = {c["family"] for c in result.candidates}
    assert families == {"LogisticRegression", "HistGradientBoostingClassifier"}
    assert result.model_class in families
    assert result.calibration in ("isotonic", "sigmoid")
    p = result.estimator.predict_proba(snaps.X)[:, 1]
    assert np.all((p >= 0) & (p <= 1))
    folds = result.folds
    assert folds["train"][1] < folds["calibration"][0] <= folds["calibration"][1] < folds["holdout"][0]
    assert result.data_window == [folds["train"][0], folds["holdout"][1]]
    # The chosen one has the best PR-AUC on the calibration fold.
    best = max(c["selection_pr_auc_raw"] for c in result.candidates)
    assert result.chosen["selection_pr_auc_raw"] == best
    assert set(result.metrics) >= {"selection", "holdout", "candidates", "folds"}


def test_the_model_beats_chance_on_the_holdout(trained):
    result = trained
    holdout = result.metrics["holdout"]
    assert holdout["positives"] > 0
    assert holdout["pr_auc"] > 2 * holdout["base_rate"]
    assert holdout["roc_auc"] > 0.7


def test_the_model_saves_with_skops_as_trusted_types_only(trained, tmp_path):
    import skops.io as sio

    result = trained
    sio.dump(result.estimator, tmp_path / "m.skops")
    assert all(t.startswith(("sklearn.", "numpy.", "scipy.")) for t in sio.get_untrusted_types(file=tmp_path / "m.skops"))


def test_no_positive_to_learn_from_is_a_clear_error(data):
    snaps, y, mask = data
    with pytest.raises(ValueError, match="no dispute within 60 days"):
        train(snaps, np.zeros_like(y), mask, horizon_days=60)
