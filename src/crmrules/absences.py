"""Storing managers with their directions and absences, and handing work over to deputies.

``Engine.put_manager`` and ``Engine.mark_absent`` go through here: a
manager's directions must be declared in the regulation and their deputies
must be known managers other than themselves. Marking an absence hands the
manager's open tasks that fall due in it to the deputy (crmrules.people
decides who stands in), each with a note, in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmrules.calendar import WorkingHours
from crmrules.errors import RefusedError
from crmrules.model import Absence, Manager, Task, TaskStatus
from crmrules.people import covers, stand_in
from crmrules.rules.directions import undeclared
from crmrules.rules.regulation import Regulation
from crmrules.store import Transaction

if TYPE_CHECKING:
    from crmrules.engine import Engine


def check_manager(tx: Transaction, regulation: Regulation, manager: Manager) -> None:
    """Refuse a manager naming an undeclared direction, bad hours or an impossible deputy."""
    problem = undeclared(regulation.directions, manager.id, manager.directions)
    if problem is not None:
        raise RefusedError(problem)
    if manager.working_hours is not None:
        try:
            WorkingHours.parse(manager.working_hours)
        except ValueError as error:
            raise RefusedError(f"manager {manager.id}: field 'working_hours': {error}") from None
    for index, absence in enumerate(manager.absent):
        deputy = absence.deputy
        where = f"manager {manager.id}: field 'absent' entry {index + 1}"
        if deputy == manager.id:
            raise RefusedError(f"{where}: a manager cannot be their own deputy")
        if (
            deputy is not None
            and (tx.get_manager(deputy) or regulation.managers.get(deputy)) is None
        ):
            raise RefusedError(f"{where}: unknown deputy {deputy!r}")


def mark_absent(engine: Engine, manager_id: str, absence: Absence) -> list[Task]:
    """Add ``absence`` to the manager and hand their open tasks due in it over; see Engine."""
    regulation = engine.regulation
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        manager = tx.get_manager(manager_id) or regulation.managers.get(manager_id)
        if manager is None:
            raise RefusedError(f"no manager {manager_id!r}")
        updated = manager.model_copy(update={"absent": (*manager.absent, absence)})
        check_manager(tx, regulation, updated)
        tx.put_manager(updated)

        def find(other: str) -> Manager | None:
            return tx.get_manager(other) or regulation.managers.get(other)

        moved: list[Task] = []
        for task in tx.find_tasks(assignee=manager_id, status=TaskStatus.OPEN):
            if task.due is None or not covers(absence, task.due, regulation.calendar):
                continue
            deputy, note = stand_in(find, updated, task.due, regulation.calendar)
            if deputy.id == manager_id:
                continue
            handed = task.model_copy(
                update={"assignee": deputy.id, "note": f"{note} (handed over {now.isoformat()})"}
            )
            tx.put_task(handed)
            moved.append(handed)
        return moved


__all__ = ["check_manager", "mark_absent"]
