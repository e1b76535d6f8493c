"""crmrules: a CRM domain model and a declarative rules engine for sales regulations.

Admins write regulations in YAML or JSON; ``Engine.from_path`` loads and
checks one, and ``engine.handle(event)`` (or a host operation such as
``engine.update_deal``) applies it: tasks, mailings, stage moves and
assignments, exactly once, explained. Everything listed in ``__all__`` is the
public API; other modules are private and may change.
"""

from crmrules.actions import ActionContext, ActionRefused
from crmrules.adapters import LogNotifier, MemoryStore, SmtpNotifier, WebhookNotifier
from crmrules.calendar import BusinessCalendar, Duration, WorkingHours
from crmrules.clock import Clock, SimulatedClock, SystemClock
from crmrules.delivery import DeliveryError, DeliveryReport, Notifier, RetryPolicy
from crmrules.engine import ActionError, DueReport, Engine, RefusedError
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
from crmrules.plugins import ActionPlugin, OperatorPlugin, hookimpl
from crmrules.result import Effect, Result, RuleOutcome
from crmrules.rules.conditions import Condition, Facts, Trace
from crmrules.rules.regulation import Regulation, Rule, Territory, load_regulation
from crmrules.rules.schema import json_schema
from crmrules.rules.templates import TemplateLimits
from crmrules.store import AuditEntry, OutboxMessage, Store, Timer, TimerStatus, Transaction

__version__ = "0.1.0"

__all__ = [
    "ActionContext",
    "ActionError",
    "ActionPlugin",
    "ActionRefused",
    "AuditEntry",
    "BusinessCalendar",
    "Client",
    "Clock",
    "Condition",
    "Contact",
    "ContactRole",
    "CrmRulesError",
    "Deal",
    "DeliveryError",
    "DeliveryReport",
    "DueReport",
    "Duration",
    "Effect",
    "Engine",
    "Event",
    "Facts",
    "Interaction",
    "Location",
    "LogNotifier",
    "Mailing",
    "MailingStatus",
    "Manager",
    "MembershipSource",
    "MemoryStore",
    "Notifier",
    "OperatorPlugin",
    "OutboxMessage",
    "Pipeline",
    "Problem",
    "RecordError",
    "RefusedError",
    "Regulation",
    "RegulationError",
    "Result",
    "RetryPolicy",
    "Rule",
    "RuleOutcome",
    "SimulatedClock",
    "SmtpNotifier",
    "Stage",
    "Store",
    "SystemClock",
    "Task",
    "TaskStatus",
    "TemplateLimits",
    "Territory",
    "TerritoryMembership",
    "Timer",
    "TimerStatus",
    "Trace",
    "Transaction",
    "WebhookNotifier",
    "WorkingHours",
    "__version__",
    "hookimpl",
    "json_schema",
    "load_regulation",
]
