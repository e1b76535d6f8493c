"""Regulation tests: scenario files (``*.regulation.yaml``) and a simulated clock.

``crmrules test PATH`` and pytest (through the plugin in
:mod:`crmrules.testing.pytest_plugin`) run scenario files;
:class:`Simulation` is the same machinery as a Python API. See
docs/regulation-tests.md.
"""

from crmrules.testing.runner import ScenarioResult, run_file, run_scenario
from crmrules.testing.scenario import ScenarioFile, is_scenario_file, load_scenario_file
from crmrules.testing.simulation import Happening, Simulation, StepError

__all__ = [
    "Happening",
    "ScenarioFile",
    "ScenarioResult",
    "Simulation",
    "StepError",
    "is_scenario_file",
    "load_scenario_file",
    "run_file",
    "run_scenario",
]
