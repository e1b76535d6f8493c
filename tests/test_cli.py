"""The crmrules command, run as admins and CI run it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crmrules.adapters import migrate

ROOT = Path(__file__).parent.parent


def crmrules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_validate_ok_prints_a_summary_and_exits_0() -> None:
    run = crmrules("validate", "examples/client-service")
    assert run.returncode == 0, run.stderr
    assert run.stdout == (
        "examples/client-service: ok, 5 files: 8 rules, 1 pipeline, 3 territories, "
        "2 templates, 3 managers, 10 custom fields\n"
    )
    assert run.stderr == ""


def test_validate_prints_every_problem_with_its_location_and_exits_1() -> None:
    run = crmrules("validate", "tests/invalid/unknown_references.yaml", "examples/client-service")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "tests/invalid/unknown_references.yaml:11:21: unknown territory 'mks' (did you mean msk?)",
        "tests/invalid/unknown_references.yaml:13:34: unknown template 'helo' "
        "(did you mean hello?)",
        "tests/invalid/unknown_references.yaml:14:51: unknown manager 'ivanof' "
        "(did you mean ivanov?)",
        "tests/invalid/unknown_references.yaml: 3 problems",
    ]
    assert run.stdout.startswith("examples/client-service: ok")


def test_validate_never_shows_a_traceback(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [1]\nb: &b [*a, *a]\n", encoding="utf-8")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    for path in (bomb, deep, binary, tmp_path / "missing.yaml"):
        run = crmrules("validate", str(path))
        assert run.returncode == 1
        assert "Traceback" not in run.stderr
        assert str(path) in run.stderr


def test_schema_prints_the_json_schema() -> None:
    run = crmrules("schema")
    assert run.returncode == 0
    schema = json.loads(run.stdout)
    assert schema["title"] == "crmrules regulation (version 1)"
    assert {"Condition", "Trigger", "Action", "RuleSpec"} <= set(schema["$defs"])


def test_usage_errors_exit_2() -> None:
    run = crmrules("validate")
    assert run.returncode == 2
    assert "usage: crmrules validate" in run.stderr


def test_db_upgrade_and_current_on_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    head = migrate.head()
    before = crmrules("db", "current", url)
    assert before.returncode == 1
    assert before.stdout.strip().endswith(f"no crmrules tables (behind: head is {head})")
    upgrade = crmrules("db", "upgrade", url)
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.strip().endswith(f"upgraded from empty to {head}")
    again = crmrules("db", "upgrade", url)
    assert again.stdout.strip().endswith(f"already at {head} (head)")
    current = crmrules("db", "current", url)
    assert current.returncode == 0
    assert current.stdout.strip().endswith(f": {head} (up to date)")


def test_db_errors_are_one_paragraph_without_a_traceback() -> None:
    unreachable = crmrules("db", "current", "postgresql+psycopg://crm:secret@127.0.0.1:1/crm")
    assert unreachable.returncode == 1
    assert "Traceback" not in unreachable.stderr
    assert "secret" not in unreachable.stderr
    assert unreachable.stderr.startswith("error: ")
    assert len(unreachable.stderr.strip().splitlines()) == 1
    malformed = crmrules("db", "upgrade", "not a url")
    assert malformed.returncode == 1
    assert "Traceback" not in malformed.stderr
    assert malformed.stderr.startswith("error: ")
