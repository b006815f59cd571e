"""``word-count``: counts words in text or in files and writes the counts as JSON."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.registry import InputFile, task

WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)
MAX_TEXT_CHARS = 256 * 1024
READ_CHUNK_LINES = 10_000


class WordCountPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    files: list[InputFile] | None = Field(
        default=None, min_length=1, max_length=1000, description="Text files to count."
    )
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="Inline text.")
    top: int = Field(default=20, ge=0, le=1000, description="How many top words to summarise.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.files is None) == (self.text is None):
            raise ValueError("give exactly one of 'files' or 'text'")
        return self


def _count_file(path: Path, counts: Counter[str]) -> int:
    lines = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            counts.update(word.lower() for word in WORD.findall(line))
            lines += 1
    return lines


@task("word-count", payload=WordCountPayload)
def word_count(payload: WordCountPayload, ctx: TaskContext) -> dict[str, Any]:
    """Count words (case-folded) and write them to ``counts.json``."""
    counts: Counter[str] = Counter()
    lines = 0
    if payload.text is not None:
        counts.update(word.lower() for word in WORD.findall(payload.text))
        lines = payload.text.count("\n") + 1 if payload.text else 0
    files = payload.files or []
    for done, name in enumerate(files):
        ctx.progress(done, len(files), f"counting {Path(name).name}")
        lines += _count_file(Path(name), counts)
    summary = {
        "total_words": sum(counts.values()),
        "unique_words": len(counts),
        "lines": lines,
        "top": counts.most_common(payload.top),
    }
    document = {**summary, "counts": dict(sorted(counts.items()))}
    ctx.write_bytes("counts.json", json.dumps(document, ensure_ascii=False, indent=1).encode())
    return summary
