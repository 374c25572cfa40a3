"""The benchmark runs end to end on 200 mails and ends with its JSON line.

Only a smoke test: the numbers themselves are the README's business, not
the suite's, since they depend on the machine.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "mails", "wire_s", "naive_mails_per_s", "lifeline_mails_per_s",
    "ratio_vs_naive", "ratio_vs_wire", "lifeline_round_trips",
    "lifeline_peak_rss_mb", "empty_poll_ms", "empty_poll_round_trips",
    "push_idle_ms", "parse_xlsx_ms", "huge_sheet_ms", "huge_sheet_peak_mb",
    "startup_s",
}

pytestmark = pytest.mark.dovecot


def test_bench_on_200_mails_prints_every_key() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--mails", "200", "--runs", "1", "--lifeline-runs", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert set(result) == KEYS
    assert result["mails"] == 200
    assert result["lifeline_mails_per_s"] > 0 and result["naive_mails_per_s"] > 0
    assert result["lifeline_round_trips"] >= 1
