"""Shared fixtures: real local servers (see localservers.py)."""

from localservers import mail

__all__ = ["mail"]
