"""Cancels: the jobs ``cancelJobs`` names, as a block knows them.

Every block reads the whole topic, from its beginning: a job's record may be read by any
block (its partition's owner, a lane's reader, the block it is handed over to), and a
cancel must hold however long the job waits and across restarts. Cancels are few, so this
costs a set of keys. A block takes no record before it has read the topic up to where it
ended when the block started (``TopicFollower.at_end``): a job cancelled while the stack
was down does not run when it comes back.

What a cancel does to a job is the flow's: answered ``cancelled`` at intake, or taken off
the queue or the retry heap (``Flow``); one already running goes on to its end here.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Message

from computeinfra.errors import RequestError
from computeinfra.protocol import CancelRequest, decode_cancel, key_text

__all__ = ["Cancels"]

_log = logging.getLogger("computeinfra.supervisor")


class Cancels:
    """The cancels read so far, by job key; fed by a follower's thread, read by the
    supervisor's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: dict[str, CancelRequest] = {}
        self._fresh: list[str] = []  # keys cancelled since ``fresh`` was last called

    def __len__(self) -> int:
        return len(self._asked)

    def asked(self, key: str) -> CancelRequest | None:
        """The cancel of ``key``, if one was read (and not withdrawn)."""
        return self._asked.get(key)

    def fresh(self) -> list[str]:
        """The keys cancelled since the last call (for the jobs already in hand)."""
        with self._lock:
            fresh, self._fresh = self._fresh, []
        return fresh

    def add(self, key: str, cancel: CancelRequest) -> None:
        with self._lock:
            self._asked[key] = cancel
            self._fresh.append(key)

    def on_record(self, message: Message) -> None:
        """A ``cancelJobs`` record: a cancel, or (no value) its withdrawal."""
        raw_key, value = message.key(), message.value()
        where = f"{message.topic()}/{message.partition()}@{message.offset()}"
        if not raw_key:
            _log.warning("ignoring the cancel at %s: it has no key (the job's key)", where)
            return
        key = key_text(raw_key)
        if not value:
            with self._lock:
                self._asked.pop(key, None)
            return
        try:
            cancel = decode_cancel(value)
        except RequestError as exc:
            _log.warning("ignoring the cancel of %s at %s: %s", key, where, exc)
            return
        self.add(key, cancel)
