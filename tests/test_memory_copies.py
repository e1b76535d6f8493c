"""The memory store's copies: nothing a caller holds can change what the store keeps.

The store copies a record when it takes it and when it hands it out, but
only the parts that can change in place (custom field dicts and the lists,
sets and nested models inside them, lists and tuples of nested models,
``data`` dicts); text, numbers, moments and frozensets are shared. Every
change a caller can make to an object it gave or got (an assignment, an
in-place change of a nested value) is tried here, and the stored record
must be what was put.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crmrules.adapters.memory import MemoryStore, MemoryTransaction
from crmrules.model import Absence, Client, Contact, ContactRole, Deal, Manager
from crmrules.store import AuditEntry, OutboxMessage, Timer, TimerStatus

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)

#: custom field values of every kind a host may store, mutable ones included
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.decimals(allow_nan=False, allow_infinity=False).map(Decimal)
    | st.dates()
    | st.frozensets(st.text(max_size=3), max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.sets(st.integers(), max_size=3)
    ),
    max_leaves=6,
)
FIELDS = st.dictionaries(st.text(min_size=1, max_size=4), VALUES, max_size=4)


def _scramble(value: Any) -> None:
    """Change every mutable thing inside ``value`` in place."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _scramble(item)
        value["scrambled"] = ["x"]
    elif isinstance(value, list):
        for item in value:
            _scramble(item)
        value.append("scrambled")
    elif isinstance(value, set):
        value.add(-1)


def _dumped(record: Any) -> Any:
    return record.model_dump()


def _check(
    put: Callable[[MemoryTransaction, Any], None],
    get: Callable[[MemoryTransaction], Any],
    record: Any,
    change: Callable[[Any], None],
) -> None:
    store = MemoryStore()
    expected = _dumped(record)
    with store.transaction() as tx:
        put(tx, record)
        change(record)  # the object the caller gave
        got = get(tx)
        assert _dumped(got) == expected
        change(got)  # the object the caller got
        assert _dumped(get(tx)) == expected
    with store.transaction() as tx:
        assert _dumped(get(tx)) == expected


def _change_client(client: Client) -> None:
    _scramble(client.fields)
    client.fields["new"] = 1
    client.name = "changed"
    client.tags = frozenset({"changed"})


@given(FIELDS)
def test_a_client_given_or_got_is_the_callers_own(fields: dict[str, Any]) -> None:
    client = Client(id="c1", name="Acme", fields=fields, tags=frozenset({"a"}), created_at=T0)

    def get(tx: MemoryTransaction) -> Client:
        found = tx.get_client("c1")
        assert found is not None
        (listed,) = list(tx.iter_clients())
        _change_client(listed)
        return found

    _check(lambda tx, c: tx.put_client(c), get, client, _change_client)


@given(FIELDS)
def test_a_deal_given_or_got_is_the_callers_own(fields: dict[str, Any]) -> None:
    deal = Deal(id="d1", client="c1", pipeline="p", stage="new", amount=Decimal(5), fields=fields)

    def change(found: Deal) -> None:
        _scramble(found.fields)
        found.fields["new"] = 1
        found.stage = "won"

    def get(tx: MemoryTransaction) -> Deal:
        found = tx.get_deal("d1")
        assert found is not None
        for listed in tx.deals_of("c1"):
            change(listed)
        return found

    _check(lambda tx, d: tx.put_deal(d), get, deal, change)


