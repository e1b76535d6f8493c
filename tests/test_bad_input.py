"""Bad input from the host and the regulation is refused with a clear error (issue 10)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from crmrules.errors import RegulationError
from crmrules.rules.source import Limits, load_document


def test_a_pipe_larger_than_the_limit_is_refused_while_reading(tmp_path: Path) -> None:
    # stat() says 0 bytes for a pipe (or /dev/zero): the size must be checked while reading.
    fifo = tmp_path / "regulation.yaml"
    os.mkfifo(fifo)

    def write() -> None:
        try:
            with fifo.open("wb") as out:
                out.write(b"# " + b"x" * 5000 + b"\nversion: 1\n")
        except BrokenPipeError:
            pass  # the reader stopped at the limit, as it should

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with pytest.raises(RegulationError, match="file is too large"):
            load_document([fifo], Limits(max_file_bytes=1000))
    finally:
        writer.join()


def test_dev_zero_is_refused_after_the_limit() -> None:
    with pytest.raises(RegulationError, match=r"too large \(more than 1000 bytes\)"):
        load_document(["/dev/zero"], Limits(max_file_bytes=1000))
