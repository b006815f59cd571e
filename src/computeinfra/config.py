"""Settings: the one module that reads the environment (``COMPUTEINFRA_*``, ``RAY_ADDRESS``).

Every variable is listed, with its default and meaning, in docs/configuration.md; a unit
test fails when one read here is missing there, and another when the environment is read
anywhere else in ``src/``. Paths are made absolute when read, because the same ``Settings``
object is shipped to Ray actors whose working directory is not the caller's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from computeinfra.errors import ConfigError

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "RUN_MARK",
    "Settings",
    "ToolSettings",
    "child_environment",
    "mark_run",
    "prepare_process_environment",
    "ray_keeps_loopback",
]

DEFAULT_KAFKA_PORT = 9092
DEFAULT_BOOTSTRAP = f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
DEFAULT_WEB_PORT = 8080
UPLOADS_FOLDER = "uploads"
# Ray reads these once, when it is first imported (see ``prepare_process_environment``).
RAY_DEFAULTS = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "token",
    # Ray's log monitor lists the log folder every 0.1 s while it holds under this many
    # files, else every 0.5 s: at 0, every 0.5 s. Idle, that halved its CPU (0.6 % of a
    # core to 0.3 %, docs/performance.md); a new log file is still followed within 0.5 s.
    "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD": "0",
}


class _Env:
    """Typed reads of one environment mapping, each error naming the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str = "") -> str:
        return self._environ.get(name) or default

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.text(name).strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise ConfigError(f"{name}={value} must be at least {minimum}")
        return value

    def optional_integer(self, name: str, minimum: int) -> int | None:
        """A whole number, or ``None`` when unset: the default is then worked out later."""
        return self.integer(name, 0, minimum) if self.text(name).strip() else None

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        raw = self.text(name).strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if value < minimum:
            raise ConfigError(f"{name}={value:g} must be at least {minimum:g}")
        return value

    def path(self, name: str, default: Path | None) -> Path | None:
        raw = self.text(name)
        chosen = Path(raw) if raw else default
        return chosen.expanduser().resolve() if chosen is not None else None

    def names(self, name: str, sep: str = ",") -> tuple[str, ...]:
        return tuple(part.strip() for part in self.text(name).split(sep) if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a client, supervisor, worker or the web app needs to agree on.

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
    ray_address: str | None = None
    # This host's name in its blocks' Kafka ids (transactional and group member ids); None:
    # the hostname. Set it where hostnames change between restarts (containers).
    host_id: str | None = None
    # Blocks `up` starts when --blocks is not given; None: one per core.
    blocks: int | None = None
    results_root: Path = field(default_factory=lambda: Path("results").resolve())
    input_roots: tuple[Path, ...] = ()
    task_modules: tuple[str, ...] = ()
    # User middleware, ``package.module:Class``, run after the built-in ones.
    middleware: tuple[str, ...] = ()
    group: str = "computeinfra-supervisors"
    namespace: str = "computeinfra"
    max_request_bytes: int = 512 * 1024
    # The largest JSON ``result`` a task may return; big outputs belong in files.
    max_result_bytes: int = 256 * 1024
    max_attempts: int = 3
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    poll_seconds: float = 0.2
    # Hot path: attempts kept queued at each worker, records taken per poll, and how long a
    # ready answer may wait for others to share its transaction.
    pipeline_depth: int = 4
    consume_batch: int = 200
    # Worker processes per block (0: one per core the block owns).
    concurrency: int = 0
    # Once every worker of a block has been on one job this long, its queued jobs go to
    # another block (0: never).
    handover_seconds: float = 2.0
    # How long a stopping block lets its running jobs end (None: the longest running job's
    # remaining time limit).
    drain_seconds: float | None = None
    # How long a cancelled running job has to stop by itself (``ctx.cancelled``) before its
    # worker process is killed.
    cancel_grace: float = 1.0
    # How long a ready answer may wait for others to share its transaction: at least
    # ``commit_window``, up to ``commit_window_max`` for jobs that ran long enough
    # (``block/commits.py``).
    commit_window: float = 0.01
    commit_window_max: float = 0.1
    # How long after an attempt is sent to a worker its ``running`` status is published
    # (a shorter job gets no status record, only its completion).
    running_status_after: float = 0.5
    # A task whose recent run time is under this shares a worker call with others.
    quick_job_seconds: float = 0.025
    # How long a view of the Ray cluster's nodes is reused by placement.
    nodes_cache_seconds: float = 2.0
    # How long a failed actor call waits for Ray's word on why (Ray's default is 1,000 ms).
    ray_death_info_wait_ms: int = 100
    # The web app: port (0: none), uploads folder (None: <first input root>/uploads),
    # the upload size limit, jobs kept in the live list, records read back per partition.
    web_port: int = DEFAULT_WEB_PORT
    uploads_root: Path | None = None
    max_upload_bytes: int = 32 * 1024 * 1024
    web_recent_jobs: int = 5000
    web_tail_records: int = 500

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``environ`` (the process environment by default); ``overrides`` (e.g. from
        CLI flags) win over it."""
        env = _Env(os.environ if environ is None else environ)
        results_root = env.path("COMPUTEINFRA_RESULTS_ROOT", Path("results"))
        assert results_root is not None
        roots = env.names("COMPUTEINFRA_INPUT_ROOTS", os.pathsep)
        port = env.integer("COMPUTEINFRA_KAFKA_PORT", DEFAULT_KAFKA_PORT, 1)
        settings = cls(
            bootstrap=env.text("COMPUTEINFRA_BOOTSTRAP") or None,
            home=env.path("COMPUTEINFRA_HOME", Path("~/.local/share/computeinfra")) or Path(),
            kafka_port=port,
            kafka_controller_port=env.integer("COMPUTEINFRA_KAFKA_CONTROLLER_PORT", port + 1, 1),
            input_roots=(
                tuple(Path(p).expanduser().resolve() for p in roots)
                if roots
                else (Path.cwd().resolve(), results_root)
            ),
            results_root=results_root,
            **_cluster_fields(env),
            **_hot_path_fields(env),
            **_web_fields(env),
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
    def journal_dir(self) -> Path:
        """Where each worker process lists the files its jobs begin to write."""
        return self.home / "journals"

    @property
    def run_dir(self) -> Path:
        """Where a running ``computeinfra up`` leaves its address for other commands."""
        return self.home / "run"

    @property
    def default_blocks(self) -> int:
        return self.blocks or os.cpu_count() or 1


def _cluster_fields(env: _Env) -> dict[str, Any]:
    return {
        "partitions": env.integer("COMPUTEINFRA_PARTITIONS", 12, 1),
        "replication": env.optional_integer("COMPUTEINFRA_REPLICATION", 1),
        "min_insync": env.optional_integer("COMPUTEINFRA_MIN_INSYNC", 1),
        "kafka_nodes": env.optional_integer("COMPUTEINFRA_KAFKA_NODES", 1),
        "lane_partitions": env.integer("COMPUTEINFRA_LANE_PARTITIONS", 1, 1),
        "node_ip": env.text("COMPUTEINFRA_NODE_IP", "127.0.0.1"),
        "ray_address": env.text("RAY_ADDRESS") or None,
        "host_id": env.text("COMPUTEINFRA_HOST_ID") or None,
        "blocks": env.optional_integer("COMPUTEINFRA_BLOCKS", 1),
        "task_modules": env.names("COMPUTEINFRA_TASKS"),
        "middleware": env.names("COMPUTEINFRA_MIDDLEWARE"),
        "group": env.text("COMPUTEINFRA_GROUP", "computeinfra-supervisors"),
        "namespace": env.text("COMPUTEINFRA_NAMESPACE", "computeinfra"),
        "nodes_cache_seconds": env.number("COMPUTEINFRA_NODES_CACHE_SECONDS", 2.0),
        "ray_death_info_wait_ms": env.integer("COMPUTEINFRA_RAY_DEATH_INFO_WAIT_MS", 100),
    }


def _hot_path_fields(env: _Env) -> dict[str, Any]:
    return {
        "max_request_bytes": env.integer("COMPUTEINFRA_MAX_REQUEST_BYTES", 512 * 1024, 1),
        "max_result_bytes": env.integer("COMPUTEINFRA_MAX_RESULT_BYTES", 256 * 1024, 1),
        "max_attempts": env.integer("COMPUTEINFRA_MAX_ATTEMPTS", 3, 1),
        "retry_backoff": env.number("COMPUTEINFRA_RETRY_BACKOFF", 0.5),
        "retry_backoff_max": env.number("COMPUTEINFRA_RETRY_BACKOFF_MAX", 30.0),
        "poll_seconds": env.number("COMPUTEINFRA_POLL_SECONDS", 0.2),
        "pipeline_depth": env.integer("COMPUTEINFRA_PIPELINE_DEPTH", 4, 1),
        "consume_batch": env.integer("COMPUTEINFRA_CONSUME_BATCH", 200, 1),
        "concurrency": env.integer("COMPUTEINFRA_CONCURRENCY", 0, 0),
        "handover_seconds": env.number("COMPUTEINFRA_HANDOVER_SECONDS", 2.0),
        "drain_seconds": (
            env.number("COMPUTEINFRA_DRAIN_SECONDS", 0.0)
            if env.text("COMPUTEINFRA_DRAIN_SECONDS").strip()
            else None
        ),
        "cancel_grace": env.number("COMPUTEINFRA_CANCEL_GRACE_SECONDS", 1.0),
        "commit_window": env.number("COMPUTEINFRA_COMMIT_WINDOW_MS", 10.0) / 1000,
        "commit_window_max": env.number("COMPUTEINFRA_COMMIT_WINDOW_MAX_MS", 100.0) / 1000,
        "running_status_after": env.number("COMPUTEINFRA_RUNNING_STATUS_AFTER_MS", 500.0) / 1000,
        "quick_job_seconds": env.number("COMPUTEINFRA_QUICK_JOB_MS", 25.0) / 1000,
    }


def _web_fields(env: _Env) -> dict[str, Any]:
    return {
        "web_port": env.integer("COMPUTEINFRA_WEB_PORT", DEFAULT_WEB_PORT),
        "uploads_root": env.path("COMPUTEINFRA_UPLOADS_ROOT", None),
        "max_upload_bytes": env.integer("COMPUTEINFRA_MAX_UPLOAD_BYTES", 32 * 1024 * 1024, 1),
        "web_recent_jobs": env.integer("COMPUTEINFRA_WEB_RECENT_JOBS", 5000, 1),
        "web_tail_records": env.integer("COMPUTEINFRA_WEB_TAIL_RECORDS", 500, 0),
    }


@dataclass(frozen=True)
class ToolSettings:
    """Settings of the tooling around the system (the local broker, its jars, client
    security), read where no ``Settings`` is at hand."""

    kafka_version: str = "4.1.1"
    cache: Path = field(default_factory=lambda: Path.home() / ".cache" / "computeinfra")
    # The local broker shares a small machine with the cluster it serves. Measured on 2
    # cores: the C2 JIT compiler's threads used more CPU than the broker's request handling
    # while 400 images were compressed, and C1 alone with the serial collector took no-op
    # throughput from 1,300 to 2,300 jobs/s. A broker on its own machine may want defaults.
    kafka_jvm_opts: str = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    kafka_client_config: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ToolSettings:
        env = _Env(os.environ if environ is None else environ)
        defaults = cls()
        return cls(
            kafka_version=env.text("COMPUTEINFRA_KAFKA_VERSION", defaults.kafka_version),
            cache=env.path("COMPUTEINFRA_CACHE", defaults.cache) or defaults.cache,
            kafka_jvm_opts=env.text("COMPUTEINFRA_KAFKA_JVM_OPTS", defaults.kafka_jvm_opts),
            kafka_client_config=env.path("COMPUTEINFRA_KAFKA_CONFIG", None),
        )


def prepare_process_environment() -> None:
    """Tell Ray, before it is imported: bind to and advertise loopback only (a single-host
    cluster), send no usage statistics, list its log folder less often, and require the
    token in ~/.ray/auth_token from every process that connects (set explicitly so the CLI,
    which joins, agrees with `up`, which starts). Each can be overridden from the environment."""
    for name, value in RAY_DEFAULTS.items():
        os.environ.setdefault(name, value)


# Set by `computeinfra up` in its own environment, so every process it starts carries it.
RUN_MARK = "COMPUTEINFRA_RUN_ID"


def mark_run(run_id: str) -> None:
    """Mark this process's environment, inherited by all it starts (``runtime/reap.py``)."""
    os.environ[RUN_MARK] = run_id


def ray_keeps_loopback() -> bool:
    """Whether Ray is kept on loopback (the user did not ask for a multi-host cluster)."""
    return os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process of ours: this one's, plus ``extra``."""
    return {**os.environ, **(extra or {})}


# Importing computeinfra imports this module first, so this runs before anything of ours
# imports Ray.
prepare_process_environment()
