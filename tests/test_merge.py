"""Merging clients: every related record moves; unmerge puts the whole store state back."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from crmrules.errors import RefusedError
from crmrules.merging import MergePolicy, merged_values
from crmrules.model import (
    Client,
    Contact,
    ContactRole,
    Deal,
    Interaction,
    Mailing,
    MembershipSource,
    Task,
)
from crmrules.store import Timer
from dedup_support import NOW, engine_on, state, stores

KINDS = ["memory", "sqlite", "postgresql"]


def populate(engine: object) -> None:
    """Two clients, the other with one record in every table a merge moves."""
    from crmrules.engine import Engine

    assert isinstance(engine, Engine)
    engine.create_client(
        Client(id="keep", name="ООО «Ромашка»", city="Москва", phone=None,
               fields={"inn": "7707083893"}, tags=frozenset({"vip"}))
    )  # fmt: skip
    engine.create_client(
        Client(id="other", name="Ромашка ООО", city="Казань", phone="+74951234567",
               email="info@romashka.ru", fields={"employees": 40}, tags=frozenset({"expo"}),
               created_at=NOW + timedelta(days=1))
    )  # fmt: skip
    engine.create_deal(Deal(id="d1", client="other", pipeline="sales", stage="lead"))
    engine.log_interaction(
        Interaction(id="i1", kind="call", client="other", occurred_at=NOW - timedelta(hours=1))
    )
    with engine.store.transaction() as tx:
        tx.put_contact(
            Contact(id="p1", name="Анна", roles=[ContactRole(client="other", role="buyer")])
        )
        tx.put_contact(
            Contact(
                id="p2",
                name="Борис",
                roles=[
                    ContactRole(client="keep", role="director"),
                    ContactRole(client="other", role="director"),
                ],
            )
        )
        tx.add_task(Task(id="t1", kind="call", title="Позвонить", client="other", created_at=NOW))
        tx.add_mailing(
            Mailing(id="m1", template="welcome", to="info@romashka.ru", client="other",
                    created_at=NOW)
        )  # fmt: skip
        tx.put_timer(
            Timer(key="plan:other", kind="plan", client="other", due_at=NOW + timedelta(days=3),
                  created_at=NOW)
        )  # fmt: skip
    from crmrules.rules.territories import override

    with engine.store.transaction() as tx:
        memberships = override(
            tx.memberships("other"), "other", "msk", MembershipSource.MANUAL_ADD, NOW
        )
        tx.set_memberships("other", memberships)


@pytest.mark.parametrize("kind", KINDS)
def test_a_merge_moves_every_related_record_and_unmerge_restores_the_store(
    kind: str, tmp_path: Path
) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        populate(engine)
        before = state(store)
        done = engine.merge_clients("keep", "other")
        after = state(store)
        # each table, one by one
        assert "other" not in after["clients"] and "other" not in after["memberships"]
        assert after["keys"].get("other") is None
        assert after["deals"]["d1"].client == "keep"
        assert after["tasks"]["t1"].client == "keep"
        assert after["interactions"]["i1"].client == "keep"
        assert after["mailings"]["m1"].client == "keep"
        assert after["timers"]["plan:other"].client == "keep"
        assert [r.client for r in after["contacts"]["p1"].roles] == ["keep"]
        assert [(r.client, r.role) for r in after["contacts"]["p2"].roles] == [("keep", "director")]
        overrides = [
            m for m in after["memberships"]["keep"] if m.source is not MembershipSource.RULE
        ]
        assert [(m.territory, m.source) for m in overrides] == [
            ("msk", MembershipSource.MANUAL_ADD)
        ]
        assert done.moved == {"contacts": 2, "deals": 1, "tasks": 1, "interactions": 1,
                              "mailings": 1, "overrides": 1, "timers": 1}  # fmt: skip
        kept = after["clients"]["keep"]
        assert kept.phone == "+74951234567" and kept.email == "info@romashka.ru"  # filled
        assert kept.name == "ООО «Ромашка»" and kept.city == "Москва"  # kept
        assert kept.tags == {"vip", "expo"} and kept.fields["employees"] == 40
        # the rules saw client.merged
        tasks = [t for t in after["tasks"].values() if t.rule == "merged"]
        assert [t.title for t in tasks] == ["Проверить объединение other"]
        engine.unmerge(done.merge_id)
        restored = state(store)
        rule_task = tasks[0].id
        assert restored["tasks"].pop(rule_task) == tasks[0]  # a rule's effect stays, as ever
        assert restored == before


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_merged_event_carries_the_merge_and_the_client_merged(
    kind: str, tmp_path: Path
) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        populate(engine)
        done = engine.merge_clients("keep", "other")
        merged = [e for e in done.result.events if e.type == "client.merged"]
        assert [(e.client) for e in merged] == ["keep"]
        with store.transaction() as tx:
            audit = [a for a in tx.audit_log() if a.data.get("effect") == "merge"]
        assert audit and audit[0].data["merge"] == done.merge_id


def test_field_policies() -> None:
    keep = Client(id="k", name="Ромашка", phone=None, city="Москва", created_at=NOW,
                  fields={"inn": "1", "employees": None})  # fmt: skip
    other = Client(id="o", name="Ромашка Новая", phone="+7", city="Казань",
                   created_at=NOW + timedelta(days=1), fields={"employees": 5})  # fmt: skip
    fill = merged_values(keep, other, MergePolicy())
    assert (fill.name, fill.phone, fill.city, fill.fields["employees"]) == (
        "Ромашка", "+7", "Москва", 5)  # fmt: skip
    newer = merged_values(keep, other, MergePolicy.of("newer"))
    assert (newer.name, newer.city, newer.fields["inn"]) == ("Ромашка Новая", "Казань", "1")
    kept = merged_values(keep, other, MergePolicy.of({"*": "keep", "city": "newer"}))
    assert (kept.phone, kept.city, kept.fields["employees"]) == (None, "Казань", None)
    older_other = merged_values(other, keep, MergePolicy.of("newer"))  # keep is the newer one
    assert older_other.name == "Ромашка Новая"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("latest", "the merge policy must be one of keep, fill, newer, not 'latest'"),
        ({"phone": "both"}, "the merge policy of field 'phone' must be one of keep, fill, newer"),
        ({"*": "x"}, "the merge policy's default ('*') must be one of"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(policy: object, message: str) -> None:
    with pytest.raises(RefusedError, match=re.escape(message)):
        MergePolicy.of(policy)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_merge_and_unmerge_refusals_name_the_record(kind: str, tmp_path: Path) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        populate(engine)
        before = state(store)
        with pytest.raises(RefusedError, match="cannot merge client keep into itself"):
            engine.merge_clients("keep", "keep")
        with pytest.raises(RefusedError, match="merge: no client 'ghost'"):
            engine.merge_clients("keep", "ghost")
        with pytest.raises(RefusedError, match="merge: no client 'ghost'"):
            engine.merge_clients("ghost", "other")
        assert state(store) == before  # nothing half-done
        with pytest.raises(RefusedError, match="no merge 'merge-nope' in the store"):
            engine.unmerge("merge-nope")
        done = engine.merge_clients("keep", "other")
        engine.update_client("keep", {"city": "Тула"})
        with pytest.raises(RefusedError, match=r"client keep changed \(or went\) after the merge"):
            engine.unmerge(done.merge_id)
        engine.update_client("keep", {"city": "Москва"})
        engine.create_client(Client(id="other", name="Новая"))
        with pytest.raises(RefusedError, match="a client other exists again"):
            engine.unmerge(done.merge_id)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_unmerge_works_once_and_not_after_a_purge(kind: str, tmp_path: Path) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        populate(engine)
        first = engine.merge_clients("keep", "other")
        assert not engine.unmerge(first.merge_id).duplicate
        assert engine.unmerge(first.merge_id).duplicate  # asked again: the same, done once
        second = engine.merge_clients("keep", "other")
        assert engine.purge_merges() == 1
        with pytest.raises(RefusedError, match=f"merge {second.merge_id} is purged"):
            engine.unmerge(second.merge_id)
