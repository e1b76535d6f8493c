"""Shared fixtures: real local servers (see localservers.py); one line for PostgreSQL skips;
hypothesis profiles.

The property tests are bounded so the suite stays fast; ``pytest
--hypothesis-profile=nightly`` runs each of them twenty times longer.
"""

from hypothesis import settings

from localservers import mail
from skipsummary import pytest_terminal_summary

settings.register_profile("nightly", max_examples=2000, deadline=None)
# No timing in unit tests: hypothesis' 200 ms deadline per example fails a test on a
# loaded machine (a database round trip under load), so it is off unless a test sets one.
settings.register_profile("untimed", deadline=None)
settings.load_profile("untimed")

__all__ = ["mail", "pytest_terminal_summary"]
