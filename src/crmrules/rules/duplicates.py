"""The ``duplicates:`` section: which client fields say two records are one client.

```yaml
duplicates:
  region: RU                        # phones written without + are Russian
  match:
    - {key: inn}                    # client.inn, a custom field
    - {key: phone}
    - {key: email}
    - {key: name, threshold: 90, ambiguous: 75}
```

Each matcher normalises its field (crmrules.normalise) into a key. Keys are
stored with the client (an indexed table), so candidates come from the
database by equal keys (blocking), never from comparing all pairs; the
verdict on a candidate pair is then:

- a tax id (inn, ogrn) present on both and different: not the same client,
  unless another key matches, then ambiguous;
- an equal phone, e-mail or tax id: a duplicate, unless both names are
  given and unlike (below ``ambiguous``), then ambiguous;
- names alike from ``threshold`` on (the rapidfuzz ratio of the normalised,
  token-sorted names): a duplicate, unless both have a phone or e-mail and
  none is the same, then ambiguous; from ``ambiguous`` on: ambiguous.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import phonenumbers
from rapidfuzz import fuzz

from crmrules import normalise
from crmrules.errors import Location
from crmrules.model import Client
from crmrules.rules import schema
from crmrules.rules.source import PathKey

if TYPE_CHECKING:
    from crmrules.rules.regulation import _Compiler

#: Name similarities (0-100) when a matcher does not say.
DEFAULT_THRESHOLD = 90.0
DEFAULT_AMBIGUOUS = 75.0
#: How many leading letters of each word of a normalised name make its second blocking key.
NAME_PREFIX = 4
TAX_KEYS = ("inn", "ogrn")
CONTACT_KEYS = ("phone", "email")

Verdict = Literal["duplicate", "ambiguous", "different"]


@dataclass(frozen=True)
class Matcher:
    """One ``match:`` entry: a kind of key read from one client field."""

    key: str
    field: str  # the key under client.record(): "phone", "inn", ...
    threshold: float
    ambiguous: float
    location: Location | None


@dataclass(frozen=True)
class Comparison:
    """The verdict on one pair of clients, and what led to it (for a person to read)."""

    verdict: Verdict
    reasons: tuple[str, ...]
    score: float | None = None


@dataclass(frozen=True)
class DuplicateRules:
    """The compiled ``duplicates:`` section."""

    matchers: tuple[Matcher, ...]
    region: str
    dot_blind: frozenset[str]
    plus_tags: frozenset[str]

    def normalised(self, record: Mapping[str, Any]) -> dict[str, str]:
        """Each matcher's normalised value of the record (a flattened client); None left out."""
        out: dict[str, str] = {}
        for matcher in self.matchers:
            raw = record.get(matcher.field)
            value = self._normalise(matcher.key, None if raw is None else str(raw))
            if value is not None:
                out[matcher.key] = value
        return out

    def _normalise(self, key: str, text: str | None) -> str | None:
        if key == "phone":
            return normalise.phone(text, self.region)
        if key == "email":
            return normalise.email(text, self.dot_blind, self.plus_tags)
        if key == "inn":
            return normalise.inn(text)
        if key == "ogrn":
            return normalise.ogrn(text)
        return normalise.name(text)

    def problem(self, key: str, text: str) -> str | None:
        """Why an imported value of a tax-id field is refused (a wrong check digit), or None."""
        if key == "inn":
            return normalise.inn_problem(text)
        if key == "ogrn":
            return normalise.ogrn_problem(text)
        return None

    def block_keys(self, values: Mapping[str, str]) -> set[tuple[str, str]]:
        """The (kind, key) pairs a client is found by: each value, and its name's word stems.

        The stems (each word's first four letters, words sorted) find a name
        with a slip past a word's fourth letter: ``северная сталь`` and
        ``северня сталь`` share ``севе стал``; the fuzzy score then decides.
        """
        keys = {(kind, value) for kind, value in values.items()}
        if "name" in values:
            stems = " ".join(word[:NAME_PREFIX] for word in values["name"].split())
            keys.add(("name_stems", stems))
        return keys

    def block_keys_of(self, client: Client) -> set[tuple[str, str]]:
        return self.block_keys(self.normalised(client.record()))

    def compare(self, a: Mapping[str, str], b: Mapping[str, str]) -> Comparison:
        """The verdict on two clients' normalised values (see the module docstring)."""
        equal = [k for k in a if k != "name" and k in b and a[k] == b[k]]
        conflict = [k for k in TAX_KEYS if k in a and k in b and a[k] != b[k]]
        name = next((m for m in self.matchers if m.key == "name"), None)
        score = None
        if name is not None and "name" in a and "name" in b:
            score = float(fuzz.ratio(a["name"], b["name"]))
        reasons = [f"same {k}" for k in equal] + [f"different {k}" for k in conflict]
        if score is not None:
            reasons.append(f"names {score:.0f}% alike")
        if conflict:
            alike = equal or (name is not None and score is not None and score >= name.threshold)
            return Comparison("ambiguous" if alike else "different", tuple(reasons), score)
        if equal:
            unlike = name is not None and score is not None and score < name.ambiguous
            return Comparison("ambiguous" if unlike else "duplicate", tuple(reasons), score)
        if name is not None and score is not None:
            contacts = [k for k in CONTACT_KEYS if k in a and k in b]
            if contacts:  # both have a phone or e-mail, and none is the same
                reasons.append(f"different {', '.join(contacts)}")
            if score >= name.threshold and not contacts:
                return Comparison("duplicate", tuple(reasons), score)
            if score >= name.ambiguous:
                return Comparison("ambiguous", tuple(reasons), score)
        return Comparison("different", tuple(reasons), score)


