"""Two scorers side by side on the same files: is the candidate better than what serves now?

Both run inside the pipeline over the same files, as in ``models.evaluate``, and get the same
figures. One evaluation is one draw of enterprises, and an unseen year of a district holds a few
dozen disputes, so a difference of a few points can be luck. The figures a promotion turns on
therefore come with a paired bootstrap over enterprises: the enterprises are drawn again with
replacement, each with all its weeks and its disputes, both scorers are measured on the same
draw, and the 2.5th and 97.5th percentiles of the difference make a 95% interval. A difference
is called only when its interval leaves out 0.

* ``pr_auc``: average precision on the weekly snapshots (labels: a dispute within the horizon);
* ``warned_14d_share``: the enterprises' first disputes warned yellow or higher 14+ days ahead;
* ``false_alarm_share``: the enterprises with no dispute that reach yellow or higher (lower is
  better: the inspectors' wasted visits).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from config.files import Configs
from models.evaluate import (
    Capacity, _read_truth, horizon_of, replay_both, scorer_figures, warnings_by_enterprise,
)
from models.scoring import Scorer
from models.snapshots import SILENT, Progress, Snapshots

# figure -> True when higher is better
BOOTSTRAPPED = {"pr_auc": True, "warned_14d_share": True, "false_alarm_share": False}
SIDE_BY_SIDE = ("roc_auc", "brier", "precision_at_k", "recall_at_k", "lead_days_median",
                "orange_red_dispute_120d_share", "shutdown_orange_red_no_dispute")


def compare(candidate: Scorer, baseline: Scorer, enterprises: Path, signals: Path, disputes: Path,
            configs: Configs, capacity: Capacity, *, horizon_days: int | None = None,
            progress: Progress = SILENT, repeats: int = 1000, seed: int = 0) -> dict:
    """The figures of both scorers and, for ``BOOTSTRAPPED``, the paired difference with its
    95% interval and which scorer it favours (None: the interval holds 0)."""
    horizon = horizon_days or horizon_of(candidate, baseline)
    both = replay_both(candidate, baseline, enterprises, signals, disputes, configs, horizon, progress)
    found, snaps, y, mask = both.found, both.snaps, both.y, both.mask
    runs = dict(zip(("candidate", "baseline"), both.runs))
    scores = dict(zip(("candidate", "baseline"), both.scores))
    known = both.known
    truth = _read_truth(disputes)
    result: dict = {"horizon_days": horizon, "data": both.data()}
    for name, scorer in (("candidate", candidate), ("baseline", baseline)):
        result[name] = scorer_figures(runs[name], scores[name], snaps, y, mask, found, known, capacity,
                                      both.replay.registry, truth)
        result[name]["horizon_days"] = getattr(getattr(scorer, "card", None), "horizon_days", None)

    advance = progress.step(f"paired bootstrap over enterprises ({repeats} draws)", repeats)
    draws = paired_bootstrap(snaps, y, mask, scores, {n: r.alerts for n, r in runs.items()}, found, known,
                             repeats=repeats, seed=seed, advance=advance)
    result["bootstrap"] = {"unit": "enterprise", "repeats": repeats, "seed": seed, "interval": 0.95}
    result["differences"] = {}
    for figure, higher_is_better in BOOTSTRAPPED.items():
        a, b = result["candidate"].get(figure), result["baseline"].get(figure)
        diffs = draws[figure]
        entry = {"candidate": a, "baseline": b, "difference": None if a is None or b is None else a - b,
                 "interval": None, "better": None, "draws": len(diffs)}
        if len(diffs) and entry["difference"] is not None:
            low, high = (float(v) for v in np.percentile(diffs, [2.5, 97.5]))
            entry["interval"] = [low, high]
            if low > 0 or high < 0:
                entry["better"] = "candidate" if (low > 0) == higher_is_better else "baseline"
        result["differences"][figure] = entry
    # The PR-AUC ratio (issue 3's target against the rules: 1.5), with its interval.
    a, b = result["candidate"].get("pr_auc"), result["baseline"].get("pr_auc")
    ratios = draws["pr_auc_ratio"]
    result["pr_auc_ratio"] = {
        "value": a / b if a is not None and b else None,
        "interval": [float(v) for v in np.percentile(ratios, [2.5, 97.5])] if len(ratios) else None,
    }
    return result


def paired_bootstrap(snaps: Snapshots, y: np.ndarray, mask: np.ndarray, scores: dict[str, np.ndarray],
                     alerts: dict[str, list[dict]], disputes: dict[str, list[int]], known: set[str], *,
                     repeats: int, seed: int, advance=lambda n: None) -> dict[str, np.ndarray]:
    """candidate - baseline of each ``BOOTSTRAPPED`` figure, and candidate / baseline of PR-AUC
    (``pr_auc_ratio``), over ``repeats`` draws of the enterprises with replacement (a draw with
    no positive week, no dispute or no calm enterprise leaves that figure out)."""
    from sklearn.metrics import average_precision_score

    ents = sorted(known)
    index = {e: i for i, e in enumerate(ents)}
    n = len(ents)
    row_ent = np.array([index.get(str(e), -1) for e in snaps.enterprise_ids])[mask]
    inside = row_ent >= 0
    row_ent, yt = row_ent[inside], y[mask][inside]
    pa, pb = scores["candidate"][mask][inside], scores["baseline"][mask][inside]

    window = (snaps.first_day, snaps.last_day)
    per = {name: warnings_by_enterprise(alerts[name], disputes, known, window) for name in ("candidate", "baseline")}
    disputed = np.array([e in per["candidate"].leads for e in ents], bool)
    calm = np.array([e in per["candidate"].calm for e in ents], bool)
    warned = {name: np.array([e in p.warned_14d for e in ents], bool) for name, p in per.items()}
    yellow_calm = {name: np.array([e in p.alarmed for e in ents], bool) for name, p in per.items()}

    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {figure: [] for figure in (*BOOTSTRAPPED, "pr_auc_ratio")}
    for _ in range(repeats):
        weight = np.bincount(rng.integers(0, n, n), minlength=n).astype(float) if n else np.zeros(0)
        rows = weight[row_ent]
        if (rows * yt).sum() > 0 and (rows * (1 - yt)).sum() > 0:
            a = average_precision_score(yt, pa, sample_weight=rows)
            b = average_precision_score(yt, pb, sample_weight=rows)
            out["pr_auc"].append(a - b)
            if b > 0:
                out["pr_auc_ratio"].append(a / b)
        d = weight[disputed]
        if d.sum() > 0:
            out["warned_14d_share"].append(
                float((d * warned["candidate"][disputed]).sum() - (d * warned["baseline"][disputed]).sum()) / d.sum())
        c = weight[calm]
        if c.sum() > 0:
            out["false_alarm_share"].append(
                float((c * yellow_calm["candidate"][calm]).sum() - (c * yellow_calm["baseline"][calm]).sum()) / c.sum())
        advance(1)
    return {figure: np.array(values) for figure, values in out.items()}
