"""The outbox's kept thread (``block/sidecar.py``): a call runs beside the caller's own
work, on one kept thread; a call left running never holds up the next."""

from __future__ import annotations

import threading

import pytest

from computeinfra.block.sidecar import Sidecar


def _threads(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name)


def test_calls_run_on_one_kept_thread_beside_the_callers_work() -> None:
    sidecar = Sidecar("test-sidecar-kept")
    seen: list[tuple[str, str]] = []
    for _ in range(5):
        ran = sidecar.run(
            lambda: seen.append(("call", threading.current_thread().name)),
            lambda: seen.append(("meanwhile", threading.current_thread().name)),
            5.0,
        )
        assert ran
    calls = [name for what, name in seen if what == "call"]
    assert calls == ["test-sidecar-kept"] * 5
    assert all(name != "test-sidecar-kept" for what, name in seen if what == "meanwhile")
    assert _threads("test-sidecar-kept") == 1  # not a thread per call
    sidecar.stop()


def test_a_raising_call_ends_and_the_next_still_runs() -> None:
    sidecar = Sidecar("test-sidecar-raising")

    def fails() -> None:
        raise RuntimeError("a bug in a call")

    assert sidecar.run(fails, lambda: None, 5.0)
    after: list[int] = []
    assert sidecar.run(lambda: after.append(1), lambda: None, 5.0)
    assert after == [1]
    sidecar.stop()


def test_a_stuck_call_keeps_its_thread_and_the_next_call_gets_another() -> None:
    release = threading.Event()
    sidecar = Sidecar("test-sidecar-stuck")
    assert not sidecar.run(lambda: release.wait(30.0), lambda: None, 0.05)  # past its deadline
    ran: list[int] = []
    assert sidecar.run(lambda: ran.append(1), lambda: None, 5.0)  # not behind the stuck one
    assert ran == [1]
    assert _threads("test-sidecar-stuck") == 2
    release.set()  # the stuck call returns: its thread ends
    sidecar.stop()
    for thread in [t for t in threading.enumerate() if t.name == "test-sidecar-stuck"]:
        thread.join(5.0)
    assert _threads("test-sidecar-stuck") == 0


def test_when_the_callers_work_raises_a_call_still_running_holds_up_nothing() -> None:
    release = threading.Event()
    sidecar = Sidecar("test-sidecar-meanwhile")

    def raises() -> None:
        raise ValueError("the delivery failed")

    with pytest.raises(ValueError, match="the delivery failed"):
        sidecar.run(lambda: release.wait(30.0), raises, 5.0)
    ran: list[int] = []
    assert sidecar.run(lambda: ran.append(1), lambda: None, 5.0)
    assert ran == [1]
    release.set()
    sidecar.stop()
