"""The generated reference tables in docs/ are fresh, and cannot go stale unnoticed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crmrules import docsgen
from crmrules.plugins import Hookspecs
from crmrules.rules import conditions, events, schema
from crmrules.rules.fields import BUILTIN_FIELDS

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def docsgen_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules.docsgen", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_generated_tables_in_docs_are_fresh() -> None:
    run = docsgen_cli("--check")
    assert run.returncode == 0, run.stderr


def test_a_stale_table_is_reported_and_rewritten(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    page = docs / "rule-language.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("| `contains_any` |", "| `has_any` |"), encoding="utf-8")
    stale = docsgen_cli("--check", str(docs))
    assert stale.returncode == 1
    assert "rule-language.md: generated reference is stale" in stale.stderr
    assert "run: python -m crmrules.docsgen" in stale.stderr
    assert docsgen_cli(str(docs)).returncode == 0
    assert page.read_text(encoding="utf-8") == text


def test_every_name_the_code_knows_is_in_the_reference() -> None:
    reference = (DOCS / "rule-language.md").read_text(encoding="utf-8")
    names = [
        *(f"`{path}`" for path in BUILTIN_FIELDS),
        *(f"`{op}`" for op in conditions.WRITTEN_OPS),
        *(f"#### `{action}`" for action in schema.BUILTIN_ACTIONS),
        *(f"`{event}`" for event in events.BUILTIN_EVENTS),
        *(f"`event.{key.key}`" for e in events.BUILTIN_EVENT_INFO for key in e.data),
        *(f"| `{key}` |" for key in schema.RegulationSpec.model_fields),
    ]
    missing = [name for name in names if name not in reference]
    assert not missing, missing


def test_an_undescribed_operator_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conditions.WRITTEN_OPS, "near", ("eq", False))
    with pytest.raises(docsgen.DocsError, match="no description for operator 'near'"):
        docsgen.operators()


def test_an_unknown_section_is_an_error() -> None:
    text = "<!-- BEGIN GENERATED: nothing -->\n<!-- END GENERATED: nothing -->"
    with pytest.raises(docsgen.DocsError, match="unknown generated section 'nothing'"):
        docsgen.render(text)


def test_the_plugins_page_has_a_section_for_every_hook() -> None:
    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    hooks = [name for name in vars(Hookspecs) if not name.startswith("_")]
    assert len(hooks) >= 7
    missing = [hook for hook in hooks if f"\n### `{hook}`\n" not in page]
    assert not missing, f"docs/plugins.md has no section for {missing}"
