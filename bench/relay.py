"""A bare relay: the least a block of this design can do, with none of computeinfra's code.

Run in a process of its own by ``floor.py``. It does only what exactly-once needs: a
read_committed consumer in a group; each record's work (nothing, a call to a Ray actor, an
image on a ``multiprocessing.Pool(2)`` or on two Ray actors); and for the answers ready,
one transaction carrying them and the offsets they complete, through two transactional
producers in turn (as a block's outbox: a transaction never waits on the markers of the
one before). No validation, no middleware, no journal, no metrics, no cancel check.

Each answer's value is its request's, plus the relay's stamps (``time.perf_counter``,
one clock for every process of this machine): read, ran. Commit stamps are written to
``<out>/commits.json`` when the relay stops.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from realwork import compress, compress_and_write

__all__ = ["Relay", "relay_main", "take"]

GROUP = "floor-relay"
POLL_SECONDS = 0.1
BUSY_POLL_SECONDS = 0.005  # while work is out: how often answers are looked for
# While work is out, answers wait for each other this long: a transaction costs the
# broker the same whatever it carries (a block adapts its window to the tasks' run times).
COMMIT_EVERY_SECONDS = 0.05
TXN_SECONDS = 30.0
Done = tuple[Message, dict[str, Any]]


class Offsets:
    """The offset a partition may commit: below the oldest record still being worked on.
    Started on the consume thread, done and committed on the committing one."""

    def __init__(self) -> None:
        self._out: dict[int, set[int]] = {}
        self._next: dict[int, int] = {}
        self._lock = threading.Lock()

    def started(self, msg: Message) -> None:
        with self._lock:
            self._out.setdefault(msg.partition(), set()).add(msg.offset())

    def done(self, msg: Message) -> None:
        p = msg.partition()
        with self._lock:
            self._out[p].discard(msg.offset())
            self._next[p] = max(self._next.get(p, 0), msg.offset() + 1)

    def commit(self, topic: str) -> list[TopicPartition]:
        with self._lock:
            return [
                TopicPartition(topic, p, min(self._out.get(p) or {n}))
                for p, n in self._next.items()
            ]


class Runner:
    """Runs records' work and hands back what is done: ``none`` (answered at once), ``ray``
    (a call to a Ray actor that returns at once, waited for), ``ray-batch`` (one such call
    for all the records of a poll, not waited for: the relay polls on, as a block's consume
    thread does; ``ray-batch-thread`` the same, its relay committing on a thread of its
    own), ``pool-write``/``pool-compress`` (an image on a
    ``multiprocessing.Pool(2)``, its output written or not) and ``ray-write``/
    ``ray-compress`` (the same on two Ray actors, one CPU each)."""

    def __init__(self, work: str, out_dir: str) -> None:
        self.work, self.out_dir = work, out_dir
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._pool: Any = None
        self._lock = threading.Lock()
        self.out = 0  # records started and not yet done
        self.error: BaseException | None = None
        self._image = (out_dir, work.endswith("-write"))
        if work.startswith("pool-"):
            self._pool = multiprocessing.get_context("fork").Pool(2)
            self._pool.map(int, range(2))
        elif work.startswith("ray"):
            one = work == "ray" or work.startswith("ray-batch")
            self._actors = _ray_actors(1 if one else 2)
            self._turn = 0

    def start_all(self, batch: list[Done]) -> None:
        """Start the records of one poll: ``ray-batch`` in one call, the rest one by one."""
        if not batch:  # an empty poll makes no call
            return
        if not self.work.startswith("ray-batch"):
            for msg, value in batch:
                self.start(msg, value)
            return
        with self._lock:
            self.out += len(batch)
        future = self._actors[0].echo.remote(len(batch)).future()

        def done(f: Any) -> None:
            if f.exception() is not None:
                self._failed(f.exception())
                return
            for msg, value in batch:
                self._finish(msg, value)

        future.add_done_callback(done)

    def start(self, msg: Message, value: dict[str, Any]) -> None:
        with self._lock:
            self.out += 1
        if self.work == "none":
            self._finish(msg, value)
        elif self.work == "ray":
            import ray

            ray.get(self._actors[0].echo.remote(0))  # one call there and back, waited for
            self._finish(msg, value)
        elif self._pool is not None:
            self._pool.apply_async(
                image,
                (*self._image, value["path"]),
                callback=lambda _: self._finish(msg, value),
                error_callback=self._failed,
            )
        else:
            actor = self._actors[self._turn]
            self._turn ^= 1
            future = actor.image.remote(*self._image, value["path"]).future()
            future.add_done_callback(
                lambda f: self._failed(f.exception()) if f.exception() else self._finish(msg, value)
            )

    def _failed(self, error: BaseException | None) -> None:
        """A floor with a failed image is no floor: the relay stops and says why."""
        self.error = error

    def _finish(self, msg: Message, value: dict[str, Any]) -> None:
        value["ran"] = time.perf_counter()
        with self._lock:
            self.out -= 1
        self._done.put((msg, value))

    def ready(self) -> list[Done]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
        if self.work.startswith("ray"):
            import ray

            ray.shutdown()  # stops the Ray processes this relay started: os._exit would not


def image(out_dir: str, write: bool, path: str) -> int:
    """An image compressed, and with ``write`` written as a job's output is (fsync, rename)."""
    return compress_and_write(out_dir, path) if write else compress(path)


