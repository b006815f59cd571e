"""The single page and the app's own assets (no CDN: everything is served from here)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

__all__ = ["STATIC_DIR", "pages"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
pages = APIRouter(include_in_schema=False)


@pages.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
