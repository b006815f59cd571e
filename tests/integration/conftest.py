"""Session fixtures: one real Kafka broker and one real `computeinfra up` for the whole run."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from computeinfra.client import Client
from computeinfra.cluster.connect import read_state
from computeinfra.config import Settings
from computeinfra.kafka.admin import ensure_topics
from computeinfra.kafka.broker import BrokerConfig, LocalBroker
from tests.helpers import REPO, Stack, free_port, wait_for

HERE = Path(__file__).resolve().parent
BLOCKS = 2
STACK_READY_SECONDS = 240
STACK_STOP_SECONDS = 120


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    port = free_port()
    config = BrokerConfig(
        data_dir=tmp_path_factory.mktemp("kafka"), port=port, controller_port=free_port()
    )
    local = LocalBroker(config)
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _stack_env(broker: LocalBroker, root: Path) -> dict[str, str]:
    return {
        "COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap,
        "COMPUTEINFRA_HOME": str(root / "home"),
        "COMPUTEINFRA_RESULTS_ROOT": str(root / "results"),
        "COMPUTEINFRA_INPUT_ROOTS": str(root / "inputs"),
        "COMPUTEINFRA_TASKS": "sample_tasks",
        "COMPUTEINFRA_PARTITIONS": "12",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


@pytest.fixture(scope="session")
def stack(broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    env = _stack_env(broker, root)
    (root / "inputs").mkdir()
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the test process reads the same settings as the stack
    settings = Settings.from_env()
    ensure_topics(settings)
    log = root / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "computeinfra"), "up", "--blocks", str(BLOCKS)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"computeinfra up exited {process.returncode}:\n{log.read_text()}")
        return read_state(settings) is not None

    try:
        wait_for(ready, STACK_READY_SECONDS, "computeinfra up to be ready", interval=0.5)
        yield Stack(settings, env, root / "inputs", root / "results", process, log)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STACK_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[Client]:
    with Client(settings=stack.settings) as session_client:
        yield session_client
