"""Settings, read once from ``COMPUTEINFRA_*`` environment variables.

Paths are made absolute when read, because the same ``Settings`` object is shipped to Ray
actors whose working directory is not the caller's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from computeinfra.errors import ConfigError

__all__ = ["DEFAULT_BOOTSTRAP", "Settings"]

DEFAULT_KAFKA_PORT = 9092
DEFAULT_BOOTSTRAP = f"127.0.0.1:{DEFAULT_KAFKA_PORT}"


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _env_optional_int(name: str, minimum: int) -> int | None:
    """A whole number, or ``None`` when unset: the default is then worked out later."""
    return _env_int(name, 0, minimum) if os.environ.get(name) else None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default.expanduser().resolve()


def _env_list(name: str, sep: str = ",") -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(sep) if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a client, supervisor or worker needs to agree on.

    ``bootstrap`` is ``None`` when no external Kafka was named: the local broker is used.
    """

    bootstrap: str | None = None
    home: Path = field(default_factory=lambda: Path("~/.local/share/computeinfra").expanduser())
    kafka_port: int = DEFAULT_KAFKA_PORT
    kafka_controller_port: int = DEFAULT_KAFKA_PORT + 1
    partitions: int = 12
    # None: as many replicas as the cluster has brokers, up to 3; min.insync.replicas then
    # 2 with 3 replicas or more, else 1. Nodes of the local broker: None is 1, or as recorded.
    replication: int | None = None
    min_insync: int | None = None
    kafka_nodes: int | None = None
    # Partitions of each lane topic (placement.py). Few: the group balances partition counts
    # over all a member reads, so large lanes would draw their blocks off pendingJobs.
    lane_partitions: int = 1
    # The address this host's Ray node binds and advertises: loopback unless a real
    # multi-host cluster says otherwise (docs/deploy.md).
    node_ip: str = "127.0.0.1"
    results_root: Path = field(default_factory=lambda: Path("results").resolve())
    input_roots: tuple[Path, ...] = ()
    task_modules: tuple[str, ...] = ()
    group: str = "computeinfra-supervisors"
    namespace: str = "computeinfra"
    max_request_bytes: int = 512 * 1024
    max_attempts: int = 3
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    poll_seconds: float = 0.2
    # Hot path: attempts kept queued at each worker, records taken per poll, and how long a
    # ready answer may wait for others to share its transaction.
    pipeline_depth: int = 4
    consume_batch: int = 200
    commit_window: float = 0.01

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read the environment; ``overrides`` (e.g. from CLI flags) win over it."""
        results_root = _env_path("COMPUTEINFRA_RESULTS_ROOT", Path("results"))
        roots_raw = _env_list("COMPUTEINFRA_INPUT_ROOTS", os.pathsep)
        input_roots = (
            tuple(Path(p).expanduser().resolve() for p in roots_raw)
            if roots_raw
            else (Path.cwd().resolve(), results_root)
        )
        port = _env_int("COMPUTEINFRA_KAFKA_PORT", DEFAULT_KAFKA_PORT, 1)
        settings = cls(
            bootstrap=os.environ.get("COMPUTEINFRA_BOOTSTRAP") or None,
            home=_env_path("COMPUTEINFRA_HOME", Path("~/.local/share/computeinfra")),
            kafka_port=port,
            kafka_controller_port=_env_int("COMPUTEINFRA_KAFKA_CONTROLLER_PORT", port + 1, 1),
            partitions=_env_int("COMPUTEINFRA_PARTITIONS", 12, 1),
            replication=_env_optional_int("COMPUTEINFRA_REPLICATION", 1),
            min_insync=_env_optional_int("COMPUTEINFRA_MIN_INSYNC", 1),
            kafka_nodes=_env_optional_int("COMPUTEINFRA_KAFKA_NODES", 1),
            lane_partitions=_env_int("COMPUTEINFRA_LANE_PARTITIONS", 1, 1),
            node_ip=os.environ.get("COMPUTEINFRA_NODE_IP") or "127.0.0.1",
            results_root=results_root,
            input_roots=input_roots,
            task_modules=_env_list("COMPUTEINFRA_TASKS"),
            group=os.environ.get("COMPUTEINFRA_GROUP") or "computeinfra-supervisors",
            namespace=os.environ.get("COMPUTEINFRA_NAMESPACE") or "computeinfra",
            max_request_bytes=_env_int("COMPUTEINFRA_MAX_REQUEST_BYTES", 512 * 1024, 1),
            max_attempts=_env_int("COMPUTEINFRA_MAX_ATTEMPTS", 3, 1),
            retry_backoff=_env_float("COMPUTEINFRA_RETRY_BACKOFF", 0.5),
            retry_backoff_max=_env_float("COMPUTEINFRA_RETRY_BACKOFF_MAX", 30.0),
            poll_seconds=_env_float("COMPUTEINFRA_POLL_SECONDS", 0.2),
            pipeline_depth=_env_int("COMPUTEINFRA_PIPELINE_DEPTH", 4, 1),
            consume_batch=_env_int("COMPUTEINFRA_CONSUME_BATCH", 200, 1),
            commit_window=_env_float("COMPUTEINFRA_COMMIT_WINDOW_MS", 10.0) / 1000,
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap list to connect to: the named cluster or the local broker."""
        return self.bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_local_broker(self) -> bool:
        return self.bootstrap is None

    @property
    def kafka_data_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def run_dir(self) -> Path:
        """Where a running ``computeinfra up`` leaves its address for other commands."""
        return self.home / "run"
