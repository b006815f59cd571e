"""A peer's worker command, run in its own process group and stopped through that group."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["BENCH_DIR", "worker_process"]

BENCH_DIR = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 30.0


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    # The group is ours: start_new_session made the worker its leader.
    group = process.pid
    if process.poll() is None:
        os.killpg(group, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_SECONDS)
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)  # pool children a warm shutdown left behind
    process.wait()


@contextmanager
def worker_process(
    command: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (a worker CLI) with the bench folder importable; stop its group on exit."""
    path = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH")) if p)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env, "PYTHONPATH": path},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=BENCH_DIR,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _stop_group(process)
