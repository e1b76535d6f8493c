"""The SQL store's JSON values: ``encode`` (with its fast paths) against a plain oracle.

``encode`` takes common shapes (plain dicts and lists of strings and
numbers) without its isinstance chain; whatever the shape, it must give
exactly what the plain chain gives, and ``decode`` must give the value back.
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crmrules.adapters.sqlalchemy import decode, encode


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


#: every tag decode knows (a one-key dict with such a key is wrapped in "$dict")
TAGS = [
    "$decimal",
    "$datetime",
    "$date",
    "$time",
    "$timedelta",
    "$float",
    "$tuple",
    "$set",
    "$frozenset",
    "$pairs",
    "$dict",
]


def oracle(value: Any) -> Any:
    """Encoding by the isinstance chain alone, as the store did before its fast paths."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, list):
        return [oracle(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [oracle(v) for v in value]}
    if isinstance(value, frozenset):
        return {"$frozenset": [oracle(v) for v in value]}
    if isinstance(value, set):
        return {"$set": [oracle(v) for v in value]}
    assert isinstance(value, dict)
    if not all(isinstance(k, str) for k in value):
        return {"$pairs": [[oracle(k), oracle(v)] for k, v in value.items()]}
    encoded = {k: oracle(v) for k, v in value.items()}
    if len(encoded) == 1 and next(iter(encoded)) in TAGS:
        return {"$dict": encoded}
    return encoded


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.floats(allow_nan=False),
    st.just(math.inf),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.sampled_from([Colour.RED, Level.HIGH, time(9, 30), timedelta(days=2, seconds=5)]),
)
keys = st.one_of(st.text(max_size=4), st.sampled_from(TAGS), st.sampled_from([Colour.RED]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=3),
        st.dictionaries(st.integers(), inner, max_size=2),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)


@given(values)
def test_encode_gives_what_the_plain_chain_gives_and_decodes_back(value: Any) -> None:
    encoded = encode(value)
    assert encoded == oracle(value)
    assert decode(encoded) == value
