"""Compatibility with the ``business-rules`` package: a faster drop-in, import and export.

``run_all``, ``run`` and ``check_condition`` take the same arguments and give
the same answers and errors as ``business_rules.engine``; ``import_rules``
turns its JSON into a crmrules regulation and ``export_rules`` goes back.
See docs/business-rules.md.
"""

from crmrules.business_rules.engine import (
    CACHE,
    EPSILON,
    FiredRule,
    RunResult,
    check_condition,
    check_conditions_recursively,
    do_actions,
    run,
    run_all,
    run_all_results,
)
from crmrules.business_rules.exporter import Exported, Skipped, export_rules
from crmrules.business_rules.importer import (
    DEFAULT_EVENT,
    ImportRulesError,
    fields_from_variables,
    import_rules,
)
from crmrules.business_rules.plugin import OPERATORS, BusinessRulesPlugin, plugin

__all__ = [
    "CACHE",
    "DEFAULT_EVENT",
    "EPSILON",
    "OPERATORS",
    "BusinessRulesPlugin",
    "Exported",
    "FiredRule",
    "ImportRulesError",
    "RunResult",
    "Skipped",
    "check_condition",
    "check_conditions_recursively",
    "do_actions",
    "export_rules",
    "fields_from_variables",
    "import_rules",
    "plugin",
    "run",
    "run_all",
    "run_all_results",
]
