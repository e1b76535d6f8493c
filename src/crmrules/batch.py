"""Many reported events, one transaction per chunk: imports and replays.

``Engine.handle_many`` applies events in chunks: one store transaction (one
commit) for each chunk instead of one for each event, which is what an
import of a day's events or a replay of a log spends most of its time on.

Each event is applied with its idempotency record, first without any
savepoint (two statements each, and as many per rule that fires): if
every event of the chunk goes through, the chunk commits so. If one does
not, the chunk is rolled back and done again carefully: each event in a
savepoint of its own, each rule in one of its own, so an event that is
refused (bad data, an unknown client, an action that stops its rule) is
rolled back alone and its error stands in its place in the answer, and the
rest of the chunk is kept. An event id already handled, earlier or in the same chunk,
acts once and answers with its first result (``duplicate``). A crash
before a chunk commits loses the whole chunk and nothing else, so running
the same events again finishes the job exactly once. A ConflictError (another
process touched the same rows) rolls the chunk back and retries it whole;
a store failure ends the call, the chunks before it committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from crmrules import failures
from crmrules.clock import Clock
from crmrules.errors import RecordError, RefusedError
from crmrules.host_input import check_references
from crmrules.model import Event
from crmrules.plugins import PluginManager
from crmrules.result import Result
from crmrules.run import CONFLICT_RETRIES, Run, Setting, apply
from crmrules.store import ConflictError, Store, Transaction

#: How many events one transaction takes by default.
CHUNK = 200
#: What an event gives in a batch: its result, or the error that refused it.
Handled = Result | RecordError | RefusedError


def handle_many(
    store: Store,
    setting: Setting,
    clock: Clock,
    prepare: Callable[[Event], Event],
    events: Iterable[Event],
    *,
    chunk: int = CHUNK,
) -> list[Handled]:
    """Each event's result (or error) in order; ``prepare`` checks and types a reported event."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    handled: list[Handled] = []
    for part in _chunks(events, chunk):
        handled.extend(_apply_chunk(store, setting, clock, prepare, part))
    return handled


def _chunks(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    iterator = iter(events)
    while part := list(islice(iterator, size)):
        yield part


class _Careful(Exception):
    """An event of a chunk applied at speed did not go through: the chunk is done carefully."""


def _apply_chunk(
    store: Store,
    setting: Setting,
    clock: Clock,
    prepare: Callable[[Event], Event],
    part: list[Event],
) -> list[Handled]:
    """The chunk's events at speed (no savepoints); if one does not go through, carefully."""
    careful = False
    attempt = 1
    while True:
        try:
            with store.transaction() as tx:
                if careful:
                    return [_apply_one(tx, setting, clock, prepare, event) for event in part]
                return [_apply_fast(tx, setting, clock, prepare, event) for event in part]
        except ConflictError:
            if attempt == CONFLICT_RETRIES:
                raise
            attempt += 1
        except _Careful:
            careful = True


def _body(typed: Event) -> Callable[[Run], None]:
    def body(run: Run) -> None:
        check_references(run.tx, f"event {typed.id}", typed.client, typed.deal)
        run.cascade(typed)

    return body


def _apply_fast(
    tx: Transaction,
    setting: Setting,
    clock: Clock,
    prepare: Callable[[Event], Event],
    event: Event,
) -> Result:
    """The event applied with no savepoint, not even per rule; anything that stops it
    (a refusal, a failing rule) raises ``_Careful``, and the chunk is undone."""

    def handle(reported: Event) -> Result:
        typed = prepare(reported)
        subject = (typed.client, typed.deal)
        now = clock.now()
        return apply(setting, tx, now, typed.id, subject, _body(typed), optimistic=True)

    try:
        return setting.plugins.handle_event(event, handle)
    except failures.INFRASTRUCTURE:
        raise
    except Exception as error:
        raise _Careful() from error


def _apply_one(
    tx: Transaction,
    setting: Setting,
    clock: Clock,
    prepare: Callable[[Event], Event],
    event: Event,
) -> Handled:
    """The event in a savepoint, each rule in one of its own; a refusal is its answer."""

    def handle(reported: Event) -> Result:
        typed = prepare(reported)
        subject = (typed.client, typed.deal)
        with tx.savepoint():
            return apply(setting, tx, clock.now(), typed.id, subject, _body(typed))

    plugins: PluginManager = setting.plugins
    try:
        return plugins.handle_event(event, handle)
    except (RecordError, RefusedError) as error:
        return error


__all__ = ["CHUNK", "Handled", "handle_many"]
