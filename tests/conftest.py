"""Shared fixtures: real local servers (see localservers.py); one line for PostgreSQL skips."""

from localservers import mail
from skipsummary import pytest_terminal_summary

__all__ = ["mail", "pytest_terminal_summary"]
