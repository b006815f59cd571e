"""What becomes of an answer Kafka refused for good (``commits.py``'s ``_refused``).

A broker refuses a whole batch for one record too large: the records of a transaction
refused together are sent again each in a request of its own, and only a record refused
alone changes its job's answer, made smaller (``smaller``).
"""

from __future__ import annotations

from computeinfra.errors import RequestError
from computeinfra.protocol import (
    DEAD_TOPIC,
    JOB_STATUS_TOPIC,
    Completion,
    FailureKind,
    encode_job_status,
    named_task,
)

from .answers import completion_record, is_stripped, refused, reject, stripped
from .middleware.status import terminal_status
from .records import OutboxRecord
from .slots import Slot

__all__ = ["owners", "smaller"]


def owners(extra: list[OutboxRecord], slots: list[Slot]) -> list[tuple[Slot | None, int]]:
    """For each record of a transaction (the middleware's, then each answer's): its job's
    slot (``None`` for the middleware's) and its index in that slot's records."""
    owners: list[tuple[Slot | None, int]] = [(None, i) for i in range(len(extra))]
    return owners + [(slot, i) for slot in slots for i in range(len(slot.records))]


def _answered_anew(slot: Slot, completion: Completion) -> None:
    """``slot``'s answer is ``completion`` now: its record, and its terminal status (a
    ``running`` may be on ``jobStatus`` for it, and must not stay there)."""
    key = slot.message.key()
    status = encode_job_status(terminal_status(completion))
    slot.completion = completion
    slot.records = [completion_record(key, completion), OutboxRecord(JOB_STATUS_TOPIC, key, status)]


def smaller(slot: Slot, refused_records: dict[int, str]) -> bool:
    """Take out of ``slot``'s answer what Kafka refused (``refused_records``: why, by the
    record's index in ``slot.records``): a record beside a job's completion is dropped; a
    completion refused becomes ``failed`` with ``AnswerRefused``; a dead letter loses its
    value; a request passed on (to a lane, or another block) is answered ``rejected``
    instead. False if the answer cannot get smaller."""
    completion, why = slot.completion, next(iter(refused_records.values()))
    if completion is None and all(r.topic == DEAD_TOPIC for r in slot.records):
        if all(is_stripped(record) for record in slot.records):
            return False
        slot.records = [stripped(record, why) for record in slot.records]
    elif completion is None:
        topic = slot.records[0].topic
        error = RequestError(
            f"the request could not be passed on to {topic}: Kafka refused it ({why})"
        )
        task = named_task(slot.message.value())
        _answered_anew(slot, reject(slot.key, error, task=task, result_dir=None, submitted_at=None))
    elif 0 not in refused_records:  # the completion went through; what came with it did not
        slot.records = [r for i, r in enumerate(slot.records) if i not in refused_records]
    elif completion.error is not None and completion.error.type == FailureKind.ANSWER_REFUSED:
        return False
    else:
        _answered_anew(slot, refused(completion, why))
    return True
