"""Compatibility with the ``business-rules`` package: a faster drop-in, import and export."""

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

__all__ = [
    "CACHE",
    "EPSILON",
    "FiredRule",
    "RunResult",
    "check_condition",
    "check_conditions_recursively",
    "do_actions",
    "run",
    "run_all",
    "run_all_results",
]
