"""The pytest plugin: every ``*.regulation.yaml`` file is a test file.

Registered through the ``pytest11`` entry point, so installing crmrules is
enough. Each scenario is one item, ``<file>::<scenario name>``. A failing
scenario shows the same readable report as ``crmrules test`` (no
traceback); a file that does not load (bad YAML, an unknown step, rule or
client, a regulation with problems) is a collection error listing each
problem with its file, line and column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmrules.errors import RegulationError
from crmrules.testing.runner import ScenarioResult, problems_report, run_scenario
from crmrules.testing.scenario import (
    Scenario,
    ScenarioFile,
    is_scenario_file,
    load_scenario_file,
)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path):
        collector: RegulationFile = RegulationFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFailed(Exception):
    """A scenario did not pass; carries its result for the report."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.report())
        self.result = result


class ScenarioFileError(Exception):
    """A scenario file that does not load."""

    def __init__(self, report: str) -> None:
        super().__init__(report)
        self.report = report


class RegulationFile(pytest.File):
    """A scenario file: one item per scenario."""

    def collect(self) -> Iterator[RegulationScenario]:
        try:
            loaded = load_scenario_file(self.path, display=self._display())
        except RegulationError as error:
            raise ScenarioFileError(problems_report(error)) from None
        for scenario in loaded.scenarios:
            yield RegulationScenario.from_parent(
                self, name=scenario.name, loaded=loaded, scenario=scenario
            )

    def _display(self) -> str:
        try:
            return str(self.path.relative_to(self.config.rootpath))
        except ValueError:
            return str(self.path)

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        if isinstance(excinfo.value, ScenarioFileError):
            return f"{self._display()} does not load:\n{excinfo.value.report}"
        return str(super().repr_failure(excinfo))


class RegulationScenario(pytest.Item):
    """One scenario of a scenario file."""

    def __init__(self, *, loaded: ScenarioFile, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded
        self.scenario = scenario

    def runtest(self) -> None:
        assert isinstance(self.parent, RegulationFile)
        result = run_scenario(self.loaded, self.scenario, display=self.parent._display())
        if not result.passed:
            raise ScenarioFailed(result)

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.result.report()
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.scenario.location.line - 1 if self.scenario.location else None
        # Not "<file>::<name>": pytest would turn the dots of such a domain into "::" in
        # its -v lines; with this one it shows the node id, which is "<file>::<name>".
        return self.path, line, f"scenario: {self.scenario.name}"


__all__ = ["RegulationFile", "RegulationScenario", "ScenarioFailed", "pytest_collect_file"]
