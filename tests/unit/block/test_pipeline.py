"""The attempt queue's accounting, against an in-process worker that runs calls in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from computeinfra.block.calls import CallGate, next_call_id, sender_of
from computeinfra.block.jobs import Assignment, Failure, NotRun, Outcome, WorkerLost
from computeinfra.block.pipeline import AttemptQueue
from computeinfra.protocol import FailureKind, Status


class _Payload(BaseModel):
    pass


def _assignment(key: str, time_limit: float | None = 5.0) -> Assignment:
    return Assignment(key, "t", _Payload(), "out", None, time_limit=time_limit)


class _Call:
    def __init__(self, assignments: list[Assignment], call_id: int) -> None:
        self.assignments = assignments
        self.call_id = call_id
        self.done = threading.Event()
        self.results: list[Outcome] = []
        self.lost: str | None = None
        self.broken: str | None = None
        self.begun = False
        self.skipped = False
        self.jobs_begun = 0
        self.cut_at: int | None = None

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def outcome(self, timeout: float | None = None) -> list[Outcome]:
        if not self.done.wait(timeout):
            raise TimeoutError("not yet")
        if self.lost is not None:
            raise WorkerLost(self.lost)
        if self.broken is not None:  # the call failed, not the task: e.g. Ray cannot move it
            raise RuntimeError(self.broken)
        return self.results


class SerialWorker:
    """Runs submitted calls one at a time, like a Ray actor; ``die_on`` kills it mid-call."""

    def __init__(
        self,
        die_on: set[str] | None = None,
        hang_on: set[str] | None = None,
        break_on: set[str] | None = None,
    ) -> None:
        self.die_on = die_on or set()
        self.break_on = break_on or set()
        self.hang_on = hang_on or set()
        self.ran: list[str] = []
        self.queue: list[_Call] = []
        self.kills = 0
        self.calls = 0

    def submit(self, assignments: list[Assignment]) -> _Call:
        self.calls += 1
        call = _Call(assignments, self.calls)
        self.queue.append(call)
        return call

    def cut(self, call_ids: list[int], timeout: float) -> dict[int, int]:
        kept = {}
        for call in self.queue:
            if call.call_id in call_ids:
                call.skipped = not call.begun
                call.cut_at = call.jobs_begun
                kept[call.call_id] = call.jobs_begun
        return kept

    def step(self) -> None:
        """Run queued calls until one dies or hangs; a death fails every queued call."""
        while self.queue:
            call = self.queue[0]
            if call.skipped:
                self.queue.pop(0)
                call.done.set()
                continue
            call.begun = True
            for index, assignment in enumerate(call.assignments):
                if index < len(call.results):
                    continue  # ran before this call hung
                if call.cut_at is not None and index >= call.cut_at:
                    break
                call.jobs_begun = index + 1
                if assignment.key in self.hang_on:
                    self.hang_on.discard(assignment.key)
                    return
                self.ran.append(assignment.key)
                if assignment.key in self.die_on:
                    self.die_on.discard(assignment.key)
                    self.kill()
                    self.kills -= 1  # a death, not a kill
                    return
                if assignment.key in self.break_on:
                    call.broken = f"cannot return the outcome of {assignment.key}"
                call.results.append(Outcome(status=Status.SUCCEEDED, started_at=time.time()))
            self.queue.pop(0)
            call.done.set()

    def kill(self) -> None:
        self.kills += 1
        for queued in self.queue:
            queued.lost = "killed"
            queued.done.set()
        self.queue.clear()

    def describe(self, timeout: float) -> dict[str, Any]:
        return {"pid": 1}


def test_results_come_back_in_dispatch_order() -> None:
    worker = SerialWorker()
    queue = AttemptQueue(worker)
    queue.send([_assignment("a"), _assignment("b")])
    queue.send([_assignment("c")])
    worker.step()
    assert [queue.collect().assignment.key for _ in range(3)] == ["a", "b", "c"]
    assert len(queue) == 0


def test_a_lost_attempt_resends_only_the_ones_behind_it() -> None:
    worker = SerialWorker(die_on={"b"})
    lost: list[int] = []
    queue = AttemptQueue(worker, on_worker_lost=lambda: lost.append(1))
    for key in "abcd":
        queue.send([_assignment(key)])
    worker.step()  # a succeeds, b kills the worker, c and d fail without running
    first, second = queue.collect(), queue.collect()
    assert isinstance(first.result, Outcome)
    assert isinstance(second.result, Failure) and second.result.type == "WorkerLost"
    assert lost == [1]
    assert [c.assignments[0].key for c in worker.queue] == ["c", "d"]  # sent again, same attempt
    worker.step()
    rest = queue.drain()
    assert [r.assignment.key for r in rest] == ["c", "d"]
    assert all(isinstance(r.result, Outcome) and r.assignment.attempt == 1 for r in rest)
    assert worker.ran == ["a", "b", "c", "d"]


def test_an_attempt_past_its_time_limit_kills_the_worker() -> None:
    worker = SerialWorker(hang_on={"a"})
    queue = AttemptQueue(worker)
    queue.send([_assignment("a", time_limit=0.05)])
    queue.send([_assignment("b")])
    worker.step()
    timed_out = queue.collect()
    assert isinstance(timed_out.result, Failure)
    assert timed_out.result.type == "TimeLimitExceeded"
    assert worker.kills == 1
    worker.step()
    assert isinstance(queue.collect().result, Outcome)


def test_idle_is_offered_the_wait_while_the_worker_is_busy() -> None:
    worker = SerialWorker()
    queue = AttemptQueue(worker)
    queue.send([_assignment("a")])
    calls: list[float] = []

    def idle(deadline: float) -> float:
        calls.append(deadline)
        worker.step()  # the other work done while waiting lets the worker finish
        return 1.0

    assert isinstance(queue.collect(idle).result, Outcome)
    assert len(calls) == 1 and calls[0] > time.monotonic()


def _stepping(worker: SerialWorker) -> Callable[[float], float]:
    def idle(deadline: float) -> float:
        worker.step()  # the worker runs while its supervisor waits
        return 1.0

    return idle


def test_a_lost_call_of_several_resends_each_alone_and_counts_none() -> None:
    worker = SerialWorker(die_on={"b"})
    queue = AttemptQueue(worker)
    queue.send([_assignment("a"), _assignment("b"), _assignment("c")])
    queue.send([_assignment("d")])
    results = [queue.collect(_stepping(worker)) for _ in range(4)]
    assert [r.assignment.key for r in results] == ["a", "b", "c", "d"]
    assert all(isinstance(r.result, Outcome) for r in results)
    assert worker.ran == ["a", "b", "a", "b", "c", "d"]  # a ran again: its answer was lost


def test_the_job_that_kills_its_worker_alone_is_counted() -> None:
    worker = SerialWorker(die_on={"b"})
    queue = AttemptQueue(worker)
    queue.send([_assignment("a"), _assignment("b")])
    worker.step()  # the pair dies; each will be sent again alone
    worker.die_on = {"b"}
    first, second = (queue.collect(_stepping(worker)) for _ in range(2))
    assert isinstance(first.result, Outcome)
    assert isinstance(second.result, Failure) and second.result.type == "WorkerLost"


def test_a_call_that_fails_outside_its_task_fails_its_jobs_alone() -> None:
    # Before: the call stayed at the head of the queue and every later job was answered
    # with its error (up to the whole batch committed as "internal error").
    worker = SerialWorker(break_on={"b"})
    queue = AttemptQueue(worker)
    for key in "abc":
        queue.send([_assignment(key)])
    worker.step()
    results = [queue.collect() for _ in range(3)]
    assert [r.assignment.key for r in results] == ["a", "b", "c"]
    assert isinstance(results[0].result, Outcome) and isinstance(results[2].result, Outcome)
    broken = results[1].result
    assert isinstance(broken, Failure) and broken.type == FailureKind.WORKER_ERROR
    assert "cannot return the outcome of b" in broken.message
    assert len(queue) == 0


def test_a_call_of_several_that_fails_outside_their_tasks_sends_each_again_alone() -> None:
    # Before: each of the call's jobs was answered with the call's WorkerError, so one job
    # whose outcome could not be moved failed up to 31 quick jobs sharing its call.
    worker = SerialWorker(break_on={"b"})
    queue = AttemptQueue(worker)
    queue.send([_assignment("a"), _assignment("b"), _assignment("c")])
    queue.send([_assignment("d")])
    worker.step()
    results = [queue.collect() for _ in range(4)]
    assert [r.assignment.key for r in results] == ["a", "b", "c", "d"]
    assert [r.result for r in results[:3]] == [NotRun(alone=True)] * 3
    assert isinstance(results[3].result, Outcome)  # the call behind it is its own
    assert len(queue) == 0 and worker.kills == 0


def test_an_attempt_without_a_time_limit_is_waited_for_however_long_it_runs() -> None:
    worker = SerialWorker()
    queue = AttemptQueue(worker)
    queue.send([_assignment("a", time_limit=None)])
    deadlines: list[float] = []

    def idle(deadline: float) -> float:
        deadlines.append(deadline)
        worker.step()
        return 1.0

    assert isinstance(queue.collect(idle).result, Outcome)
    assert deadlines == [float("inf")] and worker.kills == 0


def test_calls_queued_behind_a_running_one_are_taken_back_unrun() -> None:
    worker = SerialWorker(hang_on={"long"})
    queue = AttemptQueue(worker)
    for key in ("long", "b", "c"):
        queue.send([_assignment(key)])
    worker.step()  # "long" is running (it hangs); b and c wait behind it
    assert [a.key for a in queue.take_back()] == ["b", "c"]
    assert len(queue) == 1 and worker.ran == []


def test_a_call_that_has_begun_is_not_taken_back() -> None:
    worker = SerialWorker(hang_on={"b"})
    queue = AttemptQueue(worker)
    for key in ("a", "b", "c"):
        queue.send([_assignment(key)])
    worker.step()  # a ran; b has begun and hangs; c waits
    assert queue.collect().assignment.key == "a"
    assert [a.key for a in queue.take_back()] == ["c"]
    assert len(queue) == 1 and worker.ran == ["a"]


def test_nothing_is_taken_back_when_the_worker_does_not_answer() -> None:
    class Silent(SerialWorker):
        def cut(self, call_ids: list[int], timeout: float) -> dict[int, int]:
            raise TimeoutError("no answer")

    worker = Silent(hang_on={"long"})
    queue = AttemptQueue(worker)
    for key in ("long", "b"):
        queue.send([_assignment(key)])
    worker.step()
    assert queue.take_back() == [] and len(queue) == 2


def test_the_worker_gate_stops_calls_where_they_are() -> None:
    gate = CallGate()
    assert gate.begin(5) and gate.proceed(5)  # call 5 is on its second job
    assert gate.cut([4, 5, 6, 7]) == {5: 2, 6: 0, 7: 0}  # 4 ended: not named
    assert not gate.proceed(5)  # its third job never begins
    assert not gate.begin(6) and not gate.begin(7) and gate.begin(8) and gate.proceed(8)
    assert next_call_id() < next_call_id()


def test_a_restarted_supervisors_calls_are_not_taken_for_begun_whatever_their_numbers() -> None:
    """Call ids are a sender's own series, not the clock: a supervisor restarted after the
    clock stepped back may number its calls below its predecessor's."""
    gate = CallGate()
    old, new = 7 << 40, 3 << 40
    assert gate.begin(old | 50)
    assert gate.cut([new | 1, new | 2]) == {new | 1: 0, new | 2: 0}
    assert not gate.begin(new | 1) and gate.begin(new | 3)
    assert gate.cut([old | 50, new | 3, new | 4]) == {new | 3: 1, new | 4: 0}
    assert sender_of(next_call_id()) == sender_of(next_call_id()) > 0


