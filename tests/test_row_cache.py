"""The SQL transaction's row cache against an oracle that copies the dict at each savepoint."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crmrules.adapters.row_cache import RowCache

keys = st.tuples(st.sampled_from(["clients", "deals"]), st.sampled_from(["a", "b", "c"]))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.one_of(st.none(), st.integers(0, 3))),
        st.tuples(st.just("pop"), keys, st.none()),
        st.tuples(st.just("del"), keys, st.none()),
        st.tuples(st.just("update"), keys, st.integers(0, 3)),
        st.tuples(st.just("setdefault"), keys, st.integers(0, 3)),
        st.tuples(st.sampled_from(["mark", "release", "rollback"]), st.none(), st.none()),
    ),
    max_size=40,
)


@given(operations)
def test_a_rolled_back_savepoint_leaves_the_cache_as_it_was_at_its_mark(ops: list[Any]) -> None:
    cache = RowCache()
    oracle: dict[Any, Any] = {}
    saved: list[dict[Any, Any]] = []
    for op, key, value in ops:
        if op == "set":
            cache[key] = oracle[key] = value
        elif op == "pop":
            assert cache.pop(key, None) == oracle.pop(key, None)
        elif op == "del":
            if key in oracle:
                del cache[key], oracle[key]
        elif op == "update":
            cache.update({key: value})
            oracle.update({key: value})
        elif op == "setdefault":
            assert cache.setdefault(key, value) == oracle.setdefault(key, value)
        elif op == "mark":
            cache.mark()
            saved.append(dict(oracle))
        elif saved and op == "release":
            cache.release()
            saved.pop()
        elif saved and op == "rollback":
            cache.rollback()
            oracle = saved.pop()
        assert dict(cache) == oracle
