"""The public API is exactly what ``crmrules.__all__`` lists."""

from __future__ import annotations

import re
from pathlib import Path

import crmrules
import crmrules.testing


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(crmrules) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(crmrules, name)).__name__ == "module"}
    assert set(crmrules.__all__) - {"__version__"} == public - modules
    assert len(crmrules.__all__) == len(set(crmrules.__all__))


def test_every_public_name_has_a_docstring_or_is_data() -> None:
    for name in crmrules.__all__:
        value = getattr(crmrules, name)
        if callable(value):
            assert value.__doc__, name


def test_the_api_page_documents_exactly_the_public_api() -> None:
    page = Path(__file__).parent.parent / "docs" / "api.md"
    documented = re.findall(r"^::: crmrules\.(\w+)$", page.read_text(encoding="utf-8"), re.M)
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert set(documented) == set(crmrules.__all__) - {"__version__"}
    testing = re.findall(r"^::: crmrules\.testing\.(\w+)$", page.read_text(encoding="utf-8"), re.M)
    assert sorted(testing) == sorted(crmrules.testing.__all__)


def test_what_a_host_needs_is_exported() -> None:
    needed = {
        "StoreError", "SchemaError", "ConflictError", "MissingExtraError", "SQLAlchemyStore",
        "MemoryStore", "default_store", "HostRecords", "HostTable", "LogNotifier",
        "SmtpNotifier", "WebhookNotifier", "deliver_due", "db_upgrade", "db_current",
        "FieldType", "Worker",
    }  # fmt: skip
    assert needed <= set(crmrules.__all__)