def test_the_jobs_of_a_running_call_not_begun_are_taken_back() -> None:
    """Quick jobs share a call: when one of them turns out long, those after it in the
    same call go back to the block's queue, and the call ends after the long one."""
    worker = SerialWorker(hang_on={"b"})
    queue = AttemptQueue(worker)
    queue.send([_assignment(k) for k in ("a", "b", "c", "d")])
    queue.send([_assignment("e")])
    worker.step()  # a ran; b has begun and hangs
    assert [a.key for a in queue.take_back()] == ["c", "d", "e"]
    worker.step()  # b ends; the call stops there
    assert [queue.collect().assignment.key for _ in range(2)] == ["a", "b"]
    assert len(queue) == 0 and worker.ran == ["a", "b"]


def test_a_skip_answered_too_late_comes_back_as_not_run_never_as_a_result() -> None:
    """The worker skipped the call after its supervisor stopped waiting for the answer:
    the call returns nothing, and its job comes back unrun (it wedged the lane once)."""

    class Late(SerialWorker):
        def cut(self, call_ids: list[int], timeout: float) -> dict[int, int]:
            super().cut(call_ids, timeout)
            raise TimeoutError("answered after the supervisor stopped waiting")

    worker = Late(hang_on={"long"})
    queue = AttemptQueue(worker)
    for key in ("long", "b"):
        queue.send([_assignment(key)])
    worker.step()
    assert queue.take_back() == []
    worker.queue[0].results.append(Outcome(status=Status.SUCCEEDED, started_at=time.time()))
    worker.queue[0].done.set()
    worker.queue.pop(0)
    worker.step()
    assert queue.collect().assignment.key == "long"
    late = queue.collect()
    assert (late.assignment.key, late.result, len(queue)) == ("b", NotRun(), 0)
    assert worker.ran == []


