"""A throwaway ``redis-server`` for the Celery and Dramatiq peers.

It listens on 127.0.0.1 on a free port (never 6379: another Redis may be running there),
keeps nothing on disk, and is stopped by its pid.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from computeinfra.testing.stack import free_port

__all__ = ["RedisServer", "redis_server"]

READY_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """Without a database number: each peer picks its own."""
        return f"redis://127.0.0.1:{self.port}"

    def version(self) -> str:
        info = redis.Redis(host="127.0.0.1", port=self.port).info("server")
        return str(info.get("redis_version", "?"))


def _wait_ping(server: RedisServer, log: Path) -> None:
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=1)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise RuntimeError(f"redis-server exited {code}:\n{log.read_text()}")
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING within {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.05)  # polling a condition with a deadline


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free 127.0.0.1 port; stop it by pid on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make bench-packages`")
    with tempfile.TemporaryDirectory(prefix="computeinfra-bench-redis-") as tmp:
        port = free_port()
        log = Path(tmp) / "redis.log"
        command = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        command += ["--appendonly", "no", "--dir", tmp, "--logfile", str(log)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        server = RedisServer(port, process)
        try:
            _wait_ping(server, log)
            yield server
        finally:
            _stop(process)
