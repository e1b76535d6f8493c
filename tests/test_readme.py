"""The README's Python example runs, twice on the same database, and the quickstart explains
its own output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def run(code: str | Path, cwd: Path) -> str:
    args = [str(code)] if isinstance(code, Path) else ["-c", code]
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_readme_example_runs_twice_with_its_own_clock(tmp_path: Path) -> None:
    [example] = python_blocks(ROOT / "README.md")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    first = run(example, tmp_path)
    assert "due 2026-06-16T10:00:00+03:00" in first
    second = run(example, tmp_path)
    assert "event inv-17 was handled before; nothing done again" in second
    assert "Уточнить оплату счёта INV-17 2026-06-16 10:00:00+03:00" in second


def test_the_quickstart_explains_how_to_read_it(tmp_path: Path) -> None:
    out = run(ROOT / "examples" / "quickstart.py", tmp_path)
    assert "indented one step per generation" in out
    assert "quickstart-payment/deal.stage_changed:payment-received:1" in out
    tasks = out.split("== tasks\n", 1)[1]
    assert re.match(
        r"task-\w+  cancelled call  'Уточнить оплату счёта СЧ-2026-117' for ivanov", tasks
    )
