"""The outbox's kept thread (``block/sidecar.py``): calls run in order, beside the caller."""

from __future__ import annotations

import threading

from computeinfra.block.sidecar import Sidecar


def test_calls_run_in_order_on_one_thread_beside_the_caller() -> None:
    sidecar = Sidecar("test-sidecar")
    ran: list[tuple[int, str]] = []
    events = [
        sidecar.run(lambda i=i: ran.append((i, threading.current_thread().name))) for i in range(5)
    ]
    assert all(event.wait(5.0) for event in events)
    assert ran == [(i, "test-sidecar") for i in range(5)]
    sidecar.stop()


def test_a_raising_call_is_done_and_the_next_still_runs() -> None:
    sidecar = Sidecar("test-sidecar")

    def fails() -> None:
        raise RuntimeError("a bug in a call")

    assert sidecar.run(fails).wait(5.0)
    after: list[int] = []
    assert sidecar.run(lambda: after.append(1)).wait(5.0)
    assert after == [1]
    sidecar.stop()


def test_a_stuck_call_holds_its_sidecar_and_stop_ends_it_once_it_returns() -> None:
    release = threading.Event()
    stuck = Sidecar("stuck-sidecar")
    held = stuck.run(lambda: release.wait(10.0))
    assert not held.wait(0.05)  # still inside the call
    stuck.stop()
    replacement = Sidecar("replacement")  # what the outbox does: another thread meanwhile
    ran: list[int] = []
    assert replacement.run(lambda: ran.append(1)).wait(5.0)
    assert ran == [1]
    release.set()
    assert held.wait(5.0)
    stuck._thread.join(5.0)
    assert not stuck._thread.is_alive()
    replacement.stop()
