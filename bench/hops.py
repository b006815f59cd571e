"""The hop-by-hop latency budget of a job (issue #15, step 1), measured, not estimated.

``HopTimer`` is a supervisor middleware (``COMPUTEINFRA_MIDDLEWARE=hops:HopTimer``, with
this folder on ``PYTHONPATH``) that writes, per job it answers, when it read the request,
sent it to a worker, had its answer, began the transaction that carried it and saw that
transaction committed. ``budget`` submits no-op jobs at a fixed rate with a producer of its
own (so it knows when Kafka acknowledged each request) and a completion watcher, joins both
sides by key, and gives each hop's percentiles:

    produce      submit() → the broker's acknowledgement (client side)
    fetch        acknowledgement → the supervisor read it
    admit        read → sent to a worker (validation, middleware, the lane's queue)
    to worker    sent → the task began in the worker (Ray's call)
    run          the task itself
    back         the task ended → its answer was in the supervisor
    batching     answer → its transaction began (the commit window)
    transaction  began → committed (records, offsets, the cancel check, EndTxn)
    notify       committed → the client's watcher had the completion

Every clock is ``time.time()`` on one machine. Hops that overlap (the broker may hand a
record to the supervisor before the producer hears its acknowledgement) can be negative.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware import Middleware
from computeinfra.block.transaction import OutboxRecord
from computeinfra.client.watcher import CompletionWatcher
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import PENDING_TOPIC, Completion, JobRequest, encode_request

__all__ = ["HOPS", "HOPS_DIR_VARIABLE", "HopTimer", "budget"]

HOPS_DIR_VARIABLE = "BENCH_HOPS_DIR"
HOPS = ("produce", "fetch", "admit", "to worker", "run", "back", "batching", "transaction",
        "notify")  # fmt: skip
WAIT_SECONDS = 120.0


class HopTimer(Middleware):
    """Writes each answered job's supervisor-side times, a JSON line per job."""

    def __init__(self) -> None:
        folder = Path(os.environ[HOPS_DIR_VARIABLE])
        folder.mkdir(parents=True, exist_ok=True)
        self._out = (folder / f"supervisor-{os.getpid()}-{id(self)}.jsonl").open("a")
        self._stamps: dict[str, dict[str, float]] = {}
        self._commit_began = 0.0

    def on_received(self, key: str | None, task: str | None) -> None:
        if key is not None:
            self._stamps[key] = {"received": time.time()}

    def before_dispatch(self, assignment: Assignment) -> None:
        self._stamps.setdefault(assignment.key, {}).setdefault("dispatched", time.time())

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        self._stamps.setdefault(completion.key, {})["answered"] = time.time()
        return ()

    def commit_records(self, in_hand: Mapping[str, float | None]) -> Sequence[OutboxRecord]:
        self._commit_began = time.time()  # the transaction about to carry the answers
        return ()

    def after_completion(self, completion: Completion) -> None:
        stamps = self._stamps.pop(completion.key, {})
        stamps["commit_began"], stamps["committed"] = self._commit_began, time.time()
        stamps["started"], stamps["finished"] = completion.started_at or 0.0, completion.finished_at
        self._out.write(json.dumps({"key": completion.key, **stamps}) + "\n")
        self._out.flush()


class _Client:
    """Submits no-op jobs and stamps submit, acknowledgement and notification."""

    def __init__(self, bootstrap: str) -> None:
        self.stamps: dict[str, dict[str, float]] = {}
        self._producer = make_producer(bootstrap, client_id="bench-hops")
        self._watcher = CompletionWatcher(bootstrap)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)  # delivery reports, on time

    def submit(self, index: int) -> None:
        key = f"hops-{os.getpid()}-{index}"
        stamps = self.stamps[key] = {}
        future = self._watcher.expect(key)
        future.add_done_callback(lambda _f: stamps.setdefault("notified", time.time()))
        request = JobRequest(task="sleep", payload={"seconds": 0}, result_dir="bench",
                             submitted_at=time.time())  # fmt: skip
        stamps["submitted"] = time.time()
        self._producer.produce(
            PENDING_TOPIC, key=key.encode(), value=encode_request(request),
            on_delivery=lambda _e, _m: self._acked(stamps),
        )  # fmt: skip

    @staticmethod
    def _acked(stamps: dict[str, float]) -> None:
        stamps.setdefault("acked", time.time())

    def wait(self) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while any("notified" not in s for s in self.stamps.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("hops: not every job was notified")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._poller.join()
        self._producer.flush(10)
        self._watcher.close()


def _hops(client: dict[str, float], block: dict[str, float]) -> dict[str, float]:
    t = {**client, **block}
    return {
        "produce": t["acked"] - t["submitted"],
        "fetch": t["received"] - t["acked"],
        "admit": t["dispatched"] - t["received"],
        "to worker": t["started"] - t["dispatched"],
        "run": t["finished"] - t["started"],
        "back": t["answered"] - t["finished"],
        "batching": t["commit_began"] - t["answered"],
        "transaction": t["committed"] - t["commit_began"],
        "notify": t["notified"] - t["committed"],
        "total": t["notified"] - t["submitted"],
    }


def _block_stamps(folder: Path) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for path in folder.glob("supervisor-*.jsonl"):
        text = path.read_text()
        for line in text[: text.rfind("\n") + 1].splitlines():  # the last may be half written
            row = json.loads(line)
            found[row.pop("key")] = row
    return found


def budget(bootstrap: str, folder: Path, rate: float, n: int) -> dict[str, Any]:
    """Submit ``n`` no-op jobs at ``rate`` per second; each hop's p50/p95/p99 in ms."""
    client = _Client(bootstrap)
    try:
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            client.submit(i)
        client.wait()
    finally:
        client.close()
    deadline = time.monotonic() + 10
    blocks = _block_stamps(folder)
    while set(client.stamps) - set(blocks) and time.monotonic() < deadline:
        time.sleep(0.1)  # the last lines may still be on their way to the file
        blocks = _block_stamps(folder)
    joined = [_hops(s, blocks[k]) for k, s in client.stamps.items() if k in blocks]
    if len(joined) < 2:
        raise RuntimeError(f"hops: {len(joined)} of {n} jobs had the supervisors' times")
    out: dict[str, Any] = {"jobs": n, "rate": rate, "joined": len(joined)}
    for hop in (*HOPS, "total"):
        values = sorted(j[hop] * 1000 for j in joined)
        q = statistics.quantiles(values, n=100, method="inclusive")
        out[hop] = {"p50_ms": q[49], "p95_ms": q[94], "p99_ms": q[98],
                    "mean_ms": statistics.fmean(values)}  # fmt: skip
    return out
