"""Storage and delivery adapters: the in-memory store and the notifiers."""

from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.notifiers import LogNotifier, SmtpNotifier, WebhookNotifier

__all__ = ["LogNotifier", "MemoryStore", "SmtpNotifier", "WebhookNotifier"]
