"""A process that realigns a store in small chunks and reports each one (for kill tests)."""

from __future__ import annotations

import sys

from crmrules.engine import Engine
from crmrules.realign import realign


def main(regulation: str, url: str) -> None:
    engine = Engine.from_path(regulation, store=url, entry_points=False)

    def done(count: int) -> None:
        print(count, flush=True)

    realign(engine, chunk=10, progress=done)
    print("finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
