"""Every Python and YAML block of the docs and the README is run or checked.

How a block is checked is said by an HTML comment on the line before its
fence (invisible on the site):

- YAML without a comment: a whole regulation (it must load) or, with a
  ``scenarios`` key, a scenario file whose ``regulation`` is found in examples/;
- ``<!-- check: quote-of PATH -->``: each rule, territory, ... (by id) is the one of the
  regulation at PATH, abridged at most (keys left out, lists cut short), so a quoted
  example cannot drift from the file;
- ``<!-- check: syntax -->``: only read (a comment line, for instance);
- ``<!-- check: part-of PATH -->``: the block is one more file of the regulation
  at PATH (a file or a folder of examples/); together they must load;
- ``<!-- check: conditions PATH -->`` / ``actions PATH`` / ``triggers PATH`` /
  ``rules PATH``: a list of conditions, actions, triggers or rules (shown without
  their actions), each compiled in a rule of PATH;
- ``<!-- check: scenario PATH -->``: a scenario file run against PATH; it must pass;
- ``<!-- check: file NAME -->``: written as NAME into the page's own folder, where
  the page's later code uses it (a Python file is run there as a script at once);
- Python without a comment: executed; the blocks of one page share their
  names and run in a folder of their own where ``examples/`` is the repository's;
- ``<!-- check: compile -->``: Python that only lists calls (signatures); it
  must compile and import only what exists;
- ``<!-- check: commands -->`` on a ``console`` block: each ``$ crmrules ...`` line
  is run in the page's folder (after the page's earlier Python) and must exit 0,
  or the code written as ``# exit N`` after it; the lines shown under a command
  must appear in its output in that order (``...`` stands for lines left out).

Blocks in other languages (``sh``, ``console``, ``text``, ``toml``) are not checked.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmrules import RegulationError, load_regulation
from crmrules.rules.source import parse_text
from crmrules.testing.runner import run_file

ROOT = Path(__file__).parent.parent
#: The modules with a public API of their own (each with its __all__).
PUBLIC_MODULES = (
    "crmrules",
    "crmrules.testing",
    "crmrules.business_rules",
    "crmrules.reports",
    "crmrules.adapters.celery",
)
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

FENCE = re.compile(
    r"^(?:<!-- check: (?P<check>[^>]*?) -->\n)?```(?P<lang>[\w-]*)\n(?P<body>.*?)^```",
    re.M | re.S,
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    check: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    text = page.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("lang")) + 1
        yield Block(page, line, match["lang"], match["check"] or "", match["body"])


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# --- YAML -----------------------------------------------------------------------------------


def _load(*paths: Path) -> None:
    try:
        load_regulation(*paths)
    except RegulationError as error:
        pytest.fail(str(error))


def _with_part(base: str, part: str, work: Path) -> None:
    """The regulation at ``base`` plus ``part`` as one more file must load."""
    source = ROOT / base
    folder = work / "regulation"
    if source.is_dir():
        shutil.copytree(source, folder)
    else:
        folder.mkdir()
        shutil.copy(source, folder / source.name)
    (folder / "zz-docs.yaml").write_text(part, encoding="utf-8")
    _load(folder)


def _items_as_rules(kind: str, body: str, where: str) -> str:
    items, _ = parse_text(body, f"{where}.yaml")
    assert isinstance(items, list) and items, f"{where}: a {kind} block is a YAML list"
    rules = []
    for n, item in enumerate(items):
        rule: dict[str, Any] = {"id": f"docs-{n}", "on": "docs.check"}
        rule["then"] = [{"create_task": {"title": "docs"}}]
        if kind == "conditions":
            rule["if"] = item
        elif kind == "actions":
            rule["then"] = [item]
        elif kind == "rules":
            rule = {"then": rule["then"], **item}  # a rule shown without its actions
        else:
            rule["on"] = item
        rules.append(rule)
    return yaml.safe_dump({"rules": rules}, allow_unicode=True, sort_keys=False)


def _scenario(body: str, regulation: Path, work: Path) -> None:
    data, _ = parse_text(body, "docs.regulation.yaml")
    data["regulation"] = str(regulation)
    path = work / "docs.regulation.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    results = run_file(path)
    assert results, "no scenario ran"
    failed = [f"{r.name}:\n{r.report()}" for r in results if not r.passed]
    assert not failed, "\n\n".join(failed)


def _whole(body: str, name: str, work: Path) -> None:
    data, _ = parse_text(body, name)
    path = work / name
    path.write_text(body, encoding="utf-8")
    if isinstance(data, dict) and "scenarios" in data:
        regulation = ROOT / "examples" / str(data["regulation"])
        if not regulation.exists():
            regulation = work / str(data["regulation"])
        _scenario(body, regulation, work)
    else:
        assert isinstance(data, dict) and "version" in data, (
            "a YAML block without a check comment must be a whole regulation or scenario file"
        )
        _load(path)


def _contained(quoted: Any, full: Any) -> bool:
    """An abridged quote: keys may be left out and lists may stop early, nothing may differ."""
    if isinstance(quoted, dict) and isinstance(full, dict):
        return all(k in full and _contained(v, full[k]) for k, v in quoted.items())
    if isinstance(quoted, list) and isinstance(full, list):
        return len(quoted) <= len(full) and all(map(_contained, quoted, full))
    return bool(quoted == full)


def _name(item: Any) -> Any:
    """Rules, territories, ... are known by ``id``; scenarios by ``name``."""
    return item.get("id", item.get("name")) if isinstance(item, dict) else item


def _quote(base: str, body: str) -> None:
    """Every rule, territory, ... of ``body`` is word for word the one of ``base`` with its id."""
    source = ROOT / base
    files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
    whole: dict[str, dict[str, Any]] = {}
    for path in files:
        data, _ = parse_text(path.read_text(encoding="utf-8"), str(path))
        for key, value in data.items():
            if isinstance(value, list):
                whole.setdefault(key, {}).update({str(_name(i)): i for i in value})
            else:
                whole[key] = {"": value}
    quoted, _ = parse_text(body, "docs.yaml")
    for key, value in quoted.items():
        for item in value if isinstance(value, list) else [value]:
            name = str(_name(item)) if isinstance(value, list) else ""
            assert _contained(item, whole[key].get(name)), f"{key} {name} differs from {base}"


def check_yaml(block: Block, work: Path) -> None:
    kind, _, arg = block.check.partition(" ")
    if kind == "syntax":
        parse_text(block.body, "docs.yaml")
    elif kind == "quote-of":
        _quote(arg, block.body)
    elif kind == "part-of":
        _with_part(arg, block.body, work)
    elif kind in ("conditions", "actions", "triggers", "rules"):
        _with_part(arg, _items_as_rules(kind, block.body, block.where), work)
    elif kind == "scenario":
        _scenario(block.body, ROOT / arg, work)
    elif kind == "file":  # the page's code loads it (with its plugins, next to its files)
        parse_text(block.body, arg)
        (work / arg).write_text(block.body, encoding="utf-8")
    elif kind == "":
        _whole(block.body, "docs.yaml", work)
    else:
        pytest.fail(f"{block.where}: unknown check {block.check!r}")


# --- Python ---------------------------------------------------------------------------------


def _imports(tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def check_python(block: Block, work: Path, namespace: dict[str, Any]) -> None:
    tree = ast.parse(block.body, block.where)
    for module, names in _imports(tree):
        if module.split(".")[0] == "crmrules":
            assert module in PUBLIC_MODULES, (
                f"{block.where}: import from {', '.join(PUBLIC_MODULES)}, not {module}"
            )
            imported = importlib.import_module(module)
            missing = [n for n in names if not hasattr(imported, n)]
            assert not missing, f"{block.where}: {module} has no {missing}"
    if block.check == "compile":
        return
    if block.check.startswith("file "):
        name = block.check.split(" ", 1)[1]
        (work / name).write_text(block.body, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, name], cwd=work, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{block.where}: {name}\n{done.stdout}\n{done.stderr}"
        return
    assert block.check == "", f"{block.where}: unknown check {block.check!r}"
    exec(compile(tree, block.where, "exec"), namespace)


def _commands(body: str) -> Iterator[tuple[str, int, list[str]]]:
    """(command, expected exit code, expected output lines) of a console block."""
    command: str | None = None
    code, shown = 0, list[str]()
    for line in [*body.splitlines(), "$ "]:
        if line.startswith("$ "):
            if command:
                yield command, code, shown
            command, _, exit_note = line[2:].partition("# exit ")
            command, code, shown = command.strip(), int(exit_note or 0), []
        elif line.strip() and line.strip() != "...":
            shown.append(line.rstrip())


def check_commands(block: Block, work: Path) -> None:
    for command, code, shown in _commands(block.body):
        words = shlex.split(command)
        assert words[0] == "crmrules", f"{block.where}: only crmrules commands run: {command}"
        done = subprocess.run(
            [sys.executable, "-m", "crmrules", *words[1:]],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = (done.stdout + done.stderr).splitlines()
        assert done.returncode == code, f"{block.where}: {command}\n{done.stdout}{done.stderr}"
        position = 0
        for line in shown:
            assert line in output[position:], f"{block.where}: {command}: no {line!r} in\n" + (
                "\n".join(output)
            )
            position = output.index(line, position) + 1


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_block_of_the_page_runs_or_checks(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "page"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(work)
    monkeypatch.setenv("CRMRULES_DATABASE_URL", f"sqlite:///{work / 'crmrules.sqlite3'}")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for n, block in enumerate(blocks(page)):
        try:
            if block.lang in ("yaml", "yml"):
                scratch = tmp_path / f"block-{n}"
                scratch.mkdir()
                check_yaml(block, work if block.check.startswith("file ") else scratch)
            elif block.lang in ("python", "py"):
                check_python(block, work, namespace)
            elif block.check == "commands":
                check_commands(block, work)
            else:
                assert block.lang in ("", "sh", "console", "text", "toml", "json"), block.lang
        except (AssertionError, RegulationError, pytest.fail.Exception) as error:
            pytest.fail(f"{block.where}: {error}")


def test_blocks_are_found_on_every_page_that_has_them() -> None:
    counts = {p.name: sum(1 for _ in blocks(p)) for p in PAGES}
    assert counts["rule-language.md"] >= 8
    assert counts["README.md"] >= 4


def test_examples_import_only_the_public_api() -> None:
    for path in sorted((ROOT / "examples").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for module, _ in _imports(tree):
            if module.split(".")[0] == "crmrules":
                assert module in PUBLIC_MODULES, f"{path}: {module}"


def _leaves_the_repository(path: Path, line: str) -> bool:
    """A relative path in ``line`` that climbs out of the checkout."""
    for climb in re.findall(r"(?:\.\./)+[\w.-]*", line):
        if not (path.parent / climb).resolve().is_relative_to(ROOT):
            return True
    return False


def test_no_page_docstring_or_message_points_outside_the_repository() -> None:
    outside = re.compile(r"/work/")  # an absolute path of the machine the project is built on
    files = [*PAGES, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "examples").rglob("*"))]
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in files
        if path.is_file()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line) or _leaves_the_repository(path, line)
    ]
    assert not found, found
