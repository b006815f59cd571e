"""JSON Schemas of the wire format, generated from the protocol models and the task registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from computeinfra.protocol import (
    CANCEL_TOPIC,
    COMPLETED_TOPIC,
    JOB_STATUS_TOPIC,
    PENDING_TOPIC,
    CancelRequest,
    Completion,
    JobRequest,
    JobStatus,
)
from computeinfra.tasks.registry import TaskRegistry

__all__ = ["schema_documents", "write_schemas"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _document(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, **schema, "title": title, "description": description}


def schema_documents(registry: TaskRegistry) -> dict[str, dict[str, Any]]:
    """File name to schema, for the topics and every task's payload."""
    docs = {
        f"{PENDING_TOPIC}.schema.json": _document(
            JobRequest.model_json_schema(),
            f"{PENDING_TOPIC} record value",
            "A job request. The record key is the job key (UTF-8 text, required).",
        ),
        f"{COMPLETED_TOPIC}.schema.json": _document(
            Completion.model_json_schema(mode="serialization"),
            f"{COMPLETED_TOPIC} record value",
            "The one terminal event of a job; the record key is the job key.",
        ),
        f"{JOB_STATUS_TOPIC}.schema.json": _document(
            JobStatus.model_json_schema(mode="serialization"),
            f"{JOB_STATUS_TOPIC} record value",
            "A job's latest lifecycle step (compacted topic); the record key is the job key.",
        ),
        f"{CANCEL_TOPIC}.schema.json": _document(
            CancelRequest.model_json_schema(),
            f"{CANCEL_TOPIC} record value",
            "Cancel the job whose key is the record key (compacted topic); no value "
            "withdraws a cancel not yet acted on.",
        ),
    }
    for item in registry:
        docs[f"tasks/{item.name}.schema.json"] = _document(
            item.schema(), f"{item.name} payload", item.description
        )
    return docs


def write_schemas(folder: Path, registry: TaskRegistry) -> list[Path]:
    written = []
    for name, schema in schema_documents(registry).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
