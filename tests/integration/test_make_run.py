"""`make run` as a newcomer runs it: it starts everything, serves a job, and Ctrl-C leaves
no process behind. The broker's data survives the restart; `kafka reset` wipes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from computeinfra.testing.stack import free_port
from tests.helpers import REPO, run_cli, wait_for
from tests.unit.test_tasks import make_image

READY_SECONDS = 300
STOP_SECONDS = 120


def processes_with(marker: str) -> list[int]:
    """Pids whose environment carries ``marker``: every descendant, even re-parented ones."""
    found = []
    needle = f"COMPUTEINFRA_TEST_MARK={marker}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if needle in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@dataclass
class MakeRun:
    env: dict[str, str]
    completion: dict
    results: Path
    exit_code: int
    leftovers: list[int]
    output: str


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    home = tmp_path_factory.mktemp("make-run")
    marker = uuid.uuid4().hex
    port = free_port()
    env = {
        "COMPUTEINFRA_HOME": str(home / "home"),
        "COMPUTEINFRA_KAFKA_PORT": str(port),
        "COMPUTEINFRA_KAFKA_CONTROLLER_PORT": str(free_port()),
        "COMPUTEINFRA_RESULTS_ROOT": str(home / "results"),
        "COMPUTEINFRA_INPUT_ROOTS": str(home / "inputs"),
        "COMPUTEINFRA_TEST_MARK": marker,
        "COMPUTEINFRA_WEB_PORT": str(free_port()),
        "BLOCKS": "1",
    }
    for name in ("COMPUTEINFRA_BOOTSTRAP", "COMPUTEINFRA_TASKS", "RAY_ADDRESS"):
        env[name] = ""
    (home / "inputs").mkdir()
    image = make_image(home / "inputs" / "demo.png", (640, 480))
    log = home / "make-run.log"
    with log.open("wb") as out:
        # A new session, so the test can send Ctrl-C to the whole group as a terminal would.
        make = subprocess.Popen(
            ["make", "run"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            if make.poll() is not None:
                raise AssertionError(f"make run exited {make.returncode}:\n{log.read_text()}")
            return "ready" in log.read_text()

        wait_for(ready, READY_SECONDS, "make run to be ready", interval=0.5)
        payload = json.dumps({"images": [str(image)], "quality": 50})
        submitted = run_cli(
            "submit",
            "image-compression",
            "--payload",
            payload,
            "--result-dir",
            "demo",
            "--wait",
            "--timeout",
            "120",
            env=env,
        )
        assert submitted.returncode == 0, submitted.stderr
        page = httpx.get(f"http://127.0.0.1:{env['COMPUTEINFRA_WEB_PORT']}/", timeout=30)
        assert page.status_code == 200 and "computeinfra" in page.text  # make run serves the app
        os.killpg(make.pid, signal.SIGINT)
        make.wait(STOP_SECONDS)
        leftovers = []
        try:
            wait_for(lambda: not processes_with(marker), STOP_SECONDS, "every process to exit")
        except AssertionError:
            leftovers = processes_with(marker)
        yield MakeRun(
            env,
            json.loads(submitted.stdout),
            home / "results",
            make.returncode,
            leftovers,
            log.read_text(),
        )
    finally:
        for pid in processes_with(marker):  # never leave a stray process to the next test
            os.kill(pid, signal.SIGKILL)


def test_make_run_serves_an_image_compression_job(make_run: MakeRun) -> None:
    assert make_run.completion["status"] == "succeeded"
    (output,) = make_run.completion["outputs"]
    assert (make_run.results / output["path"]).is_file()
    assert output["compressed_bytes"] < output["original_bytes"]


def test_ctrl_c_leaves_no_process_behind(make_run: MakeRun) -> None:
    assert make_run.leftovers == [], make_run.output
    assert "stopped." in make_run.output


def test_broker_data_survives_a_restart_and_reset_wipes_it(make_run: MakeRun) -> None:
    env = make_run.env
    key = make_run.completion["key"]
    run_cli("kafka", "start", env=env, check=True)
    try:
        state = json.loads(run_cli("status", key, env=env, check=True).stdout)
        assert state["state"] == "succeeded"
        run_cli("kafka", "reset", "--yes", env=env, check=True)
        assert json.loads(run_cli("kafka", "status", env=env).stdout)["running"] is False
        run_cli("kafka", "start", env=env, check=True)
        state = json.loads(run_cli("status", key, env=env).stdout)
        assert state["state"] == "unknown"
    finally:
        run_cli("kafka", "stop", env=env, check=True)
    assert json.loads(run_cli("kafka", "status", env=env).stdout)["running"] is False
