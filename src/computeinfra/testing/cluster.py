"""A throwaway scaled-out cluster on one machine, for tests: a 3-broker Kafka cluster
(``computeinfra kafka start --nodes 3``), a head (``computeinfra up --head``) and processing
nodes (``computeinfra up --join``), each a separate process tree on 127.0.0.1 with its own
ports, all under one folder and all stopped by pid on exit.

Every command is the one a user types (README, "Scaling out"); only ports and folders are
made private, so a running ``make run`` is never touched.
"""

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
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from computeinfra.cluster.connect import read_state
from computeinfra.config import Settings, child_environment
from computeinfra.errors import ClusterError
from computeinfra.kafka.local import local_broker
from computeinfra.kafka.quorum import BrokerQuorum
from computeinfra.testing.stack import settings_under

__all__ = ["ClusterStack", "cluster_stack", "free_port_range"]

READY_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 120.0
KAFKA_NODES = 3
# Below Linux's ephemeral range (32768+), so no outgoing connection takes one meanwhile.
PORT_RANGE = (20000, 32000)
READY_MARK = b"ready:"


def free_port_range(count: int, start: int = PORT_RANGE[0], stop: int = PORT_RANGE[1]) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1, from a random start."""
    base = start + (os.getpid() * 7919) % (stop - start)
    for offset in range(0, stop - start, count):
        first = start + (base - start + offset) % (stop - start - count)
        if all(_free(port) for port in range(first, first + count)):
            return first
    raise ClusterError(f"no {count} consecutive free ports in {start}-{stop}")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """Ours, over an environment rid of any other stack's settings (a test session's)."""
    inherited = {
        k: v
        for k, v in child_environment().items()
        if not k.startswith("COMPUTEINFRA_") and k != "RAY_ADDRESS"
    }
    return {**inherited, **env}


def _cli() -> list[str]:
    script = shutil.which("computeinfra", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "computeinfra"]


@dataclass
class ClusterStack:
    root: Path
    kafka: BrokerQuorum
    env: dict[str, str]
    settings: Settings
    head: subprocess.Popen[bytes]
    ray_address: str
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def join(
        self, name: str, blocks: int, resources: str | None = None, timeout: float = 300.0
    ) -> subprocess.Popen[bytes]:
        """``computeinfra up --join`` as its own session; returns once its blocks are ready."""
        cmd = [*_cli(), "up", "--join", self.ray_address, "--blocks", str(blocks)]
        cmd += ["--node-name", name, *(["--resources", resources] if resources else [])]
        log = self.root / f"node-{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                cmd,
                env=_clean_env(self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        self.nodes[name] = process
        _wait_log(process, log, READY_MARK, timeout, f"node {name}")
        return process

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of node ``name`` (``up --join``, its Ray node, its blocks,
        which Ray puts in process groups of their own); returns how many."""
        process = self.nodes.pop(name)
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
        for member in tree:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(tree, timeout=30)
        process.wait()
        return len(tree)

    def stop_node(self, name: str) -> None:
        _stop(self.nodes.pop(name))


def _wait_log(
    process: subprocess.Popen[bytes], log: Path, mark: bytes, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while mark not in log.read_bytes():
        if process.poll() is not None:
            raise ClusterError(f"{what} exited {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} was not ready after {timeout:.0f} s:\n{log.read_text()}")
        time.sleep(0.5)  # polling a condition with a deadline


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start_kafka(root: Path, env: Mapping[str, str]) -> BrokerQuorum:
    subprocess.run(
        [*_cli(), "kafka", "start", "--nodes", str(KAFKA_NODES)],
        env=_clean_env(env),
        cwd=root,
        check=True,
        capture_output=True,
        timeout=READY_TIMEOUT_SECONDS,
    )
    kafka = local_broker(settings_under(env))
    assert isinstance(kafka, BrokerQuorum)
    return kafka


def _start_head(root: Path, env: Mapping[str, str], blocks: int) -> subprocess.Popen[bytes]:
    log = root / "head.log"
    with log.open("wb") as out:
        return subprocess.Popen(
            [*_cli(), "up", "--head", "--blocks", str(blocks), "--no-web"],
            env=_clean_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
        )


@contextmanager
def cluster_stack(
    root: Path, head_blocks: int, extra_env: Mapping[str, str] | None = None
) -> Iterator[ClusterStack]:
    """Kafka (3 brokers), then a head with ``head_blocks`` blocks; join nodes with
    ``ClusterStack.join``. Everything is stopped, by pid, on exit."""
    port = free_port_range(2 * KAFKA_NODES)
    kafka_env = {
        "COMPUTEINFRA_HOME": str(root / "home"),
        "COMPUTEINFRA_KAFKA_PORT": str(port),
        "COMPUTEINFRA_KAFKA_CONTROLLER_PORT": str(port + 1),
        "COMPUTEINFRA_RESULTS_ROOT": str(root / "results"),
        "COMPUTEINFRA_INPUT_ROOTS": str(root / "inputs"),
        **(extra_env or {}),
    }
    (root / "inputs").mkdir(parents=True, exist_ok=True)
    kafka = _start_kafka(root, kafka_env)
    try:
        # The head and the nodes are told where Kafka is, as on separate hosts.
        env = {**kafka_env, "COMPUTEINFRA_BOOTSTRAP": kafka.config.bootstrap}
        settings = settings_under(env)
        head = _start_head(root, env, head_blocks)
        try:
            _wait_log(head, root / "head.log", READY_MARK, READY_TIMEOUT_SECONDS, "the head")
            state = read_state(settings) or {}
            stack = ClusterStack(root, kafka, env, settings, head, str(state["ray_address"]))
            try:
                yield stack
            finally:
                for name in list(stack.nodes):
                    stack.stop_node(name)
        finally:
            _stop(head)
    finally:
        kafka.stop()
