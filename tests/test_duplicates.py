"""The duplicates: section, pair verdicts, and finding duplicates in the base by SQL blocking."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.errors import RegulationError
from crmrules.model import Client
from crmrules.rules.regulation import load_regulation
from dedup_support import REGULATION, engine_on, stores, write_regulation

BASE = "version: 1\nfields:\n  client.inn: {type: string}\n"


def problems(tmp_path: Path, section: str) -> list[str]:
    with pytest.raises(RegulationError) as raised:
        load_regulation(write_regulation(tmp_path, BASE + section))
    return [str(p) for p in raised.value.problems]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("duplicates:\n  match: [{key: ogrn}]\n", "regulation.yaml:5:17: no field client.ogrn"),
        (
            "duplicates:\n  match: [{key: phone, threshold: 80}]\n",
            "regulation.yaml:5:11: threshold and ambiguous apply to names, not to phone",
        ),
        (
            "duplicates:\n  match: [{key: name, threshold: 80, ambiguous: 90}]\n",
            "regulation.yaml:5:49: ambiguous (90) is above threshold (80)",
        ),
        (
            "duplicates:\n  region: XX\n  match: [{key: name}]\n",
            "regulation.yaml:5:11: unknown phone region 'XX'",
        ),
        ("duplicates:\n  match: [{key: fax}]\n", "regulation.yaml:5:17: 'fax' is not one of"),
        ("duplicates:\n  match: []\n", "regulation.yaml:5:10: list should have at least 1 item"),
        (
            "duplicates:\n  match: [{key: name}, {key: name}]\n",
            "regulation.yaml:5:30: key 'name' is matched twice",
        ),
        (
            "duplicates:\n  match: [{key: phone, field: deal.phone}]\n",
            "regulation.yaml:5:31: no field deal.phone",
        ),
        ("duplicates:\n  mach: [{key: name}]\n", "unknown key 'mach' (did you mean match?)"),
        (
            "duplicates:\n  match: [{key: phone, field: client.phon}]\n",
            "regulation.yaml:5:31: no field client.phon (did you mean client.phone?)",
        ),
    ],
)
def test_a_bad_duplicates_section_is_named_by_file_line_and_column(
    tmp_path: Path, section: str, expected: str
) -> None:
    found = problems(tmp_path, section)
    assert any(expected in p for p in found), found


def test_an_undeclared_tax_id_field_says_how_to_declare_it(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "duplicates:\n  match: [{key: ogrn}]\n")
    assert "declare it under fields: (client.ogrn: {type: string})" in problem


def verdict(tmp_path: Path, a: dict[str, str], b: dict[str, str]) -> str:
    rules = load_regulation(write_regulation(tmp_path)).duplicates
    assert rules is not None
    return rules.compare(rules.normalised(a), rules.normalised(b)).verdict


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"name": "ООО «Ромашка»"}, {"name": "Ромашка ООО"}, "duplicate"),
        ({"name": "Ромашка", "phone": "+74951234567"}, {"phone": "8 495 123-45-67"}, "duplicate"),
        ({"email": "Info@Romashka.ru"}, {"email": "info@romashka.ru"}, "duplicate"),
        ({"name": "Ромашка", "inn": "7707083893"}, {"name": "Ромашка", "inn": "500100732259"},
         "ambiguous"),  # same name, two legal entities: a person decides
        ({"name": "Ромашка", "inn": "7707083893"}, {"name": "Лютик", "inn": "500100732259"},
         "different"),
        ({"name": "Ромашка", "phone": "+74951234567"}, {"name": "Сталь", "phone": "84951234567"},
         "ambiguous"),  # one switchboard, unlike names
        ({"name": "Ромашка-Юг"}, {"name": "Ромашка"}, "ambiguous"),
        ({"name": "Ромашка"}, {"name": "Василёк"}, "different"),
    ],
)  # fmt: skip
def test_pair_verdicts(tmp_path: Path, a: dict[str, str], b: dict[str, str], expected: str) -> None:
    assert verdict(tmp_path, a, b) == expected


NAMES = ["Ромашка", "Ромашка ООО", "Лютик", "ИП Лютик", "Василёк", "Мак", "Астра", "Астра Плюс"]
PHONES = [None, "+74951234567", "8 495 123 45 67", "+79161112233", "+78121234567"]
EMAILS = [None, "a@romashka.ru", "A@Romashka.RU", "b@mail.ru", "x.y@gmail.com", "xy+1@gmail.com"]


@st.composite
def bases(draw: st.DrawFn) -> list[Client]:
    n = draw(st.integers(2, 14))
    return [
        Client(
            id=f"c{i:02}",
            name=draw(st.sampled_from(NAMES)),
            phone=draw(st.sampled_from(PHONES)),
            email=draw(st.sampled_from(EMAILS)),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_sql_blocking_finds_what_comparing_every_pair_finds(kind: str, tmp_path: Path) -> None:
    """The oracle compares all pairs; blocking must find each pair sharing a key, and no other."""
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        rules = engine.regulation.duplicates
        assert rules is not None

        @settings(
            max_examples=25 if kind == "memory" else 8,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(bases())
        def check(clients: list[Client]) -> None:
            with store.transaction() as tx:
                for old in tx.client_ids():
                    from crmrules.adapters import import_tables

                    import_tables.delete_client(tx, old)
            for client in clients:
                engine.create_client(client)
            found = {(p.first, p.second): p.verdict for p in engine.find_duplicates()}
            expected = {}
            for a, b in itertools.combinations(clients, 2):
                va, vb = rules.normalised(a.record()), rules.normalised(b.record())
                shared = rules.block_keys(va) & rules.block_keys(vb)
                result = rules.compare(va, vb)
                if shared and result.verdict != "different":
                    expected[(a.id, b.id)] = result.verdict
            assert found == expected

        check()


def test_find_duplicates_walks_the_base_in_chunks(tmp_path: Path) -> None:
    with stores("sqlite", tmp_path) as store:
        engine = engine_on(store, tmp_path)
        rng = random.Random(3)
        for i in range(60):
            engine.create_client(Client(id=f"c{i:03}", name=f"Фирма {i % 20} {rng.choice('абв')}"))
        from crmrules import dedup

        whole = list(dedup.find_duplicates(engine, chunk=1000))
        chunked = list(dedup.find_duplicates(engine, chunk=3))
        assert sorted(whole, key=lambda p: (p.first, p.second)) == sorted(
            chunked, key=lambda p: (p.first, p.second)
        )
        assert whole


def test_find_duplicates_without_the_section_says_how_to_declare_it(tmp_path: Path) -> None:
    from crmrules.errors import RefusedError

    with stores("memory", tmp_path) as store:
        engine = engine_on(store, tmp_path, "version: 1\n")
        with pytest.raises(RefusedError, match="declares no duplicates: section"):
            list(engine.find_duplicates())


def test_keys_follow_a_changed_regulation(tmp_path: Path) -> None:
    """Stored keys made by other rules are made again before they are used."""
    with stores("sqlite", tmp_path) as store:
        plain = engine_on(store, tmp_path, "version: 1\n")
        plain.create_client(Client(id="a", name="ООО Ромашка"))
        plain.create_client(Client(id="b", name="Ромашка"))
        engine = engine_on(store, tmp_path, REGULATION)
        assert [(p.first, p.second) for p in engine.find_duplicates()] == [("a", "b")]


class _ProxyStore:
    """A store of another kind (as a plugin's would be): the memory store behind a proxy."""

    def __init__(self) -> None:
        from crmrules.adapters.memory import MemoryStore

        self._inner = MemoryStore()

    def transaction(self):  # type: ignore[no-untyped-def]
        from contextlib import contextmanager

        @contextmanager
        def proxied():  # type: ignore[no-untyped-def]
            with self._inner.transaction() as tx:
                yield _Proxy(tx)

        return proxied()

    def close(self) -> None:
        pass


class _Proxy:
    def __init__(self, tx: object) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> object:
        return getattr(self._tx, name)


def test_a_store_without_the_keys_table_stores_clients_and_says_it_cannot_find(
    tmp_path: Path,
) -> None:
    from crmrules.errors import StoreError

    engine = engine_on(_ProxyStore(), tmp_path)  # type: ignore[arg-type]
    engine.create_client(Client(id="a", name="Ромашка"))  # the keys are simply not kept
    assert engine.get_client("a") is not None
    with pytest.raises(StoreError, match="keeps no import, duplicate-key or merge records"):
        list(engine.find_duplicates())
    with pytest.raises(StoreError, match="use the SQL store"):
        engine.merge_clients("a", "b")
