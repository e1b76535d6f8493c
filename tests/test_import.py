"""Importing clients: each row all or nothing, by row and column; resumable; through the rules."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from crmrules.adapters import import_tables
from crmrules.errors import RefusedError
from crmrules.import_mapping import MappingError, load_mapping
from crmrules.model import Client
from dedup_support import engine_on, state, stores, write_regulation

MAPPING = {
    "source": "exhibition",
    "columns": {"Название": "name", "Телефон": "phone", "Почта": "email", "ИНН": "inn",
                "Город": "city", "Сотрудников": "employees"},
}  # fmt: skip
ROWS = [
    {"Название": "ООО «Ромашка»", "Телефон": "+7 495 123-45-67", "Почта": "info@romashka.ru",
     "ИНН": "7707083893", "Город": "Москва"},
    {"Название": "Лютик", "Почта": "не адрес", "ИНН": "7707083894"},   # two problems
    {"Название": "Ромашка ООО", "Телефон": "8 (495) 1234567"},          # duplicate of row 2
    {"Название": "Василёк", "Город": "Казань", "Сотрудников": "12"},
    {"Название": "Ромашки"},                                             # ambiguous
    {"Название": "Астра", "Сотрудников": "двенадцать"},                 # not an integer
    {"Название": "ИП Мак", "Почта": "MAK@Mail.ru"},
]  # fmt: skip
KINDS = ["memory", "sqlite", "postgresql"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_row_is_new_a_duplicate_ambiguous_or_refused_by_row_and_column(
    kind: str, tmp_path: Path
) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        report = engine.import_clients(ROWS, MAPPING, import_id="expo", chunk=3)
        assert report.counts == {"created": 3, "duplicate": 1, "ambiguous": 1, "invalid": 2}
        listed = {row["row"]: row for row in report.listed}
        assert sorted(listed) == [3, 4, 6, 7]
        texts = [p["text"] for p in listed[3]["problems"]]
        assert sorted(texts) == [
            "row 3, column 'ИНН': '7707083894' is not a valid INN: its check digit is wrong",
            "row 3, column 'Почта': email: expected one e-mail address, such as "
            "ivan@example.ru, got 'не адрес'",
        ]
        assert {p["column"] for p in listed[3]["problems"]} == {"Почта", "ИНН"}
        assert listed[4]["outcome"] == "duplicate" and listed[4]["client"] == "expo-2"
        assert listed[6]["outcome"] == "ambiguous"
        assert [c["client"] for c in listed[6]["candidates"]] == ["expo-2"]
        [problem] = listed[7]["problems"]
        assert problem["column"] == "Сотрудников" and "whole number" in problem["message"]
        # The good rows of every chunk are in; the bad ones left nothing behind.
        with store.transaction() as tx:
            assert tx.client_ids() == ["expo-2", "expo-5", "expo-8"]
            for bad in ("expo-3", "expo-7"):
                assert import_tables.keys_of(tx, bad) == []
        assert engine.get_client("expo-5").territories == frozenset({"kzn"})  # type: ignore[union-attr]
        assert engine.get_client("expo-5").fields["employees"] == 12  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_imported_clients_go_through_the_rules_with_the_import_in_the_event(
    kind: str, tmp_path: Path
) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        engine.create_client(Client(id="host", name="Сталь", email="a@stal.ru"))
        engine.import_clients(ROWS[:1], MAPPING, import_id="expo")
        engine.import_clients([{"Название": "Фиалка"}], {**MAPPING, "source": "site"})
        with store.transaction() as tx:
            mailings = tx.find_mailings()
            created = [e for e in tx.audit_log() if e.event_type == "client.created"]
        assert [(m.client, m.to) for m in mailings] == [("expo-2", "info@romashka.ru")]
        assert mailings[0].subject == "Рады знакомству, ООО «Ромашка»"
        results = {e.event_id.split("/")[0] for e in created if e.rule == "welcome"}
        assert any(r.startswith("import:expo:") for r in results)


@pytest.mark.parametrize("kind", KINDS)
def test_an_import_marked_events_false_raises_no_events(kind: str, tmp_path: Path) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        report = engine.import_clients(ROWS, {**MAPPING, "events": False}, import_id="quiet")
        assert report.counts["created"] == 3
        with store.transaction() as tx:
            assert tx.find_mailings() == []
            assert not [e for e in tx.audit_log() if e.event_type == "client.created"]
        assert engine.get_client("quiet-2").territories == frozenset({"msk"})  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupted_import_continues_where_it_stopped(kind: str, tmp_path: Path) -> None:
    rows = [
        {"Название": f"Фирма {i} Альфа", "Город": "Москва", "Почта": f"f{i}@alfa.ru"}
        for i in range(23)
    ]
    with stores(kind, tmp_path / "a") as whole, stores(kind, tmp_path / "b") as broken:
        once = engine_on(whole, tmp_path / "a")
        once.import_clients(rows, {**MAPPING, "source": "exhibition"}, import_id="big", chunk=5)
        engine = engine_on(broken, tmp_path / "b")
        done = 0

        def stop_after_two_chunks(n: int) -> None:
            nonlocal done
            done += 1
            if done == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            engine.import_clients(
                rows, MAPPING, import_id="big", chunk=5, progress=stop_after_two_chunks
            )
        with broken.transaction() as tx:
            assert len(tx.client_ids()) == 10
        report = engine.import_clients(rows, MAPPING, import_id="big", chunk=5)
        assert report.resumed_after == 11
        assert report.counts["created"] == 23
        assert state(broken)["clients"].keys() == state(whole)["clients"].keys()
        with broken.transaction() as tx:
            assert len(tx.find_mailings()) == 23  # each welcome letter once


def test_resuming_with_another_source_is_refused(tmp_path: Path) -> None:
    with stores("memory", tmp_path) as store:
        engine = engine_on(store, tmp_path)
        engine.import_clients(ROWS[:1], MAPPING, import_id="expo")
        with pytest.raises(RefusedError, match="was started with source 'exhibition'"):
            engine.import_clients(ROWS[:1], {**MAPPING, "source": "site"}, import_id="expo")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_dry_run_writes_nothing(kind: str, tmp_path: Path) -> None:
    with stores(kind, tmp_path) as store:
        engine = engine_on(store, tmp_path)
        engine.create_client(Client(id="host", name="Сталь"))
        before = state(store)
        report = engine.import_clients(ROWS, MAPPING, import_id="try", dry_run=True)
        assert report.counts == {"created": 3, "duplicate": 1, "ambiguous": 1, "invalid": 2}
        assert state(store) == before
        with store.transaction() as tx:
            assert import_tables.get_record(tx, import_tables.IMPORTS, "try") is None


def test_an_existing_client_id_is_refused_by_row_and_column(tmp_path: Path) -> None:
    with stores("memory", tmp_path) as store:
        engine = engine_on(store, tmp_path)
        engine.create_client(Client(id="K-1", name="Сталь"))
        mapping = {"id": "Код", "columns": {"Название": "name"}, "on_duplicate": "create"}
        rows = [{"Код": "K-1", "Название": "Медь"}, {"Код": "", "Название": "Олово"}]
        report = engine.import_clients(rows, mapping)
        texts = [p["text"] for row in report.listed for p in row["problems"]]
        assert texts == [
            "row 2, column 'Код': client K-1 already exists",
            "row 3, column 'Код': no client id in this row",
        ]


def test_on_duplicate_create_imports_duplicates_too(tmp_path: Path) -> None:
    with stores("memory", tmp_path) as store:
        engine = engine_on(store, tmp_path)
        report = engine.import_clients(ROWS[:3], {**MAPPING, "on_duplicate": "create"})
        assert report.counts["created"] == 2 and report.counts["duplicate"] == 0


MAPPING_YAML = """\
source: exhibition
columns:
  Название: name
  Телефон: phone
  Почта: email
  ИНН: inn
  Город: city
  Сотрудников: employees