def compile_duplicates(compiler: _Compiler, raw: Any) -> DuplicateRules | None:
    """The section checked: field references, thresholds, the phone region; None if absent."""
    if raw is None:
        return None
    path: PathKey = ("duplicates",)
    spec = compiler.validate(schema.DuplicatesSpec, raw, path)
    if spec is None:
        return None
    region = spec.region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        compiler.error(
            (*path, "region"),
            f"unknown phone region {spec.region!r}",
            "an ISO 3166 country code such as RU, KZ, BY or DE",
        )
    matchers: list[Matcher] = []
    seen: set[str] = set()
    for index, entry in enumerate(spec.match):
        where: PathKey = (*path, "match", index)
        if entry.key in seen:
            compiler.error((*where, "key"), f"key {entry.key!r} is matched twice")
            continue
        seen.add(entry.key)
        field = entry.field or f"client.{entry.key}"
        if not field.startswith("client.") or compiler.registry.get(field) is None:
            known = [s.key for s in compiler.registry.of("client")]
            close = difflib.get_close_matches(field.split(".", 1)[-1], known, n=1)
            hint = (
                f"did you mean client.{close[0]}?"
                if close
                else f"declare it under fields: ({field}: {{type: string}})"
                if field.startswith("client.")
                else "a client field such as client.phone"
            )
            compiler.error((*where, "field" if entry.field else "key"), f"no field {field}", hint)
            continue
        if entry.key != "name" and (entry.threshold is not None or entry.ambiguous is not None):
            compiler.error(where, f"threshold and ambiguous apply to names, not to {entry.key}")
            continue
        threshold = DEFAULT_THRESHOLD if entry.threshold is None else entry.threshold
        ambiguous = (
            min(threshold, DEFAULT_AMBIGUOUS) if entry.ambiguous is None else entry.ambiguous
        )
        if ambiguous > threshold:
            compiler.error(
                (*where, "ambiguous"),
                f"ambiguous ({ambiguous:g}) is above threshold ({threshold:g})",
                "names from `ambiguous` up to `threshold` are listed for a person to decide",
            )
            continue
        matchers.append(
            Matcher(
                entry.key,
                field.split(".", 1)[1],
                threshold,
                ambiguous,
                compiler.source.locate(where),
            )
        )
    return DuplicateRules(
        tuple(matchers),
        region,
        frozenset(spec.dot_blind) if spec.dot_blind is not None else normalise.DOT_BLIND_DOMAINS,
        frozenset(spec.plus_tags) if spec.plus_tags is not None else normalise.PLUS_TAG_DOMAINS,
    )


__all__ = [
    "DEFAULT_AMBIGUOUS",
    "DEFAULT_THRESHOLD",
    "Comparison",
    "DuplicateRules",
    "Matcher",
    "Verdict",
    "compile_duplicates",
]
