"""Files through the browser: uploads land under the uploads root (inside an input root,
so jobs may read them); downloads come only from inside the results root."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from computeinfra.errors import PathError, RequestError
from computeinfra.paths import inside, resolve_input
from computeinfra.web.models import Upload

__all__ = ["UploadTooLarge", "result_file", "safe_name", "save_upload"]

CHUNK_BYTES = 1024 * 1024
MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadTooLarge(RequestError):
    """An uploaded file is over ``COMPUTEINFRA_MAX_UPLOAD_BYTES``."""


def safe_name(name: str) -> str:
    """The last component of a client's file name, reduced to harmless characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")[-MAX_NAME_CHARS:]
    return cleaned or "upload"


def save_upload(
    root: Path, input_roots: tuple[Path, ...], name: str, data: BinaryIO, max_bytes: int
) -> Upload:
    """Store one upload in a folder of its own; refuse it past ``max_bytes``."""
    folder = root / uuid.uuid4().hex[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(name)
    partial = target.with_name(f".{target.name}.part")
    written = 0
    try:
        with partial.open("wb") as out:
            while chunk := data.read(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise UploadTooLarge(
                        f"{name!r} is larger than the {max_bytes} bytes allowed; "
                        "raise COMPUTEINFRA_MAX_UPLOAD_BYTES or send a smaller file",
                        field="files",
                    )
                out.write(chunk)
        partial.replace(target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    # The same check a supervisor makes, so what is returned is a path a job may use.
    checked = resolve_input(input_roots, str(target))
    return Upload(name=target.name, path=str(checked), bytes=written)


def result_file(results_root: Path, relative: str) -> Path:
    """A job's output file by its path relative to the results root; ``PathError`` if it
    leaves the root or is not a file."""
    if not relative or "\x00" in relative or os.path.isabs(relative):
        raise PathError(f"{relative!r} is not a path relative to the results root")
    root = os.path.realpath(results_root)
    target = os.path.realpath(os.path.join(root, relative))
    if not inside(root, target) or not os.path.isfile(target):
        raise PathError(f"no result file {relative!r}; the path is relative to the results root")
    return Path(target)
