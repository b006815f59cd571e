"""librdkafka's lines go to our logger: hidden in the CLI unless -v, and never on stdout,
where --json output goes (issue #17)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging, sys
from computeinfra.cli import configure_logging
configure_logging(sys.argv[1] == "-v")
logging.getLogger("computeinfra.kafka").error("GETPID [rdkafka#producer-1]: coordinator load")
logging.getLogger("computeinfra.supervisor").warning("a warning of ours")
print('{"json": true}')
"""


def _run(flag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, flag], capture_output=True, text=True, timeout=60
    )


def test_librdkafka_lines_are_hidden_without_verbose() -> None:
    quiet = _run("")
    assert "rdkafka" not in quiet.stderr and "rdkafka" not in quiet.stdout
    assert "a warning of ours" in quiet.stderr  # our own warnings still show, on stderr
    assert quiet.stdout == '{"json": true}\n'


def test_verbose_shows_them_on_stderr_only() -> None:
    loud = _run("-v")
    assert "GETPID [rdkafka#producer-1]: coordinator load" in loud.stderr
    assert loud.stdout == '{"json": true}\n'
