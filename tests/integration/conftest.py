"""Session fixtures: one real Kafka broker and one real `computeinfra up` for the whole run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from computeinfra.client import Client
from computeinfra.testing.stack import DevStack, dev_stack

HERE = Path(__file__).resolve().parent
BLOCKS = 2


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    root = tmp_path_factory.mktemp("stack")
    (root / "flags").mkdir()
    extra = {
        "COMPUTEINFRA_TASKS": "sample_tasks",
        "COMPUTEINFRA_MIDDLEWARE": "sample_middleware:SampleHooks",
        "SAMPLE_MIDDLEWARE_FLAGS": str(root / "flags"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    with dev_stack(root, BLOCKS, extra) as running:
        saved = {name: os.environ.get(name) for name in running.env}
        os.environ.update(running.env)  # the test process reads the same settings as the stack
        try:
            yield running
        finally:
            if ray.is_initialized():
                ray.shutdown()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture(scope="session")
def client(stack: DevStack) -> Iterator[Client]:
    with Client(settings=stack.settings) as session_client:
        yield session_client
