"""Leases on outbox messages and timers: claim, renew, expire, on every store.

The store under test runs a random sequence of claims and renewals by three
workers at moving times; a plain model (who holds what until when) says what
each call must return. Then the heartbeat is checked to renew for real.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_store_contract as contract
from crmrules import leases
from crmrules.leases import Heartbeat
from crmrules.store import MessageStatus, OutboxMessage, Store, Timer, TimerStatus
from crmrules.testing import Simulation

store = contract.store  # the memory, SQLite and PostgreSQL stores of the contract tests
message = contract.message

T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
WORKERS = ["w1", "w2", "w3"]
KEYS = [f"k{n}" for n in range(6)]


@dataclass
class Model:
    """Who holds each pending message until when; the due times are all T0."""

    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)

    def claim(self, now: datetime, limit: int, worker: str, until: datetime) -> list[str]:
        free = [
            key
            for key in KEYS
            if key not in self.sent
            and (
                key not in self.leases or self.leases[key][1] < now or self.leases[key][0] == worker
            )
        ][:limit]
        for key in free:
            self.leases[key] = (worker, until)
        return free

    def renew(self, worker: str, until: datetime) -> int:
        held = [k for k, (w, _) in self.leases.items() if w == worker and k not in self.sent]
        for key in held:
            self.leases[key] = (worker, until)
        return len(held)


operation = st.tuples(
    st.sampled_from(["claim", "renew", "send"]),
    st.sampled_from(WORKERS),
    st.integers(0, 120),  # seconds after T0
    st.integers(1, 5),  # limit, or which key to send
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(operation, max_size=20), st.integers(0, 10**6))
def test_claims_and_renewals_follow_the_model(
    store: Store, operations: list[tuple[str, str, int, int]], run: int
) -> None:
    prefix = f"r{run}-{time.monotonic_ns()}-"
    with store.transaction() as tx:
        for key in KEYS:
            tx.enqueue(message(prefix + key, mailing=None, next_attempt_at=T0))
    try:
        check_against_model(store, prefix, operations)
    finally:  # settle this example's messages, so the next one claims only its own
        with store.transaction() as tx:
            for key in KEYS:
                stored = tx.get_message(prefix + key)
                if stored is not None:
                    tx.put_message(stored.model_copy(update={"status": MessageStatus.SENT}))


def check_against_model(
    store: Store, prefix: str, operations: list[tuple[str, str, int, int]]
) -> None:
    model = Model()
    lease = timedelta(seconds=30)
    for kind, worker, seconds, number in operations:
        now = T0 + timedelta(seconds=seconds)
        with store.transaction() as tx:
            if kind == "claim":
                mine = tx.claim_messages(now, number, prefix + worker, now + lease)
                assert [m.key[len(prefix) :] for m in mine] == model.claim(
                    now, number, worker, now + lease
                )
                assert all(
                    (m.lease_owner, m.lease_until) == (prefix + worker, now + lease) for m in mine
                )
            elif kind == "renew":
                assert tx.renew_leases(prefix + worker, now + lease) == model.renew(
                    worker, now + lease
                )
            else:
                key = KEYS[number]
                stored = tx.get_message(prefix + key)
                assert stored is not None
                tx.put_message(stored.model_copy(update={"status": MessageStatus.SENT}))
                model.sent.add(key)
    with store.transaction() as tx:
        for key in KEYS:
            stored = tx.get_message(prefix + key)
            assert stored is not None
            if key in model.leases and key not in model.sent:
                owner, until = model.leases[key]
                assert (stored.lease_owner, stored.lease_until) == (prefix + owner, until)


def test_renew_extends_pending_timers_and_leaves_settled_ones(store: Store) -> None:
    def timer(key: str, status: TimerStatus = TimerStatus.PENDING) -> Timer:
        return Timer(key=key, kind="rule", due_at=T0, created_at=T0, status=status)

    with store.transaction() as tx:
        tx.plan_timer(timer("t-a"))
        tx.plan_timer(timer("t-b"))
        assert [t.key for t in tx.claim_timers(T0, 10, "w1", T0 + timedelta(seconds=5))] == [
            "t-a",
            "t-b",
        ]
        fired = tx.get_timer("t-b")
        assert fired is not None
        tx.put_timer(fired.model_copy(update={"status": TimerStatus.FIRED}))
    later = T0 + timedelta(minutes=1)
    with store.transaction() as tx:
        assert tx.renew_leases("w1", later) == 1
        assert tx.renew_leases("w2", later) == 0
        # w2 cannot take it: the renewed lease has not ended at T0 + 30 s.
        assert tx.claim_timers(T0 + timedelta(seconds=30), 10, "w2", later) == []
        renewed = tx.get_timer("t-a")
        assert renewed is not None and renewed.lease_until == later
        assert [t.key for t in tx.claim_timers(later + timedelta(seconds=1), 10, "w2", later)] == [
            "t-a"
        ]


def test_the_heartbeat_renews_while_the_block_runs(store: Store) -> None:
    with store.transaction() as tx:
        tx.enqueue(message("m-held", mailing=None, next_attempt_at=T0))
        claimed = tx.claim_messages(datetime.now(UTC), 1, "w1", datetime.now(UTC))
        assert [m.key for m in claimed] == ["m-held"]
    lease = timedelta(seconds=0.3)
    with Heartbeat(store, "w1", lease) as beat:
        deadline = time.monotonic() + 30
        while beat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert beat.beats >= 2
    with store.transaction() as tx:
        held: OutboxMessage | None = tx.get_message("m-held")
    assert held is not None and held.lease_owner == "w1"
    assert held.lease_until is not None and held.lease_until > T0


def test_no_heartbeat_thread_on_a_simulated_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated time stands still while a batch fires: renewing would change no lease."""
    (tmp_path / "regulation.yaml").write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: soon\n"
        "    on: {after: 1 day, since: client.created_at}\n"
        "    then: [{create_task: {title: call}}]\n",
        encoding="utf-8",
    )
    sim = Simulation.from_path(tmp_path, now="2026-03-02T10:00:00+03:00", entry_points=False)
    sim.given(clients=[{"id": "c1"}])

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a heartbeat thread was started")

    monkeypatch.setattr(leases.threading, "Thread", no_thread)
    assert [result.fired for result in sim.advance("2 days")] == [["soon"]]
