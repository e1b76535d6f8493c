"""Which regulation made something: a content hash, plus the admin's optional labels.

``version: 1`` at the top of a regulation is the rule language's version, so
the admin's own labels have keys of their own: ``name:`` (what the regulation
is, e.g. "Client service") and ``revision:`` (which edition, e.g.
"2026-12 winter prices"). The content hash is taken over the merged document,
so two loads of the same files give the same version and any edit gives
another, labelled or not. Every task, mailing, timer, audit entry and result
records the version's ``id`` (see crmrules.history).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crmrules.rules.source import PathKey

#: The top-level keys this module reads.
LABEL_KEYS = ("name", "revision")
#: Hex digits of the content hash kept in a version id.
DIGEST_LENGTH = 12
MAX_LABEL_LENGTH = 200


@dataclass(frozen=True)
class RegulationVersion:
    """One version of a regulation: ``digest`` always, ``name``/``revision`` if written."""

    digest: str
    name: str | None = None
    revision: str | None = None

    @property
    def id(self) -> str:
        """What records keep: ``<revision>@<digest>`` (just the digest without a revision)."""
        return f"{self.revision}@{self.digest}" if self.revision else self.digest

    def describe(self) -> str:
        """The version as an admin reads it, e.g. ``Client service, revision 2 (3f2a…)``."""
        parts = [p for p in (self.name, f"revision {self.revision}" if self.revision else "") if p]
        label = ", ".join(parts)
        return f"{label} ({self.digest})" if label else self.digest

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "digest": self.digest, "name": self.name, "revision": self.revision}


def digest_of(data: Any) -> str:
    """The content hash of a merged document (key order does not count)."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def version_of(
    data: Any, error: Callable[[PathKey, str, str | None], None]
) -> RegulationVersion | None:
    """The version of ``data``; a bad label is reported through ``error`` (and None returned)."""
    labels: dict[str, str | None] = {}
    ok = True
    for key in LABEL_KEYS:
        raw = data.get(key) if isinstance(data, dict) else None
        if raw is None:
            labels[key] = None
        elif isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw).strip():
            text = str(raw).strip()
            if len(text) > MAX_LABEL_LENGTH or any(ord(c) < 32 for c in text):
                error(
                    (key,), f"{key} must be one line of at most {MAX_LABEL_LENGTH} characters", None
                )
                ok = False
            labels[key] = text
        else:
            error((key,), f"{key} must be a text label", f"e.g. {key}: 2026-12")
            ok = False
    if not ok:
        return None
    return RegulationVersion(digest_of(data), labels["name"], labels["revision"])


#: The version of a regulation built in code (no document to hash).
UNVERSIONED = RegulationVersion("unversioned")

__all__ = ["LABEL_KEYS", "UNVERSIONED", "RegulationVersion", "digest_of", "version_of"]
