"""engine.explain, crmrules explain and history, and the regulation version on every record."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmrules import Client, Engine, RegulationError, SimulatedClock, load_regulation
from crmrules.adapters import migrate

ROOT = Path(__file__).parent.parent
TERRITORIES = ROOT / "examples" / "territories" / "regulation.yaml"
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    migrate.upgrade(url)
    return url


def engine_with_clients(url: str, path: Path = TERRITORIES) -> Engine:
    engine = Engine(load_regulation(path), url, SimulatedClock(START), entry_points=False)
    engine.create_client(
        Client(
            id="key1",
            name="АО Вектор",
            region="Москва",
            fields={"segment": "A", "employees": 10, "contract_end": "2026-05-01"},
        )
    )
    engine.create_client(Client(id="big", name="ПАО Гигант", region="Санкт-Петербург"))
    return engine


def test_explain_tells_each_rule_territory_and_timer(url: str) -> None:
    engine = engine_with_clients(url)
    found = engine.explain("key1", event_type="client.created")
    verdicts = {v.rule: v for v in found.rules}
    held = verdicts["assign-enterprise"]
    assert (held.status, held.field, held.operator, held.actual) == (
        "not_matched",
        "client.responsible",
        "is_empty",
        "ivanov",
    )
    assert verdicts["renewal-reminder"].status == "not_listening"
    assert found.would_fire == []
    members = {m.id: m for m in found.memberships}
    assert members["msk-key"].member
    assert "client.segment eq A: actual A" in members["msk-key"].reason
    assert not members["spb"].member
    timers = {t.kind: t for t in found.timers}
    assert "contact plan of territory msk-key every 14 days: create_task" in timers["plan"].does
    assert timers["plan"].regulation == engine.regulation.release.id
    assert "renewal-" in timers["rule"].does
    text = found.describe()
    assert "✗ assign-enterprise: not matched: client.responsible is_empty true: actual ivanov" in (
        text
    )


def test_explain_shows_the_policy_that_holds_a_rule(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        "version: 1\nrules:\n"
        "  - id: greet\n    on: client.updated\n    once: per_client\n"
        "    then: [{create_task: {kind: call, title: hi}}]\n"
        "  - id: after\n    on: client.updated\n"
        "    then: [{create_task: {kind: call, title: again}}]\n",
        encoding="utf-8",
    )
    engine = Engine(load_regulation(path), "memory://", SimulatedClock(START), entry_points=False)
    engine.create_client(Client(id="c1", name="One"))
    before = engine.explain("c1", event_type="client.updated")
    assert before.would_fire == ["greet", "after"]
    engine.update_client("c1", {"name": "Uno"})
    after = engine.explain("c1", event_type="client.updated", at=START + timedelta(days=1))
    greet = next(v for v in after.rules if v.rule == "greet")
    assert greet.status == "held" and greet.reason.startswith("once per_client: already fired")
    assert after.would_fire == ["after"]


def test_explain_refuses_an_unknown_client() -> None:
    engine = Engine(load_regulation(TERRITORIES), "memory://", entry_points=False)
    with pytest.raises(Exception, match="no client 'nobody'"):
        engine.explain("nobody")


def test_every_record_keeps_the_regulation_version_that_made_it(url: str, tmp_path: Path) -> None:
    engine = engine_with_clients(url)
    version = engine.regulation.release.id
    with engine.store.transaction() as tx:
        timers = tx.find_timers(client="key1")
        audit = tx.audit_log(client="key1")
    assert timers and {t.regulation for t in timers} == {version}
    assert audit and {a.regulation for a in audit} == {version}
    result = engine.update_client("key1", {"name": "АО Вектор-2"})
    assert result.regulation == version
    engine.clock.set(START + timedelta(days=14))  # type: ignore[attr-defined]
    engine.run_due()
    with engine.store.transaction() as tx:
        tasks = tx.find_tasks(client="key1")
    assert tasks and {t.regulation for t in tasks} == {version}
    entries = engine.rule_history("key1")
    assert [e.rule for e in entries][:1] == ["assign-by-territory"]
    assert {e.regulation for e in entries} == {version}
    assert any("task" in line for e in entries for line in e.did)


def test_a_version_is_the_content_hash_with_the_admins_labels(tmp_path: Path) -> None:
    text = TERRITORIES.read_text(encoding="utf-8")
    plain = load_regulation(TERRITORIES).release
    assert plain.name is None and plain.id == plain.digest and len(plain.digest) == 12
    assert load_regulation(TERRITORIES).release == plain  # the same files, the same version
    labelled = tmp_path / "labelled.yaml"
    labelled.write_text(
        text.replace("version: 1\n", "version: 1\nname: Территории\nrevision: 2026-12\n", 1),
        encoding="utf-8",
    )
    release = load_regulation(labelled).release
    assert (release.name, release.revision) == ("Территории", "2026-12")
    assert release.id == f"2026-12@{release.digest}" and release.digest != plain.digest
    assert release.describe() == f"Территории, revision 2026-12 ({release.digest})"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("version: 1\n", "version: 1\nrevision: [1, 2]\n", 1), "utf-8")
    with pytest.raises(RegulationError) as caught:
        load_regulation(bad)
    assert [str(p) for p in caught.value.problems] == [
        f"{bad}:5:11: revision must be a text label (e.g. revision: 2026-12)"
    ]


def crmrules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_explain_and_history_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    migrate.upgrade(url)
    engine_with_clients(url).store.close()
    shown = crmrules(
        "explain", str(TERRITORIES), "--store", url, "--client", "big", "--event", "client.created"
    )
    assert shown.returncode == 0, shown.stderr
    assert "✓ territory spb: holds: client.region eq Санкт-Петербург" in shown.stdout
    as_json = crmrules("explain", str(TERRITORIES), "--store", url, "--client", "big", "--json")
    data = json.loads(as_json.stdout)
    assert data["client"] == "big" and "renewal-reminder" in data["would_fire"]
    bad = crmrules("explain", str(TERRITORIES), "--store", url, "--client", "big", "--at", "soon")
    assert bad.returncode == 1 and "--at 'soon' is not a moment" in bad.stderr
    history = crmrules("history", "--store", url, "--client", "key1")
    assert history.returncode == 0, history.stderr
    version = load_regulation(TERRITORIES).release.id
    assert f"rule assign-by-territory fired [regulation {version}]" in history.stdout
    assert history.stdout.endswith("1 rule firing(s) for client key1\n")
