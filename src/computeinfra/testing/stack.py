"""A throwaway local stack for tests and benchmarks: a broker on free ports and a real
``computeinfra up`` subprocess, both under one folder and both stopped by pid on exit."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from computeinfra.cluster.connect import read_state
from computeinfra.config import Settings, child_environment
from computeinfra.errors import ClusterError
from computeinfra.kafka.admin import ensure_topics
from computeinfra.kafka.broker import BrokerConfig, LocalBroker

__all__ = ["DevStack", "dev_stack", "free_port", "kill_all", "running_broker"]

READY_TIMEOUT_SECONDS = 240.0
STOP_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevStack:
    root: Path
    broker: LocalBroker
    env: dict[str, str]
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def web_url(self) -> str:
        """The web app ``computeinfra up`` serves (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.env['COMPUTEINFRA_WEB_PORT']}"


def kill_all(stack: DevStack) -> int:
    """SIGKILL every process of the stack at once, the broker included, as a power cut
    would: no LeaveGroup, no transaction ended, no file flushed by us. Its processes are
    found by pid: the broker's, and every one whose environment names the stack's home
    (``up``, Ray and the actors inherit it). Returns how many were killed."""
    mark = f"COMPUTEINFRA_HOME={stack.env['COMPUTEINFRA_HOME']}".encode() + b"\0"
    victims = {p.pid for p in psutil.process_iter() if p.pid != os.getpid() and _has(p.pid, mark)}
    broker = stack.broker.status().pid
    victims |= {broker} if broker is not None else set()
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    psutil.wait_procs([p for p in map(_process, victims) if p], timeout=STOP_TIMEOUT_SECONDS)
    return len(victims)


def _has(pid: int, mark: bytes) -> bool:
    try:
        return mark in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def settings_under(env: Mapping[str, str]) -> Settings:
    """The settings a child process started with ``env`` over ours would read."""
    return Settings.from_env(child_environment(env))


def _up_command(blocks: int) -> list[str]:
    script = shutil.which("computeinfra", path=str(Path(sys.executable).parent))
    base = [script] if script else [sys.executable, "-m", "computeinfra"]
    return [*base, "up", "--blocks", str(blocks)]


def _wait_ready(stack: DevStack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (read_state(stack.settings) or {}).get("ready"):
        if stack.process.poll() is not None:
            raise ClusterError(
                f"computeinfra up exited {stack.process.returncode}:\n{stack.log.read_text()}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(f"computeinfra up was not ready after {timeout:.0f} s")
        time.sleep(0.5)  # polling a condition with a deadline


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_broker(root: Path) -> Iterator[LocalBroker]:
    """A broker of its own under ``root / "kafka"``, on free ports: started, and stopped by
    its pid at the end."""
    broker = LocalBroker(
        BrokerConfig(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextmanager
def dev_stack(
    root: Path,
    blocks: int,
    extra_env: Mapping[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> Iterator[DevStack]:
    """Run a broker and ``computeinfra up --blocks N`` rooted at ``root`` until exit."""
    with running_broker(root) as broker:
        env = {
            "COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap,
            "COMPUTEINFRA_HOME": str(root / "home"),
            "COMPUTEINFRA_RESULTS_ROOT": str(root / "results"),
            "COMPUTEINFRA_INPUT_ROOTS": str(root / "inputs"),
            # Never 8080: a `make run` on this machine may be serving there.
            "COMPUTEINFRA_WEB_PORT": str(free_port()),
            **(extra_env or {}),
        }
        (root / "inputs").mkdir(parents=True, exist_ok=True)
        settings = settings_under(env)
        ensure_topics(settings)
        log = root / "up.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                _up_command(blocks),
                env=child_environment(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        stack = DevStack(root, broker, env, settings, process, log)
        try:
            _wait_ready(stack, ready_timeout)
            yield stack
        finally:
            _stop(process)