def test_nested_models_are_copied_too() -> None:
    """A manager's absences (a tuple of models) and a contact's roles (a list of models)."""
    manager = Manager(
        id="m1",
        absent=(Absence(start=date(2026, 12, 1), end=date(2026, 12, 2), deputy="m2"),),
    )

    def change_manager(found: Manager) -> None:
        found.absent[0].deputy = "m3"
        found.name = "changed"

    def get_manager(tx: MemoryTransaction) -> Manager:
        found = tx.get_manager("m1")
        assert found is not None
        for listed in tx.list_managers():
            change_manager(listed)
        return found

    _check(lambda tx, m: tx.put_manager(m), get_manager, manager, change_manager)
    contact = Contact(id="p1", name="Ivan", roles=[ContactRole(client="c1", role="buyer")])

    def change_contact(found: Contact) -> None:
        found.roles[0].role = "changed"
        found.roles.append(ContactRole(client="c2", role="director"))

    def get_contact(tx: MemoryTransaction) -> Contact:
        found = tx.get_contact("p1")
        assert found is not None
        for listed in tx.contacts_of("c1"):
            change_contact(listed)
        return found

    _check(lambda tx, c: tx.put_contact(c), get_contact, contact, change_contact)


@given(FIELDS)
def test_timers_messages_and_audit_lines_keep_their_data(data: dict[str, Any]) -> None:
    timer = Timer(key="k", kind="rule", due_at=T0, created_at=T0, data=data)

    def change_timer(found: Timer) -> None:
        _scramble(found.data)
        found.note = "changed"

    def get_timer(tx: MemoryTransaction) -> Timer:
        found = tx.get_timer("k")
        assert found is not None
        for listed in tx.find_timers(status=TimerStatus.PENDING):
            change_timer(listed)
        return found

    _check(lambda tx, t: tx.put_timer(t), get_timer, timer, change_timer)
    message = OutboxMessage(
        key="m", channel="log", to="a@b.ru", data=data, next_attempt_at=T0, created_at=T0
    )

    def change_message(found: OutboxMessage) -> None:
        _scramble(found.data)
        found.to = "c@d.ru"

    def get_message(tx: MemoryTransaction) -> OutboxMessage:
        found = tx.get_message("m")
        assert found is not None
        for listed in tx.due_messages(T0, 10):
            change_message(listed)
        return found

    _check(lambda tx, m: tx.put_message(m), get_message, message, change_message)
    entry = AuditEntry(at=T0, event_id="e", event_type="t", kind="effect", message="m", data=data)

    def change_entry(found: AuditEntry) -> None:
        _scramble(found.data)
        found.message = "changed"

    def get_entry(tx: MemoryTransaction) -> AuditEntry:
        (found,) = tx.audit_log(event_id="e")
        return found

    _check(lambda tx, e: tx.add_audit(e), get_entry, entry, change_entry)


@given(FIELDS, FIELDS)
def test_a_lent_record_is_the_stored_version_and_its_values_are_its_own(
    fields: dict[str, Any], later: dict[str, Any]
) -> None:
    """``lend_client`` (the engine's read for evaluating): the record as ``Client.record`` gives it.

    Its flat record is made once per stored version; changing what is inside
    it changes nothing the store keeps, a put lends the new version and a
    rolled-back put the old one again.
    """
    store = MemoryStore()
    client = Client(id="c1", name="Acme", fields=fields, tags=frozenset({"a"}), created_at=T0)
    expected = _dumped(client)
    with store.transaction() as tx:
        tx.put_client(client)
        lent = tx.lend_client("c1")
        assert lent is not None and tx.lend_client("c2") is None
        stored, record = lent
        assert _dumped(stored) == expected and record == client.record()
        assert tx.lend_client("c1") == (stored, record)  # the same loan, not made again
        for value in record.values():
            _scramble(value)
        got = tx.get_client("c1")
        assert got is not None and _dumped(got) == expected
        updated = client.model_copy(update={"fields": later, "name": "Renamed"})
        tx.put_client(updated)
        again = tx.lend_client("c1")
        assert again is not None and again[1] == updated.record()
    with store.transaction() as tx:
        tx.put_client(client)
        tx.rollback()
        lent = tx.lend_client("c1")
        assert lent is not None and _dumped(lent[0]) == _dumped(updated)
        assert lent[1] == updated.record()
