"""A worker process that fires a schedule's occurrence and hangs at one client (to be killed).

Run: python occurrence_workers.py REGULATION URL NOW MARKER
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from crmrules import ActionPlugin, Engine, hookimpl, occurrences
from crmrules.adapters.sqlalchemy import SQLAlchemyStore

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.score: {type: integer}
rules:
  - id: daily-call
    on: {every: 1 day, at: "09:00"}
    if: {field: client.score, gte: 50}
    then:
      - create_task: {kind: call, title: "Позвонить {{ client.name }}"}
      - halt_at: {client: c0132}
"""


class HaltParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client: str


class Halt:
    """``halt_at``: at its client, write the marker and hang, unless the marker is there."""

    def __init__(self, marker: str) -> None:
        self.marker = Path(marker)

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def halt_at(params: HaltParams, context: Any) -> None:
            if context.event.client == params.client and not self.marker.exists():
                self.marker.write_text("in the middle of the occurrence", encoding="utf-8")
                time.sleep(120)

        register(ActionPlugin("halt_at", HaltParams, halt_at))


def engine(regulation: str, url: str, marker: str) -> Engine:
    store = SQLAlchemyStore(url)
    return Engine.from_path(regulation, store=store, plugins=[Halt(marker)], entry_points=False)


def main() -> None:
    regulation, url, now, marker = sys.argv[1:5]
    occurrences.CHUNK_SIZE = 20
    engine(regulation, url, marker).run_due(datetime.fromisoformat(now), worker="doomed")


if __name__ == "__main__":
    main()
