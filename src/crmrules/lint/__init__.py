"""``crmrules lint``: problems a regulation loads fine with, found before they bite.

A regulation that validates may still contain a rule that never runs, two
rules that undo each other, a territory no client can reach, a condition
that can never hold, a stage move the pipeline refuses, declarations nobody
uses, or a letter sent every period. Each check is in crmrules.lint.checks;
the reasoning about conditions, and why it never claims what it did not
prove, is in crmrules.lint.logic. Errors make ``crmrules lint`` exit 1;
warnings too with ``--strict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from crmrules.lint import checks
from crmrules.lint.checks import Finding, Severity
from crmrules.rules.regulation import Regulation, compile_regulation
from crmrules.rules.source import load_document


def lint(regulation: Regulation, data: Mapping[str, Any] | None = None) -> list[Finding]:
    """Every finding, in file order; ``data`` (the merged document) adds the unused-field check."""
    found: list[Finding] = [
        *checks.conditions(regulation),
        *checks.shadowed(regulation),
        *checks.cycles(regulation),
        *checks.territories(regulation),
        *checks.stage_moves(regulation),
        *checks.repeated_mailings(regulation),
    ]
    if data is not None:
        found.extend(checks.unused(regulation, data))
    else:
        found.extend(f for f in checks.unused(regulation, {}) if f.code != "unused-field")
    return sorted(found, key=_order)


def lint_path(
    *paths: str | Path,
    actions: Mapping[str, Any] | None = None,
    operators: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Load the regulation at ``paths`` (RegulationError if it does not load) and lint it."""
    document = load_document(paths)
    regulation = compile_regulation(document, actions, operators)
    return lint(regulation, document.data if isinstance(document.data, dict) else None)


def _order(finding: Finding) -> tuple[str, int, int, str]:
    loc = finding.location
    return (loc.file, loc.line, loc.column, finding.code) if loc else ("", 0, 0, finding.code)


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """1 if there is an error (or, with ``strict``, any finding); else 0."""
    return int(any(f.severity == "error" or strict for f in findings))


__all__ = ["Finding", "Severity", "exit_code", "lint", "lint_path"]
