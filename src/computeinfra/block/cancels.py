"""Cancels: the jobs ``cancelJobs`` names, as a block knows them.

Every block reads the whole topic, from its beginning: a job's record may be read by any
block (its partition's owner, a lane's reader, the block it is handed over to), and a
cancel must hold however long the job waits and across restarts. Cancels are few, so this
costs a set of keys. A block takes no record before it has read the topic up to where it
ended when the block started (``TopicFollower.at_end``): a job cancelled while the stack
was down does not run when it comes back.

What a cancel does to a job is the flow's: answered ``cancelled`` at intake, taken off
the queue or the retry heap, or, running, stopped by its lane (which kills its worker) and
answered ``cancelled`` with what it wrote removed (``discard_written``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import PurePosixPath

from confluent_kafka import Message

from computeinfra.config import Settings
from computeinfra.errors import PathError, RequestError
from computeinfra.kafka.follow import TopicFollower
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import (
    CancelRequest,
    Completion,
    Output,
    Status,
    decode_cancel,
    key_text,
)
from computeinfra.tasks.context import discard_job_files
from computeinfra.tasks.journal import forget_dead_journals, journal_names

from .jobs import Assignment

__all__ = ["Cancels", "discard_written"]

_log = logging.getLogger("computeinfra.supervisor")
# How long a commit waits for the block's reader to reach the end of cancelJobs; past it
# the commit is withdrawn and tried again (``Cancels.settled``).
SETTLE_SECONDS = 2.0


class Cancels:
    """The cancels read so far, by job key; fed by a follower's thread, read by the
    supervisor's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: dict[str, CancelRequest] = {}
        self._fresh: list[str] = []  # keys cancelled since ``fresh`` was last called
        self.reader: TopicFollower | None = None  # the follower feeding ``on_record``

    def __len__(self) -> int:
        return len(self._asked)

    def asked(self, key: str) -> CancelRequest | None:
        """The cancel of ``key``, if one was read (and not withdrawn)."""
        return self._asked.get(key)

    def of(self, assignment: Assignment) -> CancelRequest | None:
        """The cancel of ``assignment``'s job: one read for its key that does not name an
        earlier submission (a job resubmitted under a key after its cancel runs)."""
        return self._applying(assignment.key, assignment.submitted_at)

    def missed(self, completion: Completion) -> CancelRequest | None:
        """The cancel of a job answered ``completion`` (not committed yet), if the answer
        is not already ``cancelled``: it must be, once its cancel has been read."""
        if completion.status is Status.CANCELLED:
            return None
        return self._applying(completion.key, completion.submitted_at)

    def _applying(self, key: str, submitted_at: float | None) -> CancelRequest | None:
        cancel = self._asked.get(key)
        return cancel if cancel is not None and cancel.applies_to(submitted_at) else None

    def settled(self, timeout: float = SETTLE_SECONDS) -> bool:
        """Whether every cancel on ``cancelJobs`` now has been read (the reader's
        ``read_past``). Checked inside each transaction just before it commits: a cancel
        acknowledged before then is never missed by an answer in it."""
        return self.reader is None or self.reader.read_past(timeout)

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


def discard_written(
    settings: Settings, key: str, result_dir: str, outputs: Sequence[Output], block: int
) -> int:
    """Remove what a cancelled job wrote: the ``outputs`` its attempt said it wrote, and
    what the workers' journals list for it (a killed attempt's; ``tasks/journal.py``).
    Never raises: the job's answer must not wait on a file."""
    root = settings.results_root
    try:
        folder = resolve_result_dir(root, result_dir)
        depth = len(folder.relative_to(root.resolve()).parts)
        paths = [PurePosixPath(o.path) for o in outputs]
        names = [PurePosixPath(*p.parts[depth:]).as_posix() for p in paths if len(p.parts) > depth]
        journals = sorted(settings.journal_dir.glob("worker-*.outputs"))
        names += journal_names(journals, key)
        removed = discard_job_files(folder, key, names)
        forget_dead_journals(settings.journal_dir)  # the killed worker's, now read
    except (OSError, PathError) as exc:
        _log.warning("block %s: cannot remove what %s wrote: %s", block, key, exc)
        return 0
    _log.info("block %s: %s cancelled; %d file(s) it wrote removed", block, key, removed)
    return removed
