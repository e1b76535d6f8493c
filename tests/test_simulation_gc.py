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


def test_a_scenario_run_is_one_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen from the first step to the timeline's text, unfrozen when the run returns."""
    from crmrules.testing import load_scenario_file, run_scenario

    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    path = tmp_path / "case.regulation.yaml"
    path.write_text(
        "regulation: reg\n"
        "now: 2026-03-02T10:00:00+03:00\n"
        "given: {clients: [{id: c1, name: Ромашка}]}\n"
        "scenarios:\n"
        "  - name: days\n"
        "    steps:\n"
        "      - advance: 2 days\n"
        "      - expect: {fired: [daily, daily]}\n",
        encoding="utf-8",
    )
    loaded = load_scenario_file(path)
    seen: list[int] = []
    text = Simulation.timeline_text

    def timeline_text(self: Simulation) -> str:
        seen.append(gc.get_freeze_count())
        return text(self)

    monkeypatch.setattr(Simulation, "timeline_text", timeline_text)
    result = run_scenario(loaded, loaded.scenarios[0])
    assert result.passed, result.report()
    assert seen and seen[0] > 0  # still frozen after the clock stopped
    assert gc.get_freeze_count() == 0
