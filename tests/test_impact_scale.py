"""The impact's dry timer sync over many chunks: its counts are what applying does, its memory
holds no record per timer.

``crmrules.sync.CHUNK`` is made small so that a few dozen clients take
several chunks of pending timers and of clients, as a million do with the
default; the base is a real SQLite file (and PostgreSQL schema).
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules import Client, Engine, SimulatedClock, firing, load_regulation, sync
from crmrules.adapters import migrate
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.impact.ledger import LedgerStore
from crmrules.rules.regulation import Regulation
from crmrules.store import Store, Timer, TimerStatus
from databases import Database, database
from test_impact import actual_changes, timers_of

ROOT = Path(__file__).parent.parent
OLD = ROOT / "examples" / "territories" / "regulation.yaml"
OLD_TEXT = OLD.read_text(encoding="utf-8")
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
REMINDER = "on: {before: 30 days, of: client.contract_end}\n    then:\n      - create_task:"


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(sync, "CHUNK", 8)
    yield 8


def regulation(tmp: Path, text: str, name: str) -> Regulation:
    path = tmp / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_regulation(path)


def fill(url: str, n: int, rng: random.Random, *, every_contract: bool = True) -> None:
    """``n`` clients created through the engine under OLD, so OLD's timers are planned."""
    engine = Engine(load_regulation(OLD), url, SimulatedClock(START), entry_points=False)
    regions = ["Москва", "Санкт-Петербург", "Казань"]
    for i in range(n):
        fields: dict[str, object] = {"segment": rng.choice("ABC"), "employees": rng.randrange(400)}
        if every_contract or rng.random() < 0.7:
            fields["contract_end"] = (
                date(2026, 4, 1) + timedelta(days=rng.randrange(300))
            ).isoformat()
        last = START - timedelta(days=rng.randrange(60)) if rng.random() < 0.8 else None
        engine.create_client(
            Client(
                id=f"c{i:03}",
                name=f"Клиент {i}",
                region=rng.choice(regions),
                last_contact_at=last,
                fields=fields,
            )
        )
    engine.store.close()  # type: ignore[attr-defined]


def dry_then_live(
    store: Store, new: Regulation, now: datetime
) -> tuple[LedgerStore, LedgerStore, dict[str, int], dict[str, int]]:
    """NEW's sync dry through a ledger, then applied through another; the counts of each."""
    future = Engine(new, store, SimulatedClock(now), entry_points=False)
    dry = LedgerStore(store, dry=True)
    firing.sync_timers(future, now, store=dry)  # type: ignore[arg-type]
    dry_counts = dry.changes().to_dict()
    dry.close()
    live = LedgerStore(store, dry=False)
    firing.sync_timers(future, now, store=live)  # type: ignore[arg-type]
    live_counts = live.changes().to_dict()
    return dry, live, dry_counts, live_counts


def counts(changes: dict[str, object]) -> dict[str, object]:
    return {k: changes[k] for k in ("planned", "replanned", "cancelled", "by_rule")}


def test_a_change_that_replans_every_clients_timer_counts_as_applying_it_in_bounded_memory(
    database: Database, tmp_path: Path, small_chunks: int
) -> None:
    n = 60
    url = database.search_path_url
    fill(url, n, random.Random(5))
    new = regulation(tmp_path, OLD_TEXT.replace(REMINDER, REMINDER.replace("30", "45")), "new")
    now = START + timedelta(hours=1)

    engine = Engine(load_regulation(OLD), url, SimulatedClock(now), entry_points=False)
    report = engine.impact(new)
    engine.store.close()  # type: ignore[attr-defined]
    assert report.timers.replanned == n  # the reminder of every client
    by_rule = report.timers.by_rule["renewal-reminder"]
    assert by_rule == {"replanned": n}

    before = timers_of(database.url, database.schema)
    store = SQLAlchemyStore(url)
    try:
        dry, live, dry_counts, live_counts = dry_then_live(store, new, now)
    finally:
        store.close()
    after = timers_of(database.url, database.schema)
    applied = actual_changes(before, after)
    assert applied == {"planned": 0, "replanned": n, "cancelled": 0}
    for got in (dry_counts, live_counts):
        assert {k: got[k] for k in applied} == applied
    assert counts(dry_counts) == counts(live_counts) == counts(report.timers.to_dict())

    # Dry, every record noted went to the spill file, none stayed in memory; live, a
    # transaction's notes at most (a chunk of pending timers re-planned: before and after).
    assert dry.peak_held == 0 and dry.spilled >= n
    assert 0 < live.peak_held <= 2 * small_chunks < n
    assert live.spilled == 0


