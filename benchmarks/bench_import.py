"""Importing a client list with planted duplicates: what is found, what is wrongly matched.

Run: python benchmarks/bench_import.py [--rows 100000] [--planted 0.05] [--baseline-rows 2000]

Writes a CSV of ``--rows`` companies into a temporary folder: unique names
(three words from word lists, a legal form and quotes in varying places),
unique phones, e-mails and, for half of them, a valid INN; ``--planted`` of
the rows are variants of an earlier row, with realistic differences: the
phone in another format (``+7 (495) ...``, ``8 495 ...``, digits only) or
missing, the legal form moved or changed, other quotes, the name in capitals,
``ё`` as ``е``, a slip past a word's fourth letter, the e-mail's case changed
(dots and a ``+tag`` added for gmail), the INN kept or dropped. Then
``crmrules import`` (the library call, a SQLite file, ``events: false``)
reads it in chunks and the report is compared with the truth:

- found: planted rows reported as a duplicate of their original;
- false matches: rows reported as a duplicate of a client they do not
  duplicate (an original matched to anything, a variant to the wrong one);
- ambiguous rows (listed for a person) are counted apart;
- memory: the process's resident size after 10%, 50% and 100% of the rows
  (bounded: it does not grow with the rows read).

The cost of duplicate detection is measured apart, interleaved in the same
run: ``--baseline-rows`` rows imported with the regulation's ``duplicates:``
section and without it (the floor), three rounds each, medians and spreads.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from crmrules import importing
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.rules.regulation import load_regulation

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
DUPLICATES = """\
duplicates:
  match:
    - {key: inn}
    - {key: phone}
    - {key: email}
    - {key: name, threshold: 90, ambiguous: 85}
"""
REGULATION = """\
version: 1
fields:
  client.inn: {type: string}
"""
MAPPING = """\
id: Код
columns:
  Название: name
  Телефон: phone
  E-mail: email
  ИНН: inn
  Город: city
