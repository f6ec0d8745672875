"""`make bench`'s program on a small world: it must run to the end and report what it measured.

Figures are not asserted (a timed test would flake on a shared machine): what is asserted is that
the benchmark still works, since no other test runs it, and that it is consistent with itself.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.broker


def test_bench_runs_and_reports(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline", "--signals", "3000", "--paced", "300", "--rate", "1000",
         "--firms", "30", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    bare, full = figures["bare"], figures["full"]
    assert bare["n"] == full["signals"] == 3000
    assert full["accepted"] + full["rejected"] == 3000 and full["accepted"] > 2900
    assert bare["per_second"] > 0 and full["per_second"] > 0
    assert figures["ratio_full_over_bare"] == pytest.approx(full["per_second"] / bare["per_second"])
    after = figures["bare_after"]
    assert after["n"] == 3000 and after["topic"] != bare["topic"]
    assert figures["ratio_full_over_bare_after"] == pytest.approx(full["per_second"] / after["per_second"])
    # The alerts the backtest predicted were all stored by the live worker, and timed.
    assert full["latency_backlog"]["n"] == full["alerts_backlog"]
    assert set(full["stages_us_per_signal"]) == {"pipeline", "publish", "store", "checkpoint"}
    assert figures["scoring"]["rules"]["batch_us_per_row"] > 0
    assert "RATIO full / bare" in done.stdout and str(out) in done.stdout
