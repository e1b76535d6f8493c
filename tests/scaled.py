"""Example counts for the property tests, scaled up by ``--hypothesis-profile=nightly``."""

from hypothesis import settings


def examples(n: int) -> int:
    """``n`` in CI; proportionally more under a profile with more examples than the default."""
    return max(n, n * settings.default.max_examples // 100)
