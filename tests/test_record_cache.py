"""Records validated once per row's JSON text, kept across a SQL store's transactions.

An engine call reads its subject as JSON text (``prefetch.subject_query``);
a record validated from the same text in an earlier transaction is taken
as it is, and any other text (a write by this store, another process or
a host) is validated anew. The oracle: what ``get_client`` gives equals a
fresh store's reading of the same row, whatever wrote it.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules import Client
from crmrules.adapters.record_cache import ValidatedRows
from crmrules.adapters.sqlalchemy import SQLAlchemyStore


def _read(store: SQLAlchemyStore, client_id: str) -> tuple[Client | None, Client | None]:
    """The lent and the copied client, as an engine call reads them (its subject first)."""
    with store.transaction() as tx:
        tx.lock_subject(client_id, None)
        tx.event_result(f"e-{client_id}")
        lent = tx.lend_client(client_id)
        return (None if lent is None else lent[0]), tx.get_client(client_id)


def test_a_row_changed_elsewhere_is_validated_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cache.sqlite3"
    store, other = SQLAlchemyStore(url), SQLAlchemyStore(url)
    with store.transaction() as tx:
        tx.put_client(Client(id="c1", name="Ромашка"))
        tx.put_client(Client(id="c2", name="Лютик"))
    first, _ = _read(store, "c1")
    again, copy = _read(store, "c1")
    assert first is not None and again is first  # the same text: the record kept
    assert copy == first and copy is not first
    with other.transaction() as tx:  # another process's write
        tx.put_client(Client(id="c1", name="Василёк", fields={"score": 3}))
    changed, copy = _read(store, "c1")
    assert changed is not None and changed.name == "Василёк" and changed.fields == {"score": 3}
    assert copy == changed
    with store.transaction() as tx:  # this store's own write, then a deleted row
        tx.put_client(Client(id="c1", name="Мак"))
        tx.delete_client("c2")
    assert _read(store, "c1")[0] == Client(id="c1", name="Мак")
    assert _read(store, "c2") == (None, None)
    store.close()
    other.close()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["a", "b", "c"])), max_size=60))
def test_kept_rows_are_bounded_and_keyed_by_text(writes: list[tuple[int, str]]) -> None:
    rows = ValidatedRows(size=8)
    last: dict[tuple[str, str], str] = {}
    for number, text in writes:
        key = ("t", str(number))
        rows.keep(key, text, {"text": text}, text.upper())
        last[key] = text
        assert len(rows) <= 8
    for key, text in last.items():
        found = rows.get(key, text)
        assert found is None or found == ({"text": text}, text.upper())
        for other in {"a", "b", "c"} - {text}:
            assert rows.get(key, other) is None
