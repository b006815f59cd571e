"""The answered offsets beyond a partition's committed offset, carried in the commit's metadata.

Jobs finish out of order, but a consumer group keeps one offset per partition: everything
below it is done. A block commits each partition's offset up to its oldest unanswered
record, and lists the records answered beyond it in the offset's metadata, in the same
transaction as their completions. Whoever owns the partition next reads both and skips
exactly those records (as Confluent's Parallel Consumer does), so none is answered twice.

The encoding is text, so any Kafka tool shows it: a version tag, then ranges of offsets
relative to the committed one, ``"ci1:1-3,7,9-12"``. Answers mostly arrive in runs, so a
run of any length costs a few characters. The broker bounds metadata
(``offset.metadata.max.bytes``, 4096 by default): a map that would not fit is cut at the
highest offsets, which are answered again in a later commit (``fitting``).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MAX_METADATA_CHARS", "decode", "encode", "fitting"]

VERSION_TAG = "ci1:"
# Below the broker's default ``offset.metadata.max.bytes`` (4096), with room to spare.
MAX_METADATA_CHARS = 3500


def _runs(relative: list[int]) -> Iterable[tuple[int, int]]:
    start = prev = relative[0]
    for value in relative[1:]:
        if value != prev + 1:
            yield start, prev
            start = value
        prev = value
    yield start, prev


def encode(committed: int, answered: Iterable[int]) -> str:
    """The metadata for ``committed`` with ``answered`` offsets (all above it) beyond."""
    relative = sorted(o - committed for o in answered)
    if not relative:
        return ""
    if relative[0] <= 0:
        raise ValueError(f"answered offsets must lie beyond the committed offset {committed}")
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in _runs(relative)]
    return VERSION_TAG + ",".join(parts)


def decode(committed: int, metadata: str | None) -> set[int]:
    """The offsets answered beyond ``committed``; empty for metadata not written by us
    (another tool may have committed the offset) or written by a newer version."""
    if not metadata or not metadata.startswith(VERSION_TAG):
        return set()
    answered: set[int] = set()
    try:
        for part in metadata.removeprefix(VERSION_TAG).split(","):
            low, _, high = part.partition("-")
            answered.update(range(committed + int(low), committed + int(high or low) + 1))
    except ValueError:
        return set()  # not ours after all: nothing is known to be answered
    return {o for o in answered if o > committed}


def fitting(committed: int, answered: Iterable[int], limit: int = MAX_METADATA_CHARS) -> set[int]:
    """The answered offsets, lowest first, whose map fits in ``limit`` characters."""
    relative = sorted(o - committed for o in answered)
    kept: set[int] = set()
    length = len(VERSION_TAG) - 1  # the first range takes no comma
    for low, high in _runs(relative) if relative else ():
        length += len(f"{low}" if low == high else f"{low}-{high}") + 1
        if length > limit:
            break
        kept.update(range(committed + low, committed + high + 1))
    return kept
