"""`crmrules worker --app`: the worker runs with the host's own store and mapping.

A worker opened on the bare database of a host that keeps its clients in
its own tables would fire reminders for nobody; it must refuse to start,
and `--app module:factory` must give it exactly the host's engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from examples.host_app import crm
from examples.host_app.app import Base, Company, register_company
from sqlalchemy.orm import Session

from crmrules import SimulatedClock
from crmrules.adapters import SQLAlchemyStore, migrate
from crmrules.adapters.sqlalchemy import make_engine
from crmrules.model import TaskStatus

ROOT = Path(__file__).resolve().parent.parent


def backoffice(tmp_path: Path) -> str:
    """The host's database with one company registered 40 days ago: its 30-day call is due."""
    url = f"sqlite:///{tmp_path / 'backoffice.sqlite3'}"
    db = make_engine(url)
    Base.metadata.create_all(db)
    migrate.upgrade(db)
    registered = datetime.now(UTC) - timedelta(days=40)
    with Session(db) as session, session.begin():
        register_company(
            session,
            Company(
                company_id="romashka",
                title="ООО Ромашка",
                region_name="Москва",
                tier="A",
                registered=registered,
            ),
        )
        crm.crm(session, crm.load(), SimulatedClock(registered)).client_saved(
            "romashka", created=True
        )
    db.dispose()
    return url


def run_worker(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRMRULES_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "crmrules", "worker", *args, "--once"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def timers_and_tasks(url: str) -> tuple[list[str], list[str]]:
    db = make_engine(url)
    try:
        with Session(db) as session:
            engine = crm.crm(session, crm.load())
            with engine.store.transaction() as tx:
                statuses = [t.status.value for t in tx.find_timers(kind="rule")]
            titles = [t.title for t in engine.tasks(status=TaskStatus.OPEN)]
    finally:
        db.dispose()
    return statuses, titles


def test_a_worker_without_the_hosts_mapping_refuses_to_start(tmp_path: Path) -> None:
    url = backoffice(tmp_path)
    done = run_worker(url, "examples/host_app/regulation.yaml", "--database", url)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "romashka" in done.stderr
    assert "--app" in done.stderr
    assert timers_and_tasks(url) == (["pending"], [])  # nothing fired, nothing lost


def test_the_worker_runs_the_hosts_own_engine_with_app(tmp_path: Path) -> None:
    url = backoffice(tmp_path)
    done = run_worker(url, "--app", "examples.host_app.crm:worker_engine")
    assert done.returncode == 0, done.stderr
    assert "1 timer(s) handled, 1 rule(s) fired" in done.stderr
    assert timers_and_tasks(url) == (["fired"], ["Позвонить ООО Ромашка: месяц с нами"])


def test_a_bad_app_reference_is_one_clear_line(tmp_path: Path) -> None:
    for app, expected in [
        ("examples.host_app.crm", "module:function"),
        ("examples.host_app.nowhere:make", "cannot import examples.host_app.nowhere"),
        ("examples.host_app.crm:nothing", "has no nothing"),
        ("examples.host_app.crm:RECORDS", "non-callable RECORDS"),
        ("examples.host_app.crm:load", "did not give an Engine"),
        ("examples.host_app.crm:worker_engine --database sqlite://", "--database goes with PATH"),
    ]:
        done = run_worker("sqlite://", "--app", *app.split())
        assert done.returncode == 2, (app, done.stderr)
        assert expected in done.stderr, (app, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_regulation_field_the_mapping_does_not_keep_is_refused(tmp_path: Path) -> None:
    from crmrules import Engine
    from crmrules.adapters.host import HostRecords, HostTable
    from crmrules.worker import WorkerError, check_store

    url = backoffice(tmp_path)
    records = HostRecords(clients=HostTable(Company, id="company_id", columns={"name": "title"}))
    engine = Engine(crm.load(), store=SQLAlchemyStore(url, records=records), entry_points=False)
    try:
        check_store(engine)
    except WorkerError as error:
        message = str(error)
    else:
        raise AssertionError("a mapping without the regulation's custom fields was accepted")
    finally:
        engine.store.close()
    assert "client.segment" in message and "companies" in message
