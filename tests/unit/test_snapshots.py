"""models.snapshots: point-in-time features equal the stream's state read at the as-of instant,
nothing observed after an as-of date reaches its snapshot, and labels / masks."""
from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from alerts.registry import read_enterprises
from config.files import load_configs
from config.settings import CONFIG_DIR
from models.features import FEATURE_NAMES, features, vector
from models.registry import scorer_for
from models.scoring import RulesScorer
from models.simulate import simulate_world
from models.snapshots import (
    Snapshots,
    as_of_instant,
    build_snapshots,
    default_as_of_dates,
    read_disputes,
    replay_with_snapshots,
)
from models.state import EnterpriseState, Retention
from streams.backtest import MemorySeen, run_backtest
from streams.ingest import split_lines
from streams.pipeline import Envelope, Pipeline

CONFIGS = load_configs(CONFIG_DIR)
RETENTION = Retention(**CONFIGS.pipeline.state.model_dump())
SHARED = Path(__file__).resolve().parents[3] / "shared"
SAMPLES = SHARED / "contract" / "samples"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    simulate_world(folder, firms=20, months=5, seed=11)
    return folder


def _samples() -> Path:
    if not (SAMPLES / "signals.jsonl").exists():
        pytest.skip("the contract samples (../shared/contract/samples) are not beside the project")
    return SAMPLES


def _accepted_in_order(folder: Path) -> list[tuple[int, dict, datetime]]:
    """An independent replay: the whole file through the pipeline in batches of another size,
    keeping (line number, signal, observed) of every accepted signal in file order."""
    rows, _ = read_enterprises(folder / "enterprises.csv")
    registry = {r["enterprise_id"]: r for r in rows}
    pipeline = Pipeline(CONFIGS, RulesScorer(CONFIGS.rules))
    lines = split_lines((folder / "signals.jsonl").read_bytes())
    records: dict = {}
    seen = MemorySeen()
    now = datetime.now(timezone.utc)
    out = []
    for start in range(0, len(lines), 777):
        envs = [Envelope(line, "file:signals.jsonl", 0, start + i + 1, now) for i, line in enumerate(lines[start:start + 777])]
        outcome = pipeline.process(envs, registry=registry, load_record=records.get, seen=seen, now=now)
        records.update(outcome.records)
        for acc in outcome.accepted:
            seen.first[(acc.signal["enterprise_id"], acc.signal["signal_id"])] = acc.envelope.coords
            out.append((acc.envelope.offset, acc.signal, acc.observed))
    return out


def _expected_snapshots(folder: Path, as_of_dates: list[date]) -> dict[tuple[int, str], list[float]]:
    """(as-of day, enterprise) -> features of a fresh EnterpriseState fed only the accepted signals
    that arrived before the first accepted signal observed at or after the as-of instant."""
    accepted = _accepted_in_order(folder)
    headcounts = {r["enterprise_id"]: r["headcount"] for r in read_enterprises(folder / "enterprises.csv")[0]}
    states: dict[str, EnterpriseState] = {}
    expected = {}
    position = 0
    for day in as_of_dates:
        instant = as_of_instant(day)
        while position < len(accepted) and accepted[position][2] < instant:
            _, signal, observed = accepted[position]
            eid = signal["enterprise_id"]
            states.setdefault(eid, EnterpriseState(eid, headcount=headcounts[eid])).update(signal, observed, RETENTION)
            position += 1
        if position == len(accepted):
            break  # nothing arrives at or after this instant: the data has ended
        for eid, state in states.items():
            expected[(day.toordinal(), eid)] = vector(features(state, day.toordinal()))
    return expected


@pytest.mark.parametrize("which", ["samples", "simulated"])
def test_snapshots_equal_the_state_fed_only_what_was_observed_before_the_as_of_instant(which, world):
    folder = _samples() if which == "samples" else world
    snaps = build_snapshots(folder / "enterprises.csv", folder / "signals.jsonl", configs=CONFIGS)
    assert snaps.X.shape == (len(snaps), len(FEATURE_NAMES)) and len(snaps) > 100
    expected = _expected_snapshots(folder, snaps.as_of_dates)
    got = {(int(d), str(e)): list(row) for d, e, row in zip(snaps.as_of, snaps.enterprise_ids, snaps.X)}
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        assert got[key] == row, key
    assert all(d.weekday() == 0 for d in snaps.as_of_dates)
    assert np.all(np.diff(snaps.as_of) >= 0)


