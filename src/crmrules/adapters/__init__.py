"""Storage and delivery adapters: the in-memory and SQL stores, and the notifiers."""

from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.notifiers import LogNotifier, SmtpNotifier, WebhookNotifier
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, default_store, metadata

__all__ = [
    "LogNotifier",
    "MemoryStore",
    "SQLAlchemyStore",
    "SmtpNotifier",
    "WebhookNotifier",
    "default_store",
    "metadata",
]