"""


def write_csv(path: Path, rows: list[dict[str, str]], delimiter: str = ";") -> Path:
    header = ["Название", "Телефон", "Почта", "ИНН", "Город", "Сотрудников"]
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, header, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("columns:\n  Название: nme\n", "mapping.yaml:2:13: an import cannot fill client field "
         "'nme'; did you mean name?"),
        ("columns: {Название: name}\nevents: no\n", "mapping.yaml:2:9: events must be true or "
         "false, not 'no'"),
        ("columns: {Название: name}\non_duplicate: merge\n", "mapping.yaml:2:15: on_duplicate must "
         "be one of skip, create, not 'merge'"),
        ("columns: {Название: name}\nsorce: x\n", "mapping.yaml:2:1: unknown key 'sorce' (did you "
         "mean source?)"),
        ("columns: {Название: name, Имя: name}\n", "mapping.yaml:1:32: client field 'name' is "
         "filled by two columns"),
        ("columns: {Название: territories}\n", "cannot fill client field 'territories'"),
        ("set: {segmnts: [a]}\ncolumns: {Название: name}\n", "mapping.yaml:1:7: an import cannot "
         "fill client field 'segmnts'"),
        ("- just a list\n", "mapping.yaml:1:1: a mapping must be a mapping"),
        ("columns: {Название: name\n", "mapping.yaml:"),
    ],
)  # fmt: skip
def test_a_bad_mapping_is_named_by_file_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    engine = engine_on(__import__("crmrules").MemoryStore(), tmp_path)
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Exception) as raised:
        load_mapping(path, engine.regulation)
    assert expected in str(raised.value)
    assert isinstance(raised.value, MappingError) or "mapping.yaml" in str(raised.value)


def test_a_column_missing_from_the_file_names_the_mapping_line(tmp_path: Path) -> None:
    with stores("memory", tmp_path) as store:
        engine = engine_on(store, tmp_path)
        (tmp_path / "mapping.yaml").write_text(MAPPING_YAML + "  Адрес: region\n", "utf-8")
        write_csv(tmp_path / "clients.csv", [])
        mapping = engine.import_mapping(tmp_path / "mapping.yaml")
        from crmrules import importing

        with pytest.raises(MappingError) as raised:
            importing.import_file(engine, tmp_path / "clients.csv", mapping)
        assert "mapping.yaml:9:3:" in str(raised.value)
        assert "clients.csv has no column 'Адрес'" in str(raised.value)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_csv_and_xlsx_files_import_alike(kind: str, tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items()} for row in ROWS]
    write_csv(tmp_path / "clients.csv", rows)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    header = ["Название", "Телефон", "Почта", "ИНН", "Город", "Сотрудников"]
    sheet.append(header)
    for row in rows:  # numbers as numbers, as a spreadsheet keeps them
        cells = [row.get(h) for h in header]
        sheet.append([int(c) if c and c.isdigit() else c for c in cells])
    book.save(tmp_path / "clients.xlsx")
    (tmp_path / "mapping.yaml").write_text(MAPPING_YAML, "utf-8")
    from crmrules import importing

    reports = []
    for name in ("clients.csv", "clients.xlsx"):
        with stores(kind, tmp_path / name.replace(".", "-")) as store:
            engine = engine_on(store, tmp_path)
            mapping = engine.import_mapping(tmp_path / "mapping.yaml")
            report = importing.import_file(engine, tmp_path / name, mapping, import_id="f")
            reports.append((report.counts, [r["row"] for r in report.listed]))
            assert engine.get_client("f-2").fields["inn"] == "7707083893"  # type: ignore[union-attr]
    assert reports[0] == reports[1]
    assert reports[0][0] == {"created": 3, "duplicate": 1, "ambiguous": 1, "invalid": 2}


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_the_import_command_lists_rows_and_continues_a_second_time(tmp_path: Path) -> None:
    write_regulation(tmp_path)
    write_csv(tmp_path / "clients.csv", ROWS)
    (tmp_path / "mapping.yaml").write_text(MAPPING_YAML, "utf-8")
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    args = ["import", "clients.csv", "--regulation", "regulation.yaml", "--mapping",
            "mapping.yaml", "--store", url]  # fmt: skip
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # some rows were refused
    lines = first.stdout.splitlines()
    assert "row 3, column 'ИНН': '7707083894' is not a valid INN: its check digit is wrong" in lines
    assert any(line.startswith("row 4: duplicate of client imp-") for line in lines)
    assert any(line.startswith("row 6: ambiguous, decide between: imp-") for line in lines)
    assert lines[-1].endswith("7 rows, imported 3, 1 duplicates, 1 ambiguous, 2 refused")
    again = run_cli(*args, cwd=tmp_path)
    assert again.stdout.splitlines()[-1].endswith("(resumed after row 8)")
    dupes = run_cli("duplicates", "--regulation", "regulation.yaml", "--store", url, cwd=tmp_path)
    assert dupes.returncode == 0 and dupes.stdout.splitlines()[-1] == "0 pair(s)", dupes.stderr
    bad = run_cli(*args[:4], "--mapping", "nowhere.yaml", "--store", url, cwd=tmp_path)
    assert bad.returncode == 1 and "nowhere.yaml:1:1: cannot read the file" in bad.stderr


def test_an_import_killed_mid_way_continues_and_imports_each_row_once(tmp_path: Path) -> None:
    """A real process, a real SIGKILL between chunks; the rerun ends as one run would."""
    write_regulation(tmp_path)
    rows = [
        {"Название": f"Фирма {i} Бета", "Город": "Москва", "Почта": f"f{i}@beta.ru"}
        for i in range(3000)
    ]
    write_csv(tmp_path / "clients.csv", rows)
    (tmp_path / "mapping.yaml").write_text(MAPPING_YAML, "utf-8")
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    args = [sys.executable, "-m", "crmrules", "import", "clients.csv", "--regulation",
            "regulation.yaml", "--mapping", "mapping.yaml", "--store", url, "--chunk", "50",
            "--import-id", "kill"]  # fmt: skip
    process = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    import sqlalchemy as sa

    deadline = time.monotonic() + 120
    engine = None
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (tmp_path / "crm.sqlite3").exists():
                engine = engine or sa.create_engine(url)
                with engine.connect() as connection, __import__("contextlib").suppress(Exception):
                    done = connection.exec_driver_sql(
                        "SELECT count(*) FROM crmrules_clients"
                    ).scalar()
                    if done and done >= 200:
                        break
            time.sleep(0.05)
        assert process.poll() is None, "the import ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if engine is not None:
            engine.dispose()
        if process.poll() is None:
            process.kill()
    rerun = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "imported 3000, 0 duplicates" in rerun.stdout
    assert "(resumed after row" in rerun.stdout
    check = sa.create_engine(url)
    with check.connect() as connection:
        clients = connection.exec_driver_sql("SELECT count(*) FROM crmrules_clients").scalar()
        mailings = connection.exec_driver_sql("SELECT count(*) FROM crmrules_mailings").scalar()
    check.dispose()
    assert clients == 3000 and mailings == 3000
