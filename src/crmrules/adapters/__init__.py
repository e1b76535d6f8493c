"""Storage and delivery adapters: the in-memory store and the notifiers."""

from crmrules.adapters.memory import MemoryStore

__all__ = ["MemoryStore"]
