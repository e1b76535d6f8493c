"""The PostgreSQL skips are summarised in one line; other skips keep their own line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

SAMPLE = """
import pytest

@pytest.mark.parametrize("n", range(5))
def test_pg(n):
    pytest.skip("set CRMRULES_TEST_POSTGRES_URL to run against PostgreSQL")

def test_other():
    pytest.skip("no SMTP server here")

def test_ok():
    pass
"""


def test_postgres_skips_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-ra",
            "-p",
            "skipsummary",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS), "PATH": ""},
        check=False,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert out.count("CRMRULES_TEST_POSTGRES_URL") == 1, out
    assert "SKIPPED 5 PostgreSQL tests: set CRMRULES_TEST_POSTGRES_URL to run them" in out
    assert "no SMTP server here" in out
    assert "1 passed, 6 skipped" in out.splitlines()[-1]
