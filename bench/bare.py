"""The bare relay's driver side, for ``floor.py``: topics of its own, the relay process
(``relay.py``), and a driver that submits as our SDK does and watches the answers."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from relay import relay_main, take

__all__ = ["PARTITIONS", "BareDriver", "create_topics", "relay"]

PARTITIONS = 12  # pendingJobs' and completedJobs' own


class BareDriver:
    """Submits records as the SDK does; a read_committed watcher calls ``done`` for each answer."""

    name = "bare relay"

    def __init__(self, bootstrap: str, topics: tuple[str, str], linger_ms: float = 2) -> None:
        self.requests, answers = topics
        self.payload: Callable[[int], dict[str, Any]] = lambda _i: {}
        self.answers: dict[int, dict[str, Any]] = {}  # by seq: the answer, with its stamps
        self.acked: dict[int, float] = {}  # by seq: when Kafka acknowledged the request
        self._waiting: dict[int, tuple[int, Callable[[int], None]]] = {}
        self._seq = 0
        self.relay: multiprocessing.process.BaseProcess | None = None
        self._stop = threading.Event()
        self._producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": linger_ms,
        })  # fmt: skip
        self._watcher = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"floor-{uuid.uuid4().hex}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
        })  # fmt: skip
        self._watcher.assign([TopicPartition(answers, p, 0) for p in range(PARTITIONS)])
        self._threads = [threading.Thread(target=t, daemon=True) for t in (self._poll, self._watch)]
        for thread in self._threads:
            thread.start()

    def submit(self, index: int, done: Callable[[int], None]) -> None:
        self._seq += 1
        seq = self._seq
        self._waiting[seq] = (index, done)
        value = {"seq": seq, "sent": time.perf_counter(), **self.payload(index)}

        def acked(err: Any, _msg: Any) -> None:
            if err is None:
                self.acked[seq] = time.perf_counter()

        self._producer.produce(self.requests, json.dumps(value).encode(), uuid.uuid4().hex,
                               on_delivery=acked)  # fmt: skip

    def check(self) -> None:
        """Raise if the relay or one of this driver's threads is gone: nothing would answer."""
        if self.relay is not None and self.relay.exitcode is not None:
            raise RuntimeError(f"the relay exited with status {self.relay.exitcode}")
        if not all(thread.is_alive() for thread in self._threads):
            raise RuntimeError("a thread of the driver died (its traceback is above)")

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for msg in take(self._watcher, 0.1):
                if msg.error() is None:
                    self._answered(json.loads(msg.value()), time.perf_counter())

    def _answered(self, value: dict[str, Any], now: float) -> None:
        value["notified"] = now
        self.answers[value["seq"]] = value
        index, done = self._waiting.pop(value["seq"])
        done(index)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._producer.flush(10)
        self._watcher.close()


def create_topics(bootstrap: str, topics: tuple[str, ...]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        future.result()


def delete_topics(bootstrap: str, topics: tuple[str, ...]) -> None:
    """Each run's topics go after it. In a run that kept them all (24 partitions a run), the
    later runs' p99 grew to 200-300 ms (the produce hop's) from 20-50 ms in the first; in the
    next, with them deleted, all twelve stayed at 20-41 ms."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(topics)).values():
        future.result()


@contextmanager
def relay(bootstrap: str, work: str, folder: Path, linger_ms: float = 2) -> Iterator[BareDriver]:
    """A relay process doing ``work``, topics of its own, and a driver for them."""
    name = f"{work}-{uuid.uuid4().hex[:6]}"
    topics = (f"floor-requests-{name}", f"floor-answers-{name}")
    create_topics(bootstrap, topics)
    out = folder / name
    out.mkdir(parents=True)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=relay_main, args=(bootstrap, topics, work, str(out), stop))
    process.start()
    driver = None
    try:
        driver = BareDriver(bootstrap, topics, linger_ms)
        driver.relay = process
        yield driver
    finally:
        stop.set()
        if driver is not None:
            driver.close()
        process.join(60)
        if process.is_alive():
            process.kill()
            process.join()
        delete_topics(bootstrap, topics)
    commits = json.loads((out / "commits.json").read_text())
    began = {seq: (b, c) for seqs, b, c in commits for seq in seqs}
    for seq, value in driver.answers.items():
        value["began"], value["committed"] = began[seq]
        value["acked"] = driver.acked[seq]
