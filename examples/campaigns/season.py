"""A season of campaigns, requests, deals, tasks and calls, generated from a seed.

Run: python examples/campaigns/season.py sqlite:///season.sqlite3 [--seed 7]
then, for instance:
    crmrules report conversion --store sqlite:///season.sqlite3 \\
        --from 2026-03-01 --to 2026-05-31 --by month --regulation examples/campaigns

Everything goes through the engine's host calls on a simulated clock, in
time order: campaigns, requests (some from people who are not clients yet),
deals made from them moving through the pipeline (some lost, some reopened),
the tasks the regulation makes, done on time, late or never, and the calls
and meetings managers log. The same seed gives the same season.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from crmrules import (
    Campaign,
    Client,
    Deal,
    Engine,
    Interaction,
    Request,
    SimulatedClock,
    Store,
    TaskStatus,
    load_regulation,
)

HERE = Path(__file__).parent
MSK = ZoneInfo("Europe/Moscow")
FIRST, LAST = date(2026, 3, 1), date(2026, 5, 31)
CAMPAIGNS = [
    Campaign(id="exhibition", name="Выставка «Мебель»", channel="exhibition",
             budget=Decimal("150000.00"), start=date(2026, 3, 10), end=date(2026, 3, 15)),
    Campaign(id="search-ads", name="Контекстная реклама", channel="ads",
             budget=Decimal("90000.00"), start=date(2026, 3, 1), end=date(2026, 5, 31)),
    Campaign(id="april-mail", name="Апрельская рассылка", channel="mail",
             budget=Decimal("20000.00"), start=date(2026, 4, 1), end=date(2026, 4, 30)),
    # Planned, paid for, and nobody came: a row with a budget and no requests.
    Campaign(id="may-fair", name="Майская ярмарка", channel="exhibition",
             budget=Decimal("40000.00"), start=date(2026, 5, 20), end=date(2026, 5, 24)),
]  # fmt: skip
MANAGERS = ("petrova", "sidorov")
ITEMS = ("kitchen", "wardrobe", "measurement", "assembly")


class Season:
    """The timeline: actions at moments, run in order with the clock set to each."""

    def __init__(self, engine: Engine, clock: SimulatedClock, seed: int) -> None:
        self.engine, self.clock, self.random = engine, clock, random.Random(seed)
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.clients: list[str] = []
        self.numbers = itertools.count(1)
        #: every request made, in order (the reports' test reads them back by id)
        self.requests: list[str] = []

    def at(self, moment: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (moment, next(self.order), action))

    def run(self) -> None:
        while self.queue:
            moment, _, action = heapq.heappop(self.queue)
            self.clock.set(max(moment, self.clock.now()))
            action()

    def working_moment(self, day: date) -> datetime:
        minutes = self.random.randrange(9 * 60, 19 * 60)  # some after hours, on purpose
        return datetime.combine(day, time(), MSK) + timedelta(minutes=minutes)

    # -- what happens

    def request(self, day: date) -> None:
        campaign = self._campaign_of(day)
        number = next(self.numbers)
        known = self.clients and self.random.random() < 0.4
        request = Request(
            id=f"r{number:04d}",
            campaign=campaign,
            channel=None if campaign else self.random.choice(["phone", "site"]),
            client=self.random.choice(self.clients) if known else None,
            name=f"Посетитель {number}",
            items=tuple(self.random.sample(ITEMS, self.random.randint(0, 2))),
        )
        self.requests.append(request.id)
        self.at(self.working_moment(day), lambda: self._record(request))

    def _campaign_of(self, day: date) -> str | None:
        running = [c.id for c in CAMPAIGNS if c.start <= day <= c.end and c.id != "may-fair"]
        return self.random.choice([*running, None]) if running else None

    def _record(self, request: Request) -> None:
        self.engine.create_request(request)
        self._tasks_done()
        later = self.clock.now() + timedelta(hours=self.random.randint(2, 120))
        if self.random.random() < 0.45:
            self.at(later, lambda: self._convert(request))
        elif self.random.random() < 0.5:
            self.at(later, lambda: self.engine.refuse_request(request.id, "дорого"))

    def _convert(self, request: Request) -> None:
        client = request.client
        if client is None:
            client = f"c{len(self.clients) + 1:04d}"
            self.engine.create_client(
                Client(id=client, name=request.name, responsible=self.random.choice(MANAGERS))
            )
            self.clients.append(client)
        deal = f"d-{request.id}"
        self.engine.create_deal(Deal(id=deal, client=client, pipeline="sales", stage="new"))
        self.engine.convert_request(request.id, deal)
        self._tasks_done()
        self._walk(deal, ["offer", "contract", "won"])

    def _walk(self, deal: str, path: list[str], current: str = "new") -> None:
        """Move the deal along ``path``, maybe losing it, maybe reopening it later."""
        if not path:
            return
        moment = self.clock.now() + timedelta(hours=self.random.randint(4, 240))
        stage, rest = path[0], path[1:]
        if current in ("new", "offer", "contract") and self.random.random() < 0.2:
            stage = "lost"  # and sometimes back to an offer: reopened
            rest = ["offer", "contract", "won"] if self.random.random() < 0.3 else []
        elif stage == "won" and self.random.random() < 0.15:
            rest = ["contract", "won"]  # a complaint: reopened, and won again

        def move() -> None:
            self.engine.move_stage(deal, stage)
            self._walk(deal, rest, stage)

        self.at(moment, move)

    def _tasks_done(self) -> None:
        """Each open task made just now is done on time, late, or left undone."""
        with self.engine.store.transaction() as tx:
            now = self.clock.now()
            fresh = [t for t in tx.find_tasks(status=TaskStatus.OPEN) if t.created_at == now]
        for task in fresh:
            fate = self.random.random()
            if fate < 0.15 or task.due is None:
                continue  # never done
            hours = self.random.randint(1, 20) if fate < 0.7 else self.random.randint(30, 200)
            done_at = self.clock.now() + timedelta(hours=hours)
            self.at(done_at, lambda task_id=task.id: self._complete(task_id))

    def _complete(self, task_id: str) -> None:
        """Complete the task; a call or meeting done is also logged as held."""
        self.engine.complete_task(task_id)
        with self.engine.store.transaction() as tx:
            done = tx.get_task(task_id)
        if done is not None and done.client and done.kind in ("call", "meeting"):
            kind = "call" if done.kind == "call" else "meeting"
            held = Interaction(id=f"i-{task_id}", kind=kind, client=done.client,
                               manager=done.assignee, occurred_at=self.clock.now())  # fmt: skip
            self.engine.log_interaction(held)


def generate(store: Store | str, seed: int = 7) -> Season:
    """Fill the store (or the one at a URL) with the season, and return it, run."""
    regulation = load_regulation(HERE)
    clock = SimulatedClock(datetime.combine(FIRST, time(), MSK) - timedelta(days=1))
    engine = Engine(regulation, store, clock=clock, entry_points=False)
    for manager in regulation.managers.values():
        engine.put_manager(manager)
    for campaign in CAMPAIGNS:
        engine.create_campaign(campaign)
    for number in range(1, 25):
        client = f"c{number:04d}"
        engine.create_client(Client(id=client, name=f"Клиент {number}", responsible="petrova"))
    season = Season(engine, clock, seed)
    season.clients = [f"c{n:04d}" for n in range(1, 25)]
    day = FIRST
    while day <= LAST:
        busy = 6 if any(c.start <= day <= c.end for c in CAMPAIGNS[:1]) else 2
        for _ in range(season.random.randint(0, busy)):
            season.request(day)
        day += timedelta(days=1)
    season.run()
    return season


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the store, e.g. sqlite:///season.sqlite3")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    season = generate(args.url, args.seed)
    season.engine.store.close()
    print(f"season {FIRST} .. {LAST} written to {args.url}")


if __name__ == "__main__":
    main()
