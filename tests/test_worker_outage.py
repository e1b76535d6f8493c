"""The worker survives short PostgreSQL outages: a real process, a real TCP proxy cut away.

``crmrules worker`` connects through a proxy the test starts; the proxy
drops every connection and refuses new ones for 0.3 s, twice, while timers
fire. The worker must log the outage, reconnect with backoff and go on:
every healthy timer fires exactly once, each failing one (1%) is FAILED with
its reason, and the worker is still running at the end (then stops on
SIGTERM). The timers it had leased when the cut came are its own to resume
(the lease is 5 minutes, the test far shorter).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from databases import POSTGRES
from outage import check, run_outage


def test_the_worker_survives_two_short_database_cuts(tmp_path: Path) -> None:
    if not POSTGRES:
        pytest.skip("needs CRMRULES_TEST_POSTGRES_URL (the cut is between worker and server)")
    report = run_outage(POSTGRES, tmp_path, timers=400, failing=4, cuts=2, timeout=240)
    assert check(report) == [], report.log[-3000:]
    assert report.cuts == 2
