"""crmrules: a CRM domain model and a declarative rules engine for sales regulations.

Admins write regulations in YAML or JSON; this package loads and checks
them (``load_regulation``), compiles their conditions, and holds the domain
model the engine works on. Everything listed in ``__all__`` is the public API;
other modules are private and may change.
"""

from crmrules.calendar import BusinessCalendar, Duration, WorkingHours
from crmrules.clock import Clock, SimulatedClock, SystemClock
from crmrules.errors import CrmRulesError, Location, Problem, RecordError, RegulationError
from crmrules.model import (
    Client,
    Contact,
    ContactRole,
    Deal,
    Event,
    Interaction,
    Mailing,
    MailingStatus,
    Manager,
    MembershipSource,
    Pipeline,
    Stage,
    Task,
    TaskStatus,
    TerritoryMembership,
)
from crmrules.rules.conditions import Condition, Facts, Trace
from crmrules.rules.regulation import Regulation, Rule, Territory, load_regulation
from crmrules.rules.schema import json_schema

__version__ = "0.1.0"

__all__ = [
    "BusinessCalendar",
    "Client",
    "Clock",
    "Condition",
    "Contact",
    "ContactRole",
    "CrmRulesError",
    "Deal",
    "Duration",
    "Event",
    "Facts",
    "Interaction",
    "Location",
    "Mailing",
    "MailingStatus",
    "Manager",
    "MembershipSource",
    "Pipeline",
    "Problem",
    "RecordError",
    "Regulation",
    "RegulationError",
    "Rule",
    "SimulatedClock",
    "Stage",
    "SystemClock",
    "Task",
    "TaskStatus",
    "Territory",
    "TerritoryMembership",
    "Trace",
    "WorkingHours",
    "__version__",
    "json_schema",
    "load_regulation",
]
