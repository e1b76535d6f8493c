"""crmrules: a CRM domain model and a declarative rules engine for sales regulations.

Admins write regulations in YAML or JSON; ``Engine.from_path`` loads and
checks one, and ``engine.handle(event)`` (or a host operation such as
``engine.update_deal``) applies it: tasks, mailings, stage moves and
assignments, exactly once, explained. Everything listed in ``__all__`` is the
public API; other modules are private and may change.
"""

from crmrules.access import OutOfScopeError, Scope
from crmrules.actions import ActionContext, ActionRefused
from crmrules.adapters import LogNotifier, MemoryStore, SmtpNotifier, WebhookNotifier
from crmrules.adapters.host import HostRecords, HostTable
from crmrules.adapters.migrate import current as db_current
from crmrules.adapters.migrate import head as db_head
from crmrules.adapters.migrate import upgrade as db_upgrade
from crmrules.adapters.sqlalchemy import (
    DEFAULT_URL,
    VERSION_TABLE,
    SQLAlchemyStore,
    default_store,
    make_engine,
)
from crmrules.adapters.sqlalchemy import metadata as sql_metadata
from crmrules.calendar import BusinessCalendar, Duration, WorkingHours
from crmrules.campaigns import Campaign, Request, RequestStatus, StageMove
from crmrules.clock import Clock, SimulatedClock, SystemClock
from crmrules.dedup import DuplicatePair
from crmrules.delivery import DeliveryError, DeliveryReport, Notifier, RetryPolicy, deliver_due
from crmrules.engine import ActionError, DueReport, Engine, RefusedError
from crmrules.errors import (
    CrmRulesError,
    Location,
    MissingExtraError,
    Problem,
    RecordError,
    RegulationError,
    SchemaError,
    StoreError,
)
from crmrules.explaining import Explanation
from crmrules.history import HistoryEntry
from crmrules.impact import Impact
from crmrules.impact.ledger import TimerChanges
from crmrules.import_mapping import ImportMapping, MappingError
from crmrules.importing import ImportReport
from crmrules.lint import Finding, lint, lint_path
from crmrules.merging import MergePolicy, MergeResult
from crmrules.model import (
    Absence,
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
from crmrules.occurrences import (
    Chunk,
    ChunkReport,
    OccurrenceExplanation,
    fire_chunk,
    plan_chunks,
)
from crmrules.plugins import ActionPlugin, Inline, OperatorPlugin, hookimpl
from crmrules.reading import HistoryItem
from crmrules.result import Effect, Result, RuleOutcome
from crmrules.rules.conditions import Condition, Facts, Trace
from crmrules.rules.fields import FieldType
from crmrules.rules.regulation import Regulation, Rule, Territory, load_regulation
from crmrules.rules.requirements import StageRequirementsError
from crmrules.rules.schema import json_schema
from crmrules.rules.templates import TemplateError, TemplateLimits
from crmrules.rules.versions import RegulationVersion
from crmrules.scoped import ScopedView
from crmrules.status import LeaseHolder, WorkCounts, WorkStatus, work_status
from crmrules.store import (
    AuditEntry,
    ConflictError,
    FailureStatus,
    MessageStatus,
    OutboxMessage,
    RuleFailure,
    Store,
    Timer,
    TimerStatus,
    Transaction,
)
from crmrules.summary import ClientSummary
from crmrules.worker import Worker, WorkerError

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "VERSION_TABLE",
    "Absence",
    "ActionContext",
    "ActionError",
    "ActionPlugin",
    "ActionRefused",
    "AuditEntry",
    "BusinessCalendar",
    "Campaign",
    "Chunk",
    "ChunkReport",
    "Client",
    "ClientSummary",
    "Clock",
    "Condition",
    "ConflictError",
    "Contact",
    "ContactRole",
    "CrmRulesError",
    "Deal",
    "DeliveryError",
    "DeliveryReport",
    "DueReport",
    "DuplicatePair",
    "Duration",
    "Effect",
    "Engine",
    "Event",
    "Explanation",
    "Facts",
    "FailureStatus",
    "FieldType",
    "Finding",
    "HistoryEntry",
    "HistoryItem",
    "HostRecords",
    "HostTable",
    "Impact",
    "ImportMapping",
    "ImportReport",
    "Inline",
    "Interaction",
    "LeaseHolder",
    "Location",
    "LogNotifier",
    "Mailing",
    "MailingStatus",
    "Manager",
    "MappingError",
    "MembershipSource",
    "MemoryStore",
    "MergePolicy",
    "MergeResult",
    "MessageStatus",
    "MissingExtraError",
    "Notifier",
    "OccurrenceExplanation",
    "OperatorPlugin",
    "OutOfScopeError",
    "OutboxMessage",
    "Pipeline",
    "Problem",
    "RecordError",
    "RefusedError",
    "Regulation",
    "RegulationError",
    "RegulationVersion",
    "Request",
    "RequestStatus",
    "Result",
    "RetryPolicy",
    "Rule",
    "RuleFailure",
    "RuleOutcome",
    "SQLAlchemyStore",
    "SchemaError",
    "Scope",
    "ScopedView",
    "SimulatedClock",
    "SmtpNotifier",
    "Stage",
    "StageMove",
    "StageRequirementsError",
    "Store",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskStatus",
    "TemplateError",
    "TemplateLimits",
    "Territory",
    "TerritoryMembership",
    "Timer",
    "TimerChanges",
    "TimerStatus",
    "Trace",
    "Transaction",
    "WebhookNotifier",
    "WorkCounts",
    "WorkStatus",
    "Worker",
    "WorkerError",
    "WorkingHours",
    "__version__",
    "db_current",
    "db_head",
    "db_upgrade",
    "default_store",
    "deliver_due",
    "fire_chunk",
    "hookimpl",
    "json_schema",
    "lint",
    "lint_path",
    "load_regulation",
    "make_engine",
    "plan_chunks",
    "sql_metadata",
    "work_status",
]
