"""``image-compression``: re-encodes images with Pillow at a chosen quality."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.registry import InputFile, task

SUFFIX = {"jpeg": ".jpg", "webp": ".webp"}
# Pillow keeps no freed memory block by default, so each image's memory is mapped afresh
# and given back: a 1024x768 image cost about 2,100 page faults and 9 to 11 ms, against
# about 580 and 7.7 to 8.6 ms with a few blocks kept (docs/performance.md, change 14).
# A kept block is at most Pillow's block size (16 MiB unless ``PILLOW_BLOCK_SIZE`` says
# otherwise), so a process keeps at most 64 MiB; about 8 MiB for images of that size.
# Pillow applies a ``PILLOW_BLOCKS_MAX`` of the user's own when it is imported: a larger
# one stays (the environment is read in config.py alone, so a smaller one cannot be told
# from Pillow's default of 0).
KEPT_BLOCKS = 4
_pillow = Image.core  # type: ignore[attr-defined]  # Pillow's C module, untyped
_pillow.set_blocks_max(max(_pillow.get_blocks_max(), KEPT_BLOCKS))


class ImageCompressionPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    images: list[InputFile] = Field(min_length=1, max_length=1000, description="Input images.")
    quality: int = Field(ge=1, le=95, description="Encoder quality, 1 (smallest) to 95 (best).")
    format: Literal["jpeg", "webp"] = Field(default="jpeg", description="Output format.")


def _encode(source: Path, quality: int, fmt: str) -> bytes:
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened)
        if fmt == "jpeg" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format=fmt.upper(), quality=quality, optimize=fmt == "jpeg")
    return buffer.getvalue()


def _output_names(sources: list[Path], fmt: str) -> list[str]:
    """One output name per input; inputs that share a stem get an index so none is lost."""
    seen: dict[str, int] = {}
    names = []
    for source in sources:
        stem = source.stem or "image"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(f"{stem}{f'-{count}' if count else ''}{SUFFIX[fmt]}")
    return names


@task("image-compression", payload=ImageCompressionPayload)
def image_compression(payload: ImageCompressionPayload, ctx: TaskContext) -> dict[str, Any]:
    """Compress each image to JPEG or WebP; outputs list original and compressed sizes."""
    sources = [Path(p) for p in payload.images]
    original_total = compressed_total = 0
    names = _output_names(sources, payload.format)
    for done, (source, name) in enumerate(zip(sources, names, strict=True)):
        ctx.progress(done, len(sources), f"compressing {source.name}")
        data = _encode(source, payload.quality, payload.format)
        original = source.stat().st_size
        ctx.write_bytes(
            name,
            data,
            source=str(source),
            original_bytes=original,
            compressed_bytes=len(data),
            ratio=round(len(data) / original, 4) if original else None,
        )
        original_total += original
        compressed_total += len(data)
    return {
        "images": len(sources),
        "original_bytes": original_total,
        "compressed_bytes": compressed_total,
    }
