"""What a task function gets besides its payload: where to write, and how to write safely."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

from computeinfra.errors import Cancelled, PathError
from computeinfra.paths import resolve_input, safe_output_path
from computeinfra.protocol import Output, Progress

from .journal import OutputJournal, job_tag

__all__ = ["TEMP_SUFFIX", "InputRoots", "TaskContext", "check_input_file", "discard_job_files"]

TEMP_SUFFIX = ".tmp"
WRITING_SUFFIX = ".writing"


def discard_job_files(result_dir: Path, key: str, names: Iterable[str] = ()) -> int:
    """Remove what the job ``key`` wrote in ``result_dir``: ``names`` (relative to it) and
    their temporaries. Names that would leave ``result_dir`` are skipped. Returns the files
    removed."""
    tag = job_tag(key)
    removed = 0
    for name in dict.fromkeys(names):
        try:
            target = safe_output_path(result_dir, name)
        except PathError:
            continue
        for path in [target, *target.parent.glob(f".{target.name}.{tag}.*{TEMP_SUFFIX}")]:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    (result_dir / f".{tag}{WRITING_SUFFIX}").unlink(missing_ok=True)
    return removed


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


_NUMBERS = (int, float)
_INF = float("inf")


def _check_numbers(done: object, total: object) -> None:
    for name, value in (("done", done), ("total", total)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
            raise TypeError(f"ctx.progress: {name} must be a number, not {type(value).__name__}")


@dataclass
class TaskContext:
    """Per-job context. Outputs written through it are atomic and listed in the completion."""

    key: str
    attempt: int
    results_root: Path
    result_dir: Path
    outputs: list[Output] = field(default_factory=list)
    journal: OutputJournal | None = field(default=None, repr=False)
    _writing: int = field(default=0, repr=False)  # temporary files open now
    _noted: set[str] = field(default_factory=set, repr=False)  # names in the journal
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    # (done, total, message, when): a plain tuple, so that a task may call ``progress`` in
    # its innermost loop; a ``Progress`` is made only when the block asks for it.
    _said: tuple[float, float | None, str | None, float] | None = field(default=None, repr=False)
    # ``result_dir`` and ``results_root`` resolved, once a job's first output asks.
    _resolved: tuple[str, str] | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def last_progress(self) -> Progress | None:
        """What the task last said of its progress, if anything."""
        said = self._said
        if said is None:
            return None
        done, total, message, at = said
        return Progress(done=done, total=total, message=message, at=at)

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Say how far the job has got: ``done`` units of ``total`` (if known), and what it is
        doing. Cheap to call often: the last value is kept here, and the block asks for it
        about twice a second (a ``running`` status on ``jobStatus``, shown by ``status``,
        the HTTP API and the web app). Raises ``TypeError`` for a value that is not a
        number, ``ValueError`` for ``done`` below 0 or above ``total``."""
        # The plain types first: this may run in a task's innermost loop.
        if type(done) not in _NUMBERS or (total is not None and type(total) not in _NUMBERS):
            _check_numbers(done, total)
        # Finite too: JSON has no infinity (it would travel as null, which readers refuse).
        if not 0 <= done < _INF or (total is not None and not (done <= total < _INF)):
            raise ValueError(
                f"ctx.progress: done must be finite, from 0 to total ({done} of {total})"
            )
        if message is not None and (type(message) is not str or len(message) > 200):
            message = str(message)[:200]
        self._said = (done, total, message, time.time())

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled while it runs. A long task may look now and then,
        and return (or ``raise_if_cancelled``) at a point where stopping is clean; one that
        has not stopped after ``COMPUTEINFRA_CANCEL_GRACE_SECONDS`` has its worker process
        killed. Its completion says ``cancelled`` either way, and what it wrote is removed."""
        return self._stop.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise ``Cancelled`` if the job was cancelled (see ``cancelled``)."""
        if self._stop.is_set():
            raise Cancelled(f"job {self.key!r} was cancelled")

    def ask_to_stop(self) -> None:
        """Called by the worker, from another thread, when the job is cancelled."""
        self._stop.set()

    def output_path(self, name: str) -> Path:
        return safe_output_path(self.result_dir, name, self._roots()[0])

    def _roots(self) -> tuple[str, str]:
        """``result_dir`` and ``results_root``, resolved (once a job: each resolve is a
        system call per path component)."""
        if self._resolved is None:
            self._resolved = (
                os.path.realpath(self.result_dir),
                os.path.realpath(self.results_root),
            )
        return self._resolved

    @contextmanager
    def open_output(self, name: str, **meta: Any) -> Iterator[IO[bytes]]:
        """Write a file under a temporary name; rename it into place only if the block succeeds.

        A retried job therefore never leaves half a file where a whole one is expected.
        """
        target = self.output_path(name)
        if not os.path.isdir(target.parent):  # one stat, where mkdir(exist_ok) makes two
            target.parent.mkdir(parents=True, exist_ok=True)
        self._note(target)
        self._mark_writing(+1)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.{self._tag}.", suffix=TEMP_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
                size = os.fstat(handle.fileno()).st_size
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        finally:
            self._mark_writing(-1)
        self._record(target, size, meta)

    @property
    def _tag(self) -> str:
        return job_tag(self.key)

    def _note(self, target: Path) -> None:
        """List ``target`` in the worker's journal before it is written."""
        if self.journal is None:
            return
        name = target.relative_to(self._roots()[0]).as_posix()
        if name not in self._noted:
            self._noted.add(name)
            self.journal.note(self.key, name)

    @property
    def _marker(self) -> Path:
        return self.result_dir / f".{self._tag}{WRITING_SUFFIX}"

    def _mark_writing(self, change: int) -> None:
        """A mark lies beside the outputs while this attempt has temporary files open: an
        attempt that is killed leaves it behind, and the next one, wherever it runs and
        whatever attempt number its block gives it, finds it with one ``stat``."""
        if change > 0 and not self._writing:
            # Made as ``Path.touch`` would, without its ``utime`` first (a path walk more).
            os.close(os.open(self._marker, os.O_CREAT | os.O_WRONLY, 0o666))
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

    def _record(self, target: Path, size: int, meta: dict[str, Any]) -> None:
        relative = target.relative_to(self._roots()[1]).as_posix()
        # A retry within one attempt list replaces the earlier entry for the same file.
        self.outputs = [o for o in self.outputs if o.path != relative]
        self.outputs.append(Output(path=relative, bytes=size, **meta))