def test_the_replay_drives_the_pipeline_as_backtest_does(world):
    """The alerts of the snapshot replay (rules scorer) are the very alerts `backtest` writes."""
    _, replay = replay_with_snapshots(world / "enterprises.csv", world / "signals.jsonl", configs=CONFIGS,
                                      scorer=RulesScorer(CONFIGS.rules))
    out = io.StringIO()
    result = run_backtest(CONFIGS, world / "enterprises.csv", world / "signals.jsonl", out, scorer=RulesScorer(CONFIGS.rules))
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    key = lambda a: (a["alert_id"], a["category"], a["level"], a["raised_at"], a["score"])  # noqa: E731
    assert [key(a) for a in replay.alerts] == [key(a) for a in written]
    assert replay.accepted == result.accepted and replay.rejected == result.rejected


def test_a_shadow_scorer_raises_what_it_raises_as_the_pipelines_scorer(world):
    """Evaluation replays once for two scorers, the second one the pipeline's shadow: each raises
    the very alerts `backtest` writes with it, whichever of the two is the shadow."""
    model = scorer_for(Path(__file__).resolve().parents[2] / "models" / "shipped", CONFIGS)
    rules = RulesScorer(CONFIGS.rules)
    key = lambda a: (a["alert_id"], a["category"], a["level"], a["raised_at"], a["score"],  # noqa: E731
                     a["model_version"], tuple(r["text"] for r in a["reasons"]))
    written = {}
    for scorer in (model, rules):
        out = io.StringIO()
        run_backtest(CONFIGS, world / "enterprises.csv", world / "signals.jsonl", out, scorer=scorer)
        written[scorer.version] = [key(json.loads(line)) for line in out.getvalue().splitlines()]
    assert all(written.values()) and written[model.version] != written[rules.version]
    for first, second in ((model, rules), (rules, model)):
        _, replay = replay_with_snapshots(world / "enterprises.csv", world / "signals.jsonl", configs=CONFIGS,
                                          scorer=first, shadows=[second])
        (shadow,) = replay.pipeline.shadows
        assert [key(a) for a in replay.alerts] == written[first.version]
        assert [key(a) for a in shadow.alerts] == written[second.version]


def _signal_after(day: date, eid: str, hours: int) -> list[str]:
    """Lines observed ``hours`` after the as-of instant of ``day``: a big collective complaint and
    an electricity reading for the day before (normal next-day delivery)."""
    at = (as_of_instant(day) + timedelta(hours=hours)).isoformat()
    return [
        json.dumps({"signal_id": f"ins-leak-{hours}", "type": "inspection", "enterprise_id": eid, "observed_at": at,
                    "source": "hotline-12345", "kind": "complaint", "workers_involved": 25,
                    "findings": ["wage_arrears", "owner_absent"]}),
        json.dumps({"signal_id": f"pwr-leak-{hours}", "type": "utility", "enterprise_id": eid, "observed_at": at,
                    "source": "grid-power", "utility": "electricity", "unit": "kWh", "meter_id": "E-LEAK",
                    "reading_date": (day - timedelta(days=1)).isoformat(), "consumption": 0.0}),
    ]


