"""The web app as a child process of ``computeinfra up``, started and stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from computeinfra.web.config import DEFAULT_WEB_PORT, WEB_HOST

__all__ = ["WEB_PORT_ENV", "start_web", "stop_web", "web_port_from_env"]

WEB_PORT_ENV = "COMPUTEINFRA_WEB_PORT"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def web_port_from_env() -> int:
    """The port ``up`` serves the web app on; 0 turns it off."""
    raw = os.environ.get(WEB_PORT_ENV) or ""
    return int(raw) if raw.strip().isdigit() else DEFAULT_WEB_PORT


def _command(port: int) -> list[str]:
    script = shutil.which("computeinfra", path=str(Path(sys.executable).parent))
    base = [script] if script else [sys.executable, "-m", "computeinfra"]
    return [*base, "web", "--port", str(port)]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((WEB_HOST, port)) == 0


def start_web(
    port: int, say: Callable[[str], None], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes] | None:
    """Start ``computeinfra web`` and wait until it listens; ``None`` if it could not start
    (the cluster runs on without it)."""
    process = subprocess.Popen(
        _command(port), env={**os.environ, **(env or {}), WEB_PORT_ENV: str(port)}
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            say(f"[yellow]the web app did not start on port {port}[/]; see its output above")
            stop_web(process)
            return None
        time.sleep(0.2)  # polling a condition with a deadline
    say(f"web app at http://{WEB_HOST}:{port}")
    return process


def stop_web(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
