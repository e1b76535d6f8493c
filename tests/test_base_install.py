"""The wheel without extras installs alone and runs the SQLite quickstart.

A real build and a real virtual environment (about 20 s): the base install
must not pull in psycopg or httpx, and using PostgreSQL or webhooks without
them says which extra to install instead of failing with an ImportError.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

CHECK_EXTRAS = """
import importlib.util, sys
from crmrules import Engine, MissingExtraError, WebhookNotifier

for module in ("httpx", "psycopg", "openpyxl"):
    assert importlib.util.find_spec(module) is None, module + " came with the base install"
try:
    WebhookNotifier()
except MissingExtraError as error:
    print(error)
try:
    Engine.from_path(sys.argv[1], store="postgresql://crm@127.0.0.1:1/crm")
except MissingExtraError as error:
    print(error)
from crmrules.import_mapping import ImportMapping, read_rows
try:
    list(read_rows("clients.xlsx", ImportMapping(columns={})))
except MissingExtraError as error:
    print(error)
"""


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_without_extras_runs_the_sqlite_quickstart(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT, cwd=tmp_path)
    [wheel] = dist.glob("crmrules-*.whl")
    run(sys.executable, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)

    assert run(python, "-m", "crmrules", "--version", cwd=tmp_path).startswith("crmrules ")
    work = tmp_path / "app"
    work.mkdir()
    out = run(python, ROOT / "examples" / "quickstart.py", cwd=work)
    assert "invoice-followup: fired" in out
    assert (work / "crmrules.sqlite3").exists()

    messages = run(python, "-c", CHECK_EXTRAS, ROOT / "examples" / "client-service", cwd=work)
    assert "WebhookNotifier needs the 'httpx' package" in messages
    assert "pip install 'crmrules[webhook]'" in messages
    assert "needs the 'psycopg' package" in messages
    assert "pip install 'crmrules[postgresql]'" in messages
    assert "reading .xlsx files needs the 'openpyxl' package" in messages
    assert "pip install 'crmrules[xlsx]'" in messages