@st.composite
def changes(draw: st.DrawFn) -> str:
    """OLD edited: offsets moved, rules removed or disabled, contact plans added or moved."""
    text = OLD_TEXT
    if draw(st.booleans()):
        days = draw(st.integers(1, 90))
        text = text.replace(REMINDER, REMINDER.replace("30", str(days)))
    if draw(st.booleans()):
        start = text.index("  - id: renewal-letter")
        end = text.index("  - id: no-contact-30-days")
        text = text[:start] + text[end:]
    if draw(st.booleans()):
        days = draw(st.integers(1, 60))
        text = text.replace(
            "on: {after: 30 days, since: client.last_contact_at}",
            f"on: {{after: {days} days, since: client.last_contact_at}}",
        )
    if draw(st.booleans()):
        text = text.replace(
            "    then:\n      - notify:", "    enabled: false\n    then:\n      - notify:"
        )
    if draw(st.booleans()):
        text = text.replace(
            "      - every: 14 days", f"      - every: {draw(st.integers(1, 30))} days"
        )
    if draw(st.booleans()):
        text = text.replace(
            "    when: {field: client.region, eq: Санкт-Петербург}\n    managers: [sidorov]\n",
            "    when: {field: client.region, eq: Санкт-Петербург}\n    managers: [sidorov]\n"
            "    contact_plan:\n      - every: 7 days\n        then:\n"
            "          - create_task: {kind: call, title: Визит}\n",
        )
    return text


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=changes(),
    n=st.integers(0, 24),
    chunk=st.integers(1, 6),
    seed=st.integers(0, 10**6),
    hours=st.integers(0, 24 * 60),
)
def test_dry_counts_equal_applied_counts_over_any_chunking(
    text: str, n: int, chunk: int, seed: int, hours: int
) -> None:
    """Property: for any of these changes, base and chunk size, the dry sync's counts (the
    impact report's) are the timers applying NEW plans, re-plans and cancels, as read back
    from the database (an oracle independent of the ledger)."""
    saved = sync.CHUNK
    sync.CHUNK = chunk
    try:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            url = f"sqlite:///{folder / 'crm.sqlite3'}"
            migrate.upgrade(url)
            fill(url, n, random.Random(seed), every_contract=False)
            new = regulation(folder, text, "new")
            now = START + timedelta(hours=hours)
            before = timers_of(url, None)
            store = SQLAlchemyStore(url)
            try:
                dry, live, dry_counts, live_counts = dry_then_live(store, new, now)
            finally:
                store.close()
            applied = actual_changes(before, timers_of(url, None))
            assert {k: dry_counts[k] for k in applied} == applied
            assert counts(dry_counts) == counts(live_counts)
            assert dry.peak_held == 0
            assert live.peak_held <= 2 * chunk * 4  # a chunk's timers, before and after
    finally:
        sync.CHUNK = saved


def _timer(key: str, status: TimerStatus) -> Timer:
    return Timer(key=key, kind="task", due_at=START, created_at=START, status=status)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_pending_keys_come_a_chunk_at_a_time_in_key_order(kind: str, tmp_path: Path) -> None:
    store: Store
    if kind == "memory":
        store = MemoryStore()
    else:
        url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
        migrate.upgrade(url)
        store = SQLAlchemyStore(url)
    rng = random.Random(3)
    statuses = [TimerStatus.PENDING, TimerStatus.FIRED, TimerStatus.CANCELLED]
    made = {f"k{rng.randrange(10**6):06}": rng.choice(statuses) for _ in range(50)}
    with store.transaction() as tx:
        for key, status in made.items():
            tx.put_timer(_timer(key, status))
    chunks = list(sync.pending_keys(store, 4))
    store.close()
    assert all(0 < len(c) <= 4 for c in chunks)
    pending = sorted(k for k, s in made.items() if s is TimerStatus.PENDING)
    assert [k for c in chunks for k in c] == pending


__all__ = ["database"]
