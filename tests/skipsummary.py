"""One line for the PostgreSQL tests skipped without a database, instead of one per test.

``-ra`` lists every skipped test with its reason; without
CRMRULES_TEST_POSTGRES_URL that is dozens of identical lines that hide the
skips worth reading. This hook takes those skips out of the short summary
(the closing count still includes them) and prints one line for the group.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

#: The text every PostgreSQL skip reason contains.
MARKER = "CRMRULES_TEST_POSTGRES_URL"


def _is_postgres_skip(report: object) -> bool:
    longrepr = getattr(report, "longrepr", None)
    return isinstance(longrepr, tuple) and len(longrepr) == 3 and MARKER in str(longrepr[2])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    skipped = terminalreporter.stats.get("skipped", [])
    grouped = [report for report in skipped if _is_postgres_skip(report)]
    if grouped:
        terminalreporter.stats["skipped"] = [r for r in skipped if not _is_postgres_skip(r)]
    try:
        return (yield)
    finally:
        if grouped:
            terminalreporter.stats["skipped"] = skipped
            terminalreporter.write_line(
                f"SKIPPED {len(grouped)} PostgreSQL tests: set {MARKER} to run them"
            )