def test_a_signal_observed_after_the_as_of_instant_does_not_reach_its_snapshot(world, tmp_path):
    before = build_snapshots(world / "enterprises.csv", world / "signals.jsonl", configs=CONFIGS)
    day = before.as_of_dates[len(before.as_of_dates) // 2]
    eid = str(before.enterprise_ids[before.as_of == day.toordinal()][0])
    # Put the new lines right after the first line observed at or after the instant, i.e. as
    # early in the file as they can arrive.
    lines = (world / "signals.jsonl").read_text().splitlines()
    instant = as_of_instant(day)
    first_after = next(i for i, line in enumerate(lines) if datetime.fromisoformat(json.loads(line)["observed_at"]) >= instant)
    lines[first_after + 1:first_after + 1] = _signal_after(day, eid, hours=1)
    (tmp_path / "signals.jsonl").write_text("\n".join(lines) + "\n")
    after = build_snapshots(world / "enterprises.csv", tmp_path / "signals.jsonl", configs=CONFIGS)

    at_t = lambda s, d: s.X[s.as_of == d.toordinal()]  # noqa: E731
    assert np.array_equal(at_t(before, day), at_t(after, day))
    assert np.array_equal(before.X[before.as_of < day.toordinal()], after.X[after.as_of < day.toordinal()])
    # ... and the next snapshot does see it (the lines were accepted, not lost).
    later = day + timedelta(days=7)
    row = lambda s: s.X[(s.as_of == later.toordinal()) & (s.enterprise_ids == eid)][0]  # noqa: E731
    col = FEATURE_NAMES.index("complaints_workers_max_90d")
    assert row(after)[col] == 25 and row(before)[col] != 25


def test_default_as_of_dates_are_mondays_between_the_first_and_last_signal():
    china = timezone(timedelta(hours=8))
    first = datetime(2024, 7, 1, 2, 0, tzinfo=china)  # a Monday, after its 00:00
    last = datetime(2024, 8, 5, 0, 0, tzinfo=china)  # a Monday at 00:00 exactly
    assert default_as_of_dates(first, last) == [date(2024, 7, 8), date(2024, 7, 15), date(2024, 7, 22),
                                                date(2024, 7, 29), date(2024, 8, 5)]
    assert default_as_of_dates(first, last, every_days=14) == [date(2024, 7, 8), date(2024, 7, 22), date(2024, 8, 5)]


# --- labels and masks ---------------------------------------------------------------------------
def _hand_made() -> Snapshots:
    d = date(2025, 3, 3).toordinal()  # a Monday
    ids = ["A", "A", "A", "B", "B", "C", "C", "D"]
    days = [d, d + 7, d + 70, d, d + 7, d, d + 400, d]
    return Snapshots(
        X=np.zeros((len(ids), len(FEATURE_NAMES))), enterprise_ids=np.array(ids), as_of=np.array(days),
        streets=np.array(["s"] * len(ids)), first_day=d - 100, last_day=d + 70 + 59,
    )


def test_labels_are_a_dispute_within_the_horizon_from_the_as_of_instant():
    snaps = _hand_made()
    d = int(snaps.as_of[0])
    disputes = {
        "A": [d + 59],  # the last day of the horizon seen from d: positive; from d + 7: positive
        "B": [d + 60 + 7],  # the day after the horizon of d + 7: negative both times
        "C": [d],  # the as-of day itself (the instant is 00:00): positive
        "D": [d - 366],  # more than the cool-down before: a target again
    }
    y, mask = snaps.labels(disputes, horizon_days=60)
    assert y.tolist() == [1, 1, 0, 0, 0, 1, 0, 0]
    # A at d + 70: its dispute is behind it (aftermath), dropped; C at d + 400: censored (past
    # last_day) and also more than 365 days after its dispute.
    assert mask.tolist() == [True, True, False, True, True, True, False, True]
    y30, _ = snaps.labels(disputes, horizon_days=30)
    assert y30.tolist() == [0, 0, 0, 0, 0, 1, 0, 0]


def test_censored_rows_are_masked():
    snaps = _hand_made()
    d = int(snaps.as_of[0])
    _, mask = snaps.labels({}, horizon_days=130)  # d + 129 is the last day
    assert mask.tolist() == [True, False, False, True, False, True, False, True]
    assert snaps.last_day == d + 129


def test_read_disputes(tmp_path):
    path = tmp_path / "disputes.jsonl"
    path.write_text(
        '{"enterprise_id": "91440306BXKFLJ2K06", "occurred_on": "2025-03-10", "workers_involved": 40, "kind": "collective_dispute"}\n'
        "\n"
        '{"enterprise_id": "91440306BXKFLJ2K06", "occurred_on": "2025-01-02", "workers_involved": 3, "kind": "arbitration_case"}\n'
    )
    assert read_disputes(path) == {"91440306BXKFLJ2K06": [date(2025, 1, 2).toordinal(), date(2025, 3, 10).toordinal()]}
    path.write_text('{"enterprise_id": "91440306BXKFLJ2K06", "occurred_on": "2025-03-10", "kind": "strike"}\n')
    with pytest.raises(ValueError, match=r"disputes.jsonl:1: not a dispute"):
        read_disputes(path)


def test_a_replay_tells_where_its_first_rejected_lines_are():
    """What train, evaluate and backtest print of a signal file: the rejected lines by reason, and
    the first three by line number, as the contract's samples list them."""
    folder = _samples()
    expected = json.loads((folder / "expected.json").read_text())
    replay = run_backtest(CONFIGS, folder / "enterprises.csv", folder / "signals.jsonl", io.StringIO(),
                          scorer=RulesScorer(CONFIGS.rules), batch_size=700)
    first = sorted(expected["rejected"], key=lambda r: r["line"])[:3]
    assert [(d["line"], d["reason"]) for d in replay.first_rejected] == [(r["line"], r["reason"]) for r in first]
    account = replay.account()
    assert account.startswith(f"signals: {expected['accepted']:,} accepted, {len(expected['rejected']):,} rejected (")
    for reason, count in Counter(r["reason"] for r in expected["rejected"]).items():
        assert f"{reason} {count}" in account
    assert f"first: line {first[0]['line']} {first[0]['reason']}: " in account


def test_a_signal_file_saved_by_windows_tools_or_gzipped_replays_as_the_original(tmp_path):
    """A byte order mark and CRLF line ends (Notepad, Excel) change nothing, nor does gzip (known
    by its first bytes, whatever the name): the same lines are accepted and rejected, and the
    same alerts are raised. A mark inside a line is still bad; a cut gzip file is an error."""
    assert split_lines(b'\xef\xbb\xbf{"a": 1}\r\n\r\n\xef\xbb\xbf{"b": 2}\r\n') == [b'{"a": 1}', b"", b'\xef\xbb\xbf{"b": 2}']
    folder = _samples()
    (tmp_path / "signals.jsonl").write_bytes(b"\xef\xbb\xbf" + (folder / "signals.jsonl").read_bytes().replace(b"\n", b"\r\n"))
    (tmp_path / "signals.jsonl.gz").write_bytes(gzip.compress((folder / "signals.jsonl").read_bytes()))
    (tmp_path / "signals.gz-named-jsonl").write_bytes((tmp_path / "signals.jsonl.gz").read_bytes())
    runs = []
    for signals in (folder / "signals.jsonl", tmp_path / "signals.jsonl", tmp_path / "signals.jsonl.gz",
                    tmp_path / "signals.gz-named-jsonl"):
        out = io.StringIO()
        replay = run_backtest(CONFIGS, folder / "enterprises.csv", signals, out, scorer=RulesScorer(CONFIGS.rules))
        runs.append((out.getvalue(), replay.accepted, replay.rejected, replay.first_rejected))
    assert runs[0][0] and runs[0] == runs[1] == runs[2] == runs[3]
    (tmp_path / "cut.jsonl.gz").write_bytes((tmp_path / "signals.jsonl.gz").read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cut.jsonl.gz: a gzip file that cannot be decompressed"):
        run_backtest(CONFIGS, folder / "enterprises.csv", tmp_path / "cut.jsonl.gz", io.StringIO())


def test_lines_that_fail_validation_move_no_snapshot_whatever_their_time(world, tmp_path):
    """The snapshot replay reads each line's time without validating it whole; lines that parse
    and carry a time but fail the contract (a negative reading, a year before the data; a bad
    type, weeks after it; a NaN, at an as-of instant) change neither the data's first and last
    day nor any snapshot row."""
    lines = (world / "signals.jsonl").read_bytes().splitlines()
    eid = json.loads(lines[0])["enterprise_id"]
    first = datetime.fromisoformat(json.loads(lines[0])["observed_at"])
    last = max(datetime.fromisoformat(json.loads(line)["observed_at"]) for line in lines)
    monday = as_of_instant(default_as_of_dates(first, last)[3])

    def bad(at: datetime, **fields) -> bytes:
        body = {"signal_id": f"bad-{at.isoformat()}", "type": "utility", "enterprise_id": eid,
                "observed_at": at.isoformat(), "source": "grid-power", "utility": "electricity", "unit": "kWh",
                "meter_id": "E1", "reading_date": at.date().isoformat(), "consumption": 10.0, **fields}
        return json.dumps(body).encode()

    # the NaN line comes right before the first good one past the instant: the one the snapshot waits for
    at = next(i for i, line in enumerate(lines) if datetime.fromisoformat(json.loads(line)["observed_at"]) >= monday)
    noisy = ([bad(first - timedelta(days=365), consumption=-5.0)] + lines[:at] + [bad(monday, consumption=float("nan"))]
             + lines[at:] + [bad(last + timedelta(days=40), type="meter")])
    (tmp_path / "signals.jsonl").write_bytes(b"\n".join(noisy) + b"\n")
    clean = build_snapshots(world / "enterprises.csv", world / "signals.jsonl", configs=CONFIGS)
    got, replay = replay_with_snapshots(world / "enterprises.csv", tmp_path / "signals.jsonl", configs=CONFIGS)
    assert {reason: n for reason, n in replay.rejected.items() if reason != "duplicate"} == {
        "out_of_range": 1, "invalid_json": 1, "schema_violation": 1}  # the three bad lines (NaN: not JSON)
    assert (got.first_day, got.last_day) == (clean.first_day, clean.last_day)
    assert np.array_equal(got.as_of, clean.as_of) and np.array_equal(got.enterprise_ids, clean.enterprise_ids)
    assert np.array_equal(got.X, clean.X)
