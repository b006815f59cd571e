"""Run a real local Apache Kafka 4.x broker in KRaft mode (no ZooKeeper).

The jars come from Maven Central (``jars.py``). One JVM is both controller and broker,
listening on 127.0.0.1 only. Everything it owns lives in ``data_dir``: ``kraft/``,
``server.properties``, ``cluster.id``, ``broker.pid``, ``server.log`` and ``broker.out``
(the JVM console). The pid file lets a later process find and stop the broker; it is
trusted only if it names a live Kafka JVM started with *this* data_dir (Linux ``/proc``),
so stale pid files never block a start.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from computeinfra.config import ToolSettings
from computeinfra.errors import BrokerError

from .clients import common_config
from .jars import KAFKA_VERSION, cache_dir, ensure_kafka_jars, require_tool, run_tool, tail

__all__ = [
    "KAFKA_VERSION",
    "BrokerConfig",
    "BrokerStatus",
    "LocalBroker",
    "cache_dir",
    "ensure_kafka_jars",
]

_HERE = Path(__file__).resolve().parent
_LOG4J_CONFIG = _HERE / "log4j2.yaml"
_MAIN_CLASS = "kafka.Kafka"
_POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how the local broker runs. Ports bind to 127.0.0.1 only."""

    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    node_id: int = 1
    heap: str = "512m"
    version: str = KAFKA_VERSION
    num_partitions: int = 1
    # Extra ``server.properties`` lines, applied last so they win (e.g. message.max.bytes).
    overrides: tuple[tuple[str, str], ...] = ()
    # A static controller quorum (``1@127.0.0.1:9093,2@…``) for a multi-node cluster
    # (``quorum.py``); empty: this node alone is the quorum (formatted ``--standalone``).
    voters: str = ""

    @property
    def bootstrap(self) -> str:
        """What clients pass as ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    def server_properties(self) -> dict[str, str]:
        """Combined mode; alone, every replication factor and ISR is 1 (a quorum of nodes
        raises them through ``overrides``)."""
        kraft = Path(self.data_dir).resolve() / "kraft"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **(
                {"controller.quorum.voters": self.voters}
                if self.voters
                else {"controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}"}
            ),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(kraft),
            "num.partitions": str(self.num_partitions),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # The controller appends a no-op record to the metadata log this often, so that
            # brokers can tell it is alive (KIP-835, a metric only). Kafka's 500 ms made
            # half of an idle broker's CPU (1.8 % of a core alone, 0.9 % without the no-op
            # records: docs/performance.md).
            "metadata.max.idle.interval.ms": "10000",
            # Kafka's 3 network and 8 request threads are sized for a server; on 2 cores
            # they only take turns. With 1 and 2: no-op jobs 4,939 to 5,334/s, latency p50
            # at 200/s 20.5 to 14.1 ms, images 1.94x to 1.59x the Pool (docs/performance.md).
            "num.network.threads": "1",
            "num.io.threads": "2",
        }
        props.update(self.overrides)
        return props


@dataclass(frozen=True)
class BrokerStatus:
    """A snapshot: ``running`` means the broker JVM is alive, not that it is ready."""

    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path


def _cmdline(pid: int) -> list[str]:
    """The arguments of a process (Linux ``/proc``); empty if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class LocalBroker:
    """Start, stop, inspect and wipe one local broker, identified by its data_dir."""

    def __init__(self, config: BrokerConfig) -> None:
        self._config = config
        self._dir = Path(config.data_dir).expanduser().resolve()
        self._props = self._dir / "server.properties"
        self._pid_file = self._dir / "broker.pid"
        self._proc: subprocess.Popen[bytes] | None = None  # only if we launched it

    @property
    def config(self) -> BrokerConfig:
        """The configuration this broker was created with."""
        return self._config

    def status(self) -> BrokerStatus:
        """Whether the broker recorded in the pid file is alive."""
        pid = self._live_pid()
        return BrokerStatus(pid is not None, pid, self._config.bootstrap, self._dir)

    def start(self, timeout: float = 120.0) -> None:
        """Start the broker (a no-op if it runs) and return once clients can use it."""
        deadline = time.monotonic() + timeout
        if self._live_pid() is not None:
            self._wait_ready(deadline)
            return
        lib = ensure_kafka_jars(self._config.version)
        self._dir.mkdir(parents=True, exist_ok=True)
        for port in (self._config.port, self._config.controller_port):
            if _port_open(port):
                raise BrokerError(f"cannot start Kafka: 127.0.0.1:{port} is already in use")
        self._write_properties()
        self._format_storage(lib)
        self._launch(lib)
        try:
            self._wait_ready(deadline)
        except BaseException:  # incl. Ctrl-C: never leave a half-started broker behind
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker by pid: SIGTERM for a clean shutdown, SIGKILL if it hangs."""
        pid = self._live_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, time.monotonic() + timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_gone(pid, time.monotonic() + 10.0):
                    raise BrokerError(f"Kafka broker (pid {pid}) survived SIGKILL")
        self._pid_file.unlink(missing_ok=True)
        self._proc = None

    def reset(self) -> None:
        """Stop the broker and delete everything in data_dir: topics, offsets, logs."""
        self.stop()
        if not self._dir.is_dir():
            return
        for entry in self._dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _live_pid(self) -> int | None:
        """The pid file's pid if it is our live broker; a stale pid file reads as None."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_broker(pid) else None

    def _is_our_broker(self, pid: int) -> bool:
        """Whether ``pid`` is a live Kafka JVM for our server.properties (pids get reused)."""
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: poll() is exact (and reaps it), whereas /proc/<pid>/cmdline
            # can read empty for a moment while the JVM launcher is still exec-ing.
            return self._proc.poll() is None
        args = _cmdline(pid)
        return _MAIN_CLASS in args and str(self._props) in args

    def _write_properties(self) -> None:
        """Rewrite server.properties from the config, so config changes take effect."""
        lines = [f"{k}={v}" for k, v in self._config.server_properties().items()]
        self._props.write_text("# Written by computeinfra.kafka.broker\n" + "\n".join(lines) + "\n")

    def _cluster_id(self) -> str:
        """The id the storage was (or will be) formatted with, kept across restarts."""
        path = self._dir / "cluster.id"
        while not path.is_file():  # a random UUID, base64url and unpadded, as Kafka's own
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):  # Kafka avoids these too: they read as CLI flags
                path.write_text(cid + "\n")
        return path.read_text().strip()

    def _java(self, lib: Path) -> list[str]:
        """The JVM command line shared by the storage tool and the broker."""
        jvm = [require_tool("java"), f"-Xmx{self._config.heap}", "-XX:+ExitOnOutOfMemoryError"]
        jvm += shlex.split(ToolSettings.from_env().kafka_jvm_opts)
        logs = [f"-Dlog4j2.configurationFile={_LOG4J_CONFIG}", f"-Dkafka.logs.dir={self._dir}"]
        return [*jvm, "-Djava.awt.headless=true", *logs, "-cp", f"{lib}/*"]

    def _format_storage(self, lib: Path) -> None:
        """Format the KRaft log dir once; later starts find meta.properties and skip it."""
        if (self._dir / "kraft" / "meta.properties").is_file():
            return
        # Static voters are named in server.properties; every node formats the same way.
        standalone = [] if self._config.voters else ["--standalone"]
        cmd = [*self._java(lib), "kafka.tools.StorageTool", "format", *standalone, "-g"]
        cmd += ["-t", self._cluster_id(), "-c", str(self._props)]
        run_tool(cmd, f"formatting Kafka storage in {self._dir / 'kraft'}")

    def _launch(self, lib: Path) -> None:
        """Start the JVM in its own session, so a terminal Ctrl-C reaches only our
        launcher, which then stops the broker in order instead of killing it mid-write."""
        with open(self._dir / "broker.out", "wb") as out:
            self._proc = subprocess.Popen(
                [*self._java(lib), _MAIN_CLASS, str(self._props)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
            )
        tmp = self._pid_file.with_suffix(".tmp")
        tmp.write_text(f"{self._proc.pid}\n")
        tmp.replace(self._pid_file)

    def _failure(self, what: str) -> BrokerError:
        """An error carrying the end of both logs: that is where Kafka says why."""
        parts = [f"Kafka broker {what}"]
        for log in (self._dir / "broker.out", self._dir / "server.log"):
            text = log.read_text(errors="replace") if log.is_file() else ""
            parts.append(f"--- {log} ---\n{tail(text) or '(empty)'}")
        return BrokerError("\n".join(parts))

    def _wait_ready(self, deadline: float) -> None:
        """Poll until the port answers and the broker serves metadata for our cluster."""
        while True:
            if self._live_pid() is None:
                code = self._proc.poll() if self._proc is not None else None
                raise self._failure(f"exited during startup (exit code {code})")
            if _port_open(self._config.port) and self._serves_metadata(deadline):
                return
            if time.monotonic() >= deadline:
                raise self._failure(f"not ready at {self._config.bootstrap} in time")
            time.sleep(_POLL_INTERVAL)

    def _serves_metadata(self, deadline: float) -> bool:
        """True once *our* broker (same cluster id, our node registered) answers."""
        # Through our logger: its librdkafka lines must not go to the terminal raw.
        admin = AdminClient(common_config(self._config.bootstrap, "computeinfra-broker-probe"))
        wait = max(0.5, min(5.0, deadline - time.monotonic()))
        try:
            meta = admin.list_topics(timeout=wait)
        except KafkaException:
            return False
        return meta.cluster_id == self._cluster_id() and self._config.node_id in meta.brokers

    def _wait_gone(self, pid: int, deadline: float) -> bool:
        """Poll until the broker process has exited, or the deadline passes."""
        while self._is_our_broker(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_INTERVAL)
        return True
