"""Shared fixtures: real local servers (see localservers.py); one line for PostgreSQL skips;
hypothesis profiles.

The property tests are bounded so the suite stays fast; ``pytest
--hypothesis-profile=nightly`` runs each of them twenty times longer.
"""

from hypothesis import settings

from localservers import mail
from skipsummary import pytest_terminal_summary

settings.register_profile("nightly", max_examples=2000, deadline=None)

__all__ = ["mail", "pytest_terminal_summary"]