def _ray_actors(count: int) -> list[Any]:
    from computeinfra.config import prepare_process_environment

    prepare_process_environment()
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent)}},
    )

    @ray.remote(num_cpus=1)
    class Worker:
        def echo(self, x: int) -> int:
            return x

        def image(self, out_dir: str, write: bool, path: str) -> int:
            return image(out_dir, write, path)

    actors = [Worker.remote() for _ in range(count)]  # type: ignore[attr-defined]
    ray.get([a.echo.remote(0) for a in actors])
    return actors


class Relay:
    """Consume, run, answer: one transaction per batch of answers ready, one at a time. With
    ``threaded``, the transactions run on a thread of their own, each taking every answer
    ready when the one before ended (as a block's outbox does): the consume loop never
    waits for one, and no answer waits for a window."""

    def __init__(
        self, bootstrap: str, requests: str, answers: str, runner: Runner, threaded: bool = False
    ) -> None:
        self.requests, self.answers, self.runner = requests, answers, runner
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
        })  # fmt: skip
        self.producers = [_producer(bootstrap, f"floor-relay.{k}") for k in (1, 2)]
        self.offsets = Offsets()
        self.commits: list[tuple[list[int], float, float]] = []  # seqs, began, committed
        self._turn = 0
        self._ready: list[Done] = []
        self._last_commit = 0.0
        self._handed: queue.SimpleQueue[tuple[list[Done], Any]] | None = None
        self.error: BaseException | None = None
        if threaded:
            self._handed = queue.SimpleQueue()
            threading.Thread(target=self._committing, name="commits", daemon=True).start()

    def run(self, stop: Callable[[], bool]) -> None:
        self.consumer.subscribe([self.requests])
        while not stop():
            wait = BUSY_POLL_SECONDS if self.runner.out else POLL_SECONDS
            batch: list[Done] = []
            for msg in take(self.consumer, wait):
                if msg.error() is not None and msg.error().fatal():
                    raise RuntimeError(f"consumer: {msg.error()}")
                if msg.error() is None:
                    value = json.loads(msg.value())
                    value["read"] = time.perf_counter()
                    self.offsets.started(msg)
                    batch.append((msg, value))
            self.runner.start_all(batch)
            if self.runner.error is not None:
                raise RuntimeError("an image failed") from self.runner.error
            if self.error is not None:
                raise RuntimeError("a transaction failed") from self.error
            self._ready += self.runner.ready()
            if self._handed is not None:
                if self._ready:
                    # The group's metadata is taken here: asked from the committing thread
                    # while this one polls, it never returned (librdkafka 2.x).
                    self._handed.put((self._ready, self.consumer.consumer_group_metadata()))
                    self._ready = []
                continue
            due = time.perf_counter() - self._last_commit >= COMMIT_EVERY_SECONDS
            if self._ready and (due or not self.runner.out):
                self._commit(self._ready, self.consumer.consumer_group_metadata())
                self._ready = []
                self._last_commit = time.perf_counter()

    def _committing(self) -> None:
        assert self._handed is not None
        try:
            while True:
                ready, group = self._handed.get()
                while not self._handed.empty():
                    more, group = self._handed.get()
                    ready += more
                self._commit(ready, group)
        except BaseException as exc:  # the consume loop raises it
            self.error = exc

    def _commit(self, ready: list[Done], group: Any) -> None:
        producer = self.producers[self._turn]
        self._turn ^= 1
        began = time.perf_counter()
        producer.begin_transaction()
        for msg, value in ready:
            producer.produce(self.answers, json.dumps(value).encode(), key=msg.key())
            self.offsets.done(msg)
        producer.send_offsets_to_transaction(
            self.offsets.commit(self.requests),
            group,
            TXN_SECONDS,
        )
        producer.commit_transaction(TXN_SECONDS)
        self.commits.append(([v["seq"] for _, v in ready], began, time.perf_counter()))


def take(consumer: Consumer, timeout: float) -> list[Message]:
    """Up to 500 records: waits ``timeout`` for the first only (``consume`` would wait it out
    for a full batch), as a block's consumer does."""
    first = consumer.poll(timeout)
    return [] if first is None else [first, *consumer.consume(499, 0)]


def _producer(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({
        "bootstrap.servers": bootstrap, "transactional.id": transactional_id,
        "enable.idempotence": True, "acks": "all", "linger.ms": 0,
    })  # fmt: skip
    producer.init_transactions(TXN_SECONDS)
    return producer


def relay_main(bootstrap: str, topics: tuple[str, str], work: str, out: str, stop: Any) -> None:
    """The relay process: runs until ``stop`` (a ``multiprocessing.Event``) is set. A failure
    is printed and ends it with status 1, which the driver's ``check`` reports."""
    code, runner, relay = 0, None, None
    try:
        runner = Runner(work, out)
        relay = Relay(bootstrap, *topics, runner, threaded=work.endswith("-thread"))
        relay.run(stop.is_set)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        if runner is not None:
            runner.close()
        if relay is not None:
            relay.consumer.close()
            Path(out, "commits.json").write_text(json.dumps(relay.commits))
        os._exit(code)  # Ray's and the pool's threads are not waited for
