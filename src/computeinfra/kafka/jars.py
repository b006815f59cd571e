"""The Kafka jars: fetched from Maven Central once per version into a cache.

Development and tests need a real broker without a Kafka install or Docker, so the jars
come from Maven Central through ``pom.xml`` (next to this module) into a directory shared
by every checkout. The helpers that run Maven also run Kafka's own tools for the broker.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from computeinfra.config import ToolSettings
from computeinfra.errors import BrokerError

__all__ = [
    "KAFKA_VERSION",
    "cache_dir",
    "ensure_kafka_jars",
    "installed_kafka_jars",
    "require_tool",
    "run_tool",
    "tail",
]

KAFKA_VERSION: str = ToolSettings.from_env().kafka_version

_POM = Path(__file__).resolve().parent / "pom.xml"
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_TAIL_LINES = 40
# The broker, and Kafka's tools (``TransactionsCommand``, used by ``computeinfra doctor``).
_EXPECTED = ("kafka_2.13-{version}.jar", "kafka-tools-{version}.jar")


def cache_dir() -> Path:
    """Where fetched jars are kept, shared by every checkout (``COMPUTEINFRA_CACHE``)."""
    return ToolSettings.from_env().cache


def require_tool(tool: str) -> str:
    """Resolve an external tool up front, so its absence is one clear error, not a trace."""
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(
            f"{tool!r} is not on PATH: the local Kafka broker needs Java 17+ and Maven"
        )
    return path


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    """The end of a long output is where the JVM or Maven says what went wrong."""
    plain = _ANSI_RE.sub("", text)  # Maven colours its output even in batch mode
    return "\n".join(plain.strip().splitlines()[-lines:])


def run_tool(cmd: list[str], what: str) -> None:
    """Run Maven or a Kafka tool; a failure raises with the end of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = tail(proc.stdout + proc.stderr)
        raise BrokerError(f"{what} failed (exit {proc.returncode}):\n{output}")


def ensure_kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """Return ``<cache>/kafka-<version>/lib``, running mvn once if it is not cached yet.

    A marker file is written only after a complete copy, so an interrupted download
    is redone rather than leaving a broken classpath. A file lock keeps two
    processes from fetching into the same directory at once.
    """
    if not _VERSION_RE.match(version):
        raise BrokerError(f"invalid Kafka version {version!r}: expected e.g. {KAFKA_VERSION}")
    home = cache_dir() / f"kafka-{version}"
    lib, marker = home / "lib", home / ".complete"
    if _complete(lib, marker, version):
        return lib
    require_tool("java")
    mvn = require_tool("mvn")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(lib, marker, version):  # another process finished while we waited
            return lib
        # Into a new folder, then moved into place: a broker may be running from the old
        # one (a cache made before a jar joined the pom), and loads its classes lazily.
        fresh = home / f"lib.{os.getpid()}.tmp"
        shutil.rmtree(fresh, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(_POM), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={fresh}", f"-Dkafka.version={version}"]
        run_tool(cmd, f"fetching the Kafka {version} jars with Maven")
        for jar in _EXPECTED:
            if not (fresh / jar.format(version=version)).is_file():
                raise BrokerError(f"Maven ran but {fresh} has no {jar.format(version=version)}")
        marker.unlink(missing_ok=True)
        if lib.exists():
            lib.rename(home / f"lib.replaced-{int(time.time())}")
        fresh.rename(lib)
        marker.write_text(f"{version}\n")
    return lib


def installed_kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """``<cache>/kafka-<version>/lib`` if it is complete; never fetches (a read-only
    command such as ``doctor`` must not start a download)."""
    home = cache_dir() / f"kafka-{version}"
    lib = home / "lib"
    if not _complete(lib, home / ".complete", version):
        raise BrokerError(
            f"the Kafka {version} jars are not all here: run `computeinfra kafka fetch`"
        )
    return lib


def _complete(lib: Path, marker: Path, version: str) -> bool:
    """Whether the cache holds a finished copy with every jar we need (a cache made before
    a jar joined the pom is fetched again)."""
    return marker.is_file() and all((lib / j.format(version=version)).is_file() for j in _EXPECTED)