events: false
"""
FIRST = [
    "Северн",
    "Южн",
    "Восточн",
    "Западн",
    "Центральн",
    "Волжск",
    "Уральск",
    "Сибирск",
    "Балтийск",
    "Дальневосточн",
    "Московск",
    "Невск",
    "Донск",
    "Камск",
    "Окск",
    "Енисейск",
    "Байкальск",
    "Алтайск",
    "Кубанск",
    "Приморск",
    "Красн",
    "Бел",
    "Зелен",
    "Золот",
    "Серебрян",
    "Стальн",
    "Медн",
    "Кедров",
    "Сосновск",
    "Берёзов",
]
SECOND = [
    "Сталь",
    "Лес",
    "Строй",
    "Торг",
    "Снаб",
    "Агро",
    "Маш",
    "Хим",
    "Транс",
    "Энерго",
    "Нефть",
    "Газ",
    "Мет",
    "Пром",
    "Тех",
    "Софт",
    "Логистик",
    "Инвест",
    "Трейд",
    "Сервис",
    "Мебель",
    "Текстиль",
    "Фарм",
    "Мед",
    "Пищепром",
    "Бумпром",
    "Стекло",
    "Пласт",
    "Электро",
    "Авто",
    "Кабель",
    "Насос",
    "Станок",
    "Инструмент",
    "Упаковка",
    "Керамика",
    "Бетон",
    "Кирпич",
    "Рыба",
    "Молоко",
]
THIRD = [
    "Холдинг",
    "Групп",
    "Альянс",
    "Партнёр",
    "Комплекс",
    "Завод",
    "Комбинат",
    "Центр",
    "Союз",
    "Плюс",
    "Регион",
    "Экспорт",
    "Импорт",
    "Компани",
    "Систем",
    "Проект",
    "Ресурс",
    "Капитал",
    "Стандарт",
    "Лидер",
    "Профи",
    "Мастер",
    "Эксперт",
    "Вектор",
    "Импульс",
    "Формат",
    "Квант",
    "Атлант",
    "Титан",
    "Гранит",
    "Меридиан",
    "Горизонт",
    "Прогресс",
    "Развитие",
    "Успех",
]
FOURTH = [
    "Тверь",
    "Омск",
    "Томск",
    "Курск",
    "Орёл",
    "Псков",
    "Вятка",
    "Пермь",
    "Уфа",
    "Чита",
    "Ижевск",
    "Сочи",
    "Тамбов",
    "Самара",
    "Якутск",
]
FORMS = ("ООО", "АО", "ЗАО", "ПАО", "Общество с ограниченной ответственностью")
QUOTES = (("«", "»"), ('"', '"'), ("“", "”"), ("", ""))
CITIES = ("Москва", "Санкт-Петербург", "Казань", "Екатеринбург", "Новосибирск", "Тула")
CODES = ("495", "499", "812", "843", "343", "383", "916", "903", "925", "985", "926")


def inn10(rng: random.Random) -> str:
    body = f"{rng.randint(10**8, 10**9 - 1)}"
    weights = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return body + str(sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11 % 10)


def phone_text(national: str, style: int) -> str:
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return (
        f"+7 ({a}) {b}-{c}-{d}",
        f"8 {a} {b}{c}{d}",
        f"8{national}",
        f"+7{national}",
        f"8 ({a}) {b} {c} {d}",
    )[style]


def company(words: tuple[str, ...], form: str, quotes: tuple[str, str], last: bool) -> str:
    name = " ".join(words)
    quoted = f"{quotes[0]}{name}{quotes[1]}"
    return f"{quoted} {form}" if last else f"{form} {quoted}"


def slip(word: str, rng: random.Random) -> str:
    """A typing slip past the fourth letter (a letter doubled or dropped)."""
    if len(word) < 7:
        return word
    at = rng.randint(5, len(word) - 2)
    return word[:at] + word[at] + word[at:] if rng.random() < 0.5 else word[:at] + word[at + 1 :]


def generate(
    rows: int, planted: float, seed: int = 17
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The rows, and the truth: planted row id -> the id of the row it duplicates."""
    rng = random.Random(seed)
    duplicates = int(rows * planted)
    originals = rows - duplicates
    combos = [(f, s, t, c) for f in FIRST for s in SECOND for t in THIRD for c in FOURTH]
    picked = rng.sample(combos, originals)
    phones = rng.sample(range(10**7), originals)
    out: list[dict[str, str]] = []
    made: list[dict[str, str]] = []
    for i, (first, second, third, fourth) in enumerate(picked):
        words = (first + "ый", second, third, fourth)
        national = f"{rng.choice(CODES)}{phones[i]:07}"
        domain = "gmail.com" if rng.random() < 0.2 else f"{second.lower()}{i}.ru"
        local = f"info.{i}" if domain == "gmail.com" else "info"
        record = {
            "Код": f"c{i:06}",
            "Название": company(words, rng.choice(FORMS), rng.choice(QUOTES), rng.random() < 0.3),
            "Телефон": phone_text(national, rng.randrange(5)),
            "E-mail": f"{local}@{domain}",
            "ИНН": inn10(rng) if rng.random() < 0.5 else "",
            "Город": rng.choice(CITIES),
            "_words": "|".join(words),
            "_national": national,
        }
        made.append(record)
    truth: dict[str, str] = {}
    variants: list[tuple[int, dict[str, str]]] = []
    for j in range(duplicates):
        index = rng.randrange(originals)
        source = made[index]
        words = source["_words"].split("|")
        if rng.random() < 0.25:
            k = rng.randrange(len(words))
            words[k] = slip(words[k], rng)
        name = company(tuple(words), rng.choice(FORMS), rng.choice(QUOTES), rng.random() < 0.5)
        if rng.random() < 0.3:
            name = name.upper()
        if rng.random() < 0.5:
            name = name.replace("ё", "е").replace("Ё", "Е")
        email = source["E-mail"]
        local, _, domain = email.partition("@")
        if domain == "gmail.com" and rng.random() < 0.5:
            local = local.replace(".", "") + "+expo"
        email = f"{local}@{domain}"
        email = email.upper() if rng.random() < 0.3 else email.capitalize()
        variant = {
            "Код": f"d{j:06}",
            "Название": name,
            "Телефон": ""
            if rng.random() < 0.2
            else phone_text(source["_national"], rng.randrange(5)),
            "E-mail": "" if rng.random() < 0.2 else email,
            "ИНН": source["ИНН"] if rng.random() < 0.6 else "",
            "Город": source["Город"],
        }
        truth[variant["Код"]] = source["Код"]
        variants.append((index, variant))
    # Each variant comes somewhere after its original, as in a list collected over time.
    after: dict[int, list[dict[str, str]]] = {}
    for index, variant in variants:
        place = rng.randint(index, originals - 1)
        after.setdefault(place, []).append(variant)
    for i, record in enumerate(made):
        out.append({k: v for k, v in record.items() if not k.startswith("_")})
        out.extend(after.get(i, []))
    return out, truth


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, ["Код", "Название", "Телефон", "E-mail", "ИНН", "Город"])
        writer.writeheader()
        writer.writerows(rows)


def resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * 4096 / 2**20


def engine_for(folder: Path, name: str, with_duplicates: bool) -> Engine:
    regulation_path = folder / f"{name}.yaml"
    regulation_path.write_text(REGULATION + (DUPLICATES if with_duplicates else ""), "utf-8")
    regulation = load_regulation(regulation_path)
    store = SQLAlchemyStore(f"sqlite:///{folder / name}.sqlite3")
    return Engine(regulation, store, SimulatedClock(NOW), entry_points=False)


def quality(folder: Path, rows: int, planted: float) -> None:
    data, truth = generate(rows, planted)
    csv_path = folder / "clients.csv"
    write_csv(csv_path, data)
    del data
    (folder / "mapping.yaml").write_text(MAPPING, "utf-8")
    engine = engine_for(folder, "quality", True)
    mapping = engine.import_mapping(folder / "mapping.yaml")
    marks = {int(rows * f): f"{f:.0%}" for f in (0.1, 0.5)}
    memory: list[str] = []
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        before = done
        done += n
        for mark, label in marks.items():
            if before < mark <= done:
                memory.append(f"{label}: {resident_mb():.0f} MB")

    start = time.perf_counter()
    report = importing.import_file(engine, csv_path, mapping, import_id="bench", progress=progress)
    elapsed = time.perf_counter() - start
    memory.append(f"100%: {resident_mb():.0f} MB")
    found = wrong = ambiguous_planted = ambiguous_other = 0
    ids: dict[int, str] = {}
    with open(csv_path, encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), 2):
            ids[number] = row["Код"]
    for row in importing.listed_rows(engine, "bench"):
        code = ids[row["row"]]
        if row["outcome"] == "duplicate":
            if truth.get(code) == row["client"]:
                found += 1
            else:
                wrong += 1
        elif row["outcome"] == "ambiguous":
            if code in truth:
                ambiguous_planted += 1
            else:
                ambiguous_other += 1
    engine.store.close()
    planted_count = len(truth)
    print(f"{rows} rows, {planted_count} planted duplicates, imported in {elapsed:.0f} s "
          f"({rows / elapsed:.0f} rows/s); {report.summary()}")  # fmt: skip
    print(f"  found:          {found} of {planted_count} = {found / planted_count:.2%}")
    print(f"  false matches:  {wrong} of {rows} rows = {wrong / rows:.3%}")
    print(f"  ambiguous:      {ambiguous_planted} planted, {ambiguous_other} others")
    print(f"  resident size:  {', '.join(memory)}")


def cost(folder: Path, rows: int, rounds: int) -> None:
    data, _ = generate(rows, 0.05, seed=5)
    csv_path = folder / "small.csv"
    write_csv(csv_path, data)
    times: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(rounds):
        for with_duplicates in (False, True):  # interleaved
            name = f"cost-{round_}-{with_duplicates}"
            engine = engine_for(folder, name, with_duplicates)
            mapping = engine.import_mapping(folder / "mapping.yaml")
            start = time.perf_counter()
            importing.import_file(engine, csv_path, mapping, import_id=name)
            times[with_duplicates].append(time.perf_counter() - start)
            engine.store.close()
    floor = statistics.median(times[False])
    for label, key in (
        ("import without duplicates: (floor)", False),
        ("import with duplicates:", True),
    ):
        median = statistics.median(times[key])
        spread = max(times[key]) - min(times[key])
        print(f"  {label:36} {median:6.1f} s  ±{spread / 2:4.1f}  {median / floor:5.2f}x floor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--planted", type=float, default=0.05)
    parser.add_argument("--baseline-rows", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        quality(folder, args.rows, args.planted)
        if args.baseline_rows:
            print(f"cost of duplicate detection, {args.baseline_rows} rows, {args.rounds} rounds:")
            cost(folder, args.baseline_rows, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
