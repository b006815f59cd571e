"""What a task function gets besides its payload: where to write, and how to write safely."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

from computeinfra.errors import PathError
from computeinfra.paths import resolve_input, safe_output_path
from computeinfra.protocol import Output

__all__ = ["TEMP_SUFFIX", "InputRoots", "TaskContext", "check_input_file"]

TEMP_SUFFIX = ".tmp"
WRITING_SUFFIX = ".writing"


@dataclass(frozen=True)
class InputRoots:
    """Passed as pydantic validation context so payload paths are confined while validating."""

    roots: tuple[Path, ...]


def check_input_file(value: str, info: ValidationInfo) -> str:
    """Pydantic validator for ``InputFile`` fields: confine to the input roots, must exist."""
    context = info.context
    if not isinstance(context, InputRoots):
        # Validation outside a supervisor (e.g. in a client) cannot know the cluster's roots.
        return value
    try:
        return str(resolve_input(context.roots, value))
    except PathError as exc:
        # Re-raised as a pydantic error so the message names the payload field.
        raise PydanticCustomError("input_path", str(exc)) from None


@dataclass
class TaskContext:
    """Per-job context. Outputs written through it are atomic and listed in the completion."""

    key: str
    attempt: int
    results_root: Path
    result_dir: Path
    outputs: list[Output] = field(default_factory=list)
    _writing: int = field(default=0, repr=False)  # temporary files open now

    def output_path(self, name: str) -> Path:
        return safe_output_path(self.result_dir, name)

    @contextmanager
    def open_output(self, name: str, **meta: Any) -> Iterator[IO[bytes]]:
        """Write a file under a temporary name; rename it into place only if the block succeeds.

        A retried job therefore never leaves half a file where a whole one is expected.
        """
        target = self.output_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._mark_writing(+1)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.{self._tag}.", suffix=TEMP_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        finally:
            self._mark_writing(-1)
        self._record(target, meta)

    @property
    def _tag(self) -> str:
        """Marks this job's temporary files, so a later attempt can find and remove them."""
        return hashlib.sha1(self.key.encode(), usedforsecurity=False).hexdigest()[:12]

    @property
    def _marker(self) -> Path:
        return self.result_dir / f".{self._tag}{WRITING_SUFFIX}"

    def _mark_writing(self, change: int) -> None:
        """A mark lies beside the outputs while this attempt has temporary files open: an
        attempt that is killed leaves it behind, and the next one, wherever it runs and
        whatever attempt number its block gives it, finds it with one ``stat``."""
        if change > 0 and not self._writing:
            self._marker.touch()
        self._writing += change
        if not self._writing:
            self._marker.unlink(missing_ok=True)

    def left_behind(self) -> bool:
        """Whether an earlier attempt of this job may have left temporary files."""
        return self.attempt > 1 or self._marker.exists()

    def discard_stale_temporaries(self) -> int:
        """Remove temporary files an earlier, killed attempt of this job left behind."""
        removed = 0
        if self.result_dir.is_dir():
            for stale in self.result_dir.rglob(f".*.{self._tag}.*{TEMP_SUFFIX}"):
                stale.unlink(missing_ok=True)
                removed += 1
        self._marker.unlink(missing_ok=True)
        return removed

    def write_bytes(self, name: str, data: bytes, **meta: Any) -> Output:
        with self.open_output(name, **meta) as handle:
            handle.write(data)
        return self.outputs[-1]

    def _record(self, target: Path, meta: dict[str, Any]) -> None:
        relative = target.relative_to(self.results_root.resolve()).as_posix()
        # A retry within one attempt list replaces the earlier entry for the same file.
        self.outputs = [o for o in self.outputs if o.path != relative]
        self.outputs.append(Output(path=relative, bytes=target.stat().st_size, **meta))
