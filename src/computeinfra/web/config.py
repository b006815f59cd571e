"""The web app's own settings, from ``COMPUTEINFRA_WEB_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from computeinfra.config import Settings
from computeinfra.errors import ConfigError

__all__ = ["DEFAULT_WEB_PORT", "WEB_HOST", "WebSettings"]

WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8080
DEFAULT_MAX_UPLOAD_BYTES = 32 * 1024 * 1024
# Jobs kept in the live list, and records per partition read back when the app starts.
DEFAULT_RECENT_JOBS = 5000
DEFAULT_TAIL_RECORDS = 500
UPLOADS_FOLDER = "uploads"


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name) or ""
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class WebSettings:
    """``uploads_root`` must lie inside an input root, so an uploaded file is a valid input."""

    core: Settings
    port: int = DEFAULT_WEB_PORT
    uploads_root: Path = Path(UPLOADS_FOLDER)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    recent_jobs: int = DEFAULT_RECENT_JOBS
    tail_records: int = DEFAULT_TAIL_RECORDS

    @classmethod
    def from_env(cls, core: Settings | None = None, port: int | None = None) -> WebSettings:
        core = core or Settings.from_env()
        if not core.input_roots:
            raise ConfigError("no input roots: set COMPUTEINFRA_INPUT_ROOTS")
        raw_uploads = os.environ.get("COMPUTEINFRA_UPLOADS_ROOT")
        uploads = (
            Path(raw_uploads).expanduser().resolve()
            if raw_uploads
            else core.input_roots[0] / UPLOADS_FOLDER
        )
        if not _inside(uploads, core.input_roots):
            raise ConfigError(
                f"COMPUTEINFRA_UPLOADS_ROOT={uploads} is outside the input roots; put it under "
                "one of COMPUTEINFRA_INPUT_ROOTS so jobs may read what is uploaded"
            )
        return cls(
            core=core,
            port=port if port is not None else _int("COMPUTEINFRA_WEB_PORT", DEFAULT_WEB_PORT),
            uploads_root=uploads,
            max_upload_bytes=_int("COMPUTEINFRA_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, 1),
            recent_jobs=_int("COMPUTEINFRA_WEB_RECENT_JOBS", DEFAULT_RECENT_JOBS, 1),
            tail_records=_int("COMPUTEINFRA_WEB_TAIL_RECORDS", DEFAULT_TAIL_RECORDS, 0),
        )
