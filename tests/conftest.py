"""Shared fixtures: real local servers (see localservers.py); hypothesis profiles.

The property tests are bounded so the suite stays fast; ``pytest
--hypothesis-profile=nightly`` runs each of them twenty times longer.
"""

from hypothesis import settings

from localservers import mail

settings.register_profile("nightly", max_examples=2000, deadline=None)

__all__ = ["mail"]
