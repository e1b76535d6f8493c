"""The simulated clock keeps what its steps made out of the collector's scans, and only then."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from crmrules.testing import Simulation

REGULATION = """\
version: 1
rules:
  - id: daily
    on: {every: 1 day, at: "09:00"}
    then: [{create_task: {title: "call {{ client.name }}"}}]
"""


@pytest.fixture
def sim(tmp_path: Path) -> Simulation:
    (tmp_path / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    simulation = Simulation.from_path(tmp_path, now="2026-03-02T10:00:00+03:00", entry_points=False)
    simulation.given(clients=[{"id": "c1", "name": "Ромашка"}])
    return simulation


def test_frozen_while_the_clock_runs_and_unfrozen_after(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts: list[int] = []
    run_due = sim.engine.run_due

    def counting(*args: object, **kwargs: object) -> object:
        counts.append(gc.get_freeze_count())
        return run_due(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sim.engine, "run_due", counting)
    assert len(sim.advance("3 days")) == 3
    assert counts[0] == 0 and all(count > 0 for count in counts[1:])
    assert gc.get_freeze_count() == 0
    assert len(sim.tasks()) == 3


def test_a_process_that_froze_objects_itself_is_left_as_it_is(sim: Simulation) -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert len(sim.advance("2 days")) == 2
        assert gc.get_freeze_count() <= frozen  # nothing of ours frozen (some freed)
    finally:
        gc.unfreeze()
