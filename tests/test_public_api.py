"""The public API is exactly what ``crmrules.__all__`` lists."""

from __future__ import annotations

import crmrules


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
