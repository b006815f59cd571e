"""Dead letters: what ``deadJobs`` holds, and sending a dead job around again.

``deadJobs`` holds the original record of each job that failed for good (and of records
that could not be jobs), with headers saying why. A replay submits the original request
again under a new key derived from the old one (``KEY.r1``, ``KEY.r2``…) carrying
``replay_of``, and notes it on ``deadJobs`` as a record under the old key with no value
and the header ``computeinfra.replayed-as``, so every reader can tell it was replayed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message
from pydantic import ValidationError

from computeinfra.errors import KafkaError, RequestError, UnknownJob
from computeinfra.kafka.clients import make_producer, reader
from computeinfra.kafka.follow import end_offsets
from computeinfra.protocol import (
    DEAD_TOPIC,
    PENDING_TOPIC,
    JobRequest,
    decode_request,
    encode_request,
    key_problem,
)

from .lookup import scan

__all__ = ["DeadLetter", "dead_letters", "replay"]

REPLAYED_AS = "computeinfra.replayed-as"
FLUSH_TIMEOUT_SECONDS = 30.0


@dataclass
class DeadLetter:
    """One job on ``deadJobs``: why it is there, and the keys it was replayed as."""

    key: str | None
    task: str | None
    reason: str
    attempts: int | None
    at: float  # when it was dead-lettered (the record's time)
    value: bytes = field(repr=False)
    replays: list[str] = field(default_factory=list)

    @property
    def replayable(self) -> bool:
        """Whether it can be sent again: a keyless record, an unreadable request, one too
        large to have been kept, or a key too long for its replay's cannot."""
        if not self.key:
            return False
        try:
            _replayed(self, f"{self.key}.r{len(self.replays) + 1}")
        except RequestError:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "task": self.task, "reason": self.reason, "attempts": self.attempts,
            "at": self.at, "replayed_as": self.replays,
        }  # fmt: skip


def _headers(message: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in message.headers() or []:
        name, value = header[0], header[1]
        found[name] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return found


def _letter(message: Message) -> DeadLetter:
    headers = _headers(message)
    raw_key = message.key()
    attempts = headers.get("computeinfra.attempts")
    return DeadLetter(
        key=raw_key.decode(errors="backslashreplace") if raw_key else None,
        task=headers.get("computeinfra.task") or None,
        reason=headers.get("computeinfra.reason", ""),
        attempts=int(attempts) if attempts and attempts.isdigit() else None,
        at=message.timestamp()[1] / 1000,
        value=message.value() or b"",
    )


def _ends(consumer: Consumer) -> dict[tuple[str, int], int]:
    """The end of each ``deadJobs`` partition that holds records."""
    try:
        return end_offsets(consumer, [DEAD_TOPIC])
    except KafkaException as exc:
        raise KafkaError(f"cannot read {DEAD_TOPIC}: {exc}") from exc


def dead_letters(bootstrap: str, *, task: str | None = None) -> list[DeadLetter]:
    """Every dead letter, oldest first (of ``task``, if given), with its replays."""
    consumer = reader(bootstrap, client_id="computeinfra-dead-letters")
    letters: list[DeadLetter] = []
    replays: dict[str, list[str]] = {}
    try:
        ends = _ends(consumer)
        for message in scan(consumer, dict.fromkeys(ends, OFFSET_BEGINNING), ends):
            noted, raw_key = _headers(message).get(REPLAYED_AS), message.key()
            if noted is not None and raw_key:
                replays.setdefault(raw_key.decode(errors="replace"), []).append(noted)
            else:
                letters.append(_letter(message))
    finally:
        consumer.close()
    for letter in letters:
        letter.replays = replays.get(letter.key or "", [])
    return [letter for letter in letters if task is None or letter.task == task]


def replay(bootstrap: str, keys: Sequence[str]) -> dict[str, str]:
    """Submit each dead letter of ``keys`` again under a new key (``KEY.rN``); returns the
    new key of each. Raises ``UnknownJob`` (nothing written) if a key has no dead letter,
    ``RequestError`` if one cannot be replayed (its request was not readable, or too large
    to be kept)."""
    letters = {letter.key: letter for letter in dead_letters(bootstrap) if letter.key}
    unknown = [key for key in keys if key not in letters]
    if unknown:
        raise UnknownJob(unknown)
    new_keys = {key: f"{key}.r{len(letters[key].replays) + 1}" for key in dict.fromkeys(keys)}
    plans = {key: _replayed(letters[key], new_keys[key]) for key in new_keys}
    _write(bootstrap, plans, new_keys)
    return new_keys


def _replayed(letter: DeadLetter, new_key: str) -> bytes:
    """The request of ``letter`` again, as ``new_key``'s, checked as any request is."""
    key = letter.key or ""
    try:
        request = decode_request(letter.value)
        again = JobRequest.model_validate(
            {**request.model_dump(), "replay_of": key, "submitted_at": time.time()}
        )
    except RequestError as exc:
        raise RequestError(f"dead letter {key!r} cannot be replayed: {exc}") from None
    except ValidationError as exc:
        raise RequestError(f"dead letter {key!r} cannot be replayed: {exc}") from None
    if problem := key_problem(new_key.encode()):
        raise RequestError(f"dead letter {key!r} cannot be replayed as {new_key!r}: {problem}")
    return encode_request(again)


def _write(bootstrap: str, plans: dict[str, bytes], new_keys: dict[str, str]) -> None:
    """The new requests and the notes on ``deadJobs``, in one transaction: both or neither
    (a request without its note would be replayed again under the same key)."""
    producer = make_producer(
        bootstrap, client_id="computeinfra-replay",
        **{"transactional.id": f"computeinfra-replay-{uuid.uuid4().hex}"},
    )  # fmt: skip
    try:
        producer.init_transactions(FLUSH_TIMEOUT_SECONDS)
        producer.begin_transaction()
        for key, value in plans.items():
            new = new_keys[key].encode()
            producer.produce(PENDING_TOPIC, key=new, value=value)
            producer.produce(DEAD_TOPIC, key=key.encode(), value=b"", headers=[(REPLAYED_AS, new)])
        producer.commit_transaction(FLUSH_TIMEOUT_SECONDS)
    except KafkaException as exc:
        raise KafkaError(f"could not write the replays (nothing was): {exc}") from exc
