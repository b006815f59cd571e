"""No hook stops a block: a hook raising on a job becomes that job's failure; one raising
outside a job is logged and counted."""

from __future__ import annotations

import pytest

from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware import HookError, Middleware, MiddlewareChain
from computeinfra.block.middleware.loading import load_middleware
from computeinfra.errors import ConfigError
from computeinfra.tasks.sleep import SleepPayload


class Boom(Middleware):
    def before_dispatch(self, assignment: Assignment) -> None:
        raise RuntimeError("no dispatch today")

    def on_idle(self) -> None:
        raise ValueError("idle failure")


class Counts(Middleware):
    def __init__(self) -> None:
        self.idle = 0
        self.dispatched = 0

    def before_dispatch(self, assignment: Assignment) -> None:
        self.dispatched += 1

    def on_idle(self) -> None:
        self.idle += 1


def job() -> Assignment:
    return Assignment("k", "sleep", SleepPayload(seconds=0), "out", None)


def test_a_job_hook_that_raises_names_the_middleware_and_the_hook() -> None:
    chain = MiddlewareChain([Counts(), Boom()])
    with pytest.raises(HookError) as raised:
        chain.before_dispatch(job())
    assert raised.value.middleware == "Boom" and raised.value.hook == "before_dispatch"
    assert "Boom.before_dispatch raised RuntimeError: no dispatch today" in str(raised.value)
    assert chain.errors == 1


def test_a_hook_outside_a_job_is_counted_and_the_others_still_run() -> None:
    counts = Counts()
    chain = MiddlewareChain([Boom(), counts])
    chain.on_idle()
    chain.on_idle()
    assert counts.idle == 2
    assert chain.errors == 2


class OldStyle(Middleware):
    """Written for a release that had ``before_commit``."""

    def before_commit(self) -> None:
        pass


def test_user_middleware_is_loaded_by_name() -> None:
    loaded = load_middleware(["tests.unit.block.test_middleware_chain:Counts"])
    assert [type(m).__name__ for m in loaded] == ["Counts"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_colon", "is not package.module:Class"),
        ("nowhere.at.all:Thing", "cannot load"),
        ("tests.unit.block.test_middleware_chain:job", "is not a subclass"),
        ("tests.unit.block.test_middleware_chain:OldStyle", "before_commit, a hook that no"),
    ],
)
def test_bad_middleware_names_are_clear(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_middleware([spec])
