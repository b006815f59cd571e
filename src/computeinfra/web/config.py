"""The web app's settings: a checked view of ``Settings``' web fields (read in config.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from computeinfra.config import DEFAULT_WEB_PORT, UPLOADS_FOLDER, Settings
from computeinfra.errors import ConfigError

__all__ = ["DEFAULT_WEB_PORT", "WEB_HOST", "WebSettings"]

WEB_HOST = "127.0.0.1"


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class WebSettings:
    """``uploads_root`` must lie inside an input root, so an uploaded file is a valid input."""

    core: Settings
    port: int = DEFAULT_WEB_PORT
    uploads_root: Path = Path(UPLOADS_FOLDER)
    max_upload_bytes: int = Settings.max_upload_bytes
    recent_jobs: int = Settings.web_recent_jobs
    tail_records: int = Settings.web_tail_records

    @classmethod
    def from_env(cls, core: Settings | None = None, port: int | None = None) -> WebSettings:
        core = core or Settings.from_env()
        if not core.input_roots:
            raise ConfigError("no input roots: set COMPUTEINFRA_INPUT_ROOTS")
        uploads = core.uploads_root or core.input_roots[0] / UPLOADS_FOLDER
        if not _inside(uploads, core.input_roots):
            raise ConfigError(
                f"COMPUTEINFRA_UPLOADS_ROOT={uploads} is outside the input roots; put it under "
                "one of COMPUTEINFRA_INPUT_ROOTS so jobs may read what is uploaded"
            )
        return cls(
            core=core,
            port=port if port is not None else core.web_port,
            uploads_root=uploads,
            max_upload_bytes=core.max_upload_bytes,
            recent_jobs=core.web_recent_jobs,
            tail_records=core.web_tail_records,
        )
