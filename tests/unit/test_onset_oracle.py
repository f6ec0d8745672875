"""models.evaluate.onset_oracle: the PR-AUC ceiling when nothing shows before a trouble's onset."""
from __future__ import annotations

from datetime import date

import numpy as np

from models.evaluate import onset_oracle
from models.features import FEATURE_NAMES
from models.snapshots import Snapshots

D0 = date(2026, 7, 6).toordinal()


def _snaps(ids: list[str], days: list[int]) -> Snapshots:
    return Snapshots(X=np.zeros((len(ids), len(FEATURE_NAMES))), enterprise_ids=np.array(ids),
                     as_of=np.array(days), streets=np.array([""] * len(ids)), first_day=D0, last_day=D0 + 400)


def test_every_positive_after_its_onset_is_a_perfect_ceiling():
    ids = ["a"] * 4 + ["h"] * 20
    days = [D0 + 7 * k for k in range(4)] + [D0 + 7 * (k % 4) for k in range(20)]
    y = np.array([1] * 4 + [0] * 20)
    truth = {"a": {"scenario": "abscond", "onset": date.fromordinal(D0 - 1).isoformat()},
             "h": {"scenario": "healthy", "onset": None}}
    oracle = onset_oracle(_snaps(ids, days), y, np.ones(len(y), bool), truth)
    assert oracle == {"pr_auc": 1.0, "positives_after_onset_share": 1.0}


def test_positives_before_the_onset_rank_among_the_negatives():
    # Two of four positive weeks come before the missed pay day: the ceiling falls to about half
    # plus what chance gives those two among 200 negatives.
    ids = ["a"] * 4 + ["h"] * 200
    days = [D0 + 7 * k for k in range(4)] + [D0] * 200
    y = np.array([1] * 4 + [0] * 200)
    truth = {"a": {"scenario": "abscond", "onset": date.fromordinal(D0 + 10).isoformat()}}
    oracle = onset_oracle(_snaps(ids, days), y, np.ones(len(y), bool), truth)
    assert oracle["positives_after_onset_share"] == 0.5
    assert 0.5 < oracle["pr_auc"] < 0.6


def test_masked_rows_do_not_count_and_one_class_has_no_ceiling():
    ids, days = ["a", "a", "h"], [D0, D0 + 7, D0]
    truth = {"a": {"scenario": "decline", "onset": date.fromordinal(D0 - 30).isoformat()}}
    y = np.array([1, 1, 0])
    assert onset_oracle(_snaps(ids, days), y, np.array([True, True, False]), truth) is None
    assert onset_oracle(_snaps(ids, days), y, np.array([True, False, True]), truth)["pr_auc"] == 1.0
