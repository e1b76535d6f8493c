"""Stage requirements: fields a deal or its client must have filled to enter a stage.

Refused moves name the deal, the stage and every missing field; a rule's
refused move is that rule's failure alone (the host's change and the other
rules go on), a host's move refuses the whole call and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crmrules import Client, Deal, Engine, RegulationError
from crmrules.adapters.memory import MemoryStore
from crmrules.clock import SimulatedClock
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.requirements import StageRequirementsError

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

REGULATION = """\
version: 1
fields:
  client.inn: {type: string}
  deal.hot: {type: boolean}
pipelines:
  - id: sales
    stages:
      - id: lead
      - id: proposal
        requires: [deal.amount, client.inn]
      - id: won
        final: true
rules:
  - id: advance-when-hot
    on: deal.updated
    if: {field: deal.hot, eq: true}
    then:
      - move_stage: {to: proposal}
  - id: call-when-hot
    on: deal.updated
    if: {field: deal.hot, eq: true}
    then:
      - create_task: {title: "Call the hot client"}
  - id: advance-on-create
    on: deal.created
    if: {field: deal.amount, gt: 0}
    then:
      - move_stage: {to: proposal}
"""


def load(tmp_path: Path, text: str = REGULATION) -> Regulation:
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return load_regulation(path)


def engine(tmp_path: Path) -> Engine:
    return Engine(load(tmp_path), MemoryStore(), SimulatedClock(NOW), entry_points=False)


def test_a_host_move_without_the_required_fields_is_refused_naming_them(tmp_path: Path) -> None:
    crm = engine(tmp_path)
    crm.create_client(Client(id="c1", name="Ромашка"))
    crm.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="lead"))
    with pytest.raises(StageRequirementsError) as refused:
        crm.move_stage("d1", "proposal")
    assert refused.value.missing == ("deal.amount", "client.inn")
    assert str(refused.value) == (
        "deal d1: cannot enter stage proposal of pipeline sales: "
        "deal.amount, client.inn must be filled first"
    )
    deal = crm.get_deal("d1")
    assert deal is not None and deal.stage == "lead"  # nothing changed

    crm.update_deal("d1", {"amount": Decimal("1000")})
    with pytest.raises(StageRequirementsError) as refused:
        crm.move_stage("d1", "proposal")
    assert refused.value.missing == ("client.inn",)

    crm.update_client("c1", {"inn": "7707083893"})
    crm.move_stage("d1", "proposal")
    moved = crm.get_deal("d1")
    assert moved is not None and moved.stage == "proposal"


def test_an_empty_text_does_not_fill_a_requirement(tmp_path: Path) -> None:
    crm = engine(tmp_path)
    crm.create_client(Client(id="c1", fields={"inn": ""}))
    crm.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="lead", amount=5))
    with pytest.raises(StageRequirementsError, match=r"client\.inn must be filled"):
        crm.move_stage("d1", "proposal")


def test_a_deal_cannot_be_created_in_a_stage_it_does_not_qualify_for(tmp_path: Path) -> None:
    crm = engine(tmp_path)
    crm.create_client(Client(id="c1"))
    with pytest.raises(StageRequirementsError, match=r"deal d1: .* deal\.amount, client\.inn"):
        crm.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="proposal"))
    assert crm.get_deal("d1") is None


def test_a_rules_refused_move_is_its_own_failure_and_the_rest_goes_on(tmp_path: Path) -> None:
    crm = engine(tmp_path)
    crm.create_client(Client(id="c1"))
    crm.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="lead"))
    result = crm.update_deal("d1", {"hot": True})
    failed = {o.rule: o for o in result.outcomes if o.status == "failed"}
    assert set(failed) == {"advance-when-hot"}
    assert failed["advance-when-hot"].reason == (
        "action 1 (move_stage): deal d1: cannot enter stage proposal of pipeline sales: "
        "deal.amount, client.inn must be filled first"
    )
    # the host's change and the other rule went on
    deal = crm.get_deal("d1")
    assert deal is not None and deal.fields == {"hot": True} and deal.stage == "lead"
    assert [t.title for t in crm.tasks(client="c1")] == ["Call the hot client"]
    [failure] = crm.failures()
    assert failure.rule == "advance-when-hot" and failure.action == "move_stage"

    crm.update_client("c1", {"inn": "7707083893"})
    assert not crm.update_deal("d1", {"amount": 100}).errors  # the rule fires again
    moved = crm.get_deal("d1")
    assert moved is not None and moved.stage == "proposal"


def test_a_rule_moves_a_deal_that_has_what_the_stage_requires(tmp_path: Path) -> None:
    crm = engine(tmp_path)
    crm.create_client(Client(id="c1", fields={"inn": "7707083893"}))
    result = crm.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="lead"))
    assert not result.errors  # amount empty: advance-on-create does not match
    crm.create_deal(Deal(id="d2", client="c1", pipeline="sales", stage="lead", amount=10))
    deal = crm.get_deal("d2")
    assert deal is not None and deal.stage == "proposal"


def test_unknown_required_fields_are_reported_with_their_place(tmp_path: Path) -> None:
    text = REGULATION.replace(
        "requires: [deal.amount, client.inn]",
        "requires: [deal.amont, client.inn, manager.name, deal.amount, deal.amount]",
    )
    with pytest.raises(RegulationError) as error:
        load(tmp_path, text)
    lines = [str(p) for p in error.value.problems]
    path = tmp_path / "regulation.yaml"
    assert lines == [
        f"{path}:10:20: requires: unknown field 'deal.amont' (did you mean deal.amount?)",
        f"{path}:10:44: requires: 'manager.name' is not a deal or client field "
        "(write e.g. deal.amount or client.inn)",
        f"{path}:10:71: requires: deal.amount is listed twice",
    ]
