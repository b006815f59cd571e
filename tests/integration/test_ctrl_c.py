"""Ctrl-C at every stage of `computeinfra up` (issue #17, item 3): while the broker
starts, while Ray starts, while the blocks start. Each time `up` exits by itself, with no
traceback, and leaves no process behind (Ray's agents included)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from computeinfra.cluster.connect import read_state
from computeinfra.testing.stack import free_port, settings_under
from tests.helpers import REPO, wait_for
from tests.integration.test_make_run import processes_with

START_SECONDS = 300.0
# A deadline, not a timing: the elapsed time is printed for the record.
STOP_SECONDS = 60.0


def _env(home: Path, marker: str) -> dict[str, str]:
    env = {
        "COMPUTEINFRA_HOME": str(home / "home"),
        "COMPUTEINFRA_KAFKA_PORT": str(free_port()),
        "COMPUTEINFRA_KAFKA_CONTROLLER_PORT": str(free_port()),
        "COMPUTEINFRA_RESULTS_ROOT": str(home / "results"),
        "COMPUTEINFRA_TEST_MARK": marker,
        "COMPUTEINFRA_WEB_PORT": "0",
    }
    for name in ("COMPUTEINFRA_BOOTSTRAP", "COMPUTEINFRA_TASKS", "RAY_ADDRESS"):
        env[name] = ""
    return env


def _broker_starting(log: Path, _env: dict[str, str]) -> bool:
    return "starting Kafka at" in log.read_text()


def _ray_starting(log: Path, _env: dict[str, str]) -> bool:
    return "starting Ray and" in log.read_text()


def _blocks_starting(_log: Path, env: dict[str, str]) -> bool:
    state = read_state(settings_under(env)) or {}
    return "ray_address" in state and not state.get("ready")


@pytest.mark.parametrize(
    "stage", [_broker_starting, _ray_starting, _blocks_starting], ids=["broker", "ray", "blocks"]
)
def test_ctrl_c_at_each_stage_of_up_stops_everything(
    tmp_path: Path, stage: Callable[[Path, dict[str, str]], bool]
) -> None:
    marker = uuid.uuid4().hex
    env = _env(tmp_path, marker)
    log = tmp_path / "up.log"
    cli = REPO / ".venv" / "bin" / "computeinfra"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [str(cli), "up", "--blocks", "1"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the whole group, as from a terminal
        )
    try:
        wait_for(lambda: stage(log, env) or up.poll() is not None, START_SECONDS, stage.__name__)
        assert up.poll() is None, log.read_text()
        pressed = time.monotonic()
        os.killpg(up.pid, signal.SIGINT)
        up.wait(STOP_SECONDS)
        # Exited, not killed by a signal: a Ctrl-C inside ray.init once ended in SIGSEGV.
        assert up.returncode in (0, 130), (up.returncode, log.read_text())
        wait_for(lambda: not processes_with(marker), STOP_SECONDS, "every process to end")
        print(f"{stage.__name__}: all stopped {time.monotonic() - pressed:.1f} s after Ctrl-C")
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