def test_a_head_call_not_begun_comes_back_as_not_run_and_the_queue_stays_whole() -> None:
    """The head call had not begun either (its worker was restarting) when the lane took
    back: it must stay at the head and come back as NotRun, never vanish from under
    ``collect`` (an IndexError wedged a lane in the recovery bench)."""
    worker = SerialWorker()
    queue = AttemptQueue(worker)
    queue.send([_assignment("a")])
    queue.send([_assignment("b")])
    assert [a.key for a in queue.take_back()] == ["b"]
    worker.step()
    head = queue.collect()
    assert (head.assignment.key, head.result, len(queue)) == ("a", NotRun(), 0)
    assert worker.ran == []


def test_once_a_call_is_cut_after_a_long_job_that_job_is_known_and_a_kill_costs_it_alone() -> None:
    """A job of a quick task turns out long in a shared call: after the take-back the
    worker is known to be on it, so a cancel or its progress can reach it. Killed, it alone
    fails; the job that ended before it in the call is sent again, uncounted."""
    worker = SerialWorker(hang_on={"b"})
    lost: list[int] = []
    queue = AttemptQueue(worker, on_worker_lost=lambda: lost.append(1))
    queue.send([_assignment(k) for k in ("a", "b", "c")])
    worker.step()  # a ran; b has begun and hangs
    assert queue.running_now() is None  # one of three: which is not known yet
    assert [a.key for a in queue.take_back()] == ["c"]
    running = queue.running_now()
    assert running is not None and running.key == "b"
    worker.kill()

    def restarted() -> None:  # the new worker runs what is sent again, once it comes
        deadline = time.monotonic() + 5
        while not worker.queue and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the resend, with a deadline
        worker.step()

    thread = threading.Thread(target=restarted)
    thread.start()
    first = queue.collect()
    thread.join()
    assert (first.assignment.key, type(first.result)) == ("a", Outcome)
    second = queue.collect()
    assert second.assignment.key == "b" and isinstance(second.result, Failure)
    assert second.result.type == FailureKind.WORKER_LOST
    assert len(queue) == 0 and lost == [1] and worker.ran == ["a", "a"]


def test_a_long_job_last_in_its_call_is_known_once_the_worker_says_where_it_is() -> None:
    """Nothing is left to take back behind it, but the worker's answer still says it is on
    that job: a cancel or its progress can reach it (review finding)."""
    worker = SerialWorker(hang_on={"c"})
    queue = AttemptQueue(worker)
    queue.send([_assignment(k) for k in ("a", "b", "c")])
    worker.step()  # a and b ran; c has begun and hangs
    assert queue.take_back() == []
    running = queue.running_now()
    assert running is not None and running.key == "c"
