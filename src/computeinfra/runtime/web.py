"""The web app as run by the system: served with the cluster's figures read from Ray
(``serve_web``, for ``computeinfra web``), and as a child process of ``computeinfra up``,
started and stopped by pid."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from computeinfra.cluster.launcher import analyzer_snapshot, block_statuses
from computeinfra.config import Settings, child_environment
from computeinfra.errors import ClusterError
from computeinfra.web import WEB_HOST, WebSettings, serve
from computeinfra.web.figures import Figures

# What `computeinfra web` needs of the web app, through here: cli/ never imports web/.
__all__ = ["WEB_HOST", "WebSettings", "ray_figures", "serve_web", "start_web", "stop_web"]

WEB_PORT_ENV = "COMPUTEINFRA_WEB_PORT"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
RAY_TIMEOUT_SECONDS = 10.0


def ray_figures(settings: Settings) -> Figures:
    """The analyzer's figures and every block's state, read from the Ray cluster."""
    try:
        snapshot = analyzer_snapshot(settings, RAY_TIMEOUT_SECONDS)
        blocks = block_statuses(settings)
    except ClusterError:
        raise
    except Exception as exc:  # Ray's own errors: the cluster is away or restarting
        raise ClusterError(f"cannot read the analyzer from Ray: {exc}") from exc
    return {"analyzer": snapshot, "blocks": blocks, "at": time.time()}


def serve_web(settings: WebSettings, host: str = WEB_HOST) -> None:
    """``computeinfra web``: serve until a signal, with the cluster's figures from Ray."""
    serve(settings, host, figures=ray_figures)


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
        _command(port), env=child_environment({**(env or {}), WEB_PORT_ENV: str(port)})
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
