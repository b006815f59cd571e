"""The README's user-task example loads and runs as documented."""

import sys
from pathlib import Path

import pytest

from computeinfra.errors import RequestError
from computeinfra.tasks import TaskContext, load_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_readme_user_task_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    registry = load_registry(["my_tasks"])
    shout = registry.get("shout")
    (tmp_path / "out").mkdir()
    ctx = TaskContext(key="k", attempt=1, results_root=tmp_path, result_dir=tmp_path / "out")
    assert shout(shout.validate({"text": "hi", "times": 2}), ctx) == {"characters": 5}
    assert (tmp_path / "out" / "shout.txt").read_text() == "HI\nHI"
    with pytest.raises(RequestError, match="payload.times"):
        shout.validate({"text": "hi", "times": 0})
    sys.modules.pop("my_tasks", None)


def test_readme_middleware_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from computeinfra.block.jobs import Assignment
    from computeinfra.block.middleware import HookError, MiddlewareChain
    from computeinfra.block.middleware.loading import load_middleware
    from computeinfra.tasks.sleep import SleepPayload

    monkeypatch.syspath_prepend(str(EXAMPLES))
    chain = MiddlewareChain(load_middleware(["middleware:AuditTrail"]))
    chain.before_dispatch(Assignment("a", "sleep", SleepPayload(seconds=0), "out", None))
    blocked = Assignment("b", "word-count", SleepPayload(seconds=0), "out", None)
    with pytest.raises(HookError, match="AuditTrail.before_dispatch raised PermissionError"):
        chain.before_dispatch(blocked)
    sys.modules.pop("middleware", None)
